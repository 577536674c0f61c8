import Foundation
import Crypto
import Hummingbird
import KoshCore
import KoshJSON
import KoshFlows

/// Renders webhook payload entities exactly as the API does.
public struct RazorpayEntityRenderer: EntityRenderer {
    public init() {}
    public func payment(_ payment: Payment) -> JSON { Render.payment(payment) }
    public func order(_ order: Order) -> JSON { Render.order(order) }
    public func refund(_ refund: Refund) -> JSON { Render.refund(refund) }
    public func qrCode(_ qrCode: UPIQRCode) -> JSON { Render.qrCode(qrCode) }
    public func error(_ error: KoshError) -> JSON { ErrorRendering.json(error) }
}

enum WebhookLimits {
    static let maximumURLLength = WebhookURL.maximumLength
    static let minimumSecretLength = 8
    static let maximumSecretLength = 256
}

extension Render {
    static func webhook(_ e: WebhookEndpoint) -> JSON {
        .object([
            ("id", .string(e.id)),
            ("entity", .string("webhook")),
            ("url", .string(e.url)),
            ("events", .array(e.events.map { .string($0.rawValue) })),
            ("active", .bool(e.active)),
            ("failing", .bool(e.failing)),
            ("created_at", .int(e.createdAt)),
        ])
    }

    static func delivery(_ d: WebhookDelivery) -> JSON {
        func text(_ value: String?) -> JSON { value.map(JSON.string) ?? .null }
        return .object([
            ("id", .string(d.id)),
            ("entity", .string("webhook.delivery")),
            ("webhook_id", .string(d.endpointID)),
            ("event_id", .string(d.eventID)),
            ("event", .string(d.event)),
            ("status", .string(d.machine.state.rawValue)),
            ("attempts_count", .int(Int64(d.machine.attempts))),
            ("next_attempt_at", d.machine.state == .pending ? (d.nextAttemptAt.map { JSON.int($0 / 1000) } ?? .null) : .null),
            ("last_status_code", d.lastStatusCode.map(JSON.int) ?? .null),
            ("last_error", text(d.lastError)),
            ("created_at", .int(d.createdAt)),
            ("attempts", .array(d.attemptLog.map { a in
                .object([
                    ("at", .int(a.at / 1000)),
                    ("status_code", a.statusCode.map(JSON.int) ?? .null),
                    ("latency_ms", .int(a.latencyMillis)),
                    ("response", text(a.response)),
                    ("error", text(a.error)),
                ])
            })),
        ])
    }

    static func notification(_ n: NotificationLogEntry) -> JSON {
        .object([
            ("id", .string(n.id)),
            ("entity", .string("notification")),
            ("event_id", .string(n.eventID)),
            ("channel", .string(n.channel.rawValue)),
            ("audience", .string(n.audience.rawValue)),
            ("recipient", .string(n.recipientMasked)),
            ("template", .string(n.template)),
            ("subject", .string(n.subject)),
            ("status", .string(n.status == .delivered ? "sent" : n.status.rawValue)),
            ("attempts_count", .int(Int64(n.attempts))),
            ("last_error", n.lastError.map(JSON.string) ?? .null),
            ("created_at", .int(n.createdAt)),
            ("sent_at", n.sentAt.map(JSON.int) ?? .null),
        ])
    }

    /// A stored event is its webhook body plus its id.
    static func event(_ e: OutboxEvent) -> JSON {
        guard case .object(let pairs) = (try? JSON.parse(e.body)) ?? .null else { return .object([("id", .string(e.id))]) }
        return .object([("id", .string(e.id))] + pairs)
    }
}

/// `/v1/webhooks` (a merchant's endpoints, their deliveries and re-delivery) and `/v1/events`.
public struct WebhooksAPI: Sendable {
    let flows: WebhookFlows

    public init(flows: WebhookFlows) {
        self.flows = flows
    }

