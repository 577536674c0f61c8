import Foundation
import HTTPTypes
import KoshCore
import KoshJSON
import KoshTesting
import Testing

/// Keeps `openapi.json` true: every documented operation exists on the server, every
/// operation the server has is documented, and live responses carry exactly the properties
/// the schemas list.
@Suite("OpenAPI document", .serialized, .timeLimit(.minutes(2)))
struct OpenAPITests {
    static func document() throws -> JSON {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("openapi.json")
        return try JSON.parse(Array(try Data(contentsOf: url)))
    }

    static func operations(_ doc: JSON) -> Set<String> {
        guard case .object(let paths)? = doc["paths"] else { return [] }
        var out: Set<String> = []
        for (path, item) in paths {
            guard case .object(let methods) = item else { continue }
            for (method, _) in methods where ["get", "post", "put", "patch", "delete"].contains(method) {
                out.insert("\(method.uppercased()) \(path)")
            }
        }
        return out
    }

    static func properties(_ doc: JSON, schema: String) -> Set<String> {
        guard case .object(let props)? = doc["components"]?["schemas"]?[schema]?["properties"] else { return [] }
        return Set(props.map(\.0))
    }

    static func keys(_ json: JSON?) -> Set<String> {
        guard case .object(let pairs)? = json else { return [] }
        return Set(pairs.map(\.0))
    }

    /// What the server routes. Kept next to the probe so a new route fails this test until documented.
    static let served: Set<String> = [
        "GET /healthz", "GET /readyz", "GET /metrics",
        "POST /v1/orders", "GET /v1/orders", "GET /v1/orders/{id}", "GET /v1/orders/{id}/payments",
        "POST /v1/payments/create/upi", "GET /v1/payments", "GET /v1/payments/{id}",
        "POST /v1/payments/{id}/capture", "POST /v1/payments/{id}/cancel", "POST /v1/payments/{id}/refund",
        "GET /v1/payments/{id}/refunds", "GET /v1/payments/{id}/refunds/{rid}",
        "GET /v1/refunds", "GET /v1/refunds/{id}",
        "POST /v1/payments/validate/vpa", "GET /v1/payments/downtimes", "GET /v1/payments/{id}/attempts",
        "POST /v1/rails/callbacks/{connector}",
        "POST /v1/webhooks", "GET /v1/webhooks", "GET /v1/webhooks/{id}", "PATCH /v1/webhooks/{id}", "DELETE /v1/webhooks/{id}",
        "GET /v1/webhooks/{id}/deliveries", "POST /v1/webhooks/deliveries/{id}/redeliver",
        "GET /v1/events", "GET /v1/events/{id}", "GET /v1/notifications",
        "POST /v1/payments/create/json", "POST /v1/payments/{id}/otp_generate", "POST /v1/payments/{id}/otp/submit",
        "POST /v1/payments/{id}/otp_submit/{hash}", "POST /v1/payments/{id}/otp/resend", "POST /v1/payments/{id}/otp_resend/{format}",
        "GET /v1/payments/{id}/card", "GET /v1/cards/{id}", "GET /v1/iins/{iin}",
        "GET /v1/payments/{id}/authenticate", "POST /v1/payments/{id}/authentication/return",
        "POST /v1/customers", "GET /v1/customers", "GET /v1/customers/{id}", "PUT /v1/customers/{id}",
        "GET /v1/customers/{id}/tokens", "GET /v1/customers/{id}/tokens/{token}", "DELETE /v1/customers/{id}/tokens/{token}",
        "PATCH /v1/orders/{id}", "PATCH /v1/payments/{id}", "PATCH /v1/refunds/{id}", "POST /v1/refunds", "PUT /v1/webhooks/{id}",
        "GET /v1/payments/downtimes/{id}",
        "GET /v1/payments/{id}/authorize", "POST /v1/payments/{id}/redirect/return", "GET /v1/payments/{id}/test_redirect",
        "POST /v1/payments/{id}/test_redirect", "GET /v1/methods", "GET /methods",
        "GET /v1/checkout.js", "GET /v1/checkout/assets/page.js", "GET /v1/checkout/assets/page.css", "GET /v1/checkout/page",
        "POST /v1/checkout/embedded", "POST /v1/checkout/return", "GET /v1/checkout/preferences", "POST /v1/checkout/payments",
        "GET /v1/checkout/payments/{id}", "POST /v1/checkout/payments/{id}/cancel", "GET /v1/checkout/payments/{id}/qr.png", "GET /v1/checkout/iins/{iin}",
        "POST /v1/payments/qr_codes", "GET /v1/payments/qr_codes", "GET /v1/payments/qr_codes/{id}", "PATCH /v1/payments/qr_codes/{id}",
        "POST /v1/payments/qr_codes/{id}/close", "GET /v1/payments/qr_codes/{id}/payments", "POST /v1/payments/qr_codes/{id}/test_payment",
        "GET /qr/{id}/image.png", "POST /v1/rails/credits/{connector}",
    ]

