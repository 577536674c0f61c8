import KoshCore

/// How `submit`'s first transaction left a payment.
private enum SubmissionStart: Sendable {
    case notCreated
    /// It ended there (no route).
    case ended(Payment)
    case calling(Payment, PaymentAttempt, RoutePlan, payee: String)
}

extension PaymentFlows {
    /// Hands a `created` payment to its rail, trying the routes of its `RoutePlan` in order.
    /// Safe to call more than once: a payment that is no longer `created` is returned
    /// unchanged. Each try is recorded as an attempt before the call, and the payment points
    /// at the attempt's connector, so after a crash the janitor asks the right upstream.
    @discardableResult
    public func submit(paymentID: ID<Payment>) async throws -> Payment {
        let start: SubmissionStart = try await store.transaction { tx in
            var payment = try await lockedPayment(paymentID, tx)
            guard payment.state == .created else { return .notCreated }
            guard let merchant = try await tx.merchant(id: payment.merchantID) else { throw KoshError.notFound() }
            let loaded = payment
            let (plan, attempt) = try await beginSubmission(&payment, merchant: merchant, tx)
            if let attempt { try await tx.insertAttempt(attempt) }
            try await save(&payment, loaded: loaded, tx)
            guard let attempt else { return .ended(payment) }
            return .calling(payment, attempt, plan, payee: merchant.name)
        }
        guard case .calling(var current, var attempt, var plan, let payee) = start else {
            if case .ended(let payment) = start { return payment }
            return try await payment(id: paymentID)
        }
        while true {
            let began = clock.now
            let outcome = await initiate(current, on: attempt.connector, payeeName: payee)
            let latency = clock.now - began
            if outcome.countsAsRouteFailure { rails.recordOutcome(attempt.connector, success: false) }
            let step = try await store.transaction { [plan, attempt] tx in
                var payment = try await lockedPayment(paymentID, tx)
                let loaded = payment
                // A callback may have recorded the final word on this attempt while the call was out.
                var stored = try await tx.attempts(paymentID: paymentID).first(where: { $0.id == attempt.id }) ?? attempt
                var plan = plan
                let next = try await finishAttempt(&payment, &stored, outcome, latency: latency, plan: &plan, tx)
                try await tx.updateAttempt(stored)
                if let next { try await tx.insertAttempt(next) }
                try await save(&payment, loaded: loaded, tx)
                return (payment, next, plan)
            }
            current = step.0
            plan = step.2
            guard let next = step.1 else { break }
            attempt = next
        }
        // A rail that answers at once (the test rail with no approval delay) is asked right away.
        if current.state == .pending && settings.firstCheckAfterMillis == 0 {
            return try await check(paymentID: paymentID)
        }
        return current
    }

    /// Whether a payment of this merchant is created, handed to its rail and answered in the
    /// creating transaction. Only when the rail runs inside this process with no effect outside
    /// it (the test rail): no database lock then waits on a network, and a rollback leaves
    /// nothing behind at the rail. Live rails are always called between transactions (`submit`).
    public func submitsInline(_ merchant: Merchant) -> Bool {
        merchant.mode == .test && rails.test.answersInProcess
    }

