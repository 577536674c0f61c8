import Crypto
import Hummingbird
import KoshCore
import KoshJSON
import KoshFlows
import Logging

/// The merchant-facing API under `/v1`, Razorpay-compatible. Each route decodes and checks
/// its input, calls one command or query of `PaymentFlows`, and renders the answer.
public struct MerchantAPI<Store: GatewayStore>: Sendable {
    let flows: PaymentFlows<Store>

    public init(flows: PaymentFlows<Store>) {
        self.flows = flows
    }

    public func register(on router: Router<KoshRequestContext>, authenticator: any MerchantAuthenticator) {
        let v1 = router.group("v1").add(middleware: BasicAuthMiddleware(authenticator: authenticator)).group(context: MerchantContext.self)

        v1.post("orders") { request, context in try await self.createOrder(request, context) }
        v1.get("orders") { request, context in
            jsonResponse(Render.collection(try await flows.orders(merchantID: context.merchant.id, page: try page(from: request)).map(Render.order)))
        }
        v1.get("orders/:id") { _, context in
            jsonResponse(Render.order(try await flows.order(id: try Self.id(context, .order), merchantID: context.merchant.id)))
        }
        v1.get("orders/:id/payments") { request, context in
            let payments = try await flows.payments(merchantID: context.merchant.id, orderID: try Self.id(context, .order), page: try page(from: request))
            return jsonResponse(Render.collection(payments.map(Render.payment)))
        }

        // Rails call back here; they sign their calls instead of using a merchant's key.
        router.post("v1/rails/callbacks/:connector") { request, context in try await self.railCallback(request, context) }

        v1.post("payments/create/upi") { request, context in try await self.createUPIPayment(request, context) }
        QRCodesAPI(flows: flows).register(authenticated: v1, open: router)
        CardAPI(flows: flows).register(authenticated: v1, open: router)
        CustomersAPI(flows: flows).register(v1)
        v1.post("payments/validate/vpa") { request, context in try await self.validateVPA(request, context) }
        v1.get("payments/downtimes") { _, _ in
            jsonResponse(Render.collection(flows.downtimes().map(Render.downtime)))
        }
        v1.get("payments/:id/attempts") { _, context in
            let attempts = try await flows.attempts(paymentID: try Self.id(context, .payment), merchantID: context.merchant.id)
            return jsonResponse(Render.collection(attempts.map(Render.attempt)))
        }
        v1.get("payments") { request, context in
            let payments = try await flows.payments(merchantID: context.merchant.id, page: try page(from: request))
            return jsonResponse(Render.collection(payments.map(Render.payment)))
        }
        v1.get("payments/:id") { _, context in
            jsonResponse(Render.payment(try await flows.payment(id: try Self.id(context, .payment), merchantID: context.merchant.id)))
        }
        v1.post("payments/:id/capture") { request, context in try await self.capture(request, context) }
        v1.post("payments/:id/cancel") { request, context in try await self.cancel(request, context) }
        v1.post("payments/:id/refund") { request, context in try await self.createRefund(request, context) }
        v1.get("payments/:id/refunds") { request, context in
            let refunds = try await flows.refunds(merchantID: context.merchant.id, paymentID: try Self.id(context, .payment),
                                                  page: try page(from: request))
            return jsonResponse(Render.collection(refunds.map(Render.refund)))
        }
        v1.get("payments/:id/refunds/:rid") { _, context in
            let paymentID: ID<Payment> = try Self.id(context, .payment)
            let refundID: ID<Refund> = try Self.id(context, .refund, parameter: "rid")
            return jsonResponse(Render.refund(try await flows.refund(id: refundID, merchantID: context.merchant.id, paymentID: paymentID)))
        }
        v1.post("refunds") { request, context in try await self.createRefund(request, context, paymentID: nil) }
        v1.get("payments/downtimes/:id") { _, context in
            let id = try context.parameters.require("id")
            guard let downtime = flows.downtimes().first(where: { $0.id == id }) else {
                throw KoshError.notFound("The id provided does not exist", field: "id")
            }
            return jsonResponse(Render.downtime(downtime))
        }
        NotesAPI<Store>(flows: flows).register(v1)
        v1.get("refunds") { request, context in
            let refunds = try await flows.refunds(merchantID: context.merchant.id, page: try page(from: request))
            return jsonResponse(Render.collection(refunds.map(Render.refund)))
        }
        v1.get("refunds/:id") { _, context in
            jsonResponse(Render.refund(try await flows.refund(id: try Self.id(context, .refund), merchantID: context.merchant.id)))
        }
    }

