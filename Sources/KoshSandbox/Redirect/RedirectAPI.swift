import Hummingbird
import KoshJSON
import NIOCore

/// The banks' API under `/netbanking/v1` (rail `netbanking`) and the wallet providers' under
/// `/wallets/v1` (rail `wallets`), signed and subject to their rail's faults, and the control
/// calls for them under `/sandbox/v1` (docs/REDIRECT_METHODS.md).
///
/// Errors are `{"error": {"code", "message"}}` like the switch's, with `"field"` on a
/// `BAD_REQUEST` that names one.
struct RedirectAPI: Sendable {
    let runtime: SandboxRuntime

    func register(on router: Router<SandboxRequestContext>) {
        let banks = router.group("netbanking/v1").add(middleware: FaultMiddleware(rail: .netbanking, runtime: runtime))
        banks.get("banks") { _, _ in Self.list(.netbanking) }
        banks.post("payments") { request, context in
            try await Self.answering { try await create(request, context, kind: .netbanking, providerCode: nil) }
        }
        banks.get("payments/:reference") { request, context in
            try await Self.answering { try status(request, context, kind: .netbanking, providerCode: nil) }
        }
        banks.post("refunds") { request, context in
            try await Self.answering { try await refund(request, context, kind: .netbanking, providerCode: nil) }
        }

        let wallets = router.group("wallets/v1").add(middleware: FaultMiddleware(rail: .wallets, runtime: runtime))
        wallets.get("") { _, _ in Self.list(.wallet) }
        wallets.post(":wallet/payments") { request, context in
            try await Self.answering { try await create(request, context, kind: .wallet, providerCode: try context.parameters.require("wallet")) }
        }
        wallets.get(":wallet/payments/:reference") { request, context in
            try await Self.answering { try status(request, context, kind: .wallet, providerCode: try context.parameters.require("wallet")) }
        }
        wallets.post(":wallet/refunds") { request, context in
            try await Self.answering { try await refund(request, context, kind: .wallet, providerCode: try context.parameters.require("wallet")) }
        }

        // Control: no faults, signed like the rest of /sandbox/v1.
        let control = router.group("sandbox/v1")
        for kind in RedirectKind.allCases {
            let path = RouterPath(stringLiteral: "\(kind.rail.rawValue)/:code/account")
            control.get(path) { _, context in try account(kind, try context.parameters.require("code"), setting: nil) }
            control.put(path) { request, context in
                try await Self.answering {
                    var request = request
                    let code = try context.parameters.require("code")
                    let body = try RedirectBody(try await request.collectBody(upTo: context.maxUploadSize))
                    if let unknown = body.unknownField(allowed: ["balance"]) {
                        throw Failure.badRequest("Unknown field: \(unknown)", field: unknown)
                    }
                    let balance = try body.integer("balance", in: 0...Amounts.maximumAccepted)
                    return try account(kind, code, setting: balance)
                }
            }
        }
        control.post("redirect/:id/approve") { request, context in try play(.approve, request, context) }
        control.post("redirect/:id/decline") { request, context in try play(.decline, request, context) }
    }

    // MARK: Errors

    /// A failure in the redirect rails' shape: `{"error": {"code", "message", "field"?}}`.
    struct Failure: Error, Sendable {
        let status: HTTPResponse.Status
        let code: String
        let message: String
        var field: String?

        static func badRequest(_ message: String, field: String?) -> Self {
            Self(status: .badRequest, code: "BAD_REQUEST", message: message, field: field)
        }

        var response: Response {
            var error: [(String, JSON)] = [("code", .string(code)), ("message", .string(message))]
            if let field { error.append(("field", .string(field))) }
            return jsonResponse(.object([("error", .object(error))]), status: status)
        }
    }

    /// Runs a handler, answering its `Failure` (and a body that cannot be read) in this API's shape.
    static func answering(_ handler: () async throws -> Response) async throws -> Response {
        do {
            return try await handler()
        } catch let failure as Failure {
            return failure.response
        } catch let malformed as MalformedRequest {
            return Failure.badRequest(malformed.message, field: nil).response
        }
    }

    // MARK: Handlers

    static func list(_ kind: RedirectKind) -> Response {
        let items = RedirectCatalogue.providers(kind).map { provider -> JSON in
            .object([("code", .string(provider.code)), ("name", .string(provider.name)), ("max_amount", .int(provider.maxAmount)),
                     ("fee_bps", .int(provider.feeBasisPoints))])
        }
        return jsonResponse(.object([("count", .int(Int64(items.count))), ("items", .array(items))]))
    }

    /// The wallet named in the path; unknown → `400` `WALLET_NOT_SUPPORTED`.
    static func pathProvider(_ kind: RedirectKind, _ code: String?) throws(Failure) -> RedirectProvider? {
        guard let code else { return nil }
        guard let provider = RedirectCatalogue.provider(kind, code) else { throw notSupported(kind, code) }
        return provider
    }

