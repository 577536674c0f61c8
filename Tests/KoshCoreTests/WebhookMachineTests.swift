import KoshCore
import Testing

@Suite("Webhook delivery machine")
struct WebhookMachineTests {
    static let schedule = WebhookRetrySchedule(retryDelaysMillis: [60_000, 300_000, 1_800_000, 7_200_000, 21_600_000, 86_400_000])

    @Test("failures follow the schedule, then the delivery dies")
    func scheduleThenDead() throws {
        var machine = WebhookDeliveryMachine()
        var now: Int64 = 1_000
        for delay in Self.schedule.retryDelaysMillis {
            #expect(try machine.attempted(success: false, nowMillis: now, schedule: Self.schedule) == .retry(atMillis: now + delay))
            now += delay
        }
        #expect(try machine.attempted(success: false, nowMillis: now, schedule: Self.schedule) == .dead)
        #expect(machine.state == .dead)
        #expect(machine.attempts == 7)
        #expect(throws: WebhookDeliveryMachine.TransitionError.self) { try machine.attempted(success: true, nowMillis: now, schedule: Self.schedule) }
    }

    @Test("a 2xx delivers; a delivered delivery takes no more attempts until redelivered")
    func deliveredThenRedelivered() throws {
        var machine = WebhookDeliveryMachine()
        #expect(try machine.attempted(success: false, nowMillis: 0, schedule: Self.schedule) == .retry(atMillis: 60_000))
        #expect(try machine.attempted(success: true, nowMillis: 60_000, schedule: Self.schedule) == .delivered)
        #expect(machine.state == .delivered)
        #expect(throws: WebhookDeliveryMachine.TransitionError.self) { try machine.attempted(success: true, nowMillis: 0, schedule: Self.schedule) }
        machine.redeliver()
        #expect(machine == WebhookDeliveryMachine(state: .pending, attempts: 0))
    }
}
