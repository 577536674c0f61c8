import AsyncHTTPClient
import Crypto
import Foundation
import Hummingbird
import KoshCore
import KoshJSON
import KoshTesting
import Logging
import NIOCore
import Synchronization
import Testing

/// The checkout as a customer meets it (issue 14): a merchant's page that loads Kosh's
/// `checkout.js` and calls `new Razorpay(options).open()`, in headless Chromium, against Kosh
/// in live mode with the sandbox — the UPI switch and payer app, the card acquirer and ACS, the
/// banks and wallets. Each payment ends with the merchant's `handler` holding the signed triple,
/// checked here and written for the official Python SDK to check again (`KOSH_CHECKOUT_SIGNATURES`,
/// scripts/verify-checkout-signatures.py in CI), and the ledger balanced.
///
/// On SQLite only: a browser test; the database is beside the point (the API tests of the same
/// calls run on both). Screenshots are saved under `KOSH_SCREENSHOTS` (or a temporary directory).
@Suite("Checkout in a browser: checkout.js, the hosted page, every method", .serialized, .timeLimit(.minutes(4)))
struct CheckoutBrowserTests {
    static let visa = LiveCardTests.visa

    /// The address of the frame commands go to (WebDriver's current URL is the top page's).
    static func frameURL(_ browser: Browser) async throws -> String {
        guard case .string(let url) = try await browser.execute("return location.href") else { return "" }
        return url
    }

