/// Customer and merchant notifications (issue 4): what an outbox event sends to whom, over
/// which channel, with which template. Pure: the storage writes the plan in the event's
/// transaction, a dispatcher sends it (retries follow `WebhookDeliveryMachine`).

public enum NotificationChannel: String, Sendable, Hashable, CaseIterable {
    case email, sms, push
}

public enum NotificationAudience: String, Sendable, Hashable {
    case customer, merchant
}

/// Plain text with `{{name}}` placeholders; an unknown placeholder renders empty.
public struct NotificationTemplate: Sendable, Hashable {
    public let name: String
    public let subject: String
    public let body: String

    public init(name: String, subject: String, body: String) {
        self.name = name
        self.subject = subject
        self.body = body
    }

    public static func render(_ text: String, _ values: [String: String]) -> String {
        // A scan over the UTF-8 bytes ("{" and "}" are ASCII, so no character is split).
        let bytes = Array(text.utf8)
        let open = UInt8(ascii: "{"), close = UInt8(ascii: "}"), space = UInt8(ascii: " ")
        var out = ""
        out.reserveCapacity(bytes.count + 64)
        var i = 0, copied = 0
        while i + 1 < bytes.count {
            guard bytes[i] == open, bytes[i + 1] == open else {
                i += 1
                continue
            }
            var j = i + 2
            while j + 1 < bytes.count, !(bytes[j] == close && bytes[j + 1] == close) { j += 1 }
            guard j + 1 < bytes.count else { break }  // no closing braces: the rest as it is
            out += String(decoding: bytes[copied..<i], as: UTF8.self)
            out += values[String(decoding: bytes[(i + 2)..<j].filter { $0 != space }, as: UTF8.self)] ?? ""
            i = j + 2
            copied = i
        }
        out += String(decoding: bytes[copied...], as: UTF8.self)
        return out
    }
}

/// One message to send, as written to the notification log.
public struct PlannedNotification: Sendable, Hashable {
    public let channel: NotificationChannel
    public let audience: NotificationAudience
    /// The full address (email, phone number, push user); logs show `Masking.recipient` of it.
    public let recipient: String
    public let template: String
    public let subject: String
    public let body: String
}

/// One row of the notification log, as listed (the recipient masked).
public struct NotificationLogEntry: Sendable, Hashable {
    public let id: String
    public let eventID: String
    public let channel: NotificationChannel
    public let audience: NotificationAudience
    public let recipientMasked: String
    public let template: String
    public let subject: String
    public let status: WebhookDeliveryState
    public let attempts: Int
    public let lastError: String?
    public let createdAt: Int64
    public let sentAt: Int64?

    public init(id: String, eventID: String, channel: NotificationChannel, audience: NotificationAudience, recipientMasked: String,
                template: String, subject: String, status: WebhookDeliveryState, attempts: Int, lastError: String?,
                createdAt: Int64, sentAt: Int64?) {
        self.id = id
        self.eventID = eventID
        self.channel = channel
        self.audience = audience
        self.recipientMasked = recipientMasked
        self.template = template
        self.subject = subject
        self.status = status
        self.attempts = attempts
        self.lastError = lastError
        self.createdAt = createdAt
        self.sentAt = sentAt
    }
}

