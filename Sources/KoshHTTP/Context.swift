import Hummingbird
import NIOCore
import NIOHTTP1
import KoshCore
import KoshJSON
import Logging
import Synchronization

public struct KoshRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `BasicAuthMiddleware` for routes under `/v1`.
    public var merchant: Merchant?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.merchant = nil
    }

    /// Request bodies over 1 MiB are refused with 413.
    public var maxUploadSize: Int { APILimits.maximumBodyBytes }

}

/// The context of a route behind `BasicAuthMiddleware`: the merchant is always there.
public struct MerchantContext: ChildRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let merchant: Merchant

    public init(context: KoshRequestContext) throws {
        guard let merchant = context.merchant else { throw KoshError.authenticationFailed }
        self.coreContext = context.coreContext
        self.merchant = merchant
    }

    /// Request bodies over 1 MiB are refused with 413.
    public var maxUploadSize: Int { APILimits.maximumBodyBytes }
}

public enum APILimits {
    public static let maximumBodyBytes = 1 << 20
    public static let maximumReceiptLength = 40
    public static let maximumDescriptionLength = 255
    public static let maximumEmailLength = 254
    public static let maximumContactLength = 20
    public static let maximumVPALength = 255
}

/// Renders every error in Razorpay's shape. Anything not a `KoshError` or an HTTP error is
/// a bug: it is logged and answered with a 500 that reveals nothing.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = KoshRequestContext
    /// The routes, to tell "no such path" (404) from "not with this method" (405 with `Allow`).
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as KoshError {
            return ErrorRendering.response(error)
        } catch let error as ConcurrentModificationError where error.isConcurrentModification {
            context.logger.notice("concurrent modification", metadata: ["error": "\(error)"])
            return ErrorRendering.response(KoshError(.conflict, "The resource was modified by a concurrent request; retry the request",
                                                     source: "NA", step: "NA", reason: "concurrent_modification"))
        } catch is HTTPParserError {
            // Malformed framing inside the body (a chunk size `zz`, a body cut short): the client's mistake.
            return ErrorRendering.response(KoshError(.badRequest, "The request body is not valid HTTP/1.1 framing.", source: "NA", step: "NA",
                                                     reason: "malformed_request"))
        } catch is RequestBodyTimeout {
            var response = ErrorRendering.response(KoshError(.requestTimeout, "The request body was not received in time.", source: "NA",
                                                             step: "NA", reason: "request_timeout"))
            response.headers[.connection] = "close"
            return response
        } catch is NIOTooManyBytesError {
            return ErrorRendering.response(KoshError(.payloadTooLarge, "The request body must be at most \(APILimits.maximumBodyBytes) bytes",
                                                     source: "NA", step: "NA", reason: "payload_too_large"))
        } catch let error as HTTPError {
            switch error.status {
            case .contentTooLarge:
                return ErrorRendering.response(KoshError(.payloadTooLarge, "The request body must be at most \(APILimits.maximumBodyBytes) bytes",
                                                         source: "NA", step: "NA", reason: "payload_too_large"))
            case .notFound:
                let allowed = routes.methods(for: request.uri.path)
                if !allowed.isEmpty {
                    var response = ErrorRendering.response(KoshError(.badRequest, "The requested method is not allowed for this URL.", source: "NA",
                                                                     step: "NA", reason: "NA"), status: .methodNotAllowed)
                    response.headers[.allow] = allowed.joined(separator: ", ")
                    return response
                }
                return ErrorRendering.response(KoshError(.badRequest, "The requested URL was not found on the server.", source: "NA",
                                                         step: "NA", reason: "NA"), status: .notFound)
            case .methodNotAllowed:
                return ErrorRendering.response(KoshError(.badRequest, "The requested method is not allowed for this URL.", source: "NA",
                                                         step: "NA", reason: "NA"), status: .methodNotAllowed)
            default:
                if error.status.code < 500 {
                    return ErrorRendering.response(KoshError(.badRequest, error.body ?? error.status.reasonPhrase, source: "NA", step: "NA",
                                                             reason: "NA"), status: error.status)
                }
                context.logger.error("HTTP error", metadata: ["error": "\(error)"])
                return ErrorRendering.response(KoshError(.serverError, "We are facing some trouble completing your request at the moment. Please try again shortly.",
                                                         source: "NA", step: "NA", reason: "NA"))
            }
        } catch {
            context.logger.error("Unhandled error", metadata: ["error": "\(String(reflecting: error))"])
            return ErrorRendering.response(KoshError(.serverError, "We are facing some trouble completing your request at the moment. Please try again shortly.",
                                                     source: "NA", step: "NA", reason: "NA"))
        }
    }
}

