import Foundation
import KoshCore
import KoshJSON
import KoshTesting
import Testing

/// The official SDK's calls on what Kosh has (issue 14, item 6): `order.edit`, `payment.edit`,
/// `refund.edit` (PATCH notes), `refund.create` (POST /v1/refunds), `webhook.edit` (PUT) and
/// `fetchDownTimeById`.
@Suite("The SDK's edit calls, refund.create and downtimes by id")
struct SDKEditCallsTests {
    @Test("PATCH notes replaces an order's, a payment's and a refund's notes; fetches show them; other fields and bad notes are refused",
          arguments: TestDatabases.all)
    func editNotes(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let paymentID = try await kosh.capturedPayment()
            let payment = try await kosh.services.flows.payment(id: ID(paymentID))
            let order = payment.orderID.rawValue
            let refund = try await kosh.call(.post, "/v1/payments/\(paymentID)/refund", #"{"amount": 1000, "notes": {"a": "1"}}"#)
            let refundID = try #require(refund.string("id"))

            for path in ["/v1/orders/\(order)", "/v1/payments/\(paymentID)", "/v1/refunds/\(refundID)"] {
                let edited = try await kosh.call(.patch, path, #"{"notes": {"shipping": "express", "gift": "yes"}}"#)
                #expect(edited.status == 200, "\(path): \(edited.body)")
                #expect(edited.json["notes"] == .object([("shipping", .string("express")), ("gift", .string("yes"))]), "\(path): \(edited.body)")
                let fetched = try await kosh.call(.get, path)
                #expect(fetched.json["notes"]?["shipping"] == .string("express") && fetched.json["notes"]?["a"] == nil, "\(path): \(fetched.body)")

                let other = try await kosh.call(.patch, path, #"{"notes": {"x": "y"}, "amount": 1}"#)
                #expect(other.status == 400, "\(path): \(other.body)")
                let none = try await kosh.call(.patch, path, "{}")
                #expect(none.status == 400 && none.json["error"]?["field"] == .string("notes"), "\(path): \(none.body)")
                let many = "{" + (0..<16).map { #""k\#($0)": "v""# }.joined(separator: ",") + "}"
                let tooMany = try await kosh.call(.patch, path, #"{"notes": \#(many)}"#)
                #expect(tooMany.status == 400, "\(path): \(tooMany.body)")
                #expect(try await kosh.call(.get, path).json["notes"]?["gift"] == .string("yes"), "a refused edit changes nothing")
                let cleared = try await kosh.call(.patch, path, #"{"notes": null}"#)
                #expect(cleared.status == 200 && cleared.json["notes"] == .array([]), "\(path): \(cleared.body)")
                _ = try await kosh.call(.patch, path, #"{"notes": {"shipping": "express", "gift": "yes"}}"#)
            }
            // Another merchant's entities do not exist for this one.
            let other = try await kosh.services.merchants.create(name: "Other")
            #expect(try await kosh.call(.patch, "/v1/payments/\(paymentID)", #"{"notes": {}}"#, as: other).status == 400)
            #expect(try await kosh.call(.get, "/v1/payments/\(paymentID)").json["amount_refunded"] == .int(1_000))
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("POST /v1/refunds with payment_id refunds like /payments/:id/refund; a missing or unknown payment_id is a 400 naming it",
          arguments: TestDatabases.all)
    func refundCreate(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let paymentID = try await kosh.capturedPayment()
            let refund = try await kosh.call(.post, "/v1/refunds", #"{"payment_id": "\#(paymentID)", "amount": 2000, "notes": {"why": "size"}}"#)
            #expect(refund.status == 200 && refund.string("payment_id") == paymentID && refund.int("amount") == 2_000, "\(refund.body)")
            #expect(refund.string("status") == "processed")
            let missing = try await kosh.call(.post, "/v1/refunds", #"{"amount": 2000}"#)
            #expect(missing.status == 400 && missing.json["error"]?["field"] == .string("payment_id"), "\(missing.body)")
            let bad = try await kosh.call(.post, "/v1/refunds", #"{"payment_id": "order_abc", "amount": 2000}"#)
            #expect(bad.status == 400 && bad.json["error"]?["field"] == .string("payment_id"), "\(bad.body)")
            let unknown = try await kosh.call(.post, "/v1/refunds", #"{"payment_id": "pay_0000000000000A", "amount": 2000}"#)
            #expect(unknown.status == 400, "\(unknown.body)")
            #expect(try await kosh.call(.get, "/v1/payments/\(paymentID)").json["amount_refunded"] == .int(2_000))
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("PUT /v1/webhooks/:id edits as PATCH does; GET /v1/payments/downtimes/:id of an unknown id is a 400")
    func webhookPutAndDowntime() async throws {
        try await Kosh.run("sqlite") { kosh in
            let created = try await kosh.call(.post, "/v1/webhooks", #"{"url": "https://hooks.example.com/hook", "events": ["payment.captured"]}"#)
            let id = try #require(created.string("id"))
            let edited = try await kosh.call(.put, "/v1/webhooks/\(id)", #"{"events": ["payment.captured", "refund.processed"], "active": false}"#)
            #expect(edited.status == 200, "\(edited.body)")
            #expect(edited.json["active"] == .bool(false))
            let fetched = try await kosh.call(.get, "/v1/webhooks/\(id)")
            #expect(fetched.json["active"] == .bool(false), "\(fetched.body)")
            let downtime = try await kosh.call(.get, "/v1/payments/downtimes/down_0000000000000A")
            #expect(downtime.status == 400, "\(downtime.body)")
            #expect(try await kosh.call(.get, "/v1/payments/downtimes").status == 200)
        }
    }

    @Test("GET /v1/methods and /methods: cards with their networks, the banks by code, the wallets, UPI; both need the key")
    func methods() async throws {
        try await Kosh.run("sqlite") { kosh in
            for path in ["/v1/methods", "/methods"] {
                let reply = try await kosh.call(.get, path)
                #expect(reply.status == 200, "\(path): \(reply.body)")
                #expect(reply.string("entity") == "methods" && reply.json["card"] == .bool(true) && reply.json["upi"] == .bool(true))
                #expect(reply.json["card_networks"]?["VISA"] == .int(1) && reply.json["card_networks"]?["RUPAY"] == .int(1))
                #expect(reply.json["netbanking"]?["HDFC"] == .string("HDFC Bank") && reply.json["netbanking"]?["SBIN"] == .string("State Bank of India"))
                #expect(reply.json["wallet"]?["phonepe"] == .bool(true) && reply.json["wallet"]?["paytm"] == nil)
                #expect(try await kosh.call(.get, path, auth: "Basic Zm9vOmJhcg==").status == 401)
            }
        }
    }
}
