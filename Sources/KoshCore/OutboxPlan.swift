/// Who hears of a merchant's public events: its active webhook endpoints with what each
/// subscribes to, and its notification email. Read once per transaction by the store.
public struct OutboxRecipients: Sendable, Hashable {
    public struct Endpoint: Sendable, Hashable {
        public let id: String
        public let events: Set<WebhookEventName>
        public init(id: String, events: Set<WebhookEventName>) {
            self.id = id
            self.events = events
        }
    }

    public var endpoints: [Endpoint]
    public var merchantEmail: String?

    public init(endpoints: [Endpoint] = [], merchantEmail: String? = nil) {
        self.endpoints = endpoints
        self.merchantEmail = merchantEmail
    }
}

/// The rows one public event writes (the outbox, DESIGN.md §3.5): the event, one pending
/// delivery per subscribed endpoint, and the notifications it sends.
public struct OutboxPlan: Sendable, Hashable {
    public let event: OutboxEvent
    /// The endpoints that get a delivery, in the order they were given.
    public let deliveries: [String]
    public let notifications: [PlannedNotification]
}

/// What a public event sends to whom, from the typed entities it reports; storage only
/// writes the plan, and nothing re-reads the event's rendered body.
public enum OutboxPlanner {
    /// - Parameters:
    ///   - event: the event, its body already rendered.
    ///   - payment: the payment the event is about (every payment and refund event has one).
    ///   - refund: the refund, for refund events.
    public static func plan(_ event: OutboxEvent, payment: Payment?, refund: Refund?, recipients: OutboxRecipients) -> OutboxPlan {
        let deliveries = recipients.endpoints.filter { $0.events.contains(event.name) }.map(\.id)
        let notifications = payment.map {
            NotificationTemplates.plan(event.name, merchantID: event.merchantID, payment: $0, refund: refund,
                                       merchantEmail: recipients.merchantEmail)
        } ?? []
        return OutboxPlan(event: event, deliveries: deliveries, notifications: notifications)
    }
}
