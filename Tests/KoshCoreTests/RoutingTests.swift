import KoshCore
import Testing

@Suite("Circuit breaker")
struct CircuitBreakerTests {
    let policy = CircuitBreakerPolicy(windowMillis: 10_000, minimumCalls: 10, failureRatePercent: 50, openMillis: 5_000, halfOpenProbes: 2)

    @Test func opensAtHalfFailuresAndRecoversThroughProbes() {
        var breaker = CircuitBreaker(policy: policy)
        var now: Int64 = 1_000_000
        // 9 calls, all failing: below the minimum, stays closed.
        for _ in 0..<9 { #expect(breaker.record(failure: true, now: now) == nil); now += 10 }
        #expect(breaker.state == .closed)
        // Tenth call makes 10 calls, 10 failures: opens.
        #expect(breaker.record(failure: true, now: now)?.to == .open)
        #expect(breaker.allow(now: now + 1).allowed == false)
        #expect(breaker.isAvailable(now: now + 4_999) == false)
        // After openMillis it lets probes through, two at a time.
        now += 5_000
        let first = breaker.allow(now: now)
        #expect(first.allowed && first.transition?.to == .halfOpen)
        #expect(breaker.allow(now: now).allowed)
        #expect(breaker.allow(now: now).allowed == false, "only halfOpenProbes probes at once")
        #expect(breaker.record(failure: false, now: now) == nil)
        #expect(breaker.record(failure: false, now: now)?.to == .closed)
        #expect(breaker.state == .closed)
        #expect(breaker.windowCounts(now: now).calls == 0, "closing forgets the bad window")
    }

    @Test func exactlyHalfFailingOpensIt() {
        var breaker = CircuitBreaker(policy: policy)
        for i in 0..<10 { _ = breaker.record(failure: i % 2 == 0, now: Int64(i)) }
        #expect(breaker.state == .open, "5 failures in 10 calls is 50 %: open")
        var below = CircuitBreaker(policy: policy)
        for i in 0..<10 { _ = below.record(failure: i < 4, now: Int64(i)) }
        #expect(below.state == .closed)
    }

    @Test func failedProbeReopens() {
        var breaker = CircuitBreaker(policy: policy)
        for i in 0..<10 { _ = breaker.record(failure: true, now: Int64(i)) }
        #expect(breaker.state == .open)
        #expect(breaker.allow(now: 6_000).allowed)
        #expect(breaker.record(failure: true, now: 6_001)?.to == .open)
        #expect(breaker.openedAtMillis == 6_001)
        #expect(breaker.allow(now: 6_002).allowed == false)
    }

    @Test func belowThresholdStaysClosedAndOldFailuresAge() {
        var breaker = CircuitBreaker(policy: policy)
        // 4 failures in 10 calls: 40 % < 50 %.
        for i in 0..<10 { _ = breaker.record(failure: i < 4, now: Int64(i)) }
        #expect(breaker.state == .closed)
        // The window slides: 10 s later the old failures no longer count.
        for i in 0..<10 { _ = breaker.record(failure: i < 4, now: 20_000 + Int64(i)) }
        #expect(breaker.windowCounts(now: 20_010) == (calls: 10, failures: 4))
        #expect(breaker.state == .closed)
    }
}

@Suite("Route planner")
struct RouterTests {
    static let routes = [
        RouteProfile(connector: "upi_switch", methods: [.upi], flows: [.collect, .intent], amountRange: 100...10_000_000, feeBasisPoints: 30, fixedFee: 0),
        RouteProfile(connector: "alphapay", methods: [.upi], flows: [.collect], amountRange: 100...50_000_000, feeBasisPoints: 180, fixedFee: 0),
        RouteProfile(connector: "betapay", methods: [.upi], flows: [.collect], amountRange: 100...50_000_000, feeBasisPoints: 150, fixedFee: 200),
    ]
    static let all: Set<String> = ["upi_switch", "alphapay", "betapay"]

    func window(_ successes: Int, of attempts: Int) -> SuccessWindow {
        var w = SuccessWindow(capacity: 100)
        for i in 0..<attempts { w.record(success: i < successes) }
        return w
    }

    @Test func cheapestWinsWhenRatesAreEqualAndTheRestAreFailovers() {
        let plan = RoutePlanner.plan(RoutingRequest(method: .upi, flow: .collect, amount: 100_000), routes: Self.routes, stats: [:],
                               available: Self.all, policy: RoutingPolicy(explorationPercent: 0), draw: 0)
        #expect(plan.map(\.connector) == ["upi_switch", "betapay", "alphapay"])
        #expect(plan[0].reason.hasPrefix("best score"))
        #expect(plan[1].reason.hasPrefix("failover"))
    }

    @Test func successRateBeatsCost() {
        let stats = ["upi_switch": window(60, of: 100), "alphapay": window(98, of: 100), "betapay": window(90, of: 100)]
        let plan = RoutePlanner.plan(RoutingRequest(method: .upi, flow: .collect, amount: 100_000), routes: Self.routes, stats: stats,
                               available: Self.all, policy: RoutingPolicy(explorationPercent: 0), draw: 0)
        #expect(plan.first?.connector == "alphapay")
    }

    @Test func rulesFilterByFlowAmountAndAvailability() {
        let intent = RoutePlanner.plan(RoutingRequest(method: .upi, flow: .intent, amount: 100_000), routes: Self.routes, stats: [:],
                                 available: Self.all, draw: 0)
        #expect(intent.map(\.connector) == ["upi_switch"])
        let big = RoutePlanner.plan(RoutingRequest(method: .upi, flow: .collect, amount: 20_000_000), routes: Self.routes, stats: [:],
                              available: Self.all, policy: RoutingPolicy(explorationPercent: 0), draw: 0)
        #expect(!big.map(\.connector).contains("upi_switch"))
        let down = RoutePlanner.plan(RoutingRequest(method: .upi, flow: .collect, amount: 100_000), routes: Self.routes, stats: [:],
                               available: ["alphapay"], draw: 0)
        #expect(down.map(\.connector) == ["alphapay"])
        #expect(RoutePlanner.plan(RoutingRequest(method: .card, flow: .collect, amount: 100_000), routes: Self.routes, stats: [:],
                            available: Self.all, draw: 0).isEmpty)
    }

    @Test func merchantPreferenceComesFirstAndExplorationPicksAnother() {
        let preferred = RoutePlanner.plan(RoutingRequest(method: .upi, flow: .collect, amount: 100_000, preferred: ["alphapay"]),
                                    routes: Self.routes, stats: [:], available: Self.all, draw: 5)
        #expect(preferred.map(\.connector) == ["alphapay", "upi_switch", "betapay"])
        #expect(preferred[0].reason == "merchant preference")
        let explored = RoutePlanner.plan(RoutingRequest(method: .upi, flow: .collect, amount: 100_000), routes: Self.routes, stats: [:],
                                   available: Self.all, policy: RoutingPolicy(explorationPercent: 10), draw: 105)
        #expect(explored.first?.connector == "alphapay")
        #expect(explored.first?.reason.hasPrefix("exploring") == true)
        #expect(Set(explored.map(\.connector)) == Self.all)
    }

    @Test func successWindowForgetsOldOutcomes() {
        var w = SuccessWindow(capacity: 4)
        for _ in 0..<4 { w.record(success: false) }
        for _ in 0..<4 { w.record(success: true) }
        #expect(w.attempts == 4 && w.successes == 4)
        #expect(w.rateBasisPoints == 8_333)
    }
}
