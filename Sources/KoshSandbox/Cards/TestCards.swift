/// The card network's issuers and their test cards (docs/SANDBOX.md, "Cards"): Razorpay's
/// Indian and international test cards, Razorpay's error cards, and two of the sandbox's own
/// (an expired card and a card whose issuer answers late). A number not in the table is
/// unknown to every issuer: the acquirer answers 14 and the ACS fails the authentication.
enum CardNetworkName: String, Sendable {
    case visa = "Visa", mastercard = "MasterCard", rupay = "RuPay", amex = "American Express", diners = "Diners Club"
}

enum CardKind: String, Sendable {
    case credit, debit, prepaid
}

/// What the card's issuer (or its ACS) does with a payment.
enum IssuerBehaviour: String, Sendable {
    /// Approves within balance and limits.
    case approve = "success"
    /// Never answers; the acquirer stands in with 91 after `issuer_timeout_ms`.
    case timeOut = "issuer_timeout"
    /// The cardholder cancels on the ACS page: verify answers failed / payment_cancelled.
    case cancelAtACS = "cancelled_at_acs"
    /// The ACS refuses at once: failed / authentication_failed.
    case failAuthentication = "authentication_failed"
    /// 05.
    case doNotHonour = "do_not_honour"
    /// 57.
    case onlineDisabled = "online_use_disabled"
    /// 14, from the issuer (the number is in the network's table but the issuer disowns it).
    case invalidAtIssuer = "invalid_number"
    /// 96.
    case technicalError = "technical_error"
    /// Approves, but only after `late_answer_ms`: later than the connector waits.
    case approveLate = "late_answer"
}

struct TestCard: Sendable {
    let number: String
    let network: CardNetworkName
    let issuer: String
    let kind: CardKind
    let domestic: Bool
    /// The cardholder's phone, where the ACS texts the OTP.
    let phone: String
    /// The issuer's expiry, YYMM: field 14 must say the same.
    let expiry: String
    /// Available balance (debit, prepaid) or credit limit, in paise, when the sandbox starts.
    let openingBalance: Int64
    /// The most one transaction may carry (61 above it), in paise.
    let transactionLimit: Int64
    let behaviour: IssuerBehaviour

    var masked: String { CardMask.mask(number) }
}

enum TestCards {
    /// Every test card's issuer expiry except the expired card's: December 2030.
    static let validExpiry = "3012"
    /// The expired card's: January 2020.
    static let pastExpiry = "2001"

    static let fiveLakh: Int64 = 50_000_000
    static let twoLakh: Int64 = 20_000_000
    static let oneLakh: Int64 = 10_000_000

    private static func card(_ number: String, _ network: CardNetworkName, _ issuer: String, _ kind: CardKind, domestic: Bool = true,
                             phone: String, expiry: String = validExpiry, balance: Int64 = fiveLakh, limit: Int64 = twoLakh,
                             _ behaviour: IssuerBehaviour = .approve) -> TestCard {
        TestCard(number: number, network: network, issuer: issuer, kind: kind, domestic: domestic, phone: phone, expiry: expiry,
                 openingBalance: balance, transactionLimit: limit, behaviour: behaviour)
    }

