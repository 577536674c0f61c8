import KoshCore
import KoshRandom
import Logging
import Metrics
import Synchronization

/// Live mode's card routing: the card connectors, each behind a circuit breaker and with a
/// window of recent outcomes, and the operator's rules. The decisions are KoshCore's pure
/// `CardRoutePlanner` and `CircuitBreaker`; this type keeps their state for one process (each
/// node learns on its own). The connectors it hands out are wrapped so that every call feeds
/// the breaker and every authorisation's answer the success window.
public final class CardRouter: CardRouting {
    struct State {
        var breakers: [String: CircuitBreaker]
        var windows: [String: SuccessWindow]
        var random: SplitMix64
    }

    public let connectorNames: [String]
    public let routes: [CardRouteProfile]
    public let rules: [CardRoutingRule]
    let policy: RoutingPolicy
    let clock: any KoshClock
    let logger: Logger
    let metrics: any MetricsFactory
    let state: Mutex<State>

    public init(connectors: [any CardConnector], routes: [CardRouteProfile], rules: [CardRoutingRule] = [],
                breakerPolicy: CircuitBreakerPolicy = CircuitBreakerPolicy(), policy: RoutingPolicy = RoutingPolicy(),
                clock: any KoshClock = SystemClock(), seed: UInt64? = nil, logger: Logger = Logger(label: "kosh.cards.routing"),
                metrics: any MetricsFactory = MetricsSystem.factory) {
        self.connectorNames = connectors.map(\.name)
        self.routes = routes
        self.rules = rules
        self.policy = policy
        self.clock = clock
        self.logger = logger
        self.metrics = metrics
        var system = SystemRandomNumberGenerator()
        self.state = Mutex(State(breakers: Dictionary(uniqueKeysWithValues: connectors.map { ($0.name, CircuitBreaker(policy: breakerPolicy)) }),
                                 windows: Dictionary(uniqueKeysWithValues: connectors.map { ($0.name, SuccessWindow()) }),
                                 random: SplitMix64(seed: seed ?? system.next())))
        // Filled last: the wrappers hold `self`.
        self.wrapped = Mutex([:])
        wrapped.withLock { wrapped in
            for connector in connectors { wrapped[connector.name] = RoutedCardConnector(inner: connector, router: self) }
        }
    }

    let wrapped: Mutex<[String: RoutedCardConnector]>

    public func plan(_ request: CardRoutingRequest) -> [RouteChoice] {
        let now = clock.nowMillis()
        return state.withLock { state in
            let available = Set(state.breakers.filter { $0.value.isAvailable(now: now) }.map(\.key))
            return CardRoutePlanner.plan(request, routes: routes, rules: rules, stats: state.windows, available: available, policy: policy,
                                         draw: state.random.next())
        }
    }

    public func takes(_ request: CardRoutingRequest) -> Bool {
        routes.contains { $0.networks.contains(request.network) && $0.amountRange.contains(request.amount) }
    }

    public func connector(named name: String) -> (any CardConnector)? {
        wrapped.withLock { $0[name] }
    }

    /// Takes a breaker slot for a new payment's first call; false when the breaker refuses calls now.
    func acquire(_ connector: String) -> Bool {
        let now = clock.nowMillis()
        return state.withLock { state in
            guard var breaker = state.breakers[connector] else { return false }
            let (allowed, transition) = breaker.allow(now: now)
            state.breakers[connector] = breaker
            if let transition { note(transition, connector) }
            return allowed
        }
    }

    /// One call to the connector: failed when it could not be carried or went unanswered.
    func recordCall(_ connector: String, failure: Bool) {
        Counter(label: "kosh_card_route_calls_total", dimensions: [("connector", connector), ("result", failure ? "failure" : "ok")],
                factory: metrics).increment()
        let now = clock.nowMillis()
        state.withLock { state in
            guard var breaker = state.breakers[connector] else { return }
            let transition = breaker.record(failure: failure, now: now)
            state.breakers[connector] = breaker
            if let transition { note(transition, connector) }
        }
    }

    /// An authorisation's answer, for the success rate.
    func recordOutcome(_ connector: String, success: Bool) {
        Counter(label: "kosh_card_route_outcomes_total", dimensions: [("connector", connector), ("outcome", success ? "approved" : "failed")],
                factory: metrics).increment()
        state.withLock { state in state.windows[connector]?.record(success: success) }
    }

    private func note(_ transition: CircuitTransition, _ connector: String) {
        logger.warning("card route circuit breaker \(transition.from.rawValue) → \(transition.to.rawValue)", metadata: ["connector": "\(connector)"])
        Gauge(label: "kosh_card_route_breaker_state", dimensions: [("connector", connector)], factory: metrics)
            .record(LiveRails.gaugeValue(transition.to))
    }

