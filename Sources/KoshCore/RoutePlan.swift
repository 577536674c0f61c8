/// Failover as a value: the routes the router chose for one payment, in order, and which of
/// them is being tried. After each try it answers whether to wait for the rail, try the next
/// route, or fail the payment. The next route is tried only when the last one surely did
/// nothing (it was unavailable, or its breaker was open); an answer that never came leaves
/// the payment waiting on that route, because the payer may have been charged there.
public struct RoutePlan: Sendable, Hashable {
    public let routes: [RouteChoice]
    /// The index of the route being tried.
    public private(set) var position: Int

    public init(routes: [RouteChoice], position: Int = 0) {
        self.routes = routes
        self.position = position
    }

    /// The route being tried; nil for a plan with no route at all.
    public var current: RouteChoice? { routes.indices.contains(position) ? routes[position] : nil }

    /// What one route did with the payment.
    public enum Outcome: Sendable, Hashable {
        case accepted(reference: String, link: String?)
        case rejected(PaymentFailure)
        /// It could not take the payment and surely did nothing.
        case unavailable(String)
        /// Its breaker was open: never sent.
        case skipped
        /// No answer (timeout, broken connection): the payer may have been charged.
        case unknown(String)

        public init(_ initiation: RailInitiation) {
            switch initiation {
            case .accepted(let reference, let link): self = .accepted(reference: reference, link: link)
            case .rejected(let failure): self = .rejected(failure)
            case .unavailable(let reason): self = .unavailable(reason)
            }
        }

        /// Whether it tells against the route's success rate.
        public var countsAsRouteFailure: Bool {
            if case .unavailable = self { return true }
            return false
        }
    }

    public enum Decision: Sendable, Hashable {
        /// The route has the payment: wait for its answer (status checks or a callback).
        case wait
        case tryNext(RouteChoice)
        case fail(PaymentFailure)
    }

    /// The decision after the current route's outcome; moves to the next route when it says so.
    public mutating func decide(after outcome: Outcome) -> Decision {
        switch outcome {
        case .accepted, .unknown:
            return .wait
        case .rejected(let failure):
            return .fail(failure)
        case .unavailable, .skipped:
            guard position + 1 < routes.count else { return .fail(.noRoute) }
            position += 1
            return .tryNext(routes[position])
        }
    }
}

extension PaymentFailure {
    /// No route could take the payment.
    public static var noRoute: PaymentFailure {
        PaymentFailure(code: "GATEWAY_ERROR", description: "Payment failed because no payment route is available right now. Please try again.",
                       source: FailureSource.gateway.rawValue, step: "payment_initiation", reason: "gateway_technical_error")
    }

    /// The rail gave no final answer within the pending timeout.
    public static var timedOut: PaymentFailure {
        PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment was unsuccessful as it was not completed in time.",
                       source: FailureSource.customer.rawValue, step: "payment_authentication", reason: "payment_timed_out")
    }

    /// Who the failure is attributed to, when it is one of Razorpay's sources.
    public var sourceKind: FailureSource? { FailureSource(rawValue: source) }

    /// A payer's "no" (or a payer who never answered) says nothing about the route.
    public var countsAgainstRoute: Bool { sourceKind != .customer }
}

/// Razorpay's `error.source`: who a failure is attributed to.
public enum FailureSource: String, Sendable, Hashable, CaseIterable {
    case customer, business, gateway, bank, issuer
    case `internal`
}

extension PaymentAttempt {
    /// Records what the route did with the payment. `settled`: a callback already recorded
    /// the final word on this attempt while the call was out; that word stands.
    public mutating func record(_ outcome: RoutePlan.Outcome, latencyMillis: Int64, at now: UnixMillis) {
        let settled = status != .initiated
        self.latencyMillis = latencyMillis
        updatedAt = now
        switch outcome {
        case .accepted(let reference, _):
            if !settled { status = .accepted }
            upstreamReference = upstreamReference ?? reference
        case .rejected(let failure):
            status = .rejected
            errorCode = failure.reason
            errorDescription = failure.description
        case .unavailable(let reason):
            guard !settled else { return }
            status = .unavailable
            errorDescription = String(reason.prefix(500))
        case .unknown(let reason):
            guard !settled else { return }
            status = .unknown
            errorDescription = String(reason.prefix(500))
        case .skipped:
            status = .skipped
            errorDescription = "circuit breaker open"
        }
    }

    /// Records the final word on the attempt (from the rail's answer or a timeout).
    public mutating func settle(_ status: Status, reference: String?, failure: PaymentFailure?, at now: UnixMillis) {
        self.status = status
        upstreamReference = upstreamReference ?? reference
        if let failure {
            errorCode = failure.reason
            errorDescription = failure.description
        }
        updatedAt = now
    }
}
