import AsyncHTTPClient
import Crypto
import Foundation
import KoshCore
import KoshFlows
import KoshHTTP
import KoshRails
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
    /// Lets webhooks reach loopback, private and link-local addresses and local names
    /// (`KOSH_WEBHOOK_ALLOW_PRIVATE=1`): for development against a receiver on the same
    /// machine only. Off, both the API and the dispatcher refuse them (issue 11 §3).
    public var allowPrivateDestinations = false
    /// How webhook host names are looked up, at create/update and before connecting.
    public var resolver: any HostResolver = SystemHostResolver()
    /// How long a checked lookup is trusted before a delivery looks the name up again.
    public var resolutionTTLMillis: Int64 = 60_000
    /// Pinned HTTP clients kept (one per host and checked address).
    public var pinnedClients = 64

    /// The API's side of the same rule.
    public var destinations: WebhookDestinationPolicy {
        WebhookDestinationPolicy(allowPrivate: allowPrivateDestinations, resolver: resolver)
    }

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

    /// Clients pinned to a checked address of a host name (only when private destinations are refused).
    let pins: PinnedClients
    /// Which resolved or literal addresses a delivery may connect to (tests widen it to reach loopback).
    let permits: @Sendable (NetworkAddress) -> Bool

    public convenience init(store: WebhookStore, settings: WebhookSettings, logger: Logger,
                            owner: String = "node-" + UUID().uuidString.prefix(8).lowercased()) {
        self.init(store: store, settings: settings, logger: logger, owner: owner, permits: { $0.isPublic })
    }

    init(store: WebhookStore, settings: WebhookSettings, logger: Logger, owner: String, permits: @escaping @Sendable (NetworkAddress) -> Bool) {
        self.store = store
        self.settings = settings
        self.logger = logger
        self.owner = owner
        self.permits = permits
        self.client = Self.makeClient(settings: settings, dnsOverride: [:])
        self.pins = PinnedClients(capacity: settings.pinnedClients, ttl: .milliseconds(settings.resolutionTTLMillis)) { overrides in
            Self.makeClient(settings: settings, dnsOverride: overrides)
        }
        self.recorder = BatchWriter { [store, owner, schedule = settings.schedule] outcomes in
            try await store.record(outcomes, owner: owner, schedule: schedule)
            return Array(repeating: (), count: outcomes.count)
        }
    }

    static func makeClient(settings: WebhookSettings, dnsOverride: [String: String]) -> HTTPClient {
        var config = HTTPClient.Configuration()
        config.timeout = .init(connect: .milliseconds(settings.timeoutMillis), read: .milliseconds(settings.timeoutMillis))
        config.redirectConfiguration = .disallow
        config.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, settings.concurrency))
        // A refused connection is a failed attempt at once (the retry schedule is ours), not
        // a connect loop until the timeout.
        config.connectionPool.retryConnectionEstablishment = false
        // The host connects to this address, whatever DNS says by then; TLS still checks the name.
        config.dnsOverride = dnsOverride
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
    }

    public func run() async throws {
        await ClaimLoop.run(concurrency: settings.concurrency, pollIntervalMillis: settings.pollIntervalMillis, logger: logger, what: "webhook",
                            claim: { [self] free in try await store.claimDue(owner: owner, leaseMillis: settings.leaseMillis, limit: free) },
                            handle: { [self] delivery in await deliver(delivery) })
        try? await shutdown()
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

    public func shutdown() async throws {
        await pins.shutdown()
        try await client.shutdown()
    }

    public static func signature(body: String, secret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(body.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    /// Where one delivery goes.
    enum Route {
        /// Not sent; the reason goes to the attempt log.
        case refused(String)
        /// Sent with this client; a pinned one is released after the attempt.
        case send(HTTPClient, pinned: PinnedClients.Lease?)
    }

    /// Checks the destination again at send time (issue 11 §3): the URL was checked when it was
    /// saved, but DNS may answer differently now (rebinding), the row may predate the check, or
    /// it may have been saved while private destinations were allowed. A host name is looked up
    /// (at most once per `resolutionTTLMillis`), every address must be permitted, and the
    /// connection goes to the checked address only. With `allowPrivateDestinations` there is
    /// nothing to check: the one shared client sends everything.
    func route(_ text: String) async -> Route {
        if settings.allowPrivateDestinations { return .send(client, pinned: nil) }
        let url: WebhookURL
        do { url = try WebhookURL.parse(text) } catch { return .refused("not a valid webhook URL") }
        switch url.host {
        case .address(let address):
            guard permits(address) else { return .refused("private address") }
            // A literal the HTTP client reads as this address connects there; one it would hand
            // to the resolver (`0x5db8d822`, `1.2.3.4.`) is pinned to what it means.
            if Self.clientAddress(url.hostText) == address { return .send(client, pinned: nil) }
            return pins.pin(host: url.hostText, address: address).map { .send($0.client, pinned: $0) } ?? .refused("dispatcher stopped")
        case .name(let name):
            guard !WebhookURL.isLocalName(name) else { return .refused("local host name") }
            if let lease = pins.fresh(host: url.hostText) { return .send(lease.client, pinned: lease) }
            var lookup = settings.destinations
            lookup.lookupTimeoutMillis = settings.timeoutMillis
            let addresses = await lookup.addresses(of: url.hostText)
            guard let first = addresses.first else { return .refused("host does not resolve") }
            guard addresses.allSatisfy(permits) else { return .refused("private address") }
            return pins.pin(host: url.hostText, address: first).map { .send($0.client, pinned: $0) } ?? .refused("dispatcher stopped")
        }
    }

    /// The address AsyncHTTPClient connects to for a literal host without a lookup (it accepts
    /// what `inet_pton` does); nil when it would look the text up instead.
    static func clientAddress(_ hostText: String) -> NetworkAddress? {
        guard let text = (try? SocketAddress(ipAddress: hostText, port: 0))?.ipAddress else { return nil }
        if let v4 = NetworkAddress.parseIPv4(Substring(text)), !text.contains(":") { return .v4(v4) }
        return NetworkAddress.parseIPv6(Substring(text)).map { .v6($0) }
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
        let limit = settings.responseSnippetBytes
        let timeout = settings.timeoutMillis
        var status: Int64?
        var snippet: String?
        var failure: String?
        switch await route(delivery.url) {
        case .refused(let reason):
            // Never the receiver's answer: nothing was sent.
            failure = "destination refused: \(reason)"
            logger.notice("webhook destination refused", metadata: ["webhook.delivery_id": "\(delivery.id)", "reason": "\(reason)"])
        case .send(let client, let pinned):
            defer { if let pinned { pins.release(pinned) } }
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