public enum NotificationTemplates {
    public static let all: [NotificationTemplate] = [
        .init(name: "payment.captured.customer", subject: "Payment of {{amount}} successful",
              body: "Your payment {{payment_id}} of {{amount}} to {{merchant_id}} was successful."),
        .init(name: "payment.captured.merchant", subject: "Payment {{payment_id}} captured",
              body: "Payment {{payment_id}} of {{amount}} was captured."),
        .init(name: "payment.failed.customer", subject: "Payment of {{amount}} failed",
              body: "Your payment {{payment_id}} of {{amount}} to {{merchant_id}} failed: {{reason}}. No money was taken."),
        .init(name: "payment.failed.merchant", subject: "Payment {{payment_id}} failed",
              body: "Payment {{payment_id}} of {{amount}} failed: {{reason}}."),
        .init(name: "refund.processed.customer", subject: "Refund of {{refund_amount}} processed",
              body: "Your refund {{refund_id}} of {{refund_amount}} for payment {{payment_id}} was processed."),
        .init(name: "refund.processed.merchant", subject: "Refund {{refund_id}} processed",
              body: "Refund {{refund_id}} of {{refund_amount}} for payment {{payment_id}} was processed."),
        .init(name: "webhook.failing.merchant", subject: "Webhook endpoint {{webhook_id}} is failing",
              body: """
                  Kosh gave up delivering event {{event_id}} ({{event}}) to your webhook endpoint {{webhook_id}} at {{url}} \
                  after {{attempts}} attempts; the last one got: {{last_error}}. Other deliveries to it keep being retried. \
                  Fix the endpoint, then re-deliver from GET /v1/webhooks/{{webhook_id}}/deliveries or poll GET /v1/events.
                  """),
    ]

    public static func named(_ name: String) -> NotificationTemplate? { all.first { $0.name == name } }

    /// The events that notify (payouts come later).
    public static let events: Set<WebhookEventName> = [.paymentCaptured, .paymentFailed, .refundProcessed]

    /// `50000` paise, INR → `INR 500.00` (integer maths; two-decimal currencies).
    public static func amount(_ minor: Int64, currency: String) -> String {
        let major = minor / 100, cents = minor % 100
        return "\(currency) \(major).\(cents < 10 ? "0" : "")\(cents)"
    }

    /// The merchant's email when a webhook delivery died after its last retry (sent once per
    /// endpoint until a delivery succeeds or the endpoint is updated, not once per dead delivery).
    public static func webhookFailing(webhookID: String, url: String, eventID: String, event: String, attempts: Int,
                                      lastError: String, merchantEmail: String) -> PlannedNotification {
        let values = ["webhook_id": webhookID, "url": url, "event_id": eventID, "event": event, "attempts": "\(attempts)",
                      "last_error": String(lastError.prefix(200))]
        return rendered(named("webhook.failing.merchant")!, .email, .merchant, merchantEmail, values)
    }

    /// `template` filled with `values`, addressed.
    static func rendered(_ template: NotificationTemplate, _ channel: NotificationChannel, _ audience: NotificationAudience,
                         _ recipient: String, _ values: [String: String]) -> PlannedNotification {
        PlannedNotification(channel: channel, audience: audience, recipient: recipient, template: template.name,
                            subject: NotificationTemplate.render(template.subject, values),
                            body: NotificationTemplate.render(template.body, values))
    }

    /// What an event about `payment` (and `refund`) sends: to the customer (the payment's
    /// email by email, its contact by SMS and push) and to the merchant's notification email,
    /// when set. Only the events in `events` notify.
    public static func plan(_ name: WebhookEventName, merchantID: String, payment: Payment, refund: Refund?,
                            merchantEmail: String?) -> [PlannedNotification] {
        guard events.contains(name) else { return [] }
        let currency = payment.currency.rawValue
        var values = ["payment_id": payment.id.rawValue, "merchant_id": merchantID, "amount": amount(payment.amount, currency: currency),
                      "reason": payment.machine.failure.map(\.description).flatMap { $0.isEmpty ? nil : $0 } ?? "declined"]
        if let refund {
            values["refund_id"] = refund.id.rawValue
            values["refund_amount"] = amount(refund.amount, currency: refund.currency.rawValue)
        }
        var out: [PlannedNotification] = []
        func add(_ channel: NotificationChannel, _ audience: NotificationAudience, _ recipient: String?) {
            guard let recipient, !recipient.isEmpty, let template = named("\(name.rawValue).\(audience.rawValue)") else { return }
            out.append(rendered(template, channel, audience, recipient, values))
        }
        add(.email, .customer, payment.email)
        add(.sms, .customer, payment.contact)
        add(.push, .customer, payment.contact)
        add(.email, .merchant, merchantEmail)
        return out
    }
}
