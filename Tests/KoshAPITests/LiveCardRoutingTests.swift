import Foundation
import KoshCore
import KoshJSON
import KoshStorage
import KoshTesting
import Testing


/// Card routing in live mode: the acquirer (ISO 8583, Kosh's own 3-D Secure) and alphapay's
/// card API (its own 3-D Secure, docs/CARDS.md §4), real servers on loopback, both databases.
@Suite("Live card routing: the acquirer and an aggregator", .serialized, .timeLimit(.minutes(3)))
struct LiveCardRoutingTests {
    static let mastercard = "5500670000001002"  // ICICI Bank: no issuer rule
    static let rupay = "6527658900001005"
    static let lateMastercard = "5241810000001008"  // Kotak: the issuer answers after 4.5 s

    /// A live merchant who prefers the aggregator for cards.
    static func aggregatorMerchant(_ live: LiveCards) async throws -> MerchantCredentials {
        try await live.services.merchants.create(name: "Prefers Alphapay", mode: .live, routePreference: ["alphapay_card"])
    }

    /// create/json for `merchant`; the payment id.
    static func create(_ live: LiveCards, _ merchant: MerchantCredentials, number: String, amount: Int64 = 50_000) async throws -> String {
        let order = try await live.kosh.createOrder(amount: amount, as: merchant)
        let reply = try await live.kosh.call(.post, "/v1/payments/create/json", CardAPITests.cardBody(order: order, amount: amount, number: number),
                                             as: merchant)
        #expect(reply.status == 200, "\(reply.body)")
        return try #require(reply.string("razorpay_payment_id"))
    }

