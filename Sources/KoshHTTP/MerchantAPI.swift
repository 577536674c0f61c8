import Crypto
import Hummingbird
import KoshCore
import Logging

/// What a mutating request produced: a response, and optionally work to run after commit
/// (hand the payment to its rail, send the refund) that yields the final response.
struct Mutation: Sendable {
    var status: HTTPResponse.Status
    var json: JSON
    var afterCommit: (@Sendable () async throws -> JSON)?
}

/// The merchant-facing API under `/v1`, Razorpay-compatible.
public struct MerchantAPI<Store: GatewayStore>: Sendable {
    let gateway: PaymentGateway<Store>
    let idempotency: any IdempotencyKeys
    let clock: any KoshClock

    public init(gateway: PaymentGateway<Store>, idempotency: any IdempotencyKeys) {
        self.gateway = gateway
        self.idempotency = idempotency
        self.clock = gateway.clock
    }

    var store: Store { gateway.store }

    public func register(on router: Router<KoshRequestContext>, authenticator: any MerchantAuthenticator) {
        let v1 = router.group("v1").add(middleware: BasicAuthMiddleware(authenticator: authenticator))

        v1.post("orders") { request, context in try await self.createOrder(request, context) }
        v1.get("orders") { request, context in
            let merchant = try context.requireMerchant()
            let page = try page(from: request)
            let orders = try await store.transaction { tx in try await tx.orders(merchantID: merchant.id, page: page) }
            return jsonResponse(Render.collection(orders.map(Render.order)))
        }
        v1.get("orders/:id") { _, context in
            let merchant = try context.requireMerchant()
            let id = try context.parameters.require("id")
            try validateID(id, .order)
            let order = try await store.transaction { tx in try await tx.order(id: id, merchantID: merchant.id, forUpdate: false) }
            guard let order else { throw KoshError.notFound() }
            return jsonResponse(Render.order(order))
        }
        v1.get("orders/:id/payments") { request, context in
            let merchant = try context.requireMerchant()
            let id = try context.parameters.require("id")
            try validateID(id, .order)
            let page = try page(from: request)
            let payments = try await store.transaction { tx in
                guard try await tx.order(id: id, merchantID: merchant.id, forUpdate: false) != nil else { throw KoshError.notFound() }
                return try await tx.payments(merchantID: merchant.id, orderID: id, page: page)
            }
            return jsonResponse(Render.collection(payments.map(Render.payment)))
        }

        // Rails call back here; they sign their calls instead of using a merchant's key.
        router.post("v1/rails/callbacks/:connector") { request, context in try await self.railCallback(request, context) }

        v1.post("payments/create/upi") { request, context in try await self.createUPIPayment(request, context) }
        v1.post("payments/validate/vpa") { request, context in try await self.validateVPA(request, context) }
        v1.get("payments/downtimes") { _, context in
            _ = try context.requireMerchant()
            return jsonResponse(Render.collection(gateway.rails.downtimes().map(Render.downtime)))
        }
        v1.get("payments/:id/attempts") { _, context in
            let payment = try await self.fetchPayment(context)
            let attempts = try await store.transaction { tx in try await tx.attempts(paymentID: payment.id) }
            return jsonResponse(Render.collection(attempts.map(Render.attempt)))
        }
        v1.get("payments") { request, context in
            let merchant = try context.requireMerchant()
            let page = try page(from: request)
            let payments = try await store.transaction { tx in try await tx.payments(merchantID: merchant.id, orderID: nil, page: page) }
            return jsonResponse(Render.collection(payments.map(Render.payment)))
        }
        v1.get("payments/:id") { _, context in
            let payment = try await self.fetchPayment(context)
            return jsonResponse(Render.payment(payment))
        }
        v1.post("payments/:id/capture") { request, context in try await self.capture(request, context) }
        v1.post("payments/:id/cancel") { request, context in try await self.cancel(request, context) }
        v1.post("payments/:id/refund") { request, context in try await self.createRefund(request, context) }
        v1.get("payments/:id/refunds") { request, context in
            let payment = try await self.fetchPayment(context)
            let page = try page(from: request)
            let refunds = try await store.transaction { tx in try await tx.refunds(merchantID: payment.merchantID, paymentID: payment.id, page: page) }
            return jsonResponse(Render.collection(refunds.map(Render.refund)))
        }
        v1.get("payments/:id/refunds/:rid") { _, context in
            let payment = try await self.fetchPayment(context)
            let refundID = try context.parameters.require("rid")
            try validateID(refundID, .refund)
            let refund = try await store.transaction { tx in try await tx.refund(id: refundID, merchantID: payment.merchantID, forUpdate: false) }
            guard let refund, refund.paymentID == payment.id else { throw KoshError.notFound() }
            return jsonResponse(Render.refund(refund))
        }
        v1.get("refunds") { request, context in
            let merchant = try context.requireMerchant()
            let page = try page(from: request)
            let refunds = try await store.transaction { tx in try await tx.refunds(merchantID: merchant.id, paymentID: nil, page: page) }
            return jsonResponse(Render.collection(refunds.map(Render.refund)))
        }
        v1.get("refunds/:id") { _, context in
            let merchant = try context.requireMerchant()
            let id = try context.parameters.require("id")
            try validateID(id, .refund)
            let refund = try await store.transaction { tx in try await tx.refund(id: id, merchantID: merchant.id, forUpdate: false) }
            guard let refund else { throw KoshError.notFound() }
            return jsonResponse(Render.refund(refund))
        }
    }

