import Foundation
import KoshCore
import KoshStorage
import KoshTesting
import Testing

@Suite("Payment lifecycle through the API", .serialized, .timeLimit(.minutes(5)))
struct LifecycleTests {
    @Test("order → UPI payment → authorised → captured → refunds", arguments: TestDatabases.all)
    func fullLifecycle(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let order = try await kosh.createOrder(amount: 50_000)
            let created = try await kosh.createPayment(order: order)
            #expect(created.status == 200)
            let paymentID = try #require(created.string("razorpay_payment_id"))
            #expect(created.body == #"{"razorpay_payment_id":"\#(paymentID)"}"#)

            // Asynchronous approval: first created, then authorized.
            let early = try await kosh.call(.get, "/v1/payments/\(paymentID)")
            #expect(early.string("status") == "created")
            #expect(try await kosh.settle(paymentID).state == .authorized)
            let authorized = try await kosh.call(.get, "/v1/payments/\(paymentID)")
            #expect(authorized.string("status") == "authorized")
            #expect(authorized["captured"] == .bool(false))
            #expect(authorized["fee"] == .null)

            let orderAttempted = try await kosh.call(.get, "/v1/orders/\(order)")
            #expect(orderAttempted.string("status") == "attempted")
            #expect(orderAttempted.int("attempts") == 1)

            // Capture must equal the authorised amount.
            let wrong = try await kosh.call(.post, "/v1/payments/\(paymentID)/capture", #"{"amount": 40000, "currency": "INR"}"#)
            #expect(wrong.status == 400)
            #expect(wrong.json["error"]?["field"] == .string("amount"))
            let captured = try await kosh.call(.post, "/v1/payments/\(paymentID)/capture", #"{"amount": 50000, "currency": "INR"}"#)
            #expect(captured.status == 200)
            #expect(captured.string("status") == "captured")
            #expect(captured["captured"] == .bool(true))
            #expect(captured.int("fee") == 1_180)  // 2 % of 50,000 = 1,000 + 18 % GST = 180
            #expect(captured.int("tax") == 180)
            let again = try await kosh.call(.post, "/v1/payments/\(paymentID)/capture", #"{"amount": 50000, "currency": "INR"}"#)
            #expect(again.status == 400)
            #expect(again.errorDescription == "This payment has already been captured")

            let paid = try await kosh.call(.get, "/v1/orders/\(order)")
            #expect(paid.string("status") == "paid")
            #expect(paid.int("amount_paid") == 50_000)
            #expect(paid.int("amount_due") == 0)

            // Partial, then the rest (no amount = everything refundable).
            let r1 = try await kosh.call(.post, "/v1/payments/\(paymentID)/refund", #"{"amount": 20000, "notes": {"reason": "damaged"}}"#)
            #expect(r1.status == 200)
            #expect(r1.string("entity") == "refund")
            #expect(r1.string("status") == "processed")
            #expect(r1.json["notes"]?["reason"] == .string("damaged"))
            let partial = try await kosh.call(.get, "/v1/payments/\(paymentID)")
            #expect(partial.string("status") == "captured")
            #expect(partial.string("refund_status") == "partial")
            #expect(partial.int("amount_refunded") == 20_000)
            let over = try await kosh.call(.post, "/v1/payments/\(paymentID)/refund", #"{"amount": 30001}"#)
            #expect(over.status == 400)
            kosh.clock.advance(bySeconds: 1)  // lists are newest first by created_at (seconds)
            let r2 = try await kosh.call(.post, "/v1/payments/\(paymentID)/refund", "{}")
            #expect(r2.int("amount") == 30_000)
            let full = try await kosh.call(.get, "/v1/payments/\(paymentID)")
            #expect(full.string("status") == "refunded")
            #expect(full.string("refund_status") == "full")
            #expect(full.int("amount_refunded") == 50_000)
            let none = try await kosh.call(.post, "/v1/payments/\(paymentID)/refund", #"{"amount": 100}"#)
            #expect(none.status == 400)

            let refunds = try await kosh.call(.get, "/v1/payments/\(paymentID)/refunds")
            #expect(refunds.string("entity") == "collection")
            #expect(refunds.int("count") == 2)
            if case .array(let items)? = refunds.json["items"] {
                #expect(items.map { $0["id"] } == [r2.json["id"], r1.json["id"]], "newest first")
            }
            let r1ID = try #require(r1.string("id"))
            #expect(try await kosh.call(.get, "/v1/payments/\(paymentID)/refunds/\(r1ID)").int("amount") == 20_000)
            #expect(try await kosh.call(.get, "/v1/refunds/\(r1ID)").string("payment_id") == paymentID)
            #expect(try await kosh.call(.get, "/v1/refunds").int("count") == 2)
            #expect(try await kosh.call(.get, "/v1/orders/\(order)/payments").int("count") == 1)
            #expect(try await kosh.call(.get, "/v1/payments?count=1").int("count") == 1)

            // Every transition is in the append-only event log.
            let events = try await kosh.services.db.transaction { conn in
                try await SQLStoreTransaction(conn: conn).events(entityID: paymentID)
            }
            #expect(events.map(\.event) == ["created", "submit", "authorize", "capture", "refund", "refund"])

            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("failure@razorpay fails with Razorpay's error fields; the order can be paid again", arguments: TestDatabases.all)
    func declined(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let order = try await kosh.createOrder(amount: 10_000)
            let created = try await kosh.createPayment(order: order, amount: 10_000, vpa: "failure@razorpay")
            let id = try #require(created.string("razorpay_payment_id"))
            #expect(try await kosh.settle(id).state == .failed)
            let failed = try await kosh.call(.get, "/v1/payments/\(id)")
            #expect(failed.string("status") == "failed")
            #expect(failed.string("error_code") == "BAD_REQUEST_ERROR")
            #expect(failed.string("error_reason") == "payment_declined")
            #expect(failed.string("error_source") == "customer")
            #expect(failed.string("error_step") == "payment_authorization")
            #expect(failed.string("error_description") != nil)
            #expect(try await kosh.call(.post, "/v1/payments/\(id)/capture", #"{"amount": 10000, "currency": "INR"}"#).status == 400)
            #expect(try await kosh.call(.post, "/v1/payments/\(id)/refund", #"{"amount": 100}"#).status == 400)

            let retry = try await kosh.createPayment(order: order, amount: 10_000)
            let second = try #require(retry.string("razorpay_payment_id"))
            #expect(try await kosh.settle(second).state == .authorized)
            #expect(try await kosh.call(.get, "/v1/orders/\(order)").int("attempts") == 2)
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("cancel voids an authorisation and releases the hold", arguments: TestDatabases.all)
    func voidAuthorization(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let id = try await kosh.authorizedPayment(amount: 7_500)
            let cancelled = try await kosh.call(.post, "/v1/payments/\(id)/cancel")
            #expect(cancelled.status == 200, "\(cancelled.body)")
            #expect(cancelled.string("status") == "refunded")
            #expect(cancelled.string("refund_status") == "full")
            #expect(cancelled["captured"] == .bool(false))
            #expect(try await kosh.call(.post, "/v1/payments/\(id)/cancel").status == 400)
            #expect(try await kosh.call(.post, "/v1/payments/\(id)/capture", #"{"amount": 7500, "currency": "INR"}"#).status == 400)
            let captured = try await kosh.capturedPayment(amount: 2_000)
            #expect(try await kosh.call(.post, "/v1/payments/\(captured)/cancel").status == 400)
            try await kosh.expectLedgerConsistent()
            let pending = try await kosh.services.db.transaction { conn in
                try await conn.query("SELECT CAST(SUM(pending) AS BIGINT) AS p FROM ledger_accounts", []).first?.int("p")
            }
            #expect(pending == 0)
        }
    }

    @Test("a payment still created after a restart is submitted by the janitor", arguments: TestDatabases.all)
    func janitorSubmitsOrphans(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let merchant = try #require(try await kosh.services.store.transaction { tx in try await tx.merchant(id: kosh.merchant.merchant.id) })
            let order = try await kosh.createOrder(amount: 1_000)
            // The request's transaction committed but the process died before the rail call.
            // Its follow-up (`.submit`) never runs.
            let (payment, _) = try await kosh.services.store.transaction { tx in
                try await kosh.services.flows.createPayment(tx, merchant: merchant, NewPayment(
                    orderID: ID(order), amount: 1_000, currency: .inr, method: .upi, vpa: "success@razorpay", email: nil, contact: nil,
                    description: nil, notes: Notes()), inline: false)
            }
            #expect(try await kosh.services.flows.payment(id: payment.id).state == .created)
            #expect(try await kosh.settle(payment.id.rawValue).state == .authorized)  // after the 1 s grace
        }
    }
}
