import Hummingbird
import KoshCore
import KoshFlows
import KoshJSON

/// Card payments over Razorpay's S2S JSON API (issue 13): `create/json` with `method: "card"`,
/// the native OTP calls, the card reads and BIN lookup — and the two browser routes of 3-D
/// Secure (`authenticate`, the ACS's return), which carry no API key: the payment id in the
/// path is the browser's only handle, and nothing there trusts the browser's word.
struct CardAPI<Store: GatewayStore>: Sendable {
    let flows: PaymentFlows<Store>

    static var maximumCallbackURLLength: Int { 2_048 }
    static var maximumCardNameLength: Int { 100 }

    func register(authenticated v1: RouterGroup<MerchantContext>, open router: Router<KoshRequestContext>) {
        v1.post("payments/create/json") { request, context in try await self.createJSON(request, context) }
        v1.post("payments/:id/otp_generate") { _, context in
            try reply(try await flows.generateCardOTP(merchantID: context.merchant.id, paymentID: try MerchantAPI<Store>.id(context, .payment)))
        }
        v1.post("payments/:id/otp/submit") { request, context in try await self.submitOTP(request, context) }
        v1.post("payments/:id/otp_submit/:hash") { request, context in try await self.submitOTP(request, context) }
        v1.post("payments/:id/otp/resend") { _, context in
            try reply(try await flows.resendCardOTP(merchantID: context.merchant.id, paymentID: try MerchantAPI<Store>.id(context, .payment)))
        }
        v1.post("payments/:id/otp_resend/:format") { _, context in
            try reply(try await flows.resendCardOTP(merchantID: context.merchant.id, paymentID: try MerchantAPI<Store>.id(context, .payment)))
        }
        v1.get("payments/:id/card") { _, context in
            jsonResponse(Render.card(try await flows.cardOfPayment(paymentID: try MerchantAPI<Store>.id(context, .payment),
                                                                    merchantID: context.merchant.id)))
        }
        v1.get("cards/:id") { _, context in
            jsonResponse(Render.card(try await flows.card(id: try MerchantAPI<Store>.id(context, .card), merchantID: context.merchant.id)))
        }
        v1.get("iins/:iin") { _, context in try self.iin(context) }
        router.get("v1/payments/:id/authenticate") { _, context in try await self.authenticate(context) }
        router.post("v1/payments/:id/authentication/return") { request, context in try await self.authenticationReturned(request, context) }
        RedirectAPI(flows: flows).register(open: router)
    }

    func reply(_ step: CardStepReply) throws -> Response {
        jsonResponse(step.body, status: HTTPResponse.Status(code: step.status))
    }

    func createJSON(_ request: Request, _ context: MerchantContext) async throws -> Response {
        let merchant = context.merchant
        let (raw, text) = try await RequestBody.parse(request, context: context)
        var body = raw
        let method = try body.string("method", required: true, maxLength: 16)!
        guard method == PaymentMethod.card.rawValue || method == PaymentMethod.netbanking.rawValue || method == PaymentMethod.wallet.rawValue else {
            throw KoshError.badRequest("create/json takes method card, netbanking or wallet; UPI payments use /v1/payments/create/upi", field: "method")
        }
        let orderID = try body.string("order_id", required: true, maxLength: 64)!
        try validateID(orderID, .order)
        let amount = try body.int("amount", required: true, range: AmountLimits.minimum...AmountLimits.maximum)!
        let currency = try body.currency()
        let (email, contact) = try body.emailAndContact()
        let description = try body.string("description", maxLength: APILimits.maximumDescriptionLength, allowLineBreaks: true)
        let notes = try body.notes()
        let callbackURL = try body.string("callback_url", maxLength: Self.maximumCallbackURLLength)
        if let callbackURL, !(callbackURL.utf8.starts(with: "https://".utf8) || callbackURL.utf8.starts(with: "http://".utf8)) {  // bytes: a combining mark after "/" must not hide the scheme
            throw KoshError.badRequest("The callback_url must be an http or https URL", field: "callback_url")
        }
        if method != PaymentMethod.card.rawValue {
            // Netbanking or a wallet: the bank or wallet code, then the redirect.
            let code = try body.string(method == PaymentMethod.netbanking.rawValue ? "bank" : "wallet", maxLength: 32)
            _ = try body.object("browser")
            try body.rejectUnknown(ignoring: ["ip", "referer", "user_agent", "razorpay_session_id"])
            let input = NewPayment(orderID: ID(orderID), amount: amount, currency: currency, method: PaymentMethod(rawValue: method)!, vpa: nil,
                                   email: email, contact: contact, description: description, notes: notes,
                                   bank: method == PaymentMethod.netbanking.rawValue ? code : nil,
                                   wallet: method == PaymentMethod.wallet.rawValue ? code : nil, callbackURL: callbackURL)
            return try respond(try await flows.createRedirectPayment(merchant: merchant, input, idempotency: try idempotency(request, merchant, text)))
        }
        let customerID = try body.string("customer_id", maxLength: 64)
        if let customerID { try validateID(customerID, .customer) }
        let tokenID = try body.string("token", maxLength: 64)
        var save = false
        if let value = body["save"] {
            switch value {
            case .int(0), .string("0"), .bool(false): save = false
            case .int(1), .string("1"), .bool(true): save = true
            default: throw KoshError.badRequest("The save field must be 0 or 1.", field: "save")
            }
            guard !save || customerID != nil else { throw KoshError.badRequest("Saving a card needs a customer_id", field: "customer_id") }
        }
        // Razorpay's S2S fields about the customer's browser: required by Razorpay for 3-D Secure 2
        // risk checks; accepted, checked for shape, and not used by Kosh's sandbox ACS.
        _ = try body.object("browser")
        _ = try body.object("authentication")
        let cardFields = try body.object("card")
        try body.rejectUnknown(ignoring: ["ip", "referer", "user_agent", "razorpay_session_id", "save"])
        let payment = NewPayment(orderID: ID(orderID), amount: amount, currency: currency, method: .card, vpa: nil, email: email,
                                 contact: contact, description: description, notes: notes)
        let response: CommandResponse
        if let tokenID {
            try validateID(tokenID, .token)
            guard let customerID else { throw KoshError.badRequest("Paying with a token needs its customer_id", field: "customer_id") }
            guard !save else { throw KoshError.badRequest("A saved card is already saved", field: "save") }
            let cvv = try cardFields.map { try Self.tokenCVV(RequestBody(fields: $0)) } ?? nil
            response = try await flows.createTokenPayment(merchant: merchant, NewTokenPayment(
                payment: payment, customerID: ID(customerID), tokenID: ID(tokenID), cvv: cvv, callbackURL: callbackURL),
                idempotency: try idempotency(request, merchant, text))
        } else {
            guard let cardFields else { throw KoshError.badRequest("The card field is required.", field: "card") }
            let card = try Self.card(RequestBody(fields: cardFields))
            response = try await flows.createCardPayment(merchant: merchant, NewCardPayment(
                payment: payment, card: card, callbackURL: callbackURL, saveFor: save ? customerID.map { ID($0) } : nil),
                idempotency: try idempotency(request, merchant, text))
        }
        return try respond(response)
    }

