import Foundation
import HTTPTypes
import NIOCore
import KoshCore
import KoshJSON
import KoshStorage
import KoshTesting
import Testing

/// The checkout page's calls (`/v1/checkout/…`), which carry only the merchant's public key id:
/// what they may read and pay, and each bad input a 4xx naming its field with nothing created.
@Suite("Checkout API: public key, the order's amount, bad input", .serialized, .timeLimit(.minutes(3)))
struct CheckoutAPITests {
    static func body(_ kosh: Kosh, order: String, _ extra: String) -> String {
        #"{"key_id": "\#(kosh.merchant.keyID)", "order_id": "\#(order)", "email": "gaurav.kumar@example.com", "contact": "9000090000"\#(extra)}"#
    }

    @Test("preferences: the merchant's name, the order's amount, the methods (test mode: UPI collect, no QR); a saved card only for the customer given",
          arguments: TestDatabases.all)
    func preferences(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let order = try await kosh.createOrder(amount: 2_500_000)
            let reply = try await kosh.call(.get, "/v1/checkout/preferences?key_id=\(kosh.merchant.keyID)&order_id=\(order)", auth: "")
            #expect(reply.status == 200, "\(reply.body)")
            #expect(reply.json["merchant"]?["name"] == .string("Test Merchant"))
            #expect(reply.json["order"]?["amount"] == .int(2_500_000))
            #expect(reply.json["methods"]?["upi"]?["collect"] == .bool(true))
            #expect(reply.json["methods"]?["upi"]?["intent"] == .bool(false))
            // ₹25,000 is over the wallets' ₹20,000 cap: no wallet is offered.
            #expect(reply.json["methods"]?["wallet"] == .array([]))
            #expect(reply.headers[.cacheControl] == "no-store")
            #expect(reply.string("key_secret") == nil && !reply.body.contains(kosh.merchant.keySecret))
            // An unknown customer has no saved cards, and is not told apart from a known one.
            let unknown = try await kosh.call(.get, "/v1/checkout/preferences?key_id=\(kosh.merchant.keyID)&order_id=\(order)&customer_id=cust_0000000000000A", auth: "")
            #expect(unknown.status == 200 && unknown.json["saved_cards"] == .array([]), "\(unknown.body)")
        }
    }

    @Test("a checkout payment pays the order's amount whatever the browser says, and is an ordinary payment: authorised, signed, in the ledger",
          arguments: TestDatabases.all)
    func paysTheOrder(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let order = try await kosh.createOrder(amount: 12_345)
            let created = try await kosh.call(.post, "/v1/checkout/payments",
                                              Self.body(kosh, order: order, #", "method": "upi", "vpa": "success@razorpay", "notes": {"size": "M"}"#), auth: "")
            #expect(created.status == 200, "\(created.body)")
            let id = try #require(created.string("razorpay_payment_id"))
            let payment = try await kosh.settle(id)
            #expect(payment.amount == 12_345 && payment.state == .authorized)
            let status = try await kosh.call(.get, "/v1/checkout/payments/\(id)?key_id=\(kosh.merchant.keyID)", auth: "")
            #expect(status.string("status") == "paid", "\(status.body)")
            #expect(status.string("razorpay_signature") == CardAPITests.signature(kosh, order: order, payment: id))
            // Another merchant's key sees nothing of it.
            let other = try await kosh.services.merchants.create(name: "Other")
            let foreign = try await kosh.call(.get, "/v1/checkout/payments/\(id)?key_id=\(other.keyID)", auth: "")
            #expect(foreign.status == 400 && foreign.json["error"]?["description"] == .string("The id provided does not exist"), "\(foreign.body)")
            // An amount in the body is not the browser's to choose.
            let order2 = try await kosh.createOrder(amount: 10_000)
            let amount = try await kosh.call(.post, "/v1/checkout/payments",
                                             Self.body(kosh, order: order2, #", "method": "upi", "vpa": "success@razorpay", "amount": 100"#), auth: "")
            #expect(amount.status == 400 && amount.json["error"]?["field"] == .string("amount"), "\(amount.body)")
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("bad input: each a 400 (401 for the key) naming its field, and no payment created", arguments: TestDatabases.all)
    func badInput(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let order = try await kosh.createOrder(amount: 2_500_000)
            let other = try await kosh.services.merchants.create(name: "Other")
            let otherOrder = try await kosh.createOrder(as: other)
            let cases: [(String, Int, String)] = [
                (#"{"order_id": "\#(order)", "method": "upi", "vpa": "success@razorpay", "email": "a@b.in", "contact": "9000090000"}"#, 400, "key_id"),
                (#"{"key_id": "rzp_test_0000000000000A", "order_id": "\#(order)", "method": "upi", "email": "a@b.in", "contact": "9000090000"}"#, 401, "key_id"),
                (Self.body(kosh, order: otherOrder, #", "method": "upi", "vpa": "success@razorpay""#), 400, "order_id"),
                (Self.body(kosh, order: "order_x", #", "method": "upi""#), 400, "order_id"),
                (Self.body(kosh, order: order, #", "method": "emi""#), 400, "method"),
                (Self.body(kosh, order: order, #", "method": "netbanking", "bank": "NOPE""#), 400, "bank"),
                (Self.body(kosh, order: order, #", "method": "wallet", "wallet": "phonepe""#), 400, "amount"),
                (Self.body(kosh, order: order, #", "method": "upi""#), 400, "vpa"),
                (Self.body(kosh, order: order, #", "method": "upi", "vpa": "not a vpa""#), 400, "vpa"),
                (Self.body(kosh, order: order, #", "method": "card""#), 400, "card"),
                (#"{"key_id": "\#(kosh.merchant.keyID)", "order_id": "\#(order)", "method": "upi", "vpa": "success@razorpay", "contact": "9000090000"}"#, 400, "email"),
                (Self.body(kosh, order: order, #", "method": "upi", "vpa": "success@razorpay", "callback_url": "https://evil.example""#), 400, "callback_url"),
            ]
            for (body, status, field) in cases {
                let reply = try await kosh.call(.post, "/v1/checkout/payments", body, auth: "")
                #expect(reply.status == status, "\(body) → \(reply.body)")
                #expect(reply.json["error"]?["field"] == .string(field), "\(body) → \(reply.body)")
                #expect(reply.json["error"]?["code"] == .string("BAD_REQUEST_ERROR"), "\(reply.body)")
            }
            let payments = try await kosh.call(.get, "/v1/orders/\(order)/payments")
            #expect(payments.json["count"] == .int(0), "\(payments.body)")
            // The QR code of a payment that has none, and an IIN that is not 6 digits.
            let qr = try await kosh.call(.get, "/v1/checkout/payments/pay_0000000000000A/qr.png?key_id=\(kosh.merchant.keyID)", auth: "")
            #expect(qr.status == 400, "\(qr.body)")
            let iin = try await kosh.call(.get, "/v1/checkout/iins/41<script>?key_id=\(kosh.merchant.keyID)", auth: "")
            #expect(iin.status == 400 && iin.json["error"]?["field"] == .string("iin"), "\(iin.body)")
        }
    }

    @Test("cancel: an open attempt fails (payment_cancelled) so the order takes another; an authorised one is left alone", arguments: TestDatabases.all)
    func cancel(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let order = try await kosh.createOrder(amount: 20_000)
            let pay = Self.body(kosh, order: order, #", "method": "upi", "vpa": "success@razorpay""#)
            let first = try #require(try await kosh.call(.post, "/v1/checkout/payments", pay, auth: "").string("razorpay_payment_id"))
            // One open attempt at a time.
            let blocked = try await kosh.call(.post, "/v1/checkout/payments", pay, auth: "")
            #expect(blocked.status == 400, "\(blocked.body)")
            let cancelled = try await kosh.call(.post, "/v1/checkout/payments/\(first)/cancel", #"{"key_id": "\#(kosh.merchant.keyID)"}"#, auth: "")
            #expect(cancelled.string("status") == "failed" && cancelled.json["error"]?["reason"] == .string("payment_cancelled"), "\(cancelled.body)")
            let second = try #require(try await kosh.call(.post, "/v1/checkout/payments", pay, auth: "").string("razorpay_payment_id"))
            #expect(try await kosh.settle(second).state == .authorized)
            let again = try await kosh.call(.post, "/v1/checkout/payments/\(second)/cancel", #"{"key_id": "\#(kosh.merchant.keyID)"}"#, auth: "")
            #expect(again.string("status") == "paid", "\(again.body)")
            #expect(try await kosh.services.flows.payment(id: ID(second)).state == .authorized)
            // The first, approved by the payer after it was cancelled: a late authorisation, given
            // back in full by the merchant's policy (refund) — never a second charge for the order.
            var late = try await kosh.services.flows.payment(id: ID(first))
            for _ in 0..<200 where late.state != .refunded {
                _ = try await kosh.services.flows.runDueChecks()
                _ = try await kosh.services.flows.sendPendingRefunds(olderThanMillis: 0)
                kosh.clock.advance(byMillis: 100)
                late = try await kosh.services.flows.payment(id: ID(first))
            }
            #expect(late.state == .refunded && late.autoRefunded, "\(late.state)")
            // A saved card needs its CVV.
            let token = try await kosh.call(.post, "/v1/checkout/payments",
                                            Self.body(kosh, order: try await kosh.createOrder(), #", "method": "card", "token": "token_0000000000000A", "customer_id": "cust_0000000000000A""#), auth: "")
            #expect(token.status == 400 && token.json["error"]?["field"] == .string("card.cvv"), "\(token.body)")
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("a paid order is refused: the page cannot take a second payment for it", arguments: TestDatabases.all)
    func paidOrder(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let id = try await kosh.capturedPayment()
            let order = try await kosh.services.flows.payment(id: ID(id)).orderID.rawValue
            let preferences = try await kosh.call(.get, "/v1/checkout/preferences?key_id=\(kosh.merchant.keyID)&order_id=\(order)", auth: "")
            #expect(preferences.status == 400 && preferences.json["error"]?["reason"] == .string("order_already_paid"), "\(preferences.body)")
            let pay = try await kosh.call(.post, "/v1/checkout/payments", Self.body(kosh, order: order, #", "method": "upi", "vpa": "success@razorpay""#), auth: "")
            #expect(pay.status == 400 && pay.json["error"]?["field"] == .string("order_id"), "\(pay.body)")
        }
    }

    @Test("the hosted page: callback_url only on the merchant's checkout origins; every option lands in a JSON data block, escaped",
          arguments: ["sqlite"])
    func hostedPage(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let shop = try await kosh.services.merchants.create(name: "Shop", checkout: CheckoutSettings(origins: ["https://shop.example"]))
            let order = try await kosh.createOrder(as: shop)
            func post(_ form: String) async throws -> Kosh.Reply {
                try await kosh.client.execute(uri: "/v1/checkout/embedded", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                              body: ByteBuffer(string: form)) { response in
                    Kosh.Reply(status: Int(response.status.code), body: String(buffer: response.body), headers: response.headers)
                }
            }
            let hostile = "%3C%2Fscript%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E"
            let page = try await post("key_id=\(shop.keyID)&order_id=\(order)&callback_url=https%3A%2F%2Fshop.example%2Fdone&name=\(hostile)&notes%5Bx%5D=\(hostile)")
            #expect(page.status == 200, "\(page.body)")
            #expect(page.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
            #expect(!page.body.contains("<script>alert"), "merchant strings never appear as markup")
            #expect(page.body.contains(#"\u003c\/script\u003e\u003cscript\u003ealert(1)"#) || page.body.contains(#"\u003c/script\u003e\u003cscript\u003ealert(1)"#), "\(page.body)")
            for url in ["https://evil.example/done", "https://shop.example.evil.example/", "https://shop.example@evil.example/", "javascript:alert(1)",
                        "//evil.example/", "http://shop.example/done"] {
                let encoded = url.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
                let refused = try await post("key_id=\(shop.keyID)&order_id=\(order)&callback_url=\(encoded)")
                #expect(refused.status == 400 && refused.json["error"]?["field"] == .string("callback_url"), "\(url) → \(refused.body)")
            }
            // A merchant that set no origins cannot be sent anywhere from a hosted page.
            let plain = try await post("key_id=\(kosh.merchant.keyID)&order_id=\(try await kosh.createOrder())&callback_url=https%3A%2F%2Fshop.example%2F")
            #expect(plain.status == 400 && plain.json["error"]?["field"] == .string("callback_url"), "\(plain.body)")
        }
    }

    @Test("checkout.js and the page stay small: under 150 KB together, uncompressed", arguments: ["sqlite"])
    func small(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            var total = 0
            for path in ["/v1/checkout.js", "/v1/checkout/page", "/v1/checkout/assets/page.js", "/v1/checkout/assets/page.css"] {
                let reply = try await kosh.call(.get, path, auth: "")
                #expect(reply.status == 200, "\(path)")
                total += reply.body.utf8.count
            }
            #expect(total < 150_000, "\(total) bytes")
            #expect(total > 10_000, "the page is all there: \(total) bytes")
        }
    }
}