/// Which methods each route path answers, filled once the router is built.
final class RouteTable: Sendable {
    private let routes = Mutex<[(components: [Substring], methods: [String])]>([])

    func load(_ descriptions: [(path: String, method: String)]) {
        var byPath: [String: [String]] = [:]
        var order: [String] = []
        for (path, method) in descriptions {
            if byPath[path] == nil { order.append(path) }
            byPath[path, default: []].append(method)
        }
        let table = order.map { path in
            (components: path.split(separator: "/"), methods: Array(Set(byPath[path]! + (byPath[path]!.contains("GET") ? ["HEAD"] : []))).sorted())
        }
        routes.withLock { $0 = table }
    }

    /// Methods of the first route whose pattern matches `path` (`:name` matches one segment).
    func methods(for path: String) -> [String] {
        let segments = path.split(separator: "/")
        guard segments.count <= 16 else { return [] }
        return routes.withLock { routes in
            for route in routes where route.components.count == segments.count {
                if zip(route.components, segments).allSatisfy({ $0.hasPrefix(":") || $0 == "*" || $0 == $1 }) { return route.methods }
            }
            return []
        }
    }
}

enum ErrorRendering {
    static func json(_ error: KoshError) -> JSON {
        let metadata = JSON.object(error.metadata.sorted(by: { $0.key < $1.key }).map { ($0.key, .string($0.value)) })
        return .object([("error", .object([
            ("code", .string(error.code.razorpayCode)),
            ("description", .string(error.message)),
            ("source", .string(error.source)),
            ("step", .string(error.step)),
            ("reason", .string(error.reason)),
            ("field", error.field.map(JSON.string) ?? .null),
            ("metadata", metadata),
        ]))])
    }

    static func response(_ error: KoshError, status: HTTPResponse.Status? = nil) -> Response {
        var response = jsonResponse(json(error), status: status ?? HTTPResponse.Status(code: error.code.httpStatus))
        if let seconds = error.retryAfterSeconds { response.headers[.retryAfter] = String(seconds) }
        return response
    }
}

func jsonResponse(_ json: JSON, status: HTTPResponse.Status = .ok) -> Response {
    jsonResponse(body: json.serialized(), status: status)
}

func jsonResponse(body: String, status: HTTPResponse.Status) -> Response {
    Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
             body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
}

/// HTTP Basic auth with `key_id:key_secret`, as Razorpay's API.
struct BasicAuthMiddleware: RouterMiddleware {
    typealias Context = KoshRequestContext
    let authenticator: any MerchantAuthenticator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization], header.count <= 1024 else { throw KoshError.authenticationFailed }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic",
              let decoded = Base64.decode(String(parts[1]).trimmingCharacters(in: " ")),
              let colon = decoded.firstIndex(of: ":") else {
            throw KoshError.authenticationFailed
        }
        let keyID = String(decoded[..<colon])
        let secret = String(decoded[decoded.index(after: colon)...])
        guard let merchant = try await authenticator.authenticate(keyID: keyID, secret: secret) else {
            throw KoshError.authenticationFailed
        }
        var context = context
        context.merchant = merchant
        context.logger[metadataKey: "merchant.id"] = .string(merchant.id.rawValue)
        return try await next(request, context)
    }
}

enum Base64 {
    /// Value of each byte in the alphabet; 0xFF for bytes outside it. Built once.
    static let table: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    static func decode(_ text: String) -> String? {
        let table = Self.table
        var bits: UInt32 = 0
        var count = 0
        var out: [UInt8] = []
        for c in text.utf8 {
            if c == UInt8(ascii: "=") { break }
            let v = table[Int(c)]
            guard v != 0xFF else { return nil }
            bits = (bits << 6) | UInt32(v)
            count += 6
            if count >= 8 {
                count -= 8
                out.append(UInt8((bits >> UInt32(count)) & 0xFF))
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
