/// A fee charged on a captured payment, as Razorpay reports it: `fee` is the total
/// including GST and `tax` the GST part of it.
public struct FeeBreakdown: Sendable, Hashable {
    /// The MDR part, before tax.
    public let base: Int64
    /// GST on the MDR.
    public let tax: Int64
    public var total: Int64 { base + tax }

    public init(base: Int64, tax: Int64) {
        precondition(base >= 0 && tax >= 0)
        self.base = base
        self.tax = tax
    }

    public static let zero = FeeBreakdown(base: 0, tax: 0)
}

/// Per-merchant pricing. Rates are in basis points (1/100 of a percent) so the maths is integer.
///
/// Rounding rule: each step rounds half up to the nearest paisa —
///   base = ⌊(amount × mdr_bps + 5000) / 10000⌋
///   tax  = ⌊(base × gst_bps + 5000) / 10000⌋
/// so 2 % of ₹100.25 (10025 paise) is 200.5 → 201 paise, and 18 % GST of 201 is 36.18 → 36.
public struct FeeSchedule: Sendable, Hashable {
    public static let defaultMDRBasisPoints: Int64 = 200   // 2 %
    public static let gstBasisPoints: Int64 = 1800          // 18 % GST on the fee
    public static let maximumMDRBasisPoints: Int64 = 1000   // 10 %: anything above is a configuration error

    public var mdrBasisPoints: [String: Int64]
    public var defaultMDR: Int64

    public init(defaultMDR: Int64 = FeeSchedule.defaultMDRBasisPoints, mdrBasisPoints: [String: Int64] = [:]) {
        precondition((0...Self.maximumMDRBasisPoints).contains(defaultMDR))
        precondition(mdrBasisPoints.values.allSatisfy { (0...Self.maximumMDRBasisPoints).contains($0) })
        self.defaultMDR = defaultMDR
        self.mdrBasisPoints = mdrBasisPoints
    }

    public func fee(amount: Int64, method: PaymentMethod) -> FeeBreakdown {
        precondition(amount >= 0 && amount <= AmountLimits.maximum)
        let bps = mdrBasisPoints[method.rawValue] ?? defaultMDR
        let base = Self.roundedShare(amount, basisPoints: bps)
        let tax = Self.roundedShare(base, basisPoints: Self.gstBasisPoints)
        return FeeBreakdown(base: base, tax: tax)
    }

    /// `value × bps / 10000`, rounded half up. Cannot overflow for amounts within limits.
    public static func roundedShare(_ value: Int64, basisPoints: Int64) -> Int64 {
        precondition(value >= 0 && basisPoints >= 0)
        let (product, overflow) = value.multipliedReportingOverflow(by: basisPoints)
        precondition(!overflow, "fee computation overflow")
        return (product + 5_000) / 10_000
    }
}

// MARK: - Cards

/// Card pricing (issue 13): the rate of a card payment depends on its network, type and
/// origin. The schedule is looked up from the most specific key to the least —
/// `card:<network>:<type>`, `card:<network>`, `card:international` (a card issued outside
/// India), `card:<type>`, `card` — and at each key the merchant's own rate (`mdrBasisPoints`)
/// comes before Kosh's default for that key (`cardDefaults`); with neither, the merchant's
/// default MDR applies. The rounding rule is the same as for every fee.
extension FeeSchedule {
    /// Kosh's default card rates, as Indian gateways price them: RuPay debit cards carry no MDR
    /// (the Government's zero-MDR rule since January 2020); American Express, Diners Club and
    /// international cards 3 %; every other card the merchant's default MDR (2 %).
    public static let cardDefaults: [String: Int64] = [
        "card:rupay:debit": 0,
        "card:amex": 300,
        "card:diners": 300,
        "card:international": 300,
    ]

    /// The lookup keys of a card, most specific first.
    public static func cardKeys(network: CardNetwork, type: CardType, international: Bool) -> [String] {
        var keys = ["card:\(network.rawValue):\(type.rawValue)", "card:\(network.rawValue)"]
        if international { keys.append("card:international") }
        keys += ["card:\(type.rawValue)", "card"]
        return keys
    }

    /// The rate for a card, in basis points, and the key that decided it (nil: the default MDR).
    public func cardRate(network: CardNetwork, type: CardType, international: Bool) -> (basisPoints: Int64, key: String?) {
        for key in Self.cardKeys(network: network, type: type, international: international) {
            if let rate = mdrBasisPoints[key] { return (rate, key) }
            if let rate = Self.cardDefaults[key] { return (rate, key) }
        }
        return (defaultMDR, nil)
    }

    /// The schedule a card payment is charged on: this one, with the card's rate as the card rate.
    public func resolving(card: Card?) -> FeeSchedule {
        guard let card else { return self }
        var schedule = self
        schedule.mdrBasisPoints[PaymentMethod.card.rawValue] = cardRate(network: card.network, type: card.type, international: card.international).basisPoints
        return schedule
    }

    /// Whether `key` names a rate a merchant may set: a method (`upi`, `card`, …) or a card key.
    public static func isRateKey(_ key: String) -> Bool {
        if PaymentMethod(rawValue: key) != nil { return true }
        let parts = key.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.first == "card" else { return false }
        switch parts.count {
        case 2: return parts[1] == "international" || CardNetwork(rawValue: parts[1]) != nil || CardType(rawValue: parts[1]) != nil
        case 3: return CardNetwork(rawValue: parts[1]) != nil && CardType(rawValue: parts[2]) != nil
        default: return false
        }
    }
}

