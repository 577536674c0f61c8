import Hummingbird
import KoshCore
import KoshFlows
import KoshJSON
import KoshQR

/// The checkout (issue 14): `checkout.js`, the page it opens in an iframe (also served whole
/// for the hosted redirect flow), and the page's calls under `/v1/checkout`.
///
/// The browser holds only the merchant's public key id (Razorpay's `key` option). With it the
/// page may read the order it was opened for and pay it — the amount and currency are always
/// the order's, never the browser's — and follow that payment. Everything else about
/// the payment is the S2S API's use cases: a checkout payment is an ordinary payment.
struct CheckoutAPI<Store: GatewayStore>: Sendable {
    let flows: PaymentFlows<Store>
    let keys: any CheckoutKeys
    let images: QRImageCache

    /// Payments one order may take through the checkout: retries after failures, method
    /// switches; past this the customer is told to start again with the merchant.
    static var maximumAttemptsPerOrder: Int { 20 }
    static var maximumKeyIDLength: Int { 64 }

    func register(on router: Router<KoshRequestContext>) {
        // Kosh's public address is written into checkout.js once (a JS string literal: JSON).
        let script = CheckoutAssets.checkoutJS.replacingOccurrences(
            of: "{{BASE}}", with: CheckoutAssets.scriptSafe(JSON.string(CheckoutSettings.origin(of: flows.settings.publicBaseURL) ?? flows.settings.publicBaseURL).serialized()))
        router.get("v1/checkout.js") { _, _ in CheckoutAssets.response(script, type: "text/javascript; charset=utf-8") }
        router.get("v1/checkout/assets/page.js") { _, _ in CheckoutAssets.response(CheckoutAssets.pageJS, type: "text/javascript; charset=utf-8") }
        router.get("v1/checkout/assets/page.css") { _, _ in CheckoutAssets.response(CheckoutAssets.pageCSS, type: "text/css; charset=utf-8") }
        // The iframe's page: its options arrive from checkout.js by postMessage.
        router.get("v1/checkout/page") { _, _ in CheckoutAssets.page(boot: .object([("mode", .string("frame"))])) }
        router.post("v1/checkout/embedded") { request, context in try await self.embedded(request, context) }
        router.post("v1/checkout/return") { request, context in try await self.returned(request, context) }
        router.get("v1/checkout/preferences") { request, _ in try await self.preferences(request) }
        router.post("v1/checkout/payments") { request, context in try await self.createPayment(request, context) }
        router.get("v1/checkout/payments/:id") { request, context in try await self.status(request, context) }
        router.post("v1/checkout/payments/:id/cancel") { request, context in try await self.cancel(request, context) }
        router.get("v1/checkout/payments/:id/qr.png") { request, context in try await self.qrImage(request, context) }
        router.get("v1/checkout/iins/:iin") { request, context in try await self.iin(request, context) }
    }

    // MARK: The merchant behind a public key

    func merchant(keyID: String?) async throws -> Merchant {
        guard let keyID, !keyID.isEmpty else { throw KoshError.badRequest("The key_id is required.", field: "key_id") }
        guard keyID.utf8.count <= Self.maximumKeyIDLength, let merchant = try await keys.merchant(publicKeyID: keyID) else {
            throw KoshError(.unauthorized, "The api key provided is invalid", field: "key_id", source: "NA", step: "NA", reason: "NA")
        }
        return merchant
    }

    func merchant(_ request: Request) async throws -> Merchant {
        try await merchant(keyID: request.uri.queryParameters.get("key_id"))
    }

    static func paymentID(_ context: KoshRequestContext) throws -> ID<Payment> {
        let id = try context.parameters.require("id")
        try validateID(id, .payment)
        return ID(id)
    }

    // MARK: Reads

    func preferences(_ request: Request) async throws -> Response {
        let merchant = try await merchant(request)
        let query = request.uri.queryParameters
        guard let orderID = query.get("order_id"), !orderID.isEmpty else { throw KoshError.badRequest("The order_id is required.", field: "order_id") }
        try validateID(orderID, .order, field: "order_id")
        var customerID: ID<Customer>?
        if let id = query.get("customer_id"), !id.isEmpty {
            try validateID(id, .customer, field: "customer_id")
            customerID = ID(id)
        }
        let preferences = try await flows.checkoutPreferences(merchant: merchant, orderID: ID(orderID), customerID: customerID)
        return noStore(jsonResponse(CheckoutRender.preferences(preferences)))
    }

    func status(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let merchant = try await merchant(request)
        let status = try await flows.checkoutStatus(merchant: merchant, paymentID: try Self.paymentID(context))
        return noStore(jsonResponse(CheckoutRender.status(status, paymentID: try Self.paymentID(context))))
    }

