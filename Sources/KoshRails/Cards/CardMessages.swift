import Foundation
import KoshCore
import KoshISO8583
import Synchronization

/// The times a card message carries: field 7 in UTC (`MMDDhhmmss`), fields 12 (`hhmmss`) and
/// 13 (`MMDD`) in Indian Standard Time (UTC+05:30, no daylight saving).
struct CardMessageTime: Sendable, Hashable {
    let transmission: String
    let localTime: String
    let localDate: String

    static let istOffsetSeconds: Int64 = 5 * 3600 + 30 * 60

    init(_ moment: UnixMillis) {
        let utc = Self.civil(seconds: moment.seconds.value)
        let ist = Self.civil(seconds: moment.seconds.value + Self.istOffsetSeconds)
        transmission = Self.two(utc.month) + Self.two(utc.day) + Self.two(utc.hour) + Self.two(utc.minute) + Self.two(utc.second)
        localTime = Self.two(ist.hour) + Self.two(ist.minute) + Self.two(ist.second)
        localDate = Self.two(ist.month) + Self.two(ist.day)
    }

    static func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }

    /// Unix seconds → proleptic Gregorian date and time (Howard Hinnant's days-to-civil).
    static func civil(seconds: Int64) -> (year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64) {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day, secondOfDay / 3600, secondOfDay % 3600 / 60, secondOfDay % 60)
    }
}

/// Field 48's tagged data: `TT` + `LLL` + value, repeated.
enum CardTLV {
    /// Throws for a value over 999 characters (values such as the CAVV come from the ACS).
    static func encode(_ elements: [(tag: String, value: String)]) throws(ISO8583Error) -> String {
        var out = ""
        for (tag, value) in elements {
            precondition(tag.utf8.count == 2, "a field 48 tag is 2 characters")
            guard value.utf8.count <= 999 else { throw ISO8583Error("the field 48 element \(tag) is over 999 characters") }
            let length = String(value.utf8.count)
            out += tag + String(repeating: "0", count: 3 - length.count) + length + value
        }
        return out
    }

    /// The elements by tag; nil when the text is not well-formed.
    static func decode(_ text: String) -> [String: String]? {
        var bytes = Substring(text).utf8[...]
        var out: [String: String] = [:]
        while !bytes.isEmpty {
            guard bytes.count >= 5, let length = Int(String(decoding: bytes.dropFirst(2).prefix(3), as: UTF8.self)),
                  bytes.count >= 5 + length else { return nil }
            out[String(decoding: bytes.prefix(2), as: UTF8.self)] = String(decoding: bytes.dropFirst(5).prefix(length), as: UTF8.self)
            bytes = bytes.dropFirst(5 + length)
        }
        return out
    }
}

/// Retrieval reference numbers (field 37): 12 alphanumerics, a new one for every request —
/// the last 7 letters and digits of the payment id, then a 5-digit counter of this process.
final class RRNGenerator: Sendable {
    let counter = Mutex<Int>(0)

    init(start: Int = 0) { counter.withLock { $0 = start % 100_000 } }

    func next(for payment: ID<Payment>) -> String {
        let count = counter.withLock { value in
            value = (value + 1) % 100_000
            return value
        }
        let alphanumerics = payment.rawValue.unicodeScalars.filter { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)) }
        let tail = String(String.UnicodeScalarView(alphanumerics.suffix(7)))
        let digits = String(count)
        return String(repeating: "0", count: 7 - tail.count) + tail + String(repeating: "0", count: 5 - digits.count) + digits
    }
}

/// Builds the requests of docs/CARDS.md §2 from the payment, the card (just out of the vault)
/// and the time. Pure: the same inputs give the same message.
struct CardMessageBuilder: Sendable {
    let acquirerID: String
    let terminalID: String
    let merchantCategoryCode: String

    static func currencyCode(_ currency: Currency) -> String {
        switch currency {
        case .inr: "356"
        }
    }

    /// Field 4: the amount in minor units, 12 digits.
    static func amount(_ amount: Int64) throws -> String {
        guard amount >= 0, amount <= 999_999_999_999 else { throw KoshError.badRequest("The amount does not fit the card network's 12 digits") }
        let digits = String(amount)
        return String(repeating: "0", count: 12 - digits.count) + digits
    }

    /// Field 14: YYMM.
    static func expiry(_ card: VaultCard) -> String {
        CardMessageTime.two(Int64(card.expiryYear % 100)) + CardMessageTime.two(Int64(card.expiryMonth))
    }

