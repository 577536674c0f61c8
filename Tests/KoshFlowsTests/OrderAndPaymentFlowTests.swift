import KoshCore
import KoshFlows
import KoshTesting
import Testing

@Suite("Flows: create order, create payment, capture, void")
struct OrderAndPaymentFlowTests {
    @Test("an order is created with its event; an amount out of range is refused and nothing is written")
    func createOrder() async throws {
        let rig = Rig()
        let order = try await rig.order(amount: 50_000)
        #expect(order.machine.state == .created && order.amount == 50_000)
        #expect(rig.events(order.id) == ["created"])
        let error = await refusal { try await rig.flows.createOrder(merchant: rig.merchant, NewOrder(amount: 0, currency: .inr, receipt: nil, notes: Notes())) }
        #expect(error?.field == "amount")
        #expect(rig.store.snapshot.orders.count == 1)
    }

    @Test("test mode: the payment is created, submitted and answered in one transaction with the rail's answer in hand")
    func inlinePaymentAuthorizes() async throws {
        let rig = Rig()
        let order = try await rig.order()
        // The scripted test rail authorises every payment it is asked about.
        rig.testRail.onInitiate(.answer(.accepted(reference: "ref_inline", link: nil)))
        let payment = try await rig.pay(order.id)
        // Pending: the rail took it; the first check (firstCheckAfterMillis 0) found it pending.
        #expect(payment.state == .pending)
        #expect(rig.testRail.calls == ["initiate \(payment.id)", "status \(payment.id)"])
        #expect(payment.nextCheckAt == rig.clock.now + 2_000)
        #expect(rig.attempts(payment.id).map(\.status) == [.accepted])
        #expect(rig.store.snapshot.orders[order.id]?.machine.state == .attempted)

        rig.testRail.setStatus(payment.id, .answer(.authorized(reference: "ref_inline", payerVPA: nil)))
        rig.clock.advance(byMillis: 2_000)
        #expect(try await rig.flows.runDueChecks() == 1)
        let authorized = try await rig.flows.payment(id: payment.id)
        #expect(authorized.state == .authorized && authorized.nextCheckAt == nil)
        #expect(rig.attempts(payment.id).map(\.status) == [.authorized])
        #expect(rig.published() == [.paymentAuthorized])
        rig.expectLedgerConsistent()
    }

    @Test("one submission path: a test rail that is unavailable fails the payment (no route), exactly as submit does")
    func inlineUnavailableFailsWithNoRoute() async throws {
        let rig = Rig()
        let order = try await rig.order()
        rig.testRail.onInitiate(.answer(.unavailable(reason: "down")))
        let payment = try await rig.pay(order.id)
        #expect(payment.state == .failed)
        #expect(payment.machine.failure == .noRoute)
        #expect(rig.attempts(payment.id).map(\.status) == [.unavailable])
        // The order can be paid again.
        rig.testRail.onInitiate(.answer(.accepted(reference: "r2", link: nil)))
        #expect(try await rig.pay(order.id).state == .pending)
    }

    @Test("order rules: the amount due, one payment holding the order, a paid order")
    func orderRules() async throws {
        let rig = Rig()
        let order = try await rig.order(amount: 10_000)
        #expect(await refusal { try await rig.pay(order.id, amount: 9_999) }?.field == "amount")
        let first = try await rig.pay(order.id)
        #expect(await refusal { try await rig.pay(order.id) }?.reason == "payment_in_progress")
        rig.testRail.setStatus(first.id, .answer(.authorized(reference: "r")))
        _ = try await rig.flows.check(paymentID: first.id)
        _ = try await rig.flows.capture(merchant: rig.merchant, paymentID: first.id, amount: 10_000, currency: .inr)
        #expect(await refusal { try await rig.pay(order.id) }?.reason == "order_already_paid")
        // Refusals wrote nothing: one payment, one attempt.
        #expect(rig.store.snapshot.payments.count == 1)
    }