    @Test("UPI: the QR code (a phone's width, intent button shown) is paid by the sandbox's payer app; the page finishes by itself")
    func upiQR() async throws {
        guard Browser.installed() else { return }
        try await CheckoutShop.run { live, shop in
            let order = try await live.kosh.createOrder(amount: 49_900)
            try await Browser.run(phone: true) { browser in
                try await browser.navigate(to: shop.page(live, order: order))
                try await browser.frame(0)
                try await browser.wait("the checkout page") { try await browser.element("#method-upi").isDisplayed() }
                #expect(try await browser.text("#amount") == "₹499.00")
                try await browser.element("#method-upi").click()
                try await browser.element("#upi-qr-start").click()
                try await browser.wait("the QR code") { try await browser.element("#upi-qr-box").isDisplayed() }
                // Mobile widths get the intent button: the same upi://pay link as the QR code.
                let intent = try await browser.element("#upi-intent")
                #expect(try await intent.isDisplayed())
                let link = try #require(try await intent.attribute("href"))
                #expect(link.hasPrefix("upi://pay?"), "\(link)")
                let image = try await browser.element("#upi-qr")
                try await browser.wait("the QR image") { try await image.property("naturalWidth") != .int(0) }
                guard case .string(let source) = try await image.property("src") else { throw WebDriverError(description: "no QR src") }
                let png = try await shop.get(source)
                // Scannable: zbar reads the page's image back to the very link.
                let decoded = scanQRCodes(try readPNG(png)).map { String(decoding: $0, as: UTF8.self) }
                #expect(decoded == [link], "\(decoded)")
                try await browser.topFrame()
                try await Screenshots.save(browser, "checkout-upi-qr-phone")
                // The customer's UPI app scans it and pays.
                let (status, reply) = try await live.sandbox(.POST, "/upi/v1/app/pay",
                                                           JSON.object([("link", .string(link)), ("payer_vpa", .string("success@ybl"))]).serialized())
                #expect(status == 202, "\(reply.serialized())")
                let paid = try await shop.result(browser)
                try await shop.expectSigned(live, paid, order: order)
            }
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("card: the network from the BIN, 3-D Secure's challenge page in the modal with the texted OTP, then the handler")
    func cardWithOTP() async throws {
        guard Browser.installed() else { return }
        try await CheckoutShop.run { live, shop in
            let order = try await live.kosh.createOrder(amount: 50_000)
            try await Browser.run(phone: false) { browser in
                try await browser.navigate(to: shop.page(live, order: order))
                try await browser.frame(0)
                try await browser.wait("the checkout page") { try await browser.element("#method-card").isDisplayed() }
                try await browser.element("#method-card").click()
                try await browser.element("#card-number").sendKeys(Self.visa)
                try await browser.wait("the card's network") { try await browser.text("#card-network").hasPrefix("Visa") }
                #expect(try await browser.element("#card-number").property("value") == .string("4100 2800 0000 1007"))
                try await browser.element("#card-expiry").sendKeys("1230")
                try await browser.element("#card-cvv").sendKeys("123")
                try await browser.element("#card-name").sendKeys("Gaurav Kumar")
                try await browser.topFrame()
                try await Screenshots.save(browser, "checkout-card-desktop")
                try await browser.frame(0)
                try await browser.element("#card-form button[type=submit]").click()
                try await browser.wait("the ACS's challenge page") { try await Self.frameURL(browser).contains("/acs/challenge/") }
                let paymentID = try await shop.lastPayment(live, order: order)
                try await ACSBrowserTests.submitOTP(browser, try await live.otp(for: paymentID))
                try await browser.topFrame()
                let paid = try await shop.result(browser)
                try await shop.expectSigned(live, paid, order: order)
                #expect(paid["razorpay_payment_id"] == paymentID)
            }
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("a QR code shown, then a card instead: the QR's payment is cancelled, the card pays; the QR paid late anyway is refunded, never a second charge")
    func qrThenCard() async throws {
        guard Browser.installed() else { return }
        try await CheckoutShop.run { live, shop in
            let order = try await live.kosh.createOrder(amount: 40_000)
            var link = ""
            try await Browser.run(phone: false) { browser in
                try await browser.navigate(to: shop.page(live, order: order))
                try await browser.frame(0)
                try await browser.wait("the checkout page") { try await browser.element("#method-upi").isDisplayed() }
                try await browser.element("#method-upi").click()
                try await browser.element("#upi-qr-start").click()
                try await browser.wait("the QR code") { try await browser.element("#upi-qr-box").isDisplayed() }
                link = try #require(try await browser.element("#upi-intent").attribute("href"))
                try await browser.element("#method-card").click()
                try await browser.element("#card-number").sendKeys(Self.visa)
                try await browser.element("#card-expiry").sendKeys("1230")
                try await browser.element("#card-cvv").sendKeys("123")
                try await browser.element("#card-form button[type=submit]").click()
                try await browser.wait("the ACS's challenge page") { try await Self.frameURL(browser).contains("/acs/challenge/") }
                let cardPayment = try await shop.lastPayment(live, order: order)
                try await ACSBrowserTests.submitOTP(browser, try await live.otp(for: cardPayment))
                try await browser.topFrame()
                let paid = try await shop.result(browser)
                try await shop.expectSigned(live, paid, order: order)
                #expect(paid["razorpay_payment_id"] == cardPayment)
            }
            let payments = try await live.kosh.call(.get, "/v1/orders/\(order)/payments")
            #expect(payments.json["count"] == .int(2), "\(payments.body)")
            guard case .string(let qrPayment)? = payments.json["items"]?[1]?["id"] else { throw WebDriverError(description: payments.body) }
            #expect(payments.json["items"]?[1]?["status"] == .string("failed"), "\(payments.body)")
            #expect(payments.json["items"]?[1]?["error_reason"] == .string("payment_cancelled"), "\(payments.body)")
            // The customer's app still pays the QR it scanned: the money goes back.
            let (status, reply) = try await live.sandbox(.POST, "/upi/v1/app/pay", JSON.object([("link", .string(link)), ("payer_vpa", .string("success@ybl"))]).serialized())
            #expect(status == 202, "\(reply.serialized())")
            let refunded = try await live.wait(qrPayment, seconds: 30) { $0.state == .refunded }
            #expect(refunded.autoRefunded, "\(refunded.state)")
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("a known customer's saved card: shown masked with its issuer, paid with its CVV and 3-D Secure")
    func savedCard() async throws {
        guard Browser.installed() else { return }
        try await CheckoutShop.run { live, shop in
            let customer = try await live.kosh.call(.post, "/v1/customers", #"{"name": "Gaurav Kumar", "email": "gaurav@example.com", "contact": "+919000090000"}"#)
            let customerID = try #require(customer.string("id"))
            let first = try await live.create(number: Self.visa, extra: #", "save": 1, "customer_id": "\#(customerID)""#)
            #expect(try await live.authenticate(first).status == 200)
            let order = try await live.kosh.createOrder(amount: 25_000)
            try await Browser.run(phone: false) { browser in
                try await browser.navigate(to: shop.page(live, order: order, extra: [("customer_id", .string(customerID))]))
                try await browser.frame(0)
                try await browser.wait("the checkout page") { try await browser.element("#method-card").isDisplayed() }
                try await browser.element("#method-card").click()
                let saved = try await browser.element("#saved-cards button")
                let label = try await saved.text()
                #expect(label == "Visa •••• 1007 · HDFC", "\(label)")
                #expect(!(try await browser.source()).contains(Self.visa))
                try await browser.element("#saved-cvv").sendKeys("123")
                try await saved.click()
                try await browser.wait("the ACS's challenge page") { try await Self.frameURL(browser).contains("/acs/challenge/") }
                let paymentID = try await shop.lastPayment(live, order: order)
                try await ACSBrowserTests.submitOTP(browser, try await live.otp(for: paymentID))
                try await browser.topFrame()
                let paid = try await shop.result(browser)
                try await shop.expectSigned(live, paid, order: order)
            }
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("netbanking with payment_capture: 1: a bank found by search, approved on the bank's page; the order is paid before the browser is back, and the handler still gets the triple")
    func netbankingApproved() async throws {
        guard Browser.installed() else { return }
        try await CheckoutShop.run { live, shop in
            let created = try await live.kosh.call(.post, "/v1/orders", #"{"amount": 50000, "currency": "INR", "payment_capture": 1}"#)
            let order = try #require(created.string("id"))
            try await Browser.run(phone: false) { browser in
                try await browser.navigate(to: shop.page(live, order: order))
                try await browser.frame(0)
                try await browser.wait("the checkout page") { try await browser.element("#method-netbanking").isDisplayed() }
                try await browser.element("#method-netbanking").click()
                #expect(try await browser.elements("#popular-banks button").count == CheckoutShop.popularBanks)
                try await browser.element("#bank-search").sendKeys("kotak")
                try await browser.wait("the search") { try await browser.text("#bank-count") == "1 bank" }
                try await browser.element("#bank-list button[data-code=KKBK]").click()
                try await browser.wait("the bank's page") { try await Self.frameURL(browser).contains("/netbanking/pay/") }
                try await browser.element("button[value=approve]").click()
                try await browser.topFrame()
                let paid = try await shop.result(browser)
                try await shop.expectSigned(live, paid, order: order)
                let payment = try await live.payment(paid["razorpay_payment_id"] ?? "")
                #expect(payment.bank == "KKBK" && payment.state == .captured, "\(payment.state)")
            }
            #expect(try await live.kosh.call(.get, "/v1/orders/\(order)").string("status") == "paid")
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("a wallet declined: payment.failed reaches the merchant, the modal stays open, and another method pays the same order")
    func walletDeclinedThenRetry() async throws {
        guard Browser.installed() else { return }
        try await CheckoutShop.run { live, shop in
            let order = try await live.kosh.createOrder(amount: 50_000)
            try await Browser.run(phone: false) { browser in
                try await browser.navigate(to: shop.page(live, order: order))
                try await browser.frame(0)
                try await browser.wait("the checkout page") { try await browser.element("#method-wallet").isDisplayed() }
                try await browser.element("#method-wallet").click()
                try await browser.element("#wallet-list button[data-code=phonepe]").click()
                try await browser.wait("the wallet's page") { try await Self.frameURL(browser).contains("/wallets/") }
                try await browser.element("button[value=decline]").click()
                try await browser.wait("the failure on the checkout page") { try await browser.element("#error").isDisplayed() }
                #expect(try await browser.text("#error").contains("try again"))
                try await browser.topFrame()
                try await browser.wait("payment.failed at the merchant") { try await browser.text("#failures") != "" }
                let failure = try JSON.parse(Array(try await browser.text("#failures").utf8))
                #expect(failure["reason"] == .string("payment_cancelled"), "\(failure.serialized())")
                #expect(failure["metadata"]?["order_id"] == .string(order))
                try await Screenshots.save(browser, "checkout-retry-desktop")
                // The same modal, another method.
                try await browser.frame(0)
                try await browser.element("#method-netbanking").click()
                try await browser.element("#popular-banks button").click()
                try await browser.wait("the bank's page") { try await Self.frameURL(browser).contains("/netbanking/pay/") }
                try await browser.element("button[value=approve]").click()
                try await browser.topFrame()
                let paid = try await shop.result(browser)
                try await shop.expectSigned(live, paid, order: order)
            }
            let payments = try await live.kosh.call(.get, "/v1/orders/\(order)/payments")
            #expect(payments.json["count"] == .int(2), "\(payments.body)")
            // Newest first: the netbanking payment authorised (captured later by the merchant), the wallet's failed.
            #expect(payments.json["items"]?[0]?["status"] == .string("authorized"), "\(payments.body)")
            #expect(payments.json["items"]?[1]?["status"] == .string("failed"), "\(payments.body)")
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("the hosted page (redirect flow, a phone): the merchant's form posts to /v1/checkout/embedded; after the bank, the browser is POSTed to callback_url")
    func hostedRedirectFlow() async throws {
        guard Browser.installed() else { return }
        try await CheckoutShop.run { live, shop in
            let merchant = try await live.services.merchants.create(name: "Hosted Shop", mode: .live,
                                                                    checkout: CheckoutSettings(origins: [shop.origin]))
            let order = try await live.kosh.createOrder(amount: 75_000, as: merchant)
            let fields: [(String, String)] = [
                ("key_id", merchant.keyID), ("order_id", order), ("name", "Hosted Shop"), ("description", "Order #7"),
                ("prefill[email]", "gaurav.kumar@example.com"), ("prefill[contact]", "9000090000"),
                ("callback_url", shop.origin + "/shop/payment-return"), ("cancel_url", shop.origin + "/shop/pages/0"),
            ]
            let inputs = fields.map { #"<input type="hidden" name="\#($0.0)" value="\#($0.1)">"# }.joined()
            let page = shop.add(html: """
                <!doctype html><html lang="en"><head><meta charset="utf-8"><title>Pay</title></head><body>
                <form method="post" action="\(live.publicURL)/v1/checkout/embedded">\(inputs)<button type="submit">Pay now</button></form>
                </body></html>
                """)
            try await Browser.run(phone: true) { browser in
                try await browser.navigate(to: page)
                try await browser.element("button").click()
                try await browser.wait("the hosted page") { try await browser.element("#method-netbanking").isDisplayed() }
                #expect(try await browser.text("#merchant") == "Hosted Shop")
                try await browser.element("#method-netbanking").click()
                try await Screenshots.save(browser, "checkout-hosted-netbanking-phone")
                try await browser.element("#popular-banks button").click()
                try await browser.wait("the bank's page") { try await browser.currentURL().contains("/netbanking/pay/") }
                try await browser.element("button[value=approve]").click()
                try await browser.wait("the merchant's callback_url", seconds: 30) { try await browser.title() == "Back at the shop" }
            }
            let posted = try #require(shop.posts.withLock { $0.first })
            #expect(Set(posted.keys) == ["razorpay_payment_id", "razorpay_order_id", "razorpay_signature"], "\(posted)")
            #expect(posted["razorpay_order_id"] == order)
            let payment = try #require(posted["razorpay_payment_id"])
            let expected = HMAC<SHA256>.authenticationCode(for: Data("\(order)|\(payment)".utf8), using: SymmetricKey(data: Data(merchant.keySecret.utf8)))
            #expect(posted["razorpay_signature"] == expected.map { String(format: "%02x", $0) }.joined())
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("the modal dismissed: ondismiss runs, the iframe is gone, nothing was paid")
    func dismissed() async throws {
        guard Browser.installed() else { return }
        try await CheckoutShop.run { live, shop in
            let order = try await live.kosh.createOrder(amount: 50_000)
            try await Browser.run(phone: false) { browser in
                try await browser.navigate(to: shop.page(live, order: order))
                try await browser.frame(0)
                try await browser.wait("the checkout page") { try await browser.element("#close").isDisplayed() }
                try await browser.element("#close").click()
                try await browser.topFrame()
                try await browser.wait("ondismiss") { try await browser.text("#dismissed") == "dismissed" }
                #expect(try await browser.elements("iframe").isEmpty)
            }
            #expect(try await live.kosh.call(.get, "/v1/orders/\(order)").string("status") == "created")
        }
    }

    @Test("merchant-supplied strings (name, description, notes, prefill, image) with HTML and script in them are shown as text; nothing runs")
    func escapesMerchantStrings() async throws {
        guard Browser.installed() else { return }
        try await CheckoutShop.run { live, shop in
            let order = try await live.kosh.createOrder(amount: 50_000)
            let hostile = #"<img src=x onerror="window.top.pwned=1;window.pwned=1"><script>window.pwned=2</script>"#
            let options: [(String, JSON)] = [
                ("name", .string("Shop " + hostile)), ("description", .string("Order " + hostile)),
                ("notes", .object([("gift", .string(hostile))])),
                ("prefill", .object([("name", .string(hostile)), ("email", .string("a@b.in\"><script>window.pwned=3</script>")),
                                     ("contact", .string("9000090000"))])),
                ("image", .string("javascript:window.top.pwned=4")),
            ]
            try await Browser.run(phone: true) { browser in
                try await browser.navigate(to: shop.page(live, order: order, extra: options))
                try await browser.frame(0)
                try await browser.wait("the checkout page") { try await browser.element("#method-card").isDisplayed() }
                #expect(try await browser.execute("return document.getElementById('merchant').textContent") == .string("Shop " + hostile))
                #expect(try await browser.execute("return document.getElementById('description').textContent") == .string("Order " + hostile))
                #expect(try await browser.execute("return document.querySelectorAll('script').length") == .int(2), "only the page's own two")
                #expect(try await browser.execute("return document.getElementById('logo').hidden") == .bool(true), "a javascript: logo is not shown")
                // An injected handler would have run by now (the logo's URL is not even loaded).
                try await Task.sleep(for: .milliseconds(500))  // real time on purpose: the browser's event loop
                #expect(try await browser.execute("return window.pwned === undefined") == .bool(true))
                #expect(try await browser.execute("return document.querySelectorAll('img').length") == .int(2), "the logo and the QR code only")
                #expect(try await browser.execute("""
                    return Array.prototype.some.call(document.querySelectorAll('*'), function (e) {
                      return Array.prototype.some.call(e.attributes, function (a) { return /^on/i.test(a.name); }); })
                    """) == .bool(false), "no element has an event-handler attribute")
                #expect(try await browser.element("#email").property("value") == .string("a@b.in\"><script>window.pwned=3</script>"))
                try await browser.topFrame()
                try await Screenshots.save(browser, "checkout-escaped-phone")
                #expect(try await browser.execute("return window.pwned === undefined") == .bool(true))
            }
        }
    }
}

/// A merchant's shop on loopback: its checkout page (Razorpay's Standard Checkout integration,
/// unchanged), and the `callback_url` that records what is POSTed to it.
final class CheckoutShop: Sendable {
    static let popularBanks = 6
    let http: HTTPClient
    let pages = Mutex<[String]>([])
    /// The forms POSTed to the shop's callback_url.
    let posts = Mutex<[[String: String]]>([])
    var origin: String { "http://127.0.0.1:\(port.withLock { $0 })" }

    /// Serves `html` as a page of the shop; its URL.
    func add(html: String) -> String {
        let n = pages.withLock { pages in
            pages.append(html)
            return pages.count - 1
        }
        return "\(origin)/shop/pages/\(n)"
    }
    let port = Mutex(0)
    let task = Mutex<Task<Void, any Error>?>(nil)

    init(http: HTTPClient) {
        self.http = http
    }

    static func run(_ body: @Sendable (LiveCards, CheckoutShop) async throws -> Void) async throws {
        let shop = CheckoutShop(http: HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup))
        do {
            try await shop.start()
            try await LiveCards.run("sqlite") { live in try await body(live, shop) }
        } catch {
            await shop.stop()
            throw error
        }
        await shop.stop()
    }

    /// The shop's own origin on loopback, serving the pages `page(…)` made.
    func start() async throws {
        let router = Router()
        router.post("shop/payment-return") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let fields = MerchantReturn.form(String(buffer: body))
            self.posts.withLock { $0.append(fields) }
            let html = "<!doctype html><title>Back at the shop</title><h1>Thank you</h1>"
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
        }
        router.get("shop/pages/:n") { _, context -> Response in
            let n = Int(try context.parameters.require("n")) ?? -1
            let html = self.pages.withLock { n >= 0 && n < $0.count ? $0[n] : "" }
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: html)))
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
                              logger: Logger(label: "checkout-shop") { _ in SwiftLogNoOpLogHandler() })
        let task = Task {
            defer { continuation.finish() }
            try await app.runService(gracefulShutdownSignals: [])
        }
        self.task.withLock { $0 = task }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else { throw WebDriverError(description: "the shop did not start") }
        self.port.withLock { $0 = port }
    }

    func stop() async {
        try? await http.shutdown()
        guard let task = task.withLock({ $0 }) else { return }
        task.cancel()
        _ = await task.result
    }

    /// The URL of a new page of the merchant's: it loads checkout.js from Kosh and opens the modal
    /// at once. The handler writes the triple into `#result`, `payment.failed` its `error` into
    /// `#failures`, `modal.ondismiss` "dismissed" into `#dismissed`.
    func page(_ live: LiveCards, order: String, extra: [(String, JSON)] = []) -> String {
        var options: [(String, JSON)] = [
            ("key", .string(live.kosh.merchant.keyID)), ("order_id", .string(order)), ("name", .string("Acme Books")),
            ("description", .string("Order #1042")), ("theme", .object([("color", .string("#0f766e"))])),
            ("prefill", .object([("name", .string("Gaurav Kumar")), ("email", .string("gaurav.kumar@example.com")), ("contact", .string("9000090000"))])),
        ]
        for (key, value) in extra {
            options.removeAll { $0.0 == key }
            options.append((key, value))
        }
        let html = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
            <title>Acme Books</title></head><body><h1>Acme Books</h1>
            <pre id="result"></pre><pre id="failures"></pre><pre id="dismissed"></pre>
            <script type="application/json" id="options">\(JSON.object(options).serialized().replacingOccurrences(of: "<", with: "\\u003c"))</script>
            <script src="\(live.publicURL)/v1/checkout.js"></script>
            <script>
            var options = JSON.parse(document.getElementById('options').textContent);
            options.handler = function (r) { document.getElementById('result').textContent = JSON.stringify(r); };
            options.modal = { ondismiss: function () { document.getElementById('dismissed').textContent = 'dismissed'; } };
            var rzp = new Razorpay(options);
            rzp.on('payment.failed', function (r) { document.getElementById('failures').textContent = JSON.stringify(r.error); });
            rzp.open();
            </script></body></html>
            """
        return add(html: html)
    }

    /// The merchant's handler's fields, once it has them.
    func result(_ browser: Browser) async throws -> [String: String] {
        try await browser.wait("the merchant's handler", seconds: 30) { try await browser.text("#result") != "" }
        let json = try JSON.parse(Array(try await browser.text("#result").utf8))
        var fields: [String: String] = [:]
        for key in ["razorpay_payment_id", "razorpay_order_id", "razorpay_signature"] {
            if case .string(let value)? = json[key] { fields[key] = value }
        }
        return fields
    }

    /// The triple is Razorpay's: the order's, signed with the merchant's secret; written for the
    /// Python SDK's `utility.verify_payment_signature` when `KOSH_CHECKOUT_SIGNATURES` is set.
    func expectSigned(_ live: LiveCards, _ fields: [String: String], order: String) async throws {
        #expect(Set(fields.keys) == ["razorpay_payment_id", "razorpay_order_id", "razorpay_signature"], "\(fields)")
        #expect(fields["razorpay_order_id"] == order)
        let payment = try #require(fields["razorpay_payment_id"])
        #expect(fields["razorpay_signature"] == CardAPITests.signature(live.kosh, order: order, payment: payment))
        let state = try await live.payment(payment).state
        #expect(state == .authorized || state == .captured, "\(state)")
        if let path = ProcessInfo.processInfo.environment["KOSH_CHECKOUT_SIGNATURES"], !path.isEmpty {
            let line = JSON.object([
                ("razorpay_order_id", .string(order)), ("razorpay_payment_id", .string(payment)),
                ("razorpay_signature", .string(fields["razorpay_signature"] ?? "")), ("key_id", .string(live.kosh.merchant.keyID)),
                ("key_secret", .string(live.kosh.merchant.keySecret)),
            ]).serialized() + "\n"
            if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(line.utf8))
            try handle.close()
        }
    }

    /// The newest payment of the order.
    func lastPayment(_ live: LiveCards, order: String) async throws -> String {
        let reply = try await live.kosh.call(.get, "/v1/orders/\(order)/payments")
        guard case .string(let id)? = reply.json["items"]?[0]?["id"] else { throw WebDriverError(description: "no payment: \(reply.body)") }
        return id
    }

    func get(_ url: String) async throws -> [UInt8] {
        let response = try await http.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        #expect(response.status == .ok)
        return Array(try await response.body.collect(upTo: 1 << 20).readableBytesView)
    }
}
