import KoshCore
import KoshJSON
import KoshFlows
import KoshHTTP
import KoshTesting
import Testing

/// The flows on an in-memory store, scripted rails and a manual clock.
struct Rig {
    let clock = ManualClock()
    let store: InMemoryStore
    /// Test mode's rail (answers in-process when `inline`).
    let testRail: ScriptedRail
    /// Live mode's routes, in order.
    let liveRails: [ScriptedRail]
    let routing: ScriptedRouting
    let flows: PaymentFlows<InMemoryStore>
    let merchant: Merchant

    init(mode: Mode = .test, inline: Bool = true, routes: [String] = ["alpha", "beta"], lateAuthorization: LateAuthorizationPolicy = .refund,
         settings: GatewaySettings = GatewaySettings(firstCheckAfterMillis: 0, checkIntervalMillis: 2_000, submitGraceMillis: 5_000)) {
        testRail = ScriptedRail(name: "test", answersInProcess: inline)
        liveRails = routes.map { ScriptedRail(name: $0) }
        routing = ScriptedRouting(liveRails)
        merchant = Merchant(id: "mer_Flow00000001", name: "Flow Traders", mode: mode, createdAt: clock.nowMillis() / 1000,
                            lateAuthorization: lateAuthorization)
        store = InMemoryStore(merchants: [merchant])
        flows = PaymentFlows(store: store, rails: RailRegistry(test: testRail, live: routing), clock: clock, settings: settings,
                             renderer: RazorpayEntityRenderer(), idempotency: store)
    }

    /// The rail a payment of this rig's merchant is on first.
    var firstRail: ScriptedRail { merchant.mode == .test ? testRail : liveRails[0] }

    func order(amount: Int64 = 10_000) async throws -> Order {
        let body = try body(try await flows.createOrder(merchant: merchant, NewOrder(amount: amount, currency: .inr, receipt: nil, notes: Notes())))
        return try await flows.order(id: ID(try #require(body["id"]?.stringValue)), merchantID: merchant.id)
    }

    func newPayment(_ orderID: ID<Order>, amount: Int64 = 10_000, currency: Currency = .inr) -> NewPayment {
        NewPayment(orderID: orderID, amount: amount, currency: currency, method: .upi, vpa: "payer@okbank", email: "payer@example.com",
                   contact: "+919900000001", description: nil, notes: Notes())
    }

    /// Creates a payment (running its follow-ups, as the API does) and returns it.
    func pay(_ orderID: ID<Order>, amount: Int64 = 10_000, idempotency: IdempotencyRequest? = nil) async throws -> Payment {
        let body = try body(try await flows.createPayment(merchant: merchant, newPayment(orderID, amount: amount), idempotency: idempotency))
        return try await flows.payment(id: ID(try #require(body["razorpay_payment_id"]?.stringValue)))
    }

    /// An authorised payment of a new order.
    func authorized(amount: Int64 = 10_000) async throws -> Payment {
        let order = try await order(amount: amount)
        let payment = try await pay(order.id, amount: amount)
        firstRail.setStatus(payment.id, .answer(.authorized(reference: "ref_\(payment.id)")))
        let checked = try await flows.check(paymentID: payment.id)
        #expect(checked.state == .authorized)
        return checked
    }

    func captured(amount: Int64 = 10_000) async throws -> Payment {
        let payment = try await authorized(amount: amount)
        _ = try await flows.capture(merchant: merchant, paymentID: payment.id, amount: amount, currency: .inr)
        return try await flows.payment(id: payment.id)
    }

    func attempts(_ paymentID: ID<Payment>) -> [PaymentAttempt] { store.snapshot.attempts[paymentID] ?? [] }

    func events<Entity>(_ entityID: ID<Entity>) -> [String] { store.snapshot.events.filter { $0.entityID == entityID.rawValue }.map(\.event) }

    func published() -> [WebhookEventName] { store.snapshot.outbox.map(\.name) }

    /// The merchant's balance as Kosh owes it (credit-normal, so negated), posted.
    func merchantBalance() -> Int64 {
        -(store.snapshot.balances.balances[LedgerBalances.Key(account: LedgerAccount.merchantBalance(merchantID: merchant.id.rawValue).key,
                                                              currency: .inr)]?.posted ?? 0)
    }

    func expectLedgerConsistent(sourceLocation: SourceLocation = #_sourceLocation) {
        let report = store.ledgerReport()
        #expect(report.problems == [], sourceLocation: sourceLocation)
    }
}

/// The JSON body of a command's response.
func body(_ response: CommandResponse) throws -> JSON {
    switch response {
    case .done(_, let body, _), .replayed(_, let body): try JSON.parse(body)
    }
}

extension JSON {
    var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    var intValue: Int64? { if case .int(let i) = self { i } else { nil } }
}

/// The refusal a flow threw, for `#expect(throws:)` checks by reason.
func refusal(_ body: () async throws -> some Any) async -> KoshError? {
    do {
        _ = try await body()
        return nil
    } catch let error as KoshError {
        return error
    } catch {
        Issue.record("expected a KoshError, got \(error)")
        return nil
    }
}
