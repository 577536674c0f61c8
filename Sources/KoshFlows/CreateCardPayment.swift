import KoshCore
import KoshJSON

extension PaymentFlows {
    /// `POST /v1/payments/create/json` with `method: "card"`: checks the card (Luhn and expiry
    /// were checked when it was read), tokenises it in the vault — the number and CVV go there
    /// and nowhere else —, then writes the payment `created`, its card (token, IIN, last 4, BIN
    /// data) and its network state. Answers Razorpay's `next` actions: the 3-D Secure page
    /// (`redirect`) and the native OTP (`otp_generate`). Every domestic card takes the challenge.
    public func createCardPayment(merchant: Merchant, _ input: NewCardPayment, idempotency: IdempotencyRequest? = nil) async throws -> CommandResponse {
        let cards = try requireCards()
        let now = clock.now
        guard !input.card.expiry.isExpired(at: now) else {
            throw KoshError(.badRequest, "Your payment didn't go through as the card has expired.", field: "card[expiry_year]",
                            source: "customer", step: "payment_initiation", reason: "card_expired")
        }
        let bin = cards.bins.lookup(input.card.number)
        let international = !bin.country.isEmpty && bin.country != "IN"
        let route = try cards.routes(mode: merchant.mode, CardRoutingRequest(network: bin.network, issuer: bin.issuer, type: bin.type,
                                                                             international: international, amount: input.payment.amount,
                                                                             preferred: merchant.routePreference))[0]
        if let customerID = input.saveFor {
            guard try await store.transaction({ tx in try await tx.customer(id: customerID, merchantID: merchant.id) }) != nil else {
                throw KoshError.badRequest("The id provided does not exist", field: "customer_id")
            }
        }
        // Before the transaction, so no database lock waits on the vault; after the
        // Idempotency-Key is claimed, so a replay tokenises nothing. A card tokenised for a
        // payment that is then refused (its order paid meanwhile) is purged at its retention.
        return try await command(idempotency, prepare: {
            try await tokenize(input.card, retention: .until(UnixSeconds(now.seconds.value + cards.settings.retentionSeconds)), cards)
        }) { tokenized, tx in
            let card = Card(id: newID(.card), merchantID: merchant.id, vaultToken: tokenized.token, fingerprint: tokenized.fingerprint,
                            iin: tokenized.iin, last4: tokenized.last4, network: bin.network, type: bin.type, issuer: bin.issuer,
                            international: international, subType: bin.subType, name: input.card.name,
                            expiryMonth: input.card.expiry.month, expiryYear: input.card.expiry.year, createdAt: now.seconds)
            return try await openCardPayment(input.payment, merchant: merchant, card: card, newCard: true, on: route.connector,
                                             callbackURL: input.callbackURL, saveFor: input.saveFor, cards, tx)
        }
    }

    /// What every new card payment writes, in `tx`: admitted to its order, the payment `created`
    /// on the connector named `rail` (the router's first choice; `startAuthentication` may move
    /// it to the next before anything reaches an issuer) with its card (written too when `newCard`) and network state, and their
    /// events. Answers Razorpay's `next` actions.
    func openCardPayment(_ input: NewPayment, merchant: Merchant, card: Card, newCard: Bool, on rail: String,
                         callbackURL: String?, saveFor: ID<Customer>?, _ cards: CardRails, _ tx: any StoreTransaction) async throws -> Outcome {
        let now = clock.now
        let (order, fromOrderState) = try await admit(input, merchant: merchant, tx)
        let payment = Payment(id: newID(.payment), merchantID: merchant.id, orderID: order.id, currency: input.currency, method: .card,
                              vpa: nil, email: input.email, contact: input.contact, description: input.description, notes: input.notes,
                              machine: PaymentMachine(amount: input.amount), rail: rail, createdAt: now.seconds,
                              nextCheckAt: now + cards.settings.authenticationWindowMillis, card: card)
        let cardPayment = CardPayment(paymentID: payment.id, merchantID: merchant.id, cardID: card.id, vaultToken: card.vaultToken,
                                      stage: .authenticating, callbackURL: callbackURL, saveFor: saveFor, createdAt: now.seconds)
        try await tx.updateOrder(order)
        if newCard { try await tx.insertCard(card) }
        try await tx.insertPayment(payment)
        try await tx.insertCardPayment(cardPayment)
        try await tx.appendEvent(event(merchant.id, "payment", payment.id, "created", from: nil, to: PaymentState.created.rawValue))
        try await tx.appendEvent(event(merchant.id, "order", order.id, OrderEvent.paymentAttempted.rawValue,
                                       from: fromOrderState.rawValue, to: order.machine.state.rawValue))
        return Outcome(reply: .body(nextActions(payment.id, cards)))
    }

    func tokenize(_ details: CardDetails, retention: CardRetention, _ cards: CardRails) async throws -> TokenizedCard {
        let card = VaultCard(number: details.number.digits, expiryMonth: details.expiry.month, expiryYear: details.expiry.year, name: details.name)
        do {
            return try await cards.vault.tokenize(card, cvv: details.cvv, retention: retention)
        } catch let error as CardVaultError {
            throw Self.clientError(error)
        }
    }

    /// A vault refusal as the merchant sees it: bad input is the client's, anything else is the
    /// vault being unreachable (retry), never a card detail.
    static func clientError(_ error: CardVaultError) -> KoshError {
        switch error {
        case .invalid(let field, let reason):
            KoshError.badRequest("The card's \(field) is invalid", field: "card[\(field)]", reason: reason)
        case .notFound, .purged:
            KoshError.badRequest("The card is no longer held; pay again with the card details", field: "card", reason: "card_not_found")
        case .unavailable:
            KoshError(.gatewayError, "The card vault did not answer; try again", source: "gateway", reason: "vault_unavailable")
        }
    }
}