    static func notSupported(_ kind: RedirectKind, _ code: String) -> Failure {
        Failure(status: .badRequest, code: kind.notSupportedCode,
                message: "No \(kind.noun) \(String(code.prefix(64))): GET \(kind == .netbanking ? "/netbanking/v1/banks" : "/wallets/v1") lists them")
    }

    func create(_ request: Request, _ context: SandboxRequestContext, kind: RedirectKind, providerCode: String?) async throws -> Response {
        let pathWallet = try Self.pathProvider(kind, providerCode)
        var request = request
        let body = try RedirectBody(try await request.collectBody(upTo: context.maxUploadSize))
        let reference = try body.identifier("reference")
        let providerCodeInBody = kind == .netbanking ? try body.string("bank", maxBytes: 64) : nil
        let amount = try body.integer("amount", in: 1...Amounts.maximumAccepted)
        guard try body.string("currency", maxBytes: 16) == "INR" else { throw Failure.badRequest("currency must be INR", field: "currency") }
        let merchantName = try body.string("merchant_name", maxBytes: SandboxLimits.maximumTextLength)
        guard !merchantName.isEmpty else { throw Failure.badRequest("merchant_name must not be empty", field: "merchant_name") }
        let returnURL = try body.url("return_url")
        let callback = try body.url("callback_url")
        let contact = kind == .wallet ? try body.optionalString("contact", maxBytes: 32) : nil

        let provider: RedirectProvider
        if let pathWallet {
            provider = pathWallet
        } else if let code = providerCodeInBody, let bank = RedirectCatalogue.provider(.netbanking, code) {
            provider = bank
        } else {
            throw Self.notSupported(kind, providerCodeInBody ?? "")
        }
        guard amount <= provider.maxAmount else {
            throw Failure(status: .badRequest, code: "AMOUNT_LIMIT_EXCEEDED",
                          message: "\(provider.name) takes at most \(provider.maxAmount) paise per payment", field: "amount")
        }
        let new = NewRedirectPayment(provider: provider, reference: reference, amount: amount, merchantName: merchantName,
                                     returnURL: returnURL.url, callback: callback, contact: contact, origin: Self.origin(request))
        let now = runtime.now()
        let outcome = runtime.perform { $0.createRedirect(new, now: now) }
        switch outcome {
        case .created(let payment):
            return jsonResponse(payment.json(origin: Self.origin(request)), status: .created)
        case .existing(let payment):
            return jsonResponse(payment.json(origin: Self.origin(request)))
        case .conflict:
            throw Failure(status: .conflict, code: "DUPLICATE_REFERENCE",
                          message: "reference \(reference) was used for a payment with another \(kind.noun) or amount")
        case .full:
            throw Failure(status: .serviceUnavailable, code: "SANDBOX_FULL", message: "The sandbox holds too many payments; reset it")
        }
    }

    func status(_ request: Request, _ context: SandboxRequestContext, kind: RedirectKind, providerCode: String?) throws -> Response {
        let wallet = try Self.pathProvider(kind, providerCode)
        let reference = try context.parameters.require("reference")
        let now = runtime.now()
        let payment = runtime.perform { $0.redirectPayment(RedirectBook.Key(kind: kind, reference: reference), now: now) }
        guard let payment, wallet == nil || wallet == payment.provider else {
            throw Failure(status: .notFound, code: "NOT_FOUND", message: "No payment \(String(reference.prefix(64)))")
        }
        return jsonResponse(payment.json(origin: Self.origin(request)))
    }

    func refund(_ request: Request, _ context: SandboxRequestContext, kind: RedirectKind, providerCode: String?) async throws -> Response {
        let wallet = try Self.pathProvider(kind, providerCode)
        var request = request
        let body = try RedirectBody(try await request.collectBody(upTo: context.maxUploadSize))
        let refundReference = try body.identifier("refund_reference")
        let reference = try body.identifier("reference")
        let amount = try body.integer("amount", in: 1...Amounts.maximumAccepted)
        let outcome = runtime.withWorld {
            $0.refundRedirect(kind: kind, provider: wallet, refundReference: refundReference, reference: reference, amount: amount)
        }
        switch outcome {
        case .refunded(let refund), .replayed(let refund):
            return jsonResponse(refund.json)
        case .conflict:
            throw Failure(status: .conflict, code: "DUPLICATE_REFERENCE",
                          message: "refund_reference \(refundReference) was used for another payment or amount")
        case .unknownPayment:
            throw Failure(status: .notFound, code: "NOT_FOUND", message: "No payment \(reference)")
        case .notPaid:
            throw Failure(status: .conflict, code: "NOT_PAID", message: "The payment \(reference) has not succeeded")
        case .exceeds:
            throw Failure(status: .badRequest, code: "REFUND_EXCEEDS", message: "The refund exceeds the amount paid less the amount refunded",
                          field: "amount")
        case .full:
            throw Failure(status: .serviceUnavailable, code: "SANDBOX_FULL", message: "The sandbox holds too many refunds; reset it")
        }
    }

