import KoshCore
import KoshRandom
import Logging
import Metrics
import Synchronization

/// Live mode's connectors with their routes, circuit breakers, success windows and
/// downtime history. The decisions are KoshCore's pure `RoutePlanner` and `CircuitBreaker`;
/// this type holds their state for one process (each node learns on its own).
public final class LiveRails: LiveRouting {
    struct State {
        var breakers: [String: CircuitBreaker]
        var windows: [String: SuccessWindow]
        var downtimes: [Downtime] = []
        var random: SplitMix64
    }

    let connectors: [String: any PaymentRail]
    public let connectorNames: [String]
    let routes: [RouteProfile]
    let routing: RoutingPolicy
    let clock: any KoshClock
    let logger: Logger
    let state: Mutex<State>
    let metrics: any MetricsFactory
    /// Downtimes kept in memory (newest).
    static let downtimeHistory = 100

    public init(connectors: [any PaymentRail], routes: [RouteProfile], breakerPolicy: CircuitBreakerPolicy = CircuitBreakerPolicy(),
                routing: RoutingPolicy = RoutingPolicy(), clock: any KoshClock = SystemClock(), seed: UInt64? = nil,
                logger: Logger = Logger(label: "kosh.rails"), metrics: any MetricsFactory = MetricsSystem.factory) {
        self.metrics = metrics
        var byName: [String: any PaymentRail] = [:]
        for connector in connectors { byName[connector.name] = connector }
        self.connectors = byName
        self.connectorNames = connectors.map(\.name)
        self.routes = routes
        self.routing = routing
        self.clock = clock
        self.logger = logger
        var breakers: [String: CircuitBreaker] = [:]
        var windows: [String: SuccessWindow] = [:]
        for connector in connectors {
            breakers[connector.name] = CircuitBreaker(policy: breakerPolicy)
            windows[connector.name] = SuccessWindow()
        }
        var system = SystemRandomNumberGenerator()
        self.state = Mutex(State(breakers: breakers, windows: windows, random: SplitMix64(seed: seed ?? system.next())))
        for connector in connectors { breakerGauge(connector.name).record(0) }
    }

    /// kosh_circuit_breaker_state{connector}: 0 closed, 1 half-open, 2 open.
    func breakerGauge(_ connector: String) -> Gauge {
        Gauge(label: "kosh_circuit_breaker_state", dimensions: [("connector", connector)], factory: metrics)
    }

    static func gaugeValue(_ state: CircuitState) -> Int {
        switch state {
        case .closed: 0
        case .halfOpen: 1
        case .open: 2
        }
    }

    public func plan(_ request: RoutingRequest) -> [RouteChoice] {
        let now = clock.nowMillis()
        return state.withLock { state in
            let available = Set(state.breakers.filter { $0.value.isAvailable(now: now) }.map(\.key))
            return RoutePlanner.plan(request, routes: routes, stats: state.windows, available: available, policy: routing,
                                     draw: state.random.next())
        }
    }

    public func connector(named name: String) -> (any PaymentRail)? { connectors[name] }

    public func acquire(_ connector: String) -> Bool {
        let now = clock.nowMillis()
        return state.withLock { state in
            guard var breaker = state.breakers[connector] else { return false }
            let (allowed, transition) = breaker.allow(now: now)
            state.breakers[connector] = breaker
            if let transition { note(transition, connector, &state) }
            return allowed
        }
    }

    /// Counts every try the connectors' HTTP client makes (retries included) in the breakers.
    public func listen(to http: UpstreamHTTP) {
        http.observe { [weak self] connector, failure in self?.recordCall(connector, failure: failure) }
    }

    public func recordCall(_ connector: String, failure: Bool) {
        Counter(label: "kosh_rail_calls_total", dimensions: [("connector", connector), ("result", failure ? "failure" : "ok")],
                factory: metrics).increment()
        let now = clock.nowMillis()
        state.withLock { state in
            guard var breaker = state.breakers[connector] else { return }
            let transition = breaker.record(failure: failure, now: now)
            state.breakers[connector] = breaker
            if let transition { note(transition, connector, &state) }
        }
    }

