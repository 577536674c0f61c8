/// ISO 4217 currency. Kosh accepts INR only for now; the type exists so that every
/// amount carries its currency and the ledger can check balance per currency.
public enum Currency: String, Sendable, Hashable, CaseIterable, Codable {
    case inr = "INR"

    /// Number of decimal places of the minor unit (paise for INR).
    public var minorUnitExponent: Int {
        switch self {
        case .inr: 2
        }
    }

    public init?(code: String) {
        self.init(rawValue: code.uppercased())
    }
}

/// An amount of money in integer minor units. Never a floating point number.
/// Explicit limits on amounts the API accepts.
public enum AmountLimits {
    /// Razorpay's minimum order / payment amount: ₹1.00.
    public static let minimum: Int64 = 100
    /// Kosh's per-order maximum: ₹5,00,000.00 (Razorpay's default per-transaction limit).
    public static let maximum: Int64 = 50_000_000
}
