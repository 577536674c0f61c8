import Hummingbird
import KoshCore
import KoshJSON
import Logging
import NIOCore

struct VaultRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    var maxUploadSize: Int { VaultValidation.maximumBodyBytes }
}

/// A refusal before any card is looked at.
struct VaultHTTPError: Error, Sendable {
    let status: HTTPResponse.Status
    let code: String
    let description: String

    static let unauthenticated = VaultHTTPError(status: .unauthorized, code: "unauthenticated",
                                                description: "Missing, stale or invalid request signature")
}

/// A request body: a JSON object of known keys, read field by field so every refusal names
/// its field.
struct VaultBody {
    let json: JSON

    init(_ buffer: ByteBuffer, allowed: Set<String>) throws(CardVaultError) {
        if buffer.readableBytes == 0 {
            json = .object([])
            return
        }
        guard let json = try? JSON.parse(buffer.readableBytesView), case .object(let pairs) = json else {
            throw .invalid(field: "body", reason: "The body must be a JSON object")
        }
        if let unknown = pairs.first(where: { !allowed.contains($0.0) }) {
            throw .invalid(field: unknown.0, reason: "Unknown field \(JSON.excerpt(unknown.0))")
        }
        self.json = json
    }

    func string(_ field: String) throws(CardVaultError) -> String? {
        switch json[field] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        default: throw .invalid(field: field, reason: "\(field) must be a string")
        }
    }

    func int(_ field: String) throws(CardVaultError) -> Int64? {
        switch json[field] {
        case nil, .null?: return nil
        case .int(let value)?: return value
        default: throw .invalid(field: field, reason: "\(field) must be an integer")
        }
    }

    func bool(_ field: String) throws(CardVaultError) -> Bool? {
        switch json[field] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        default: throw .invalid(field: field, reason: "\(field) must be true or false")
        }
    }

    func required<T>(_ value: T?, _ field: String) throws(CardVaultError) -> T {
        guard let value else { throw .invalid(field: field, reason: "\(field) is required") }
        return value
    }

    /// `{"retain_until": unix s}` or `{"card_on_file": true}`, exactly one of them.
    func retention() throws(CardVaultError) -> CardRetention {
        let until = try int("retain_until")
        let onFile = try bool("card_on_file") ?? false
        switch (until, onFile) {
        case (let seconds?, false): return .until(UnixSeconds(seconds))
        case (nil, true): return .cardOnFile
        case (_?, true): throw .invalid(field: "card_on_file", reason: "Give retain_until or card_on_file, not both")
        case (nil, false): throw .invalid(field: "retain_until", reason: "retain_until (unix seconds) or card_on_file: true is required")
        }
    }
}

/// The routes of docs/CARDS.md §1 over a `VaultEngine`; every answer is signed.
struct VaultAPI: Sendable {
    let engine: VaultEngine
    let key: VaultChannelKey
    let logger: Logger

    func register(on router: Router<VaultRequestContext>) {
        let api = self
        router.add(middleware: VaultEnvelopeMiddleware(api: api))
        let cards = router.group("/vault/v1/cards")
        router.post("/vault/v1/cards") { request, context in try await api.tokenize(request, context) }
        cards.post(":token/cvv") { request, context in try await api.attachCVV(request, context) }
        cards.post(":token/detokenize") { request, context in try await api.detokenize(request, context) }
        cards.put(":token/retention") { request, context in try await api.setRetention(request, context) }
        cards.delete(":token") { request, context in try await api.delete(request, context) }
        router.post("/vault/v1/purge") { request, _ in
            let purged = try await api.engine.purgeExpired()
            return api.reply(.ok, .object([("purged", .int(Int64(purged)))]), to: request)
        }
        router.get("/vault/v1/health") { request, _ in
            let version = try await api.engine.masterKeyVersion()
            return api.reply(.ok, .object([("status", .string("ok")), ("master_key_version", .int(Int64(version)))]), to: request)
        }
    }

    private func body(_ request: Request, allowed: Set<String>) async throws -> VaultBody {
        var request = request
        return try VaultBody(try await request.collectBody(upTo: VaultValidation.maximumBodyBytes), allowed: allowed)
    }

    private func token(_ context: VaultRequestContext) throws -> String {
        guard let token = context.parameters.get("token"), VaultToken.isWellFormed(token) else { throw CardVaultError.notFound }
        return token
    }

    func tokenize(_ request: Request, _ context: VaultRequestContext) async throws -> Response {
        let body = try await body(request, allowed: ["number", "expiry_month", "expiry_year", "name", "cvv", "retain_until", "card_on_file"])
        let number = try body.required(body.string("number"), "number")
        let month = try body.required(body.int("expiry_month"), "expiry_month")
        let year = try body.required(body.int("expiry_year"), "expiry_year")
        let name = try body.string("name")
        let cvv = try body.string("cvv")
        let retention = try body.retention()
        let card = VaultCard(number: number, expiryMonth: Int(clamping: month), expiryYear: Int(clamping: year), name: name)
        let tokenized = try await engine.tokenize(card, cvv: cvv, retention: retention)
        return reply(.created, .object([("token", .string(tokenized.token)), ("fingerprint", .string(tokenized.fingerprint)),
                                        ("iin", .string(tokenized.iin)), ("last4", .string(tokenized.last4))]), to: request)
    }

