import AsyncHTTPClient
import Crypto
import Foundation
import KoshCore
import KoshStorage
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

public struct WebhookSettings: Sendable {
    /// Retries after the first attempt (seed 003: 1 min … 24 h). `KOSH_WEBHOOK_RETRY_SCHEDULE_MS`.
    public var schedule: WebhookRetrySchedule = .standard
    /// How often the dispatcher looks for due deliveries.
    public var pollIntervalMillis: Int64 = 250
    /// One POST, from connect to the last byte read.
    public var timeoutMillis: Int64 = 5_000
    /// How long a claim holds a delivery; a node that dies loses it after this. Longer than the timeout.
    public var leaseMillis: Int64 = 30_000
    /// Deliveries sent at once by one node (so one hanging receiver cannot stall the others).
    public var concurrency = 32
    /// Bytes of the receiver's answer kept in the attempt log.
    public var responseSnippetBytes = 1_024

    public init() {}
}

/// Sends the outbox's webhook deliveries (DESIGN.md §3.5): claims due ones with a lease,
/// POSTs them signed, logs every attempt and schedules retries. At least once: a delivery is
/// marked delivered only after a 2xx, so a crash before that sends it again after the lease.
public final class WebhookDispatcher: Service, Sendable {
    let store: WebhookStore
    let settings: WebhookSettings
    let logger: Logger
    let client: HTTPClient
    let recorder: BatchWriter<WebhookOutcome, Void>
    /// Names this dispatcher's leases (one per process).
    public let owner: String

    public init(store: WebhookStore, settings: WebhookSettings, logger: Logger, owner: String = "node-" + UUID().uuidString.prefix(8).lowercased()) {
        self.store = store
        self.settings = settings
        self.logger = logger
        self.owner = owner
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .milliseconds(settings.timeoutMillis), read: .milliseconds(settings.timeoutMillis))
        config.redirectConfiguration = .disallow
        config.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, settings.concurrency))
        // A refused connection is a failed attempt at once (the retry schedule is ours), not
        // a connect loop until the timeout.
        config.connectionPool.retryConnectionEstablishment = false
        self.client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
        self.recorder = BatchWriter { [store, owner, schedule = settings.schedule] outcomes in
            try await store.record(outcomes, owner: owner, schedule: schedule)
            return Array(repeating: (), count: outcomes.count)
        }
    }

    public func run() async throws {
        await ClaimLoop.run(concurrency: settings.concurrency, pollIntervalMillis: settings.pollIntervalMillis, logger: logger, what: "webhook",
                            claim: { [self] free in try await store.claimDue(owner: owner, leaseMillis: settings.leaseMillis, limit: free) },
                            handle: { [self] delivery in await deliver(delivery) })
        try? await client.shutdown()
    }

    /// Claims what is due now and sends it, all at once; returns how many were sent (tests).
    @discardableResult
    public func runOnce() async throws -> Int {
        let claimed = try await store.claimDue(owner: owner, leaseMillis: settings.leaseMillis, limit: settings.concurrency)
        await withDiscardingTaskGroup { group in
            for delivery in claimed { group.addTask { await self.deliver(delivery) } }
        }
        return claimed.count
    }

    public func shutdown() async throws { try await client.shutdown() }

    public static func signature(body: String, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(body.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    struct TimedOut: Error, CustomStringConvertible {
        let millis: Int64
        var description: String { "no answer within \(millis) ms" }
    }

    func deliver(_ delivery: ClaimedDelivery) async {
        let startedAt = store.clock.nowMillis()
        let started = ContinuousClock.now
        var request = HTTPClientRequest(url: delivery.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Kosh-Webhooks/1")
        request.headers.add(name: "X-Razorpay-Event-Id", value: delivery.eventID)
        request.headers.add(name: "X-Razorpay-Signature", value: Self.signature(body: delivery.body, secret: delivery.secret))
        request.body = .bytes(ByteBuffer(string: delivery.body))
        let signed = request
        let client = self.client
        let limit = settings.responseSnippetBytes
        let timeout = settings.timeoutMillis
        var status: Int64?
        var snippet: String?
        var failure: String?
        do {
            let (code, bytes) = try await withThrowingTaskGroup(of: (Int64, [UInt8]).self) { group in
                group.addTask {
                    let response = try await client.execute(signed, timeout: .milliseconds(timeout))
                    var bytes: [UInt8] = []
                    for try await chunk in response.body {
                        bytes += chunk.readableBytesView.prefix(limit - bytes.count)
                        if bytes.count >= limit { break }
                    }
                    return (Int64(response.status.code), bytes)
                }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(timeout))
                    throw TimedOut(millis: timeout)
                }
                defer { group.cancelAll() }
                return try await group.next()!
            }
            status = code
            var text = String(decoding: bytes, as: UTF8.self)
            while text.utf8.count > limit { text.removeLast() }
            snippet = text
        } catch {
            failure = String("\(error)".prefix(512))
        }
        let latency = started.duration(to: .now)
        let millis = latency.components.seconds * 1000 + latency.components.attoseconds / 1_000_000_000_000_000
        let success = status.map { (200...299).contains($0) } ?? false
        let attempt = WebhookAttempt(at: startedAt, statusCode: status, latencyMillis: millis, response: snippet,
                                     error: failure ?? (success ? nil : "HTTP \(status ?? 0)"))
        do {
            try await recorder.submit(WebhookOutcome(delivery: delivery, attempt: attempt, success: success))
        } catch {
            // The lease runs out and the delivery is sent again: at least once.
            logger.error("could not record a webhook attempt", metadata: ["webhook.delivery_id": "\(delivery.id)", "error": "\(error)"])
        }
        logger.debug("webhook attempt", metadata: ["webhook.delivery_id": "\(delivery.id)", "webhook.event_id": "\(delivery.eventID)",
                                                   "http.status": "\(status.map { "\($0)" } ?? "-")", "latency_ms": "\(millis)"])
    }
}
