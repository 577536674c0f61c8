import KoshCore

extension PaymentFlows {
    /// Sends an authenticated card payment's authorisation (0100) and applies the answer
    /// (`CardAuthorizationRules`). The payment is `pending` and its stage `authorizing` before
    /// the call, so a crash mid-call leaves it to the janitor (`checkCard`), which asks the
    /// connector to settle the unknown outcome (a reversal). Safe to call twice: a payment past
    /// `authenticating` is returned unchanged.
    @discardableResult
    func authorizeCard(paymentID: ID<Payment>, authentication: CardAuthentication) async throws -> Payment {
        let cards = try requireCards()
        let started: (Payment, CardPayment, PaymentAttempt, String)? = try await store.transaction { tx in
            var payment = try await lockedPayment(paymentID, tx)
            guard var cardPayment = try await tx.cardPayment(paymentID: paymentID, forUpdate: true) else { throw KoshError.notFound() }
            guard payment.state == .created, cardPayment.stage == .authenticating else { return nil }
            let (loaded, loadedCard) = (payment, cardPayment)
            try await apply(.submit, to: &payment, tx)
            let now = clock.now
            payment.submittedAt = now
            payment.nextCheckAt = now + cards.settings.authorizationCheckMillis
            cardPayment.stage = .authorizing
            // The attempt `startAuthentication` recorded on this connector carries the answer.
            let attempts = try await tx.attempts(paymentID: paymentID)
            let attempt: PaymentAttempt
            if let begun = attempts.last, begun.connector == payment.rail {
                attempt = begun
            } else {
                attempt = newAttempt(payment, seq: Int64(attempts.count) + 1, RouteChoice(connector: payment.rail, reason: "card network"), now: now)
                try await tx.insertAttempt(attempt)
            }
            try await save(&payment, loaded: loaded, tx)
            try await save(&cardPayment, loaded: loadedCard, tx)
            return (payment, cardPayment, attempt, try await tx.merchant(id: payment.merchantID)?.name ?? "Kosh merchant")
        }
        guard let (payment, cardPayment, attempt, merchantName) = started else { return try await self.payment(id: paymentID) }
        guard let connector = cards.connector(named: payment.rail) else { throw KoshError.notFound("No card connector \(payment.rail)") }
        let began = clock.now
        let answer: CardNetworkAnswer
        var reference: CardAuthorizationReference?
        // The failures below say nothing of Kosh's insides (addresses, errors): the cardholder may
        // read them on the result page. The connector logs the detail.
        do {
            let request = context(payment, cardPayment, merchantName: merchantName)
            do {
                (answer, reference) = try await connector.authorize(request, authentication: authentication)
            } catch is CardNetworkUnavailable {
                // Surely never sent (no connection could carry it), so once more is safe: the
                // connector opens a fresh connection and has put the CVV back in the vault.
                (answer, reference) = try await connector.authorize(request, authentication: authentication)
            }
        } catch is CardVaultError {
            // The card could not be read back: nothing was sent to the network.
            answer = .declined(responseCode: "96", PaymentFailure(
                code: "GATEWAY_ERROR", description: "Payment failed because the card details could not be read. No money was debited.",
                source: "gateway", step: "payment_authorization", reason: "gateway_technical_error"))
        } catch is CardNetworkUnavailable {
            // Surely never sent: nothing to reverse, nothing charged.
            answer = .declined(responseCode: "96", PaymentFailure(
                code: "GATEWAY_ERROR", description: "Payment failed because the card network could not be reached. No money was debited.",
                source: "gateway", step: "payment_authorization", reason: "gateway_technical_error"))
        } catch {
            answer = .unknown
        }
        // A card to save (`save: 1`) becomes card-on-file in the vault before Kosh records its
        // token; if the vault cannot keep it, the payment stands and no token is made.
        var saveFor: ID<Customer>?
        if case .approved = answer, let customerID = cardPayment.saveFor {
            if (try? await cards.vault.setRetention(token: cardPayment.vaultToken, .cardOnFile)) != nil { saveFor = customerID }
        }
        return try await applyCardAnswer(paymentID: paymentID, answer, reference: reference, attemptID: attempt.id,
                                         latency: clock.now - began, saveFor: saveFor)
    }

