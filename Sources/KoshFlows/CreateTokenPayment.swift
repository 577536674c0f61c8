import KoshCore
import KoshJSON

extension PaymentFlows {
    /// `POST /v1/payments/create/json` with `token` and `customer_id`: pays with a saved card.
    /// The card number stays in the vault; a CVV, when the customer gives one, joins it there in
    /// memory. 3-D Secure still applies (RBI's additional factor).
    public func createTokenPayment(merchant: Merchant, _ input: NewTokenPayment, idempotency: IdempotencyRequest? = nil) async throws -> CommandResponse {
        let cards = try requireCards()
        let token = try await store.transaction { tx in
            guard try await tx.customer(id: input.customerID, merchantID: merchant.id) != nil else {
                throw KoshError.badRequest("The id provided does not exist", field: "customer_id")
            }
            guard let token = try await tx.token(id: input.tokenID, merchantID: merchant.id), token.customerID == input.customerID, token.isActive else {
                throw KoshError.badRequest("The token provided does not exist for the customer", field: "token", reason: "token_not_found")
            }
            return token
        }
        let route = try cards.routes(mode: merchant.mode, CardRoutingRequest(card: token.card, amount: input.payment.amount,
                                                                             preferred: merchant.routePreference))[0]
        let now = clock.now
        guard !((try? CardExpiry(month: token.card.expiryMonth, year: token.card.expiryYear))?.isExpired(at: now) ?? true) else {
            throw KoshError(.badRequest, "Your payment didn't go through as the saved card has expired.", field: "token",
                            source: "customer", step: "payment_initiation", reason: "card_expired")
        }
        // After the Idempotency-Key is claimed: a replay hands the vault no CVV again.
        return try await command(idempotency, prepare: {
            if let cvv = input.cvv {
                do { try await cards.vault.attachCVV(token: token.card.vaultToken, cvv: cvv) } catch let error as CardVaultError { throw Self.clientError(error) }
            }
        }) { _, tx in
            var used = token
            used.usedAt = now.seconds
            try await tx.updateToken(used)
            return try await openCardPayment(input.payment, merchant: merchant, card: token.card, newCard: false, on: route.connector,
                                             callbackURL: input.callbackURL, saveFor: nil, cards, tx)
        }
    }

    /// The `next` actions of a new card payment: the 3-D Secure page and native OTP.
    func nextActions(_ id: ID<Payment>, _ cards: CardRails) -> JSON {
        .object([
            ("razorpay_payment_id", .string(id.rawValue)),
            ("next", .array([
                .object([("action", .string("redirect")), ("url", .string(cards.url("/v1/payments/\(id.rawValue)/authenticate")))]),
                .object([("action", .string("otp_generate")),
                         ("url", .string(cards.url("/v1/payments/\(id.rawValue)/otp_generate?track_id=\(id.rawValue)")))]),
            ])),
        ])
    }
}
