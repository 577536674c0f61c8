import Foundation
import KoshCore
import KoshJSON
import KoshStorage
import KoshTesting
import Testing

/// Card payments end to end in live mode: Kosh, the vault and the sandbox as real servers on
/// loopback, ISO 8583 over real TCP between Kosh's card connector and the sandbox's acquirer,
/// the OTP read from the sandbox's SMS provider — on SQLite and PostgreSQL.
@Suite("Live cards: ISO 8583, 3-D Secure, the vault", .serialized, .timeLimit(.minutes(3)))
struct LiveCardTests {
    static let visa = "4100280000001007"
    static let lateCard = "5241810000001008"
    static let expiredCard = "5305620000001004"

    /// Each sandbox test card and the payment's end: status and Razorpay's error reason.
    static let outcomes: [(number: String, status: PaymentState, reason: String?)] = [
        (visa, .authorized, nil),
        ("5500670000001002", .authorized, nil),
        ("6527658900001005", .authorized, nil),
        ("378282246310005", .authorized, nil),
        ("30569309025904", .authorized, nil),
        ("5555555555554444", .authorized, nil),
        ("4100280000090000", .failed, "payment_timed_out"),
        ("4100280000080001", .failed, "insufficient_funds"),
        ("4100280000070002", .failed, "payment_cancelled"),
        ("4100280000060003", .failed, "card_declined"),
        ("4100280000030006", .failed, "card_disabled_for_online_payments"),
        ("4100280000010008", .failed, "card_number_invalid"),
        ("4100280000020007", .failed, "gateway_technical_error"),
        ("4100280000000009", .failed, "authentication_failed"),
        (expiredCard, .failed, "card_expired"),
    ]

