import KoshCore

/// What card payments need (issue 13): the vault, the card connectors (in-process test mode
/// and the card network of live mode), BIN data, the signer of `razorpay_signature` and Kosh's
/// own public address for the `next` actions and the 3-D Secure return.
public struct CardRails: Sendable {
    public var vault: any CardVault
    public var test: any CardConnector
    /// Live mode's card connectors and how payments are routed over them.
    public var live: (any CardRouting)?
    public var bins: BINTable
    public var settings: CardSettings
    public var signer: any PaymentSigner
    /// e.g. `http://127.0.0.1:8080`, no trailing slash.
    public var publicBaseURL: String

    public init(vault: any CardVault, test: any CardConnector, live: (any CardRouting)?, bins: BINTable, settings: CardSettings = CardSettings(),
                signer: any PaymentSigner, publicBaseURL: String) {
        self.vault = vault
        self.test = test
        self.live = live
        self.bins = bins
        self.settings = settings
        self.signer = signer
        self.publicBaseURL = publicBaseURL
    }

    /// The routes a new card payment may take, best first (test mode has one). None in live
    /// mode: 400 when no route takes the card's network at all, 502 when those that do are
    /// all down now (try again).
    public func routes(mode: Mode, _ request: CardRoutingRequest) throws -> [RouteChoice] {
        switch mode {
        case .test: return [RouteChoice(connector: test.name, reason: "test mode")]
        case .live:
            guard let live else {
                throw KoshError(.badRequest, "Live card payments are not enabled on this server", source: "business",
                                step: "payment_initiation", reason: "live_mode_not_enabled")
            }
            let plan = live.plan(request)
            guard plan.isEmpty else { return plan }
            if live.takes(request) {
                throw KoshError(.gatewayError, "Payment failed because no card route is available right now. Please try again.",
                                source: "gateway", step: "payment_initiation", reason: "gateway_technical_error")
            }
            throw KoshError(.badRequest, "\(request.network.displayName) cards are not supported for this payment", field: "card[number]",
                            source: "customer", step: "payment_initiation", reason: "card_network_not_supported")
        }
    }

    public func connector(named name: String) -> (any CardConnector)? {
        if test.name == name { return test }
        return live?.connector(named: name)
    }

    /// The connector a card payment is on.
    func connector(for payment: Payment) throws -> any CardConnector {
        guard let connector = connector(named: payment.rail) else {
            throw KoshError(.badRequest, "Card payments on \(payment.rail) are not enabled on this server", reason: "live_mode_not_enabled")
        }
        return connector
    }

    func url(_ path: String) -> String { publicBaseURL + path }
}

extension PaymentFlows {
    func requireCards() throws -> CardRails {
        guard let cards else { throw KoshError.badRequest("Card payments are not enabled on this server", field: "method") }
        return cards
    }

    /// A card payment with its network state, unlocked; 404 when either is missing (for this merchant).
    func cardPayment(_ id: ID<Payment>, merchantID: ID<Merchant>?) async throws -> (Payment, CardPayment) {
        try await store.transaction { tx in
            guard let payment = try await tx.payment(id: id, merchantID: merchantID, forUpdate: false), payment.method == .card,
                  let card = try await tx.cardPayment(paymentID: id, forUpdate: false) else { throw KoshError.notFound() }
            return (payment, card)
        }
    }

    func context(_ payment: Payment, _ cardPayment: CardPayment, merchantName: String) -> CardPaymentContext {
        CardPaymentContext(paymentID: payment.id, merchantID: payment.merchantID, merchantName: merchantName,
                           vaultToken: cardPayment.vaultToken, amount: payment.amount, currency: payment.currency)
    }

    func merchantName(_ id: ID<Merchant>) async throws -> String {
        try await store.transaction { tx in try await tx.merchant(id: id)?.name } ?? "Kosh merchant"
    }

    /// Writes a card payment changed in `tx` since it was `loaded`.
    func save(_ cardPayment: inout CardPayment, loaded: CardPayment, _ tx: any StoreTransaction) async throws {
        guard cardPayment != loaded else { return }
        cardPayment.version = loaded.version + 1
        try await tx.updateCardPayment(cardPayment)
    }
}
