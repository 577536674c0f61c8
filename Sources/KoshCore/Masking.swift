/// Masks personal data before it reaches a log line or a stored log (DESIGN.md §3.7, §8).
/// Pure and total: any input gives a masked output, never the input back when it is long
/// enough to identify someone.
public enum Masking {
    /// A phone number: the first two and the last two digits stay, every other digit becomes
    /// `*` (`9123456789` → `91******89`; only digits are shown). Four digits or fewer: all masked.
    public static func phone(_ value: String) -> String {
        let digits = value.filter(\.isASCIIDigit)
        guard digits.count > 4 else { return String(repeating: "*", count: digits.count) }
        return String(digits.prefix(2)) + String(repeating: "*", count: digits.count - 4) + String(digits.suffix(2))
    }

    /// An email address: the first two characters of the local part, then `***`, then the
    /// domain (`gaurav.kumar@example.com` → `ga***@example.com`). No `@`: `***`.
    public static func email(_ value: String) -> String {
        // By code point, not by character: an "@" followed by a combining mark or a skin-tone
        // modifier is one character, and must still split the address.
        let scalars = value.unicodeScalars
        guard let at = scalars.lastIndex(of: "@") else { return "***" }
        let local = scalars[..<at]
        return String(String.UnicodeScalarView(local.prefix(local.count > 2 ? 2 : 1))) + "***" + String(String.UnicodeScalarView(scalars[at...]))
    }

    /// A one-time password: never shown.
    public static func otp(_ value: String) -> String { String(repeating: "*", count: max(value.count, 1)) }

    /// A recipient of any channel: an email when it has an `@`, else a phone number when it is
    /// digits, else a device token (its last four characters).
    public static func recipient(_ value: String) -> String {
        if value.unicodeScalars.contains("@") { return email(value) }
        if !value.isEmpty && value.allSatisfy({ $0.isASCIIDigit || $0 == "+" || $0 == "-" || $0 == " " }) { return phone(value) }
        return value.count > 4 ? "***" + String(value.suffix(4)) : "***"
    }

    /// Masks every email address, phone number (10 or more digits) and OTP (4–9 digits)
    /// in free text, e.g. an SMTP server's reply or a provider's error.
    public static func text(_ value: String) -> String {
        value.split(separator: " ", omittingEmptySubsequences: false).map { word -> String in
            let token = String(word)
            let trimmed = token.trimming("<>,;:()[]\"'.")
            if trimmed.unicodeScalars.contains("@") && trimmed.count > 2 {
                return token.replacing(trimmed, with: email(trimmed), maxReplacements: 1)
            }
            if trimmed.count >= 4 && trimmed.allSatisfy({ $0.isASCIIDigit || $0 == "+" }) {
                let digits = trimmed.filter(\.isASCIIDigit).count
                return token.replacing(trimmed, with: digits >= 10 ? phone(trimmed) : otp(trimmed), maxReplacements: 1)
            }
            return token
        }.joined(separator: " ")
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

extension String {
    fileprivate func trimming(_ set: String) -> String {
        var s = Substring(self)
        while let first = s.first, set.contains(first) { s.removeFirst() }
        while let last = s.last, set.contains(last) { s.removeLast() }
        return String(s)
    }
}
