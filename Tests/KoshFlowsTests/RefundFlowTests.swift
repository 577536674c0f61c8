import KoshCore
import KoshFlows
import KoshTesting
import Testing

@Suite("Flows: refunds and their settlement")
struct RefundFlowTests {
    func refund(_ rig: Rig, _ paymentID: ID<Payment>, amount: Int64?) async throws -> Refund {
        let json = try body(try await rig.flows.refund(merchant: rig.merchant, paymentID: paymentID,
                                                       NewRefund(amount: amount, speed: .normal, receipt: nil, notes: Notes())))
        return try await rig.flows.refund(id: ID(try #require(json["id"]?.stringValue)), merchantID: rig.merchant.id)
    }

    @Test("test mode: a refund is accepted and settled in one transaction; the balance and the refundable amount go down")
    func inlineRefund() async throws {
        let rig = Rig()
        let payment = try await rig.captured()
        let refund = try await refund(rig, payment.id, amount: 4_000)
        #expect(refund.machine.state == .processed)
        #expect(try await rig.flows.payment(id: payment.id).machine.refundableAmount == 6_000)
        #expect(rig.merchantBalance() == 10_000 - 236 - 4_000)
        #expect(await refusal { try await self.refund(rig, payment.id, amount: 7_000) }?.reason == "refund_amount_exceeded")
        #expect(rig.events(refund.id) == ["created", "processed"])
        rig.expectLedgerConsistent()
    }

    @Test("live: a refund is sent after commit; a rail's failure reverses it onto the merchant and the payment")
    func liveRefundFailureReverses() async throws {
        let rig = Rig(mode: .live, routes: ["alpha"])
        let payment = try await rig.captured()
        rig.liveRails[0].onRefund(.answer(.failed(reason: "account closed")))
        let refund = try await refund(rig, payment.id, amount: nil)
        #expect(refund.machine.state == .failed)
        let after = try await rig.flows.payment(id: payment.id)
        #expect(after.state == .captured && after.machine.refundableAmount == 10_000)
        #expect(rig.merchantBalance() == 10_000 - 236)
        #expect(rig.published().suffix(2) == [.refundCreated, .refundFailed])
        rig.expectLedgerConsistent()
    }

    @Test("a refund with no answer is sent again on the retry schedule by the janitor, then settles")
    func refundRetried() async throws {
        let rig = Rig(mode: .live, routes: ["alpha"])
        let payment = try await rig.captured()
        rig.liveRails[0].onRefund(.noAnswer, .answer(.pending))
        let refund = try await refund(rig, payment.id, amount: 1_000)
        #expect(refund.machine.state == .pending)
        #expect(rig.store.snapshot.refundRetries[refund.id]?.attempts == 1)
        // Not yet due (5 s after the first try).
        rig.clock.advance(byMillis: 4_000)
        #expect(try await rig.flows.sendPendingRefunds(olderThanMillis: 0) == 0)
        rig.clock.advance(byMillis: 1_000)
        #expect(try await rig.flows.sendPendingRefunds(olderThanMillis: 0) == 1)
        // Still pending at the rail: the next try is 30 s later.
        #expect(rig.store.snapshot.refundRetries[refund.id]?.attempts == 2)
        #expect(rig.store.snapshot.refundRetries[refund.id]?.next == rig.clock.now + 30_000)
        rig.clock.advance(byMillis: 30_000)
        #expect(try await rig.flows.sendPendingRefunds(olderThanMillis: 0) == 1)
        #expect(try await rig.flows.refund(id: refund.id, merchantID: rig.merchant.id).machine.state == .processed)
        #expect(rig.liveRails[0].calls.filter { $0 == "refund \(refund.id)" }.count == 3)
        rig.expectLedgerConsistent()
    }

    @Test("an auto-refund the rail refuses is never reversed onto the merchant: it stays pending and is sent again")
    func autoRefundNeverReversed() async throws {
        let rig = Rig(mode: .live, routes: ["alpha"], settings: GatewaySettings(firstCheckAfterMillis: 0, pendingTimeoutMillis: 1_000))
        let payment = try await rig.pay(try await rig.order().id)
        rig.clock.advance(byMillis: 1_000)
        _ = try await rig.flows.check(paymentID: payment.id)
        rig.liveRails[0].onRefund(.answer(.failed(reason: "refused")))
        let late = try await rig.flows.railAnswered(paymentID: payment.id, .authorized(reference: "late"), from: .callback, connector: "alpha")
        #expect(late.state == .refunded)
        let refund = try #require(rig.store.snapshot.refunds.values.first)
        #expect(refund.machine.state == .pending)
        #expect(rig.store.snapshot.refundRetries[refund.id]?.reason.contains("never reversed") == true)
        #expect(rig.merchantBalance() == 0)
        rig.clock.advance(byMillis: 5_000)
        #expect(try await rig.flows.sendPendingRefunds(olderThanMillis: 0) == 1)
        #expect(try await rig.flows.refund(id: refund.id, merchantID: rig.merchant.id).machine.state == .processed)
        rig.expectLedgerConsistent()
    }

    @Test("a refund of a payment not captured is refused; a refund of another payment is not found under this one")
    func refundRefusals() async throws {
        let rig = Rig()
        let authorized = try await rig.authorized()
        #expect(await refusal { try await self.refund(rig, authorized.id, amount: 100) }?.reason == "payment_not_captured")
        let captured = try await rig.captured()
        let refund = try await refund(rig, captured.id, amount: 100)
        #expect(await refusal { try await rig.flows.refund(id: refund.id, merchantID: rig.merchant.id, paymentID: authorized.id) }?
            .code == .notFound)
        #expect(rig.store.snapshot.refunds.count == 1)
    }
}
