import Crypto
import Foundation
import HTTPTypes
import KoshApp
import KoshCore
import KoshJSON
import KoshStorage
import KoshTesting
import NIOCore
import Testing

/// Card payments through the API in test mode (Razorpay's test cards, the in-process test
/// connector), on SQLite and PostgreSQL.
@Suite("Card payments (test mode)", .timeLimit(.minutes(2)))
struct CardAPITests {
    static let visa = "4100280000001007"

    static func cardBody(order: String, amount: Int64 = 50_000, number: String = visa, month: String = "12", year: String = "30",
                         cvv: String = "123", extra: String = "") -> String {
        """
        {"order_id": "\(order)", "amount": \(amount), "currency": "INR", "method": "card", "email": "gaurav.kumar@example.com",
         "contact": "9123456789", "ip": "203.0.113.7", "user_agent": "Mozilla/5.0", "referer": "https://shop.example.com",
         "authentication": {"authentication_channel": "browser"},
         "browser": {"java_enabled": false, "javascript_enabled": true, "timezone_offset": -330, "color_depth": 24,
                     "screen_width": 1440, "screen_height": 900, "language": "en-IN"},
         "card": {"number": "\(number)", "expiry_month": "\(month)", "expiry_year": "\(year)", "cvv": "\(cvv)", "name": "Gaurav Kumar"}\(extra)}
        """
    }

