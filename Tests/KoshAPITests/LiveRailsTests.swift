import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KoshApp
import KoshFlows
import KoshCore
import KoshJSON
import KoshRails
import KoshStorage
import KoshTesting
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// Kosh in live mode against the sandbox, both real HTTP servers on loopback: payments go
/// through the connectors, callbacks come back signed, the janitor runs in the background.
struct LiveKosh: Sendable {
    let kosh: Kosh
    let sandboxURL: String
    let admin: HTTPClient
    let signer: RailSigner
    /// Kosh's clock: real time (the sandbox keeps it), which a test may step forward.
    let clock: LeapClock
    var services: KoshServices { kosh.services }

    struct Tuning: Sendable {
        var pendingTimeoutMillis: Int64 = 60_000
        var lateCheckIntervalMillis: Int64 = 60_000
        var breaker = CircuitBreakerPolicy(windowMillis: 10_000, minimumCalls: 8, failureRatePercent: 50, openMillis: 1_500, halfOpenProbes: 2)
        var lateAuthorization: LateAuthorizationPolicy = .refund
    }

    static func run(_ kind: String, tuning: Tuning = Tuning(), _ body: @Sendable (LiveKosh) async throws -> Void) async throws {
        let logger = Logger(label: "kosh-live-test")
        let (sandbox, sandboxTask) = try await InProcessSandbox.start(seed: 42, secret: "live-test-secret", logger: logger)
        var config = try await TestDatabases.configuration(kind)
        config.railsURL = sandbox.url
        config.railsSecret = "live-test-secret"
        config.breaker = tuning.breaker
        config.routing = RoutingPolicy(explorationPercent: 0)
        // Generous enough for a loaded CI machine; the timeout test hangs the switch longer.
        config.upstreamTimeouts = (initiate: 3_000, status: 2_000, refund: 3_000)
        config.gateway = GatewaySettings(firstCheckAfterMillis: 100, checkIntervalMillis: 100, submitGraceMillis: 1_000,
                                         pollWindowMillis: 3_000, slowCheckIntervalMillis: 200,
                                         pendingTimeoutMillis: tuning.pendingTimeoutMillis, lateWatchMillis: 60_000,
                                         lateCheckIntervalMillis: tuning.lateCheckIntervalMillis)
        config.gateway.resendInitiationAfterMillis = 2_000
        let clock = LeapClock()
        let services = try await KoshServices.open(config, logger: logger, clock: clock)
        let merchant = try await services.merchants.create(name: "Live Merchant", mode: .live, lateAuthorization: tuning.lateAuthorization)
        let admin = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        let janitor = Task { try await Janitor(services: services, intervalMillis: 50, logger: logger).run() }
        do {
            let app = Application(router: services.router())
            try await app.test(.live) { client in
                services.upstream?.setCallbackBaseURL("http://127.0.0.1:\(client.port!)")
                let live = LiveKosh(kosh: Kosh(services: services, client: client, merchant: merchant, manualClock: nil), sandboxURL: sandbox.url,
                                    admin: admin, signer: RailSigner(secret: "live-test-secret"), clock: clock)
                try await live.sandbox(.PUT, "/sandbox/v1/config", #"{"payer_delay_ms": 150, "late_delay_ms": 2500, "collect_expiry_ms": 1200}"#)
                try await body(live)
            }
        } catch {
            janitor.cancel()
            try? await admin.shutdown()
            try? await services.close()
            await sandbox.stop()
            throw error
        }
        janitor.cancel()
        _ = await janitor.result
        try await admin.shutdown()
        try await services.close()
        await sandbox.stop()
        _ = try? await sandboxTask.value
    }

    /// A signed call to the sandbox's own API (faults, payer app, stats).
    @discardableResult
    func sandbox(_ method: NIOHTTP1.HTTPMethod, _ path: String, _ body: String? = nil) async throws -> (Int, JSON) {
        let request = signer.request(baseURL: sandboxURL, method: method, path: path, body: body)
        let response = try await admin.execute(request, timeout: .seconds(10))
        let buffer = try await response.body.collect(upTo: 1 << 20)
        let json = (try? JSON.parse(buffer.readableBytesView)) ?? .null
        return (Int(response.status.code), json)
    }

    func pay(vpa: String, amount: Int64 = 50_000, as credentials: MerchantCredentials? = nil) async throws -> (order: String, payment: String) {
        let order = try await kosh.createOrder(amount: amount, as: credentials)
        let reply = try await kosh.createPayment(order: order, amount: amount, vpa: vpa, as: credentials)
        #expect(reply.status == 200, "\(reply.body)")
        return (order, try #require(reply.string("razorpay_payment_id")))
    }

    /// Waits (the janitor and callbacks working) until the payment satisfies `done`.
    @discardableResult
    func wait(_ paymentID: String, seconds: Double = 20, sourceLocation: SourceLocation = #_sourceLocation,
              until done: (Payment) -> Bool) async throws -> Payment {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let payment = try await services.flows.payment(id: ID(paymentID))
            if done(payment) { return payment }
            // Real time on purpose: the sandbox answers and calls back over real HTTP after its own
            // real-time delays, and the janitor runs in the background, as in `kosh serve`.
            try await Task.sleep(for: .milliseconds(25))
        }
        let payment = try await services.flows.payment(id: ID(paymentID))
        Issue.record("payment \(paymentID) stuck in \(payment.state) on \(payment.rail)", sourceLocation: sourceLocation)
        return payment
    }

    func settled(_ paymentID: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Payment {
        try await wait(paymentID, sourceLocation: sourceLocation) { $0.state != .created && $0.state != .pending }
    }

    func attempts(_ paymentID: String, as credentials: MerchantCredentials? = nil) async throws -> [JSON] {
        let reply = try await kosh.call(.get, "/v1/payments/\(paymentID)/attempts", as: credentials)
        #expect(reply.status == 200, "\(reply.body)")
        guard case .array(let items)? = reply["items"] else { return [] }
        return items
    }

    func events(_ paymentID: String, _ name: String) async throws -> Int {
        try await services.db.transaction { conn in
            try await conn.query("SELECT COUNT(*) AS n FROM payment_events WHERE entity_id = ? AND event = ?", [.text(paymentID), .text(name)])
        }.first?.int("n").map(Int.init) ?? 0
    }
}

extension JSON {
    var text: String? { if case .string(let s) = self { return s } else { return nil } }
}

@Suite("Live mode: connectors, routing and failover against the sandbox", .serialized)
struct LiveRailsTests {
    @Test("collect: success, decline, insufficient funds and timeout come back with Razorpay's fields", arguments: TestDatabases.all)
    func collectOutcomes(db: String) async throws {
        try await LiveKosh.run(db) { live in
            let ok = try await live.pay(vpa: "success.asha@okhdfcbank")
            let authorized = try await live.settled(ok.payment)
            #expect(authorized.state == .authorized)
            #expect(authorized.rail == "upi_switch", "the cheapest route with no history goes first")
            let attempts = try await live.attempts(ok.payment)
            #expect(attempts.count == 1)
            #expect(attempts.first?["status"]?.text == "authorized")
            #expect(attempts.first?["reason"]?.text?.hasPrefix("best score") == true)

            let capture = try await live.kosh.call(.post, "/v1/payments/\(ok.payment)/capture", #"{"amount": 50000, "currency": "INR"}"#)
            #expect(capture.status == 200, "\(capture.body)")
            let refund = try await live.kosh.call(.post, "/v1/payments/\(ok.payment)/refund", #"{"amount": 10000}"#)
            #expect(refund.status == 200, "\(refund.body)")
            let refundID = try #require(refund.string("id"))
            let fetched = try await live.kosh.call(.get, "/v1/refunds/\(refundID)")
            #expect(fetched.string("status") == "processed", "the switch refunded it: \(fetched.body)")

            let cases: [(String, String)] = [
                ("failure@ybl", "payment_declined"), ("poor.ravi@paytm", "insufficient_funds"), ("timeout@okicici", "payment_timed_out"),
            ]
            for (vpa, reason) in cases {
                let p = try await live.pay(vpa: vpa)
                let failed = try await live.settled(p.payment)
                #expect(failed.state == .failed, "\(vpa)")
                #expect(failed.machine.failure?.reason == reason, "\(vpa): \(String(describing: failed.machine.failure))")
                let reply = try await live.kosh.call(.get, "/v1/payments/\(p.payment)")
                #expect(reply.string("status") == "failed")
                #expect(reply.string("error_reason") == reason)
            }
            // Over ₹1,00,000 the switch is not a route; an aggregator takes it and the bank applies the limit.
            let big = try await live.pay(vpa: "success@oksbi", amount: 15_000_000)
            let bigPayment = try await live.settled(big.payment)
            #expect(bigPayment.rail != "upi_switch")
            #expect(bigPayment.machine.failure?.reason == "transaction_limit_exceeded")
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("intent: the payment gets a upi://pay link; the payer's app pays it", arguments: TestDatabases.all)
    func intent(db: String) async throws {
        try await LiveKosh.run(db) { live in
            // The request must outlive a loaded machine's pause between create and pay (with
            // 1.2 s the app once found it expired: 409), as in the decline test.
            try await live.sandbox(.PUT, "/sandbox/v1/config", #"{"collect_expiry_ms": 10000}"#)
            let order = try await live.kosh.createOrder(amount: 25_000)
            let reply = try await live.kosh.call(.post, "/v1/payments/create/upi", """
                {"order_id": "\(order)", "amount": 25000, "currency": "INR", "method": "upi", "upi": {"flow": "intent"},
                 "email": "a@example.com", "contact": "9123456789"}
                """)
            #expect(reply.status == 200, "\(reply.body)")
            let paymentID = try #require(reply.string("razorpay_payment_id"))
            let link = try #require(reply.string("link"))
            #expect(link.hasPrefix("upi://pay?"))
            #expect(link.contains("am=250.00") && link.contains("tr=\(paymentID)") && link.contains("cu=INR"))
            let (status, _) = try await live.sandbox(.POST, "/upi/v1/app/pay",
                                                     #"{"link": "\#(link)", "payer_vpa": "success.meera@ybl"}"#)
            #expect(status == 202)
            let payment = try await live.settled(paymentID)
            #expect(payment.state == .authorized)
            // The payer chose their VPA in the app: Kosh learns it from the switch and shows it.
            #expect(payment.vpa == "success.meera@ybl")
            let fetched = try await live.kosh.call(.get, "/v1/payments/\(paymentID)")
            #expect(fetched.string("vpa") == "success.meera@ybl")

            // Declined in the app, and never paid at all (the request expires).
            for (payer, reason) in [("failure.ravi@ybl", "payment_declined"), (nil, "payment_timed_out")] as [(String?, String)] {
                // The request the app declines must outlive a loaded machine's pause between
                // create and pay (with 1.2 s the app once found it expired: 409); the one never
                // paid keeps the short expiry, so the test does not wait long for it.
                try await live.sandbox(.PUT, "/sandbox/v1/config", payer == nil ? #"{"collect_expiry_ms": 1200}"# : #"{"collect_expiry_ms": 10000}"#)
                let order = try await live.kosh.createOrder(amount: 30_000)
                let reply = try await live.kosh.call(.post, "/v1/payments/create/upi", """
                    {"order_id": "\(order)", "amount": 30000, "currency": "INR", "upi": {"flow": "intent"},
                     "email": "a@example.com", "contact": "9123456789"}
                    """)
                let id = try #require(reply.string("razorpay_payment_id"))
                if let payer, let link = reply.string("link") {
                    let (status, _) = try await live.sandbox(.POST, "/upi/v1/app/pay", #"{"link": "\#(link)", "payer_vpa": "\#(payer)"}"#)
                    #expect(status == 202)
                }
                let failed = try await live.settled(id)
                #expect(failed.state == .failed)
                #expect(failed.machine.failure?.reason == reason, "\(String(describing: failed.machine.failure))")
            }
        }
    }

    @Test("a route that does not answer in time: no failover (the payer may be charged); the payment resolves there", arguments: TestDatabases.all)
    func timeoutNeverFailsOver(db: String) async throws {
        try await LiveKosh.run(db) { live in
            // The switch takes 4 s to answer; Kosh gives up on the call after 3 s. The switch did the work.
            try await live.sandbox(.PUT, "/sandbox/v1/faults/upi_switch", #"{"timeout_rate": 1.0, "hang_ms": 4000}"#)
            let p = try await live.pay(vpa: "success@okhdfcbank")
            let afterSubmit = try await live.services.flows.payment(id: ID(p.payment))
            #expect(afterSubmit.state == .pending)
            #expect(afterSubmit.rail == "upi_switch")
            let attempts = try await live.attempts(p.payment)
            #expect(attempts.map { $0["status"]?.text } == ["unknown"], "no second route was tried")
            try await live.sandbox(.PUT, "/sandbox/v1/faults/upi_switch", #"{"timeout_rate": 0}"#)
            let payment = try await live.settled(p.payment)
            #expect(payment.state == .authorized)
            #expect(payment.rail == "upi_switch")
            #expect(try await live.attempts(p.payment).count == 1)
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("a connector that is down: the payment fails over to the next route", arguments: TestDatabases.all)
    func failover(db: String) async throws {
        try await LiveKosh.run(db) { live in
            let (status, _) = try await live.sandbox(.PUT, "/sandbox/v1/faults/upi_switch", #"{"down": true}"#)
            #expect(status == 200)
            let p = try await live.pay(vpa: "success@paytm")
            let payment = try await live.settled(p.payment)
            #expect(payment.state == .authorized)
            #expect(payment.rail != "upi_switch")
            let attempts = try await live.attempts(p.payment)
            #expect(attempts.map { $0["connector"]?.text } == ["upi_switch", payment.rail])
            #expect(attempts.map { $0["status"]?.text } == ["unavailable", "authorized"])
            #expect(attempts.last?["reason"]?.text?.hasPrefix("failover") == true)
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("a refund the rail cannot take waits with backoff, is not resent before it is due, then settles", arguments: TestDatabases.all)
    func refundBackoff(db: String) async throws {
        try await LiveKosh.run(db) { live in
            let ok = try await live.pay(vpa: "success.asha@okhdfcbank")
            #expect(try await live.settled(ok.payment).state == .authorized)
            let capture = try await live.kosh.call(.post, "/v1/payments/\(ok.payment)/capture", #"{"amount": 50000, "currency": "INR"}"#)
            #expect(capture.status == 200, "\(capture.body)")
            #expect(try await live.sandbox(.PUT, "/sandbox/v1/faults/upi_switch", #"{"down": true}"#).0 == 200)
            let refund = try await live.kosh.call(.post, "/v1/payments/\(ok.payment)/refund", #"{"amount": 10000}"#)
            #expect(refund.status == 200, "\(refund.body)")
            let refundID = try #require(refund.string("id"))
            #expect(refund.string("status") == "pending")
            func schedule() async throws -> (Int64, Int64) {
                let row = try await live.kosh.services.db.transaction { conn in
                    try await conn.query("SELECT attempts, next_attempt_at FROM refunds WHERE id = ?", [.text(refundID)]).first
                }
                return (row?.int("attempts") ?? -1, row?.int("next_attempt_at") ?? -1)
            }
            let sentAt = live.kosh.services.clock.nowMillis()
            let (attempts, next) = try await schedule()
            #expect(attempts == 1, "the first try after commit failed and was counted")
            // Operators see it, and why (`kosh refunds stuck`).
            let stuck = try await live.kosh.services.store.stuckRefunds(minimumAttempts: 1)
            #expect(stuck.map(\.id) == [refundID])
            #expect(stuck.first?.lastError?.hasPrefix("the call to upi_switch failed") == true, "\(stuck)")
            #expect(stuck.first?.autoRefund == false)
            #expect(try await live.kosh.services.store.stuckRefunds(minimumAttempts: 2).isEmpty)
            #expect(next > sentAt + 3_000 && next <= sentAt + 5_500, "next try in 5 s: \(next - sentAt) ms")
            // Not due: the janitor's pass leaves it alone (the rail sees no call).
            let (_, before) = try await live.sandbox(.GET, "/sandbox/v1/stats")
            #expect(try await live.kosh.services.flows.sendPendingRefunds(olderThanMillis: 0) == 0)
            let (_, after) = try await live.sandbox(.GET, "/sandbox/v1/stats")
            #expect(before["upi_switch"]?["calls"] == after["upi_switch"]?["calls"])
            // Healed and due (as if 5 s passed): it settles.
            #expect(try await live.sandbox(.PUT, "/sandbox/v1/faults/upi_switch", #"{"down": false}"#).0 == 200)
            try await live.kosh.services.db.transaction { conn in
                _ = try await conn.query("UPDATE refunds SET next_attempt_at = 0 WHERE id = ?", [.text(refundID)])
            }
            _ = try await live.kosh.services.flows.sendPendingRefunds(olderThanMillis: 0)
            let fetched = try await live.kosh.call(.get, "/v1/refunds/\(refundID)")
            #expect(fetched.string("status") == "processed", "\(fetched.body)")
            #expect(try await live.kosh.services.store.stuckRefunds(minimumAttempts: 1).isEmpty)
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("a failing connector opens its breaker, the downtime shows, payments still succeed, then it recovers", arguments: TestDatabases.all)
    func breaker(db: String) async throws {
        try await LiveKosh.run(db) { live in
            // A merchant who prefers the switch: every payment tries it first. (That exactly half
            // failing calls open a breaker is shown by the CircuitBreaker unit tests; here the
            // switch fails every call so the run is deterministic.)
            let prober = try await live.services.merchants.create(name: "Prober", mode: .live, routePreference: ["upi_switch"])
            try await live.sandbox(.PUT, "/sandbox/v1/faults/upi_switch", #"{"error_rate": 1.0}"#)
            var ids: [String] = []
            for _ in 0..<4 { ids.append(try await live.pay(vpa: "success@okhdfcbank", as: prober).payment) }
            for id in ids {
                let payment = try await live.settled(id)
                #expect(payment.state == .authorized, "failover keeps payments succeeding")
                #expect(payment.rail != "upi_switch")
            }
            let states = try #require(live.services.live).breakerStates()
            #expect(states["upi_switch"] == .open, "\(states)")
            let down = try await live.kosh.call(.get, "/v1/payments/downtimes")
            #expect(down.status == 200)
            guard case .array(let items)? = down["items"] else { Issue.record("no items: \(down.body)"); return }
            let open = items.first { $0["instrument"]?["psp"]?.text == "upi_switch" }
            #expect(open?["status"]?.text == "started", "\(down.body)")
            #expect(open?["entity"]?.text == "payment.downtime")
            let metrics = try await live.kosh.call(.get, "/metrics")
            #expect(metrics.body.contains(#"kosh_circuit_breaker_opened_total{connector="upi_switch"} 1"#), "\(metrics.body)")
            // While open, new payments do not even try the switch, though the merchant prefers it.
            let during = try await live.pay(vpa: "success@okhdfcbank", as: prober)
            _ = try await live.settled(during.payment)
            #expect(try await live.attempts(during.payment, as: prober).first?["connector"]?.text != "upi_switch")

            // The switch heals; after the open period probes go through and close the breaker.
            try await live.sandbox(.PUT, "/sandbox/v1/faults/upi_switch", #"{"error_rate": 0}"#)
            live.clock.advance(byMillis: 1_600)  // past the breaker's 1.5 s open period
            for _ in 0..<3 {
                let p = try await live.pay(vpa: "success@okhdfcbank", as: prober)
                #expect(try await live.settled(p.payment).state == .authorized)
            }
            #expect(try #require(live.services.live).breakerStates()["upi_switch"] == .closed)
            let after = try await live.kosh.call(.get, "/v1/payments/downtimes")
            guard case .array(let resolved)? = after["items"] else { return }
            let entry = resolved.first { $0["instrument"]?["psp"]?.text == "upi_switch" }
            #expect(entry?["status"]?.text == "resolved", "\(after.body)")
            #expect(entry?["end"] != .null)
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("lost callbacks: the janitor's status checks resolve the payment", arguments: TestDatabases.all)
    func lostCallback(db: String) async throws {
        try await LiveKosh.run(db) { live in
            try await live.sandbox(.PUT, "/sandbox/v1/faults/upi_switch", #"{"drop_callback_rate": 1.0}"#)
            let p = try await live.pay(vpa: "success@okicici")
            #expect(try await live.settled(p.payment).state == .authorized)
            let (_, stats) = try await live.sandbox(.GET, "/sandbox/v1/stats")
            #expect((stats["upi_switch"]?["callbacks_dropped"]?.intValueForTest ?? 0) >= 1, "\(stats.serialized())")
        }
    }

    @Test("duplicate callbacks have exactly one effect", arguments: TestDatabases.all)
    func duplicateCallbacks(db: String) async throws {
        try await LiveKosh.run(db) { live in
            for rail in ["upi_switch", "alphapay", "betapay"] {
                try await live.sandbox(.PUT, "/sandbox/v1/faults/\(rail)", #"{"duplicate_callback_rate": 1.0}"#)
            }
            let p = try await live.pay(vpa: "success@ybl")
            #expect(try await live.settled(p.payment).state == .authorized)
            // Real time on purpose: the sandbox sends the second copy on its own, over HTTP; nothing
            // tells the test it has been handled, so it gives it a second.
            try await Task.sleep(for: .seconds(1))
            #expect(try await live.events(p.payment, "authorize") == 1)
            let (_, stats) = try await live.sandbox(.GET, "/sandbox/v1/stats")
            #expect((stats["upi_switch"]?["callbacks_duplicated"]?.intValueForTest ?? 0) >= 1, "\(stats.serialized())")
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("a late authorisation after Kosh gave up is refunded in full (merchant policy refund)", arguments: TestDatabases.all)
    func lateAuthorizationRefunded(db: String) async throws {
        try await LiveKosh.run(db, tuning: .init(pendingTimeoutMillis: 1_000, lateCheckIntervalMillis: 300)) { live in
            try await live.sandbox(.PUT, "/sandbox/v1/config", #"{"collect_expiry_ms": 20000}"#)
            let p = try await live.pay(vpa: "late.kiran@ybl")
            let failed = try await live.wait(p.payment) { $0.state == .failed }
            #expect(failed.machine.failure?.reason == "payment_timed_out")
            // The order is free again: the customer pays it another way.
            let retry = try await live.kosh.createPayment(order: p.order, vpa: "success@ybl")
            #expect(retry.status == 200, "\(retry.body)")
            let retryID = try #require(retry.string("razorpay_payment_id"))
            #expect(try await live.settled(retryID).state == .authorized)
            _ = try await live.kosh.call(.post, "/v1/payments/\(retryID)/capture", #"{"amount": 50000, "currency": "INR"}"#)
            // The bank approves the first one late: taken in and given back.
            let late = try await live.wait(p.payment, seconds: 8) { $0.state == .refunded }
            #expect(late.autoRefunded)
            let refunds = try await live.kosh.call(.get, "/v1/payments/\(p.payment)/refunds")
            guard case .array(let items)? = refunds["items"] else { Issue.record("\(refunds.body)"); return }
            #expect(items.count == 1)
            #expect(items.first?["amount"] == .int(50_000))
            #expect(items.first?["notes"]?["reason"]?.text == "late_authorization")
            let order = try await live.kosh.call(.get, "/v1/orders/\(p.order)")
            #expect(order.string("status") == "paid")
            #expect(order.int("amount_paid") == 50_000, "paid once, by the second payment")
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("a late authorisation is captured when the merchant says so and the order is unpaid", arguments: TestDatabases.all)
    func lateAuthorizationCaptured(db: String) async throws {
        try await LiveKosh.run(db, tuning: .init(pendingTimeoutMillis: 1_000, lateCheckIntervalMillis: 300, lateAuthorization: .capture)) { live in
            // Its callback is lost too: the janitor's late watch finds the success.
            try await live.sandbox(.PUT, "/sandbox/v1/config", #"{"collect_expiry_ms": 20000}"#)
            try await live.sandbox(.PUT, "/sandbox/v1/faults/upi_switch", #"{"drop_callback_rate": 1.0}"#)
            let p = try await live.pay(vpa: "late@okhdfcbank")
            _ = try await live.wait(p.payment) { $0.state == .failed }
            let captured = try await live.wait(p.payment, seconds: 8) { $0.state == .captured }
            #expect(captured.machine.fee != nil)
            let order = try await live.kosh.call(.get, "/v1/orders/\(p.order)")
            #expect(order.string("status") == "paid")
            try await live.kosh.expectLedgerConsistent()
        }
    }

    @Test("validate/vpa answers from the switch", arguments: TestDatabases.all)
    func validateVPA(db: String) async throws {
        try await LiveKosh.run(db) { live in
            let ok = try await live.kosh.call(.post, "/v1/payments/validate/vpa", #"{"vpa": "success.asha@okhdfcbank"}"#)
            #expect(ok.status == 200, "\(ok.body)")
            #expect(ok["success"] == .bool(true))
            #expect(ok.string("customer_name") == "Success Asha")
            let bad = try await live.kosh.call(.post, "/v1/payments/validate/vpa", #"{"vpa": "someone@unknownbank"}"#)
            #expect(bad.status == 400)
            #expect(bad.json["error"]?["reason"]?.text == "invalid_vpa")
        }
    }

    @Test("callbacks must be signed", arguments: TestDatabases.all)
    func unsignedCallbackRefused(db: String) async throws {
        try await LiveKosh.run(db) { live in
            let p = try await live.pay(vpa: "timeout@ybl")
            let forged = try await live.kosh.call(.post, "/v1/rails/callbacks/upi_switch",
                                                  #"{"txn_id": "\#(p.payment)", "status": "SUCCESS", "rrn": "1", "amount": 50000}"#, auth: "")
            #expect(forged.status == 401, "\(forged.body)")
            // Hostile timestamps neither crash the server nor pass.
            for timestamp in ["-9223372036854775808", "9223372036854775807", "99999999999999999999", "1e12", ""] {
                let reply = try await live.kosh.client.execute(
                    uri: "/v1/rails/callbacks/upi_switch", method: .post,
                    headers: [HTTPField.Name("X-Sandbox-Timestamp")!: timestamp,
                              HTTPField.Name("X-Sandbox-Signature")!: String(repeating: "0", count: 64)],
                    body: ByteBuffer(string: #"{"txn_id": "\#(p.payment)", "status": "SUCCESS"}"#)) { Int($0.status.code) }
                #expect(reply == 401, "timestamp \(timestamp)")
            }
            let signer = RailSigner(secret: "live-test-secret")
            let now = SystemClock().nowMillis()
            let good = signer.signature(timestamp: now, method: "POST", path: "/x", body: [1, 2])
            #expect(signer.verify(signature: good, timestamp: String(now), method: "POST", path: "/x", body: [1, 2], now: now))
            #expect(!signer.verify(signature: good, timestamp: String(now), method: "POST", path: "/x", body: [1, 3], now: now))
            #expect(!signer.verify(signature: good, timestamp: String(now), method: "POST", path: "/x", body: [1, 2], now: now + 300_001))
            #expect(try await live.services.flows.payment(id: ID(p.payment)).state != .authorized)
        }
    }
}

extension JSON {
    var intValueForTest: Int64? { if case .int(let i) = self { return i } else { return nil } }
}
