import KoshISO8583

/// The parts of docs/CARDS.md §2 the acquirer reads and writes beyond the codec: field 48's
/// tagged data, field 90's original data elements, and which fields each answer echoes.
enum AcquirerProfile {
    static let acquirerID = "400001"
    static let rupeeCurrency = "356"
    static let authorisationCode = "000000"
    static let refundCode = "200000"

    /// Response codes (field 39) the acquirer answers.
    enum Code {
        static let approved = "00"
        static let doNotHonour = "05"
        static let invalidTransaction = "12"
        static let invalidCard = "14"
        static let originalNotFound = "25"
        static let formatError = "30"
        static let insufficientFunds = "51"
        static let expiredCard = "54"
        static let notPermitted = "57"
        static let exceedsLimit = "61"
        static let securityViolation = "63"
        static let issuerUnavailable = "91"
        static let duplicateTransmission = "94"
        static let systemMalfunction = "96"
    }

    /// Field 48: repeated `TT` + `LLL` + value. Nil when the data is not well formed (a length
    /// running past the end, a tag twice).
    static func tags(_ field: String?) -> [String: String]? {
        guard let field else { return [:] }
        let bytes = Array(field.utf8)
        var tags: [String: String] = [:]
        var index = 0
        while index < bytes.count {
            guard index + 5 <= bytes.count else { return nil }
            let tag = String(decoding: bytes[index..<(index + 2)], as: UTF8.self)
            let lengthDigits = bytes[(index + 2)..<(index + 5)]
            guard lengthDigits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  let length = Int(String(decoding: lengthDigits, as: UTF8.self)), index + 5 + length <= bytes.count,
                  tags[tag] == nil else { return nil }
            tags[tag] = String(decoding: bytes[(index + 5)..<(index + 5 + length)], as: UTF8.self)
            index += 5 + length
        }
        return tags
    }

    /// Field 48 with `tags` in the given order (absent ones skipped).
    static func field48(_ tags: [(String, String?)]) -> String? {
        var out = ""
        for case let (tag, value?) in tags {
            let length = String(value.utf8.count)
            out += tag + String(repeating: "0", count: 3 - length.count) + length + value
        }
        return out.isEmpty ? nil : out
    }

    /// Field 90: the original MTI, STAN and transmission time (the acquirer id and forwarding
    /// id that follow are not checked).
    struct OriginalData: Sendable, Equatable {
        let mti: String
        let stan: String
        let transmission: String

        init?(_ field: String?) {
            guard let field, field.utf8.count == 42 else { return nil }
            let digits = Array(field)
            mti = String(digits[0..<4])
            stan = String(digits[4..<10])
            transmission = String(digits[10..<20])
        }
    }

    /// A 12-digit amount in paise; nil when absent, zero or not digits.
    static func amount(_ field: String?) -> Int64? {
        guard let field, let value = Int64(field), value > 0, Amounts.isAcceptable(value) else { return nil }
        return value
    }

    /// The fields an answer carries (docs/CARDS.md §2's table), copied from the request.
    static func echoed(forResponse mti: String) -> [Int] {
        switch mti {
        case "0810": [7, 11, 70]
        case "0110", "0210": [3, 4, 7, 11, 37, 41, 42, 49]
        default: [7, 11, 37]  // 0410, 0430
        }
    }

    /// The answer to `request` with `code` in field 39, the request's fields echoed, its `PI`
    /// and `RI` back in field 48, and `authCode` in field 38 when approved. Nil for an MTI that
    /// has no answer (an answer sent to the acquirer).
    static func answer(to request: ISO8583Message, code: String, authCode: String? = nil) -> ISO8583Message? {
        guard let mti = request.responseMTI, ["0810", "0110", "0210", "0410", "0430"].contains(mti)
        else { return nil }
        var answer = ISO8583Message(mti: mti)
        for field in echoed(forResponse: mti) { answer[field] = request[field] }
        answer[39] = code
        if mti != "0810" {
            let tags = self.tags(request[48]) ?? [:]
            answer[48] = field48([("PI", tags["PI"]), ("RI", tags["RI"])])
        }
        if code == Code.approved, mti == "0110" || mti == "0210" { answer[38] = authCode }
        return answer
    }
}
