import Synchronization

/// The sandbox's time, in unix milliseconds: when transactions are created, when payers answer
/// and requests expire, when callbacks go out, whether a downtime window is open, which day a
/// payer's limit counts, and the freshness of request signatures.
///
/// Injected latency and hangs (`latency_ms`, `hang_ms`) are not on this clock: they hold up an
/// HTTP answer, which only real time can do.
public protocol SandboxClock: Sendable {
    /// The time in unix milliseconds.
    func now() -> Int64

    /// Waits until the clock reads `deadline` or later and answers true; throws when cancelled.
    /// A clock that moves only when it is stepped answers false at once: nothing would wake a
    /// sleeper, so whoever steps it runs the sandbox's due work after each step.
    func sleep(until deadline: Int64) async throws -> Bool
}

/// The wall clock: the default, and what `kosh sandbox serve` runs on.
public struct SystemSandboxClock: SandboxClock {
    public init() {}

    public func now() -> Int64 { SandboxSignature.now() }

    public func sleep(until deadline: Int64) async throws -> Bool {
        let remaining = deadline - now()
        if remaining > 0 { try await Task.sleep(for: .milliseconds(remaining)) }
        return true
    }
}

/// A clock that stands still until a test steps it. The sandbox never waits on it: after each
/// step the test runs the due work itself, so a test sees every payer decision, expiry and
/// callback happen at a known point instead of sleeping for it.
public final class ManualSandboxClock: SandboxClock {
    private let time: Mutex<Int64>

    /// 2023-11-14 22:13:20 UTC, a fixed moment so runs repeat.
    public init(startingAt start: Int64 = 1_700_000_000_000) {
        time = Mutex(start)
    }

    public func now() -> Int64 { time.withLock { $0 } }

    /// Moves the clock forward by `milliseconds` (never back).
    public func advance(by milliseconds: Int64) {
        precondition(milliseconds >= 0, "a manual clock moves forward only, not by \(milliseconds) ms")
        time.withLock { $0 += milliseconds }
    }

    public func sleep(until deadline: Int64) async throws -> Bool { false }
}
