/// The redirect methods (docs/REDIRECT_METHODS.md): netbanking at the banks (rail `netbanking`)
/// and wallet providers (rail `wallets`). Both work alike — Kosh opens a payment, the customer's
/// browser approves or declines it on the provider's page, the provider calls back — and differ
/// in names, limits and fees, which this file holds.
enum RedirectKind: String, Sendable, Hashable, CaseIterable {
    case netbanking
    case wallet

    init?(rail: Rail) {
        switch rail {
        case .netbanking: self = .netbanking
        case .wallets: self = .wallet
        case .upiSwitch, .alphapay, .betapay, .acquirer, .acs: return nil
        }
    }

    var rail: Rail {
        switch self {
        case .netbanking: .netbanking
        case .wallet: .wallets
        }
    }

    /// The payment object's field naming the provider: `bank` or `wallet`.
    var providerField: String { self == .netbanking ? "bank" : "wallet" }
    /// The provider's own reference for a successful payment.
    var referenceField: String { self == .netbanking ? "bank_reference" : "wallet_reference" }
    var idPrefix: String { self == .netbanking ? "nb_" : "wl_" }
    var refundPrefix: String { self == .netbanking ? "nbr_" : "wlr_" }
    /// The browser page's path, followed by the payment's id.
    var pagePath: String { self == .netbanking ? "/netbanking/pay/" : "/wallets/pay/" }
    var event: String { self == .netbanking ? "netbanking.payment.final" : "wallet.payment.final" }
    var notSupportedCode: String { self == .netbanking ? "BANK_NOT_SUPPORTED" : "WALLET_NOT_SUPPORTED" }
    var noun: String { self == .netbanking ? "bank" : "wallet" }

    /// The kind whose ids start with this prefix.
    init?(providerID: String) {
        if providerID.hasPrefix("nb_") {
            self = .netbanking
        } else if providerID.hasPrefix("wl_") {
            self = .wallet
        } else {
            return nil
        }
    }
}

/// One bank or wallet provider: Razorpay's code, its name, the most one payment may carry, its
/// fee to Kosh and what its test customer starts with.
struct RedirectProvider: Sendable, Hashable {
    let kind: RedirectKind
    let code: String
    let name: String
    let maxAmount: Int64
    let feeBasisPoints: Int64
    let openingBalance: Int64

    /// `fee_bps` of the amount, rounded half up to the paisa.
    func fee(_ amount: Int64) -> Int64 { Amounts.share(amount, basisPoints: feeBasisPoints) }
}

enum RedirectCatalogue {
    /// ₹10,00,000 for most banks.
    static let bankMaximum: Int64 = 100_000_000
    /// ₹2,00,000 at Airtel Payments Bank.
    static let paymentsBankMaximum: Int64 = 20_000_000
    /// ₹50,00,000 at corporate (`_C`) banks.
    static let corporateMaximum: Int64 = 500_000_000
    /// ₹20,000 per wallet payment.
    static let walletMaximum: Int64 = 2_000_000
    /// ₹5,00,000 in each bank's test customer's account.
    static let bankOpeningBalance: Int64 = 50_000_000
    /// ₹10,000 in each wallet's test customer's wallet.
    static let walletOpeningBalance: Int64 = 1_000_000
    /// The customer has 15 minutes of the sandbox's clock to approve.
    static let expiryMs: Int64 = 15 * 60 * 1000

    static let banks: [RedirectProvider] = [
        ("HDFC", "HDFC Bank"), ("ICIC", "ICICI Bank"), ("SBIN", "State Bank of India"), ("UTIB", "Axis Bank"),
        ("KKBK", "Kotak Mahindra Bank"), ("YESB", "Yes Bank"), ("IDFB", "IDFC FIRST Bank"), ("INDB", "IndusInd Bank"),
        ("IBKL", "IDBI Bank"), ("PUNB_R", "Punjab National Bank (retail)"), ("BARB_R", "Bank of Baroda (retail)"),
        ("UBIN", "Union Bank of India"), ("CNRB", "Canara Bank"), ("FDRL", "Federal Bank"), ("RATN", "RBL Bank"),
        ("AUBL", "AU Small Finance Bank"), ("AIRP", "Airtel Payments Bank"), ("YESB_C", "Yes Bank (corporate)"),
    ].map { code, name in
        let corporate = code.hasSuffix("_C")
        let maximum = corporate ? corporateMaximum : code == "AIRP" ? paymentsBankMaximum : bankMaximum
        let fee: Int64 = corporate ? 200 : code == "SBIN" ? 120 : 150
        return RedirectProvider(kind: .netbanking, code: code, name: name, maxAmount: maximum, feeBasisPoints: fee,
                                openingBalance: bankOpeningBalance)
    }

    static let wallets: [RedirectProvider] = [
        ("phonepe", "PhonePe", 190), ("amazonpay", "Amazon Pay", 200), ("mobikwik", "MobiKwik", 190), ("payzapp", "PayZapp", 190),
        ("olamoney", "Ola Money", 190), ("airtelmoney", "Airtel Money", 190), ("jiomoney", "JioMoney", 175),
    ].map { code, name, fee in
        RedirectProvider(kind: .wallet, code: code, name: name, maxAmount: walletMaximum, feeBasisPoints: Int64(fee),
                         openingBalance: walletOpeningBalance)
    }

    static func providers(_ kind: RedirectKind) -> [RedirectProvider] { kind == .netbanking ? banks : wallets }

    private static let index: [RedirectKind: [String: RedirectProvider]] = [
        .netbanking: Dictionary(uniqueKeysWithValues: banks.map { ($0.code, $0) }),
        .wallet: Dictionary(uniqueKeysWithValues: wallets.map { ($0.code, $0) }),
    ]

    /// The provider with exactly this code (codes are case-sensitive, as Razorpay spells them).
    static func provider(_ kind: RedirectKind, _ code: String) -> RedirectProvider? { index[kind]?[code] }
}