    /// `submit` and, when the rail is asked at once (`firstCheckAfterMillis == 0`), the first
    /// status check, inside the creating transaction, for a rail that answers in-process: the
    /// same steps (`beginSubmission`, `initiate`, `finishAttempt`, `answer`) as `submit` and
    /// `check`. Returns the attempts to write after the payment, and the follow-ups.
    func submitInline(_ payment: inout Payment, merchant: Merchant, _ tx: any StoreTransaction) async throws -> ([PaymentAttempt], [FollowUp]) {
        var (plan, first) = try await beginSubmission(&payment, merchant: merchant, tx)
        guard var attempt = first else { return ([], []) }
        var attempts: [PaymentAttempt] = []
        while true {
            let began = clock.now
            let outcome = await initiate(payment, on: attempt.connector, payeeName: merchant.name)
            if outcome.countsAsRouteFailure { rails.recordOutcome(attempt.connector, success: false) }
            let next = try await finishAttempt(&payment, &attempt, outcome, latency: clock.now - began, plan: &plan, tx)
            attempts.append(attempt)
            guard let next else { break }
            attempt = next
        }
        guard payment.state == .pending, settings.firstCheckAfterMillis == 0, let rail = rails.rail(named: payment.rail) else {
            return (attempts, [])
        }
        // As `check`: a status call that fails counts as pending.
        let status = (try? await rail.status(request(for: payment))) ?? .pending
        let answered = try await answer(&payment, status, from: .statusCheck, tx)
        if let settlement = answered.attemptSettlement, let last = attempts.indices.last, attempts[last].connector == payment.rail {
            attempts[last].settle(settlement.status, reference: settlement.reference, failure: settlement.failure, at: clock.now)
        }
        return (attempts, answered.followUps)
    }

    /// The start of every submission, in `tx`: routes the payment, marks it submitted and opens
    /// the first route's attempt (not yet written). With no route the payment fails and the
    /// attempt is nil.
    func beginSubmission(_ payment: inout Payment, merchant: Merchant,
                         _ tx: any StoreTransaction) async throws -> (plan: RoutePlan, attempt: PaymentAttempt?) {
        let plan = RoutePlan(routes: try rails.plan(mode: merchant.mode, RoutingRequest(
            method: payment.method, flow: payment.flow, amount: payment.amount, preferred: merchant.routePreference)))
        try await apply(.submit, to: &payment, tx)
        let now = clock.now
        payment.submittedAt = now
        guard let first = plan.current else {
            try await apply(.fail(.noRoute), to: &payment, tx)
            payment.nextCheckAt = nil
            return (plan, nil)
        }
        payment.nextCheckAt = now + settings.firstCheckAfterMillis
        payment.rail = first.connector
        return (plan, newAttempt(payment, seq: 1, first, now: now))
    }

    func newAttempt(_ payment: Payment, seq: Int64, _ choice: RouteChoice, now: UnixMillis) -> PaymentAttempt {
        PaymentAttempt(id: newID(.attempt), paymentID: payment.id, merchantID: payment.merchantID, seq: seq, connector: choice.connector,
                       reason: choice.reason, status: .initiated, createdAt: now, updatedAt: now)
    }

    /// Calls one route. Never throws: no answer is `.unknown`, an open breaker `.skipped`.
    func initiate(_ payment: Payment, on connector: String, payeeName: String) async -> RoutePlan.Outcome {
        guard let rail = rails.rail(named: connector), rails.acquire(connector) else { return .skipped }
        do {
            return RoutePlan.Outcome(try await rail.initiate(request(for: payment, payeeName: payeeName)))
        } catch {
            return .unknown(String(describing: error))
        }
    }

    /// Records what one route did with the payment and moves the payment on as its plan
    /// decides, in `tx`. Returns the next route's attempt (not yet written) when the plan moves on.
    func finishAttempt(_ payment: inout Payment, _ attempt: inout PaymentAttempt, _ outcome: RoutePlan.Outcome, latency: Int64,
                       plan: inout RoutePlan, _ tx: any StoreTransaction) async throws -> PaymentAttempt? {
        let now = clock.now
        attempt.record(outcome, latencyMillis: latency, at: now)
        // Only the attempt the payment points at may move it (a callback may have been faster).
        guard payment.state == .pending, payment.rail == attempt.connector else { return nil }
        if case .accepted(let reference, let link) = outcome {
            payment.railReference = payment.railReference ?? reference
            payment.upiLink = payment.upiLink ?? link
        }
        switch plan.decide(after: outcome) {
        case .wait:
            return nil
        case .fail(let failure):
            try await apply(.fail(failure), to: &payment, tx)
            payment.nextCheckAt = nil
            return nil
        case .tryNext(let route):
            payment.rail = route.connector
            return newAttempt(payment, seq: attempt.seq + 1, route, now: now)
        }
    }
}
