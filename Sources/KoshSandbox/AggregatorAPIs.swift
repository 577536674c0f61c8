import Hummingbird

/// The Razorpay-style aggregator under `/alphapay/v1` (docs/SANDBOX.md).
struct AlphapayAPI: Sendable {
    let runtime: SandboxRuntime

    func register(on router: Router<SandboxRequestContext>) {
        let api = router.group("alphapay/v1").add(middleware: FaultMiddleware(rail: .alphapay, runtime: runtime))
        api.post("payments") { request, context in try await createPayment(request, context) }
        api.get("payments/:reference") { _, context in
            let reference = try context.parameters.require("reference")
            guard let transaction = runtime.withWorld({ $0.transaction(TxnKey(rail: .alphapay, id: reference)) }) else {
                throw SandboxHTTPError.notFound("No payment \(reference)")
            }
            return jsonResponse(RailViews.alphapayPayment(transaction))
        }
        api.post("refunds") { request, context in try await refund(request, context) }
    }

    static func error(_ code: String, _ description: String, status: HTTPResponse.Status = .badRequest) -> SandboxHTTPError {
        SandboxHTTPError(status: status, code: code, message: description)
    }

    static func amount(_ field: PaiseField) throws(SandboxHTTPError) -> Int64 {
        guard let amount = field.value, Amounts.isAcceptable(amount) else {
            throw error("INVALID_AMOUNT", "amount must be an integer number of paise, 1…\(Amounts.maximumAccepted)")
        }
        return amount
    }

    struct PaymentBody: Decodable {
        let reference: String
        let amount: PaiseField
        let currency: String
        let method: String
        let vpa: String
        let notifyURL: String?

        enum CodingKeys: String, CodingKey { case reference, amount, currency, method, vpa, notifyURL = "notify_url" }
    }

    func createPayment(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decode(PaymentBody.self, context: context)
        let reference = try Validate.identifier(body.reference, field: "reference")
        guard body.method == "upi" else { throw MalformedRequest(message: "method must be upi") }
        guard body.currency == "INR" else { throw Self.error("INVALID_AMOUNT", "currency must be INR") }
        let amount = try Self.amount(body.amount)
        guard let payer = VPA(body.vpa) else { throw Self.error("INVALID_VPA", "The VPA is invalid") }
        let new = NewTransaction(key: TxnKey(rail: .alphapay, id: reference), mode: .collect, amount: amount, payer: payer,
                                 callback: try Validate.callback(body.notifyURL, field: "notify_url"))
        let now = runtime.now()
        let outcome = runtime.perform { world in
            let outcome = world.create(new, idempotency: .replayIfSame, now: now)
            if case .created(_, let effects) = outcome { return (outcome, effects) }
            return (outcome, [])
        }
        switch outcome {
        case .created(let transaction, _), .replayed(let transaction):
            return jsonResponse(RailViews.alphapayCreated(transaction))
        case .conflict:
            throw Self.error("DUPLICATE_REFERENCE", "reference \(reference) was used for a different payment", status: .conflict)
        case .full:
            throw Self.error("SANDBOX_FULL", "The sandbox holds too many transactions; reset it", status: .serviceUnavailable)
        }
    }

    struct RefundBody: Decodable {
        let reference: String
        let paymentReference: String
        let amount: PaiseField

        enum CodingKeys: String, CodingKey { case reference, paymentReference = "payment_reference", amount }
    }