    /// `GET`/`PUT /sandbox/v1/{netbanking|wallets}/{code}/account`.
    func account(_ kind: RedirectKind, _ code: String, setting balance: Int64?) throws -> Response {
        guard let provider = RedirectCatalogue.provider(kind, code) else {
            throw SandboxHTTPError.notFound("No \(kind.noun) \(String(code.prefix(64)))")
        }
        let now = runtime.withWorld { world -> Int64 in
            if let balance { world.setRedirectBalance(provider, balance) }
            return world.redirectBalance(provider)
        }
        return jsonResponse(.object([(kind.providerField, .string(provider.code)), ("name", .string(provider.name)),
                                     ("balance", .int(now))]))
    }

    /// `POST /sandbox/v1/redirect/{id}/approve|decline`: the page's buttons without a browser.
    func play(_ decision: RedirectDecision, _ request: Request, _ context: SandboxRequestContext) throws -> Response {
        let id = try context.parameters.require("id")
        let now = runtime.now()
        let result = runtime.perform { world -> (Result<RedirectPayment, SandboxHTTPError>, [Effect]) in
            let key: RedirectBook.Key
            if let byID = world.redirectKey(id: id) {
                key = byID
            } else {
                let matches = RedirectKind.allCases.map { RedirectBook.Key(kind: $0, reference: id) }.filter { world.redirectExists($0) }
                guard let only = matches.first else { return (.failure(.notFound("No redirect payment \(String(id.prefix(64)))")), []) }
                guard matches.count == 1 else {
                    return (.failure(SandboxHTTPError(status: .conflict, code: "AMBIGUOUS_REFERENCE",
                                                      message: "Both a bank and a wallet payment have reference \(id); use the provider's id")), [])
                }
                key = only
            }
            let (payment, effects) = world.decideRedirect(key, decision, now: now)
            guard let payment else { return (.failure(.notFound("No redirect payment \(id)")), effects) }
            return (.success(payment), effects)
        }
        let payment = try result.get()
        return jsonResponse(payment.json(origin: Self.origin(request)))
    }

    /// `http://<the Host the call came to>`, or "" (paths stay relative) when it is missing or odd.
    static func origin(_ request: Request) -> String {
        guard let authority = request.head.authority, !authority.isEmpty, authority.utf8.count <= 255,
              authority.utf8.allSatisfy({ byte in
                  (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                      || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || Array(".-:[]").contains(Character(UnicodeScalar(byte)))
              }) else { return "" }
        return "http://" + authority
    }
}

/// A JSON object request body, read field by field so each problem names its field. Fields it
/// does not ask for are ignored.
struct RedirectBody: Sendable {
    let json: JSON

    init(_ buffer: ByteBuffer) throws(RedirectAPI.Failure) {
        guard let parsed = try? JSON.parse(buffer.readableBytesView), case .object = parsed else {
            throw .badRequest("The request body must be a JSON object", field: nil)
        }
        json = parsed
    }

    /// The first field not in `allowed`: the control calls refuse them, as the rest of /sandbox/v1.
    func unknownField(allowed: Set<String>) -> String? {
        guard case .object(let pairs) = json else { return nil }
        return pairs.map(\.0).first { !allowed.contains($0) }
    }

    func string(_ name: String, maxBytes: Int) throws(RedirectAPI.Failure) -> String {
        guard let value = try optionalString(name, maxBytes: maxBytes) else { throw .badRequest("Missing field: \(name)", field: name) }
        return value
    }

    func optionalString(_ name: String, maxBytes: Int) throws(RedirectAPI.Failure) -> String? {
        switch json[name] {
        case nil, .null?: return nil
        case .string(let value)?:
            guard value.utf8.count <= maxBytes else { throw .badRequest("\(name) must be at most \(maxBytes) bytes", field: name) }
            return value
        default: throw .badRequest("Field \(name) must be a string", field: name)
        }
    }

    func identifier(_ name: String) throws(RedirectAPI.Failure) -> String {
        let value = try string(name, maxBytes: SandboxLimits.maximumIdentifierLength)
        do {
            return try Validate.identifier(value, field: name)
        } catch {
            throw .badRequest(error.message, field: name)
        }
    }

    func integer(_ name: String, in range: ClosedRange<Int64>) throws(RedirectAPI.Failure) -> Int64 {
        switch json[name] {
        case nil, .null?: throw .badRequest("Missing field: \(name)", field: name)
        case .int(let value)? where range.contains(value): return value
        default: throw .badRequest("\(name) must be an integer number of paise, \(range.lowerBound)…\(range.upperBound)", field: name)
        }
    }

    func url(_ name: String) throws(RedirectAPI.Failure) -> CallbackTarget {
        let value = try string(name, maxBytes: SandboxLimits.maximumURLLength)
        do {
            guard let target = try Validate.callback(value, field: name) else { throw MalformedRequest(message: "") }
            return target
        } catch {
            throw .badRequest("\(name) must be an absolute http or https URL", field: name)
        }
    }
}
