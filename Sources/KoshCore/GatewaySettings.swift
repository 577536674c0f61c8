/// When Kosh asks a rail again, times a payment out, watches for a late authorisation and
/// sends a refund again: the schedule every payment and refund in flight follows.
public struct GatewaySettings: Sendable {
    /// How long after submission to ask the rail first (ms).
    public var firstCheckAfterMillis: Int64
    /// Interval of status checks while a payment is pending (ms).
    public var checkIntervalMillis: Int64
    /// A payment still `created` this long after creation was never handed to the rail
    /// (the server stopped in between); the janitor submits it (ms).
    public var submitGraceMillis: Int64
    /// Poll every `checkIntervalMillis` for this long after submission, then wait for the
    /// callback and re-check only every `slowCheckIntervalMillis` (seed 003: 2 s for 30 s).
    public var pollWindowMillis: Int64
    public var slowCheckIntervalMillis: Int64
    /// A payment with no answer this long after submission is failed (timed out)…
    public var pendingTimeoutMillis: Int64
    /// …and still watched this long after submission, every `lateCheckIntervalMillis`, so a
    /// late authorisation is found even when its callback is lost.
    public var lateWatchMillis: Int64
    public var lateCheckIntervalMillis: Int64
    /// An attempt still `initiated` this long after it began lost its call (the server stopped
    /// mid-call): the janitor sends it again to the same route, which dedupes by payment id (ms).
    public var resendInitiationAfterMillis: Int64 = 10_000
    /// A refund the rail did not settle (no answer, still pending, or an auto-refund it
    /// refused) is sent again after these delays, the last repeating: a refund stuck at one
    /// rail neither hammers it nor keeps newer refunds waiting (the janitor takes due ones first).
    public var refundRetryDelaysMillis: [Int64] = [5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000]
    /// Kosh's own address as customers' browsers and the rails reach it (no trailing slash):
    /// where a bank or wallet sends the browser back.
    public var publicBaseURL = "http://127.0.0.1:8080"

    /// When to send a refund again after its `attempts`-th unsettled try (1-based).
    public func nextRefundAttempt(attempts: Int64, now: UnixMillis) -> UnixMillis {
        let delays = refundRetryDelaysMillis.isEmpty ? [5_000] : refundRetryDelaysMillis
        return now + delays[Int(min(max(attempts, 1), Int64(delays.count))) - 1]
    }

    public init(firstCheckAfterMillis: Int64 = 1_000, checkIntervalMillis: Int64 = 2_000, submitGraceMillis: Int64 = 5_000,
                pollWindowMillis: Int64 = 30_000, slowCheckIntervalMillis: Int64 = 60_000, pendingTimeoutMillis: Int64 = 900_000,
                lateWatchMillis: Int64 = 86_400_000, lateCheckIntervalMillis: Int64 = 300_000) {
        self.firstCheckAfterMillis = firstCheckAfterMillis
        self.checkIntervalMillis = checkIntervalMillis
        self.submitGraceMillis = submitGraceMillis
        self.pollWindowMillis = pollWindowMillis
        self.slowCheckIntervalMillis = slowCheckIntervalMillis
        self.pendingTimeoutMillis = pendingTimeoutMillis
        self.lateWatchMillis = lateWatchMillis
        self.lateCheckIntervalMillis = lateCheckIntervalMillis
    }

    /// When to ask the rail next about a payment submitted at `submittedAt` that is still
    /// pending at `now`; nil means it has waited long enough and times out now.
    public func nextPendingCheck(submittedAt: UnixMillis, now: UnixMillis) -> UnixMillis? {
        let age = now - submittedAt
        guard age < pendingTimeoutMillis else { return nil }
        let next = now + (age < pollWindowMillis ? checkIntervalMillis : slowCheckIntervalMillis)
        return Swift.min(next, submittedAt + pendingTimeoutMillis)
    }

    /// When to look again for a late authorisation of a timed-out payment; nil: stop watching.
    public func nextLateCheck(submittedAt: UnixMillis, now: UnixMillis) -> UnixMillis? {
        now - submittedAt < lateWatchMillis ? now + lateCheckIntervalMillis : nil
    }
}
