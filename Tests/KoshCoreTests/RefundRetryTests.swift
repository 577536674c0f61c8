import KoshCore
import Testing

@Suite("Refund retry schedule")
struct RefundRetryTests {
    @Test func delaysGrowThenRepeatTheLast() {
        let settings = GatewaySettings()
        let now: UnixMillis = 1_000_000
        #expect(settings.nextRefundAttempt(attempts: 1, now: now) == now + 5_000)
        #expect(settings.nextRefundAttempt(attempts: 2, now: now) == now + 30_000)
        #expect(settings.nextRefundAttempt(attempts: 6, now: now) == now + 3_600_000)
        #expect(settings.nextRefundAttempt(attempts: 500, now: now) == now + 3_600_000, "capped at an hour, never given up")
        #expect(settings.nextRefundAttempt(attempts: 0, now: now) == now + 5_000)
        var empty = settings
        empty.refundRetryDelaysMillis = []
        #expect(empty.nextRefundAttempt(attempts: 3, now: now) == now + 5_000)
    }
}
