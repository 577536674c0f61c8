import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KoshApp
import KoshFlows
import KoshCore
import KoshJSON
import KoshStorage
import KoshTesting
import Logging
import Testing

/// A running Kosh (the production router and services) on a fresh database, with a helper
/// client that speaks JSON and Basic auth. Its clock is a manual one the test steps: whatever
/// Kosh schedules from its clock (the test rail's approval, janitor checks, webhook and
/// notification retries and leases) happens when the test moves the clock and runs the pass,
/// never while it sleeps.
struct Kosh: Sendable {
    let services: KoshServices
    let client: any TestClientProtocol
    let merchant: MerchantCredentials
    /// The services' clock; nil in live mode (`LiveKosh`), whose sandbox keeps real time.
    let manualClock: ManualClock?
    var clock: ManualClock {
        guard let manualClock else { preconditionFailure("this Kosh runs on the system clock (live mode)") }
        return manualClock
    }

    struct Reply: Sendable {
        let status: Int
        let body: String
        let headers: HTTPFields
        var json: JSON { (try? JSON.parse(body)) ?? .null }
        subscript(_ key: String) -> JSON? { json[key] }
        var string: (String) -> String? { { key in if case .string(let s)? = json[key] { return s } else { return nil } } }
        func int(_ key: String) -> Int64? { if case .int(let i)? = json[key] { return i } else { return nil } }
        var errorDescription: String? {
            if case .string(let s)? = json["error"]?["description"] { return s }
            return nil
        }
    }

    /// `allowPrivateWebhooks`: webhooks may point at loopback receivers (`KOSH_WEBHOOK_ALLOW_PRIVATE=1`);
    /// off, as in production. Host names are looked up in `resolver`, never in DNS.
    /// The manual clock starts at the wall clock's time, so what Kosh stamps with it stays
    /// comparable with the database's own clock (node heartbeats).
    static func run(_ kind: String, allowPrivateWebhooks: Bool = false, resolver: ScriptedResolver = ScriptedResolver(),
                    _ body: @Sendable (Kosh) async throws -> Void) async throws {
        var config = try await TestDatabases.configuration(kind)
        config.webhooks.allowPrivateDestinations = allowPrivateWebhooks
        config.webhooks.resolver = resolver
        let clock = ManualClock(millis: SystemClock().nowMillis())
        let services = try await KoshServices.open(config, logger: Logger(label: "kosh-test"), clock: clock,
                                                   cardVault: InMemoryCardVault(clock: clock))
        let merchant = try await services.merchants.create(name: "Test Merchant")
        let app = Application(router: services.router())
        try await app.test(.router) { client in
            try await body(Kosh(services: services, client: client, merchant: merchant, manualClock: clock))
        }
        try await services.db.close()
    }

    func authorization(_ credentials: MerchantCredentials? = nil) -> String {
        let c = credentials ?? merchant
        return "Basic " + Data("\(c.keyID):\(c.keySecret)".utf8).base64EncodedString()
    }

    @discardableResult
    func call(_ method: HTTPRequest.Method, _ path: String, _ body: String? = nil, as credentials: MerchantCredentials? = nil,
              auth: String? = nil, idempotencyKey: String? = nil) async throws -> Reply {
        var headers: HTTPFields = [.contentType: "application/json"]
        headers[.authorization] = auth ?? authorization(credentials)
        if let idempotencyKey { headers[HTTPField.Name("Idempotency-Key")!] = idempotencyKey }
        return try await client.execute(uri: path, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) { response in
            Reply(status: Int(response.status.code), body: String(buffer: response.body), headers: response.headers)
        }
    }

    func createOrder(amount: Int64 = 50_000, as credentials: MerchantCredentials? = nil) async throws -> String {
        let reply = try await call(.post, "/v1/orders", #"{"amount": \#(amount), "currency": "INR", "receipt": "rcpt_1"}"#, as: credentials)
        #expect(reply.status == 200, "\(reply.body)")
        return try #require(reply.string("id"))
    }

    func createPayment(order: String, amount: Int64 = 50_000, vpa: String = "success@razorpay", as credentials: MerchantCredentials? = nil) async throws -> Reply {
        try await call(.post, "/v1/payments/create/upi", """
            {"order_id": "\(order)", "amount": \(amount), "currency": "INR", "method": "upi", "vpa": "\(vpa)",
             "email": "gaurav.kumar@example.com", "contact": "9123456789", "description": "Test"}
            """, as: credentials)
    }

    /// Runs the janitor's pass, stepping the clock 50 ms between passes, until the payment
    /// leaves created/pending (the test rail approves 50 ms after submission; an orphan is
    /// submitted after the 1 s grace). At most 10 s of the manual clock.
    func settle(_ paymentID: String) async throws -> Payment {
        for _ in 0..<200 {
            _ = try await services.flows.runDueChecks()
            let payment = try await services.flows.payment(id: ID(paymentID))
            if payment.state != .pending && payment.state != .created { return payment }
            clock.advance(byMillis: 50)
        }
        Issue.record("payment \(paymentID) never settled")
        return try await services.flows.payment(id: ID(paymentID))
    }

    /// An authorised payment of `amount` on a new order.
    func authorizedPayment(amount: Int64 = 50_000) async throws -> String {
        let order = try await createOrder(amount: amount)
        let created = try await createPayment(order: order, amount: amount)
        #expect(created.status == 200, "\(created.body)")
        let id = try #require(created.string("razorpay_payment_id"))
        let payment = try await settle(id)
        #expect(payment.state == .authorized)
        return id
    }

    func capturedPayment(amount: Int64 = 50_000) async throws -> String {
        let id = try await authorizedPayment(amount: amount)
        let reply = try await call(.post, "/v1/payments/\(id)/capture", #"{"amount": \#(amount), "currency": "INR"}"#)
        #expect(reply.status == 200, "\(reply.body)")
        return id
    }

    func expectLedgerConsistent(sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let report = try await LedgerVerifier.verify(services.db)
        #expect(report.isConsistent, "\(report.problems)", sourceLocation: sourceLocation)
    }
}
