import Foundation
import KoshCore
import KoshJSON
import KoshStorage
import KoshTesting
import Testing

/// Capture settings (issue 14): `payment_capture` on orders, the merchant's default, and the
/// manual capture window after which the janitor releases an authorisation — on both databases.
@Suite("Capture settings: auto-capture, manual capture and its window")
struct CaptureSettingsTests {
    func order(_ kosh: Kosh, capture: String?, amount: Int64 = 50_000, as merchant: MerchantCredentials? = nil) async throws -> String {
        let field = capture.map { #", "payment_capture": \#($0)"# } ?? ""
        let reply = try await kosh.call(.post, "/v1/orders", #"{"amount": \#(amount), "currency": "INR"\#(field)}"#, as: merchant)
        #expect(reply.status == 200, "\(reply.body)")
        return try #require(reply.string("id"))
    }

    func pay(_ kosh: Kosh, order: String, amount: Int64 = 50_000, as merchant: MerchantCredentials? = nil) async throws -> Payment {
        let created = try await kosh.createPayment(order: order, amount: amount, as: merchant)
        #expect(created.status == 200, "\(created.body)")
        return try await kosh.settle(try #require(created.string("razorpay_payment_id")))
    }

    @Test("payment_capture: 1 (or true, \"1\") captures the payment as soon as it is authorised, with its fee, the order paid and payment.captured published",
          arguments: TestDatabases.all)
    func autoCapture(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            for value in ["1", "true", #""1""#] {
                let order = try await order(kosh, capture: value)
                let payment = try await pay(kosh, order: order)
                #expect(payment.state == .captured, "payment_capture \(value)")
                let fetched = try await kosh.call(.get, "/v1/payments/\(payment.id.rawValue)")
                #expect(fetched.json["captured"] == .bool(true) && fetched.int("fee") == 1_180, "\(fetched.body)")
                #expect(try await kosh.call(.get, "/v1/orders/\(order)").string("status") == "paid")
                let events = try await kosh.services.db.transaction { conn in
                    try await conn.query("SELECT event FROM events WHERE payload LIKE ?", [.text("%\(payment.id.rawValue)%")])
                }.compactMap { $0.text("event") }
                #expect(events.contains("payment.captured"), "\(events)")
            }
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("a merchant whose default is auto-capture: orders that do not say are captured; payment_capture: 0 leaves one to the merchant",
          arguments: TestDatabases.all)
    func merchantDefault(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let merchant = try await kosh.services.merchants.create(name: "Auto Capture", capture: CaptureSettings(automatic: true))
            #expect(try await pay(kosh, order: try await order(kosh, capture: nil, as: merchant), as: merchant).state == .captured)
            #expect(try await pay(kosh, order: try await order(kosh, capture: "0", as: merchant), as: merchant).state == .authorized)
            #expect(try await pay(kosh, order: try await order(kosh, capture: "false", as: merchant), as: merchant).state == .authorized)
            #expect(try await pay(kosh, order: try await order(kosh, capture: nil)).state == .authorized, "the default merchant: manual")
        }
    }

    @Test("manual capture: within the window the merchant captures; past it the janitor refunds a UPI payment in full and voids a card's authorisation",
          arguments: TestDatabases.all)
    func windowExpiry(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let captured = try await pay(kosh, order: try await order(kosh, capture: "0"))
            let released = try await pay(kosh, order: try await order(kosh, capture: nil))
            let (card, _) = try await CardAPITests.pay(kosh)
            #expect(try await kosh.services.flows.payment(id: ID(card)).state == .authorized)

            kosh.clock.advance(bySeconds: CaptureSettings.defaultWindowSeconds - 60)
            #expect(try await kosh.services.flows.settleDueCaptures() == 0, "nothing is due within the window")
            let capture = try await kosh.call(.post, "/v1/payments/\(captured.id.rawValue)/capture", #"{"amount": 50000, "currency": "INR"}"#)
            #expect(capture.string("status") == "captured", "\(capture.body)")

            kosh.clock.advance(bySeconds: 120)
            #expect(try await kosh.services.flows.settleDueCaptures() == 2)
            let refunded = try await kosh.call(.get, "/v1/payments/\(released.id.rawValue)")
            #expect(refunded.string("status") == "refunded" && refunded.string("refund_status") == "full", "\(refunded.body)")
            let refunds = try await kosh.call(.get, "/v1/payments/\(released.id.rawValue)/refunds")
            #expect(refunds.int("count") == 1 && refunds.json["items"]?[0]?["notes"]?["reason"] == .string("not_captured_in_time"), "\(refunds.body)")
            _ = try await kosh.services.flows.sendPendingRefunds(olderThanMillis: 0)
            #expect(try await kosh.call(.get, "/v1/payments/\(released.id.rawValue)/refunds").json["items"]?[0]?["status"] == .string("processed"))
            let voided = try await kosh.call(.get, "/v1/payments/\(card)")
            #expect(voided.string("status") == "refunded" && voided.string("refund_status") == "full", "\(voided.body)")
            #expect(try await kosh.services.flows.payment(id: ID(card)).state == .voided)
            #expect(try await kosh.call(.get, "/v1/payments/\(captured.id.rawValue)").string("status") == "captured")
            #expect(try await kosh.services.flows.settleDueCaptures() == 0, "each released once")
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("payment_capture other than 1/0/true/false is a 400 naming the field, and no order is made", arguments: TestDatabases.all)
    func badValue(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            for value in [#""yes""#, "2", "[1]", #"{"a": 1}"#] {
                let reply = try await kosh.call(.post, "/v1/orders", #"{"amount": 50000, "currency": "INR", "payment_capture": \#(value)}"#)
                #expect(reply.status == 400 && reply.json["error"]?["field"] == .string("payment_capture"), "\(value): \(reply.body)")
            }
            #expect(try await kosh.call(.get, "/v1/orders").int("count") == 0)
        }
    }
}
