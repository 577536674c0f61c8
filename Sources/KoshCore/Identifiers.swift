import Synchronization
/// Public identifiers look like Razorpay's: a prefix, an underscore and 14 base62 characters.
public enum IDPrefix: String, Sendable, CaseIterable {
    case merchant = "mer"
    case order = "order"
    case payment = "pay"
    case refund = "rfnd"
    case journalEntry = "jrnl"
    case paymentEvent = "evt"
    case attempt = "patt"
    case card = "card"
    case customer = "cust"
    case token = "token"
    case downtime = "down"
    case webhook = "wh"
    case webhookDelivery = "whdl"
    case notification = "ntf"
    case qrCode = "qr"
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
        // One 64-bit draw covers the 6 random characters (62^6 < 2^36): one getrandom, not six.
        return format(prefix, millis: millis, random: (generator.next() >> 28) % randomSpace)
    }

    /// 62^6: the values of the random part.
    static let randomSpace: UInt64 = 56_800_235_584

    /// `prefix_` + `millis` in `timeLength` base62 digits + `random` in the rest, most
    /// significant digit first.
    static func format(_ prefix: IDPrefix, millis: Int64, random: UInt64) -> String {
        var digits = [Character](repeating: "0", count: randomLength)
        var rest = UInt64(millis)
        for i in stride(from: timeLength - 1, through: 0, by: -1) {
            digits[i] = alphabet[Int(rest % 62)]
            rest /= 62
        }
        rest = random
        for i in stride(from: randomLength - 1, through: timeLength, by: -1) {
            digits[i] = alphabet[Int(rest % 62)]
            rest /= 62
        }
        var out = prefix.rawValue + "_"
        out.reserveCapacity(out.utf8.count + randomLength)
        out.append(contentsOf: digits)
        return out
    }

    /// Like `make`, but every ID this process makes with it sorts after the one before: in the
    /// same millisecond (or if the clock stepped back) the previous random part plus one is
    /// used, so records written in one millisecond — a payment's events in one transaction —
    /// read back in the order they were made. A fresh millisecond starts from a fresh random
    /// part, so IDs stay unique across processes as `make`'s do.
    public static func makeOrdered(_ prefix: IDPrefix, millis: Int64) -> String {
        precondition(millis >= 0)
        let (at, random) = orderedState.withLock { state -> (Int64, UInt64) in
            if millis > state.millis {
                var generator = SystemRandomNumberGenerator()
                // The upper half of the space, with room to count up within the millisecond.
                state = (millis, randomSpace / 2 + (generator.next() >> 29) % (randomSpace / 4))
            } else if state.random + 1 < randomSpace {
                state.random += 1
            } else {
                state = (state.millis + 1, 0)
            }
            return (state.millis, state.random)
        }
        return format(prefix, millis: at, random: random)
    }

    private static let orderedState = OrderedIDState()

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

/// The last ordered ID's millisecond and random part, behind a lock.
final class OrderedIDState: Sendable {
    private let state = Mutex<(millis: Int64, random: UInt64)>((-1, 0))

    func withLock<T>(_ body: (inout (millis: Int64, random: UInt64)) -> T) -> T {
        state.withLock { body(&$0) }
    }
}

/// A typed identifier: `ID<Payment>` cannot be passed where an `ID<Refund>` is expected. The
/// raw text (`pay_…`) is what the API, the rails and the database see.
public struct ID<Entity>: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringInterpolation {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    public var description: String { rawValue }

    public static func < (a: ID, b: ID) -> Bool { a.rawValue < b.rawValue }
}
