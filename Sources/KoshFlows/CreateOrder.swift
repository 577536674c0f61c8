import KoshCore

extension PaymentFlows {
    /// `POST /v1/orders`: a new order in state `created`.
    public func createOrder(merchant: Merchant, _ input: NewOrder, idempotency: IdempotencyRequest? = nil) async throws -> CommandResponse {
        try await command(idempotency) { tx in .init(reply: .order(try await createOrder(tx, merchant: merchant, input))) }
    }

    func createOrder(_ tx: any StoreTransaction, merchant: Merchant, _ input: NewOrder) async throws -> Order {
        guard (AmountLimits.minimum...AmountLimits.maximum).contains(input.amount) else {
            throw KoshError.badRequest("The amount must be between \(AmountLimits.minimum) and \(AmountLimits.maximum) paise", field: "amount")
        }
        let order = Order(id: newID(.order), merchantID: merchant.id, currency: input.currency, receipt: input.receipt, notes: input.notes,
                          machine: OrderMachine(amount: input.amount), createdAt: nowSeconds, paymentCapture: input.paymentCapture)
        try await tx.insertOrder(order)
        try await tx.appendEvent(event(merchant.id, "order", order.id, "created", from: nil, to: OrderState.created.rawValue))
        return order
    }
}