    func attachCVV(_ request: Request, _ context: VaultRequestContext) async throws -> Response {
        let token = try token(context)
        let body = try await body(request, allowed: ["cvv"])
        try await engine.attachCVV(token: token, cvv: body.required(body.string("cvv"), "cvv"))
        return reply(.noContent, nil, to: request)
    }

    func detokenize(_ request: Request, _ context: VaultRequestContext) async throws -> Response {
        let token = try token(context)
        let body = try await body(request, allowed: ["take_cvv"])
        let (card, cvv) = try await engine.detokenize(token: token, takeCVV: body.bool("take_cvv") ?? false)
        var fields: [(String, JSON)] = [("number", .string(card.number)), ("expiry_month", .int(Int64(card.expiryMonth))),
                                        ("expiry_year", .int(Int64(card.expiryYear)))]
        if let name = card.name { fields.append(("name", .string(name))) }
        if let cvv { fields.append(("cvv", .string(cvv))) }
        return reply(.ok, .object(fields), to: request)
    }

    func setRetention(_ request: Request, _ context: VaultRequestContext) async throws -> Response {
        let token = try token(context)
        let body = try await body(request, allowed: ["retain_until", "card_on_file"])
        try await engine.setRetention(token: token, body.retention())
        return reply(.noContent, nil, to: request)
    }

    func delete(_ request: Request, _ context: VaultRequestContext) async throws -> Response {
        try await engine.purge(token: token(context))
        return reply(.noContent, nil, to: request)
    }

    // MARK: Answers

    /// A JSON answer (or none) signed over its body with the request's method and path.
    func reply(_ status: HTTPResponse.Status, _ json: JSON?, to request: Request) -> Response {
        let bytes = json.map { Array($0.serialized().utf8) } ?? []
        let now = engine.clock.nowMillis()
        var headers: HTTPFields = [:]
        if json != nil { headers[.contentType] = "application/json" }
        headers[VaultEnvelopeMiddleware.timestampField] = String(now)
        headers[VaultEnvelopeMiddleware.signatureField] = VaultSignature.sign(key: key, timestamp: now, method: request.method.rawValue,
                                                                             path: request.head.path ?? "/", body: bytes)
        return Response(status: status, headers: headers, body: bytes.isEmpty ? ResponseBody() : ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    func errorReply(_ status: HTTPResponse.Status, code: String, description: String, field: String? = nil, to request: Request) -> Response {
        var fields: [(String, JSON)] = [("code", .string(code)), ("description", .string(description))]
        if let field { fields.append(("field", .string(field))) }
        return reply(status, .object([("error", .object(fields))]), to: request)
    }
}

/// Outermost: checks the request's signature (after reading its body, at most 16 KiB), and
/// renders every failure as a signed `{"error": {"code", "description"}}` answer.
struct VaultEnvelopeMiddleware: RouterMiddleware {
    typealias Context = VaultRequestContext
    let api: VaultAPI

    static let timestampField = HTTPFields.Element.Name(VaultSignature.timestampHeader)!
    static let signatureField = HTTPFields.Element.Name(VaultSignature.signatureHeader)!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        do {
            guard request.headers[Self.timestampField] != nil, request.headers[Self.signatureField] != nil else {
                throw VaultHTTPError.unauthenticated
            }
            let body: ByteBuffer
            do {
                body = try await request.collectBody(upTo: VaultValidation.maximumBodyBytes)
            } catch {
                throw CardVaultError.invalid(field: "body", reason: "The body must be at most \(VaultValidation.maximumBodyBytes) bytes")
            }
            guard VaultSignature.verify(key: api.key, timestampHeader: request.headers[Self.timestampField],
                                        signatureHeader: request.headers[Self.signatureField], method: request.method.rawValue,
                                        path: request.head.path ?? "/", body: body.readableBytesView, now: api.engine.clock.nowMillis()) else {
                throw VaultHTTPError.unauthenticated
            }
            return try await next(request, context)
        } catch let error as CardVaultError {
            switch error {
            case .invalid(let field, let reason):
                return api.errorReply(.badRequest, code: VaultValidation.errorCode(field: field), description: reason, field: field, to: request)
            case .notFound: return api.errorReply(.notFound, code: "not_found", description: "No such card", to: request)
            case .purged: return api.errorReply(.gone, code: "purged", description: "The card was purged", to: request)
            case .unavailable(let reason):
                return api.errorReply(.serviceUnavailable, code: "unavailable", description: reason, to: request)
            }
        } catch let error as VaultHTTPError {
            return api.errorReply(error.status, code: error.code, description: error.description, to: request)
        } catch let error as HTTPError where error.status == .notFound {
            return api.errorReply(.notFound, code: "not_found", description: "No such resource", to: request)
        } catch let error as HTTPError where error.status == .methodNotAllowed {
            return api.errorReply(.methodNotAllowed, code: "method_not_allowed", description: "Method not allowed", to: request)
        } catch {
            // Never the error's text: it could come from anywhere. Its type is enough to start.
            api.logger.error("vault request failed", metadata: ["error.type": "\(type(of: error))", "http.path": "\(request.uri.path)"])
            return api.errorReply(.internalServerError, code: "internal_error", description: "Internal error", to: request)
        }
    }
}
