/// Card numbers, expiry dates and BIN data (issue 13's first pieces): pure values, checked
/// before anything is sent anywhere. Only the vault and the card connector ever hold a full
/// number; everything else keeps a `CardSummary`.

/// Card networks, with Razorpay's names and method codes.
public enum CardNetwork: String, Sendable, Hashable, CaseIterable {
    case visa, mastercard, rupay, amex, diners, maestro, jcb, unknown

    /// The `card.network` of Razorpay's payment entity.
    public var displayName: String {
        switch self {
        case .visa: "Visa"
        case .mastercard: "MasterCard"
        case .rupay: "RuPay"
        case .amex: "American Express"
        case .diners: "Diners Club"
        case .maestro: "Maestro"
        case .jcb: "JCB"
        case .unknown: "Unknown"
        }
    }

    /// The key in `GET /v1/methods`' `card_networks`.
    public var methodCode: String {
        switch self {
        case .visa: "VISA"
        case .mastercard: "MC"
        case .rupay: "RUPAY"
        case .amex: "AMEX"
        case .diners: "DICL"
        case .maestro: "MAES"
        case .jcb: "JCB"
        case .unknown: "UNKNOWN"
        }
    }
}

public enum CardType: String, Sendable, Hashable, CaseIterable {
    case credit, debit, prepaid, unknown
}

/// Why a card's details are refused before any network sees them.
public enum CardInputProblem: Error, Sendable, Hashable {
    case numberNotDigits
    case numberLength
    case numberChecksum
    case expiryMonth
    case expiryYear
    case expired
}

/// A card number that is 12–19 digits and passes the Luhn check.
public struct CardNumber: Sendable, Hashable, CustomStringConvertible {
    public let digits: String

    public init(_ text: String) throws(CardInputProblem) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else { throw .numberNotDigits }
        guard (12...19).contains(bytes.count) else { throw .numberLength }
        guard Self.luhnValid(bytes) else { throw .numberChecksum }
        digits = text
    }

    /// The Luhn (mod 10) check over ASCII digits.
    public static func luhnValid(_ bytes: [UInt8]) -> Bool {
        var sum = 0
        for (i, byte) in bytes.reversed().enumerated() {
            var d = Int(byte - UInt8(ascii: "0"))
            if i % 2 == 1 {
                d *= 2
                if d > 9 { d -= 9 }
            }
            sum += d
        }
        return sum % 10 == 0
    }

    /// The issuer identification number: the first 6 digits.
    public var iin: String { String(digits.prefix(6)) }
    public var last4: String { String(digits.suffix(4)) }

    /// Never the whole number: logs and errors show this.
    public var description: String { "\(iin)\(String(repeating: "X", count: digits.count - 10))\(last4)" }
}

/// A card's expiry: the card is good through the last day of its month.
public struct CardExpiry: Sendable, Hashable {
    public let month: Int
    /// Four digits.
    public let year: Int

    /// `year` as Razorpay's clients send it: two digits ("30") or four ("2030").
    public init(month: Int, year: Int) throws(CardInputProblem) {
        guard (1...12).contains(month) else { throw .expiryMonth }
        let full = year < 100 ? 2000 + year : year
        guard (2000...2099).contains(full) else { throw .expiryYear }
        self.month = month
        self.year = full
    }

    /// Whether the card has expired at `now` (UTC): after its expiry month ends.
    public func isExpired(at now: UnixMillis) -> Bool {
        let (nowYear, nowMonth) = CivilDate.yearMonth(of: now)
        return (year, month) < (nowYear, nowMonth)
    }
}

/// The calendar month of a moment, UTC (Howard Hinnant's days-to-civil, integer only).
enum CivilDate {
    static func yearMonth(of moment: UnixMillis) -> (year: Int, month: Int) {
        let days = Int(moment.value / 86_400_000) - (moment.value < 0 && moment.value % 86_400_000 != 0 ? 1 : 0)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month)
    }
}

/// What is known of a card from its BIN (first digits).
public struct BINRecord: Sendable, Hashable {
    public let prefix: String
    public let network: CardNetwork
    public let issuer: String?
    public let type: CardType
    /// `consumer` or `business`.
    public let subType: String
    /// ISO 3166 alpha-2.
    public let country: String

