import AsyncHTTPClient
import Crypto
import Foundation
import KoshCore
import KoshJSON
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Signs and checks messages between Kosh and the rails (docs/SANDBOX.md):
/// hex HMAC-SHA256 over "timestamp\nMETHOD\npath\nbody" with the shared secret.
public struct RailSigner: Sendable {
    public static let timestampHeader = "X-Sandbox-Timestamp"
    public static let signatureHeader = "X-Sandbox-Signature"
    /// Messages older or newer than this are refused (replay protection).
    public static let maximumSkewMillis: Int64 = 300_000

    let key: SymmetricKey

    public init(secret: String) {
        self.key = SymmetricKey(data: Data(secret.utf8))
    }

    public func signature(timestamp: Int64, method: String, path: String, body: [UInt8]) -> String {
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Array("\(timestamp)\n\(method)\n\(path)\n".utf8))
        mac.update(data: body)
        return mac.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// True when `signature` is the signature of the message and `timestamp` is recent.
    public func verify(signature: String?, timestamp: String?, method: String, path: String, body: [UInt8], now: Int64) -> Bool {
        // Digits only, at most 15 of them, so the skew arithmetic below cannot overflow.
        guard let signature, let timestamp, (1...15).contains(timestamp.utf8.count),
              timestamp.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let millis = Int64(timestamp), millis >= now - Self.maximumSkewMillis, millis <= now + Self.maximumSkewMillis,
              let given = Self.bytes(hex: signature) else { return false }
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Array("\(millis)\n\(method)\n\(path)\n".utf8))
        mac.update(data: body)
        // Constant-time comparison (swift-crypto's MAC equality).
        return mac.finalize() == given
    }

    /// A request to the rails at `baseURL + path`, signed now.
    public func request(baseURL: String, method: HTTPMethod, path: String, body: String?, now: Int64 = SystemClock().nowMillis()) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        let bytes = Array((body ?? "").utf8)
        request.headers.add(name: Self.timestampHeader, value: String(now))
        request.headers.add(name: Self.signatureHeader, value: signature(timestamp: now, method: method.rawValue, path: path, body: bytes))
        if body != nil {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: bytes))
        }
        return request
    }

    static func bytes(hex: String) -> [UInt8]? {
        let chars = Array(hex.utf8)
        guard chars.count == 64 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        var i = 0
        while i < chars.count {
            guard let hi = Hex.nibble(chars[i]), let lo = Hex.nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

/// Where the rails are and how long to wait for them.
public struct UpstreamConfiguration: Sendable {
    /// Base URL of the rails (the sandbox), e.g. http://127.0.0.1:9090
    public var baseURL: String
    /// Base URL the rails call back, e.g. http://127.0.0.1:8080 (Kosh's own address).
    public var callbackBaseURL: String
    public var secret: String
    /// Per-call timeouts (ms): creating a payment, asking its status, refunding.
    public var initiateTimeoutMillis: Int64
    public var statusTimeoutMillis: Int64
    public var refundTimeoutMillis: Int64
    /// Extra tries of an idempotent call that failed fast (refused connection, 503).
    public var retries: Int

    public init(baseURL: String, callbackBaseURL: String, secret: String, initiateTimeoutMillis: Int64 = 3_000,
                statusTimeoutMillis: Int64 = 2_000, refundTimeoutMillis: Int64 = 5_000, retries: Int = 2) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.callbackBaseURL = callbackBaseURL.hasSuffix("/") ? String(callbackBaseURL.dropLast()) : callbackBaseURL
        self.secret = secret
        self.initiateTimeoutMillis = initiateTimeoutMillis
        self.statusTimeoutMillis = statusTimeoutMillis
        self.refundTimeoutMillis = refundTimeoutMillis
        self.retries = retries
    }
}

/// Why a call to an upstream did not give an answer.
public enum UpstreamError: Error, Sendable, CustomStringConvertible {
    /// The call surely did not reach the upstream, or it refused before doing any work
    /// (refused connection, 503): safe to try elsewhere.
    case unavailable(String)
    /// No answer: the upstream may or may not have acted.
    case noAnswer(String)
    /// An answer Kosh does not understand.
    case badResponse(String)

    public var description: String {
        switch self {
        case .unavailable(let s): "upstream unavailable: \(s)"
        case .noAnswer(let s): "no answer from upstream: \(s)"
        case .badResponse(let s): "bad response from upstream: \(s)"
        }
    }
}

/// One HTTP client to the rails, shared by all connectors: signs requests, enforces
/// timeouts and bounded bodies, retries idempotent calls that failed fast.
public final class UpstreamHTTP: Sendable {
    public let configuration: UpstreamConfiguration
    let client: HTTPClient
    let signer: RailSigner
    let clock: any KoshClock
    let callbackBase: Mutex<String>
    /// Told the outcome of every try against a connector: `failure` when it timed out,
    /// could not connect, or answered 5xx. Circuit breakers listen here.
    let observer: Mutex<(@Sendable (_ connector: String, _ failure: Bool) -> Void)?> = Mutex(nil)
    /// Largest response body read from an upstream.
    static let maximumBody = 256 * 1024

    public init(configuration: UpstreamConfiguration, clock: any KoshClock = SystemClock()) {
        self.configuration = configuration
        self.signer = RailSigner(secret: configuration.secret)
        self.clock = clock
        self.callbackBase = Mutex(configuration.callbackBaseURL)
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .seconds(2), read: .seconds(30))
        config.redirectConfiguration = .disallow
        config.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        // A refused connection fails at once (unavailable: fail over), instead of AHC retrying
        // it until the connect timeout; our own retries cover calls the upstream dedupes.
        config.connectionPool.retryConnectionEstablishment = false
        self.client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
    }

    public func shutdown() async throws {
        try await client.shutdown()
    }

    public func callbackURL(for connector: String) -> String {
        "\(callbackBase.withLock { $0 })/v1/rails/callbacks/\(connector)"
    }

    /// Where a rail sends payer-initiated credit notifications (QR codes) for `connector`.
    public func creditURL(for connector: String) -> String {
        "\(callbackBase.withLock { $0 })/v1/rails/credits/\(connector)"
    }

    public func observe(_ body: @escaping @Sendable (_ connector: String, _ failure: Bool) -> Void) {
        observer.withLock { $0 = body }
    }

    func report(_ connector: String, failure: Bool) {
        observer.withLock { $0 }?(connector, failure)
    }

    /// Sets Kosh's own address for callbacks once it is known (a server on port 0).
    public func setCallbackBaseURL(_ url: String) {
        callbackBase.withLock { $0 = url.hasSuffix("/") ? String(url.dropLast()) : url }
    }

    /// Sends one request; answers (status, parsed JSON body). `idempotent` calls are tried
    /// again (up to `retries` times) when they failed fast.
    /// `breaker`: whether this call's tries count in the connector's circuit breaker (payment
    /// creation only: status checks and refunds must go on whatever the breaker says, and
    /// must not close a half-open breaker on the strength of a GET).
    func call(_ connector: String, _ method: HTTPMethod, _ path: String, body: JSON? = nil, timeoutMillis: Int64,
              idempotent: Bool, breaker: Bool = false) async throws -> (Int, JSON) {
        var attempt = 0
        while true {
            do {
                let (status, json): (Int, JSON)
                do {
                    (status, json) = try await once(method, path, body: body, timeoutMillis: timeoutMillis)
                } catch {
                    if breaker { report(connector, failure: true) }
                    throw error
                }
                if breaker { report(connector, failure: status >= 500) }
                if status == 503 { throw UpstreamError.unavailable("HTTP 503 from \(path)") }
                return (status, json)
            } catch let error as UpstreamError {
                guard case .unavailable = error, idempotent, attempt < configuration.retries else { throw error }
                attempt += 1
                try await Task.sleep(for: .milliseconds(50 * attempt * attempt))
            }
        }
    }

    func once(_ method: HTTPMethod, _ path: String, body: JSON?, timeoutMillis: Int64) async throws -> (Int, JSON) {
        let request = signer.request(baseURL: configuration.baseURL, method: method, path: path, body: body?.serialized(), now: clock.nowMillis())
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .milliseconds(timeoutMillis))
        } catch {
            throw Self.classify(error)
        }
        let buffer: ByteBuffer
        do {
            buffer = try await response.body.collect(upTo: Self.maximumBody)
        } catch {
            throw UpstreamError.noAnswer("reading the response of \(path): \(error)")
        }
        let status = Int(response.status.code)
        guard buffer.readableBytes > 0 else { return (status, .null) }
        do {
            return (status, try JSON.parse(buffer.readableBytesView))
        } catch {
            if status == 503 { return (status, .null) }
            throw UpstreamError.badResponse("HTTP \(status) with a body that is not JSON from \(path)")
        }
    }

    /// A failure to connect means the request never left; anything later may have reached it.
    static func classify(_ error: any Error) -> UpstreamError {
        if let error = error as? HTTPClientError, error == .connectTimeout {
            return .unavailable("connect timeout")
        }
        if error is NIOConnectionError { return .unavailable("cannot connect: \(error)") }
        if let error = error as? IOError, error.errnoCode == ECONNREFUSED { return .unavailable("connection refused") }
        if let error = error as? ChannelError, case .connectTimeout = error { return .unavailable("connect timeout") }
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") { return .unavailable("connection refused") }
        return .noAnswer(text)
    }
}

extension JSON {
    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var intValue: Int64? {
        if case .int(let i) = self { return i }
        return nil
    }

    static func obj(_ pairs: [(String, JSON?)]) -> JSON {
        .object(pairs.compactMap { key, value in value.map { (key, $0) } })
    }
}
