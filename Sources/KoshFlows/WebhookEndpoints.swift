import KoshCore
import Synchronization

/// A merchant's webhook endpoints, their deliveries and events (`/v1/webhooks`, `/v1/events`,
/// `/v1/notifications`, and `kosh merchant webhook …`): the registry, with every URL checked
/// against the destination policy before it is stored.
public struct WebhookFlows: Sendable {
    public let registry: any WebhookRegistry
    public let destinations: WebhookDestinationPolicy

    public init(registry: any WebhookRegistry, destinations: WebhookDestinationPolicy) {
        self.registry = registry
        self.destinations = destinations
    }

    public func createEndpoint(merchantID: String, url: String, events: [WebhookEventName], secret: String) async throws -> WebhookEndpoint {
        let checked = try await destinations.checked(url)  // last: it may look the host up
        return try await registry.createEndpoint(merchantID: merchantID, url: checked, events: events, secret: secret)
    }

    /// Writes the endpoint as changed (a new `url` checked first, a new `secret` when given); clears `failing`.
    public func updateEndpoint(_ endpoint: WebhookEndpoint, url: String?, secret: String?) async throws -> WebhookEndpoint {
        var endpoint = endpoint
        if let url { endpoint.url = try await destinations.checked(url) }  // last: it may look the host up
        try await registry.updateEndpoint(endpoint, secret: secret)
        endpoint.failing = false
        return endpoint
    }

    public func deleteEndpoint(_ endpoint: WebhookEndpoint) async throws {
        guard try await registry.deleteEndpoint(id: endpoint.id, merchantID: endpoint.merchantID) else { throw KoshError.notFound() }
    }

    public func endpoint(id: String, merchantID: String) async throws -> WebhookEndpoint {
        guard let endpoint = try await registry.endpoint(id: id, merchantID: merchantID) else { throw KoshError.notFound() }
        return endpoint
    }

    public func endpoints(merchantID: String, page: Page) async throws -> [WebhookEndpoint] {
        try await registry.endpoints(merchantID: merchantID, page: page)
    }

    public func deliveries(endpointID: String, merchantID: String, page: Page) async throws -> [WebhookDelivery] {
        try await registry.deliveries(endpointID: endpointID, merchantID: merchantID, page: page)
    }

    /// Queues the delivery again, due now.
    public func redeliver(deliveryID: String, merchantID: String) async throws -> WebhookDelivery {
        guard let delivery = try await registry.redeliver(deliveryID: deliveryID, merchantID: merchantID) else { throw KoshError.notFound() }
        return delivery
    }

    public func events(merchantID: String, page: Page) async throws -> [OutboxEvent] {
        try await registry.events(merchantID: merchantID, page: page)
    }

    public func event(id: String, merchantID: String) async throws -> OutboxEvent {
        guard let event = try await registry.event(id: id, merchantID: merchantID) else { throw KoshError.notFound() }
        return event
    }

    public func notifications(merchantID: String, page: Page) async throws -> [NotificationLogEntry] {
        try await registry.notifications(merchantID: merchantID, page: page)
    }
}

/// Where a merchant's webhooks may point (issue 11 §3): http(s) to a public host. A literal
/// host must be a public address and a name must not be a local one; a name must resolve, and
/// to public addresses only. `allowPrivate` (`KOSH_WEBHOOK_ALLOW_PRIVATE=1`, development only)
/// lifts the address and name checks and skips the lookup; the URL must still be well formed.
public struct WebhookDestinationPolicy: Sendable {
    public var allowPrivate: Bool
    public var resolver: any HostResolver
    /// A lookup slower than this counts as not resolving (the merchant's request waits for it).
    public var lookupTimeoutMillis: Int64

    public init(allowPrivate: Bool, resolver: any HostResolver, lookupTimeoutMillis: Int64 = 5_000) {
        self.allowPrivate = allowPrivate
        self.resolver = resolver
        self.lookupTimeoutMillis = lookupTimeoutMillis
    }

    /// The URL as given when it may be used; else a 400 on the `url` field, in Razorpay's shape.
    public func checked(_ text: String) async throws -> String {
        do {
            let url = try WebhookURL.parse(text)
            if allowPrivate { return text }
            if let refusal = url.hostRefusal { throw refusal }
            if case .name(let name) = url.host, let refusal = WebhookURL.judge(resolved: await addresses(of: name)) { throw refusal }
            return text
        } catch let problem as WebhookURL.Problem {
            throw KoshError.badRequest(problem.description, field: "url")
        }
    }

    /// The name's addresses, or none when the lookup fails or takes longer than
    /// `lookupTimeoutMillis` (a blocked lookup is left to finish on its own thread).
    public func addresses(of name: String) async -> [NetworkAddress] {
        let resolver = self.resolver, timeout = lookupTimeoutMillis
        return await withCheckedContinuation { (continuation: CheckedContinuation<[NetworkAddress], Never>) in
            let answer = FirstAnswer(continuation)
            let timer = Task {
                do { try await Task.sleep(for: .milliseconds(timeout)) } catch { return }  // cancelled: the lookup answered
                answer.resume([])
            }
            Task {
                let found = (try? await resolver.addresses(of: name)) ?? []
                answer.resume(found)
                timer.cancel()
            }
        }
    }
}

/// Resumes a continuation with whichever answer comes first; later ones are dropped.
final class FirstAnswer<Value: Sendable>: Sendable {
    let continuation: Mutex<CheckedContinuation<Value, Never>?>
    init(_ continuation: CheckedContinuation<Value, Never>) { self.continuation = Mutex(continuation) }
    func resume(_ value: Value) { continuation.withLock { $0.take() }?.resume(returning: value) }
}