    func register(on router: Router<KoshRequestContext>, authenticator: any MerchantAuthenticator) {
        let v1 = router.group("v1").add(middleware: BasicAuthMiddleware(authenticator: authenticator)).group(context: MerchantContext.self)
        v1.post("webhooks") { request, context in
            let merchant = context.merchant
            let (raw, _) = try await RequestBody.parse(request, context: context)
            var body = raw
            let given = try body.string("url", required: true, maxLength: WebhookLimits.maximumURLLength)!
            let events = try Self.events(&body, required: true)!
            let secret = try Self.secret(&body) ?? Self.generatedSecret()
            try body.rejectUnknown(ignoring: ["events"])
            let endpoint = try await flows.createEndpoint(merchantID: merchant.id.rawValue, url: given, events: events, secret: secret)
            // The secret is shown once, when Kosh made it up; it is never returned again.
            var json = Render.webhook(endpoint)
            if case .object(var pairs) = json, raw["secret"] == nil {
                pairs.append(("secret", .string(secret)))
                json = .object(pairs)
            }
            return jsonResponse(json)
        }
        v1.get("webhooks") { request, context in
            let merchant = context.merchant
            let page = try page(from: request)
            return jsonResponse(Render.collection(try await flows.endpoints(merchantID: merchant.id.rawValue, page: page).map(Render.webhook)))
        }
        v1.get("webhooks/:id") { _, context in
            jsonResponse(Render.webhook(try await self.endpoint(context)))
        }
        // PATCH, and PUT as the SDK's `webhook.edit` sends it: the fields given change.
        let edit: @Sendable (Request, MerchantContext) async throws -> Response = { request, context in
            var endpoint = try await self.endpoint(context)
            let (raw, _) = try await RequestBody.parse(request, context: context)
            var body = raw
            let url = try body.string("url", maxLength: WebhookLimits.maximumURLLength)
            if let events = try Self.events(&body, required: false) { endpoint.events = events }
            if let active = body["active"] {
                guard case .bool(let flag) = active else { throw KoshError.badRequest("The active must be true or false.", field: "active") }
                endpoint.active = flag
            }
            let secret = try Self.secret(&body)
            try body.rejectUnknown(ignoring: ["events", "active"])
            return jsonResponse(Render.webhook(try await flows.updateEndpoint(endpoint, url: url, secret: secret)))
        }
        v1.patch("webhooks/:id", use: edit)
        v1.put("webhooks/:id", use: edit)
        v1.delete("webhooks/:id") { _, context in
            let endpoint = try await self.endpoint(context)
            try await flows.deleteEndpoint(endpoint)
            return jsonResponse(.object([("id", .string(endpoint.id)), ("entity", .string("webhook")), ("deleted", .bool(true))]))
        }
        v1.get("webhooks/:id/deliveries") { request, context in
            let endpoint = try await self.endpoint(context)
            let page = try page(from: request)
            let deliveries = try await flows.deliveries(endpointID: endpoint.id, merchantID: endpoint.merchantID, page: page)
            return jsonResponse(Render.collection(deliveries.map(Render.delivery)))
        }
        v1.post("webhooks/deliveries/:id/redeliver") { request, context in
            let merchant = context.merchant
            let id = try context.parameters.require("id")
            try validateID(id, .webhookDelivery)
            let (body, _) = try await RequestBody.parse(request, context: context, allowEmpty: true)
            try body.rejectUnknown()
            let delivery = try await flows.redeliver(deliveryID: id, merchantID: merchant.id.rawValue)
            return jsonResponse(Render.delivery(delivery))
        }
        v1.get("events") { request, context in
            let merchant = context.merchant
            let page = try page(from: request)
            return jsonResponse(Render.collection(try await flows.events(merchantID: merchant.id.rawValue, page: page).map(Render.event)))
        }
        v1.get("notifications") { request, context in
            let merchant = context.merchant
            let page = try page(from: request)
            return jsonResponse(Render.collection(try await flows.notifications(merchantID: merchant.id.rawValue, page: page).map(Render.notification)))
        }
        v1.get("events/:id") { _, context in
            let merchant = context.merchant
            let id = try context.parameters.require("id")
            try validateID(id, .paymentEvent)
            let event = try await flows.event(id: id, merchantID: merchant.id.rawValue)
            return jsonResponse(Render.event(event))
        }
    }