    /// The route's id parameter, checked for its prefix and shape.
    static func id<Entity>(_ context: MerchantContext, _ prefix: IDPrefix, parameter: String = "id") throws -> ID<Entity> {
        let id = try context.parameters.require(parameter)
        try validateID(id, prefix)
        return ID(id)
    }

    // MARK: Mutations

    func createOrder(_ request: Request, _ context: MerchantContext) async throws -> Response {
        let merchant = context.merchant
        let (raw, text) = try await RequestBody.parse(request, context: context)
        var body = raw
        let amount = try body.int("amount", required: true, range: AmountLimits.minimum...AmountLimits.maximum)!
        let currency = try body.currency()
        let receipt = try body.string("receipt", maxLength: APILimits.maximumReceiptLength)
        let notes = try body.notes()
        if let partial = body["partial_payment"] {
            // A form body sends every value as text.
            guard partial == .bool(false) || partial == .int(0) || partial == .string("0") || partial == .string("false") else {
                throw KoshError.badRequest("Partial payments are not supported", field: "partial_payment")
            }
        }
        // `payment_capture`: 1/0, true/false (a form sends text): capture the order's payments
        // as soon as they are authorised, or leave them to the merchant.
        var paymentCapture: Bool?
        if let value = body["payment_capture"] {
            switch value {
            case .bool(let flag): paymentCapture = flag
            case .int(1), .string("1"), .string("true"): paymentCapture = true
            case .int(0), .string("0"), .string("false"): paymentCapture = false
            case .null: paymentCapture = nil
            default: throw KoshError.badRequest("payment_capture must be 1 or 0 (true or false)", field: "payment_capture")
            }
        }
        try body.rejectUnknown(ignoring: ["partial_payment", "payment_capture"])
        let input = NewOrder(amount: amount, currency: currency, receipt: receipt, notes: notes, paymentCapture: paymentCapture)
        return try respond(try await flows.createOrder(merchant: merchant, input, idempotency: try idempotency(request, merchant, text)), context)
    }

    func createUPIPayment(_ request: Request, _ context: MerchantContext) async throws -> Response {
        let merchant = context.merchant
        let (raw, text) = try await RequestBody.parse(request, context: context)
        var body = raw
        let orderID = try body.string("order_id", required: true, maxLength: 64)!
        try validateID(orderID, .order)
        let amount = try body.int("amount", required: true, range: AmountLimits.minimum...AmountLimits.maximum)!
        let currency = try body.currency()
        guard (try body.string("method", maxLength: 16) ?? PaymentMethod.upi.rawValue) == PaymentMethod.upi.rawValue else {
            throw KoshError.badRequest("The method must be upi for this endpoint", field: "method")
        }
        var vpa = try body.string("vpa", maxLength: APILimits.maximumVPALength)
        var flow = UPIFlow.collect
        if let upi = try body.object("upi") {
            let nested = RequestBody(fields: upi)
            if let value = nested["flow"] {
                guard case .string(let text) = value, let f = UPIFlow(rawValue: text) else {
                    throw KoshError.badRequest("The upi.flow must be collect or intent", field: "upi.flow")
                }
                flow = f
            }
            if let value = nested["vpa"] {
                guard case .string(let s) = value, s.unicodeScalars.count <= APILimits.maximumVPALength else {
                    throw KoshError.badRequest("The upi.vpa must be a string of at most \(APILimits.maximumVPALength) characters.", field: "upi.vpa")
                }
                try RequestBody.refuseControlCharacters(s, field: "upi.vpa", allowLineBreaks: false)
                vpa = s
            }
        }
        if flow == .intent {
            guard vpa == nil else { throw KoshError.badRequest("The intent flow takes no vpa: the payer's app chooses it", field: "vpa") }
        } else {
            guard let vpa, !vpa.isEmpty else { throw KoshError.badRequest("The vpa field is required.", field: "vpa") }
            guard isPlausibleVPA(vpa) else { throw KoshError.badRequest("Invalid VPA. Please enter a valid Virtual Payment Address", field: "vpa", reason: "invalid_vpa") }
        }
        let (email, contact) = try body.emailAndContact()
        let description = try body.string("description", maxLength: APILimits.maximumDescriptionLength, allowLineBreaks: true)
        let notes = try body.notes()
        // Sent by Razorpay's S2S integrations; accepted and not used by Kosh.
        try body.rejectUnknown(ignoring: ["customer_id", "ip", "referer", "user_agent", "save", "callback_url"])
        let input = NewPayment(orderID: ID(orderID), amount: amount, currency: currency, method: .upi, vpa: vpa, email: email,
                               contact: contact, description: description, notes: notes, flow: flow)
        return try respond(try await flows.createPayment(merchant: merchant, input, idempotency: try idempotency(request, merchant, text)), context)
    }