    /// The customer leaves an open attempt for another method (`checkoutAbandon`).
    func cancel(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let (raw, _) = try await RequestBody.parse(request, context: context)
        var body = raw
        let merchant = try await merchant(keyID: try body.string("key_id", required: true, maxLength: Self.maximumKeyIDLength))
        try body.rejectUnknown()
        let id = try Self.paymentID(context)
        return noStore(jsonResponse(CheckoutRender.status(try await flows.checkoutAbandon(merchant: merchant, paymentID: id), paymentID: id)))
    }

    func qrImage(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let merchant = try await merchant(request)
        let link = try await flows.checkoutIntentLink(merchant: merchant, paymentID: try Self.paymentID(context))
        let png = try images.png(for: link)
        return Response(status: .ok, headers: [.contentType: "image/png", .cacheControl: "private, max-age=900"],
                        body: .init(byteBuffer: ByteBuffer(bytes: png)))
    }

    func iin(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        _ = try await merchant(request)
        let iin = try context.parameters.require("iin")
        guard iin.utf8.count == 6, iin.utf8.allSatisfy({ (48...57).contains($0) }) else {
            throw KoshError.badRequest("The iin must be 6 digits.", field: "iin")
        }
        guard let record = try flows.iin(iin) else { throw KoshError.notFound("The IIN is not known", field: "iin") }
        return jsonResponse(.object([
            ("iin", .string(iin)), ("network", .string(record.network.displayName)), ("type", .string(record.type.rawValue)),
            ("issuer_name", record.issuerName.map(JSON.string) ?? .null),
        ]))
    }

    // MARK: Paying

    func createPayment(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let (raw, _) = try await RequestBody.parse(request, context: context)
        var body = raw
        let merchant = try await merchant(keyID: try body.string("key_id", required: true, maxLength: Self.maximumKeyIDLength))
        let orderIDText = try body.string("order_id", required: true, maxLength: 64)!
        try validateID(orderIDText, .order, field: "order_id")
        let order = try await flows.checkoutOrder(merchant: merchant, orderID: ID(orderIDText))
        let attempts = try await flows.payments(merchantID: merchant.id, orderID: order.id, page: Page(count: Self.maximumAttemptsPerOrder))
        guard attempts.count < Self.maximumAttemptsPerOrder else {
            throw KoshError.badRequest("This order has had \(Self.maximumAttemptsPerOrder) payment attempts; please start again from the merchant's site",
                                       field: "order_id", reason: "too_many_attempts")
        }
        let method = try body.string("method", required: true, maxLength: 16)!
        let (email, contact) = try body.emailAndContact()
        let description = try body.string("description", maxLength: APILimits.maximumDescriptionLength, allowLineBreaks: true)
        let notes = try body.notes()
        let returnURL = flows.settings.publicBaseURL + "/v1/checkout/return"
        var payment = NewPayment(orderID: order.id, amount: order.amount, currency: order.currency, method: .upi, vpa: nil, email: email,
                                 contact: contact, description: description, notes: notes)
        let response: CommandResponse
        switch method {
        case PaymentMethod.upi.rawValue:
            let options = CheckoutRender.upiOptions(merchant)
            if let vpa = try body.string("vpa", maxLength: APILimits.maximumVPALength) {
                guard options.collect else {
                    throw KoshError.badRequest("UPI collect is not enabled for this merchant: pay by scanning the QR code", field: "vpa")
                }
                guard isPlausibleVPA(vpa) else { throw KoshError.badRequest("Invalid VPA. Please enter a valid Virtual Payment Address", field: "vpa", reason: "invalid_vpa") }
                payment.vpa = vpa
            } else {
                guard options.intent else { throw KoshError.badRequest("The vpa field is required.", field: "vpa") }
                payment.flow = .intent
            }
            try body.rejectUnknown()
            response = try await flows.createPayment(merchant: merchant, payment)
        case PaymentMethod.card.rawValue:
            payment.method = .card
            if let tokenID = try body.string("token", maxLength: 64) {
                try validateID(tokenID, .token, field: "token")
                guard let customerID = try body.string("customer_id", maxLength: 64) else {
                    throw KoshError.badRequest("Paying with a saved card needs its customer_id", field: "customer_id")
                }
                try validateID(customerID, .customer, field: "customer_id")
                // The page holds only the token: the customer proves the card with its CVV, every time.
                guard let cvv = try body.object("card").map({ try CardAPI<Store>.tokenCVV(RequestBody(fields: $0)) }) ?? nil else {
                    throw KoshError.badRequest("The CVV of the saved card is required.", field: "card.cvv")
                }
                try body.rejectUnknown()
                response = try await flows.createTokenPayment(merchant: merchant, NewTokenPayment(
                    payment: payment, customerID: ID(customerID), tokenID: ID(tokenID), cvv: cvv, callbackURL: returnURL))
            } else {
                guard let fields = try body.object("card") else { throw KoshError.badRequest("The card field is required.", field: "card") }
                let card = try CardAPI<Store>.card(RequestBody(fields: fields))
                try body.rejectUnknown()
                response = try await flows.createCardPayment(merchant: merchant, NewCardPayment(payment: payment, card: card, callbackURL: returnURL))
            }
        case PaymentMethod.netbanking.rawValue, PaymentMethod.wallet.rawValue:
            payment.method = PaymentMethod(rawValue: method)!
            let code = try body.string(method == "netbanking" ? "bank" : "wallet", maxLength: 32)
            try body.rejectUnknown()
            if payment.method == .netbanking { payment.bank = code } else { payment.wallet = code }
            payment.callbackURL = returnURL
            response = try await flows.createRedirectPayment(merchant: merchant, payment)
        default:
            throw KoshError.badRequest("The method must be upi, card, netbanking or wallet", field: "method")
        }
        switch response {
        case .done(let status, let body, _), .replayed(let status, let body):
            return noStore(jsonResponse(body: body, status: HTTPResponse.Status(code: status)))
        }
    }

