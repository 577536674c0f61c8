import KoshCore

extension PaymentFlows {
    /// `POST /v1/payments/:id/refund`: accepts a refund (state pending); the payment's
    /// refundable amount and the merchant's balance are reduced in this transaction. A rail
    /// that answers in-process (the test rail) settles it in the same transaction, as
    /// `submitsInline` explains; any other is sent after commit (the follow-up `.sendRefund`).
    public func refund(merchant: Merchant, paymentID: ID<Payment>, _ input: NewRefund,
                       idempotency: IdempotencyRequest? = nil) async throws -> CommandResponse {
        try await command(idempotency) { tx in
            var payment = try await lockedPayment(paymentID, merchantID: merchant.id, tx)
            let loaded = payment
            let amount = input.amount ?? payment.machine.refundableAmount
            var refund = Refund(id: newID(.refund), merchantID: merchant.id, paymentID: payment.id, currency: payment.currency,
                                notes: input.notes, receipt: input.receipt, speedRequested: input.speed.rawValue,
                                machine: RefundMachine(amount: max(amount, 1)), createdAt: nowSeconds)
            var followUps = try await apply(.refund(amount: amount), to: &payment, tx, refundID: refund.id)
            try await save(&payment, loaded: loaded, tx)
            try await tx.insertRefund(refund)
            try await tx.appendEvent(event(merchant.id, "refund", refund.id, "created", from: nil, to: RefundState.pending.rawValue))
            try await publish(.refundCreated, merchantID: merchant.id, [.refund(refund), .payment(payment)], tx)
            if let rail = rails.rail(named: payment.rail), rail.answersInProcess {
                // As `sendRefund`: a call that fails leaves the refund pending (sent again after commit).
                let status = try? await rail.refund(railRefundRequest(refund, payment))
                if let status, try await settle(&refund, status, payment: payment, current: payment, tx) {
                    try await tx.updateRefund(refund)
                }
            }
            if refund.machine.state == .pending { followUps.append(.sendRefund(refundID: refund.id)) }
            return Outcome(reply: .refund(refund), followUps: followUps)
        }
    }
}
