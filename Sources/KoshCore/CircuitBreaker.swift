/// When a connector's breaker opens and how it recovers (seed 003: stop calling when at
/// least half the calls in a window fail; probe while half-open).
public struct CircuitBreakerPolicy: Sendable, Hashable {
    /// Length of the sliding window of outcomes (ms).
    public var windowMillis: Int64
    /// Fewer calls than this in the window never open the breaker.
    public var minimumCalls: Int
    /// Open when failures × 100 ≥ calls × this (integer percent).
    public var failureRatePercent: Int
    /// How long an open breaker refuses calls before it lets probes through (ms).
    public var openMillis: Int64
    /// Probes allowed at once while half-open; this many successes in a row close it.
    public var halfOpenProbes: Int

    public init(windowMillis: Int64 = 30_000, minimumCalls: Int = 10, failureRatePercent: Int = 50,
                openMillis: Int64 = 15_000, halfOpenProbes: Int = 3) {
        precondition(windowMillis >= 10 && minimumCalls >= 1 && (1...100).contains(failureRatePercent)
                     && openMillis >= 0 && halfOpenProbes >= 1)
        self.windowMillis = windowMillis
        self.minimumCalls = minimumCalls
        self.failureRatePercent = failureRatePercent
        self.openMillis = openMillis
        self.halfOpenProbes = halfOpenProbes
    }
}

public enum CircuitState: String, Sendable, Hashable {
    case closed, open, halfOpen = "half_open"
}

/// A change of breaker state, for the downtime history and metrics.
public struct CircuitTransition: Sendable, Hashable {
    public let from: CircuitState
    public let to: CircuitState
    public let atMillis: Int64
}

/// A circuit breaker as a plain value over a clock the caller passes in. Outcomes are
/// counted in ten buckets across the window, so memory is constant however busy the
/// connector is.
public struct CircuitBreaker: Sendable, Hashable {
    public let policy: CircuitBreakerPolicy
    public private(set) var state: CircuitState = .closed
    /// When the breaker last opened (ms); meaningful while open or half-open.
    public private(set) var openedAtMillis: Int64 = 0
    private var probesInFlight = 0
    private var probeSuccesses = 0
    private var buckets: [Bucket]

    static let bucketCount = 10

    struct Bucket: Sendable, Hashable {
        var start: Int64 = .min
        var calls = 0
        var failures = 0
    }

    public init(policy: CircuitBreakerPolicy = CircuitBreakerPolicy()) {
        self.policy = policy
        self.buckets = Array(repeating: Bucket(), count: Self.bucketCount)
    }

    var bucketMillis: Int64 { max(1, policy.windowMillis / Int64(Self.bucketCount)) }

    /// Calls and failures in the window ending at `now`.
    public func windowCounts(now: Int64) -> (calls: Int, failures: Int) {
        var calls = 0, failures = 0
        for bucket in buckets where bucket.start != .min && bucket.start > now - policy.windowMillis {
            calls += bucket.calls
            failures += bucket.failures
        }
        return (calls, failures)
    }

    /// Whether a call may go out now. A half-open breaker lets `halfOpenProbes` calls through
    /// at a time; a caller that was allowed must report the outcome with `record`.
    public mutating func allow(now: Int64) -> (allowed: Bool, transition: CircuitTransition?) {
        switch state {
        case .closed:
            return (true, nil)
        case .open:
            guard now >= openedAtMillis + policy.openMillis else { return (false, nil) }
            state = .halfOpen
            probesInFlight = 1
            probeSuccesses = 0
            return (true, CircuitTransition(from: .open, to: .halfOpen, atMillis: now))
        case .halfOpen:
            guard probesInFlight < policy.halfOpenProbes else { return (false, nil) }
            probesInFlight += 1
            return (true, nil)
        }
    }

    /// Whether a call would be allowed, without taking a probe slot.
    public func isAvailable(now: Int64) -> Bool {
        switch state {
        case .closed: true
        case .open: now >= openedAtMillis + policy.openMillis
        case .halfOpen: probesInFlight < policy.halfOpenProbes
        }
    }

    /// Records the outcome of a call. `failure` means the connector itself failed (timeout,
    /// 5xx, refused connection) — not that the payer declined.
    public mutating func record(failure: Bool, now: Int64) -> CircuitTransition? {
        let index = Int((now / bucketMillis) % Int64(Self.bucketCount))
        let start = now - now % bucketMillis
        if buckets[index].start != start { buckets[index] = Bucket(start: start) }
        buckets[index].calls += 1
        if failure { buckets[index].failures += 1 }

        switch state {
        case .closed:
            let (calls, failures) = windowCounts(now: now)
            if calls >= policy.minimumCalls && failures * 100 >= calls * policy.failureRatePercent {
                return open(now: now, from: .closed)
            }
            return nil
        case .halfOpen:
            probesInFlight = max(0, probesInFlight - 1)
            if failure { return open(now: now, from: .halfOpen) }
            probeSuccesses += 1
            guard probeSuccesses >= policy.halfOpenProbes else { return nil }
            state = .closed
            buckets = Array(repeating: Bucket(), count: Self.bucketCount)
            return CircuitTransition(from: .halfOpen, to: .closed, atMillis: now)
        case .open:
            // A call allowed before the breaker opened finished late; it changes nothing.
            return nil
        }
    }

    private mutating func open(now: Int64, from: CircuitState) -> CircuitTransition {
        state = .open
        openedAtMillis = now
        probesInFlight = 0
        probeSuccesses = 0
        return CircuitTransition(from: from, to: .open, atMillis: now)
    }
}
