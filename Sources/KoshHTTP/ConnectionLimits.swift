import KoshCore
import Metrics

/// What one client connection may hold of the server, and for how long. Unauthenticated
/// clients reach this code, so every wait has an end and the number of connections a cap.
public struct ConnectionLimits: Sendable {
    /// From the first byte of a request to the end of its head (`KOSH_HTTP_HEAD_TIMEOUT_MS`).
    /// A head not complete by then is answered 408 and the connection closed (slowloris).
    public var headTimeoutMillis: Int64 = 10_000
    /// From the end of the head to the end of the body (`KOSH_HTTP_BODY_TIMEOUT_MS`): a body
    /// that never arrives is answered 408.
    public var bodyTimeoutMillis: Int64 = 30_000
    /// A keep-alive connection with no request is closed after this (`KOSH_HTTP_IDLE_TIMEOUT_MS`).
    public var idleTimeoutMillis: Int64 = 60_000
    /// A client that stops taking a response (its unread bytes fill the server's buffer) is
    /// disconnected after this (`KOSH_HTTP_SEND_TIMEOUT_MS`).
    public var sendTimeoutMillis: Int64 = 30_000
    /// Open client connections at most (`KOSH_HTTP_MAX_CONNECTIONS`); `nil` takes the default
    /// below, which stays under the process's descriptor limit. The listener stops accepting
    /// at the cap; one wake-up of it accepts up to four connections (NIO's maxMessagesPerRead),
    /// so the count can pass the cap by three, which the descriptor reserve absorbs.
    public var maximumConnections: Int?
    /// Largest request body; a declared `Content-Length` above it is refused with 413 when the
    /// head arrives, without waiting for the body.
    public var maximumBodyBytes: Int = APILimits.maximumBodyBytes

    public init() {}

    /// The most connections that leave room, under the descriptor limit, for what the
    /// database, the rails' and webhooks' clients, the in-process sandbox and the runtime need
    /// (a quarter of the limit, at least 128). A process that runs out of descriptors does not
    /// just refuse connections: libdispatch's worker-pool monitor, which the Swift runtime uses
    /// on Linux, traps (SIGILL) when it cannot open /proc, so the cap must hold even when an
    /// operator asks for more.
    public static func safeMaximumConnections(descriptorLimit: Int) -> Int {
        max(16, descriptorLimit - max(128, descriptorLimit / 4))
    }

    /// The default cap: the safe maximum, and never more than 10,000.
    public static func defaultMaximumConnections(descriptorLimit: Int) -> Int {
        min(10_000, safeMaximumConnections(descriptorLimit: descriptorLimit))
    }

    /// The cap in force: what was configured (or the default), never above the safe maximum.
    public func effectiveMaximumConnections(descriptorLimit: Int) -> Int {
        min(maximumConnections ?? Self.defaultMaximumConnections(descriptorLimit: descriptorLimit),
            Self.safeMaximumConnections(descriptorLimit: descriptorLimit))
    }
}

/// What the guards count, for `/metrics` (created once, fixed dimensions).
enum ConnectionMetrics {
    static let open = Gauge(label: "kosh_http_open_connections")
    static let evicted = Counter(label: "kosh_http_connections_evicted_total")
    static let headTimeouts = Counter(label: "kosh_http_request_timeouts_total", dimensions: [("phase", "head")])
    static let bodyTimeouts = Counter(label: "kosh_http_request_timeouts_total", dimensions: [("phase", "body")])
    static let idleClosed = Counter(label: "kosh_http_idle_connections_closed_total")
    static let sendTimeouts = Counter(label: "kosh_http_request_timeouts_total", dimensions: [("phase", "send")])
    static let refusedTooLarge = Counter(label: "kosh_http_requests_refused_total", dimensions: [("reason", "payload_too_large")])
    static let refusedMalformed = Counter(label: "kosh_http_requests_refused_total", dimensions: [("reason", "malformed_request")])
}