    /// otp_generate, the OTP the issuer's ACS texted (whoever started the authentication), otp/submit.
    static func pay(_ live: LiveCards, _ merchant: MerchantCredentials, _ id: String) async throws -> Kosh.Reply {
        let generated = try await live.kosh.call(.post, "/v1/payments/\(id)/otp_generate", "{}", as: merchant)
        #expect(generated.status == 200, "\(generated.body)")
        let (status, otp) = try await live.sandbox(.GET, "/sandbox/v1/cards/otp/\(id)")
        #expect(status == 200, "\(otp.serialized())")
        return try await live.kosh.call(.post, "/v1/payments/\(id)/otp/submit", #"{"otp": "\#(otp["otp"]?.text ?? "")"}"#, as: merchant)
    }

    static func attempts(_ live: LiveCards, _ merchant: MerchantCredentials, _ id: String) async throws -> [JSON] {
        let reply = try await live.kosh.call(.get, "/v1/payments/\(id)/attempts", as: merchant)
        guard case .array(let items)? = reply.json["items"] else { return [] }
        return items
    }

    @Test("routed by network, issuer rule, merchant preference and cost: 3-D Secure, capture, refund and void at the aggregator; the books say which route; no card number anywhere",
          arguments: TestDatabases.all)
    func routes(_ kind: String) async throws {
        try await LiveCards.run(kind) { live in
            let merchant = try await Self.aggregatorMerchant(live)

            // The merchant's preference: a MasterCard goes to alphapay, which runs 3-D Secure itself.
            let paid = try await Self.create(live, merchant, number: Self.mastercard)
            let reply = try await Self.pay(live, merchant, paid)
            #expect(reply.status == 200 && reply.string("razorpay_signature") != nil, "\(reply.body)")
            let payment = try await live.payment(paid)
            #expect(payment.state == .authorized && payment.rail == "alphapay_card" && payment.authCode != nil)
            let attempts = try await Self.attempts(live, merchant, paid)
            #expect(attempts.count == 1, "\(attempts)")
            #expect(attempts.first?["connector"] == .string("alphapay_card") && attempts.first?["status"] == .string("authorized"), "\(attempts)")
            #expect(attempts.first?["reason"] == .string("merchant preference"))
            var books = try await live.books(paid)
            #expect(books["via"] == .string("alphapay") && books["status"] == .string("approved"), "\(books.serialized())")

            let capture = try await live.kosh.call(.post, "/v1/payments/\(paid)/capture", #"{"amount": 50000, "currency": "INR"}"#, as: merchant)
            #expect(capture.string("status") == "captured", "\(capture.body)")
            let refund = try await live.kosh.call(.post, "/v1/payments/\(paid)/refund", #"{"amount": 20000}"#, as: merchant)
            #expect(refund.string("status") == "processed", "\(refund.body)")
            books = try await live.books(paid)
            #expect(books["captured_amount"] == .int(50_000) && books["refunded_amount"] == .int(20_000), "\(books.serialized())")

            let voided = try await Self.create(live, merchant, number: Self.mastercard, amount: 30_000)
            #expect(try await Self.pay(live, merchant, voided).status == 200)
            let cancel = try await live.kosh.call(.post, "/v1/payments/\(voided)/cancel", "{}", as: merchant)
            #expect(cancel.status == 200, "\(cancel.body)")
            let voidBooks = try await live.books(voided)
            #expect(voidBooks["via"] == .string("alphapay") && voidBooks["captured_amount"] == .int(0), "\(voidBooks.serialized())")
            #expect(voidBooks["status"] == .string("reversed") || voidBooks["status"] == .string("voided"), "\(voidBooks.serialized())")

            // A decline at the aggregator carries Razorpay's error fields.
            try await live.sandbox(.PUT, "/sandbox/v1/faults/alphapay", #"{"decline_rate": 1.0}"#)
            let declined = try await Self.create(live, merchant, number: Self.mastercard)
            let declineReply = try await Self.pay(live, merchant, declined)
            try await live.sandbox(.PUT, "/sandbox/v1/faults/alphapay", #"{"decline_rate": 0.0}"#)
            #expect(declineReply.status == 400 && declineReply.json["error"]?["reason"] == .string("card_declined"), "\(declineReply.body)")
            #expect(try await live.payment(declined).state == .failed)

            // RuPay: alphapay does not take it, so the acquirer, whatever the merchant prefers.
            let rupay = try await Self.create(live, merchant, number: Self.rupay)
            #expect(try await Self.pay(live, merchant, rupay).status == 200)
            #expect(try await live.payment(rupay).rail == "acquirer")
            #expect(try await live.books(rupay)["via"] == .string("acquirer"))

            // HDFC Bank's cards: the operator's "on us" rule keeps them on the acquirer.
            let hdfc = try await Self.create(live, merchant, number: LiveCardTests.visa)
            #expect(try await Self.pay(live, merchant, hdfc).status == 200)
            #expect(try await Self.attempts(live, merchant, hdfc).first?["reason"] == .string("rule: prefer acquirer for issuer HDFC"))

            // A merchant with no preference: the cheaper route (the acquirer) at equal success rates.
            let plain = try await live.create(number: Self.mastercard)
            #expect(try await live.authenticate(plain).status == 200)
            #expect(try await live.payment(plain).rail == "acquirer")
            let plainAttempts = try await Self.attempts(live, live.kosh.merchant, plain)
            #expect(plainAttempts.first?["reason"]?.text?.hasPrefix("best score") == true, "\(plainAttempts)")

            try await live.kosh.expectLedgerConsistent()
            try await LiveCardTests.scanForPANs(live, numbers: [Self.mastercard, Self.rupay, LiveCardTests.visa])
        }
    }

    @Test("failover only while nothing can have reached an issuer: an aggregator that is down hands the payment to the acquirer; an aggregator authorisation with no answer is voided, never sent again elsewhere",
          arguments: TestDatabases.all)
    func failover(_ kind: String) async throws {
        try await LiveCards.run(kind) { live in
            let merchant = try await Self.aggregatorMerchant(live)

            try await live.sandbox(.PUT, "/sandbox/v1/faults/alphapay", #"{"down": true}"#)
            let moved = try await Self.create(live, merchant, number: Self.mastercard)
            #expect(try await live.payment(moved).rail == "alphapay_card", "created on the first route")
            let reply = try await Self.pay(live, merchant, moved)
            try await live.sandbox(.PUT, "/sandbox/v1/faults/alphapay", #"{"down": false}"#)
            #expect(reply.status == 200 && reply.string("razorpay_signature") != nil, "\(reply.body)")
            let payment = try await live.payment(moved)
            #expect(payment.state == .authorized && payment.rail == "acquirer")
            let attempts = try await Self.attempts(live, merchant, moved)
            #expect(attempts.map { $0["connector"]?.text ?? "" } == ["alphapay_card", "acquirer"], "\(attempts)")
            #expect(attempts.map { $0["status"]?.text ?? "" } == ["unavailable", "authorized"], "\(attempts)")
            #expect(try await live.books(moved)["via"] == .string("acquirer"))

            // The late issuer: alphapay's authorisation outlasts Kosh's wait (2.5 s); Kosh voids it
            // there and fails the payment: nothing charged, and no second authorisation on the acquirer.
            let late = try await Self.create(live, merchant, number: Self.lateMastercard)
            let lateReply = try await Self.pay(live, merchant, late)
            let failed = try await live.wait(late) { $0.state == .failed }
            #expect(failed.machine.failure?.reason == "payment_timed_out", "\(lateReply.body)")
            #expect(failed.rail == "alphapay_card")
            // Real time on purpose: the issuer's late approval arrives 4.5 s after the authorisation.
            try await Task.sleep(for: .seconds(3))
            let books = try await live.books(late)
            #expect(books["via"] == .string("alphapay") && books["captured_amount"] == .int(0), "\(books.serialized())")
            #expect(books["status"] != .string("approved"), "the late approval's hold is released: \(books.serialized())")
            let lateAttempts = try await Self.attempts(live, merchant, late)
            #expect(lateAttempts.count == 1 && lateAttempts.first?["status"] == .string("failed"), "\(lateAttempts)")
            #expect(try await live.payment(late).state == .failed)
            try await live.kosh.expectLedgerConsistent()
        }
    }
}
