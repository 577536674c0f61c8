import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import KoshApp
import KoshFlows
import KoshCore
import KoshJSON
import KoshStorage
import KoshTesting
import Logging
import Synchronization
import Testing

/// A webhook receiver on a real loopback socket. `answer(n)` decides the status of the n-th
/// request (1-based) and may take its time.
struct Receiver: Sendable {
    struct Receipt: Sendable {
        let body: String
        let signature: String?
        let eventID: String?
        /// The Host header (`authority`), as the sender wrote it.
        let authority: String?
        let at: ContinuousClock.Instant
    }

    final class Log: Sendable {
        let receipts = Mutex<[Receipt]>([])
    }

    let log: Log
    let port: Int
    let task: Task<Void, any Error>

    var url: String { "http://127.0.0.1:\(port)/hook" }
    var all: [Receipt] { log.receipts.withLock { $0 } }

    static func start(answer: @escaping @Sendable (Int) async -> Int = { _ in 200 }) async throws -> Receiver {
        let log = Log()
        let router = Router()
        router.post("hook") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let receipt = Receipt(body: String(buffer: body), signature: request.headers[.init("X-Razorpay-Signature")!],
                                  eventID: request.headers[.init("X-Razorpay-Event-Id")!], authority: request.head.authority, at: .now)
            let n = log.receipts.withLock { $0.append(receipt); return $0.count }
            let status = await answer(n)
            return Response(status: .init(code: status), body: ResponseBody(byteBuffer: ByteBuffer(string: "answer \(n)")))
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) })
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        let port = await iterator.next() ?? 0
        return Receiver(log: log, port: port, task: task)
    }

    func stop() { task.cancel() }
}

final class Flag: Sendable {
    let on = Mutex(false)
}

extension JSON {
    /// The element at `index` of an array (tests only).
    subscript(index: Int) -> JSON? {
        guard case .array(let items) = self, items.indices.contains(index) else { return nil }
        return items[index]
    }
}

/// Polls `condition` on the wall clock. Only for what happens in real time: another process,
/// a dispatcher's own loop, a receiver whose latency is the point. What Kosh schedules from its
/// clock is stepped instead (`Kosh.dispatched(by:stepMillis:until:)`).
func eventually(seconds: Double = 10, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        // Real time on purpose: the callers wait on processes, sockets and loops that keep real time.
        try await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}

func unhexBytes(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = Array(text.utf8)
    if chars.count % 2 == 1 { chars.append(0) }
    for i in stride(from: 0, to: chars.count, by: 2) {
        out.append(UInt8(String(decoding: chars[i...i + 1], as: UTF8.self), radix: 16) ?? 0)
    }
    return out
}

extension Kosh {
    func dispatcher(schedule: [Int64] = [30, 60, 90], timeoutMillis: Int64 = 5_000, owner: String? = nil,
                    allowPrivate: Bool? = nil) -> WebhookDispatcher {
        var settings = services.webhookSettings  // allow-private and the resolver, as the API has them
        if let allowPrivate { settings.allowPrivateDestinations = allowPrivate }
        settings.schedule = WebhookRetrySchedule(retryDelaysMillis: schedule)
        settings.pollIntervalMillis = 5
        settings.timeoutMillis = timeoutMillis
        return WebhookDispatcher(store: services.webhooks, settings: settings, logger: .init(label: "webhooks-test"),
                                 owner: owner ?? "test-" + UUID().uuidString.prefix(6))
    }

    /// Runs the dispatcher's pass, stepping the clock `stepMillis` after each, until `done`
    /// (checked after every pass). A pass returns once its attempts are recorded, so what is
    /// due is sent and what is not waits for the clock, never for the wall clock.
    func dispatched(by dispatcher: WebhookDispatcher, stepMillis: Int64 = 10, passes: Int = 1_000,
                    until done: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<passes {
            try await dispatcher.runOnce()
            if try await done() { return true }
            clock.advance(byMillis: stepMillis)
        }
        return false
    }

    /// Deliveries recorded as delivered, all merchants.
    func deliveredCount() async throws -> Int64 {
        try await services.db.transaction { conn in
            try await conn.query("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'delivered'", []).first?.int("n") ?? -1
        }
    }

