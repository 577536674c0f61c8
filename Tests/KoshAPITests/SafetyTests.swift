import Foundation
import HTTPTypes
import HummingbirdTesting
import KoshCore
import KoshStorage
import KoshTesting
import Testing

@Suite("Auth, isolation and bad input", .serialized, .timeLimit(.minutes(5)))
struct SafetyTests {
    @Test("anything but the right key is 401 in Razorpay's shape", arguments: TestDatabases.all)
    func authentication(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let wrongSecret = "Basic " + Data("\(kosh.merchant.keyID):nope".utf8).base64EncodedString()
            for auth in ["", "Bearer x", "Basic !!!", "Basic " + Data("no-colon".utf8).base64EncodedString(), wrongSecret] {
                let reply = try await kosh.call(.get, "/v1/orders", auth: auth)
                #expect(reply.status == 401)
                #expect(reply.errorDescription == "Authentication failed")
                #expect(reply.json["error"]?["code"] == .string("BAD_REQUEST_ERROR"))
            }
            #expect(try await kosh.call(.get, "/v1/orders").status == 200)
        }
    }

    @Test("a merchant can never read or act on another merchant's objects", arguments: TestDatabases.all)
    func isolation(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let other = try await kosh.services.merchants.create(name: "Other")
            let payment = try await kosh.capturedPayment(amount: 5_000)
            let order = try await kosh.createOrder()
            let refund = try await kosh.call(.post, "/v1/payments/\(payment)/refund", #"{"amount": 100}"#)
            let refundID = try #require(refund.string("id"))
            let probes: [(HTTPRequest.Method, String, String?)] = [
                (.get, "/v1/orders/\(order)", nil), (.get, "/v1/orders/\(order)/payments", nil),
                (.get, "/v1/payments/\(payment)", nil), (.get, "/v1/payments/\(payment)/refunds", nil),
                (.get, "/v1/refunds/\(refundID)", nil), (.get, "/v1/payments/\(payment)/refunds/\(refundID)", nil),
                (.post, "/v1/payments/\(payment)/refund", #"{"amount": 100}"#),
                (.post, "/v1/payments/\(payment)/capture", #"{"amount": 5000, "currency": "INR"}"#),
                (.post, "/v1/payments/\(payment)/cancel", nil),
            ]
            for (method, path, body) in probes {
                let reply = try await kosh.call(method, path, body, as: other)
                #expect(reply.status == 400, "\(path)")
                #expect(reply.errorDescription == "The id provided does not exist", "\(path)")
            }
            let pay = try await kosh.createPayment(order: order, as: other)
            #expect(pay.status == 400)
            #expect(try await kosh.call(.get, "/v1/payments", as: other).int("count") == 0)
            #expect(try await kosh.call(.get, "/v1/orders", as: other).int("count") == 0)
            #expect(try await kosh.call(.get, "/v1/refunds", as: other).int("count") == 0)
            #expect(try await kosh.call(.get, "/v1/payments/\(payment)").int("amount_refunded") == 100)
        }
    }

    static let badOrders: [(String, String?)] = [
        ("{\"amount\": 5", nil),
        ("[1, 2]", nil),
        ("", nil),
        ("{\"amount\": \"abc\", \"currency\": \"INR\"}", "amount"),
        ("{\"amount\": 100.5, \"currency\": \"INR\"}", "amount"),
        ("{\"currency\": \"INR\"}", "amount"),
        ("{\"amount\": 99, \"currency\": \"INR\"}", "amount"),
        ("{\"amount\": 50000001, \"currency\": \"INR\"}", "amount"),
        ("{\"amount\": 99999999999999999999999, \"currency\": \"INR\"}", "amount"),
        ("{\"amount\": -100, \"currency\": \"INR\"}", "amount"),
        ("{\"amount\": 1000, \"currency\": \"USD\"}", "currency"),
        ("{\"amount\": 1000, \"currency\": 5}", "currency"),
        ("{\"amount\": 1000, \"receipt\": \"\(String(repeating: "r", count: 41))\"}", "receipt"),
        ("{\"amount\": 1000, \"notes\": \"x\"}", "notes"),
        ("{\"amount\": 1000, \"notes\": {\"a\": {\"b\": 1}}}", "notes"),
        ("{\"amount\": 1000, \"notes\": {\(( 1...16).map { "\"k\($0)\": \"v\"" }.joined(separator: ","))}}", "notes"),
        ("{\"amount\": 1000, \"notes\": {\"k\": \"\(String(repeating: "v", count: 257))\"}}", "notes"),
        ("{\"amount\": 1000, \"surprise\": true}", "surprise"),
    ]

    @Test("bad input gets a 400 naming the field", arguments: badOrders)
    func badOrderInput(body: String, field: String?) async throws {
        try await Kosh.run("sqlite") { kosh in
            let reply = try await kosh.call(.post, "/v1/orders", body)
            #expect(reply.status == 400, "\(body) → \(reply.body)")
            #expect(reply.json["error"]?["code"] == .string("BAD_REQUEST_ERROR"))
            if let field { #expect(reply.json["error"]?["field"] == .string(field), "\(reply.body)") }
            #expect(try await kosh.call(.get, "/v1/orders").int("count") == 0, "nothing half-written")
        }
    }

    @Test("oversized bodies, unknown ids, bad queries and unknown routes are 4xx", arguments: TestDatabases.all)
    func otherBadInput(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let huge = "{\"amount\": 1000, \"receipt\": \"" + String(repeating: "x", count: 1 << 20) + "\"}"
            let tooLarge = try await kosh.call(.post, "/v1/orders", huge)
            #expect(tooLarge.status == 413)
            #expect(tooLarge.json["error"]?["code"] == .string("BAD_REQUEST_ERROR"))
            for path in ["/v1/orders/order_AAAAAAAAAAAAAA", "/v1/payments/pay_AAAAAAAAAAAAAA", "/v1/refunds/rfnd_AAAAAAAAAAAAAA",
                         "/v1/orders/not-an-id", "/v1/payments/order_AAAAAAAAAAAAAA", "/v1/payments/pay_AAAAAAAAAAAAAA/refunds"] {
                let reply = try await kosh.call(.get, path)
                #expect(reply.status == 400, "\(path)")
                #expect(reply.json["error"] != nil)
            }
            for query in ["count=0", "count=101", "count=x", "skip=-1", "from=abc"] {
                #expect(try await kosh.call(.get, "/v1/payments?\(query)").status == 400, "\(query)")
            }
            let missing = try await kosh.call(.get, "/v1/nothing-here")
            #expect(missing.status == 404)
            #expect(missing.json["error"] != nil)
            let order = try await kosh.createOrder(amount: 1_000)
            let badPayments = [
                #"{"order_id": "\#(order)", "amount": 1000, "vpa": "not-a-vpa", "email": "a@b.co", "contact": "9123456789"}"#,
                #"{"order_id": "\#(order)", "amount": 1000, "vpa": "someone@okhdfcbank", "email": "a@b.co", "contact": "9123456789"}"#,
                #"{"order_id": "\#(order)", "amount": 999, "vpa": "success@razorpay", "email": "a@b.co", "contact": "9123456789"}"#,
                #"{"order_id": "\#(order)", "amount": 1000, "vpa": "success@razorpay", "contact": "9123456789"}"#,
                #"{"order_id": "\#(order)", "amount": 1000, "vpa": "success@razorpay", "email": "a@b.co", "contact": "12"}"#,
                #"{"order_id": "order_AAAAAAAAAAAAAA", "amount": 1000, "vpa": "success@razorpay", "email": "a@b.co", "contact": "9123456789"}"#,
                #"{"order_id": "\#(order)", "amount": 1000, "method": "card", "vpa": "success@razorpay", "email": "a@b.co", "contact": "9123456789"}"#,
            ]
            for body in badPayments {
                let reply = try await kosh.call(.post, "/v1/payments/create/upi", body)
                #expect(reply.status == 400, "\(body) → \(reply.body)")
            }
            #expect(try await kosh.call(.get, "/v1/payments").int("count") == 0)
            // The nested Razorpay form is accepted.
            let nested = try await kosh.call(.post, "/v1/payments/create/upi", #"""
                {"order_id": "\#(order)", "amount": 1000, "currency": "INR", "method": "upi", "email": "a@b.co", "contact": "+919123456789",
                 "upi": {"flow": "collect", "vpa": "success@razorpay", "expiry_time": 5}, "ip": "127.0.0.1", "user_agent": "curl"}
                """#)
            #expect(nested.status == 200, "\(nested.body)")
        }
    }
}