    func respond(_ response: CommandResponse) throws -> Response {
        switch response {
        case .done(let status, let body, _): return jsonResponse(body: body, status: HTTPResponse.Status(code: status))
        case .replayed(let status, let body):
            var reply = jsonResponse(body: body, status: HTTPResponse.Status(code: status))
            reply.headers[.init("Idempotent-Replayed")!] = "true"
            return reply
        }
    }

    /// The `card` object, checked before anything is sent anywhere; a 400 names the field.
    static func card(_ fields: RequestBody) throws -> CardDetails {
        var card = fields
        func digits(_ name: String, required: Bool, lengths: ClosedRange<Int>) throws -> String? {
            let field = "card[\(name)]"
            guard let value = card[name] else {
                if required { throw KoshError.badRequest("The \(field) field is required.", field: field) }
                return nil
            }
            let text: String
            switch value {
            case .string(let s): text = s
            case .int(let i) where i >= 0: text = String(i)
            default: throw KoshError.badRequest("The \(field) must be digits.", field: field)
            }
            guard lengths.contains(text.utf8.count), text.utf8.allSatisfy({ (48...57).contains($0) }) else {
                throw KoshError.badRequest("The \(field) must be \(lengths.lowerBound) to \(lengths.upperBound) digits.", field: field)
            }
            return text
        }
        let numberText = try digits("number", required: true, lengths: 12...19)!
        let number: CardNumber
        do { number = try CardNumber(numberText) } catch {
            throw KoshError(.badRequest, "The card number is invalid.", field: "card[number]", source: "customer",
                            step: "payment_initiation", reason: "card_number_invalid")
        }
        let month = try digits("expiry_month", required: true, lengths: 1...2)!
        let year = try digits("expiry_year", required: true, lengths: 2...4)!
        let expiry: CardExpiry
        do { expiry = try CardExpiry(month: Int(month) ?? 0, year: Int(year) ?? 0) } catch {
            let field = error == .expiryMonth ? "card[expiry_month]" : "card[expiry_year]"
            throw KoshError.badRequest("The card's expiry is invalid.", field: field, reason: "card_expiry_invalid")
        }
        let cvv = try digits("cvv", required: true, lengths: 3...4)
        let name = try card.string("name", maxLength: maximumCardNameLength)
        try card.rejectUnknown(ignoring: ["number", "expiry_month", "expiry_year", "cvv"])
        return CardDetails(number: number, expiry: expiry, cvv: cvv, name: name)
    }

    /// A saved card's `card` object: at most its CVV (optional for a token).
    static func tokenCVV(_ fields: RequestBody) throws -> String? {
        var card = fields
        var cvv: String?
        if let value = card["cvv"] {
            guard case .string(let text) = value, (3...4).contains(text.utf8.count), text.utf8.allSatisfy({ (48...57).contains($0) }) else {
                throw KoshError.badRequest("The card[cvv] must be 3 to 4 digits.", field: "card[cvv]")
            }
            cvv = text
        }
        _ = try card.string("cvv", maxLength: 4)
        try card.rejectUnknown()
        return cvv
    }

