/// A moment as Unix time in milliseconds (what the clock reads, what schedules use).
public struct UnixMillis: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    public var value: Int64
    public init(_ value: Int64) { self.value = value }
    public init(integerLiteral value: Int64) { self.value = value }

    /// The whole second it falls in (what the API shows as `created_at`).
    public var seconds: UnixSeconds { UnixSeconds(value / 1000) }

    /// `millis` later (earlier when negative).
    public static func + (moment: UnixMillis, millis: Int64) -> UnixMillis { UnixMillis(moment.value + millis) }
    public static func - (moment: UnixMillis, millis: Int64) -> UnixMillis { UnixMillis(moment.value - millis) }
    /// The milliseconds from `b` to `a`.
    public static func - (a: UnixMillis, b: UnixMillis) -> Int64 { a.value - b.value }
    public static func < (a: UnixMillis, b: UnixMillis) -> Bool { a.value < b.value }

    public var description: String { "\(value) ms" }
}

/// A moment as Unix time in whole seconds (Razorpay's `created_at`, `captured_at`, …).
public struct UnixSeconds: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    public var value: Int64
    public init(_ value: Int64) { self.value = value }
    public init(integerLiteral value: Int64) { self.value = value }

    /// The start of this second, in milliseconds.
    public var millis: UnixMillis { UnixMillis(value * 1000) }

    public static func < (a: UnixSeconds, b: UnixSeconds) -> Bool { a.value < b.value }

    public var description: String { "\(value) s" }
}

extension KoshClock {
    /// The clock's time, typed.
    public var now: UnixMillis { UnixMillis(nowMillis()) }
}
