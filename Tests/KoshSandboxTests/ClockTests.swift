import Testing
@testable import KoshSandbox

/// The agenda, the manual clock and the due-work pass, without HTTP.
@Suite struct ClockTests {
    func timer(_ id: String) -> Agenda.Work { .timer(TimerEvent(epoch: 0, key: TxnKey(rail: .upiSwitch, id: id), action: .expire)) }

    func id(_ work: Agenda.Work) -> String? {
        if case .timer(let event) = work { return event.key.id }
        return nil
    }

    @Test func agendaAnswersDueWorkInDueOrderThenAddedOrder() {
        var agenda = Agenda()
        for (name, due) in [("c", 30), ("a1", 10), ("b", 20), ("a2", 10), ("d", 40), ("a3", 10)] as [(String, Int64)] {
            agenda.add(timer(name), due: due)
        }
        #expect(agenda.takeNext(dueBy: 9) == nil)
        var taken: [String] = []
        while let next = agenda.takeNext(dueBy: 30) { taken.append(id(next.work) ?? "?") }
        #expect(taken == ["a1", "a2", "a3", "b", "c"])
        #expect(agenda.count == 1 && agenda.nextDue == 40)
    }

    @Test func manualClockMovesOnlyWhenStepped() async throws {
        let clock = ManualSandboxClock(startingAt: 1_000)
        #expect(clock.now() == 1_000)
        #expect(try await clock.sleep(until: 2_000) == false, "a manual clock is never waited on")
        clock.advance(by: 250)
        #expect(clock.now() == 1_250)
    }

    func runtime(_ clock: ManualSandboxClock) -> SandboxRuntime {
        SandboxRuntime(secret: "s", seed: 1, clock: clock, logger: quietLogger)
    }

    func create(_ runtime: SandboxRuntime, _ id: String, payer: String, amount: Int64 = 100) throws -> TxnKey {
        let key = TxnKey(rail: .upiSwitch, id: id)
        let new = NewTransaction(key: key, mode: .collect, amount: amount, payer: try #require(VPA(payer)))
        let now = runtime.now()
        runtime.perform { world in
            guard case .created(_, let effects) = world.create(new, idempotency: .replayIfSame, now: now) else { return ((), []) }
            return ((), effects)
        }
        return key
    }

    func status(_ runtime: SandboxRuntime, _ key: TxnKey) -> TxnStatus? { runtime.withWorld { $0.transaction(key)?.status } }

    /// Stepping the clock alone changes nothing; the pass does what fell due, and only that.
    @Test func passRunsWhatFellDue() async throws {
        let clock = ManualSandboxClock()
        let runtime = runtime(clock)
        let approved = try create(runtime, "p1", payer: "success@ybl")   // decides at +300
        let ignored = try create(runtime, "p2", payer: "timeout@ybl")    // expires at +300000
        clock.advance(by: 299)
        await runtime.runDueWork()
        #expect(status(runtime, approved) == .pending)
        clock.advance(by: 1)
        #expect(status(runtime, approved) == .pending, "nothing runs until the pass")
        await runtime.runDueWork()
        #expect(status(runtime, approved) == .success)
        #expect(status(runtime, ignored) == .pending)
        clock.advance(by: 299_700)
        await runtime.runDueWork()
        #expect(status(runtime, ignored) == .expired)
        await runtime.shutdown()
    }

    /// A big step fires each timer at its own due time: ₹60,000 approved on one day counts
    /// against that day's limit even when the pass runs the next day, so ₹40,000.01 more that
    /// next day is within its limit.
    @Test func timersFireAtTheirDueTime() async throws {
        let clock = ManualSandboxClock()
        let runtime = runtime(clock)
        let first = try create(runtime, "p1", payer: "success@ybl", amount: 6_000_000)
        clock.advance(by: 86_400_000)
        await runtime.runDueWork()
        #expect(status(runtime, first) == .success)
        let second = try create(runtime, "p2", payer: "success@ybl", amount: 4_000_001)
        clock.advance(by: 300)
        await runtime.runDueWork()
        #expect(status(runtime, second) == .success)
        await runtime.shutdown()
    }

    @Test func resetDropsPendingWork() async throws {
        let clock = ManualSandboxClock()
        let runtime = runtime(clock)
        let key = try create(runtime, "p1", payer: "success@ybl")
        _ = runtime.reset(seed: 2)
        let again = try create(runtime, "p1", payer: "timeout@ybl")
        #expect(again == key)
        clock.advance(by: 300)
        await runtime.runDueWork()
        #expect(status(runtime, key) == .pending, "the decision from before the reset is gone")
        await runtime.shutdown()
    }
}