    /// create/json, otp_generate, otp/submit with `otp`: the last reply.
    static func pay(_ kosh: Kosh, number: String = visa, amount: Int64 = 50_000, otp: String = "123456") async throws -> (id: String, reply: Kosh.Reply) {
        let order = try await kosh.createOrder(amount: amount)
        let created = try await kosh.call(.post, "/v1/payments/create/json", cardBody(order: order, amount: amount, number: number))
        #expect(created.status == 200, "\(created.body)")
        let id = try #require(created.string("razorpay_payment_id"))
        let generated = try await kosh.call(.post, "/v1/payments/\(id)/otp_generate", "{}")
        guard generated.status == 200, generated.json["next"] != nil, generated.string("razorpay_signature") == nil else {
            return (id, generated)  // authentication failed at the ACS
        }
        return (id, try await kosh.call(.post, "/v1/payments/\(id)/otp/submit", #"{"otp": "\#(otp)"}"#))
    }

    static func signature(_ kosh: Kosh, order: String, payment: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(order)|\(payment)".utf8), using: SymmetricKey(data: Data(kosh.merchant.keySecret.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    @Test("a card payment end to end: create/json → otp_generate → wrong OTP → right OTP → signed → capture → refund; the entity carries the card", arguments: TestDatabases.all)
    func endToEnd(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let order = try await kosh.createOrder(amount: 50_000)
            let created = try await kosh.call(.post, "/v1/payments/create/json", Self.cardBody(order: order))
            #expect(created.status == 200, "\(created.body)")
            let id = try #require(created.string("razorpay_payment_id"))
            #expect(created.json["next"]?[0]?["action"] == .string("redirect"))
            #expect(created.json["next"]?[1]?["action"] == .string("otp_generate"))
            #expect(try await kosh.call(.get, "/v1/payments/\(id)").string("status") == "created")

            let generated = try await kosh.call(.post, "/v1/payments/\(id)/otp_generate", "{}")
            #expect(generated.status == 200, "\(generated.body)")
            #expect(generated.json["metadata"]?["last4"] == .string("1007"))
            #expect(generated.json["metadata"]?["network"] == .string("VISA"))

            let wrong = try await kosh.call(.post, "/v1/payments/\(id)/otp/submit", #"{"otp": "12"}"#)
            #expect(wrong.status == 400 && wrong.json["error"]?["reason"] == .string("incorrect_otp"), "\(wrong.body)")
            #expect(wrong.json["next"] == .array([.string("otp_submit"), .string("otp_resend")]))
            // Razorpay's curl submits the OTP form-encoded; the otp_submit URL of the next action works too.
            let right = try await kosh.client.execute(uri: "/v1/payments/\(id)/otp_submit/json", method: .post,
                                                      headers: [.authorization: kosh.authorization(), .contentType: "application/x-www-form-urlencoded"],
                                                      body: ByteBuffer(string: "otp=4321")) { response in
                (Int(response.status.code), (try? JSON.parse(Array(response.body.readableBytesView))) ?? .null)
            }
            #expect(right.0 == 200, "\(right.1.serialized())")
            #expect(right.1["razorpay_order_id"] == .string(order))
            #expect(right.1["razorpay_signature"] == .string(Self.signature(kosh, order: order, payment: id)))

            let payment = try await kosh.call(.get, "/v1/payments/\(id)")
            #expect(payment.string("status") == "authorized" && payment.string("method") == "card")
            #expect(payment.json["card"]?["last4"] == .string("1007"))
            #expect(payment.json["card"]?["network"] == .string("Visa"))
            #expect(payment.json["card"]?["issuer"] == .string("HDFC"))
            #expect(payment.json["card"]?["type"] == .string("credit"))
            let cardID = try #require(payment.string("card_id"))
            #expect(payment.json["acquirer_data"]?["auth_code"] != .null)
            #expect(try await kosh.call(.get, "/v1/payments/\(id)/card").string("id") == cardID)
            #expect(try await kosh.call(.get, "/v1/cards/\(cardID)").string("last4") == "1007")
            #expect(!payment.body.contains(Self.visa))

            let captured = try await kosh.call(.post, "/v1/payments/\(id)/capture", #"{"amount": 50000, "currency": "INR"}"#)
            #expect(captured.string("status") == "captured", "\(captured.body)")
            // Visa credit: the default 2 % + 18 % GST.
            #expect(captured.int("fee") == 1_180 && captured.int("tax") == 180)
            let refund = try await kosh.call(.post, "/v1/payments/\(id)/refund", #"{"amount": 20000}"#)
            #expect(refund.string("status") == "processed", "\(refund.body)")
            #expect(try await kosh.call(.get, "/v1/payments/\(id)").string("refund_status") == "partial")
            try await kosh.expectLedgerConsistent()
        }
    }

    /// Razorpay's test error cards and what they end in.
    static let errorCards: [(number: String, reason: String, code: String)] = [
        ("4100280000090000", "payment_timed_out", "BAD_REQUEST_ERROR"),
        ("4100280000080001", "insufficient_funds", "BAD_REQUEST_ERROR"),
        ("4100280000070002", "payment_cancelled", "BAD_REQUEST_ERROR"),
        ("4100280000060003", "card_declined", "BAD_REQUEST_ERROR"),
        ("4100280000050004", "card_declined", "BAD_REQUEST_ERROR"),
        ("4100280000040005", "card_declined", "BAD_REQUEST_ERROR"),
        ("4100280000030006", "card_disabled_for_online_payments", "BAD_REQUEST_ERROR"),
        ("4100280000010008", "card_number_invalid", "BAD_REQUEST_ERROR"),
        ("4100280000020007", "gateway_technical_error", "GATEWAY_ERROR"),
        ("4100280000000009", "authentication_failed", "GATEWAY_ERROR"),
    ]

    @Test("each of Razorpay's test error cards fails with its error fields; nothing is posted", arguments: TestDatabases.all)
    func errorCards(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            for card in Self.errorCards {
                let (id, reply) = try await Self.pay(kosh, number: card.number)
                #expect(reply.status == 400, "\(card.number): \(reply.body)")
                #expect(reply.json["error"]?["reason"] == .string(card.reason), "\(card.number): \(reply.body)")
                #expect(reply.json["error"]?["code"] == .string(card.code), "\(card.number)")
                let payment = try await kosh.call(.get, "/v1/payments/\(id)")
                #expect(payment.string("status") == "failed" && payment.string("error_reason") == card.reason, "\(card.number)")
            }
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("the success cards of every network authorise; international ones skip the challenge")
    func networks() async throws {
        try await Kosh.run("sqlite") { kosh in
            // The fee of a ₹500 capture by network: RuPay debit carries no MDR, Amex and Diners 3 %, others 2 % (+ 18 % GST).
            for (number, network, fee) in [("5500670000001002", "MasterCard", Int64(1_180)), ("6527658900001005", "RuPay", 0),
                                           ("378282246310005", "American Express", 1_770), ("30569309025904", "Diners Club", 1_770)] {
                let (id, reply) = try await Self.pay(kosh, number: number)
                #expect(reply.status == 200 && reply.string("razorpay_signature") != nil, "\(number): \(reply.body)")
                #expect(try await kosh.call(.get, "/v1/payments/\(id)").json["card"]?["network"] == .string(network))
                let captured = try await kosh.call(.post, "/v1/payments/\(id)/capture", #"{"amount": 50000, "currency": "INR"}"#)
                #expect(captured.int("fee") == fee, "\(network): \(captured.body)")
            }
            let order = try await kosh.createOrder()
            let created = try await kosh.call(.post, "/v1/payments/create/json", Self.cardBody(order: order, number: "5555555555554444"))
            let id = try #require(created.string("razorpay_payment_id"))
            let generated = try await kosh.call(.post, "/v1/payments/\(id)/otp_generate", "{}")
            #expect(generated.string("razorpay_signature") != nil, "frictionless: \(generated.body)")
            #expect(try await kosh.call(.get, "/v1/payments/\(id)").json["international"] == .bool(true))
        }
    }

    @Test("create/json under an Idempotency-Key: the replay answers the same payment and hands the vault nothing again", arguments: TestDatabases.all)
    func idempotentCreate(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let vault = try #require(kosh.services.flows.cards?.vault as? InMemoryCardVault)
            let order = try await kosh.createOrder(amount: 50_000)
            let body = Self.cardBody(order: order)
            let first = try await kosh.call(.post, "/v1/payments/create/json", body, idempotencyKey: "card-key-1")
            let tokenised = vault.calls.filter { $0 == "tokenize" }.count
            let again = try await kosh.call(.post, "/v1/payments/create/json", body, idempotencyKey: "card-key-1")
            #expect(first.status == 200 && again.status == 200, "\(again.body)")
            #expect(again.string("razorpay_payment_id") == first.string("razorpay_payment_id"))
            #expect(vault.calls.filter { $0 == "tokenize" }.count == tokenised, "a replay tokenises nothing")
            #expect(tokenised == 1)
            let other = try await kosh.call(.post, "/v1/payments/create/json", Self.cardBody(order: order, number: "5500670000001002"),
                                            idempotencyKey: "card-key-1")
            #expect(other.status == 400 && other.json["error"]?["reason"] == .string("idempotency_key_reused"), "\(other.body)")
            #expect(vault.calls.filter { $0 == "tokenize" }.count == 1)
        }
    }

    @Test("bad card input is a 400 naming the field, and nothing is written")
    func badInput() async throws {
        try await Kosh.run("sqlite") { kosh in
            let order = try await kosh.createOrder()
            let cases: [(String, String)] = [
                (Self.cardBody(order: order, number: "4100280000001008"), "card[number]"),
                (Self.cardBody(order: order, number: "41002800"), "card[number]"),
                (Self.cardBody(order: order, number: "4100 2800 0000 1007"), "card[number]"),
                (Self.cardBody(order: order, month: "13"), "card[expiry_month]"),
                (Self.cardBody(order: order, year: "2101"), "card[expiry_year]"),
                (Self.cardBody(order: order, month: "01", year: "20"), "card[expiry_year]"),
                (Self.cardBody(order: order, cvv: "12"), "card[cvv]"),
                (Self.cardBody(order: order, extra: #", "save": 1"#), "customer_id"),
            ]
            for (body, field) in cases {
                let reply = try await kosh.call(.post, "/v1/payments/create/json", body)
                #expect(reply.status == 400 && reply.json["error"]?["field"] == .string(field), "\(field): \(reply.body)")
            }
            let noCard = try await kosh.call(.post, "/v1/payments/create/json",
                                             #"{"order_id": "\#(order)", "amount": 50000, "method": "card", "email": "a@b.in", "contact": "9123456789"}"#)
            #expect(noCard.json["error"]?["field"] == .string("card"))
            let payments = try await kosh.call(.get, "/v1/payments")
            #expect(payments.int("count") == 0)
            let unknown = try await kosh.call(.post, "/v1/payments/pay_AAAAAAAAAAAAAA/otp/submit", #"{"otp": "1234"}"#)
            #expect(unknown.status == 400 && unknown.json["error"]?["reason"] == .string("resource_not_found"))
        }
    }

    @Test("GET /v1/iins/:iin answers the BIN table's network, type and issuer")
    func iins() async throws {
        try await Kosh.run("sqlite") { kosh in
            let reply = try await kosh.call(.get, "/v1/iins/652765")
            #expect(reply.status == 200 && reply.string("network") == "RuPay" && reply.string("type") == "debit" && reply.string("issuer_code") == "SBIN",
                    "\(reply.body)")
            #expect(try await kosh.call(.get, "/v1/iins/12345").status == 400)
        }
    }

    @Test("the 3-D Secure browser routes: redirect to the ACS (none in test mode: the result page), and the ACS's return confirmed server to server")
    func browserRoutes() async throws {
        try await Kosh.run("sqlite") { kosh in
            let (id, reply) = try await Self.pay(kosh)
            #expect(reply.status == 200)
            let page = try await kosh.client.execute(uri: "/v1/payments/\(id)/authenticate", method: .get) { response in
                (Int(response.status.code), String(buffer: response.body))
            }
            #expect(page.0 == 200 && page.1.contains("razorpay_signature") && page.1.contains(id))
            let returned = try await kosh.client.execute(uri: "/v1/payments/\(id)/authentication/return", method: .post,
                                                         headers: [.contentType: "application/x-www-form-urlencoded"],
                                                         body: ByteBuffer(string: "authentication_id=forged&status=authenticated")) { response in
                (Int(response.status.code), String(buffer: response.body))
            }
            #expect(returned.0 == 200 && returned.1.contains("Payment authorised"))
        }
    }
}