    func capture(_ request: Request, _ context: MerchantContext) async throws -> Response {
        let merchant = context.merchant
        let id: ID<Payment> = try Self.id(context, .payment)
        let (raw, text) = try await RequestBody.parse(request, context: context)
        var body = raw
        let amount = try body.int("amount", required: true, range: 1...AmountLimits.maximum)!
        let currency = try body.currency()
        try body.rejectUnknown()
        return try respond(try await flows.capture(merchant: merchant, paymentID: id, amount: amount, currency: currency,
                                                   idempotency: try idempotency(request, merchant, text)), context)
    }

    func cancel(_ request: Request, _ context: MerchantContext) async throws -> Response {
        let merchant = context.merchant
        let id: ID<Payment> = try Self.id(context, .payment)
        let (body, text) = try await RequestBody.parse(request, context: context, allowEmpty: true)
        try body.rejectUnknown()
        return try respond(try await flows.void(merchant: merchant, paymentID: id, idempotency: try idempotency(request, merchant, text)), context)
    }

    func createRefund(_ request: Request, _ context: MerchantContext) async throws -> Response {
        try await createRefund(request, context, paymentID: try Self.id(context, .payment))
    }

    /// `POST /v1/payments/:id/refund`, or `POST /v1/refunds` with `payment_id` in the body (the
    /// SDK's `refund.create`).
    func createRefund(_ request: Request, _ context: MerchantContext, paymentID: ID<Payment>?) async throws -> Response {
        let merchant = context.merchant
        let (raw, text) = try await RequestBody.parse(request, context: context, allowEmpty: paymentID != nil)
        var body = raw
        var id = paymentID
        if id == nil {
            guard let given = try body.string("payment_id", required: true, maxLength: 64) else { throw KoshError.badRequest("payment_id is required", field: "payment_id") }
            do { try validateID(given, .payment) } catch { throw KoshError.badRequest("The id provided does not exist", field: "payment_id") }
            id = ID(given)
        }
        let amount = try body.int("amount", required: false, range: 1...AmountLimits.maximum)
        let speedText = try body.string("speed", maxLength: 16) ?? RefundSpeed.normal.rawValue
        guard let speed = RefundSpeed(rawValue: speedText) else {
            throw KoshError.badRequest("The speed must be normal or optimum.", field: "speed")
        }
        let receipt = try body.string("receipt", maxLength: APILimits.maximumReceiptLength)
        let notes = try body.notes()
        try body.rejectUnknown()
        let input = NewRefund(amount: amount, speed: speed, receipt: receipt, notes: notes)
        return try respond(try await flows.refund(merchant: merchant, paymentID: id!, input, idempotency: try idempotency(request, merchant, text)),
                           context)
    }

    // MARK: Rails

    /// A rail's signed report on a payment. Applying it twice changes nothing.
    func railCallback(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let name = try context.parameters.require("connector")
        let rail = try flows.callbackRail(named: name)
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let path = request.uri.query.map { "\(request.uri.path)?\($0)" } ?? request.uri.path
        let callback = try rail.parseCallback(method: "POST", path: path, headers: headers, body: Array(buffer.readableBytesView))
        let payment = try await flows.railAnswered(paymentID: callback.paymentID, callback.status, from: .callback,
                                                   amount: callback.amount, connector: name)
        context.logger.info("rail callback", metadata: ["rail": "\(name)", "payment_id": "\(payment.id)", "status": "\(payment.state.rawValue)"])
        return jsonResponse(.object([("status", .string("ok")), ("payment_status", .string(payment.state.publicStatus))]))
    }

    func validateVPA(_ request: Request, _ context: MerchantContext) async throws -> Response {
        let merchant = context.merchant
        let (raw, _) = try await RequestBody.parse(request, context: context)
        var body = raw
        let vpa = try body.string("vpa", required: true, maxLength: APILimits.maximumVPALength)!
        try body.rejectUnknown(ignoring: [])
        guard isPlausibleVPA(vpa) else {
            throw KoshError.badRequest("Invalid VPA. Please enter a valid Virtual Payment Address", field: "vpa", reason: "invalid_vpa")
        }
        let lookup = try await flows.lookup(vpa: vpa, mode: merchant.mode)
        guard lookup.valid else {
            throw KoshError.badRequest("Invalid VPA. Please enter a valid Virtual Payment Address", field: "vpa", reason: "invalid_vpa")
        }
        return jsonResponse(.object([("vpa", .string(vpa)), ("success", .bool(true)),
                                     ("customer_name", lookup.customerName.map(JSON.string) ?? .null)]))
    }