    func submitOTP(_ request: Request, _ context: MerchantContext) async throws -> Response {
        let id: ID<Payment> = try MerchantAPI<Store>.id(context, .payment)
        let (raw, _) = try await RequestBody.parse(request, context: context)
        let body = raw
        let otp: String
        switch body["otp"] {
        case .string(let text)?: otp = text
        case .int(let value)? where value >= 0: otp = String(value)
        case nil: throw KoshError.badRequest("The otp field is required.", field: "otp")
        default: throw KoshError.badRequest("The otp must be digits.", field: "otp")
        }
        try body.rejectUnknown(ignoring: ["otp"])
        return try reply(try await flows.submitCardOTP(merchantID: context.merchant.id, paymentID: id, otp: otp))
    }

    func iin(_ context: MerchantContext) throws -> Response {
        let iin = try context.parameters.require("iin")
        guard (6...9).contains(iin.utf8.count), iin.utf8.allSatisfy({ (48...57).contains($0) }) else {
            throw KoshError.badRequest("The iin must be 6 to 9 digits.", field: "iin")
        }
        guard let record = try flows.iin(iin) else { throw KoshError.notFound("The IIN is not known", field: "iin") }
        return jsonResponse(.object([
            ("iin", .string(iin)), ("entity", .string("iin")), ("network", .string(record.network.displayName)),
            ("type", .string(record.type.rawValue)), ("sub_type", .string(record.subType)),
            ("issuer_code", record.issuer.map(JSON.string) ?? .null), ("issuer_name", record.issuerName.map(JSON.string) ?? .null),
            ("international", .bool(!record.country.isEmpty && record.country != "IN")), ("country", .string(record.country)),
            ("is_tokenized", .bool(false)), ("card_iin", .null),
            ("emi", .object([("available", .bool(false))])), ("recurring", .object([("available", .bool(false))])),
            ("authentication_types", .array([.object([("type", .string("3ds"))]), .object([("type", .string("otp"))])])),
        ]))
    }

    // MARK: The browser's routes

    func authenticate(_ context: KoshRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        try validateID(id, .payment)
        if let challenge = try await flows.cardChallengeURL(paymentID: ID(id)) {
            return Response(status: .found, headers: [.location: challenge, .cacheControl: "no-store"])
        }
        return ResultPage.response(try await flows.browserResult(paymentID: ID(id)))
    }

    func authenticationReturned(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        try validateID(id, .payment)
        // The ACS's form fields (authentication_id, status) are read by nobody: Kosh asks the ACS.
        var request = request
        _ = try await request.collectBody(upTo: 16 * 1024)
        return ResultPage.response(try await flows.cardAuthenticationReturned(paymentID: ID(id)))
    }

    func idempotency(_ request: Request, _ merchant: Merchant, _ body: String) throws -> IdempotencyRequest? {
        try MerchantAPI(flows: flows).idempotency(request, merchant, body)
    }
}

/// Where the browser lands after 3-D Secure: a form that POSTs the result to the merchant's
/// `callback_url` by itself (with a button for browsers without scripts), or Kosh's own page.
enum ResultPage {
    static let style = """
        <style>body{font-family:system-ui,sans-serif;margin:0;padding:1rem;color:#1a1a1a;background:#f6f7f9}\
            main{max-width:32rem;margin:0 auto;background:#fff;border-radius:8px;padding:1rem 1.25rem;box-shadow:0 1px 3px #0002}\
            h1{font-size:1.35rem}dt{font-weight:600;margin-top:.75rem}dd{margin:0;overflow-wrap:anywhere;font-family:ui-monospace,monospace}\
            button{font:inherit;padding:.75rem 1rem;width:100%}</style>
        """

    static func response(_ result: CardBrowserResult) -> Response {
        let fields = result.fields.sorted { $0.key < $1.key }
        let inputs = fields.map { "<input type=\"hidden\" name=\"\(escape($0.key))\" value=\"\(escape($0.value))\">" }.joined(separator: "\n")
        let html: String
        if let url = result.callbackURL {
            html = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
            <title>Returning to the merchant</title>\(style)</head>
            <body onload="document.forms[0].submit()"><form method="post" action="\(escape(url))">
            \(inputs)
            <p>\(result.succeeded ? "Payment authorised." : "Payment failed.") Returning to the merchant…</p>
            <button type="submit">Continue</button></form></body></html>
            """
        } else {
            let rows = fields.map { "<dt>\(escape($0.key))</dt><dd id=\"\(escape($0.key))\">\(escape($0.value))</dd>" }.joined(separator: "\n")
            html = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
            <title>\(result.succeeded ? "Payment authorised" : "Payment failed")</title>\(style)</head>
            <body><main><h1>\(result.succeeded ? "Payment authorised" : "Payment failed")</h1><dl>
            \(rows)
            </dl></main></body></html>
            """
        }
        return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