    func endpoint(_ context: MerchantContext) async throws -> WebhookEndpoint {
        let merchant = context.merchant
        let id = try context.parameters.require("id")
        try validateID(id, .webhook)
        return try await flows.endpoint(id: id, merchantID: merchant.id.rawValue)
    }

    static func events(_ body: inout RequestBody, required: Bool) throws -> [WebhookEventName]? {
        let known = WebhookEventName.allCases.map(\.rawValue).joined(separator: ", ")
        guard let value = body["events"] else {
            if required { throw KoshError.badRequest("The events field is required.", field: "events") }
            return nil
        }
        var names: [String] = []
        switch value {
        case .array(let items):
            for item in items {
                guard case .string(let name) = item else { throw KoshError.badRequest("The events must be a list of event names.", field: "events") }
                names.append(name)
            }
        case .object(let pairs):
            // Razorpay's dashboard shape: {"payment.captured": true, …}
            for (name, flag) in pairs where flag == .bool(true) || flag == .int(1) { names.append(name) }
        default:
            throw KoshError.badRequest("The events must be a list of event names.", field: "events")
        }
        guard !names.isEmpty, names.count <= WebhookEventName.allCases.count * 2 else {
            throw KoshError.badRequest("The events must name at least one of: \(known).", field: "events")
        }
        var out: [WebhookEventName] = []
        for name in names {
            guard let event = WebhookEventName(rawValue: name) else {
                throw KoshError.badRequest("\(name.prefix(64)) is not a valid event; use: \(known).", field: "events")
            }
            if !out.contains(event) { out.append(event) }
        }
        return out
    }

    static func secret(_ body: inout RequestBody) throws -> String? {
        guard let secret = try body.string("secret", maxLength: WebhookLimits.maximumSecretLength) else { return nil }
        guard secret.count >= WebhookLimits.minimumSecretLength else {
            throw KoshError.badRequest("The secret must be at least \(WebhookLimits.minimumSecretLength) characters.", field: "secret")
        }
        return secret
    }

    static func generatedSecret() -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var generator = SystemRandomNumberGenerator()
        return String((0..<32).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
    }
}

/// What `kosh merchant webhook …` shares with the API: the same checks, the same JSON.
public enum WebhookAdministration {
    public static func checkedURL(_ text: String, destinations: WebhookDestinationPolicy) async throws -> String {
        guard text.utf8.count <= WebhookLimits.maximumURLLength else {
            throw KoshError.badRequest("The url may not be greater than \(WebhookLimits.maximumURLLength) characters.", field: "url")
        }
        return try await destinations.checked(text)
    }

    /// `payment.captured,refund.processed` → the events, each known, none twice.
    public static func events(_ list: String) throws -> [WebhookEventName] {
        let known = WebhookEventName.allCases.map(\.rawValue).joined(separator: ", ")
        var out: [WebhookEventName] = []
        for name in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
            guard let event = WebhookEventName(rawValue: name) else {
                throw KoshError.badRequest("\(name.prefix(64)) is not a valid event; use: \(known).", field: "events")
            }
            if !out.contains(event) { out.append(event) }
        }
        guard !out.isEmpty else { throw KoshError.badRequest("The events must name at least one of: \(known).", field: "events") }
        return out
    }

    public static func checkedSecret(_ secret: String) throws -> String {
        guard (WebhookLimits.minimumSecretLength...WebhookLimits.maximumSecretLength).contains(secret.count) else {
            throw KoshError.badRequest("The secret must be \(WebhookLimits.minimumSecretLength) to \(WebhookLimits.maximumSecretLength) characters.",
                                       field: "secret")
        }
        return secret
    }

    public static func generatedSecret() -> String { WebhooksAPI.generatedSecret() }
    public static func render(_ endpoint: WebhookEndpoint) -> JSON { Render.webhook(endpoint) }
    public static func render(_ delivery: WebhookDelivery) -> JSON { Render.delivery(delivery) }
    public static func render(_ notification: NotificationLogEntry) -> JSON { Render.notification(notification) }
}
