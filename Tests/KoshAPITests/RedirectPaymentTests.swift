import AsyncHTTPClient
import Foundation
import KoshCore
import KoshJSON
import KoshTesting
import NIOCore
import NIOHTTP1
import Testing

/// Netbanking and wallets (issue 14): S2S create/json, the browser's redirect to the bank's or
/// wallet's page and back, the result confirmed with the provider's status API — live against
/// the sandbox's banks and wallets on both databases, and test mode's mock page.
@Suite("Netbanking and wallets: redirect, confirm server to server, callback or janitor", .serialized, .timeLimit(.minutes(3)))
struct RedirectPaymentTests {
    static func body(order: String, amount: Int64, method: String, code: String, callback: String? = nil) -> String {
        let field = method == "netbanking" ? "bank" : "wallet"
        let callbackField = callback.map { #", "callback_url": "\#($0)""# } ?? ""
        return #"{"amount": \#(amount), "currency": "INR", "order_id": "\#(order)", "email": "asha@example.com", "contact": "+919876543210", "method": "\#(method)", "\#(field)": "\#(code)"\#(callbackField)}"#
    }

    /// A browser that does not follow redirects: what Kosh answers is what is checked. One for
    /// the whole run (it lives as long as the test process).
    static let sharedBrowser = browser()

    static func browser() -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    static func fetch(_ client: HTTPClient, _ method: NIOHTTP1.HTTPMethod, _ url: String, form: String? = nil) async throws -> (Int, String, String?) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let form {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: form))
        }
        let response = try await client.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), String(buffer: body), response.headers.first(name: "Location"))
    }

    /// create/json, then the `redirect` action: the payment id and the provider's page.
    static func start(_ live: LiveCards, _ browser: HTTPClient, method: String, code: String, amount: Int64 = 50_000) async throws -> (String, String) {
        let order = try await live.kosh.createOrder(amount: amount)
        let created = try await live.kosh.call(.post, "/v1/payments/create/json", body(order: order, amount: amount, method: method, code: code))
        #expect(created.status == 200, "\(created.body)")
        let id = try #require(created.string("razorpay_payment_id"))
        let next = try #require(created.json["next"]?[0])
        #expect(next["action"] == .string("redirect"))
        #expect(next["url"] == .string("\(live.publicURL)/v1/payments/\(id)/authorize"))
        try await live.wait(id) { $0.state == .pending && $0.upiLink != nil }
        let (status, _, location) = try await fetch(browser, .GET, "\(live.publicURL)/v1/payments/\(id)/authorize")
        #expect(status == 302)
        let page = try #require(location)
        #expect(page.hasPrefix(live.sandboxURL + (method == "netbanking" ? "/netbanking/pay/nb_" : "/wallets/pay/wl_")), "\(page)")
        return (id, page)
    }

    @Test("netbanking: the bank's page, approve, back to Kosh — a tampered return is not believed, the bank's status API is; capture and refund reach the bank",
          arguments: TestDatabases.all)
    func netbanking(_ kind: String) async throws {
        try await LiveCards.run(kind) { live in
            let browser = Self.sharedBrowser
            let (id, page) = try await Self.start(live, browser, method: "netbanking", code: "HDFC")
            let (pageStatus, html, _) = try await Self.fetch(browser, .GET, page)
            #expect(pageStatus == 200 && html.contains("HDFC Bank"), "\(html.prefix(300))")

            // The browser comes back claiming success before the customer did anything: not believed.
            let (early, earlyPage, _) = try await Self.fetch(browser, .POST, "\(live.publicURL)/v1/payments/\(id)/redirect/return",
                                                             form: "reference=\(id)&status=success&bank_reference=123456789012")
            #expect(early == 200 && earlyPage.contains("payment_pending") && !earlyPage.contains("razorpay_signature"), "\(earlyPage)")
            #expect(try await live.payment(id).state == .pending)

            #expect(try await live.sandbox(.POST, "/sandbox/v1/redirect/\(id)/approve").0 == 200)
            // The browser now says failure: Kosh asks the bank, which says success.
            let (back, result, _) = try await Self.fetch(browser, .POST, "\(live.publicURL)/v1/payments/\(id)/redirect/return",
                                                         form: "reference=\(id)&status=failure")
            #expect(back == 200 && result.contains("razorpay_signature"), "\(result)")
            let payment = try await live.payment(id)
            #expect(payment.state == .authorized && payment.bank == "HDFC" && payment.rail == "netbanking")
            let entity = try await live.kosh.call(.get, "/v1/payments/\(id)")
            #expect(entity.string("method") == "netbanking" && entity.string("bank") == "HDFC" && entity.json["wallet"] == .null, "\(entity.body)")

            let capture = try await live.kosh.call(.post, "/v1/payments/\(id)/capture", #"{"amount": 50000, "currency": "INR"}"#)
            #expect(capture.string("status") == "captured", "\(capture.body)")
            let refund = try await live.kosh.call(.post, "/v1/payments/\(id)/refund", #"{"amount": 10000}"#)
            #expect(refund.status == 200, "\(refund.body)")
            _ = try await live.services.flows.sendPendingRefunds(olderThanMillis: 0)
            let bank = try await live.sandbox(.GET, "/netbanking/v1/payments/\(id)").1
            #expect(bank["refunded_amount"] == .int(10_000), "\(bank.serialized())")

            // Declined at the bank: Razorpay's error fields, nothing taken.
            let (declined, _) = try await Self.start(live, browser, method: "netbanking", code: "SBIN")
            #expect(try await live.sandbox(.POST, "/sandbox/v1/redirect/\(declined)/decline").0 == 200)
            let failed = try await live.wait(declined) { $0.state == .failed }
            #expect(failed.machine.failure?.reason == "payment_cancelled")
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("a bank whose callback is lost: the janitor's status checks find the approval", arguments: TestDatabases.all)
    func lostCallback(_ kind: String) async throws {
        try await LiveCards.run(kind) { live in
            let browser = Self.sharedBrowser
            try await live.sandbox(.PUT, "/sandbox/v1/faults/netbanking", #"{"drop_callback_rate": 1.0}"#)
            let (id, _) = try await Self.start(live, browser, method: "netbanking", code: "ICIC")
            #expect(try await live.sandbox(.POST, "/sandbox/v1/redirect/\(id)/approve").0 == 200)
            // Nobody comes back to Kosh (the browser was closed), and the callback is dropped.
            let payment = try await live.wait(id) { $0.state == .authorized }
            #expect(payment.railReference?.hasPrefix("nb_") == true, "the bank's own id for the payment")
            let stats = try await live.sandbox(.GET, "/sandbox/v1/stats").1
            #expect(stats["netbanking"]?["callbacks_dropped"] != .int(0), "\(stats.serialized())")
        }
    }

    @Test("wallets: the ₹20,000 cap, unknown codes refused naming the field, a payment approved at the wallet", arguments: TestDatabases.all)
    func wallets(_ kind: String) async throws {
        try await LiveCards.run(kind) { live in
            let browser = Self.sharedBrowser
            let order = try await live.kosh.createOrder(amount: 2_500_000)
            let over = try await live.kosh.call(.post, "/v1/payments/create/json", Self.body(order: order, amount: 2_500_000, method: "wallet", code: "phonepe"))
            #expect(over.status == 400 && over.json["error"]?["field"] == .string("amount"), "\(over.body)")
            let unknownWallet = try await live.kosh.call(.post, "/v1/payments/create/json", Self.body(order: order, amount: 2_500_000, method: "wallet", code: "paytm"))
            #expect(unknownWallet.status == 400 && unknownWallet.json["error"]?["field"] == .string("wallet"), "\(unknownWallet.body)")
            let unknownBank = try await live.kosh.call(.post, "/v1/payments/create/json", Self.body(order: order, amount: 2_500_000, method: "netbanking", code: "ZZZZ"))
            #expect(unknownBank.status == 400 && unknownBank.json["error"]?["field"] == .string("bank"), "\(unknownBank.body)")
            let missing = try await live.kosh.call(.post, "/v1/payments/create/json", Self.body(order: order, amount: 2_500_000, method: "netbanking", code: ""))
            #expect(missing.status == 400 && missing.json["error"]?["field"] == .string("bank"), "\(missing.body)")
            #expect(try await live.kosh.call(.get, "/v1/orders/\(order)").int("attempts") == 0, "nothing half-created")

            let (id, page) = try await Self.start(live, browser, method: "wallet", code: "amazonpay", amount: 150_000)
            #expect(try await Self.fetch(browser, .GET, page).1.contains("Amazon Pay"))
            // The wallet's own page: the Approve button.
            let (approved, returnPage, _) = try await Self.fetch(browser, .POST, page, form: "action=approve")
            #expect(approved == 200 && returnPage.contains("/v1/payments/\(id)/redirect/return"), "\(returnPage.prefix(400))")
            let (_, result, _) = try await Self.fetch(browser, .POST, "\(live.publicURL)/v1/payments/\(id)/redirect/return", form: "reference=\(id)&status=success")
            #expect(result.contains("razorpay_signature"), "\(result)")
            let payment = try await live.payment(id)
            #expect(payment.state == .authorized && payment.wallet == "amazonpay" && payment.rail == "wallets")
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("test mode: every bank and wallet goes to Kosh's mock page; Success authorises, Failure fails; the callback_url gets the signed result",
          arguments: TestDatabases.all)
    func testMode(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            for (choice, method, code) in [("success", "netbanking", "KKBK"), ("failure", "wallet", "mobikwik")] {
                let order = try await kosh.createOrder(amount: 50_000)
                let created = try await kosh.call(.post, "/v1/payments/create/json",
                                                  Self.body(order: order, amount: 50_000, method: method, code: code, callback: "https://shop.example.com/paid"))
                let id = try #require(created.string("razorpay_payment_id"), "\(created.body)")
                let redirect = try await kosh.call(.get, "/v1/payments/\(id)/authorize")
                #expect(redirect.status == 302)
                let location = try #require(redirect.headers[.location])
                #expect(location.hasSuffix("/v1/payments/\(id)/test_redirect"), "\(location)")
                let page = try await kosh.call(.get, "/v1/payments/\(id)/test_redirect")
                #expect(page.status == 200 && page.body.contains("test payment"))
                let answered = try await kosh.client.execute(uri: "/v1/payments/\(id)/test_redirect", method: .post,
                                                             headers: [.contentType: "application/x-www-form-urlencoded"],
                                                             body: ByteBuffer(string: "action=\(choice)")) { String(buffer: $0.body) }
                #expect(answered.contains(#"action="https://shop.example.com/paid""#), "\(answered)")
                let payment = try await kosh.services.flows.payment(id: ID(id))
                if choice == "success" {
                    #expect(payment.state == .authorized && answered.contains("razorpay_signature"))
                } else {
                    #expect(payment.state == .failed && answered.contains("payment_cancelled"))
                }
            }
            try await kosh.expectLedgerConsistent()
        }
    }
}