    @Test("capture takes the schedule's fee in the capture transition and pays the order; a wrong amount is refused")
    func capture() async throws {
        let rig = Rig()
        let payment = try await rig.authorized(amount: 10_000)
        #expect(await refusal { try await rig.flows.capture(merchant: rig.merchant, paymentID: payment.id, amount: 9_000, currency: .inr) }?
            .message == "Capture amount must be equal to the amount authorized")
        _ = try await rig.flows.capture(merchant: rig.merchant, paymentID: payment.id, amount: 10_000, currency: .inr)
        let captured = try await rig.flows.payment(id: payment.id)
        #expect(captured.state == .captured)
        // 2 % MDR + 18 % GST on it.
        #expect(captured.machine.fee == FeeBreakdown(base: 200, tax: 36))
        #expect(rig.merchantBalance() == 10_000 - 236)
        #expect(rig.store.snapshot.orders[captured.orderID]?.machine.state == .paid)
        #expect(rig.published() == [.paymentAuthorized, .paymentCaptured, .orderPaid])
        #expect(await refusal { try await rig.flows.capture(merchant: rig.merchant, paymentID: payment.id, amount: 10_000, currency: .inr) }?
            .reason == "payment_already_captured")
        rig.expectLedgerConsistent()
    }

    @Test("void releases the authorisation; a voided payment cannot be captured; another merchant's payment is not found")
    func void() async throws {
        let rig = Rig()
        let payment = try await rig.authorized()
        let other = Merchant(id: "mer_Other0000001", name: "Other", mode: .test, createdAt: 0)
        rig.store.add(other)
        #expect(await refusal { try await rig.flows.void(merchant: other, paymentID: payment.id) }?.code == .notFound)
        _ = try await rig.flows.void(merchant: rig.merchant, paymentID: payment.id)
        #expect(try await rig.flows.payment(id: payment.id).state == .voided)
        #expect(await refusal { try await rig.flows.capture(merchant: rig.merchant, paymentID: payment.id, amount: 10_000, currency: .inr) }?
            .reason == "payment_not_authorized")
        #expect(rig.merchantBalance() == 0)
        rig.expectLedgerConsistent()
    }

    @Test("idempotency: a replay answers the recorded body; a refusal is recorded; a failed commit frees the key")
    func idempotency() async throws {
        let rig = Rig()
        let key = IdempotencyRequest(merchantID: rig.merchant.id.rawValue, key: "k1", requestHash: "h1")
        let input = NewOrder(amount: 1_000, currency: .inr, receipt: nil, notes: Notes())
        let first = try await rig.flows.createOrder(merchant: rig.merchant, input, idempotency: key)
        let again = try await rig.flows.createOrder(merchant: rig.merchant, input, idempotency: key)
        guard case .done(_, let body, nil) = first, case .replayed(200, let replayed) = again else {
            Issue.record("expected a fresh answer, then its replay: \(first), \(again)")
            return
        }
        #expect(body == replayed)
        #expect(rig.store.snapshot.orders.count == 1)
        let other = IdempotencyRequest(merchantID: rig.merchant.id.rawValue, key: "k1", requestHash: "different")
        #expect(await refusal { try await rig.flows.createOrder(merchant: rig.merchant, input, idempotency: other) }?.reason == "idempotency_key_reused")

        // A refusal (4xx) is the key's response.
        let refusedKey = IdempotencyRequest(merchantID: rig.merchant.id.rawValue, key: "k2", requestHash: "h2")
        let bad = NewOrder(amount: 0, currency: .inr, receipt: nil, notes: Notes())
        #expect(await refusal { try await rig.flows.createOrder(merchant: rig.merchant, bad, idempotency: refusedKey) } != nil)
        guard case .replayed(400, let error) = try await rig.flows.createOrder(merchant: rig.merchant, bad, idempotency: refusedKey) else {
            Issue.record("the refusal was not recorded")
            return
        }
        #expect(error.contains("BAD_REQUEST_ERROR"))

        // A commit that fails frees the key; the retry runs and writes once.
        let retried = IdempotencyRequest(merchantID: rig.merchant.id.rawValue, key: "k3", requestHash: "h3")
        rig.store.failNextCommit(with: InMemoryStoreError(description: "database went away"))
        await #expect(throws: InMemoryStoreError.self) { try await rig.flows.createOrder(merchant: rig.merchant, input, idempotency: retried) }
        #expect(rig.store.snapshot.orders.count == 1)
        guard case .done = try await rig.flows.createOrder(merchant: rig.merchant, input, idempotency: retried) else {
            Issue.record("the retry after a failed commit did not run")
            return
        }
        #expect(rig.store.snapshot.orders.count == 2)
    }

    @Test("a payment whose follow-up never ran (the process died after commit) is submitted by the janitor after the grace")
    func followUpNeverRanIsLeftToTheJanitor() async throws {
        let rig = Rig(mode: .live, routes: ["alpha"])
        let order = try await rig.order()
        // The command's transaction committed; its follow-up `.submit` never ran.
        let payment = try await rig.store.transaction { tx in
            try await rig.flows.createPayment(tx, merchant: rig.merchant, rig.newPayment(order.id), inline: false)
        }
        #expect(payment.1 == [.submit(paymentID: payment.0.id)])
        #expect(payment.0.state == .created)
        // The janitor leaves it alone during the grace, then submits it.
        #expect(try await rig.flows.runDueChecks() == 0)
        rig.clock.advance(byMillis: 5_000)
        #expect(try await rig.flows.runDueChecks() == 1)
        #expect(try await rig.flows.payment(id: payment.0.id).state == .pending)
        #expect(rig.liveRails[0].calls == ["initiate \(payment.0.id)", "status \(payment.0.id)"])
    }
}
