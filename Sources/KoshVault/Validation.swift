import KoshCore

/// What the vault accepts (docs/CARDS.md §1): the server, and the in-memory vault of the flow
/// tests, check input with these, so both refuse the same things with the same field names.
/// Every refusal is `CardVaultError.invalid(field:reason:)`: the field as the wire names it
/// (`number`, `expiry_month`, `expiry_year`, `name`, `cvv`, `retain_until`, `card_on_file`,
/// `take_cvv`, `body`), the reason a sentence that never quotes a number or a CVV.
public enum VaultValidation {
    public static let maximumNameLength = 100
    /// Request bodies larger than this are refused.
    public static let maximumBodyBytes = 16 * 1024
    /// `retain_until` at most this (unix seconds, year 36812): keeps the arithmetic far from overflow.
    public static let maximumRetainUntil: Int64 = 1 << 40

    /// The card, with an empty name made nil; refuses a number that is not 12–19 digits passing
    /// Luhn, a month outside 1–12, a year outside 2000–2099, an expired card, a long name.
    public static func check(_ card: VaultCard, now: UnixMillis) throws(CardVaultError) -> VaultCard {
        do {
            _ = try CardNumber(card.number)
        } catch {
            switch error {
            case .numberChecksum: throw .invalid(field: "number", reason: "The card number fails its check digit")
            default: throw .invalid(field: "number", reason: "The card number must be 12 to 19 digits")
            }
        }
        guard (1...12).contains(card.expiryMonth) else {
            throw .invalid(field: "expiry_month", reason: "The expiry month must be 1 to 12")
        }
        guard (2000...2099).contains(card.expiryYear) else {
            throw .invalid(field: "expiry_year", reason: "The expiry year must be 2000 to 2099")
        }
        guard let expiry = try? CardExpiry(month: card.expiryMonth, year: card.expiryYear) else {
            throw .invalid(field: "expiry_year", reason: "The expiry year must be 2000 to 2099")
        }
        if expiry.isExpired(at: now) {
            let thisYear = CardExpiryProbe.year(of: now)
            throw .invalid(field: card.expiryYear == thisYear ? "expiry_month" : "expiry_year", reason: "The card has expired")
        }
        var name = card.name
        if let given = name {
            if given.isEmpty {
                name = nil
            } else {
                guard given.count <= maximumNameLength else {
                    throw .invalid(field: "name", reason: "The name must be at most \(maximumNameLength) characters")
                }
                guard !given.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                    throw .invalid(field: "name", reason: "The name must not contain control characters")
                }
            }
        }
        return VaultCard(number: card.number, expiryMonth: card.expiryMonth, expiryYear: card.expiryYear, name: name)
    }

    /// A CVV is 3 or 4 digits.
    public static func checkCVV(_ cvv: String) throws(CardVaultError) {
        let bytes = Array(cvv.utf8)
        guard (3...4).contains(bytes.count), bytes.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            throw .invalid(field: "cvv", reason: "The CVV must be 3 or 4 digits")
        }
    }

    public static func checkRetention(_ retention: CardRetention) throws(CardVaultError) {
        if case .until(let seconds) = retention, !(0...maximumRetainUntil).contains(seconds.value) {
            throw .invalid(field: "retain_until", reason: "retain_until must be unix seconds from 0 to \(maximumRetainUntil)")
        }
    }

    /// The error code a refusal of `field` is answered with (docs/CARDS.md §1).
    public static func errorCode(field: String) -> String {
        switch field {
        case "number": "invalid_number"
        case "expiry_month", "expiry_year": "invalid_expiry"
        case "cvv": "invalid_cvv"
        case "name": "invalid_name"
        case "retain_until", "card_on_file": "invalid_retention"
        default: "invalid_request"
        }
    }
}

/// The UTC calendar year of a moment (to say which expiry field an expired card got wrong).
enum CardExpiryProbe {
    static func year(of moment: UnixMillis) -> Int {
        // The first expiry (December of a year) that has not passed at `moment` names its year.
        var year = 2000
        while year < 2100, let expiry = try? CardExpiry(month: 12, year: year), expiry.isExpired(at: moment) { year += 1 }
        return year
    }
}
