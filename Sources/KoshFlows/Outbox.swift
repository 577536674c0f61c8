import KoshCore

/// An entity in a public event's payload.
enum PublishedEntity: Sendable {
    case payment(Payment)
    case order(Order)
    case refund(Refund)

    var key: String {
        switch self {
        case .payment: "payment"
        case .order: "order"
        case .refund: "refund"
        }
    }
}

extension PaymentFlows {
    /// Writes the public event `name` with the entities as the API renders them, in `tx`
    /// (the outbox, DESIGN.md §3.5): rendered once, here; the core's planner decides the
    /// deliveries and notifications from the typed entities; the store writes the rows.
    func publish(_ name: WebhookEventName, merchantID: String, _ entities: [PublishedEntity], _ tx: any StoreTransaction) async throws {
        guard publishesEvents else { return }
        let rendered: [(String, JSON)] = entities.map { entity in
            switch entity {
            case .payment(let payment): (entity.key, renderer.payment(payment))
            case .order(let order): (entity.key, renderer.order(order))
            case .refund(let refund): (entity.key, renderer.refund(refund))
            }
        }
        let now = nowSeconds
        let event = OutboxEvent(id: newID(.paymentEvent), merchantID: merchantID, name: name,
                                body: OutboxEvent.body(accountID: merchantID, name: name, entities: rendered, createdAt: now), createdAt: now)
        var payment: Payment?, refund: Refund?
        for entity in entities {
            switch entity {
            case .payment(let p): payment = p
            case .refund(let r): refund = r
            case .order: break
            }
        }
        let recipients = try await tx.outboxRecipients(merchantID: merchantID)
        try await tx.writeOutbox(OutboxPlanner.plan(event, payment: payment, refund: refund, recipients: recipients))
    }
}