    @Test("every test card's outcome, with Razorpay's error fields; then no full card number anywhere outside the vault's ciphertext; the ledger balances",
          arguments: TestDatabases.all)
    func outcomesAndPANScan(_ kind: String) async throws {
        try await LiveCards.run(kind) { live in
            for card in Self.outcomes {
                let id = try await live.create(number: card.number)
                let reply = try await live.authenticate(id)
                let payment = try await live.payment(id)
                #expect(payment.state == card.status, "\(card.number): \(reply.body)")
                #expect(payment.machine.failure?.reason == card.reason, "\(card.number): \(reply.body)")
                if card.status == .authorized {
                    #expect(reply.string("razorpay_signature") == CardAPITests.signature(live.kosh, order: payment.orderID.rawValue, payment: id))
                    let books = try await live.books(id)
                    #expect(books["status"] == .string("approved") && books["authorised_amount"] == .int(50_000), "\(books.serialized())")
                } else {
                    #expect(reply.status == 400 && reply.json["error"]?["reason"] == .string(card.reason!), "\(card.number): \(reply.body)")
                }
            }
            // A refund and a webhook-bearing capture too, so the outbox has card payments in it.
            let captured = try await live.create(number: Self.visa, amount: 20_000)
            _ = try await live.authenticate(captured)
            _ = try await live.kosh.call(.post, "/v1/payments/\(captured)/capture", #"{"amount": 20000, "currency": "INR"}"#)
            _ = try await live.kosh.call(.post, "/v1/payments/\(captured)/refund", #"{"amount": 5000}"#)
            try await live.kosh.expectLedgerConsistent()
            try await Self.scanForPANs(live, numbers: Self.outcomes.map(\.number))
        }
    }

    /// No test PAN in Kosh's database (the SQLite files, or every row of every table on
    /// PostgreSQL), in the vault's files outside its ciphertext, in any log line, or in the outbox.
    static func scanForPANs(_ live: LiveCards, numbers: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws {
        var haystacks: [(String, String)] = []
        func file(_ path: String) {
            if let data = FileManager.default.contents(atPath: path) { haystacks.append((path, String(decoding: data, as: UTF8.self))) }
        }
        if case .sqlite(let path) = live.config.database {
            for suffix in ["", "-wal", "-shm", "-journal"] { file(path + suffix) }
        } else {
            let tables = try await live.services.db.transaction { conn in
                try await conn.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'", []).compactMap { $0.text("table_name") }
            }
            #expect(tables.contains("card_payments") && tables.contains("cards"))
            for table in tables {
                let rows = try await live.services.db.transaction { conn in
                    try await conn.query("SELECT CAST(t AS TEXT) AS row_text FROM \(table) t", []).compactMap { $0.text("row_text") }
                }
                haystacks.append(("table \(table)", rows.joined(separator: "\n")))
            }
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: live.vaultDirectory)) ?? [] {
            file((live.vaultDirectory as NSString).appendingPathComponent(name))
        }
        haystacks.append(("logs", live.logs.all.joined(separator: "\n")))
        let events = try await live.kosh.call(.get, "/v1/events?count=100")
        haystacks.append(("outbox", events.body))
        #expect(haystacks.contains { $0.0 == "logs" } && live.logs.all.count > 50, "the logs were captured")
        #expect(events.json["count"] != .int(0), "the outbox has events")
        for number in numbers {
            for (place, text) in haystacks where text.contains(number) {
                Issue.record("the card number \(number.prefix(6))…\(number.suffix(4)) is in \(place)", sourceLocation: sourceLocation)
            }
        }
    }

    @Test("OTP right; wrong then right; wrong until the ACS locks the payment", arguments: TestDatabases.all)
    func otps(_ kind: String) async throws {
        try await LiveCards.run(kind) { live in
            let right = try await live.create(number: Self.visa)
            #expect(try await live.authenticate(right).status == 200)

            let retried = try await live.create(number: Self.visa)
            let wrong = try await live.authenticate(retried, otp: "000000")
            #expect(wrong.status == 400 && wrong.json["error"]?["reason"] == .string("incorrect_otp"), "\(wrong.body)")
            #expect(wrong.json["error"]?["metadata"]?["attempts_left"] == .int(2))
            let otp = try await live.otp(for: retried)
            let ok = try await live.kosh.call(.post, "/v1/payments/\(retried)/otp/submit", #"{"otp": "\#(otp)"}"#)
            #expect(ok.status == 200 && ok.string("razorpay_signature") != nil, "\(ok.body)")

            let locked = try await live.create(number: Self.visa)
            _ = try await live.authenticate(locked, otp: "000000")
            _ = try await live.kosh.call(.post, "/v1/payments/\(locked)/otp/submit", #"{"otp": "000001"}"#)
            let last = try await live.kosh.call(.post, "/v1/payments/\(locked)/otp/submit", #"{"otp": "000002"}"#)
            #expect(last.status == 400 && last.json["error"]?["reason"] == .string("authentication_failed"), "\(last.body)")
            #expect(try await live.payment(locked).state == .failed)
            let lockedBooks = try await live.books(locked)
            #expect(lockedBooks["authorised_amount"] == nil || lockedBooks["authorised_amount"] == .int(0), "no 0100 was sent: \(lockedBooks.serialized())")
            // Resend works, and ends at the ACS's limit.
            let resent = try await live.create(number: Self.visa)
            _ = try await live.kosh.call(.post, "/v1/payments/\(resent)/otp_generate", "{}")
            var statuses: [Int] = []
            for _ in 0..<4 { statuses.append(try await live.kosh.call(.post, "/v1/payments/\(resent)/otp/resend", "{}").status) }
            #expect(statuses == [200, 200, 200, 400], "\(statuses)")
        }
    }

    @Test("an authorisation the acquirer does not answer in time is reversed (0400) and the payment is not charged; the late approval that follows changes nothing",
          arguments: TestDatabases.all)
    func timeoutReversal(_ kind: String) async throws {
        try await LiveCards.run(kind) { live in
            // The late card's issuer approves after 4.5 s; Kosh waits 2.5 s, then reverses.
            let late = try await live.create(number: Self.lateCard)
            let reply = try await live.authenticate(late)
            let payment = try await live.wait(late) { $0.state == .failed }
            #expect(payment.machine.failure?.reason == "payment_timed_out", "\(reply.body)")
            // Real time on purpose: the issuer's late approval arrives 4.5 s after the 0100.
            try await Task.sleep(for: .seconds(3))
            let books = try await live.books(late)
            #expect(books["status"] == .string("late_reversed") || books["status"] == .string("reversed"), "\(books.serialized())")
            #expect(books["captured_amount"] == .int(0))
            #expect(try await live.payment(late).state == .failed)

            // The acquirer authorises but its answer is lost (and, while the fault lasts, the
            // reversal's too): the payment stays unknown until a reversal advice is answered.
            let dropped = try await live.create(number: Self.visa)
            #expect(try await live.kosh.call(.post, "/v1/payments/\(dropped)/otp_generate", "{}").status == 200)
            let otp = try await live.otp(for: dropped)
            try await live.sandbox(.PUT, "/sandbox/v1/faults/acquirer", #"{"drop_response_rate": 1.0}"#)
            let submitted = try await live.kosh.call(.post, "/v1/payments/\(dropped)/otp/submit", #"{"otp": "\#(otp)"}"#)
            try await live.sandbox(.PUT, "/sandbox/v1/faults/acquirer", #"{"drop_response_rate": 0.0}"#)
            let lost = try await live.wait(dropped) { $0.state == .failed }
            #expect(lost.machine.failure?.reason == "payment_timed_out", "\(submitted.body)")
            let droppedBooks = try await live.books(dropped)
            #expect(droppedBooks["status"] == .string("reversed"), "\(droppedBooks.serialized())")
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("capture (0200), void (0400) and refunds (0200, processing code 20) over ISO 8583 settle in the acquirer's books", arguments: TestDatabases.all)
    func captureVoidRefund(_ kind: String) async throws {
        try await LiveCards.run(kind) { live in
            let captured = try await live.create(number: Self.visa)
            #expect(try await live.authenticate(captured).status == 200)
            let capture = try await live.kosh.call(.post, "/v1/payments/\(captured)/capture", #"{"amount": 50000, "currency": "INR"}"#)
            #expect(capture.string("status") == "captured")
            let refund = try await live.kosh.call(.post, "/v1/payments/\(captured)/refund", #"{"amount": 20000}"#)
            #expect(refund.string("status") == "processed", "\(refund.body)")
            // The vault purges the card (its retention passed); a later refund still reaches the
            // card, by the original authorisation's reference alone.
            let cardPayment = try await live.services.store.transaction { tx in try await tx.cardPayment(paymentID: ID(captured), forUpdate: false) }
            let vault = try #require(live.services.flows.cards?.vault)
            try await vault.purge(token: try #require(cardPayment?.vaultToken))
            let rest = try await live.kosh.call(.post, "/v1/payments/\(captured)/refund", "{}")
            #expect(rest.string("status") == "processed", "\(rest.body)")
            let books = try await live.books(captured)
            #expect(books["captured_amount"] == .int(50_000) && books["refunded_amount"] == .int(50_000), "\(books.serialized())")

            let voided = try await live.create(number: "5500670000001002", amount: 30_000)
            #expect(try await live.authenticate(voided).status == 200)
            let cancel = try await live.kosh.call(.post, "/v1/payments/\(voided)/cancel", "{}")
            #expect(cancel.status == 200, "\(cancel.body)")
            let voidBooks = try await live.books(voided)
            #expect(voidBooks["status"] == .string("reversed") && voidBooks["reversed_amount"] == .int(30_000), "\(voidBooks.serialized())")
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("a card saved with save: 1 is paid again with its token (a new CVV, 3-D Secure again); the vault keeps it as card-on-file", arguments: TestDatabases.all)
    func savedCard(_ kind: String) async throws {
        try await LiveCards.run(kind) { live in
            let customer = try await live.kosh.call(.post, "/v1/customers", #"{"name": "Gaurav Kumar", "email": "gaurav@example.com", "contact": "+919000090000"}"#)
            let customerID = try #require(customer.string("id"))
            let first = try await live.create(number: Self.visa, extra: #", "save": 1, "customer_id": "\#(customerID)""#)
            #expect(try await live.authenticate(first).status == 200)
            let tokens = try await live.kosh.call(.get, "/v1/customers/\(customerID)/tokens")
            #expect(tokens.int("count") == 1, "\(tokens.body)")
            let token = try #require(tokens.json["items"]?[0]?["id"].flatMap { if case .string(let s) = $0 { s } else { nil } })
            #expect(tokens.json["items"]?[0]?["card"]?["last4"] == .string("1007"))

            let order = try await live.kosh.createOrder(amount: 25_000)
            let again = try await live.kosh.call(.post, "/v1/payments/create/json", """
                {"order_id": "\(order)", "amount": 25000, "currency": "INR", "method": "card", "email": "gaurav@example.com",
                 "contact": "+919000090000", "customer_id": "\(customerID)", "token": "\(token)", "card": {"cvv": "123"}}
                """)
            #expect(again.status == 200, "\(again.body)")
            let againID = try #require(again.string("razorpay_payment_id"))
            let paid = try await live.authenticate(againID)
            #expect(paid.status == 200 && paid.string("razorpay_signature") != nil, "\(paid.body)")
            #expect(try await live.books(againID)["authorised_amount"] == .int(25_000))
            let deleted = try await live.kosh.call(.delete, "/v1/customers/\(customerID)/tokens/\(token)", "{}")
            #expect(deleted.json["deleted"] == .bool(true))
            #expect(try await live.kosh.call(.get, "/v1/customers/\(customerID)/tokens").int("count") == 0)
        }
    }
}
