import Foundation
import Hummingbird
import KoshCore
import KoshJSON
import Logging
import NIOCore
import Synchronization
import Testing

/// 3-D Secure as a cardholder sees it: headless Chromium (through chromedriver's WebDriver API)
/// follows `next`'s redirect to the sandbox ACS's challenge page, types the OTP and is carried
/// back to Kosh, which authorises over ISO 8583 and shows its result page or posts it to the
/// merchant's callback_url. On SQLite only: this is a browser test, the database is beside the
/// point (LiveCardTests covers both databases).
@Suite("3-D Secure in a browser: the ACS's challenge page in headless Chromium", .serialized, .timeLimit(.minutes(3)))
struct ACSBrowserTests {
    static let visa = LiveCardTests.visa

    /// create/json with the test Visa; the payment id, its order and where `next` redirects the browser.
    static func create(_ live: LiveCards, extra: String = "") async throws -> (payment: String, order: String, redirect: String) {
        let order = try await live.kosh.createOrder(amount: 50_000)
        let reply = try await live.kosh.call(.post, "/v1/payments/create/json", CardAPITests.cardBody(order: order, number: visa, extra: extra))
        #expect(reply.status == 200, "\(reply.body)")
        let id = try #require(reply.string("razorpay_payment_id"))
        #expect(reply.json["next"]?[0]?["action"] == .string("redirect"), "\(reply.body)")
        guard case .string(let redirect)? = reply.json["next"]?[0]?["url"] else { throw WebDriverError(description: "no redirect in \(reply.body)") }
        // The redirect is built from Kosh's public address, which the harness serves.
        #expect(redirect == "\(live.publicURL)/v1/payments/\(id)/authenticate")
        return (id, order, redirect)
    }

    /// A six-digit code that is not `otp`.
    static func wrong(_ otp: String) -> String {
        String(otp.dropLast()) + (otp.last == "0" ? "1" : "0")
    }

    /// The ACS's OTP form: typed and sent with its Verify button; answers once the browser has
    /// left the form's page (a click can return before the navigation it starts).
    static func submitOTP(_ browser: Browser, _ otp: String) async throws {
        let input = try await browser.element("input#otp")
        try await input.clear()
        try await input.sendKeys(otp)
        try await browser.element("form button[type=submit]:not([name])").click()
        try await browser.wait("the page after the OTP form") { try await input.isStale() }
    }

    /// The challenge page as the cardholder first sees it: the issuer, merchant, amount and masked card, a labelled OTP input and a visible Verify button.
    static func expectChallengePage(_ browser: Browser) async throws {
        #expect(try await browser.currentURL().contains("/acs/challenge/acs_"))
        #expect(try await browser.title().hasPrefix("Verify your payment"))
        let heading = try await browser.text("h1")
        #expect(heading.hasSuffix("verify your payment"), "\(heading)")
        let details = try await browser.text("dl")
        #expect(details.contains("Card Merchant"), "\(details)")
        #expect(details.contains("₹500.00"), "\(details)")
        #expect(details.contains("410028******1007"), "\(details)")
        #expect(!(try await browser.source()).contains(visa), "the page never shows the full card number")
        #expect(try await browser.text("label[for=otp]").contains("One-time password"))
        #expect(try await browser.text("[role=status]").contains("sent a one-time password"))
        // On a 412 px wide phone nothing is wider than the screen, and the OTP input and Verify
        // are on it without scrolling.
        let (width, height) = Browser.viewport
        #expect(try await browser.execute("return window.innerWidth") == .int(Int64(width)), "a phone's viewport")
        #expect(try await browser.execute("return document.documentElement.scrollWidth") == .int(Int64(width)), "no sideways scrolling")
        for css in ["input#otp", "form button[type=submit]:not([name])"] {
            let element = try await browser.element(css)
            #expect(try await element.isDisplayed(), "\(css)")
            let rect = try await element.rect()
            #expect(rect.x >= 0 && rect.x + rect.width <= Double(width) && rect.y + rect.height <= Double(height), "\(css) at \(rect)")
        }
    }