    /// Applies the network's word on a card payment's authorisation, in one transaction.
    /// Answers the payment as written, or as it is after the follow-ups when there were any
    /// (a late authorisation's refund).
    func applyCardAnswer(paymentID: ID<Payment>, _ answer: CardNetworkAnswer, reference: CardAuthorizationReference?,
                         attemptID: ID<PaymentAttempt>?, latency: Int64?, saveFor: ID<Customer>? = nil) async throws -> Payment {
        let cards = try requireCards()
        let (payment, followUps) = try await store.transaction { tx in
            var payment = try await lockedPayment(paymentID, tx)
            guard var cardPayment = try await tx.cardPayment(paymentID: paymentID, forUpdate: true) else { throw KoshError.notFound() }
            guard payment.state == .pending, cardPayment.stage == .authorizing || cardPayment.stage == .reversing else {
                return (payment, [FollowUp]())
            }
            let (loaded, loadedCard) = (payment, cardPayment)
            let decision = CardAuthorizationRules.decide(answer, now: clock.now, settings: cards.settings)
            if case .approved(let authCode, let rrn) = answer {
                payment.railReference = rrn
                payment.authCode = authCode
                cardPayment.authorization = reference
            } else if answer == .unknown, let reference {
                // Sent, no answer: kept (it survives a restart) for resolveTimeout, whose reversal
                // advices must name this 0100. The payment stays pending, so no capture uses it.
                cardPayment.authorization = reference
            }
            var followUps: [FollowUp] = []
            if let event = decision.event { followUps = try await apply(event, to: &payment, tx) }
            if let saveFor, payment.state == .authorized { try await saveCard(payment, for: saveFor, tx) }
            cardPayment.stage = decision.stage
            payment.nextCheckAt = decision.checkAt
            var attempts = try await tx.attempts(paymentID: paymentID)
            if let index = attempts.lastIndex(where: { attemptID == nil || $0.id == attemptID }) {
                switch answer {
                case .approved(_, let rrn): attempts[index].settle(.authorized, reference: rrn, failure: nil, at: clock.now)
                case .declined(_, let failure): attempts[index].settle(.failed, reference: nil, failure: failure, at: clock.now)
                case .reversedAfterTimeout:
                    attempts[index].settle(.failed, reference: nil, failure: CardAuthorizationRules.reversedAfterTimeout, at: clock.now)
                case .unknown: attempts[index].status = .unknown
                }
                if let latency { attempts[index].latencyMillis = latency }
                try await tx.updateAttempt(attempts[index])
            }
            try await save(&payment, loaded: loaded, tx)
            try await save(&cardPayment, loaded: loadedCard, tx)
            return (payment, followUps)
        }
        guard !followUps.isEmpty else { return payment }
        _ = await run(followUps)
        return try await self.payment(id: paymentID)
    }

    /// Fails a card payment still `created` (its 3-D Secure authentication failed or was abandoned).
    @discardableResult
    func failCardAuthentication(paymentID: ID<Payment>, _ failure: PaymentFailure) async throws -> Payment {
        try await store.transaction { tx in
            var payment = try await lockedPayment(paymentID, tx)
            guard var cardPayment = try await tx.cardPayment(paymentID: paymentID, forUpdate: true) else { throw KoshError.notFound() }
            guard payment.state == .created, cardPayment.stage == .authenticating else { return payment }
            let (loaded, loadedCard) = (payment, cardPayment)
            try await apply(.fail(failure), to: &payment, tx)
            payment.nextCheckAt = nil
            cardPayment.stage = .answered
            try await save(&payment, loaded: loaded, tx)
            try await save(&cardPayment, loaded: loadedCard, tx)
            return payment
        }
    }

    /// The janitor's look at a card payment whose check is due: a 3-D Secure authentication past
    /// its window (the ACS's word decides: authenticated goes on to authorise, anything else
    /// fails), or an authorisation whose outcome is unknown (`resolveTimeout`).
    @discardableResult
    public func checkCard(paymentID: ID<Payment>) async throws -> Payment {
        let cards = try requireCards()
        let (payment, cardPayment, merchantName) = try await cardPaymentForNetwork(paymentID)
        // Not configured on this server (live cards off): the janitor looks again later.
        let connector = try cards.connector(for: payment)
        switch (payment.state, cardPayment.stage) {
        case (.created, .authenticating):
            if let id = cardPayment.authenticationID, let authentication = try? await connector.authentication(id: id),
               case .authenticated = authentication.state {
                return try await authorizeCard(paymentID: paymentID, authentication: authentication)
            }
            return try await failCardAuthentication(paymentID: paymentID, CardResponseCodes.authenticationFailure(reason: "expired"))
        case (.pending, .authorizing), (.pending, .reversing):
            let answer = (try? await connector.resolveTimeout(context(payment, cardPayment, merchantName: merchantName),
                                                              reference: cardPayment.authorization)) ?? .unknown
            return try await applyCardAnswer(paymentID: paymentID, answer, reference: nil, attemptID: nil, latency: nil)
        default:
            return payment
        }
    }
}
