import KoshCore

extension PaymentFlows {
    /// Sends a pending refund to its rail and applies the answer (`RefundMachine.railAnswered`).
    /// A refund the rail did not settle is sent again on `GatewaySettings.refundRetryDelaysMillis`.
    /// Idempotent: the rail dedupes by refund id, and a settled refund is returned unchanged.
    @discardableResult
    public func sendRefund(refundID: ID<Refund>) async throws -> Refund {
        let (refund, payment) = try await store.transaction { tx in
            guard let refund = try await tx.refund(id: refundID, merchantID: nil, forUpdate: false) else { throw KoshError.notFound() }
            guard let payment = try await tx.payment(id: refund.paymentID, merchantID: nil, forUpdate: false) else { throw KoshError.notFound() }
            return (refund, payment)
        }
        guard refund.machine.state == .pending else { return refund }
        let status: RailRefundStatus?
        var noAnswer = ""
        do {
            if payment.method == .card {
                status = try await cardRefundStatus(refund, payment)
            } else {
                guard let rail = rails.rail(named: payment.rail) else { return refund }
                status = try await rail.refund(railRefundRequest(refund, payment))
            }
        } catch {
            status = nil
            noAnswer = String("\(error)".prefix(300))
        }
        return try await store.transaction { tx in
            guard var refund = try await tx.refund(id: refundID, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
            guard refund.machine.state == .pending else { return refund }
            if let status, try await settle(&refund, status, payment: payment, current: nil, tx) {
                try await tx.updateRefund(refund)
            } else {
                // Not settled: no answer, still pending at the rail, or an auto-refund it refused.
                let reason = switch status {
                case nil: "the call to \(payment.rail) failed: \(noAnswer)"
                case .pending?: "still pending at \(payment.rail)"
                case .failed(let why)?: "refused by \(payment.rail): \(why) (an auto-refund is sent again, never reversed onto the merchant)"
                case .processed?: "not applied"
                }
                try await tx.postponeRefund(id: refund.id, reason: reason) { attempts in
                    settings.nextRefundAttempt(attempts: attempts, now: clock.now)
                }
            }
            return refund
        }
    }

    /// Applies the rail's answer to a pending refund in `tx`: postings, the payment's reversal,
    /// the refund's event and public event. Returns whether the refund changed (the caller
    /// writes it). `current` is the payment as `tx` holds it, when the caller has it.
    func settle(_ refund: inout Refund, _ status: RailRefundStatus, payment: Payment, current: Payment?,
                _ tx: any StoreTransaction) async throws -> Bool {
        let from = refund.machine.state
        let settlement: RefundSettlement
        do {
            settlement = try refund.machine.railAnswered(status, autoRefund: payment.autoRefunded)
        } catch {
            throw KoshError.badRequest(error.description, reason: "invalid_state")
        }
        guard case .settled(let event, let actions) = settlement else { return false }
        if case .processed(let reference) = status { refund.railReference = reference }
        let now = nowSeconds
        var current = current
        for action in actions {
            switch action {
            case .postRefundSettled(let amount):
                try await tx.post(PostingRules.refundSettled(id: newID(.journalEntry), paymentID: payment.id, refundID: refund.id,
                                                             rail: payment.rail, amount: amount, currency: refund.currency, at: now.value))
            case .reverseRefund(let amount):
                var locked = try await lockedPayment(payment.id, tx)
                let loaded = locked
                try await apply(.refundFailed(amount: amount), to: &locked, tx, refundID: refund.id)
                try await save(&locked, loaded: loaded, tx)
                current = locked
            }
        }
        refund.processedAt = now
        refund.version += 1
        try await tx.appendEvent(self.event(refund.merchantID, "refund", refund.id, event.rawValue, from: from.rawValue,
                                            to: refund.machine.state.rawValue))
        if current == nil { current = try await tx.payment(id: payment.id, merchantID: nil, forUpdate: false) }
        if let current {
            try await publish(refund.machine.state == .failed ? .refundFailed : .refundProcessed, merchantID: refund.merchantID,
                              [.refund(refund), .payment(current)], tx)
        }
        return true
    }
}
