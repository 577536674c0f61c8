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