    @Test func everyOperationIsDocumentedAndServed() async throws {
        let doc = try Self.document()
        #expect(doc["openapi"] != nil)
        #expect(Self.operations(doc) == Self.served)
        try await Kosh.run("sqlite") { kosh in
            for operation in Self.served {
                let parts = operation.split(separator: " ")
                let path = parts[1].replacingOccurrences(of: "{id}", with: "pay_AAAAAAAAAAAAAA").replacingOccurrences(of: "{rid}", with: "rfnd_AAAAAAAAAAAAAA")
                    .replacingOccurrences(of: "{connector}", with: "test_upi")
                let reply = try await kosh.call(HTTPRequest.Method(rawValue: String(parts[0]))!, path, "{}")
                #expect(reply.status != 404 && reply.status != 405 && reply.status < 500, "\(operation) → \(reply.status)")
            }
        }
    }

    @Test func schemasMatchLiveResponses() async throws {
        let doc = try Self.document()
        try await Kosh.run("sqlite") { kosh in
            let payment = try await kosh.capturedPayment(amount: 5_000)
            let refund = try await kosh.call(.post, "/v1/payments/\(payment)/refund", #"{"amount": 100}"#)
            let paymentJSON = try await kosh.call(.get, "/v1/payments/\(payment)").json
            let orderID = try #require({ if case .string(let s)? = paymentJSON["order_id"] { return s } else { return nil } }())
            let order = try await kosh.call(.get, "/v1/orders/\(orderID)").json
            let error = try await kosh.call(.get, "/v1/orders/order_AAAAAAAAAAAAAA").json

            #expect(Self.keys(order) == Self.properties(doc, schema: "Order"))
            #expect(Self.keys(paymentJSON) == Self.properties(doc, schema: "Payment"))
            #expect(Self.keys(refund.json) == Self.properties(doc, schema: "Refund"))
            #expect(Self.keys(error) == Self.properties(doc, schema: "Error"))
            let created = try await kosh.createPayment(order: try await kosh.createOrder(amount: 1_000), amount: 1_000)
            #expect(Self.keys(created.json) == Self.properties(doc, schema: "UPIPaymentCreated"))
            let attempts = try await kosh.call(.get, "/v1/payments/\(payment)/attempts").json
            guard case .array(let attemptItems)? = attempts["items"], let attempt = attemptItems.first else {
                Issue.record("no attempts: \(attempts.serialized())")
                return
            }
            #expect(Self.keys(attempt) == Self.properties(doc, schema: "PaymentAttempt"))
            #expect(Self.keys(attempts) == Self.properties(doc, schema: "PaymentAttemptCollection"))
            let collection = try await kosh.call(.get, "/v1/payments").json
            #expect(Self.keys(collection) == Self.properties(doc, schema: "PaymentCollection"))
            let qr = try await kosh.call(.post, "/v1/payments/qr_codes", #"{"type": "upi_qr", "usage": "single_use", "fixed_amount": true, "payment_amount": 1000}"#)
            #expect(Self.keys(qr.json) == Self.properties(doc, schema: "QRCode"), "\(qr.body)")
            #expect(Self.keys(try await kosh.call(.get, "/v1/payments/qr_codes").json) == Self.properties(doc, schema: "QRCodeCollection"))
        }
    }

    @Test func webhookSchemasMatchLiveResponses() async throws {
        let doc = try Self.document()
        try await Kosh.run("sqlite") { kosh in
            let created = try await kosh.call(.post, "/v1/webhooks", #"{"url": "https://hooks.example.com/hook", "events": ["payment.captured"]}"#)
            #expect(Self.keys(created.json) == Self.properties(doc, schema: "WebhookCreated"))
            let id = try #require(created.string("id"))
            #expect(Self.keys(try await kosh.call(.get, "/v1/webhooks/\(id)").json) == Self.properties(doc, schema: "Webhook"))
            #expect(Self.keys(try await kosh.call(.get, "/v1/webhooks").json) == Self.properties(doc, schema: "WebhookCollection"))
            _ = try await kosh.capturedPayment(amount: 5_000)
            let deliveries = try await kosh.call(.get, "/v1/webhooks/\(id)/deliveries").json
            #expect(Self.keys(deliveries) == Self.properties(doc, schema: "WebhookDeliveryCollection"))
            let delivery = try #require(deliveries["items"]?[0])
            #expect(Self.keys(delivery) == Self.properties(doc, schema: "WebhookDelivery"))
            guard case .string(let deliveryID)? = delivery["id"] else { Issue.record("no delivery id"); return }
            let redelivered = try await kosh.call(.post, "/v1/webhooks/deliveries/\(deliveryID)/redeliver")
            #expect(Self.keys(redelivered.json) == Self.properties(doc, schema: "WebhookDelivery"))
            let events = try await kosh.call(.get, "/v1/events").json
            #expect(Self.keys(events) == Self.properties(doc, schema: "EventCollection"))
            let event = try #require(events["items"]?[0])
            #expect(Self.keys(event) == Self.properties(doc, schema: "Event"))
            let notifications = try await kosh.call(.get, "/v1/notifications").json
            #expect(Self.keys(notifications) == Self.properties(doc, schema: "NotificationCollection"))
            let notification = try #require(notifications["items"]?[0], "the capture emails the customer")
            #expect(Self.keys(notification) == Self.properties(doc, schema: "Notification"))
            let deleted = try await kosh.call(.delete, "/v1/webhooks/\(id)").json
            #expect(Self.keys(deleted) == Self.properties(doc, schema: "WebhookDeleted"))
        }
    }
}
