import Foundation
import KoshJSON
import Hummingbird
import Logging
import NIOCore

public enum SandboxLimits {
    /// Request bodies over 64 KiB are refused with 413.
    public static let maximumBodyBytes = 64 * 1024
    /// Transaction, reference and refund ids: 1…64 of `A-Z a-z 0-9 . _ -`.
    public static let maximumIdentifierLength = 64
    public static let maximumURLLength = 2048
    public static let maximumTextLength = 255
}

struct SandboxRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
    }

    var maxUploadSize: Int { SandboxLimits.maximumBodyBytes }
}

/// Whose error vocabulary a path speaks.
enum Dialect: Sendable {
    /// The switch and the fault API: `{"error": {"code", "message"}}`.
    case standard
    /// `{"error": {"code", "description"}}`.
    case alphapay
    /// `{"resultCode", "resultMsg"}`.
    case betapay

    init(path: String) {
        if path.hasPrefix("/alphapay/") {
            self = .alphapay
        } else if path.hasPrefix("/betapay/") {
            self = .betapay
        } else {
            self = .standard
        }
    }

    func errorBody(code: String, message: String) -> JSON {
        switch self {
        case .standard: .object([("error", .object([("code", .string(code)), ("message", .string(message))]))])
        case .alphapay: .object([("error", .object([("code", .string(code)), ("description", .string(message))]))])
        case .betapay: .object([("resultCode", .string(Self.betapayCode(code))), ("resultMsg", .string(message))])
        }
    }

    /// Betapay's codes for the errors every rail shares.
    static func betapayCode(_ code: String) -> String {
        switch code {
        case "BAD_REQUEST": "E100"
        case "UNAUTHORIZED": "E401"
        case "NOT_FOUND": "E404"
        case "METHOD_NOT_ALLOWED": "E405"
        case "PAYLOAD_TOO_LARGE": "E413"
        case "INTERNAL_ERROR": "E999"
        default: code
        }
    }
}

/// An error answered as an HTTP status with a body in the path's dialect.
struct SandboxHTTPError: Error, Sendable {
    let status: HTTPResponse.Status
    let code: String
    let message: String

    static func badRequest(_ message: String) -> Self { .init(status: .badRequest, code: "BAD_REQUEST", message: message) }
    static func notFound(_ message: String = "No such resource") -> Self { .init(status: .notFound, code: "NOT_FOUND", message: message) }
    static let unauthorized = Self(status: .unauthorized, code: "UNAUTHORIZED", message: "Missing, stale or invalid request signature")
}

func jsonResponse(_ json: JSON, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"],
             body: ResponseBody(byteBuffer: ByteBuffer(string: json.serialized())))
}

/// Renders every failure in the dialect of the request's path; anything unexpected is a 500
/// that reveals nothing.
struct SandboxErrorMiddleware: RouterMiddleware {
    typealias Context = SandboxRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let dialect = Dialect(path: request.uri.path)
        func render(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
            jsonResponse(dialect.errorBody(code: code, message: message), status: status)
        }
        do {
            return try await next(request, context)
        } catch let error as SandboxHTTPError {
            return render(error.status, error.code, error.message)
        } catch let error as MalformedRequest {
            return render(.badRequest, "BAD_REQUEST", error.message)
        } catch is NIOTooManyBytesError {
            return render(.contentTooLarge, "PAYLOAD_TOO_LARGE", "The request body must be at most \(SandboxLimits.maximumBodyBytes) bytes")
        } catch let error as HTTPError {
            switch error.status {
            case .contentTooLarge:
                return render(.contentTooLarge, "PAYLOAD_TOO_LARGE", "The request body must be at most \(SandboxLimits.maximumBodyBytes) bytes")
            case .notFound:
                return render(.notFound, "NOT_FOUND", "No such resource")
            case .methodNotAllowed:
                return render(.methodNotAllowed, "METHOD_NOT_ALLOWED", "Method not allowed")
            case let status where status.code < 500:
                return render(status, "BAD_REQUEST", error.body ?? status.reasonPhrase)
            default:
                context.logger.error("HTTP error", metadata: ["error": "\(error)"])
                return render(.internalServerError, "INTERNAL_ERROR", "Internal error")
            }
        } catch {
            context.logger.error("unhandled error", metadata: ["error": "\(String(reflecting: error))"])
            return render(.internalServerError, "INTERNAL_ERROR", "Internal error")
        }
    }
}

