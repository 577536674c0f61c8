/// Public identifiers look like Razorpay's: a prefix, an underscore and 14 base62 characters.
public enum IDPrefix: String, Sendable, CaseIterable {
    case merchant = "mer"
    case order = "order"
    case payment = "pay"
    case refund = "rfnd"
    case journalEntry = "jrnl"
    case paymentEvent = "evt"
    case attempt = "patt"
    case downtime = "down"
    case webhook = "wh"
    case webhookDelivery = "whdl"
    case notification = "ntf"
    case testKey = "rzp_test"
    case liveKey = "rzp_live"
}

public enum Identifiers {
    public static let randomLength = 14
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

    /// Characters of the time part: 8 base62 digits of unix milliseconds (good until year 8900).
    static let timeLength = 8

    /// A new identifier with `prefix`: 8 base62 digits of the current unix time in ms, then 6
    /// characters from the system's cryptographically secure generator. Because base62 digits
    /// here sort in byte order, IDs of one kind sort by creation time (to the millisecond).
    public static func make(_ prefix: IDPrefix, millis: Int64 = SystemClock().nowMillis()) -> String {
        var generator = SystemRandomNumberGenerator()
        return make(prefix, millis: millis, using: &generator)
    }

    public static func make<G: RandomNumberGenerator>(_ prefix: IDPrefix, millis: Int64, using generator: inout G) -> String {
        precondition(millis >= 0)
        var out = prefix.rawValue + "_"
        out.reserveCapacity(out.utf8.count + randomLength)
        var time = [Character](repeating: "0", count: timeLength)
        var rest = millis
        for i in stride(from: timeLength - 1, through: 0, by: -1) {
            time[i] = alphabet[Int(rest % 62)]
            rest /= 62
        }
        out.append(contentsOf: time)
        // One 64-bit draw covers the 6 random characters (62^6 < 2^36): one getrandom, not six.
        var random = generator.next() >> 28
        for _ in 0..<(randomLength - timeLength) {
            out.append(alphabet[Int(random % 62)])
            random /= 62
        }
        return out
    }

    /// True when `id` has the shape of an identifier with `prefix`. Used to reject obviously
    /// malformed IDs with a 400 before touching storage.
    public static func isWellFormed(_ id: String, _ prefix: IDPrefix) -> Bool {
        let head = prefix.rawValue + "_"
        guard id.hasPrefix(head) else { return false }
        let rest = id.utf8.dropFirst(head.utf8.count)
        guard rest.count == randomLength else { return false }
        return rest.allSatisfy { (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }
    }
}