    static let all: [TestCard] = [
        // Razorpay's successful Indian cards (3-D Secure with an OTP).
        card("4100280000001007", .visa, "HDFC Bank", .credit, phone: "+919810000001"),
        card("5500670000001002", .mastercard, "ICICI Bank", .credit, phone: "+919810000002"),
        card("6527658900001005", .rupay, "State Bank of India", .debit, phone: "+919810000003", balance: oneLakh, limit: oneLakh),
        card("378282246310005", .amex, "American Express Banking Corp", .credit, phone: "+919810000004"),
        card("30569309025904", .diners, "HDFC Bank", .credit, phone: "+919810000005"),
        // Razorpay's international cards: frictionless 3-D Secure.
        card("5555555555554444", .mastercard, "JPMorgan Chase Bank", .credit, domestic: false, phone: "+919810000006"),
        card("4012888888881881", .visa, "Wells Fargo Bank", .credit, domestic: false, phone: "+919810000007"),
        card("5104060000000008", .mastercard, "Barclays Bank", .debit, domestic: false, phone: "+919810000008"),
        card("5105105105105100", .mastercard, "Citibank", .prepaid, domestic: false, phone: "+919810000009", balance: oneLakh,
             limit: oneLakh),
        // Razorpay's error cards (HDFC Bank Visa credit cards).
        card("4100280000090000", .visa, "HDFC Bank", .credit, phone: "+919820000001", .timeOut),
        card("4100280000080001", .visa, "HDFC Bank", .credit, phone: "+919820000002", balance: 0),
        card("4100280000070002", .visa, "HDFC Bank", .credit, phone: "+919820000003", .cancelAtACS),
        card("4100280000060003", .visa, "HDFC Bank", .credit, phone: "+919820000004", .doNotHonour),
        card("4100280000050004", .visa, "HDFC Bank", .credit, phone: "+919820000005", .doNotHonour),
        card("4100280000040005", .visa, "HDFC Bank", .credit, phone: "+919820000006", .doNotHonour),
        card("4100280000030006", .visa, "HDFC Bank", .credit, phone: "+919820000007", .onlineDisabled),
        card("4100280000010008", .visa, "HDFC Bank", .credit, phone: "+919820000008", .invalidAtIssuer),
        card("4100280000020007", .visa, "HDFC Bank", .credit, phone: "+919820000009", .technicalError),
        card("4100280000000009", .visa, "HDFC Bank", .credit, phone: "+919820000010", .failAuthentication),
        // The sandbox's own: an Axis Bank debit card that expired in January 2020 (54 whatever
        // expiry is sent), and a Kotak credit card whose issuer answers after `late_answer_ms`.
        card("5305620000001004", .mastercard, "Axis Bank", .debit, phone: "+919830000001", expiry: pastExpiry),
        card("5241810000001008", .mastercard, "Kotak Mahindra Bank", .credit, phone: "+919830000002", .approveLate),
    ]

    private static let byNumber: [String: TestCard] = Dictionary(uniqueKeysWithValues: all.map { ($0.number, $0) })

    static func card(_ number: String) -> TestCard? { byNumber[number] }

    /// The expected answer of an otherwise good ₹500 authorisation, for the table in the docs.
    static func outcome(_ card: TestCard) -> String {
        if card.expiry < validExpiry { return "54 expired card" }
        if card.openingBalance == 0 { return "51 insufficient funds" }
        return switch card.behaviour {
        case .approve: card.domestic ? "00 after an OTP" : "00, frictionless 3-D Secure"
        case .timeOut: "91 after issuer_timeout_ms"
        case .cancelAtACS: "cardholder cancels at the ACS"
        case .failAuthentication: "ACS fails the authentication"
        case .doNotHonour: "05 do not honour"
        case .onlineDisabled: "57 online use disabled"
        case .invalidAtIssuer: "14 invalid number"
        case .technicalError: "96 technical error"
        case .approveLate: "00 after late_answer_ms"
        }
    }
}

enum CardMask {
    /// First 6 and last 4 digits, the rest as `*`: all a log line or a page may show.
    static func mask(_ number: String) -> String {
        let digits = Array(number)
        guard digits.count > 10 else { return String(repeating: "*", count: digits.count) }
        return String(digits.prefix(6)) + String(repeating: "*", count: digits.count - 10) + String(digits.suffix(4))
    }

    /// Whether `number` passes the Luhn check (digits only, 12–19 of them).
    static func isLuhnValid(_ number: String) -> Bool {
        let digits = number.utf8.map { Int($0) - Int(UInt8(ascii: "0")) }
        guard (12...19).contains(digits.count), digits.allSatisfy({ (0...9).contains($0) }) else { return false }
        var sum = 0
        for (index, digit) in digits.reversed().enumerated() {
            let doubled = index % 2 == 1 ? digit * 2 : digit
            sum += doubled > 9 ? doubled - 9 : doubled
        }
        return sum % 10 == 0
    }
}