    func refund(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decode(RefundBody.self, context: context)
        let reference = try Validate.identifier(body.reference, field: "reference")
        let paymentReference = try Validate.identifier(body.paymentReference, field: "payment_reference")
        let amount = try Self.amount(body.amount)
        let outcome = runtime.withWorld {
            $0.refund(RefundKey(rail: .alphapay, id: reference), of: TxnKey(rail: .alphapay, id: paymentReference), amount: amount)
        }
        switch outcome {
        case .refunded(let refund), .replayed(let refund):
            return jsonResponse(.object([("id", .string(refund.providerID)), ("reference", .string(refund.key.id)),
                                         ("status", .string("processed"))]))
        case .conflict:
            throw Self.error("DUPLICATE_REFERENCE", "reference \(reference) was used for a different refund", status: .conflict)
        case .unknownTransaction:
            throw SandboxHTTPError.notFound("No payment \(paymentReference)")
        case .notSuccessful:
            throw Self.error("PAYMENT_NOT_AUTHORIZED", "The payment is not authorized")
        case .exceeds:
            throw Self.error("REFUND_EXCEEDS", "The refund exceeds the amount not yet refunded")
        case .full:
            throw Self.error("SANDBOX_FULL", "The sandbox holds too many refunds; reset it", status: .serviceUnavailable)
        }
    }
}

/// The PayU-style aggregator under `/betapay/api/v2` (docs/SANDBOX.md): answers 200 with a
/// `resultCode` for business errors, and does not deduplicate creates.
struct BetapayAPI: Sendable {
    let runtime: SandboxRuntime

    func register(on router: Router<SandboxRequestContext>) {
        let api = router.group("betapay/api/v2").add(middleware: FaultMiddleware(rail: .betapay, runtime: runtime))
        api.post("transactions") { request, context in try await create(request, context) }
        api.get("transactions/:merchantTxnId") { _, context in
            let id = try context.parameters.require("merchantTxnId")
            guard let transaction = runtime.withWorld({ $0.transaction(TxnKey(rail: .betapay, id: id)) }) else {
                return jsonResponse(.object([("resultCode", .string("E404")), ("resultMsg", .string("Transaction not found")),
                                             ("txnStatus", .string("NOT_FOUND"))]))
            }
            return jsonResponse(RailViews.betapayStatus(transaction))
        }
        api.post("refunds") { request, context in try await refund(request, context) }
    }

    static func rejected(_ code: String, _ message: String) -> Response {
        jsonResponse(.object([("resultCode", .string(code)), ("resultMsg", .string(message)), ("txnStatus", .string("REJECTED"))]))
    }

    static func refundFailed(_ code: String, _ message: String) -> Response {
        jsonResponse(.object([("resultCode", .string(code)), ("resultMsg", .string(message)), ("refundStatus", .string("FAILED"))]))
    }

    struct CreateBody: Decodable {
        let merchantTxnId: String
        let txnAmount: RupeeField
        let payerVpa: String
        let callbackUrl: String?
    }

    func create(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decode(CreateBody.self, context: context)
        let id = try Validate.identifier(body.merchantTxnId, field: "merchantTxnId")
        let callback = try Validate.callback(body.callbackUrl, field: "callbackUrl")
        guard let payer = VPA(body.payerVpa) else { return Self.rejected("E101", "Invalid VPA") }
        guard let amount = body.txnAmount.paise, Amounts.isAcceptable(amount) else {
            return Self.rejected("E102", "Invalid amount: a rupee string with at most 2 decimals, at least 0.01")
        }
        let new = NewTransaction(key: TxnKey(rail: .betapay, id: id), mode: .collect, amount: amount, payer: payer, callback: callback)
        let now = runtime.now()
        let outcome = runtime.perform { world in
            let outcome = world.create(new, idempotency: .rejectRepeats, now: now)
            if case .created(_, let effects) = outcome { return (outcome, effects) }
            return (outcome, [])
        }
        switch outcome {
        case .created(let transaction, _):
            return jsonResponse(.object([("resultCode", .string("0000")), ("resultMsg", .string("Accepted")),
                                         ("betaTxnId", .string(transaction.providerID)), ("txnStatus", .string("INITIATED"))]))
        case .replayed, .conflict:
            return Self.rejected("E409", "Duplicate merchantTxnId")
        case .full:
            throw SandboxHTTPError(status: .serviceUnavailable, code: "SANDBOX_FULL", message: "The sandbox holds too many transactions; reset it")
        }
    }

