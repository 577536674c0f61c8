/// Webhooks (issue 4): the events merchants subscribe to, the outbox record a state change
/// writes in its own transaction, the delivery state machine and the registry port.

/// The events Kosh sends, named as Razorpay names them.
public enum WebhookEventName: String, Sendable, Hashable, CaseIterable {
    case paymentAuthorized = "payment.authorized"
    case paymentCaptured = "payment.captured"
    case paymentFailed = "payment.failed"
    case orderPaid = "order.paid"
    case refundCreated = "refund.created"
    case refundProcessed = "refund.processed"
    case refundFailed = "refund.failed"
    case qrCodeCreated = "qr_code.created"
    case qrCodeCredited = "qr_code.credited"
    case qrCodeClosed = "qr_code.closed"
}


/// One public event (`evt_…`), written in the transaction of the state change it reports.
public struct OutboxEvent: Sendable, Hashable {
    public let id: String
    public let merchantID: String
    public let name: WebhookEventName
    /// The exact webhook body (Razorpay's `{"entity":"event",…}`), serialised once.
    public let body: String
    /// Unix seconds.
    public let createdAt: Int64

    public init(id: String, merchantID: String, name: WebhookEventName, body: String, createdAt: Int64) {
        self.id = id
        self.merchantID = merchantID
        self.name = name
        self.body = body
        self.createdAt = createdAt
    }
}

/// When to try a failing delivery again: after the first attempt, wait `retryDelaysMillis[0]`,
/// then `[1]`, …; after the last retry fails the delivery is dead. Seed 003: 1 min, 5 min,
/// 30 min, 2 h, 6 h, 24 h.
public struct WebhookRetrySchedule: Sendable, Hashable {
    public var retryDelaysMillis: [Int64]
    public static let standard = WebhookRetrySchedule(retryDelaysMillis: [60_000, 300_000, 1_800_000, 7_200_000, 21_600_000, 86_400_000])
    public init(retryDelaysMillis: [Int64]) {
        precondition(!retryDelaysMillis.isEmpty && retryDelaysMillis.count <= 32 && retryDelaysMillis.allSatisfy { $0 >= 0 })
        self.retryDelaysMillis = retryDelaysMillis
    }
    /// Attempts a delivery gets in all (the first plus the retries).
    public var maximumAttempts: Int { retryDelaysMillis.count + 1 }
}

public enum WebhookDeliveryState: String, Sendable, Hashable {
    case pending, delivered, dead
}

/// A delivery as a plain value: every input returns what the shell must do.
public struct WebhookDeliveryMachine: Sendable, Hashable {
    public private(set) var state: WebhookDeliveryState
    /// Attempts since the delivery was (re)queued.
    public private(set) var attempts: Int

    public enum Action: Sendable, Hashable {
        case delivered
        case retry(atMillis: Int64)
        /// The last attempt failed: the delivery is dead and its endpoint is flagged failing.
        case dead
    }

    public struct TransitionError: Error, Sendable, Hashable, CustomStringConvertible {
        public let state: WebhookDeliveryState
        public var description: String { "A delivery that is \(state.rawValue) cannot be attempted" }
    }

    public init(state: WebhookDeliveryState = .pending, attempts: Int = 0) {
        self.state = state
        self.attempts = attempts
    }

    /// One POST finished (`success` = a 2xx answer).
    public mutating func attempted(success: Bool, nowMillis: Int64, schedule: WebhookRetrySchedule) throws(TransitionError) -> Action {
        guard state == .pending else { throw TransitionError(state: state) }
        attempts += 1
        if success {
            state = .delivered
            return .delivered
        }
        guard attempts < schedule.maximumAttempts else {
            state = .dead
            return .dead
        }
        return .retry(atMillis: nowMillis + schedule.retryDelaysMillis[attempts - 1])
    }

    /// The merchant asked for it again: pending, with a fresh schedule.
    public mutating func redeliver() {
        state = .pending
        attempts = 0
    }
}

public struct WebhookEndpoint: Sendable, Hashable {
    public var id: String
    public var merchantID: String
    public var url: String
    public var events: [WebhookEventName]
    public var active: Bool
    /// Set when a delivery to it died; cleared when the merchant updates it or a delivery succeeds.
    public var failing: Bool
    public var createdAt: Int64

    public init(id: String, merchantID: String, url: String, events: [WebhookEventName], active: Bool, failing: Bool, createdAt: Int64) {
        self.id = id
        self.merchantID = merchantID
        self.url = url
        self.events = events
        self.active = active
        self.failing = failing
        self.createdAt = createdAt
    }
}

public struct WebhookAttempt: Sendable, Hashable {
    public var at: Int64
    public var statusCode: Int64?
    public var latencyMillis: Int64
    public var response: String?
    public var error: String?
    public init(at: Int64, statusCode: Int64?, latencyMillis: Int64, response: String?, error: String?) {
        self.at = at
        self.statusCode = statusCode
        self.latencyMillis = latencyMillis
        self.response = response
        self.error = error
    }
}

public struct WebhookDelivery: Sendable, Hashable {
    public var id: String
    public var eventID: String
    public var endpointID: String
    public var event: String
    public var machine: WebhookDeliveryMachine
    public var nextAttemptAt: Int64?
    public var lastStatusCode: Int64?
    public var lastError: String?
    public var createdAt: Int64
    public var attemptLog: [WebhookAttempt]
    public init(id: String, eventID: String, endpointID: String, event: String, machine: WebhookDeliveryMachine, nextAttemptAt: Int64?,
                lastStatusCode: Int64?, lastError: String?, createdAt: Int64, attemptLog: [WebhookAttempt]) {
        self.id = id
        self.eventID = eventID
        self.endpointID = endpointID
        self.event = event
        self.machine = machine
        self.nextAttemptAt = nextAttemptAt
        self.lastStatusCode = lastStatusCode
        self.lastError = lastError
        self.createdAt = createdAt
        self.attemptLog = attemptLog
    }
}

/// Webhook endpoints, events and deliveries of merchants (the `/v1/webhooks` and `/v1/events` API).
/// Every call is scoped to one merchant: another merchant's ids are not found.
public protocol WebhookRegistry: Sendable {
    func createEndpoint(merchantID: String, url: String, events: [WebhookEventName], secret: String) async throws -> WebhookEndpoint
    func endpoints(merchantID: String, page: Page) async throws -> [WebhookEndpoint]
    func endpoint(id: String, merchantID: String) async throws -> WebhookEndpoint?
    /// Writes url, events and active (and the secret when given); clears `failing`.
    func updateEndpoint(_ endpoint: WebhookEndpoint, secret: String?) async throws
    /// Removes the endpoint; its pending deliveries die. False when there is no such endpoint.
    func deleteEndpoint(id: String, merchantID: String) async throws -> Bool
    func deliveries(endpointID: String, merchantID: String, page: Page) async throws -> [WebhookDelivery]
    /// Queues the delivery again, due now; nil when there is no such delivery.
    func redeliver(deliveryID: String, merchantID: String) async throws -> WebhookDelivery?
    func events(merchantID: String, page: Page) async throws -> [OutboxEvent]
    func event(id: String, merchantID: String) async throws -> OutboxEvent?
    /// The merchant's notification log (emails, SMS, push), newest first; recipients masked.
    func notifications(merchantID: String, page: Page) async throws -> [NotificationLogEntry]
}
