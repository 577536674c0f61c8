import AsyncHTTPClient
import Foundation
import Testing
@testable import KoshSandbox

@Suite(.timeLimit(.minutes(1))) struct FaultTests {
    func stats(_ client: SandboxClient, _ rail: String) async throws -> [String: Int] {
        let reply = try await client.get("/sandbox/v1/stats")
        let railStats = try #require(reply[rail] as? [String: Any])
        return railStats.compactMapValues { ($0 as? NSNumber)?.intValue }
    }

    @Test func errorRateAnswers503() async throws {
        try await withSandbox { client, _ in
            let config = try await client.put("/sandbox/v1/faults/upi_switch", ["error_rate": 1.0])
            #expect(config.status == 200)
            #expect(config["error_rate"] as? Double == 1.0)
            #expect(config["hang_ms"] as? Int == 30_000, "fields left out keep their value")
            let refused = try await client.post("/upi/v1/vpa/validate", ["vpa": "success@ybl"])
            #expect(refused.status == 503)
            #expect(refused.errorCode == "UPSTREAM_UNAVAILABLE")
            let collect = try await client.collect("pay_f1", payer: "success@ybl")
            #expect(collect.status == 503)
            #expect(try await client.get("/upi/v1/transactions/pay_f1").status == 503)
            // Other rails are untouched; the payment was never created.
            #expect(try await client.post("/alphapay/v1/payments", ["reference": "pay_f1", "amount": 100, "currency": "INR", "method": "upi",
                                                                   "vpa": "success@ybl"]).status == 200)
            let counts = try await stats(client, "upi_switch")
            #expect(counts["calls"] == 3)
            #expect(counts["errors_injected"] == 3)
            _ = try await client.put("/sandbox/v1/faults/upi_switch", ["error_rate": 0])
            #expect(try await client.get("/upi/v1/transactions/pay_f1").status == 404)
        }
    }

    @Test func downAndDowntime() async throws {
        try await withSandbox { client, _ in
            _ = try await client.put("/sandbox/v1/faults/betapay", ["down": true])
            let down = try await client.get("/betapay/api/v2/transactions/x")
            #expect(down.status == 503)
            #expect(down.errorCode == "UPSTREAM_UNAVAILABLE")
            _ = try await client.put("/sandbox/v1/faults/betapay", ["down": false])
            #expect(try await client.get("/betapay/api/v2/transactions/x").status == 200)

            let now = client.clock.now()
            _ = try await client.put("/sandbox/v1/faults/alphapay", ["downtime": ["from": now - 1_000, "until": now + 60_000]])
            #expect(try await client.get("/alphapay/v1/payments/x").status == 503)
            let cleared = try await client.put("/sandbox/v1/faults/alphapay", ["downtime": NSNull()])
            #expect(cleared["downtime"] is NSNull)
            #expect(try await client.get("/alphapay/v1/payments/x").status == 404)
            // A window ahead opens and closes as the clock passes `from ≤ now < until`.
            _ = try await client.put("/sandbox/v1/faults/alphapay", ["downtime": ["from": now + 60_000, "until": now + 120_000]])
            await client.advance(by: 59_999)
            #expect(try await client.get("/alphapay/v1/payments/x").status == 404)
            await client.advance(by: 1)
            #expect(try await client.get("/alphapay/v1/payments/x").status == 503)
            await client.advance(by: 59_999)
            #expect(try await client.get("/alphapay/v1/payments/x").status == 503)
            await client.advance(by: 1)
            #expect(try await client.get("/alphapay/v1/payments/x").status == 404)
        }
    }

    @Test func faultConfigIsValidated() async throws {
        try await withSandbox { client, _ in
            for body: [String: Any] in [["error_rate": 1.5], ["drop_callback_rate": -0.1], ["error-rate": 0.5],
                                        ["latency_ms": ["min": 10, "max": 5]], ["hang_ms": -1], ["down": "yes"],
                                        ["downtime": ["from": 10, "until": 5]]] {
                let reply = try await client.put("/sandbox/v1/faults/upi_switch", body)
                #expect(reply.status == 400, "\(body)")
                #expect(reply.errorCode == "BAD_REQUEST")
            }
            #expect(try await client.put("/sandbox/v1/faults/gammapay", ["down": true]).status == 404)
            #expect(try await client.put("/sandbox/v1/config", ["collect_expiry_ms": 0]).status == 400)
            let all = try await client.get("/sandbox/v1/faults")
            let upi = try #require(all["upi_switch"] as? [String: Any])
            #expect(upi["error_rate"] as? Double == 0, "a refused update changes nothing")
            #expect(all["alphapay"] != nil && all["betapay"] != nil)
        }
    }

    @Test func droppedCallback() async throws {
        try await withSandbox { client, recorder in
            _ = try await client.put("/sandbox/v1/faults/upi_switch", ["drop_callback_rate": 1])
            _ = try await client.collect("pay_drop", payer: "success@ybl", callback: client.callbackURL("drop"))
            #expect(try await client.switchFinal("pay_drop").string("status") == "SUCCESS")
            await client.advance(by: 10_000)
            #expect(recorder.attemptCount("drop") == 0)
            let counts = try await stats(client, "upi_switch")
            #expect(counts["callbacks_dropped"] == 1)
            #expect(counts["callbacks_sent"] == 0)
        }
    }

    @Test func duplicatedCallback() async throws {
        try await withSandbox { client, recorder in
            _ = try await client.put("/sandbox/v1/faults/alphapay", ["duplicate_callback_rate": 1, "callback_delay_ms": 100])
            _ = try await client.post("/alphapay/v1/payments", ["reference": "pay_dup", "amount": 100, "currency": "INR", "method": "upi",
                                                               "vpa": "success@ybl", "notify_url": client.callbackURL("dup")])
            await client.advance(by: client.payerDelayMs + 99)
            #expect(recorder.attemptCount("dup") == 0, "callback_delay_ms holds the callback back")
            await client.advance(by: 1)
            let callbacks = recorder.callbacks("dup")
            #expect(callbacks.count == 2)
            #expect(callbacks.allSatisfy { $0.isValidlySigned })
            #expect(callbacks[0].body == callbacks[1].body)
            let counts = try await stats(client, "alphapay")
            #expect(counts["callbacks_duplicated"] == 1)
            #expect(counts["callbacks_sent"] == 2)
        }
    }

    @Test func declineRateFailsApprovedPayments() async throws {
        try await withSandbox { client, _ in
            _ = try await client.put("/sandbox/v1/faults/upi_switch", ["decline_rate": 1])
            _ = try await client.collect("pay_u30", payer: "success@ybl")
            #expect(try await client.switchFinal("pay_u30").string("response_code") == "U30")
            _ = try await client.put("/sandbox/v1/faults/betapay", ["decline_rate": 1])
            _ = try await client.post("/betapay/api/v2/transactions", ["merchantTxnId": "pay_e500", "txnAmount": "1.00", "payerVpa": "success@ybl"])
            let done = try await client.afterPayer("/betapay/api/v2/transactions/pay_e500")
            #expect(done.string("resultCode") == "E500")
        }
    }

    @Test func timeoutRateHangsThenAnswers() async throws {
        // Real time on purpose: a hang holds up the HTTP answer on the wall clock, whatever the
        // sandbox's clock says; the check is a lower bound only.
        try await withSandbox { client, _ in
            _ = try await client.put("/sandbox/v1/faults/upi_switch", ["timeout_rate": 1, "hang_ms": 300])
            let clock = ContinuousClock()
            let start = clock.now
            let reply = try await client.post("/upi/v1/vpa/validate", ["vpa": "success@ybl"])
            #expect(clock.now - start >= .milliseconds(300))
            #expect(reply.status == 200)
            #expect(reply["valid"] as? Bool == true)
            #expect(try await stats(client, "upi_switch")["timeouts_injected"] == 1)
        }
    }

    /// The fault sequence of 32 calls at error_rate 0.5, from a seed.
    func faultSequence(_ client: SandboxClient) async throws -> [Int] {
        _ = try await client.put("/sandbox/v1/faults/upi_switch", ["error_rate": 0.5, "latency_ms": ["min": 0, "max": 3]])
        var statuses: [Int] = []
        for _ in 0..<32 {
            statuses.append(try await client.post("/upi/v1/vpa/validate", ["vpa": "success@ybl"]).status)
        }
        return statuses
    }

    @Test func sameSeedSameFaults() async throws {
        var sequences: [[Int]] = []
        try await withSandbox(seed: 42) { client, _ in
            sequences.append(try await faultSequence(client))
            let reset = try await client.send(.POST, "/sandbox/v1/reset", ["seed": 42])
            #expect(reset.status == 200)
            #expect(reset.int("seed") == 42)
            sequences.append(try await faultSequence(client))
            _ = try await client.send(.POST, "/sandbox/v1/reset", ["seed": 43])
            sequences.append(try await faultSequence(client))
        }
        try await withSandbox(seed: 42) { client, _ in
            sequences.append(try await faultSequence(client))
        }
        #expect(sequences[0] == sequences[1])
        #expect(sequences[0] == sequences[3])
        #expect(sequences[0] != sequences[2])
        #expect(sequences[0].contains(200) && sequences[0].contains(503))
    }

    @Test func resetClearsEverything() async throws {
        try await withSandbox(collectExpiryMs: 2_000) { client, recorder in
            _ = try await client.collect("pay_r1", payer: "success@ybl", amount: 10_000_000)
            #expect(try await client.switchFinal("pay_r1").string("status") == "SUCCESS")
            _ = try await client.collect("pay_r2", payer: "timeout@ybl", callback: client.callbackURL("r2"))
            _ = try await client.put("/sandbox/v1/faults/alphapay", ["down": true])

            let reset = try await client.send(.POST, "/sandbox/v1/reset")
            #expect(reset.status == 200)
            #expect(reset.string("status") == "reset")

            #expect(try await client.get("/upi/v1/transactions/pay_r1").status == 404)
            #expect(try await client.get("/alphapay/v1/payments/x").status == 404, "faults cleared")
            let config = try await client.get("/sandbox/v1/config")
            #expect(config.int("payer_delay_ms") == 300 && config.int("collect_expiry_ms") == 300_000)
            let counts = try await stats(client, "upi_switch")
            #expect(counts["calls"] == 1, "only the GET after the reset")
            // The account is new: the day's limit is free again.
            _ = try await client.put("/sandbox/v1/config", ["payer_delay_ms": 20])
            _ = try await client.collect("pay_r1", payer: "success@ybl", amount: 10_000_000)
            await client.advance(by: 20)
            #expect(try await client.get("/upi/v1/transactions/pay_r1").string("response_code") == "00")
            // The expiry timer of the cleared transaction never fires.
            await client.advance(by: 2_000)
            #expect(recorder.attemptCount("r2") == 0)
            #expect(try await client.send(.POST, "/sandbox/v1/reset", raw: #"{"sead": 1}"#).status == 400)
        }
    }

    /// Stopping the server cuts injected hangs and pending timers short: on the system clock, as
    /// in production, so the expiry timer really sleeps.
    @Test func shutdownIsPrompt() async throws {
        let clock = ContinuousClock()
        let start = clock.now
        try await withSandbox(clock: SystemSandboxClock(), collectExpiryMs: 600_000) { client, _ in
            _ = try await client.collect("pay_s1", payer: "timeout@ybl", callback: client.callbackURL("s1"))
            _ = try await client.put("/sandbox/v1/faults/upi_switch", ["timeout_rate": 1, "hang_ms": 600_000])
            let hanging = Task { _ = try? await client.get("/upi/v1/transactions/pay_s1") }
            // Real time on purpose: lets the request reach its 600 s hang before the shutdown;
            // if a loaded machine is slower the test checks less, but does not fail.
            try await Task.sleep(for: .milliseconds(200))
            _ = hanging
        }
        #expect(clock.now - start < .seconds(10))
    }
}