    struct RefundBody: Decodable {
        let merchantRefundId: String
        let merchantTxnId: String
        let refundAmount: RupeeField
    }

    func refund(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decode(RefundBody.self, context: context)
        let refundID = try Validate.identifier(body.merchantRefundId, field: "merchantRefundId")
        let txnID = try Validate.identifier(body.merchantTxnId, field: "merchantTxnId")
        guard let amount = body.refundAmount.paise, Amounts.isAcceptable(amount) else {
            return Self.refundFailed("E102", "Invalid amount: a rupee string with at most 2 decimals, at least 0.01")
        }
        let outcome = runtime.withWorld {
            $0.refund(RefundKey(rail: .betapay, id: refundID), of: TxnKey(rail: .betapay, id: txnID), amount: amount)
        }
        switch outcome {
        case .refunded(let refund), .replayed(let refund):
            return jsonResponse(.object([("resultCode", .string("0000")), ("resultMsg", .string("Refund successful")),
                                         ("refundStatus", .string("SUCCESS")), ("betaRefundId", .string(refund.providerID))]))
        case .conflict:
            return Self.refundFailed("E409", "Duplicate merchantRefundId")
        case .unknownTransaction:
            return Self.refundFailed("E404", "Transaction not found")
        case .notSuccessful:
            return Self.refundFailed("E302", "Original transaction not successful")
        case .exceeds:
            return Self.refundFailed("E301", "Refund exceeds the amount not yet refunded")
        case .full:
            throw SandboxHTTPError(status: .serviceUnavailable, code: "SANDBOX_FULL", message: "The sandbox holds too many refunds; reset it")
        }
    }
}

/// Fault injection and control under `/sandbox/v1` (docs/SANDBOX.md).
struct ControlAPI: Sendable {
    let runtime: SandboxRuntime

    func register(on router: Router<SandboxRequestContext>) {
        let api = router.group("sandbox/v1")
        api.get("faults") { _, _ in
            let configs = runtime.withWorld { world in Rail.allCases.map { ($0.rawValue, world.faultConfig($0).json) } }
            return jsonResponse(.object(configs))
        }
        api.put("faults/:rail") { request, context in
            let name = try context.parameters.require("rail")
            guard let rail = Rail(rawValue: name) else { throw SandboxHTTPError.notFound("No rail \(name): \(Rail.allCases.map(\.rawValue).joined(separator: ", "))") }
            var request = request
            let patch = try await request.decode(FaultPatch.self, context: context)
            let result = runtime.withWorld { world in
                Result { () throws(MalformedRequest) -> FaultConfig in try world.updateFaults(rail, patch) }
            }
            return jsonResponse(try result.get().json)
        }
        api.get("config") { _, _ in jsonResponse(runtime.withWorld { $0.timing }.json) }
        api.put("config") { request, context in
            var request = request
            let patch = try await request.decode(TimingPatch.self, context: context)
            let result = runtime.withWorld { world in
                Result { () throws(MalformedRequest) -> PayerTiming in try world.updateTiming(patch) }
            }
            return jsonResponse(try result.get().json)
        }
        api.post("reset") { request, context in
            var request = request
            let body = try await request.collectBody(upTo: context.maxUploadSize)
            let seed = body.readableBytes == 0 ? nil : try RequestDecoding.decode(ResetBody.self, from: body).seed
            let used = runtime.reset(seed: seed)
            return jsonResponse(.object([("status", .string("reset")), ("seed", .uint(used))]))
        }
        api.get("stats") { _, _ in
            let stats = runtime.withWorld { world in Rail.allCases.map { ($0.rawValue, world.railStats($0).json) } }
            return jsonResponse(.object(stats))
        }
    }

    struct ResetBody: Decodable {
        let seed: UInt64?

        enum CodingKeys: String, CodingKey { case seed }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: ["seed"])
            seed = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(UInt64.self, forKey: .seed)
        }
    }
}
