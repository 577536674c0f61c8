import KoshCore
import KoshJSON

/// Where a redirect payment's browser goes next.
public enum RedirectStep: Sendable, Equatable {
    /// The bank's or wallet's page (or, in test mode, Kosh's mock page).
    case provider(url: String)
    /// The payment is past the provider: the result, to the merchant's `callback_url` or a page.
    case result(CardBrowserResult)
}

extension PaymentFlows {
    /// `POST /v1/payments/create/json` with `method: "netbanking", bank` or `method: "wallet",
    /// wallet` (issue 14): checks the bank or wallet and its cap, creates the payment and hands
    /// it to its rail (the bank or wallet provider opens it there), and answers Razorpay's
    /// `next: [{action: "redirect", url}]` — Kosh's own URL, which sends the browser on to the
    /// provider's page.
    public func createRedirectPayment(merchant: Merchant, _ input: NewPayment, idempotency: IdempotencyRequest? = nil) async throws -> CommandResponse {
        _ = try RedirectProviders.check(method: input.method, code: input.method == .netbanking ? input.bank : input.wallet, amount: input.amount)
        let base = settings.publicBaseURL
        return try await command(idempotency) { tx in
            let (payment, followUps) = try await createPayment(tx, merchant: merchant, input, inline: submitsInline(merchant))
            let reply = JSON.object([
                ("razorpay_payment_id", .string(payment.id.rawValue)),
                ("next", .array([.object([("action", .string("redirect")),
                                          ("url", .string("\(base)/v1/payments/\(payment.id.rawValue)/authorize"))])])),
            ])
            return Outcome(reply: .body(reply), followUps: followUps)
        }
    }

    /// `GET /v1/payments/:id/authorize` (the `redirect` action, opened by the customer's
    /// browser): on to the provider's page while the payment waits there; handed to its rail
    /// first if the server stopped before it was; the result once it has ended.
    public func redirectStep(paymentID: ID<Payment>) async throws -> RedirectStep {
        var payment = try await redirectPayment(paymentID)
        if payment.state == .created { payment = try await submit(paymentID: paymentID) }
        if payment.state == .pending, let link = payment.upiLink { return .provider(url: link) }
        return .result(try await redirectResult(payment))
    }

    /// `POST /v1/payments/:id/redirect/return`: the provider sent the browser back. What the
    /// browser carries is not believed: Kosh asks the provider (its status API, server to
    /// server) how the payment ended, then shows or posts the result.
    public func redirectReturned(paymentID: ID<Payment>) async throws -> CardBrowserResult {
        var payment = try await redirectPayment(paymentID)
        if payment.state == .pending { payment = try await check(paymentID: paymentID) }
        return try await redirectResult(payment)
    }

    /// Test mode's mock bank and wallet page (Razorpay's Success / Failure page): the tester's
    /// pick is the test rail's answer. Live payments never come here.
    public func testRedirectAnswer(paymentID: ID<Payment>, approve: Bool) async throws -> CardBrowserResult {
        let payment = try await redirectPayment(paymentID)
        guard payment.rail == rails.test.name else { throw KoshError.notFound() }
        if payment.state == .pending {
            let status: RailPaymentStatus = approve
                ? .authorized(reference: "test_" + payment.id.rawValue.dropFirst("pay_".count))
                : .failed(PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment was cancelled by the customer on the bank's or wallet's page.",
                                         source: "customer", step: "payment_authorization", reason: "payment_cancelled"))
            _ = try await railAnswered(paymentID: paymentID, status, from: .callback, connector: rails.test.name)
        }
        return try await redirectResult(try await redirectPayment(paymentID))
    }

    func redirectPayment(_ id: ID<Payment>) async throws -> Payment {
        let payment = try await self.payment(id: id)
        guard payment.method == .netbanking || payment.method == .wallet else { throw KoshError.notFound() }
        return payment
    }

    func redirectResult(_ payment: Payment) async throws -> CardBrowserResult {
        try await browserResult(payment, callbackURL: payment.callbackURL)
    }

    /// The fields a card's or a redirect payment's browser carries to the merchant:
    /// `razorpay_payment_id`, `razorpay_order_id` and `razorpay_signature` once authorised, else
    /// Razorpay's `error[…]` fields.
    func browserResult(_ payment: Payment, callbackURL: String?) async throws -> CardBrowserResult {
        switch payment.state {
        case .authorized, .captured, .refunded:
            guard let signer = cards?.signer else { throw KoshError(.serverError, "No payment signer is configured") }
            let signature = try await signer.signature(merchantID: payment.merchantID, orderID: payment.orderID, paymentID: payment.id)
            return CardBrowserResult(callbackURL: callbackURL, fields: [
                "razorpay_payment_id": payment.id.rawValue, "razorpay_order_id": payment.orderID.rawValue, "razorpay_signature": signature,
            ], succeeded: true)
        default:
            let failure = payment.machine.failure ?? PaymentFailure(
                code: "BAD_REQUEST_ERROR", description: "Payment is still being processed.", source: "gateway",
                step: "payment_authorization", reason: "payment_pending")
            return CardBrowserResult(callbackURL: callbackURL, fields: [
                "error[code]": failure.code, "error[description]": failure.description, "error[source]": failure.source,
                "error[step]": failure.step, "error[reason]": failure.reason,
                "error[metadata]": "{\"payment_id\":\"\(payment.id.rawValue)\",\"order_id\":\"\(payment.orderID.rawValue)\"}",
            ], succeeded: false)
        }
    }
}
