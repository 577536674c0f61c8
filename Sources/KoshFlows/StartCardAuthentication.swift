import KoshCore

extension PaymentFlows {
    /// The authentication of a card payment, started when it has none yet, on the connector the
    /// payment was created on — or, when that one cannot start it (unreachable, refused, its
    /// breaker open), on the next route the router gives for the card. Nothing can have reached
    /// an issuer's authorisation before this succeeds (only `authorize` asks for money), so
    /// moving on is safe; each try is an attempt (`GET /v1/payments/:id/attempts`). A
    /// frictionless answer goes on to authorise; a refusal fails the payment. Answers the
    /// authentication and the connector that has it.
    func startAuthentication(_ payment: Payment, _ cardPayment: CardPayment, _ cards: CardRails)
        async throws -> (CardAuthentication, any CardConnector) {
        if let id = cardPayment.authenticationID {
            return (CardAuthentication(id: id, challengeURL: cardPayment.challengeURL, state: .challengeRequired(attemptsLeft: 0, resendsLeft: 0)),
                    try cards.connector(for: payment))
        }
        let merchant = try await store.transaction { tx in try await tx.merchant(id: payment.merchantID) }
        let request = context(payment, cardPayment, merchantName: merchant?.name ?? "Kosh merchant")
        let returnURL = cards.url("/v1/payments/\(payment.id.rawValue)/authentication/return")
        // What each route did: recorded as attempts once one has the payment (or none could).
        var tries: [(RouteChoice, RoutePlan.Outcome, Int64)] = []
        var started: (CardAuthentication, any CardConnector)?
        for choice in authenticationRoutes(payment, merchant: merchant, cards) {
            guard let connector = cards.connector(named: choice.connector) else { continue }
            let began = clock.now
            do {
                let authentication = try await connector.beginAuthentication(request, returnURL: returnURL)
                tries.append((choice, .accepted(reference: authentication.id, link: nil), clock.now - began))
                started = (authentication, connector)
                break
            } catch let error as KoshError where error.code.httpStatus < 500 {
                // The card itself is refused (the connector's 4xx): no other route will take it either.
                throw error
            } catch {
                // Kosh's own words for what went wrong (never a card detail: these errors hold none).
                let why = (error as? CustomStringConvertible)?.description ?? "\(type(of: error))"
                tries.append((choice, error is CardRouteUnavailable ? .skipped : .unavailable(why), clock.now - began))
            }
        }
        let (chosen, recorded) = (started?.0, tries)
        try await store.transaction { tx in
            // A concurrent call that started it first wins; this one's tries are not recorded.
            guard var current = try await tx.cardPayment(paymentID: payment.id, forUpdate: true), current.authenticationID == nil,
                  var locked = try await tx.payment(id: payment.id, merchantID: nil, forUpdate: true) else { return }
            var seq = Int64(try await tx.attempts(paymentID: payment.id).count)
            let now = clock.now
            for (choice, outcome, latency) in recorded {
                seq += 1
                var attempt = newAttempt(locked, seq: seq, choice, now: now)
                attempt.record(outcome, latencyMillis: latency, at: now)
                try await tx.insertAttempt(attempt)
            }
            guard let authentication = chosen, let connector = recorded.last?.0.connector else { return }
            if locked.rail != connector {
                let loaded = locked
                locked.rail = connector
                try await save(&locked, loaded: loaded, tx)
            }
            let loaded = current
            current.authenticationID = authentication.id
            current.challengeURL = authentication.challengeURL
            try await save(&current, loaded: loaded, tx)
        }
        guard let (authentication, connector) = started else {
            throw KoshError(.gatewayError, "The bank's authentication service did not answer; try again", source: "bank",
                            step: "payment_authentication", reason: "authentication_service_unavailable")
        }
        switch authentication.state {
        case .failed(let reason):
            try await failCardAuthentication(paymentID: payment.id, CardResponseCodes.authenticationFailure(reason: reason))
        case .authenticated:
            try await authorizeCard(paymentID: payment.id, authentication: authentication)
        case .challengeRequired:
            break
        }
        return (authentication, connector)
    }

    /// The connectors to try, in order: the one the payment was created on, then the router's
    /// other routes for the card (live mode; test mode has one).
    func authenticationRoutes(_ payment: Payment, merchant: Merchant?, _ cards: CardRails) -> [RouteChoice] {
        guard payment.rail != cards.test.name, let live = cards.live, let card = payment.card else {
            return [RouteChoice(connector: payment.rail, reason: "test mode")]
        }
        let plan = live.plan(CardRoutingRequest(card: card, amount: payment.amount, preferred: merchant?.routePreference ?? []))
        let first = plan.first { $0.connector == payment.rail } ?? RouteChoice(connector: payment.rail, reason: "chosen at creation")
        return [first] + plan.filter { $0.connector != payment.rail }
    }
}
