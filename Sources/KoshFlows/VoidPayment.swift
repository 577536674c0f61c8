import KoshCore

extension PaymentFlows {
    /// `POST /v1/payments/:id/cancel`: releases an authorisation that was not captured.
    public func void(merchant: Merchant, paymentID: ID<Payment>, idempotency: IdempotencyRequest? = nil) async throws -> CommandResponse {
        try await command(idempotency) { tx in
            var payment = try await lockedPayment(paymentID, merchantID: merchant.id, tx)
            let loaded = payment
            var followUps = try await apply(.void, to: &payment, tx)
            followUps += try await scheduleCardTask(.reversal, for: payment, tx)
            try await save(&payment, loaded: loaded, tx)
            return Outcome(reply: .payment(payment), followUps: followUps)
        }
    }
}