    func fetchPayment(_ context: KoshRequestContext) async throws -> Payment {
        let merchant = try context.requireMerchant()
        let id = try context.parameters.require("id")
        try validateID(id, .payment)
        let payment = try await store.transaction { tx in try await tx.payment(id: id, merchantID: merchant.id, forUpdate: false) }
        guard let payment else { throw KoshError.notFound() }
        return payment
    }

    // MARK: Mutations

    func createOrder(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let merchant = try context.requireMerchant()
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
        try body.rejectUnknown(ignoring: ["partial_payment"])
        let input = NewOrder(amount: amount, currency: currency, receipt: receipt, notes: notes)
        return try await idempotent(request, context, merchant: merchant, body: text) { tx in
            let order = try await gateway.createOrder(tx, merchant: merchant, input)
            return Mutation(status: .ok, json: Render.order(order))
        }
    }

    func createUPIPayment(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let merchant = try context.requireMerchant()
        let (raw, text) = try await RequestBody.parse(request, context: context)
        var body = raw
        let orderID = try body.string("order_id", required: true, maxLength: 64)!
        try validateID(orderID, .order)
        let amount = try body.int("amount", required: true, range: AmountLimits.minimum...AmountLimits.maximum)!
        let currency = try body.currency()
        let method = try body.string("method", maxLength: 16) ?? "upi"
        guard method == "upi" else { throw KoshError.badRequest("The method must be upi for this endpoint", field: "method") }
        var vpa = try body.string("vpa", maxLength: APILimits.maximumVPALength)
        var flow = "collect"
        if let upi = try body.object("upi") {
            let nested = RequestBody(fields: upi)
            if let value = nested["flow"] {
                guard case .string(let f) = value, f == "collect" || f == "intent" else {
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
        if flow == "intent" {
            guard vpa == nil else { throw KoshError.badRequest("The intent flow takes no vpa: the payer's app chooses it", field: "vpa") }
        } else {
            guard let vpa, !vpa.isEmpty else { throw KoshError.badRequest("The vpa field is required.", field: "vpa") }
            guard isPlausibleVPA(vpa) else { throw KoshError.badRequest("Invalid VPA. Please enter a valid Virtual Payment Address", field: "vpa", reason: "invalid_vpa") }
        }
        let email = try body.string("email", required: true, maxLength: APILimits.maximumEmailLength)!
        guard email.unicodeScalars.contains("@") else { throw KoshError.badRequest("The email must be a valid email address.", field: "email") }
        let contact = try body.string("contact", required: true, maxLength: APILimits.maximumContactLength)!
        guard contact.utf8.count >= 8, contact.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "+")
                                                                || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: " ") }) else {
            throw KoshError.badRequest("The contact must be a valid phone number.", field: "contact")
        }
        let description = try body.string("description", maxLength: APILimits.maximumDescriptionLength, allowLineBreaks: true)
        let notes = try body.notes()
        // Sent by Razorpay's S2S integrations; accepted and not used by Kosh.
        try body.rejectUnknown(ignoring: ["customer_id", "ip", "referer", "user_agent", "save", "callback_url"])
        let input = NewPayment(orderID: orderID, amount: amount, currency: currency, method: method, vpa: vpa, email: email,
                               contact: contact, description: description, notes: notes, flow: flow)
        let gateway = self.gateway
        let isIntent = flow == "intent"
        return try await idempotent(request, context, merchant: merchant, body: text) { tx in
            let payment = try await gateway.createAndSubmitInline(tx, merchant: merchant, input)
            let json = JSON.object([("razorpay_payment_id", .string(payment.id))])
            // Submitted in this transaction already when its rail answers in-process.
            guard payment.state == .created else { return Mutation(status: .ok, json: json) }
            return Mutation(status: .ok, json: json, afterCommit: {
                let submitted = try await gateway.submit(paymentID: payment.id)
                // Razorpay's intent answer carries the link the payer's app opens (or the QR shows).
                guard isIntent, let link = submitted.upiLink else { return json }
                return .object([("razorpay_payment_id", .string(payment.id)), ("link", .string(link))])
            })
        }
    }

    func capture(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let merchant = try context.requireMerchant()
        let id = try context.parameters.require("id")
        try validateID(id, .payment)
        let (raw, text) = try await RequestBody.parse(request, context: context)
        var body = raw
        let amount = try body.int("amount", required: true, range: 1...AmountLimits.maximum)!
        let currency = try body.currency()
        try body.rejectUnknown()
        return try await idempotent(request, context, merchant: merchant, body: text) { tx in
            let payment = try await gateway.capture(tx, merchant: merchant, paymentID: id, amount: amount, currency: currency)
            return Mutation(status: .ok, json: Render.payment(payment))
        }
    }

    func cancel(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let merchant = try context.requireMerchant()
        let id = try context.parameters.require("id")
        try validateID(id, .payment)
        let (body, text) = try await RequestBody.parse(request, context: context, allowEmpty: true)
        try body.rejectUnknown()
        return try await idempotent(request, context, merchant: merchant, body: text) { tx in
            let payment = try await gateway.void(tx, merchant: merchant, paymentID: id)
            return Mutation(status: .ok, json: Render.payment(payment))
        }
    }

    func createRefund(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let merchant = try context.requireMerchant()
        let id = try context.parameters.require("id")
        try validateID(id, .payment)
        let (raw, text) = try await RequestBody.parse(request, context: context, allowEmpty: true)
        var body = raw
        let amount = try body.int("amount", required: false, range: 1...AmountLimits.maximum)
        let speed = try body.string("speed", maxLength: 16) ?? "normal"
        guard speed == "normal" || speed == "optimum" else {
            throw KoshError.badRequest("The speed must be normal or optimum.", field: "speed")
        }
        let receipt = try body.string("receipt", maxLength: APILimits.maximumReceiptLength)
        let notes = try body.notes()
        try body.rejectUnknown()
        let input = NewRefund(amount: amount, speed: speed, receipt: receipt, notes: notes)
        let gateway = self.gateway
        return try await idempotent(request, context, merchant: merchant, body: text) { tx in
            let refund = try await gateway.refund(tx, merchant: merchant, paymentID: id, input)
            // Processed in this transaction already when its rail answers in-process.
            guard refund.machine.state == .pending else { return Mutation(status: .ok, json: Render.refund(refund)) }
            return Mutation(status: .ok, json: Render.refund(refund), afterCommit: {
                Render.refund(try await gateway.processRefund(refundID: refund.id))
            })
        }
    }

    // MARK: Rails

    /// A rail's signed report on a payment. Applying it twice changes nothing.
    func railCallback(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let name = try context.parameters.require("connector")
        guard let rail = gateway.rails.rail(named: name) else {
            throw KoshError(.notFound, "No rail is called \(name)", reason: "unknown_rail")
        }
        let buffer = try await request.body.collect(upTo: 64 * 1024)
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName] = field.value }
        let path = request.uri.query.map { "\(request.uri.path)?\($0)" } ?? request.uri.path
        let callback = try rail.parseCallback(method: "POST", path: path, headers: headers, body: Array(buffer.readableBytesView))
        let payment = try await gateway.applyRailStatus(paymentID: callback.paymentID, callback.status, fromCallback: true,
                                                        amount: callback.amount, connector: name)
        context.logger.info("rail callback", metadata: ["rail": "\(name)", "payment_id": "\(payment.id)", "status": "\(payment.state.rawValue)"])
        return jsonResponse(.object([("status", .string("ok")), ("payment_status", .string(payment.state.publicStatus))]))
    }

    func validateVPA(_ request: Request, _ context: KoshRequestContext) async throws -> Response {
        let merchant = try context.requireMerchant()
        let (raw, _) = try await RequestBody.parse(request, context: context)
        var body = raw
        let vpa = try body.string("vpa", required: true, maxLength: APILimits.maximumVPALength)!
        try body.rejectUnknown(ignoring: [])
        guard isPlausibleVPA(vpa) else {
            throw KoshError.badRequest("Invalid VPA. Please enter a valid Virtual Payment Address", field: "vpa", reason: "invalid_vpa")
        }
        let lookup: VPALookup
        do {
            lookup = try await gateway.rails.lookup(mode: merchant.mode, vpa: vpa)
        } catch let error as KoshError {
            throw error
        } catch {
            throw KoshError(.gatewayError, "The UPI switch did not answer; please retry", field: "vpa", source: "gateway",
                            step: "payment_initiation", reason: "gateway_technical_error")
        }
        guard lookup.valid else {
            throw KoshError.badRequest("Invalid VPA. Please enter a valid Virtual Payment Address", field: "vpa", reason: "invalid_vpa")
        }
        return jsonResponse(.object([("vpa", .string(vpa)), ("success", .bool(true)),
                                     ("customer_name", lookup.customerName.map(JSON.string) ?? .null)]))
    }

    // MARK: Idempotency

    /// Runs `work` in one transaction. With an `Idempotency-Key`, the key is claimed first and
    /// the response is recorded in the same transaction as the effect.
    func idempotent(_ request: Request, _ context: KoshRequestContext, merchant: Merchant, body: String,
                    _ work: @escaping (any StoreTransaction) async throws -> Mutation) async throws -> Response {
        guard let key = request.headers[.init("Idempotency-Key")!] else {
            let mutation = try await store.transaction { tx in try await work(tx) }
            return try await finish(mutation, merchant: merchant, claim: nil, logger: context.logger)
        }
        guard !key.isEmpty, key.unicodeScalars.count <= 255 else {
            throw KoshError.badRequest("The Idempotency-Key header must be 1 to 255 characters", field: "Idempotency-Key")
        }
        let hash = Self.requestHash(method: request.method.rawValue, path: request.uri.path, body: body)
        let token: String
        switch try await idempotency.claim(merchantID: merchant.id, key: key, requestHash: hash, now: clock.nowMillis()) {
        case .replay(let status, let body):
            var response = jsonResponse(body: body, status: HTTPResponse.Status(code: status))
            response.headers[.init("Idempotent-Replayed")!] = "true"
            return response
        case .mismatch:
            throw KoshError.badRequest("This Idempotency-Key was already used with a different request", field: "Idempotency-Key",
                                       reason: "idempotency_key_reused")
        case .inProgress(let retryAfter):
            throw KoshError(.conflict, "A request with this Idempotency-Key is still being processed; retry after \(retryAfter) s",
                            field: "Idempotency-Key", reason: "idempotency_key_in_use", retryAfterSeconds: retryAfter)
        case .claimed(let claimToken):
            token = claimToken
        }
        do {
            let mutation = try await store.transaction { tx in
                let mutation = try await work(tx)
                try await tx.completeIdempotency(merchantID: merchant.id, key: key, token: token, status: Int(mutation.status.code),
                                                 body: mutation.json.serialized())
                return mutation
            }
            return try await finish(mutation, merchant: merchant, claim: (key, token), logger: context.logger)
        } catch let error as KoshError where error.code.httpStatus < 500 && error.code != .conflict {
            // The request was refused with no effect: the refusal is its response.
            try await idempotency.complete(merchantID: merchant.id, key: key, token: token, status: error.code.httpStatus,
                                           body: ErrorRendering.json(error).serialized())
            throw error
        } catch {
            try? await idempotency.release(merchantID: merchant.id, key: key, token: token)
            throw error
        }
    }

    func finish(_ mutation: Mutation, merchant: Merchant, claim: (key: String, token: String)?, logger: Logger) async throws -> Response {
        guard let afterCommit = mutation.afterCommit else { return jsonResponse(mutation.json, status: mutation.status) }
        let final: JSON
        do {
            final = try await afterCommit()
        } catch {
            // The effect is committed; the janitor finishes the rail work. Answer with what was recorded.
            logger.warning("post-commit work failed; left to the janitor", metadata: ["error": "\(error)"])
            return jsonResponse(mutation.json, status: mutation.status)
        }
        if let claim, final != mutation.json {
            try await idempotency.complete(merchantID: merchant.id, key: claim.key, token: claim.token, status: Int(mutation.status.code),
                                           body: final.serialized())
        }
        return jsonResponse(final, status: mutation.status)
    }

    static func requestHash(method: String, path: String, body: String) -> String {
        MerchantRequestHash.compute(method: method, path: path, body: body)
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
                                                  webhooks: WebhooksAPI? = nil) -> Router<KoshRequestContext> {
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
        routes.load(router.routes.map { (path: $0.path.description, method: $0.method.rawValue) })
        return router
    }
}
