import KoshCore
import KoshJSON
import KoshFlows
import KoshTesting
import Testing

@Suite("Flows: publishing to the outbox")
struct OutboxFlowTests {
    @Test("each event is planned from its typed entities: a delivery per subscribed endpoint, the notifications it sends")
    func plannedFromEntities() async throws {
        let rig = Rig()
        rig.store.setRecipients(OutboxRecipients(endpoints: [.init(id: "wh_all", events: Set(WebhookEventName.allCases)),
                                                             .init(id: "wh_refunds", events: [.refundProcessed])],
                                                 merchantEmail: "ops@flow.example"), merchantID: rig.merchant.id.rawValue)
        let payment = try await rig.captured()
        let json = try body(try await rig.flows.refund(merchant: rig.merchant, paymentID: payment.id,
                                                       NewRefund(amount: 2_500, speed: .optimum, receipt: nil, notes: Notes())))
        let state = rig.store.snapshot
        #expect(state.outbox.map(\.name) == [.paymentAuthorized, .paymentCaptured, .orderPaid, .refundCreated, .refundProcessed])
        #expect(state.deliveries.filter { $0.endpoint == "wh_all" }.count == 5)
        #expect(state.deliveries.filter { $0.endpoint == "wh_refunds" }.map(\.event) == [state.outbox[4].id])
        // A capture and a processed refund each notify the customer (email, SMS, push) and the merchant.
        #expect(state.notifications.map(\.template) == ["payment.captured.customer", "payment.captured.customer", "payment.captured.customer",
                                                         "payment.captured.merchant", "refund.processed.customer", "refund.processed.customer",
                                                         "refund.processed.customer", "refund.processed.merchant"])
        #expect(state.notifications[4].subject == "Refund of INR 25.00 processed")
        #expect(state.notifications[7].body.contains(try #require(json["id"]?.stringValue)))
        // The body is rendered once, as the API renders the entities.
        let refundEvent = try JSON.parse(state.outbox[4].body)
        #expect(refundEvent["payload"]?["refund"]?["entity"]?["amount"] == .int(2_500))
    }

    @Test("the event body is Razorpay's shape")
    func eventBody() throws {
        let text = OutboxEvent.body(accountID: "mer_1", name: .orderPaid,
                                    entities: [("payment", .object([("id", .string("pay_1"))])), ("order", .object([("id", .string("order_1"))]))],
                                    createdAt: 1_700_000_000)
        #expect(text == #"{"entity":"event","account_id":"mer_1","event":"order.paid","contains":["payment","order"],"payload":{"payment":{"entity":{"id":"pay_1"}},"order":{"entity":{"id":"order_1"}}},"created_at":1700000000}"#)
    }
}