/// Checks `X-Sandbox-Timestamp` / `X-Sandbox-Signature` on every request (docs/SANDBOX.md),
/// after reading the body (at most 64 KiB) the signature covers.
struct SignatureMiddleware: RouterMiddleware {
    typealias Context = SandboxRequestContext
    let secret: String
    let now: @Sendable () -> Int64

    static let timestampField = HTTPFields.Element.Name(SandboxSignature.timestampHeader)!
    static let signatureField = HTTPFields.Element.Name(SandboxSignature.signatureHeader)!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // The ACS's challenge page is opened by a cardholder's browser, which has no key.
        if ChallengePages.isBrowserPage(request.uri.path) && (request.method == .get || request.method == .post) {
            return try await next(request, context)
        }
        var request = request
        let body = try await request.collectBody(upTo: context.maxUploadSize)
        guard SandboxSignature.verify(secret: secret, timestampHeader: request.headers[Self.timestampField],
                                      signatureHeader: request.headers[Self.signatureField],
                                      method: request.method.rawValue, path: request.head.path ?? "/",
                                      body: body.readableBytesView, now: now()) else {
            throw SandboxHTTPError.unauthorized
        }
        return try await next(request, context)
    }
}

/// Applies a rail's fault settings to each API call before it does anything.
struct FaultMiddleware: RouterMiddleware {
    typealias Context = SandboxRequestContext
    let rail: Rail
    let runtime: SandboxRuntime

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let now = runtime.now()
        let admission = runtime.withWorld { $0.admit(rail, now: now) }
        switch admission {
        case .unavailable(let delay):
            await runtime.pause(milliseconds: delay)
            let message = "\(rail.rawValue) is unavailable"
            let detail: (String, JSON) = rail == .alphapay ? ("description", .string(message)) : ("message", .string(message))
            return jsonResponse(.object([("error", .object([("code", .string("UPSTREAM_UNAVAILABLE")), detail]))]),
                                status: .serviceUnavailable)
        case .proceed(let delay):
            await runtime.pause(milliseconds: delay)
            return try await next(request, context)
        }
    }
}

extension Request {
    /// The body the signature middleware already read.
    mutating func decode<T: Decodable>(_ type: T.Type, context: SandboxRequestContext) async throws -> T {
        let body = try await collectBody(upTo: context.maxUploadSize)
        return try RequestDecoding.decode(T.self, from: body)
    }
}

enum Validate {
    /// 1…64 of `A-Z a-z 0-9 . _ -`.
    static func identifier(_ value: String, field: String) throws(MalformedRequest) -> String {
        let ok = (1...SandboxLimits.maximumIdentifierLength).contains(value.utf8.count) && value.utf8.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: ".") || c == UInt8(ascii: "_")
                || c == UInt8(ascii: "-")
        }
        guard ok else {
            throw MalformedRequest(message: "\(field) must be 1 to \(SandboxLimits.maximumIdentifierLength) characters of A-Z, a-z, 0-9, '.', '_', '-'")
        }
        return value
    }

    static func text(_ value: String?, field: String) throws(MalformedRequest) -> String? {
        guard let value else { return nil }
        guard value.utf8.count <= SandboxLimits.maximumTextLength else {
            throw MalformedRequest(message: "\(field) must be at most \(SandboxLimits.maximumTextLength) bytes")
        }
        return value
    }

    /// An absolute http(s) URL; the signed path is the request target AsyncHTTPClient sends.
    static func callback(_ value: String?, field: String) throws(MalformedRequest) -> CallbackTarget? {
        guard let value else { return nil }
        guard value.utf8.count <= SandboxLimits.maximumURLLength, let url = URL(string: value),
              let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty else {
            throw MalformedRequest(message: "\(field) must be an absolute http or https URL")
        }
        var path = url.path.isEmpty ? "/" : (URLComponents(url: url, resolvingAgainstBaseURL: true)?.percentEncodedPath ?? url.path)
        if let query = url.query { path += "?" + query }
        return CallbackTarget(url: value, signedPath: path)
    }
}