    /// Field 42: the merchant id's last 15 characters (printable ASCII).
    static func cardAcceptorID(_ merchant: ID<Merchant>) -> String {
        String(merchant.rawValue.unicodeScalars.filter { (0x20...0x7E).contains($0.value) }.map(Character.init).suffix(15))
    }

    /// Field 43: the merchant's name as printable ASCII (accents dropped, other characters
    /// left out), cut or space-padded to 40 characters.
    static func cardAcceptorName(_ name: String) -> String {
        let ascii = String(name.decomposedStringWithCompatibilityMapping.unicodeScalars
            .filter { (0x20...0x7E).contains($0.value) }.map(Character.init).prefix(40))
        return ascii + String(repeating: " ", count: 40 - ascii.count)
    }

    /// Field 90: original MTI, STAN, field 7, the acquirer id right-aligned in 11 zeros, 11 zeros.
    func originalData(mti: String, stan: String, transmission: String) -> String {
        mti + stan + transmission + String(repeating: "0", count: 11 - acquirerID.count) + acquirerID + String(repeating: "0", count: 11)
    }

    /// The fields every request carries. The card (field 2) is the 0100's alone: a capture,
    /// refund or reversal names its authorisation by field 90 and `PI`, so it needs nothing
    /// from the vault (docs/CARDS.md §2).
    func common(_ payment: CardPaymentContext, processingCode: String, amount: Int64, time: CardMessageTime,
                rrn: String) throws -> [Int: String] {
        let amount = try Self.amount(amount)
        return [3: processingCode, 4: amount, 7: time.transmission, 32: acquirerID, 37: rrn,
                41: terminalID, 42: Self.cardAcceptorID(payment.merchantID), 49: Self.currencyCode(payment.currency)]
    }

    /// 0100: the authorisation, with the CVV when the vault had one and the 3-D Secure result.
    func authorization(_ payment: CardPaymentContext, card: VaultCard, cvv: String?, authentication: CardAuthentication,
                       time: CardMessageTime, rrn: String) throws -> ISO8583Message {
        var fields = try common(payment, processingCode: "000000", amount: payment.amount, time: time, rrn: rrn)
        fields[2] = card.number
        fields[12] = time.localTime
        fields[13] = time.localDate
        fields[14] = Self.expiry(card)
        fields[18] = merchantCategoryCode
        fields[22] = "812"
        fields[25] = "59"
        fields[43] = Self.cardAcceptorName(payment.merchantName)
        var tags: [(tag: String, value: String)] = [("PI", payment.paymentID.rawValue)]
        if let cvv { tags.append(("CV", cvv)) }
        if case .authenticated(let eci, let cavv) = authentication.state {
            tags.append(("AV", cavv))
            tags.append(("EC", eci))
        }
        tags.append(("AI", authentication.id))
        fields[48] = try CardTLV.encode(tags)
        return ISO8583Message(mti: "0100", fields: fields)
    }

    /// 0200: a capture (processing code 000000) or, with `refundID`, a refund (200000) of the authorisation.
    func financial(_ payment: CardPaymentContext, amount: Int64, refundID: ID<Refund>?,
                   reference: CardAuthorizationReference, time: CardMessageTime, rrn: String) throws -> ISO8583Message {
        var fields = try common(payment, processingCode: refundID == nil ? "000000" : "200000", amount: amount, time: time, rrn: rrn)
        var tags: [(tag: String, value: String)] = [("PI", payment.paymentID.rawValue)]
        if let refundID { tags.append(("RI", refundID.rawValue)) }
        fields[48] = try CardTLV.encode(tags)
        fields[90] = originalData(mti: "0100", stan: reference.stan, transmission: reference.transmission)
        return ISO8583Message(mti: "0200", fields: fields)
    }

    /// 0400 (or the 0420 advice repeating it): the reversal of the authorisation for its whole amount.
    func reversal(_ payment: CardPaymentContext, advice: Bool, original: CardAuthorizationReference,
                  time: CardMessageTime, rrn: String) throws -> ISO8583Message {
        var fields = try common(payment, processingCode: "000000", amount: payment.amount, time: time, rrn: rrn)
        fields[48] = try CardTLV.encode([("PI", payment.paymentID.rawValue)])
        fields[90] = originalData(mti: "0100", stan: original.stan, transmission: original.transmission)
        return ISO8583Message(mti: advice ? "0420" : "0400", fields: fields)
    }
}
