/// Netbanking banks and wallet providers (issue 14): Razorpay's codes, the names shown to
/// customers and the per-payment caps, as the sandbox's banks and wallets have them
/// (docs/REDIRECT_METHODS.md). Pure values, checked before a payment is created.
public struct RedirectProvider: Sendable, Hashable {
    public let code: String
    public let name: String
    /// The most one payment may be (paise).
    public let maximumAmount: Int64

    public init(code: String, name: String, maximumAmount: Int64) {
        self.code = code
        self.name = name
        self.maximumAmount = maximumAmount
    }
}

public enum RedirectProviders {
    /// ₹10,00,000 for most banks; ₹2,00,000 for Airtel Payments Bank; ₹50,00,000 for corporate banking.
    public static let banks: [RedirectProvider] = [
        ("HDFC", "HDFC Bank"), ("ICIC", "ICICI Bank"), ("SBIN", "State Bank of India"), ("UTIB", "Axis Bank"),
        ("KKBK", "Kotak Mahindra Bank"), ("YESB", "Yes Bank"), ("IDFB", "IDFC FIRST Bank"), ("INDB", "IndusInd Bank"),
        ("IBKL", "IDBI Bank"), ("PUNB_R", "Punjab National Bank - Retail Banking"), ("BARB_R", "Bank of Baroda - Retail Banking"),
        ("UBIN", "Union Bank of India"), ("CNRB", "Canara Bank"), ("FDRL", "Federal Bank"), ("RATN", "RBL Bank"),
        ("AUBL", "AU Small Finance Bank"), ("AIRP", "Airtel Payments Bank"), ("YESB_C", "Yes Bank - Corporate Banking"),
    ].map { code, name in
        RedirectProvider(code: code, name: name,
                         maximumAmount: code == "AIRP" ? 20_000_000 : code.hasSuffix("_C") ? 500_000_000 : 100_000_000)
    }

    /// RBI's cap on external wallets as Razorpay applies it: ₹20,000 a payment.
    public static let walletCap: Int64 = 2_000_000
    public static let wallets: [RedirectProvider] = [
        ("phonepe", "PhonePe"), ("amazonpay", "Amazon Pay"), ("mobikwik", "MobiKwik"), ("payzapp", "PayZapp"),
        ("olamoney", "Ola Money"), ("airtelmoney", "Airtel Money"), ("jiomoney", "JioMoney"),
    ].map { RedirectProvider(code: $0.0, name: $0.1, maximumAmount: walletCap) }

    public static func bank(_ code: String) -> RedirectProvider? { banks.first { $0.code == code } }
    public static func wallet(_ code: String) -> RedirectProvider? { wallets.first { $0.code == code } }

    /// The provider a netbanking or wallet payment names, checked: known, and the amount within
    /// its cap. Refusals name the field, in Razorpay's words.
    public static func check(method: PaymentMethod, code: String?, amount: Int64) throws -> RedirectProvider {
        switch method {
        case .netbanking:
            guard let code, !code.isEmpty else { throw KoshError.badRequest("The bank field is required.", field: "bank") }
            guard let bank = bank(code) else { throw KoshError.badRequest("Invalid bank code: \(String(code.prefix(16)))", field: "bank") }
            guard amount <= bank.maximumAmount else {
                throw KoshError.badRequest("The amount exceeds the maximum of INR \(bank.maximumAmount / 100) for \(bank.name)", field: "amount",
                                           reason: "amount_exceeds_maximum_amount_allowed")
            }
            return bank
        case .wallet:
            guard let code, !code.isEmpty else { throw KoshError.badRequest("The wallet field is required.", field: "wallet") }
            guard let wallet = wallet(code) else { throw KoshError.badRequest("Invalid wallet: \(String(code.prefix(16)))", field: "wallet") }
            guard amount <= wallet.maximumAmount else {
                throw KoshError.badRequest("The amount exceeds the maximum of INR \(wallet.maximumAmount / 100) for \(wallet.name)", field: "amount",
                                           reason: "amount_exceeds_maximum_amount_allowed")
            }
            return wallet
        default:
            throw KoshError.badRequest("Only netbanking and wallet payments are redirect payments", field: "method")
        }
    }
}