    // MARK: Pages

    /// Razorpay's hosted checkout: a form the merchant's page posts (key_id, order_id, name,
    /// description, image, prefill[…], notes[…], callback_url, cancel_url). The page is served
    /// whole, with the options checked here: the order must be payable, and the browser is only
    /// ever sent back to an origin the merchant set.
    func embedded(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let (raw, _) = try await RequestBody.parse(request, context: context)
        var body = raw
        let keyID = try body.string("key_id", required: true, maxLength: Self.maximumKeyIDLength)!
        let merchant = try await merchant(keyID: keyID)
        let orderID = try body.string("order_id", required: true, maxLength: 64)!
        try validateID(orderID, .order, field: "order_id")
        _ = try await flows.checkoutOrder(merchant: merchant, orderID: ID(orderID))
        var options: [(String, JSON)] = [("key", .string(keyID)), ("order_id", .string(orderID))]
        for field in ["callback_url", "cancel_url"] {
            guard let url = try body.string(field, required: field == "callback_url", maxLength: CheckoutSettings.maximumURLLength) else { continue }
            guard merchant.checkout.allows(url) else {
                throw KoshError.badRequest(
                    "The \(field) must be an http(s) URL on one of the merchant's checkout origins (kosh merchant update --checkout-origin)",
                    field: field)
            }
            options.append((field, .string(url)))
        }
        for field in ["name", "description", "image", "customer_id"] {
            if let text = try body.string(field, maxLength: field == "image" ? CheckoutSettings.maximumURLLength : APILimits.maximumDescriptionLength) {
                options.append((field, .string(text)))
            }
        }
        if let prefill = try body.object("prefill") {
            var nested = RequestBody(fields: prefill)
            var fields: [(String, JSON)] = []
            for key in ["name", "email", "contact", "method"] {
                if let text = try nested.string(key, maxLength: APILimits.maximumDescriptionLength) { fields.append((key, .string(text))) }
            }
            try nested.rejectUnknown()
            options.append(("prefill", .object(fields)))
        }
        options.append(("notes", try body.notes().json))
        try body.rejectUnknown(ignoring: ["theme", "method", "modal", "redirect", "amount", "currency"])
        return CheckoutAssets.page(boot: .object([("mode", .string("hosted")), ("options", .object(options))]))
    }

    /// Where a card's 3-D Secure or a bank's page sends the browser back (the payment's
    /// `callback_url`): the page again, which asks Kosh how the payment ended — it never
    /// believes the posted fields.
    func returned(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        var request = request
        let buffer = try await request.collectBody(upTo: 16 * 1024)
        // Only two fields matter, read pair by pair: whatever else a form carries is ignored.
        var paymentID: String?
        for pair in String(buffer: buffer).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let key = String(parts[0]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding,
                  let value = String(parts[1]).replacingOccurrences(of: "+", with: " ").removingPercentEncoding else { continue }
            if key == "razorpay_payment_id" {
                paymentID = value
            } else if key == "error[metadata]", paymentID == nil, let json = try? JSON.parse(Array(value.utf8)), case .string(let id)? = json["payment_id"] {
                paymentID = id
            }
        }
        guard let paymentID, (try? validateID(paymentID, .payment)) != nil else {
            throw KoshError.badRequest("No payment to return to", field: "razorpay_payment_id")
        }
        return CheckoutAssets.page(boot: .object([("mode", .string("return")), ("payment_id", .string(paymentID))]))
    }

    func noStore(_ response: Response) -> Response {
        var response = response
        response.headers[.cacheControl] = "no-store"
        return response
    }
}
