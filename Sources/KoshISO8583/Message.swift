/// ISO 8583 (1987) messages as the sandbox's acquirer and Kosh's card connector exchange them
/// (issue 13): a 4-digit MTI, a binary bitmap (8 bytes, 16 when the secondary bitmap is
/// present), then each present field in ASCII — fixed numeric fields zero-padded, fixed
/// alphanumeric fields space-padded, variable fields behind an LL or LLL length in ASCII digits.
/// Each message travels behind a 2-byte big-endian length (`ISO8583Frame`).
///
/// No dependencies: both KoshRails and the sandbox (which does not depend on KoshCore) use it.
public struct ISO8583Message: Sendable, Hashable {
    /// Message type indicator, e.g. "0100" (authorisation request), "0110" (its response).
    public var mti: String
    /// Field number (2…128) → value as text (digits for numeric fields).
    public private(set) var fields: [Int: String]

    public init(mti: String, fields: [Int: String] = [:]) {
        self.mti = mti
        self.fields = fields
    }

    public subscript(field: Int) -> String? {
        get { fields[field] }
        set { fields[field] = newValue }
    }

    /// The response MTI of a request: 0100 → 0110, 0200 → 0210, 0400 → 0410, 0420 → 0430, 0800 → 0810.
    public var responseMTI: String? {
        // The third digit is the message function: even for a request or advice (0, 2), the
        // next odd one for its response (1, 3).
        let digits = Array(mti.utf8)
        guard digits.count == 4, digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              digits[2] == UInt8(ascii: "0") || digits[2] == UInt8(ascii: "2") else { return nil }
        var response = digits
        response[2] += 1
        return String(decoding: response, as: UTF8.self)
    }
}

/// How one field is written.
public struct ISO8583FieldSpec: Sendable, Hashable {
    public enum Content: Sendable, Hashable {
        /// Digits only.
        case numeric
        /// Letters, digits and spaces.
        case alphanumeric
        /// Any printable ASCII.
        case text
    }

    public enum Length: Sendable, Hashable {
        case fixed(Int)
        /// Up to the maximum, behind a 2-digit length.
        case llvar(max: Int)
        /// Up to the maximum, behind a 3-digit length.
        case lllvar(max: Int)
    }

    public let content: Content
    public let length: Length
    public let name: String

    public init(_ content: Content, _ length: Length, _ name: String) {
        self.content = content
        self.length = length
        self.name = name
    }

    /// The fields Kosh and the sandbox use (ISO 8583:1987 numbering and formats).
    public static let table: [Int: ISO8583FieldSpec] = [
        2: .init(.numeric, .llvar(max: 19), "primary account number"),
        3: .init(.numeric, .fixed(6), "processing code"),
        4: .init(.numeric, .fixed(12), "amount, transaction"),
        7: .init(.numeric, .fixed(10), "transmission date and time (MMDDhhmmss)"),
        11: .init(.numeric, .fixed(6), "system trace audit number"),
        12: .init(.numeric, .fixed(6), "local transaction time (hhmmss)"),
        13: .init(.numeric, .fixed(4), "local transaction date (MMDD)"),
        14: .init(.numeric, .fixed(4), "expiration date (YYMM)"),
        18: .init(.numeric, .fixed(4), "merchant type"),
        22: .init(.numeric, .fixed(3), "point of service entry mode"),
        25: .init(.numeric, .fixed(2), "point of service condition code"),
        32: .init(.numeric, .llvar(max: 11), "acquiring institution identification code"),
        37: .init(.alphanumeric, .fixed(12), "retrieval reference number"),
        38: .init(.alphanumeric, .fixed(6), "authorization identification response"),
        39: .init(.alphanumeric, .fixed(2), "response code"),
        41: .init(.text, .fixed(8), "card acceptor terminal identification"),
        42: .init(.text, .fixed(15), "card acceptor identification code"),
        43: .init(.text, .fixed(40), "card acceptor name/location"),
        48: .init(.text, .lllvar(max: 999), "additional data, private"),
        49: .init(.numeric, .fixed(3), "currency code, transaction"),
        54: .init(.text, .lllvar(max: 120), "additional amounts"),
        70: .init(.numeric, .fixed(3), "network management information code"),
        90: .init(.numeric, .fixed(42), "original data elements"),
        102: .init(.text, .llvar(max: 28), "account identification 1"),
    ]
}

public struct ISO8583Error: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