    public init(prefix: String, network: CardNetwork, issuer: String?, type: CardType, subType: String = "consumer", country: String = "IN") {
        self.prefix = prefix
        self.network = network
        self.issuer = issuer
        self.type = type
        self.subType = subType
        self.country = country
    }
}

extension BINRecord {
    /// The issuer's name for its Razorpay bank code (the codes the BIN table uses).
    public var issuerName: String? {
        guard let issuer else { return nil }
        return Self.issuerNames[issuer] ?? issuer
    }

    static let issuerNames = [
        "HDFC": "HDFC Bank", "ICIC": "ICICI Bank", "SBIN": "State Bank of India", "UTIB": "Axis Bank", "KKBK": "Kotak Mahindra Bank",
        "YESB": "Yes Bank", "PUNB": "Punjab National Bank", "BARB": "Bank of Baroda", "INDB": "IndusInd Bank", "IDFB": "IDFC First Bank",
    ]
}

/// BIN data: the longest matching prefix wins; numbers no entry covers fall back to the
/// networks' published ranges with nothing else known.
public struct BINTable: Sendable {
    let records: [BINRecord]

    public init(_ records: [BINRecord]) {
        self.records = records.sorted { $0.prefix.count > $1.prefix.count }
    }

    public func lookup(_ number: CardNumber) -> BINRecord {
        if let record = records.first(where: { number.digits.hasPrefix($0.prefix) }) { return record }
        return BINRecord(prefix: "", network: Self.network(ofNumber: number.digits), issuer: nil, type: .unknown, country: "")
    }

    /// The network by the published ranges (RuPay's Indian ranges before Discover's 65).
    public static func network(ofNumber digits: String) -> CardNetwork {
        func starts(_ range: ClosedRange<Int>, _ length: Int) -> Bool {
            guard digits.count >= length, let value = Int(digits.prefix(length)) else { return false }
            return range.contains(value)
        }
        if starts(34...34, 2) || starts(37...37, 2) { return .amex }
        if starts(300...305, 3) || starts(36...36, 2) || starts(38...39, 2) { return .diners }
        if starts(3528...3589, 4) { return .jcb }
        if starts(4...4, 1) { return .visa }
        if starts(51...55, 2) || starts(2221...2720, 4) { return .mastercard }
        if starts(60...60, 2) || starts(65...65, 2) || starts(81...82, 2) || starts(508...508, 3) || starts(353...353, 3)
            || starts(356...356, 3) { return .rupay }
        if starts(50...50, 2) || starts(56...69, 2) { return .maestro }
        return .unknown
    }

    /// The sandbox's issuers, for Razorpay's Indian test cards (issue 13's BIN/IIN table).
    public static let sandbox = BINTable([
        BINRecord(prefix: "410028", network: .visa, issuer: "HDFC", type: .credit),
        BINRecord(prefix: "550067", network: .mastercard, issuer: "ICIC", type: .credit),
        BINRecord(prefix: "530562", network: .mastercard, issuer: "UTIB", type: .debit),
        BINRecord(prefix: "524181", network: .mastercard, issuer: "KKBK", type: .credit),
        BINRecord(prefix: "652765", network: .rupay, issuer: "SBIN", type: .debit),
        BINRecord(prefix: "360828", network: .diners, issuer: "HDFC", type: .credit),
        BINRecord(prefix: "340256", network: .amex, issuer: nil, type: .credit),
        BINRecord(prefix: "378282", network: .amex, issuer: nil, type: .credit),
        BINRecord(prefix: "305693", network: .diners, issuer: "HDFC", type: .credit),
        BINRecord(prefix: "510510", network: .mastercard, issuer: nil, type: .prepaid, country: "US"),
        BINRecord(prefix: "510406", network: .mastercard, issuer: nil, type: .debit, country: "GB"),
        BINRecord(prefix: "555555", network: .mastercard, issuer: nil, type: .credit, country: "US"),
        BINRecord(prefix: "401288", network: .visa, issuer: nil, type: .credit, country: "US"),
    ])
}
