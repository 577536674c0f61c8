import KoshCore

/// What a rail's answer did, beyond the payment: the final word for its current attempt and
/// the follow-ups to run after commit.
struct AnsweredPayment: Sendable {
    var followUps: [FollowUp] = []
    var attemptSettlement: (status: PaymentAttempt.Status, reference: String?, failure: PaymentFailure?)?
}

extension PaymentFlows {
    /// Asks the rail about a payment in flight (or a timed-out one still watched for a late
    /// authorisation) and applies the answer. Idempotent.
    @discardableResult
    public func check(paymentID: ID<Payment>) async throws -> Payment {
        let current = try await payment(id: paymentID)
        let watched = current.state == .pending || (current.state == .failed && current.nextCheckAt != nil)
        guard watched, let rail = rails.rail(named: current.rail) else { return current }
        if current.state == .pending, let resent = try await resendLostInitiation(current, rail) { return resent }
        // A status call that fails counts as pending.
        let status = (try? await rail.status(request(for: current))) ?? .pending
        return try await railAnswered(paymentID: paymentID, status, from: .statusCheck, connector: current.rail)
    }

    /// Applies what a rail said about a payment — from a status check or a callback — once:
    /// a repeated or stale answer changes nothing (`PaymentMachine.reconcile`).
    /// - Parameters:
    ///   - amount: the amount the rail says moved, when it says; must be the payment's.
    ///   - connector: the route that spoke; only the route the payment is on may.
    @discardableResult
    public func railAnswered(paymentID: ID<Payment>, _ status: RailPaymentStatus, from source: RailAnswerSource, amount: Int64? = nil,
                             connector: String? = nil) async throws -> Payment {
        let (payment, followUps) = try await store.transaction { tx in
            var payment = try await lockedPayment(paymentID, tx)
            if let connector, connector != payment.rail {
                // Only the route the payment is on can speak for it; earlier routes surely did nothing.
                throw KoshError(.conflict, "The payment \(paymentID) is not on \(connector)", reason: "wrong_connector")
            }
            if let amount, amount != payment.amount {
                throw KoshError.badRequest("The amount \(amount) does not match the payment amount \(payment.amount)", field: "amount")
            }
            let loaded = payment
            let answered = try await answer(&payment, status, from: source, tx)
            if let settlement = answered.attemptSettlement,
               var attempt = try await tx.attempts(paymentID: paymentID).last(where: { $0.connector == payment.rail }) {
                attempt.settle(settlement.status, reference: settlement.reference, failure: settlement.failure, at: clock.now)
                try await tx.updateAttempt(attempt)
            }
            try await save(&payment, loaded: loaded, tx)
            return (payment, answered.followUps)
        }
        // A failed follow-up (a refund's call) is left to the janitor.
        _ = await run(followUps)
        return followUps.contains(where: { if case .sendRefund = $0 { true } else { false } }) ? try await self.payment(id: paymentID) : payment
    }

    /// Runs the payment machine's reconciliation of a rail's answer in `tx`. The caller
    /// writes the payment and settles the attempt.
    func answer(_ payment: inout Payment, _ status: RailPaymentStatus, from source: RailAnswerSource,
                _ tx: any StoreTransaction) async throws -> AnsweredPayment {
        let actions = payment.machine.reconcile(status, from: source, watching: payment.nextCheckAt != nil,
                                                submittedAt: payment.submittedAt ?? payment.createdAt.millis,
                                                now: clock.now, schedule: settings)
        var answered = AnsweredPayment()
        for action in actions {
            switch action {
            case .apply(let event):
                answered.followUps += try await apply(event, to: &payment, tx)
            case .takeReference(let reference, let replacing):
                payment.railReference = replacing ? reference : (payment.railReference ?? reference)
            case .takePayerVPA(let vpa):
                payment.vpa = payment.vpa ?? vpa
            case .scheduleCheck(let at):
                payment.nextCheckAt = at
            case .stopWatching:
                payment.nextCheckAt = nil
            case .settleAttempt(let status, let reference, let failure):
                answered.attemptSettlement = (status, reference, failure)
            case .recordRouteOutcome(let success):
                answered.followUps.append(.recordRouteOutcome(connector: payment.rail, success: success))
            }
        }
        return answered
    }

    /// A payment whose current attempt never got its answer recorded (the server stopped while
    /// the call was out) is sent again to the same route: every route dedupes by payment id
    /// (betapay answers E409, taken as accepted), so the payer is asked at most once.
    func resendLostInitiation(_ payment: Payment, _ rail: any PaymentRail) async throws -> Payment? {
        let attempts = try await store.transaction { tx in try await tx.attempts(paymentID: payment.id) }
        guard let attempt = attempts.last, attempt.connector == payment.rail, attempt.status == .initiated,
              clock.now - attempt.createdAt >= settings.resendInitiationAfterMillis else { return nil }
        let began = clock.nowMillis()
        let outcome: RoutePlan.Outcome
        do {
            switch RoutePlan.Outcome(try await rail.initiate(request(for: payment))) {
            // The route had the payment once: it is not given up for another now.
            case .unavailable(let reason): outcome = .unknown("resent after a restart; \(reason)")
            case let other: outcome = other
            }
        } catch {
            outcome = .unknown("resent after a restart; \(error)")
        }
        let latency = clock.nowMillis() - began
        return try await store.transaction { tx in
            var current = try await lockedPayment(payment.id, tx)
            let loaded = current
            var stored = try await tx.attempts(paymentID: payment.id).first(where: { $0.id == attempt.id }) ?? attempt
            var plan = RoutePlan(routes: [RouteChoice(connector: attempt.connector, reason: attempt.reason)])
            _ = try await finishAttempt(&current, &stored, outcome, latency: latency, plan: &plan, tx)
            try await tx.updateAttempt(stored)
            try await save(&current, loaded: loaded, tx)
            return current
        }
    }
}
