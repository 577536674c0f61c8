import Hummingbird
import NIOCore

/// The banks' and wallets' browser pages (docs/REDIRECT_METHODS.md): `GET /netbanking/pay/{id}`
/// and `GET /wallets/pay/{id}` show the payment with **Approve** and **Decline**; `POST` with
/// `action=approve|decline` (form-encoded) decides it and answers the return page, which POSTs
/// `reference`, `status` and `bank_reference` / `wallet_reference` to the merchant's
/// `return_url` by itself (a Continue button for browsers without scripts). A payment no longer
/// pending shows its result and the same return form. Not signed (a customer's browser has no
/// key) and not subject to the rails' faults.
struct RedirectPages: Sendable {
    let runtime: SandboxRuntime

    /// Whether `path` is one of these pages: a page path and an id of letters, digits and `_`.
    static func isBrowserPage(_ path: String) -> Bool {
        for kind in RedirectKind.allCases where path.hasPrefix(kind.pagePath) {
            let id = path.utf8.dropFirst(kind.pagePath.utf8.count)
            return (1...64).contains(id.count) && id.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
            }
        }
        return false
    }

    func register(on router: Router<SandboxRequestContext>) {
        for kind in RedirectKind.allCases {
            let path = RouterPath(stringLiteral: String(kind.pagePath.dropFirst()) + ":id")
            router.get(path) { _, context in
                let id = try context.parameters.require("id")
                let now = runtime.now()
                guard let (payment, balance) = runtime.perform({ world -> ((RedirectPayment, Int64)?, [Effect]) in
                    guard let key = world.redirectKey(id: id), key.kind == kind else { return (nil, []) }
                    let (payment, effects) = world.redirectPayment(key, now: now)
                    return (payment.map { ($0, world.redirectBalance($0.provider)) }, effects)
                }) else { return Self.notFound() }
                return Self.page(payment, balance: balance, notice: nil)
            }
            router.post(path) { request, context in
                let id = try context.parameters.require("id")
                var request = request
                let form = FormBody.parse(try await request.collectBody(upTo: context.maxUploadSize))
                let decision = form["action"].flatMap(RedirectDecision.init(rawValue:))
                let now = runtime.now()
                guard let (payment, balance) = runtime.perform({ world -> ((RedirectPayment, Int64)?, [Effect]) in
                    guard let key = world.redirectKey(id: id), key.kind == kind else { return (nil, []) }
                    let (payment, effects) = if let decision {
                        world.decideRedirect(key, decision, now: now)
                    } else {
                        world.redirectPayment(key, now: now)
                    }
                    return (payment.map { ($0, world.redirectBalance($0.provider)) }, effects)
                }) else { return Self.notFound() }
                guard decision != nil || payment.status != .pending else {
                    return Self.page(payment, balance: balance, notice: "Choose Approve or Decline.", status: .badRequest)
                }
                return Self.page(payment, balance: balance, notice: nil)
            }
        }
    }

    static func page(_ payment: RedirectPayment, balance: Int64, notice: String?, status: HTTPResponse.Status = .ok) -> Response {
        let text = payment.status == .pending ? RedirectHTML.approval(payment, balance: balance, notice: notice) : RedirectHTML.result(payment)
        return ChallengePages.html(text, status: status)
    }

    static func notFound() -> Response {
        ChallengePages.html(RedirectHTML.message(title: "Not found", text: "This payment page does not exist or has expired."),
                            status: .notFound)
    }
}

/// The signature check, except for the browser pages of the banks and wallets (a customer's
/// browser has no key), which it passes straight on.
struct SignatureExceptRedirectPages: RouterMiddleware {
    typealias Context = SandboxRequestContext
    let signature: SignatureMiddleware

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if RedirectPages.isBrowserPage(request.uri.path) && (request.method == .get || request.method == .post) {
            return try await next(request, context)
        }
        return try await signature.handle(request, context: context, next: next)
    }
}

/// The pages' HTML: small, phone-first, no external resources, every value escaped.
enum RedirectHTML {
    static let escape = ChallengeHTML.escape

    /// The ACS pages' style, plus a secondary (outlined) button for Decline.
    static let style = ChallengeHTML.style + """
        button.secondary{background:#fff;color:#a40000;border:2px solid #a40000}\
        .note{color:#555;font-size:.9rem}
        """

    static func document(title: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <style>\(style)</style>
        </head>
        <body>
        <main>
        \(body)
        </main>
        </body>
        </html>
        """
    }

    static func amount(_ paise: Int64) -> String { "₹" + Rupees.indian(paise) }

    /// The provider's page for a pending payment: who is paid how much, and the two buttons.
    static func approval(_ payment: RedirectPayment, balance: Int64, notice: String?) -> String {
        let provider = payment.provider.name
        let wallet = payment.kind == .wallet
        let balanceRow = wallet ? "\n<dt>Wallet balance</dt><dd>\(escape(amount(balance)))</dd>" : ""
        let action = payment.kind.pagePath + payment.id
        let body = """
            <h1>\(escape(provider)): \(wallet ? "pay from your wallet" : "approve your payment")</h1>
            <dl id="summary">
            <dt>Merchant</dt><dd>\(escape(payment.merchantName))</dd>
            <dt>Amount</dt><dd>\(escape(amount(payment.amount)))</dd>
            <dt>Reference</dt><dd>\(escape(payment.reference))</dd>\(balanceRow)
            </dl>
            \(notice.map { "<p class=\"alert\" role=\"alert\">\(escape($0))</p>" } ?? "")
            <form method="post" action="\(escape(action))">
            <button type="submit" name="action" value="approve" aria-describedby="summary">Approve</button>
            <button type="submit" name="action" value="decline" class="secondary" aria-describedby="summary">Decline</button>
            </form>
            <p class="note">Sandbox \(wallet ? "wallet" : "bank"): nothing real is paid.</p>
            """
        return document(title: "\(provider) – approve your payment", body: body)
    }

    /// A final payment: its result, and a form that posts itself to the merchant's `return_url`,
    /// with a Continue button for browsers without scripts.
    static func result(_ payment: RedirectPayment) -> String {
        let headline = switch payment.failure {
        case nil: "Payment successful"
        case .declined?: "Payment declined"
        case .insufficientFunds?: payment.kind == .wallet ? "Not enough money in the wallet" : "Not enough money in the account"
        case .timedOut?: "Payment timed out"
        case .bankError?: "Payment failed"
        }
        let fields = [("reference", payment.reference), ("status", payment.status.rawValue),
                      (payment.kind.referenceField, payment.providerReference ?? "")]
        let inputs = fields.map { "<input type=\"hidden\" name=\"\(escape($0.0))\" value=\"\(escape($0.1))\">" }.joined(separator: "\n")
        let body = """
            <h1>\(escape(headline))</h1>
            <dl>
            <dt>Merchant</dt><dd>\(escape(payment.merchantName))</dd>
            <dt>Amount</dt><dd>\(escape(amount(payment.amount)))</dd>
            </dl>
            <p>Returning you to the merchant…</p>
            <form method="post" action="\(escape(payment.returnURL))">
            \(inputs)
            <button type="submit">Continue</button>
            </form>
            <script>document.forms[0].submit()</script>
            """
        return document(title: headline, body: body)
    }

    static func message(title: String, text: String) -> String {
        document(title: title, body: "<h1>\(escape(title))</h1>\n<p>\(escape(text))</p>")
    }
}