    // MARK: Idempotency

    /// The request's `Idempotency-Key`, bound to its method, path and body; nil without one.
    func idempotency(_ request: Request, _ merchant: Merchant, _ body: String) throws -> IdempotencyRequest? {
        guard let key = request.headers[.init("Idempotency-Key")!] else { return nil }
        guard !key.isEmpty, key.unicodeScalars.count <= 255 else {
            throw KoshError.badRequest("The Idempotency-Key header must be 1 to 255 characters", field: "Idempotency-Key")
        }
        return IdempotencyRequest(merchantID: merchant.id.rawValue, key: key,
                                  requestHash: MerchantRequestHash.compute(method: request.method.rawValue, path: request.uri.path, body: body))
    }

    func respond(_ response: CommandResponse, _ context: MerchantContext) throws -> Response {
        switch response {
        case .done(let status, let body, let deferred):
            if let deferred {
                // The effect is committed; the janitor finishes the rail work.
                context.logger.warning("post-commit work failed; left to the janitor", metadata: ["error": "\(deferred)"])
            }
            return jsonResponse(body: body, status: HTTPResponse.Status(code: status))
        case .replayed(let status, let body):
            var response = jsonResponse(body: body, status: HTTPResponse.Status(code: status))
            response.headers[.init("Idempotent-Replayed")!] = "true"
            return response
        }
    }
}

/// What an `Idempotency-Key` is bound to: the method, path and body of its first request.
public enum MerchantRequestHash {
    public static func compute(method: String, path: String, body: String) -> String {
        var hasher = SHA256()
        hasher.update(data: Array(method.utf8))
        hasher.update(data: [0])
        hasher.update(data: Array(path.utf8))
        hasher.update(data: [0])
        hasher.update(data: Array(body.utf8))
        return hasher.finalize().map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }
}

/// `handle@psp`: 2–256 characters of letters, digits, dot, hyphen or underscore, then a
/// 2–64 letter PSP handle.
func isPlausibleVPA(_ vpa: String) -> Bool {
    let parts = vpa.split(separator: "@", omittingEmptySubsequences: false)
    guard parts.count == 2 else { return false }
    let user = parts[0], handle = parts[1]
    guard (2...256).contains(user.count), (2...64).contains(handle.count) else { return false }
    let userOK = user.unicodeScalars.allSatisfy { ($0.properties.isASCIIHexDigit || ("a"..."z").contains($0) || ("A"..."Z").contains($0)
                                                    || ("0"..."9").contains($0) || $0 == "." || $0 == "-" || $0 == "_") }
    let handleOK = handle.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) }
    return userOK && handleOK
}

public enum KoshRouter {
    /// The router with health checks and the merchant API.
    public static func build<Store: GatewayStore>(api: MerchantAPI<Store>, authenticator: any MerchantAuthenticator,
                                                  ready: @escaping @Sendable () -> Bool,
                                                  metrics: (@Sendable () -> String)? = nil,
                                                  webhooks: WebhooksAPI? = nil,
                                                  checkoutKeys: (any CheckoutKeys)? = nil) -> Router<KoshRequestContext> {
        let router = Router(context: KoshRequestContext.self)
        let routes = RouteTable()
        router.add(middleware: ErrorMiddleware(routes: routes))
        // Request counts and durations per route, into whatever metrics backend `kosh` bootstrapped.
        router.add(middleware: MetricsMiddleware())
        if let metrics {
            // Prometheus text format: circuit breakers, rail calls, HTTP requests.
            router.get("metrics") { _, _ in
                var response = Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: metrics())))
                response.headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
                return response
            }
        }
        router.get("healthz") { _, _ in jsonResponse(.object([("status", .string("ok"))])) }
        router.get("readyz") { _, _ in
            ready() ? jsonResponse(.object([("status", .string("ready"))]))
                : jsonResponse(.object([("status", .string("starting"))]), status: .serviceUnavailable)
        }
        api.register(on: router, authenticator: authenticator)
        webhooks?.register(on: router, authenticator: authenticator)
        MethodsAPI.register(on: router, authenticator: authenticator)
        if let checkoutKeys {
            // The checkout's QR codes come from the same cache as the QR Codes API's images.
            CheckoutAPI(flows: api.flows, keys: checkoutKeys, images: qrImages).register(on: router)
        }
        routes.load(router.routes.map { (path: $0.path.description, method: $0.method.rawValue) })
        return router
    }
}
