import Hummingbird
import KoshCore
import KoshFlows

/// The customer's browser in a netbanking or wallet payment (issue 14): Kosh's `redirect`
/// action sends it on to the bank's or wallet's page; the provider sends it back to Kosh, which
/// asks the provider server to server before showing or posting the result. In test mode the
/// page is Kosh's own mock (Razorpay's Success / Failure page).
struct RedirectAPI<Store: GatewayStore>: Sendable {
    let flows: PaymentFlows<Store>

    func register(open router: Router<KoshRequestContext>) {
        router.get("v1/payments/:id/authorize") { _, context in
            switch try await flows.redirectStep(paymentID: try Self.id(context)) {
            case .provider(let url): return Response(status: .found, headers: [.location: url, .cacheControl: "no-store"])
            case .result(let result): return ResultPage.response(result)
            }
        }
        router.post("v1/payments/:id/redirect/return") { request, context in
            // The provider's form fields (reference, status, bank_reference) are read by nobody: Kosh asks the provider.
            var request = request
            _ = try await request.collectBody(upTo: 16 * 1024)
            return ResultPage.response(try await flows.redirectReturned(paymentID: try Self.id(context)))
        }
        router.get("v1/payments/:id/test_redirect") { _, context in
            let id = try Self.id(context)
            let payment = try await flows.payment(id: id)
            guard payment.state == .pending, payment.method == .netbanking || payment.method == .wallet else {
                return ResultPage.response(try await flows.redirectReturned(paymentID: id))
            }
            let provider = payment.bank.flatMap(RedirectProviders.bank)?.name ?? payment.wallet.flatMap(RedirectProviders.wallet)?.name ?? "Bank"
            let html = """
                <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
                <title>\(ResultPage.escape(provider)) (test mode)</title>\(ResultPage.style)</head>
                <body><main><h1>\(ResultPage.escape(provider)): test payment</h1>
                <p>Amount: ₹\(payment.amount / 100).\(String(format: "%02d", Int(payment.amount % 100)))</p>
                <p>This is Kosh's test mode: no bank is contacted. Choose the outcome.</p>
                <form method="post"><button type="submit" name="action" value="success">Success</button></form>
                <p></p><form method="post"><button type="submit" name="action" value="failure">Failure</button></form>
                </main></body></html>
                """
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                            body: .init(byteBuffer: ByteBuffer(string: html)))
        }
        router.post("v1/payments/:id/test_redirect") { request, context in
            let id = try Self.id(context)
            var request = request
            let body = try await request.collectBody(upTo: 4 * 1024)
            let form = String(buffer: body)
            guard form == "action=success" || form == "action=failure" else {
                throw KoshError.badRequest("action must be success or failure", field: "action")
            }
            return ResultPage.response(try await flows.testRedirectAnswer(paymentID: id, approve: form == "action=success"))
        }
    }

    static func id(_ context: KoshRequestContext) throws -> ID<Payment> {
        let id = try context.parameters.require("id")
        try validateID(id, .payment)
        return ID(id)
    }
}
