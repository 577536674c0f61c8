import KoshCore
import KoshJSON

/// Renders entities as the API shows them, so a webhook's payload equals what
/// `GET /v1/payments/:id` returns. The HTTP module provides it; the flows call it.
public protocol EntityRenderer: Sendable {
    func payment(_ payment: Payment) -> JSON
    func order(_ order: Order) -> JSON
    func refund(_ refund: Refund) -> JSON
    func qrCode(_ qrCode: UPIQRCode) -> JSON
    /// A refusal in the API's error shape (recorded as an idempotency key's response).
    func error(_ error: KoshError) -> JSON
}

extension OutboxEvent {
    /// Razorpay's webhook body: `contains` lists the payload's entities in order.
    public static func body(accountID: String, name: WebhookEventName, entities: [(String, JSON)], createdAt: Int64) -> String {
        JSON.object([
            ("entity", .string("event")),
            ("account_id", .string(accountID)),
            ("event", .string(name.rawValue)),
            ("contains", .array(entities.map { .string($0.0) })),
            ("payload", .object(entities.map { ($0.0, JSON.object([("entity", $0.1)])) })),
            ("created_at", .int(createdAt)),
        ]).serialized()
    }
}

/// An entity in a public event's payload.
enum PublishedEntity: Sendable {
    case payment(Payment)
    case order(Order)
    case refund(Refund)
    case qrCode(UPIQRCode)

    var key: String {
        switch self {
        case .payment: "payment"
        case .order: "order"
        case .refund: "refund"
        case .qrCode: "qr_code"
        }
    }
}

extension PaymentFlows {
    /// Writes the public event `name` with the entities as the API renders them, in `tx`
    /// (the outbox, DESIGN.md §3.5): rendered once, here; the core's planner decides the
    /// deliveries and notifications from the typed entities; the store writes the rows.
    func publish(_ name: WebhookEventName, merchantID: ID<Merchant>, _ entities: [PublishedEntity], _ tx: any StoreTransaction) async throws {
        guard publishesEvents else { return }
        let rendered: [(String, JSON)] = entities.map { entity in
            switch entity {
            case .payment(let payment): (entity.key, renderer.payment(payment))
            case .order(let order): (entity.key, renderer.order(order))
            case .refund(let refund): (entity.key, renderer.refund(refund))
            case .qrCode(let qrCode): (entity.key, renderer.qrCode(qrCode))
            }
        }
        let now = nowSeconds.value
        let event = OutboxEvent(id: newID(.paymentEvent), merchantID: merchantID.rawValue, name: name,
                                body: OutboxEvent.body(accountID: merchantID.rawValue, name: name, entities: rendered, createdAt: now),
                                createdAt: now)
        var payment: Payment?, refund: Refund?
        for entity in entities {
            switch entity {
            case .payment(let p): payment = p
            case .refund(let r): refund = r
            case .order, .qrCode: break
            }
        }
        let recipients = try await tx.outboxRecipients(merchantID: merchantID.rawValue)
        try await tx.writeOutbox(OutboxPlanner.plan(event, payment: payment, refund: refund, recipients: recipients))
    }
}