    @Test("a live card authorised through the ACS's page: wrong OTP (attempts left shown), then the texted one; Kosh's result page is signed; the acquirer approved it",
          arguments: ["sqlite"])
    func authorisedThroughTheChallengePage(_ kind: String) async throws {
        guard Browser.installed() else { return }
        try await LiveCards.run(kind) { live in
            let (id, order, redirect) = try await Self.create(live)
            try await Browser.run { browser in
                try await browser.navigate(to: redirect)
                // Kosh 302-redirects to the ACS, whose first view texts the OTP.
                try await Self.expectChallengePage(browser)
                try await Screenshots.save(browser, "acs-challenge")
                let otp = try await live.otp(for: id)

                try await Self.submitOTP(browser, Self.wrong(otp))
                #expect(try await browser.text("#otp-problem") == "Incorrect code. 2 attempts left.")
                #expect(try await browser.element("input#otp").attribute("aria-invalid") == "true")
                #expect(try await live.payment(id).state == .created, "a wrong OTP leaves the payment waiting")
                try await Screenshots.save(browser, "acs-wrong-otp")

                try await Self.submitOTP(browser, otp)
                // The ACS's page posts itself back to Kosh, which confirms with the ACS and authorises over ISO 8583.
                if try await !browser.wait("Kosh's result page", until: { try await browser.title() == "Payment authorised" }) {
                    // What Kosh, the vault and the sandbox logged, to tell why (CI shows only this).
                    print(live.logs.all.filter { $0.hasPrefix("error") || $0.hasPrefix("warning") }.suffix(40).joined(separator: "\n"))
                }
                try await Screenshots.save(browser, "kosh-result")
                #expect(try await browser.currentURL() == "\(live.publicURL)/v1/payments/\(id)/authentication/return")
                #expect(try await browser.text("h1") == "Payment authorised")
                #expect(try await browser.text("#razorpay_payment_id") == id)
                #expect(try await browser.text("#razorpay_order_id") == order)
                let signature = try await browser.text("#razorpay_signature")
                #expect(signature == CardAPITests.signature(live.kosh, order: order, payment: id))
            }
            let payment = try await live.payment(id)
            #expect(payment.state == .authorized)
            let books = try await live.books(id)
            #expect(books["status"] == .string("approved") && books["authorised_amount"] == .int(50_000), "\(books.serialized())")
        }
    }

    @Test("with a callback_url the browser posts razorpay_payment_id, razorpay_order_id and razorpay_signature to the merchant",
          arguments: ["sqlite"])
    func postsToTheCallbackURL(_ kind: String) async throws {
        guard Browser.installed() else { return }
        let merchant = try await MerchantReturn.start()
        do {
            try await callback(kind, merchant)
        } catch {
            await merchant.stop()
            throw error
        }
        await merchant.stop()
    }

    func callback(_ kind: String, _ merchant: MerchantReturn) async throws {
        try await LiveCards.run(kind) { live in
            let (id, order, redirect) = try await Self.create(live, extra: #", "callback_url": "\#(merchant.url)?shop=1""#)
            try await Browser.run { browser in
                try await browser.navigate(to: redirect)
                try await Self.expectChallengePage(browser)
                try await Self.submitOTP(browser, try await live.otp(for: id))
                try await browser.wait("the merchant's page") { try await browser.title() == "Back at the merchant" }
                #expect(try await browser.currentURL() == "\(merchant.url)?shop=1")
            }
            let posts = merchant.posts.withLock { $0 }
            #expect(posts.count == 1, "\(posts)")
            let fields = try #require(posts.first)
            #expect(fields["razorpay_payment_id"] == id)
            #expect(fields["razorpay_order_id"] == order)
            #expect(fields["razorpay_signature"] == CardAPITests.signature(live.kosh, order: order, payment: id))
            #expect(Set(fields.keys) == ["razorpay_payment_id", "razorpay_order_id", "razorpay_signature"], "\(fields)")
            #expect(try await live.payment(id).state == .authorized)
        }
    }
}

/// The merchant's callback_url: a loopback page that records each form POSTed to it.
final class MerchantReturn: Sendable {
    let posts = Mutex<[[String: String]]>([])
    private let port = Mutex(0)
    private let task = Mutex<Task<Void, any Error>?>(nil)
    var url: String { "http://127.0.0.1:\(port.withLock { $0 })/shop/payment-return" }

    static func start() async throws -> MerchantReturn {
        let receiver = MerchantReturn()
        let router = Router()
        router.post("shop/payment-return") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let fields = form(String(buffer: body))
            receiver.posts.withLock { $0.append(fields) }
            let html = "<!doctype html><title>Back at the merchant</title><h1>Thank you</h1>"
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
                              logger: Logger(label: "merchant-return") { _ in SwiftLogNoOpLogHandler() })
        let task = Task {
            defer { continuation.finish() }
            try await app.runService(gracefulShutdownSignals: [])
        }
        receiver.task.withLock { $0 = task }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            await receiver.stop()
            throw WebDriverError(description: "the merchant's page did not start")
        }
        receiver.port.withLock { $0 = port }
        return receiver
    }

    func stop() async {
        guard let task = task.withLock({ $0 }) else { return }
        task.cancel()
        _ = await task.result
    }

    /// `application/x-www-form-urlencoded` fields.
    static func form(_ body: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map {
                $0.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            fields[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        return fields
    }
}