    func registerWebhook(_ url: String, events: [String] = ["payment.captured"], secret: String = "whsec_kosh_test_secret") async throws -> String {
        let list = events.map { "\"\($0)\"" }.joined(separator: ", ")
        let reply = try await call(.post, "/v1/webhooks", #"{"url": "\#(url)", "events": [\#(list)], "secret": "\#(secret)"}"#)
        #expect(reply.status == 200, "\(reply.body)")
        return try #require(reply.string("id"))
    }
}

/// Runs `dispatcher` as the server does until `body` returns.
func running<T>(_ dispatchers: [WebhookDispatcher], _ body: () async throws -> T) async throws -> T {
    let tasks = dispatchers.map { d in Task { try await d.run() } }
    defer { for task in tasks { task.cancel() } }
    let result = try await body()
    for task in tasks {
        task.cancel()
        _ = try? await task.value
    }
    return result
}

@Suite("Webhooks", .serialized, .timeLimit(.minutes(3)))
struct WebhookTests {
    @Test("a capture through the API is delivered signed, as Razorpay sends it", arguments: TestDatabases.all)
    func capturedPaymentIsDeliveredSigned(db: String) async throws {
        try await Kosh.run(db, allowPrivateWebhooks: true) { kosh in
            let receiver = try await Receiver.start()
            defer { receiver.stop() }
            let secret = "whsec_kosh_test_secret"
            let webhookID = try await kosh.registerWebhook(receiver.url, events: ["payment.captured", "order.paid"], secret: secret)
            let paymentID = try await kosh.capturedPayment(amount: 5_000)
            let dispatcher = kosh.dispatcher()
            let delivered = try await kosh.dispatched(by: dispatcher) { try await kosh.deliveredCount() == 2 }
            try await dispatcher.shutdown()
            #expect(delivered)
            let receipts = receiver.all
            #expect(receipts.count == 2)
            let captured = try #require(receipts.first { (try? JSON.parse($0.body))?["event"] == .string("payment.captured") })
            let body = try JSON.parse(captured.body)
            #expect(body["entity"] == .string("event"))
            #expect(body["account_id"] == .string(kosh.merchant.merchant.id.rawValue))
            #expect(body["contains"] == .array([.string("payment")]))
            let payment = try await kosh.call(.get, "/v1/payments/\(paymentID)")
            #expect(body["payload"]?["payment"]?["entity"] == payment.json)
            if case .int = body["created_at"] {} else { Issue.record("created_at is not an integer") }

            // The signature is HMAC-SHA256 of the raw body with the endpoint's secret.
            let signature = try #require(captured.signature)
            #expect(HMAC<SHA256>.isValidAuthenticationCode(unhexBytes(signature), authenticating: Array(captured.body.utf8),
                                                           using: SymmetricKey(data: Array(secret.utf8))))
            #expect(!HMAC<SHA256>.isValidAuthenticationCode(unhexBytes(signature), authenticating: Array(captured.body.utf8),
                                                            using: SymmetricKey(data: Array("another secret".utf8))))
            // And the official SDK's verifier accepts it (when the Python SDK is installed).
            if let verdict = try razorpaySDKVerify(body: captured.body, signature: signature, secret: secret) {
                #expect(verdict == "ok")
                #expect(try razorpaySDKVerify(body: captured.body, signature: signature, secret: "wrong-secret") == "rejected")
            }

            let orderPaid = try #require(receipts.first { (try? JSON.parse($0.body))?["event"] == .string("order.paid") })
            #expect(try JSON.parse(orderPaid.body)["contains"] == .array([.string("payment"), .string("order")]))

            // The event id header names the event, which the events API serves.
            let eventID = try #require(captured.eventID)
            let event = try await kosh.call(.get, "/v1/events/\(eventID)")
            #expect(event.status == 200)
            #expect(event.string("event") == "payment.captured")
            #expect(event["payload"] == body["payload"])
            let events = try await kosh.call(.get, "/v1/events?count=10")
            #expect(events.string("entity") == "collection")
            guard case .array(let items)? = events["items"] else { Issue.record("no items"); return }
            let names = items.compactMap { item -> String? in if case .string(let s)? = item["event"] { s } else { nil } }
            #expect(Set(names) == ["payment.authorized", "payment.captured", "order.paid"])

            let deliveries = try await kosh.call(.get, "/v1/webhooks/\(webhookID)/deliveries")
            guard case .array(let list)? = deliveries["items"] else { Issue.record("no deliveries"); return }
            #expect(list.count == 2)
            for item in list {
                #expect(item["status"] == .string("delivered"))
                #expect(item["attempts_count"] == .int(1))
                #expect(item["attempts"]?[0]?["status_code"] == .int(200))
            }
        }
    }

    @Test("a receiver failing N times then answering gets exactly N+1 attempts on the schedule", arguments: TestDatabases.all)
    func retriesFollowTheSchedule(db: String) async throws {
        try await Kosh.run(db, allowPrivateWebhooks: true) { kosh in
            let failures = 3
            let receiver = try await Receiver.start { n in n <= failures ? 500 : 200 }
            defer { receiver.stop() }
            let webhookID = try await kosh.registerWebhook(receiver.url)
            _ = try await kosh.capturedPayment(amount: 5_000)
            let schedule: [Int64] = [100, 200, 300, 400]
            let dispatcher = kosh.dispatcher(schedule: schedule)
            let step: Int64 = 10
            let done = try await kosh.dispatched(by: dispatcher, stepMillis: step) {
                let reply = try await kosh.call(.get, "/v1/webhooks/\(webhookID)/deliveries")
                return reply.json["items"]?[0]?["status"] == .string("delivered")
            }
            #expect(done)
            // Nothing more is due, however late it gets.
            kosh.clock.advance(bySeconds: 86_400)
            #expect(try await dispatcher.runOnce() == 0)
            try await dispatcher.shutdown()
            let receipts = receiver.all
            #expect(receipts.count == failures + 1)
            // Each retry went out on the first pass at or after its delay (the clock moves `step` a pass).
            let logged = try #require(try await kosh.services.webhooks.deliveries(endpointID: webhookID, merchantID: kosh.merchant.merchant.id.rawValue,
                                                                                  page: Page()).first).attemptLog
            #expect(logged.count == failures + 1)
            for i in 1..<logged.count {
                let gap = logged[i].at - logged[i - 1].at
                #expect(gap >= schedule[i - 1] && gap < schedule[i - 1] + step, "retry \(i) came \(gap) ms after the attempt before")
            }
            #expect(Set(receipts.map(\.eventID)).count == 1)
            let delivery = try await kosh.call(.get, "/v1/webhooks/\(webhookID)/deliveries").json["items"]?[0]
            #expect(delivery?["attempts_count"] == .int(Int64(failures + 1)))
            guard case .array(let attempts)? = delivery?["attempts"] else { Issue.record("no attempts"); return }
            #expect(attempts.map { $0["status_code"] } == [.int(500), .int(500), .int(500), .int(200)])
            #expect(attempts[0]["response"] == .string("answer 1"))
        }
    }

    @Test("after the last attempt the delivery is dead and the endpoint flagged; redelivery works", arguments: TestDatabases.all)
    func deadThenRedelivered(db: String) async throws {
        try await Kosh.run(db, allowPrivateWebhooks: true) { kosh in
            let healthy = Flag()
            let receiver = try await Receiver.start { _ in healthy.on.withLock { $0 } ? 200 : 503 }
            defer { receiver.stop() }
            let webhookID = try await kosh.registerWebhook(receiver.url)
            _ = try await kosh.capturedPayment(amount: 5_000)
            let dispatcher = kosh.dispatcher(schedule: [20, 20])
            do {
                let dead = try await kosh.dispatched(by: dispatcher) {
                    try await kosh.call(.get, "/v1/webhooks/\(webhookID)/deliveries").json["items"]?[0]?["status"] == .string("dead")
                }
                #expect(dead)
                #expect(receiver.all.count == 3)
                let endpoint = try await kosh.call(.get, "/v1/webhooks/\(webhookID)")
                #expect(endpoint["failing"] == .bool(true))

                healthy.on.withLock { $0 = true }
                let item = try await kosh.call(.get, "/v1/webhooks/\(webhookID)/deliveries").json["items"]?[0]
                guard case .string(let deliveryID)? = item?["id"] else { Issue.record("no delivery"); return }
                let again = try await kosh.call(.post, "/v1/webhooks/deliveries/\(deliveryID)/redeliver")
                #expect(again.status == 200, "\(again.body)")
                #expect(again.string("status") == "pending")
                let delivered = try await kosh.dispatched(by: dispatcher) {
                    try await kosh.call(.get, "/v1/webhooks/\(webhookID)/deliveries").json["items"]?[0]?["status"] == .string("delivered")
                }
                #expect(delivered)
                #expect(receiver.all.count == 4)
                let attempts = try await kosh.call(.get, "/v1/webhooks/\(webhookID)/deliveries").json["items"]?[0]?["attempts"]
                if case .array(let list)? = attempts { #expect(list.count == 4) } else { Issue.record("no attempts") }
                let endpoint2 = try await kosh.call(.get, "/v1/webhooks/\(webhookID)")
                #expect(endpoint2["failing"] == .bool(false))
            }
            try await dispatcher.shutdown()
        }
    }

    @Test("a dead delivery tells the merchant once by email; the notification log lists it masked", arguments: TestDatabases.all)
    func deadDeliveryNotifiesTheMerchantOnce(db: String) async throws {
        try await Kosh.run(db, allowPrivateWebhooks: true) { kosh in
            try await kosh.services.notifications.setMerchantEmail(merchantID: kosh.merchant.merchant.id.rawValue, email: "ops.team@merchant.example")
            let receiver = try await Receiver.start { _ in 500 }
            defer { receiver.stop() }
            let webhookID = try await kosh.registerWebhook(receiver.url)
            _ = try await kosh.capturedPayment(amount: 5_000)
            _ = try await kosh.capturedPayment(amount: 6_000)
            let dispatcher = kosh.dispatcher(schedule: [20])
            let bothDead = try await kosh.dispatched(by: dispatcher) {
                guard case .array(let items)? = try await kosh.call(.get, "/v1/webhooks/\(webhookID)/deliveries").json["items"] else { return false }
                return items.count == 2 && items.allSatisfy { $0["status"] == .string("dead") }
            }
            try await dispatcher.shutdown()
            #expect(bothDead)
            let log = try await kosh.services.notifications.log(merchantID: kosh.merchant.merchant.id.rawValue)
            let failing = log.filter { $0.template == "webhook.failing.merchant" }
            #expect(failing.count == 1, "one email per endpoint that starts failing, not one per dead delivery")
            #expect(failing.first?.channel == .email)
            #expect(failing.first?.subject == "Webhook endpoint \(webhookID) is failing")
            let listed = try await kosh.call(.get, "/v1/notifications?count=100")
            #expect(listed.status == 200, "\(listed.body)")
            guard case .array(let items)? = listed["items"] else { Issue.record("no items"); return }
            let item = items.first { $0["template"] == .string("webhook.failing.merchant") }
            #expect(item?["entity"] == .string("notification"))
            #expect(item?["status"] == .string("pending"), "no SMTP server configured in this test")
            #expect(item?["recipient"] != .string("ops.team@merchant.example"))
            if case .string(let masked)? = item?["recipient"] { #expect(masked.hasSuffix("@merchant.example") && masked.contains("*")) }
            #expect(!listed.body.contains("ops.team@"), "the full address never leaves the log")
            // Another merchant sees none of it.
            let other = try await kosh.services.merchants.create(name: "Other")
            #expect(try await kosh.call(.get, "/v1/notifications", as: other)["count"] == .int(0))
        }
    }

    @Test("events older than the retention are purged with their finished deliveries; pending ones wait", arguments: TestDatabases.all)
    func oldEventsArePurged(db: String) async throws {
        try await Kosh.run(db, allowPrivateWebhooks: true) { kosh in
            let receiver = try await Receiver.start()
            defer { receiver.stop() }
            _ = try await kosh.registerWebhook(receiver.url)
            let paymentID = try await kosh.capturedPayment(amount: 5_000)
            guard case .array(let events)? = try await kosh.call(.get, "/v1/events?count=100").json["items"] else { Issue.record("no events"); return }
            #expect(events.count >= 3, "payment.authorized, payment.captured, order.paid")
            let now = kosh.services.clock.nowMillis() / 1000
            // Within the retention: nothing goes.
            #expect(try await kosh.services.webhooks.purgeEvents(createdBefore: now - 30 * 86_400) == 0)
            // Past it, but payment.captured's delivery is still pending: that event stays, the rest go.
            let purged = try await kosh.services.webhooks.purgeEvents(createdBefore: now + 1, batch: 1)
            #expect(purged == events.count - 1)
            guard case .array(let left)? = try await kosh.call(.get, "/v1/events?count=100").json["items"] else { Issue.record("no events"); return }
            #expect(left.count == 1)
            #expect(left.first?["event"] == .string("payment.captured"))
            #expect(left.first?["payload"]?["payment"]?["entity"]?["id"] == .string(paymentID))
            let dispatcher = kosh.dispatcher()
            #expect(try await dispatcher.runOnce() == 1)
            try await dispatcher.shutdown()
            #expect(receiver.all.count == 1)
            #expect(try await kosh.deliveredCount() == 1)
            #expect(try await kosh.services.webhooks.purgeEvents(createdBefore: now + 1) == 1)
            #expect(try await kosh.call(.get, "/v1/events")["count"] == .int(0))
            if case .string(let id)? = left.first?["id"] {
                let gone = try await kosh.call(.get, "/v1/events/\(id)")
                #expect(gone.status == 400 && gone.errorDescription == "The id provided does not exist")
            }
            let rows = try await kosh.services.db.transaction { conn in
                try await conn.query("""
                    SELECT (SELECT COUNT(*) FROM webhook_deliveries) AS d, (SELECT COUNT(*) FROM webhook_attempts) AS a,
                           (SELECT COUNT(*) FROM notifications) AS n
                    """, []).first
            }
            #expect(rows?.int("d") == 0 && rows?.int("a") == 0 && rows?.int("n") == 0)
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("a hanging receiver does not delay delivery to another endpoint", arguments: TestDatabases.all)
    func hangingReceiverDoesNotStallOthers(db: String) async throws {
        try await Kosh.run(db, allowPrivateWebhooks: true) { kosh in
            let hanging = try await Receiver.start { _ in
                // Real time on purpose: a receiver that hangs past the dispatcher's 3 s timeout,
                // while the other endpoint's delivery must not wait for it (the dispatcher's own loop runs).
                try? await Task.sleep(for: .seconds(10))
                return 200
            }
            let healthy = try await Receiver.start()
            defer { hanging.stop(); healthy.stop() }
            _ = try await kosh.registerWebhook(hanging.url)
            _ = try await kosh.registerWebhook(healthy.url)
            _ = try await kosh.capturedPayment(amount: 5_000)
            let dispatcher = kosh.dispatcher(timeoutMillis: 3_000)
            let started = ContinuousClock.now
            try await running([dispatcher]) {
                // Both requests went out; the healthy one is answered and recorded while the other hangs.
                let arrived = try await eventually(seconds: 5) { !healthy.all.isEmpty && !hanging.all.isEmpty }
                #expect(arrived)
                let recorded = try await eventually(seconds: 5) { try await kosh.deliveredCount() == 1 }
                #expect(recorded)
                #expect(started.duration(to: .now) < .milliseconds(2_500), "the healthy delivery waited for the hanging one")
                #expect(hanging.all.count == 1)
            }
        }
    }

    @Test("hostile receivers (redirect loop, endless answer, bad TLS, refused connection) cost one bounded attempt each and stall no one",
          arguments: TestDatabases.all)
    func hostileReceivers(db: String) async throws {
        // One server, three kinds of hostility: a redirect to itself, an answer that never ends.
        let router = Router()
        router.post("redirect") { _, _ in Response(status: .found, headers: [.location: "/redirect"]) }
        router.post("endless") { _, _ in
            Response(status: .ok, body: ResponseBody { writer in
                let chunk = ByteBuffer(repeating: UInt8(ascii: "x"), count: 64 * 1024)
                for _ in 0..<100_000 { try await writer.write(chunk) }  // 6.4 GB if anyone read it all
                try await writer.finish(nil)
            })
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) })
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        let healthy = try await Receiver.start()
        defer { healthy.stop() }
        try await Kosh.run(db, allowPrivateWebhooks: true) { kosh in
            let redirect = try await kosh.registerWebhook("http://127.0.0.1:\(port)/redirect")
            let endless = try await kosh.registerWebhook("http://127.0.0.1:\(port)/endless")
            // TLS to a server that speaks plain HTTP: the handshake fails.
            let badTLS = try await kosh.registerWebhook("https://127.0.0.1:\(healthy.port)/hook")
            // Nothing listens on port 1: refused, at once.
            let refused = try await kosh.registerWebhook("http://127.0.0.1:1/hook")
            let good = try await kosh.registerWebhook(healthy.url)
            _ = try await kosh.capturedPayment(amount: 5_000)
            let started = ContinuousClock.now
            try await running([kosh.dispatcher(schedule: [60_000])]) {
                let arrived = try await eventually { healthy.all.count == 1 }
                #expect(arrived)
                #expect(started.duration(to: .now) < .seconds(4), "the healthy endpoint is not held up")
                let settled = try await eventually {
                    for id in [redirect, endless, badTLS, refused] {
                        guard let attempts = try await kosh.call(.get, "/v1/webhooks/\(id)/deliveries").json["items"]?[0]?["attempts"],
                              case .array(let list) = attempts, !list.isEmpty else { return false }
                    }
                    return true
                }
                #expect(settled)
            }
            func first(_ id: String) async throws -> JSON? { try await kosh.call(.get, "/v1/webhooks/\(id)/deliveries").json["items"]?[0] }
            let redirected = try await first(redirect)
            #expect(redirected?["status"] == .string("pending"), "a redirect is a failure, retried later, not followed")
            #expect(redirected?["last_status_code"] == .int(302))
            let endlessDelivery = try await first(endless)
            #expect(endlessDelivery?["status"] == .string("delivered"), "2xx is success; the rest of the answer is not read")
            if case .string(let snippet)? = endlessDelivery?["attempts"]?[0]?["response"] { #expect(snippet.utf8.count == 1_024) }
            let tls = try await first(badTLS)
            #expect(tls?["status"] == .string("pending"))
            #expect(tls?["last_status_code"] == .null)
            #expect(try await first(good)?["status"] == .string("delivered"))
            let refusal = try await first(refused)?["attempts"]?[0]
            if case .int(let millis)? = refusal?["latency_ms"] { #expect(millis < 1_000, "a refused connection fails at once") }
            if case .string(let error)? = refusal?["error"] { #expect(error.lowercased().contains("refused"), "\(error)") } else { Issue.record("no error") }
            #expect(healthy.all.count == 1, "the TLS attempt never reached the plain-HTTP handler as a request")
        }
    }

    @Test("two dispatchers on one database never deliver one delivery twice; a dead node's lease is taken over",
          arguments: TestDatabases.all)
    func twoDispatchersShareTheWork(db: String) async throws {
        try await Kosh.run(db, allowPrivateWebhooks: true) { kosh in
            let receiver = try await Receiver.start()
            defer { receiver.stop() }
            _ = try await kosh.registerWebhook(receiver.url, events: ["refund.created"])
            let merchantID = kosh.merchant.merchant.id.rawValue
            let count = 40
            for i in 0..<count {
                try await kosh.services.store.transaction { tx in
                    let now = kosh.clock.nowMillis() / 1000
                    try await tx.enqueueEvent(OutboxEvent(id: Identifiers.make(.paymentEvent), merchantID: merchantID, name: .refundCreated,
                                                          body: #"{"n":\#(i)}"#, createdAt: now))
                }
            }
            let a = kosh.dispatcher(owner: "node-a"), b = kosh.dispatcher(owner: "node-b")
            // Both nodes' passes at once, claiming against each other (32 a pass each: 40 take both).
            var sent = 0, passes = 0
            while sent < count && passes < 20 {
                async let fromA = a.runOnce()
                async let fromB = b.runOnce()
                sent += try await fromA + fromB
                passes += 1
            }
            try await a.shutdown()
            try await b.shutdown()
            #expect(sent == count)
            #expect(try await kosh.deliveredCount() == count)
            let ids = receiver.all.compactMap(\.eventID)
            #expect(ids.count == count)
            #expect(Set(ids).count == count)

            // A node claims a delivery and dies: after the lease another node sends it.
            try await kosh.services.store.transaction { tx in
                try await tx.enqueueEvent(OutboxEvent(id: Identifiers.make(.paymentEvent), merchantID: merchantID, name: .refundCreated,
                                                      body: #"{"n":"orphan"}"#, createdAt: kosh.clock.nowMillis() / 1000))
            }
            let claimed = try await kosh.services.webhooks.claimDue(owner: "node-dead", leaseMillis: 300, limit: 10)
            #expect(claimed.count == 1)
            let c = kosh.dispatcher(owner: "node-c")
            #expect(try await c.runOnce() == 0)
            kosh.clock.advance(byMillis: 299)
            #expect(try await c.runOnce() == 0, "the lease still holds")
            kosh.clock.advance(byMillis: 2)
            #expect(try await c.runOnce() == 1)
            #expect(receiver.all.count == count + 1)
            #expect(try await kosh.deliveredCount() == count + 1)
            try await c.shutdown()
        }
    }

    @Test("deliveries to a paused endpoint wait until it is active again", arguments: TestDatabases.all)
    func pausedEndpointWaits(db: String) async throws {
        try await Kosh.run(db, allowPrivateWebhooks: true) { kosh in
            let receiver = try await Receiver.start()
            defer { receiver.stop() }
            let webhookID = try await kosh.registerWebhook(receiver.url)
            _ = try await kosh.capturedPayment(amount: 5_000)
            #expect(try await kosh.call(.patch, "/v1/webhooks/\(webhookID)", #"{"active": false}"#).status == 200)
            let dispatcher = kosh.dispatcher()
            #expect(try await dispatcher.runOnce() == 0)
            #expect(try await kosh.call(.patch, "/v1/webhooks/\(webhookID)", #"{"active": true}"#).status == 200)
            #expect(try await dispatcher.runOnce() == 1)
            #expect(receiver.all.count == 1)
            try await dispatcher.shutdown()
        }
    }

    /// `kosh serve` is killed (-9) while a POST is in flight: after a restart the delivery's
    /// lease runs out and it is sent again and recorded; nothing is lost.
    @Test("kill -9 of the server mid-delivery loses nothing")
    func killNineMidDelivery() async throws {
        let receiver = try await Receiver.start { n in
            // Real time on purpose: the first POST is held (10 s, past the kill and restart) while
            // a real `kosh serve` process is killed; the lease then runs out on its clock.
            if n == 1 { try? await Task.sleep(for: .seconds(10)) }
            return 200
        }
        defer { receiver.stop() }
        let dir = try CommandLineTests.scratch()
        let database = "sqlite://\(dir.path)/kosh.sqlite"
        let port = CommandLineTests.freePort()
        let env = ["KOSH_WEBHOOK_TIMEOUT_MS": "8000", "KOSH_WEBHOOK_LEASE_MS": "9000", "KOSH_SANDBOX": "off", "KOSH_WEBHOOK_ALLOW_PRIVATE": "1"]
        var (server, _, _) = try CommandLineTests.start(["serve", "--port", "\(port)", "--database", database], in: dir, env: env)
        try await CommandLineTests.waitForHealth(port: port)
        let created = try CommandLineTests.run(["merchant", "create", "--name", "Hook Shop", "--database", database], in: dir)
        let creds = try JSON.parse(created.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let auth = (CommandLineTests.string(creds, "key_id")!, CommandLineTests.string(creds, "key_secret")!)
        let base = "http://127.0.0.1:\(port)"
        let (hookStatus, hook) = try await CommandLineTests.http("POST", "\(base)/v1/webhooks",
                                                                 body: #"{"url": "\#(receiver.url)", "events": ["payment.captured"]}"#, auth: auth)
        #expect(hookStatus == 200)
        let webhookID = try #require(CommandLineTests.string(hook, "id"))
        try await capturedPaymentOverHTTP(base: base, auth: auth)

        // The POST is in flight (the receiver holds it): kill -9, then start again.
        #expect(try await eventually { receiver.all.count == 1 })
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        (server, _, _) = try CommandLineTests.start(["serve", "--port", "\(port)", "--database", database], in: dir, env: env)
        defer { kill(server.processIdentifier, SIGTERM); server.waitUntilExit() }
        try await CommandLineTests.waitForHealth(port: port)
        let delivered = try await eventually(seconds: 30) {
            let (_, list) = try await CommandLineTests.http("GET", "\(base)/v1/webhooks/\(webhookID)/deliveries", auth: auth)
            return list["items"]?[0]?["status"] == .string("delivered")
        }
        #expect(delivered)
        let receipts = receiver.all
        #expect(receipts.count == 2)
        #expect(receipts.count == 2 && receipts[0].eventID == receipts[1].eventID && receipts[0].body == receipts[1].body)
    }

    @Test("the webhooks API validates input and keeps merchants apart", arguments: TestDatabases.all)
    func apiValidationAndIsolation(db: String) async throws {
        try await Kosh.run(db) { kosh in
            for body in [#"{"url": "ftp://example.com/x", "events": ["payment.captured"]}"#,
                         #"{"url": "http://example.com/\#(String(repeating: "a", count: 2050))", "events": ["payment.captured"]}"#,
                         #"{"url": "https://example.com/x", "events": ["payment.exploded"]}"#,
                         #"{"url": "https://example.com/x", "events": []}"#,
                         #"{"url": "https://example.com/x"}"#,
                         #"{"url": "https://example.com/x", "events": ["payment.captured"], "secret": "short"}"#,
                         #"{"url": "https://example.com/x", "events": ["payment.captured"], "colour": "red"}"#] {
                let reply = try await kosh.call(.post, "/v1/webhooks", body)
                #expect(reply.status == 400, "\(body) → \(reply.body)")
                #expect(reply.json["error"]?["code"] == .string("BAD_REQUEST_ERROR"))
            }
            let created = try await kosh.call(.post, "/v1/webhooks", #"{"url": "https://example.com/hook", "events": ["payment.captured"]}"#)
            #expect(created.status == 200)
            #expect((created.string("secret") ?? "").count == 32)
            let id = try #require(created.string("id"))
            let updated = try await kosh.call(.patch, "/v1/webhooks/\(id)", #"{"active": false, "events": ["refund.processed", "refund.failed"]}"#)
            #expect(updated.status == 200, "\(updated.body)")
            #expect(updated["active"] == .bool(false))
            #expect(updated["events"] == .array([.string("refund.processed"), .string("refund.failed")]))
            #expect(updated["secret"] == nil)
            let list = try await kosh.call(.get, "/v1/webhooks")
            #expect(list.int("count") == 1)

            let other = try await kosh.services.merchants.create(name: "Other")
            for (method, path) in [(HTTPRequest.Method.get, "/v1/webhooks/\(id)"), (.patch, "/v1/webhooks/\(id)"),
                                   (.delete, "/v1/webhooks/\(id)"), (.get, "/v1/webhooks/\(id)/deliveries")] {
                let reply = try await kosh.call(method, path, method == .patch ? #"{"active": true}"# : nil, as: other)
                #expect(reply.status == 400)
                #expect(reply.errorDescription == "The id provided does not exist")
            }
            #expect(try await kosh.call(.get, "/v1/webhooks", as: other).int("count") == 0)
            #expect(try await kosh.call(.get, "/v1/events/evt_AAAAAAAAAAAAAA").errorDescription == "The id provided does not exist")
            #expect(try await kosh.call(.post, "/v1/webhooks/deliveries/whdl_AAAAAAAAAAAAAA/redeliver").errorDescription
                    == "The id provided does not exist")

            let deleted = try await kosh.call(.delete, "/v1/webhooks/\(id)")
            #expect(deleted["deleted"] == .bool(true))
            #expect(try await kosh.call(.get, "/v1/webhooks/\(id)").status == 400)
        }
    }
}

/// Runs the official Razorpay Python SDK's `verify_webhook_signature`; nil when it is not installed.
func razorpaySDKVerify(body: String, signature: String, secret: String) throws -> String? {
    let check = Process()
    check.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    check.arguments = ["python3", "-c", "import razorpay"]
    check.standardError = FileHandle.nullDevice
    try check.run()
    check.waitUntilExit()
    guard check.terminationStatus == 0 else { return nil }
    let script = """
        import sys, razorpay
        body = sys.stdin.read()
        client = razorpay.Client(auth=("rzp_test_x", "x"))
        try:
            client.utility.verify_webhook_signature(body, sys.argv[1], sys.argv[2])
            print("ok")
        except razorpay.errors.SignatureVerificationError:
            print("rejected")
        """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script, signature, secret]
    let input = Pipe(), output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    input.fileHandleForWriting.write(Data(body.utf8))
    try input.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// A ₹100 payment on a new order through a running `kosh serve` at `base`: created,
/// authorised (the test rail), captured.
func capturedPaymentOverHTTP(base: String, auth: (String, String)) async throws {
    let (_, order) = try await CommandLineTests.http("POST", "\(base)/v1/orders", body: #"{"amount": 10000, "currency": "INR"}"#, auth: auth)
    let orderID = try #require(CommandLineTests.string(order, "id"))
    let (_, pay) = try await CommandLineTests.http("POST", "\(base)/v1/payments/create/upi", body: """
        {"order_id": "\(orderID)", "amount": 10000, "currency": "INR", "vpa": "success@razorpay", "email": "a@b.co", "contact": "9123456789"}
        """, auth: auth)
    let paymentID = try #require(CommandLineTests.string(pay, "razorpay_payment_id"))
    let authorized = try await eventually {
        CommandLineTests.string(try await CommandLineTests.http("GET", "\(base)/v1/payments/\(paymentID)", auth: auth).1, "status") == "authorized"
    }
    #expect(authorized)
    let (captureStatus, _) = try await CommandLineTests.http("POST", "\(base)/v1/payments/\(paymentID)/capture",
                                                             body: #"{"amount": 10000, "currency": "INR"}"#, auth: auth)
    #expect(captureStatus == 200)
}

/// Two `kosh serve` processes on one database (PostgreSQL when `KOSH_TEST_POSTGRES_URL` is set,
/// else one SQLite file), as an operator runs them.
@Suite("Webhooks across two nodes", .serialized, .timeLimit(.minutes(3)))
struct WebhookTwoNodeTests {
    /// A receiver that takes its time and remembers, per event, how many POSTs of it were in
    /// flight at once.
    final class Tally: Sendable {
        struct State {
            var inFlight: [String: Int] = [:]
            var maxInFlight: [String: Int] = [:]
            var received: [String: Int] = [:]
            var firstAt: [String: ContinuousClock.Instant] = [:]
            var total = 0
        }
        let state = Mutex(State())
    }

    static func databaseURL(in dir: URL) async throws -> String {
        guard let base = ProcessInfo.processInfo.environment["KOSH_TEST_POSTGRES_URL"], !base.isEmpty else {
            return "sqlite://\(dir.path)/kosh.sqlite"
        }
        let name = "kosh_test_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
        let admin = try await Databases.open(try DatabaseURL(base), logger: Logger(label: "test"), migrate: false)
        try await PostgresAdmin.createDatabase(admin, name: name)
        try await admin.close()
        let (head, query) = base.firstIndex(of: "?").map { (String(base[..<$0]), String(base[$0...])) } ?? (base, "")
        return String(head[...head.lastIndex(of: "/")!]) + name + query
    }

    @Test("two kosh serve processes share the deliveries, never send one twice at once, and the survivor finishes a killed node's")
    func twoServersShareAndSurviveAKill() async throws {
        let tally = Tally()
        let router = Router()
        router.post("hook") { request, _ -> Response in
            let eventID = request.headers[.init("X-Razorpay-Event-Id")!] ?? "?"
            tally.state.withLock { s in
                s.inFlight[eventID, default: 0] += 1
                s.maxInFlight[eventID] = max(s.maxInFlight[eventID] ?? 0, s.inFlight[eventID]!)
                s.received[eventID, default: 0] += 1
                if s.firstAt[eventID] == nil { s.firstAt[eventID] = .now }
                s.total += 1
            }
            // Real time on purpose: each POST stays in flight 0.7 s, so two real processes overlap
            // and one is killed while it holds some (their leases run on their own clocks).
            try? await Task.sleep(for: .milliseconds(700))
            tally.state.withLock { $0.inFlight[eventID, default: 1] -= 1 }
            return Response(status: .ok)
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) })
        let receiver = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { receiver.cancel() }
        var iterator = ports.makeAsyncIterator()
        let hookPort = try #require(await iterator.next())

        let dir = try CommandLineTests.scratch()
        let database = try await Self.databaseURL(in: dir)
        let env = ["KOSH_WEBHOOK_TIMEOUT_MS": "2000", "KOSH_WEBHOOK_LEASE_MS": "3000", "KOSH_SANDBOX": "off", "KOSH_WEBHOOK_ALLOW_PRIVATE": "1"]
        let portA = CommandLineTests.freePort(), portB = portA + 1
        let (nodeA, _, _) = try CommandLineTests.start(["serve", "--port", "\(portA)", "--database", database], in: dir, env: env)
        var aAlive = true
        defer { if aAlive { kill(nodeA.processIdentifier, SIGKILL) } }
        try await CommandLineTests.waitForHealth(port: portA)
        let (nodeB, _, _) = try CommandLineTests.start(["serve", "--port", "\(portB)", "--database", database], in: dir, env: env)
        defer { kill(nodeB.processIdentifier, SIGTERM); nodeB.waitUntilExit() }
        try await CommandLineTests.waitForHealth(port: portB)

        let created = try CommandLineTests.run(["merchant", "create", "--name", "Two Nodes", "--database", database], in: dir)
        let creds = try JSON.parse(created.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let merchantID = try #require(CommandLineTests.string(creds, "merchant_id"))
        let auth = (CommandLineTests.string(creds, "key_id")!, CommandLineTests.string(creds, "key_secret")!)
        let hook = try CommandLineTests.run(["merchant", "webhook", "create", "--merchant", merchantID, "--url", "http://127.0.0.1:\(hookPort)/hook",
                                             "--events", "payment.authorized,payment.captured,order.paid", "--database", database], in: dir, env: env)
        #expect(hook.status == 0, "\(hook.stderr)")
        let webhookID = try #require(CommandLineTests.string(try JSON.parse(hook.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "id"))

        // Eight captured payments, half through each node: 24 events.
        let payments = 8
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<payments {
                let base = "http://127.0.0.1:\(i % 2 == 0 ? portA : portB)"
                group.addTask { try await capturedPaymentOverHTTP(base: base, auth: auth) }
            }
            try await group.waitForAll()
        }
        // Some POSTs are out (each takes 0.7 s): kill node A with whatever it holds.
        #expect(try await eventually { tally.state.withLock { $0.total } >= 4 })
        kill(nodeA.processIdentifier, SIGKILL)
        nodeA.waitUntilExit()
        aAlive = false
        let killedAt = ContinuousClock.now

        let allDelivered = try await eventually(seconds: 40) {
            let (_, list) = try await CommandLineTests.http("GET", "http://127.0.0.1:\(portB)/v1/webhooks/\(webhookID)/deliveries?count=100", auth: auth)
            guard case .array(let items)? = list["items"], items.count == payments * 3 else { return false }
            return items.allSatisfy { $0["status"] == .string("delivered") }
        }
        #expect(allDelivered)
        let final = tally.state.withLock { $0 }
        #expect(final.received.count == payments * 3, "every event arrived")
        #expect(final.maxInFlight.values.allSatisfy { $0 == 1 }, "no event was in flight twice at once: \(final.maxInFlight.filter { $0.value > 1 })")
        // Only what the killed node had out is sent again: its POSTs were on the wire when it died
        // (the receiver may read one a moment later), never one first sent by the survivor.
        let duplicated = final.received.filter { $0.value > 1 }.keys
        let late = duplicated.filter { final.firstAt[$0].map { $0 > killedAt + .seconds(1) } ?? true }
        #expect(late.isEmpty, "sent twice though first sent after the kill: \(late)")
    }
}
