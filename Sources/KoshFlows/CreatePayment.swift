import KoshCore

extension PaymentFlows {
    /// `POST /v1/payments/create/upi`: a payment on an order. When its rail answers in-process
    /// (`submitsInline`) it is submitted in the same transaction; otherwise it is `created` and
    /// handed to its rail after commit (the follow-up `.submit`).
    public func createPayment(merchant: Merchant, _ input: NewPayment, idempotency: IdempotencyRequest? = nil) async throws -> CommandResponse {
        try await command(idempotency) { tx in
            let (payment, followUps) = try await createPayment(tx, merchant: merchant, input, inline: submitsInline(merchant))
            return Outcome(reply: .paymentCreated(payment), followUps: followUps)
        }
    }

    /// The transaction part of `createPayment`: writes the payment and returns what to run
    /// after commit. A process that dies before running the follow-ups leaves the payment
    /// `created`; the janitor submits it once `submitGraceMillis` have passed.
    public func createPayment(_ tx: any StoreTransaction, merchant: Merchant, _ input: NewPayment,
                              inline: Bool) async throws -> (Payment, [FollowUp]) {
        try rails.validate(mode: merchant.mode, method: input.method, vpa: input.vpa, flow: input.flow)
        let (order, fromOrderState) = try await admit(input, merchant: merchant, tx)
        let now = clock.now
        // Live payments get their connector when the router picks one at submission.
        let rail = merchant.mode == .test ? rails.test.name : RailRegistry.unrouted
        var payment = Payment(id: newID(.payment), merchantID: merchant.id, orderID: order.id, currency: input.currency,
                              method: input.method, vpa: input.vpa, email: input.email, contact: input.contact,
                              description: input.description, notes: input.notes, machine: PaymentMachine(amount: input.amount),
                              rail: rail, flow: input.flow, createdAt: now.seconds, nextCheckAt: now + settings.submitGraceMillis,
                              bank: input.bank, wallet: input.wallet, callbackURL: input.callbackURL)
        try await tx.updateOrder(order)
        try await tx.appendEvent(event(merchant.id, "payment", payment.id, "created", from: nil, to: PaymentState.created.rawValue))
        try await tx.appendEvent(event(merchant.id, "order", order.id, OrderEvent.paymentAttempted.rawValue,
                                       from: fromOrderState.rawValue, to: order.machine.state.rawValue))
        guard inline else {
            try await tx.insertPayment(payment)
            return (payment, [.submit(paymentID: payment.id)])
        }
        // The payment is written once, as the rail left it; its attempts refer to it.
        let (attempts, followUps) = try await submitInline(&payment, merchant: merchant, tx)
        try await tx.insertPayment(payment)
        for attempt in attempts { try await tx.insertAttempt(attempt) }
        return (payment, followUps)
    }

    /// The order a new payment is for, locked and with the payment admitted (`OrderMachine.admitPayment`),
    /// and the order's state before; the caller writes the order.
    func admit(_ input: NewPayment, merchant: Merchant, _ tx: any StoreTransaction) async throws -> (Order, OrderState) {
        guard var order = try await tx.order(id: input.orderID, merchantID: merchant.id, forUpdate: true) else {
            throw KoshError.badRequest("The id provided does not exist", field: "order_id", reason: "input_validation_failed")
        }
        let fromOrderState = order.machine.state
        let holding = order.machine.state == .paid ? 0 : try await tx.livePaymentCount(orderID: order.id)
        do {
            try order.machine.admitPayment(amount: input.amount, currency: input.currency, orderCurrency: order.currency,
                                           paymentsHoldingOrder: holding)
        } catch {
            throw PaymentRefusals.clientError(error)
        }
        return (order, fromOrderState)
    }
}