    /// Breaker state and success rate per connector, for operators and tests.
    public func status() -> [(connector: String, breaker: CircuitState, successRateBasisPoints: Int64, attempts: Int)] {
        state.withLock { state in
            connectorNames.map { name in
                (name, state.breakers[name]?.state ?? .closed, state.windows[name]?.rateBasisPoints ?? 0, state.windows[name]?.attempts ?? 0)
            }
        }
    }

    /// The sandbox's card routes (docs/CARDS.md §4): the acquirer takes every network; alphapay
    /// takes Visa, MasterCard and American Express at 1.90 % (Amex 2.90 %). The acquirer's own
    /// cost is interchange plus its fee: 1.20 % (RuPay debit 0, as the RBI's zero-MDR rule has it;
    /// Amex and Diners 2.50 %). One rule: HDFC Bank's cards stay on the acquirer, which banks
    /// with HDFC ("on us": no scheme hop, the cheapest and surest route).
    public static func sandboxRoutes(acquirer: String, aggregator: String) -> (routes: [CardRouteProfile], rules: [CardRoutingRule]) {
        let routes = [
            CardRouteProfile(connector: acquirer, networks: [.visa, .mastercard, .rupay, .amex, .diners, .maestro], feeBasisPoints: 120,
                             networkFeeBasisPoints: [.rupay: 0, .amex: 250, .diners: 250]),
            CardRouteProfile(connector: aggregator, networks: [.visa, .mastercard, .amex], feeBasisPoints: 190,
                             networkFeeBasisPoints: [.amex: 290]),
        ]
        return (routes, [CardRoutingRule(issuer: "HDFC", connector: acquirer, action: .prefer)])
    }
}

/// A connector as the router hands it out: the same calls, with the breaker and the success
/// window fed from what they did. A new payment's first call (`beginAuthentication`) takes a
/// breaker slot, and is refused with `CardRouteUnavailable` when the breaker is open.
final class RoutedCardConnector: CardConnector {
    let inner: any CardConnector
    unowned let router: CardRouter

    init(inner: any CardConnector, router: CardRouter) {
        self.inner = inner
        self.router = router
    }

    var name: String { inner.name }

    func observed<T>(_ body: () async throws -> T) async throws -> T {
        do {
            let value = try await body()
            router.recordCall(name, failure: false)
            return value
        } catch let error as KoshError where error.code.httpStatus < 500 {
            router.recordCall(name, failure: false)
            throw error
        } catch {
            router.recordCall(name, failure: true)
            throw error
        }
    }

    func beginAuthentication(_ payment: CardPaymentContext, returnURL: String) async throws -> CardAuthentication {
        guard router.acquire(name) else { throw CardRouteUnavailable(connector: name, reason: "circuit breaker open") }
        return try await observed { try await inner.beginAuthentication(payment, returnURL: returnURL) }
    }

    func sendOTP(authenticationID: String) async throws -> CardAuthentication {
        try await observed { try await inner.sendOTP(authenticationID: authenticationID) }
    }

    func verifyOTP(authenticationID: String, otp: String) async throws -> CardAuthentication {
        try await observed { try await inner.verifyOTP(authenticationID: authenticationID, otp: otp) }
    }

    func authentication(id: String) async throws -> CardAuthentication {
        try await observed { try await inner.authentication(id: id) }
    }

    func authorize(_ payment: CardPaymentContext, authentication: CardAuthentication)
        async throws -> (answer: CardNetworkAnswer, reference: CardAuthorizationReference?) {
        let result = try await observed { try await inner.authorize(payment, authentication: authentication) }
        switch result.answer {
        case .approved: router.recordOutcome(name, success: true)
        case .declined(_, let failure): if failure.countsAgainstRoute { router.recordOutcome(name, success: false) }
        case .reversedAfterTimeout, .unknown:
            router.recordCall(name, failure: true)
            router.recordOutcome(name, success: false)
        }
        return result
    }

    func resolveTimeout(_ payment: CardPaymentContext, reference: CardAuthorizationReference?) async throws -> CardNetworkAnswer {
        try await inner.resolveTimeout(payment, reference: reference)
    }

    func capture(_ payment: CardPaymentContext, amount: Int64, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer {
        try await inner.capture(payment, amount: amount, reference: reference)
    }

    func reverse(_ payment: CardPaymentContext, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer {
        try await inner.reverse(payment, reference: reference)
    }

    func refund(_ payment: CardPaymentContext, refundID: ID<Refund>, amount: Int64, reference: CardAuthorizationReference)
        async throws -> CardNetworkAnswer {
        try await inner.refund(payment, refundID: refundID, amount: amount, reference: reference)
    }
}