    public func recordOutcome(_ connector: String, success: Bool) {
        Counter(label: "kosh_rail_payment_outcomes_total", dimensions: [("connector", connector), ("outcome", success ? "authorized" : "failed")],
                factory: metrics).increment()
        state.withLock { state in state.windows[connector]?.record(success: success) }
    }

    /// Opens a downtime when a breaker opens from closed; resolves it when it closes.
    private func note(_ transition: CircuitTransition, _ connector: String, _ state: inout State) {
        logger.warning("circuit breaker \(transition.from.rawValue) → \(transition.to.rawValue)", metadata: ["connector": "\(connector)"])
        breakerGauge(connector).record(Self.gaugeValue(transition.to))
        if transition.to == .open {
            Counter(label: "kosh_circuit_breaker_opened_total", dimensions: [("connector", connector)], factory: metrics).increment()
        }
        let seconds = transition.atMillis / 1000
        switch transition.to {
        case .open where !state.downtimes.contains(where: { $0.connector == connector && $0.end == nil }):
            state.downtimes.insert(Downtime(id: Identifiers.make(.downtime, millis: transition.atMillis), connector: connector, method: .upi,
                                            begin: seconds, severity: "high", createdAt: seconds, updatedAt: seconds), at: 0)
            if state.downtimes.count > Self.downtimeHistory { state.downtimes.removeLast() }
        case .closed:
            if let index = state.downtimes.firstIndex(where: { $0.connector == connector && $0.end == nil }) {
                state.downtimes[index].end = seconds
                state.downtimes[index].updatedAt = seconds
            }
        default:
            break
        }
    }

    public func downtimes() -> [Downtime] { state.withLock { $0.downtimes } }

    /// Breaker state per connector, for operators and tests.
    public func breakerStates() -> [String: CircuitState] {
        state.withLock { state in state.breakers.mapValues(\.state) }
    }

    public func lookup(vpa: String) async throws -> VPALookup {
        guard let upi = connectors["upi_switch"] else { throw KoshError.badRequest("No UPI switch is configured") }
        return try await upi.lookup(vpa: vpa)
    }

    /// The sandbox's three upstreams with their fees (docs/SANDBOX.md), over one HTTP client.
    public static func sandboxConnectors(http: UpstreamHTTP) -> (connectors: [any PaymentRail], routes: [RouteProfile]) {
        let connectors: [any PaymentRail] = [UPISwitchConnector(http: http), AlphaPayConnector(http: http), BetaPayConnector(http: http),
                                             RedirectConnector.netbanking(http: http), RedirectConnector.wallets(http: http)]
        let routes = [
            // NPCI caps a UPI payment at ₹1,00,000; the aggregators take larger ones (their own rules).
            RouteProfile(connector: "upi_switch", methods: [.upi], flows: [.collect, .intent], amountRange: 100...10_000_000,
                         feeBasisPoints: 30, fixedFee: 0),
            RouteProfile(connector: "alphapay", methods: [.upi], flows: [.collect], amountRange: 100...AmountLimits.maximum,
                         feeBasisPoints: 180, fixedFee: 0),
            RouteProfile(connector: "betapay", methods: [.upi], flows: [.collect], amountRange: 100...AmountLimits.maximum,
                         feeBasisPoints: 150, fixedFee: 200),
            // Netbanking and wallets: one route each (the banks' and providers' own, docs/REDIRECT_METHODS.md).
            RouteProfile(connector: "netbanking", methods: [.netbanking], flows: [.collect], amountRange: 100...AmountLimits.maximum,
                         feeBasisPoints: 150, fixedFee: 0),
            RouteProfile(connector: "wallets", methods: [.wallet], flows: [.collect], amountRange: 100...RedirectProviders.walletCap,
                         feeBasisPoints: 190, fixedFee: 0),
        ]
        return (connectors, routes)
    }
}
