import KoshCore

extension PaymentFlows {
    /// `POST /v1/payments/:id/capture`: takes the authorised amount, less the merchant's fee
    /// for the method (the capture transition computes it), and pays the order.
    public func capture(merchant: Merchant, paymentID: ID<Payment>, amount: Int64, currency: Currency,
                        idempotency: IdempotencyRequest? = nil) async throws -> CommandResponse {
        try await command(idempotency) { tx in
            var payment = try await lockedPayment(paymentID, merchantID: merchant.id, tx)
            guard currency == payment.currency else {
                throw KoshError.badRequest("The currency should be the same as the payment currency", field: "currency")
            }
            let loaded = payment
            var followUps = try await apply(.capture(amount: amount, fees: merchant.feeSchedule.resolving(card: payment.card), method: payment.method), to: &payment, tx)
            followUps += try await scheduleCardTask(.capture, for: payment, tx)
            try await save(&payment, loaded: loaded, tx)
            return Outcome(reply: .payment(payment), followUps: followUps)
        }
    }
}
