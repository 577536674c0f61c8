/// A domain error that the HTTP layer renders as Razorpay's error body:
/// `{"error": {"code", "description", "source", "step", "reason", "field", "metadata"}}`.
///
/// `Code` wraps a private enum so that new codes can be added without breaking callers.
public struct KoshError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        enum Base: String, Sendable, Hashable {
            case badRequest = "BAD_REQUEST_ERROR"
            case unauthorized = "UNAUTHORIZED"
            case notFound = "NOT_FOUND"
            case conflict = "CONFLICT"
            case payloadTooLarge = "PAYLOAD_TOO_LARGE"
            case requestTimeout = "REQUEST_TIMEOUT"
            case unsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
            case gatewayError = "GATEWAY_ERROR"
            case serverError = "SERVER_ERROR"
        }
        let base: Base
        public static let badRequest = Code(base: .badRequest)
        public static let unauthorized = Code(base: .unauthorized)
        public static let notFound = Code(base: .notFound)
        public static let conflict = Code(base: .conflict)
        public static let payloadTooLarge = Code(base: .payloadTooLarge)
        public static let requestTimeout = Code(base: .requestTimeout)
        public static let unsupportedMediaType = Code(base: .unsupportedMediaType)
        public static let gatewayError = Code(base: .gatewayError)
        public static let serverError = Code(base: .serverError)

        /// The `code` string Razorpay uses in the error body.
        public var razorpayCode: String {
            switch base {
            case .badRequest, .unauthorized, .notFound, .conflict, .payloadTooLarge, .requestTimeout, .unsupportedMediaType: "BAD_REQUEST_ERROR"
            case .gatewayError: "GATEWAY_ERROR"
            case .serverError: "SERVER_ERROR"
            }
        }

        /// HTTP status the code maps to.
        public var httpStatus: Int {
            switch base {
            case .badRequest: 400
            case .unauthorized: 401
            case .notFound: 400  // Razorpay answers 400 "The id provided does not exist"
            case .conflict: 409
            case .payloadTooLarge: 413
            case .requestTimeout: 408
            case .unsupportedMediaType: 415
            case .gatewayError: 502
            case .serverError: 500
            }
        }

        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    public var field: String?
    public var source: String
    public var step: String
    public var reason: String
    public var metadata: [String: String]
    /// When the client may retry (rendered as `Retry-After`), for errors that pass.
    public var retryAfterSeconds: Int?

    public init(
        _ code: Code, _ message: String, field: String? = nil, source: String = "business",
        step: String = "payment_initiation", reason: String = "input_validation_failed",
        metadata: [String: String] = [:], retryAfterSeconds: Int? = nil
    ) {
        self.retryAfterSeconds = retryAfterSeconds
        self.code = code
        self.message = message
        self.field = field
        self.source = source
        self.step = step
        self.reason = reason
        self.metadata = metadata
    }

    public var description: String { "\(code): \(message)" }

    public static func badRequest(_ message: String, field: String? = nil, reason: String = "input_validation_failed") -> KoshError {
        KoshError(.badRequest, message, field: field, reason: reason)
    }

    public static func notFound(_ message: String = "The id provided does not exist", field: String? = "id") -> KoshError {
        KoshError(.notFound, message, field: field, reason: "resource_not_found")
    }

    public static let authenticationFailed = KoshError(
        .unauthorized, "Authentication failed", field: nil, source: "NA", step: "NA", reason: "authentication_failed")
}

/// An error from an adapter meaning "someone else changed this at the same time": the HTTP
/// layer answers 409 so the client can retry, instead of a 500.
public protocol ConcurrentModificationError: Error {
    var isConcurrentModification: Bool { get }
}
