import KoshCore

/// The gateway's use cases (one file each in this module): the layer between the pure core and
/// the adapters. Every money decision is made by the core's machines and rule values; a use
/// case loads them, feeds them inputs and runs the actions they return in the store's
/// transaction. Rail calls happen outside database transactions, except for a rail that
/// answers in-process (the test rail, see `submitsInline`).
public struct PaymentFlows<Store: GatewayStore>: Sendable {
    public let store: Store
    public let rails: RailRegistry
    public let clock: any KoshClock
    public let settings: GatewaySettings
    /// Renders entities for responses recorded under an idempotency key and for public events.
    public let renderer: any EntityRenderer
    /// Whether state changes write public events (the webhook outbox).
    public let publishesEvents: Bool
    public let idempotency: any IdempotencyKeys
    /// Card payments' vault and connectors (nil: cards are not taken).
    public let cards: CardRails?

    public init(store: Store, rails: RailRegistry, clock: any KoshClock, settings: GatewaySettings = GatewaySettings(),
                renderer: any EntityRenderer, publishesEvents: Bool = true, idempotency: any IdempotencyKeys, cards: CardRails? = nil) {
        self.cards = cards
        self.store = store
        self.rails = rails
        self.clock = clock
        self.settings = settings
        self.renderer = renderer
        self.publishesEvents = publishesEvents
        self.idempotency = idempotency
    }

    var nowSeconds: UnixSeconds { clock.now.seconds }

    func newID(_ prefix: IDPrefix) -> String { Identifiers.make(prefix, millis: clock.nowMillis()) }

    func newID<Entity>(_ prefix: IDPrefix) -> ID<Entity> { ID(Identifiers.make(prefix, millis: clock.nowMillis())) }

    /// Writes a payment changed in `tx` since it was `loaded`; one version step per transaction.
    func save(_ payment: inout Payment, loaded: Payment, _ tx: any StoreTransaction) async throws {
        guard payment != loaded else { return }
        payment.version = loaded.version + 1
        try await tx.updatePayment(payment)
    }

    /// A payment locked for this transaction; 404 when it does not exist (for this merchant).
    func lockedPayment(_ id: ID<Payment>, merchantID: ID<Merchant>? = nil, _ tx: any StoreTransaction) async throws -> Payment {
        guard let payment = try await tx.payment(id: id, merchantID: merchantID, forUpdate: true) else { throw KoshError.notFound() }
        return payment
    }

    func event<Entity>(_ merchantID: ID<Merchant>, _ type: String, _ id: ID<Entity>, _ name: String, from: String?, to: String) -> PaymentEventRecord {
        let now = clock.nowMillis()
        // Ordered IDs: a payment's events of one transaction share a millisecond and must read back in order.
        return PaymentEventRecord(id: Identifiers.makeOrdered(.paymentEvent, millis: now), merchantID: merchantID.rawValue, entityType: type,
                                  entityID: id.rawValue, event: name, fromState: from, toState: to, createdAt: now)
    }

    func request(for payment: Payment, payeeName: String = "Kosh merchant") -> RailPaymentRequest {
        var request = RailPaymentRequest(paymentID: payment.id, merchantID: payment.merchantID, amount: payment.amount, currency: payment.currency,
                                         method: payment.method, vpa: payment.vpa, submittedAt: payment.submittedAt ?? payment.createdAt.millis,
                                         flow: payment.flow, payeeName: payeeName, description: payment.description)
        request.bank = payment.bank
        request.wallet = payment.wallet
        if payment.method == .netbanking || payment.method == .wallet {
            request.returnURL = settings.publicBaseURL + "/v1/payments/\(payment.id.rawValue)/redirect/return"
        }
        return request
    }

    func railRefundRequest(_ refund: Refund, _ payment: Payment) -> RailRefundRequest {
        var request = RailRefundRequest(refundID: refund.id, paymentID: payment.id, paymentReference: payment.railReference,
                                        amount: refund.amount, currency: refund.currency)
        request.wallet = payment.wallet
        if payment.flow == .qr { request.railTransactionID = payment.railReference }
        return request
    }
}
