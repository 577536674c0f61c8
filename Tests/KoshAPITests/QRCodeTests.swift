import Foundation
import HTTPTypes
import KoshCore
import KoshFlows
import KoshJSON
import KoshTesting
import Testing

/// The UPI QR Codes API (issue 14, point 4) in test mode, on both databases: every call, every
/// webhook, single and multiple use, fixed and any amount, the automatic refunds, `close_by`
/// expiry by the janitor on the manual clock, bad input, idempotency, and the public PNG.
@Suite("QR codes: the API, payments in, refunds out, expiry", .serialized, .timeLimit(.minutes(3)))
struct QRCodeTests {
    static func events(_ kosh: Kosh) async throws -> [OutboxEvent] {
        try await kosh.services.webhooks.events(merchantID: kosh.merchant.merchant.id.rawValue, page: Page(count: 100)).reversed()
    }

    static func create(_ kosh: Kosh, _ body: String, key: String? = nil) async throws -> Kosh.Reply {
        try await kosh.call(.post, "/v1/payments/qr_codes", body, idempotencyKey: key)
    }

    static func pay(_ kosh: Kosh, _ qr: String, amount: Int64? = nil) async throws -> Kosh.Reply {
        try await kosh.call(.post, "/v1/payments/qr_codes/\(qr)/test_payment", amount.map { #"{"amount": \#($0)}"# } ?? "{}")
    }

    @Test("create, fetch, list (filters), edit, close; the webhooks; /v1/payments/qr_codes is no payment id", arguments: TestDatabases.all)
    func lifecycle(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let customer = try await kosh.call(.post, "/v1/customers", #"{"name": "Asha", "email": "asha@example.com", "contact": "+919000090000"}"#)
            let customerID = try #require(customer.string("id"))
            let created = try await Self.create(kosh, """
                {"type": "upi_qr", "name": "Store Front", "usage": "multiple_use", "fixed_amount": false, "description": "Counter 1",
                 "customer_id": "\(customerID)", "notes": {"shelf": "A4"}}
                """)
            #expect(created.status == 200, "\(created.body)")
            let id = try #require(created.string("id"))
            #expect(id.hasPrefix("qr_") && Identifiers.isWellFormed(id, .qrCode))
            #expect(created.string("entity") == "qr_code" && created.string("type") == "upi_qr" && created.string("usage") == "multiple_use")
            #expect(created.string("status") == "active" && created["fixed_amount"] == .bool(false) && created["payment_amount"] == .null)
            #expect(created.int("payments_amount_received") == 0 && created.int("payments_count_received") == 0)
            #expect(created.string("customer_id") == customerID && created["notes"]?["shelf"] == .string("A4"))
            #expect(created["close_by"] == .null && created["closed_at"] == .null && created["close_reason"] == .null)
            #expect(created.string("image_url") == "http://127.0.0.1:8080/qr/\(id)/image.png")
            #expect(created.string("image_content") == "upi://pay?pa=kosh.qr%40kosh&pn=Store%20Front&tr=\(id)&cu=INR&tn=Counter%201")

            // Fetched, and listed at the path a payment id would take.
            let fetched = try await kosh.call(.get, "/v1/payments/qr_codes/\(id)")
            #expect(fetched.body == created.body)
            let list = try await kosh.call(.get, "/v1/payments/qr_codes")
            #expect(list.status == 200 && list.string("entity") == "collection" && list.int("count") == 1, "\(list.body)")
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes?customer_id=\(customerID)").int("count") == 1)
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes?customer_id=cust_0000000000000A").int("count") == 0)
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes?count=1&skip=1").int("count") == 0)
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes?from=\(Int64(Date().timeIntervalSince1970) + 3600)").int("count") == 0)

            // PATCH: name, description, notes; the image stays the one printed.
            let edited = try await kosh.call(.patch, "/v1/payments/qr_codes/\(id)", #"{"name": "Store Back", "notes": {"shelf": "B2"}}"#)
            #expect(edited.status == 200 && edited.string("name") == "Store Back" && edited["notes"]?["shelf"] == .string("B2"), "\(edited.body)")
            #expect(edited.string("description") == "Counter 1" && edited.string("image_content") == created.string("image_content"))

            // Payments into it: the payment_id filter finds the code.
            let paid = try await Self.pay(kosh, id, amount: 12_300)
            #expect(paid.status == 200 && paid.string("status") == "captured", "\(paid.body)")
            let paymentID = try #require(paid.string("id"))
            let byPayment = try await kosh.call(.get, "/v1/payments/qr_codes?payment_id=\(paymentID)")
            #expect(byPayment.int("count") == 1 && byPayment.json["items"]?[0]?["id"] == .string(id), "\(byPayment.body)")
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes?payment_id=pay_0000000000000A").int("count") == 0)
            let payments = try await kosh.call(.get, "/v1/payments/qr_codes/\(id)/payments")
            #expect(payments.int("count") == 1 && payments.json["items"]?[0]?["id"] == .string(paymentID))

            // Close on demand, once.
            let closed = try await kosh.call(.post, "/v1/payments/qr_codes/\(id)/close")
            #expect(closed.status == 200 && closed.string("status") == "closed" && closed.string("close_reason") == "on_demand", "\(closed.body)")
            #expect(closed.int("closed_at") != nil)
            let again = try await kosh.call(.post, "/v1/payments/qr_codes/\(id)/close")
            #expect(again.status == 400 && again.json["error"]?["code"] == .string("BAD_REQUEST_ERROR"), "\(again.body)")

            let names = try await Self.events(kosh).map(\.name.rawValue)
            #expect(names.filter { $0.hasPrefix("qr_code.") }.sorted() == ["qr_code.closed", "qr_code.created", "qr_code.credited"], "\(names)")
            let closedEvent = try #require(try await Self.events(kosh).last { $0.name == .qrCodeClosed })
            let envelope = try JSON.parse(Array(closedEvent.body.utf8))
            #expect(envelope["contains"] == .array([.string("qr_code")]))
            #expect(envelope["payload"]?["qr_code"]?["entity"]?["status"] == .string("closed"))

            // Another merchant sees none of it (Razorpay's 400 "The id provided does not exist").
            let other = try await kosh.services.merchants.create(name: "Other")
            let foreign = try await kosh.call(.get, "/v1/payments/qr_codes/\(id)", as: other)
            #expect(foreign.status == 400 && foreign.errorDescription == "The id provided does not exist", "\(foreign.body)")
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes", as: other).int("count") == 0)
            #expect(try await kosh.call(.post, "/v1/payments/qr_codes/\(id)/test_payment", "{}", as: other).errorDescription == "The id provided does not exist")
        }
    }

    @Test("payments into a multiple-use any-amount code: captured, counted, qr_code.credited with the code and the payment, ledger right",
          arguments: TestDatabases.all)
    func multipleUse(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let id = try #require(try await Self.create(kosh, #"{"type": "upi_qr", "name": "Tips", "usage": "multiple_use"}"#).string("id"))
            #expect(try await Self.pay(kosh, id).status == 400, "an any-amount code needs the amount")
            for amount: Int64 in [10_000, 25_050] {
                let paid = try await Self.pay(kosh, id, amount: amount)
                #expect(paid.string("status") == "captured" && paid.int("amount") == amount && paid.string("method") == "upi", "\(paid.body)")
                #expect(paid.string("vpa") == "success@razorpay" && paid.int("fee") ?? 0 > 0)
            }
            let small = try await Self.pay(kosh, id, amount: 99)
            #expect(small.string("status") == "refunded", "below ₹1 is given back: \(small.body)")
            let qr = try await kosh.call(.get, "/v1/payments/qr_codes/\(id)")
            #expect(qr.string("status") == "active" && qr.int("payments_amount_received") == 35_050 && qr.int("payments_count_received") == 2)
            // PATCH with notes null leaves them; other fields change.
            let patched = try await kosh.call(.patch, "/v1/payments/qr_codes/\(id)", #"{"notes": null, "name": "Tips 2"}"#)
            #expect(patched.status == 200 && patched.string("name") == "Tips 2", "\(patched.body)")
            let events = try await Self.events(kosh)
            // The refused ₹0.99 was authorised (the money moved) and given back, never captured.
            #expect(events.filter { $0.name == .paymentAuthorized }.count == 3 && events.filter { $0.name == .paymentCaptured }.count == 2)
            #expect(events.filter { $0.name == .refundCreated }.count == 1)
            let credited = events.filter { $0.name == .qrCodeCredited }
            #expect(credited.count == 2)
            // Events of one second list in no set order: the one for the second payment.
            let bodies = try credited.map { try JSON.parse(Array($0.body.utf8)) }
            let last = try #require(bodies.first { $0["payload"]?["payment"]?["entity"]?["amount"] == .int(25_050) })
            #expect(last["contains"] == .array([.string("payment"), .string("qr_code")]))
            #expect(last["payload"]?["payment"]?["entity"]?["status"] == .string("captured"))
            #expect(last["payload"]?["qr_code"]?["entity"]?["payments_count_received"] == .int(2))
            #expect(last["payload"]?["qr_code"]?["entity"]?["payments_amount_received"] == .int(35_050))
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("single use and fixed amount: paid once and closed (paid); a second payment, a wrong amount and a closed code are refunded in full",
          arguments: TestDatabases.all)
    func refusedCreditsAreRefunded(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let single = try await Self.create(kosh, #"{"type": "upi_qr", "usage": "single_use", "fixed_amount": true, "payment_amount": 50000}"#)
            let id = try #require(single.string("id"))
            #expect(single.string("image_content")?.contains("&am=500.00&") == true, "\(single.body)")
            let wrong = try await Self.pay(kosh, id, amount: 49_999)
            #expect(wrong.string("status") == "refunded" && wrong.int("amount_refunded") == 49_999 && wrong["fee"] == .null, "\(wrong.body)")
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes/\(id)").string("status") == "active", "a wrong amount does not use the code")
            let paid = try await Self.pay(kosh, id)
            #expect(paid.string("status") == "captured" && paid.int("amount") == 50_000, "\(paid.body)")
            let qr = try await kosh.call(.get, "/v1/payments/qr_codes/\(id)")
            #expect(qr.string("status") == "closed" && qr.string("close_reason") == "paid" && qr.int("payments_count_received") == 1)
            let second = try await Self.pay(kosh, id)
            #expect(second.string("status") == "refunded", "\(second.body)")
            let secondID = try #require(second.string("id"))
            let refunds = try await kosh.call(.get, "/v1/payments/\(secondID)/refunds")
            #expect(refunds.int("count") == 1 && refunds.json["items"]?[0]?["status"] == .string("processed"), "\(refunds.body)")
            #expect(refunds.json["items"]?[0]?["notes"]?["reason"] == .string("qr_code_closed"))
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes/\(id)/payments").int("count") == 3, "every payment in, kept or given back")
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes/\(id)").int("payments_amount_received") == 50_000)

            let events = try await Self.events(kosh)
            #expect(events.filter { $0.name == .qrCodeCredited }.count == 1)
            #expect(events.filter { $0.name == .refundCreated }.count == 2 && events.filter { $0.name == .refundProcessed }.count == 2)
            #expect(!events.contains { $0.name == .qrCodeClosed }, "qr_code.closed is for a close on demand only")

            // A multiple-use code closed on demand refunds what comes after.
            let multi = try #require(try await Self.create(kosh, #"{"type": "upi_qr", "usage": "multiple_use", "fixed_amount": true, "payment_amount": 1000}"#).string("id"))
            #expect(try await kosh.call(.post, "/v1/payments/qr_codes/\(multi)/close").status == 200)
            #expect(try await Self.pay(kosh, multi).string("status") == "refunded")
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("close_by: the janitor closes an expired code (no close_reason, no webhook); a payment after close_by is refunded",
          arguments: TestDatabases.all)
    func expiry(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let now = kosh.clock.now.seconds.value
            let first = try #require(try await Self.create(kosh, """
                {"type": "upi_qr", "usage": "single_use", "fixed_amount": true, "payment_amount": 2000, "close_by": \(now + 300)}
                """).string("id"))
            let second = try #require(try await Self.create(kosh, """
                {"type": "upi_qr", "usage": "single_use", "fixed_amount": true, "payment_amount": 2000, "close_by": \(now + 600)}
                """).string("id"))
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes/\(first)").int("close_by") == now + 300)
            #expect(try await kosh.services.flows.closeExpiredQRCodes() == 0)
            kosh.clock.advance(byMillis: 301_000)
            #expect(try await kosh.services.flows.closeExpiredQRCodes() == 1)
            let expired = try await kosh.call(.get, "/v1/payments/qr_codes/\(first)")
            #expect(expired.string("status") == "closed" && expired["close_reason"] == .null && expired.int("closed_at") == now + 300, "\(expired.body)")
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes/\(second)").string("status") == "active")
            // Past its close_by before the janitor came: refunded, and the code closed.
            kosh.clock.advance(byMillis: 300_000)
            let late = try await Self.pay(kosh, second)
            #expect(late.string("status") == "refunded", "\(late.body)")
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes/\(second)").string("status") == "closed")
            #expect(try await Self.events(kosh).filter { $0.name == .qrCodeClosed }.isEmpty)
            // PATCH close_by: single use only, in range.
            let third = try #require(try await Self.create(kosh, #"{"type": "upi_qr", "usage": "single_use", "fixed_amount": true, "payment_amount": 2000}"#).string("id"))
            let later = kosh.clock.now.seconds.value + 3_600
            let patched = try await kosh.call(.patch, "/v1/payments/qr_codes/\(third)", #"{"close_by": \#(later)}"#)
            #expect(patched.status == 200 && patched.int("close_by") == later, "\(patched.body)")
            let tooSoon = try await kosh.call(.patch, "/v1/payments/qr_codes/\(third)", #"{"close_by": \#(later - 3_590)}"#)
            #expect(tooSoon.status == 400 && tooSoon.json["error"]?["field"] == .string("close_by"))
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("the same credit twice records one payment", arguments: TestDatabases.all)
    func duplicateCredit(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let id = try #require(try await Self.create(kosh, #"{"type": "upi_qr", "usage": "multiple_use"}"#).string("id"))
            let credit = RailCredit(transactionID: "test_dup_1", rrn: "test_dup_1", reference: id, payeeVPA: "kosh.qr@kosh",
                                    payerVPA: "success@razorpay", amount: 7_700)
            let rail = kosh.services.flows.rails.test.name
            async let a = kosh.services.flows.recordQRCredit(credit, rail: rail)
            async let b = kosh.services.flows.recordQRCredit(credit, rail: rail)
            let (first, second) = try await (a, b)
            #expect(first.payment.id == second.payment.id)
            #expect([first.recorded, second.recorded].filter { $0 }.count == 1)
            let third = try await kosh.services.flows.recordQRCredit(credit, rail: rail)
            #expect(third.payment.id == first.payment.id && !third.recorded)
            let qr = try await kosh.call(.get, "/v1/payments/qr_codes/\(id)")
            #expect(qr.int("payments_count_received") == 1 && qr.int("payments_amount_received") == 7_700)
            #expect(try await Self.events(kosh).filter { $0.name == .qrCodeCredited }.count == 1)
            // A live rail cannot pay a test-mode code.
            await #expect(throws: KoshError.self) {
                try await kosh.services.flows.recordQRCredit(RailCredit(transactionID: "123456789012", rrn: "123456789012", reference: id,
                                                                        payeeVPA: "kosh.qr@kosh", payerVPA: nil, amount: 100), rail: "upi_switch")
            }
            try await kosh.expectLedgerConsistent()
        }
    }

    static let badInput: [(String, String)] = [
        (#"{"usage": "multiple_use"}"#, "type"),
        (#"{"type": "bharat_qr"}"#, "type"),
        (#"{"type": "upi_qr", "usage": "sometimes"}"#, "usage"),
        (#"{"type": "upi_qr", "fixed_amount": true}"#, "payment_amount"),
        (#"{"type": "upi_qr", "payment_amount": 1000}"#, "payment_amount"),
        (#"{"type": "upi_qr", "fixed_amount": true, "payment_amount": 99}"#, "payment_amount"),
        (#"{"type": "upi_qr", "fixed_amount": true, "payment_amount": 10000001}"#, "payment_amount"),
        (#"{"type": "upi_qr", "fixed_amount": "yes", "payment_amount": 1000}"#, "fixed_amount"),
        (#"{"type": "upi_qr", "usage": "single_use"}"#, "fixed_amount"),
        (#"{"type": "upi_qr", "usage": "multiple_use", "close_by": 4102444000}"#, "close_by"),
        (#"{"type": "upi_qr", "usage": "single_use", "fixed_amount": true, "payment_amount": 1000, "close_by": 1}"#, "close_by"),
        (#"{"type": "upi_qr", "usage": "single_use", "fixed_amount": true, "payment_amount": 1000, "close_by": 4102444000}"#, "close_by"),
        (#"{"type": "upi_qr", "usage": "single_use", "fixed_amount": true, "payment_amount": 1000, "close_by": "soon"}"#, "close_by"),
        (#"{"type": "upi_qr", "customer_id": "cust_0000000000000A"}"#, "customer_id"),
        (#"{"type": "upi_qr", "customer_id": "nobody"}"#, "customer_id"),
        (#"{"type": "upi_qr", "colour": "red"}"#, "colour"),
        (#"{"type": "upi_qr", "tax_invoice": {"number": "1"}}"#, "tax_invoice"),
        (#"{"type": "upi_qr", "name": 7}"#, "name"),
        (#"{"type": "upi_qr", "notes": "x"}"#, "notes"),
    ]

    @Test("bad input: a 400 naming the field, nothing created; Idempotency-Key replays a create", arguments: TestDatabases.all)
    func badInputAndIdempotency(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            for (body, field) in Self.badInput {
                let reply = try await Self.create(kosh, body)
                #expect(reply.status == 400 && reply.json["error"]?["code"] == .string("BAD_REQUEST_ERROR"), "\(body) → \(reply.body)")
                #expect(reply.json["error"]?["field"] == .string(field), "\(body) → \(reply.body)")
            }
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes").int("count") == 0, "nothing half-created")
            #expect(try await Self.events(kosh).isEmpty)
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes/qr_0000000000000A").errorDescription == "The id provided does not exist")
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes/pay_0000000000000A").status == 400)
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes?customer_id=x").json["error"]?["field"] == .string("customer_id"))
            #expect(try await kosh.call(.patch, "/v1/payments/qr_codes/qr_0000000000000A", #"{"name": "x"}"#).errorDescription == "The id provided does not exist")
            #expect(try await kosh.call(.post, "/v1/payments/qr_codes", #"{"type": "upi_qr"}"#, auth: "Basic eDp5").status == 401)

            let body = #"{"type": "upi_qr", "usage": "single_use", "fixed_amount": true, "payment_amount": 1500}"#
            let first = try await Self.create(kosh, body, key: "qr-key-1")
            let again = try await Self.create(kosh, body, key: "qr-key-1")
            #expect(first.status == 200 && again.status == 200 && again.body == first.body, "\(again.body)")
            #expect(again.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
            let other = try await Self.create(kosh, #"{"type": "upi_qr"}"#, key: "qr-key-1")
            #expect(other.status == 400 && other.json["error"]?["field"] == .string("Idempotency-Key"))
            #expect(try await kosh.call(.get, "/v1/payments/qr_codes").int("count") == 1)
            let id = try #require(first.string("id"))
            let patch = try await kosh.call(.patch, "/v1/payments/qr_codes/\(id)", #"{"usage": "multiple_use"}"#)
            #expect(patch.status == 400 && patch.json["error"]?["field"] == .string("usage"), "\(patch.body)")
            let multi = try #require(try await Self.create(kosh, #"{"type": "upi_qr"}"#).string("id"))
            let patchCloseBy = try await kosh.call(.patch, "/v1/payments/qr_codes/\(multi)", #"{"close_by": 4102444000}"#)
            #expect(patchCloseBy.status == 400 && patchCloseBy.json["error"]?["field"] == .string("close_by"))
            #expect(try await kosh.call(.post, "/v1/payments/qr_codes/\(multi)/close", #"{"reason": "x"}"#).status == 400)
        }
    }

    @Test("the image: a PNG served without the API key that decodes to image_content", arguments: [TestDatabases.all[0]])
    func image(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let created = try await Self.create(kosh, #"{"type": "upi_qr", "name": "Chai & Co", "usage": "single_use", "fixed_amount": true, "payment_amount": 4200, "description": "2 × masala chai"}"#)
            let id = try #require(created.string("id"))
            let content = try #require(created.string("image_content"))
            #expect(content == "upi://pay?pa=kosh.qr%40kosh&pn=Chai%20%26%20Co&tr=\(id)&am=42.00&cu=INR&tn=2%20%C3%97%20masala%20chai")
            let reply = try await kosh.client.execute(uri: "/qr/\(id)/image.png", method: .get, headers: [:], body: nil) { response in
                (Int(response.status.code), Array(response.body.readableBytesView), response.headers[.contentType])
            }
            #expect(reply.0 == 200 && reply.2 == "image/png")
            let decoded = scanQRCodes(try readPNG(reply.1))
            #expect(decoded.map { String(decoding: $0, as: UTF8.self) } == [content])
            // The longest name and description, in 4-byte characters: the link still fits a QR code.
            let emoji = String(repeating: "😀", count: 100), longNote = String(repeating: "😀", count: 255)
            let long = try await Self.create(kosh, #"{"type": "upi_qr", "name": "\#(emoji)", "description": "\#(longNote)"}"#)
            let longID = try #require(long.string("id"))
            let longContent = try #require(long.string("image_content"))
            #expect(longContent.utf8.count <= 1_024)
            let longImage = try await kosh.client.execute(uri: "/qr/\(longID)/image.png", method: .get, headers: [:], body: nil) { response in
                (Int(response.status.code), Array(response.body.readableBytesView))
            }
            #expect(longImage.0 == 200)
            #expect(scanQRCodes(try readPNG(longImage.1)).map { String(decoding: $0, as: UTF8.self) } == [longContent])
            let missing = try await kosh.client.execute(uri: "/qr/qr_0000000000000A/image.png", method: .get, headers: [:], body: nil) { Int($0.status.code) }
            #expect(missing == 400, "Razorpay's answer to an unknown id")
            let malformed = try await kosh.client.execute(uri: "/qr/pay_1/image.png", method: .get, headers: [:], body: nil) { Int($0.status.code) }
            #expect(malformed == 400)
        }
    }
}
