import Foundation
import Testing
@testable import KoshSandbox

/// The UPI switch over real HTTP, with callbacks to a real receiver, on a manual clock.
@Suite(.timeLimit(.minutes(1))) struct SwitchTests {
    @Test func validateVPA() async throws {
        try await withSandbox { client, _ in
            let valid = try await client.post("/upi/v1/vpa/validate", ["vpa": "success.asha@okhdfcbank"])
            #expect(valid.status == 200)
            #expect(valid["valid"] as? Bool == true)
            #expect(valid.string("name") == "Success Asha")
            #expect(valid.string("handle") == "okhdfcbank")
            #expect(valid.string("bank") == "HDFC Bank")
            #expect(valid.string("vpa") == "success.asha@okhdfcbank")

            let malformed = try await client.post("/upi/v1/vpa/validate", ["vpa": "not a vpa"])
            #expect(malformed.status == 200)
            #expect(malformed["valid"] as? Bool == false)
            #expect(malformed.string("vpa") == "not a vpa")
            #expect(malformed["name"] == nil)

            let unknownHandle = try await client.post("/upi/v1/vpa/validate", ["vpa": "ravi@unknownbank"])
            #expect(unknownHandle["valid"] as? Bool == false)

            let missing = try await client.post("/upi/v1/vpa/validate", ["address": "ravi@ybl"])
            #expect(missing.status == 400)
            #expect(missing.errorCode == "BAD_REQUEST")
        }
    }

    @Test func collectSucceedsWithOneSignedCallback() async throws {
        try await withSandbox { client, recorder in
            let accepted = try await client.collect("pay_ok1", payer: "success.asha@ybl", amount: 50_000, callback: client.callbackURL("ok1"))
            #expect(accepted.status == 202)
            #expect(accepted.string("status") == "PENDING")
            #expect(accepted.string("txn_id") == "pay_ok1")
            let rrn = try #require(accepted.string("rrn"))
            #expect(rrn.count == 12 && rrn.allSatisfy(\.isNumber))

            let final = try await client.switchFinal("pay_ok1")
            #expect(final.string("status") == "SUCCESS")
            #expect(final.string("response_code") == "00")
            #expect(final.string("payer_vpa") == "success.asha@ybl")
            #expect(final.string("payer_name") == "Success Asha")
            #expect(final.string("mode") == "collect")
            #expect(final.int("amount") == 50_000)
            #expect(final.string("rrn") == rrn)

            let callbacks = recorder.callbacks("ok1")
            #expect(callbacks.count == 1)
            await client.advance(by: 10_000)  // past any retry: still the one callback
            #expect(recorder.callbacks("ok1").count == 1)
            let callback = try #require(callbacks.first)
            #expect(callback.isValidlySigned)
            #expect(callback.target == "/cb/ok1")
            #expect(callback.json["event"] as? String == "upi.txn.final")
            #expect(callback.json["status"] as? String == "SUCCESS")
            #expect(callback.json["txn_id"] as? String == "pay_ok1")
            #expect(callback.json["response_code"] as? String == "00")
        }
    }

    @Test func payerDeclines() async throws {
        try await withSandbox { client, recorder in
            _ = try await client.collect("pay_za", payer: "failure@oksbi", callback: client.callbackURL("za"))
            let final = try await client.switchFinal("pay_za")
            #expect(final.string("status") == "FAILURE")
            #expect(final.string("response_code") == "ZA")
            let callback = try #require(recorder.callbacks("za").first)
            #expect(callback.json["response_code"] as? String == "ZA")
            #expect(callback.isValidlySigned)
        }
    }

    @Test func collectExpires() async throws {
        try await withSandbox { client, recorder in
            _ = try await client.collect("pay_u69", payer: "timeout@paytm", callback: client.callbackURL("u69"))
            await client.advance(by: 299_999)  // collect_expiry_ms is 300000
            #expect(try await client.get("/upi/v1/transactions/pay_u69").string("status") == "PENDING")
            #expect(recorder.attemptCount("u69") == 0)
            await client.advance(by: 1)
            let final = try await client.get("/upi/v1/transactions/pay_u69")
            #expect(final.string("status") == "EXPIRED")
            #expect(final.string("response_code") == "U69")
            #expect(recorder.callbacks("u69").first?.json["status"] as? String == "EXPIRED")
        }
    }

    @Test func lateApproval() async throws {
        try await withSandbox { client, _ in
            _ = try await client.collect("pay_late", payer: "late.ravi@okicici")
            await client.advance(by: 44_999)  // well past payer_delay_ms, just short of late_delay_ms
            #expect(try await client.get("/upi/v1/transactions/pay_late").string("status") == "PENDING")
            await client.advance(by: 1)
            #expect(try await client.get("/upi/v1/transactions/pay_late").string("status") == "SUCCESS")
        }
    }

    @Test func limits() async throws {
        try await withSandbox { client, _ in
            _ = try await client.collect("pay_z8", payer: "success.z8@ybl", amount: 10_000_001)
            #expect(try await client.switchFinal("pay_z8").string("response_code") == "Z8")

            _ = try await client.collect("pay_z7a", payer: "success.z7@ybl", amount: 6_000_000)
            #expect(try await client.switchFinal("pay_z7a").string("response_code") == "00")
            _ = try await client.collect("pay_z7b", payer: "success.z7@ybl", amount: 4_000_001)
            let overDaily = try await client.switchFinal("pay_z7b")
            #expect(overDaily.string("response_code") == "Z7")
            #expect(overDaily.string("status") == "FAILURE")
            _ = try await client.collect("pay_z7c", payer: "success.z7@ybl", amount: 4_000_000)
            #expect(try await client.switchFinal("pay_z7c").string("response_code") == "00")

            _ = try await client.collect("pay_z9", payer: "poor@paytm", amount: 100)
            #expect(try await client.switchFinal("pay_z9").string("response_code") == "Z9")
        }
    }

    @Test func collectIdempotency() async throws {
        try await withSandbox { client, recorder in
            let first = try await client.collect("pay_idem", payer: "success@ybl", amount: 6_000_000, callback: client.callbackURL("idem"))
            let again = try await client.collect("pay_idem", payer: "success@ybl", amount: 6_000_000, callback: client.callbackURL("idem"))
            #expect(first.status == 202 && again.status == 202)
            #expect(first.raw == again.raw)

            let otherAmount = try await client.collect("pay_idem", payer: "success@ybl", amount: 6_000_001)
            #expect(otherAmount.status == 409)
            #expect(otherAmount.errorCode == "DUPLICATE_TXN")
            let otherPayer = try await client.collect("pay_idem", payer: "success.other@ybl", amount: 6_000_000)
            #expect(otherPayer.status == 409)

            #expect(try await client.switchFinal("pay_idem").string("status") == "SUCCESS")
            // Debited once: ₹40,000 of the day's ₹1,00,000 is still free.
            _ = try await client.collect("pay_idem2", payer: "success@ybl", amount: 4_000_000)
            #expect(try await client.switchFinal("pay_idem2").string("response_code") == "00")
            #expect(recorder.callbacks("idem").count == 1)
        }
    }

    @Test func collectRejectsBadInput() async throws {
        try await withSandbox { client, _ in
            let zh = try await client.collect("pay_bad1", payer: "ravi@nobank")
            #expect(zh.status == 400)
            #expect(zh.errorCode == "ZH")
            #expect((zh["error"] as? [String: Any])?["message"] as? String == "Invalid VPA")

            let zero = try await client.collect("pay_bad2", payer: "success@ybl", amount: 0)
            #expect(zero.status == 400)
            #expect(zero.errorCode == "XB")

            let fractional = try await client.post("/upi/v1/collect", ["txn_id": "pay_bad3", "payer_vpa": "success@ybl", "amount": 10.5, "currency": "INR"])
            #expect(fractional.errorCode == "XB")

            let dollars = try await client.post("/upi/v1/collect", ["txn_id": "pay_bad4", "payer_vpa": "success@ybl", "amount": 100, "currency": "USD"])
            #expect(dollars.status == 400)
            #expect(dollars.errorCode == "XB")

            let malformed = try await client.send(.POST, "/upi/v1/collect", raw: #"{"txn_id": "pay_bad5", "#)
            #expect(malformed.status == 400)
            #expect(malformed.errorCode == "BAD_REQUEST")

            let badID = try await client.collect("pay/../x", payer: "success@ybl")
            #expect(badID.status == 400)
            #expect(badID.errorCode == "BAD_REQUEST")

            let badCallback = try await client.collect("pay_bad6", payer: "success@ybl", callback: "ftp://example.com/x")
            #expect(badCallback.status == 400)

            let huge = try await client.send(.POST, "/upi/v1/collect", raw: "{\"note\": \"" + String(repeating: "x", count: 70_000) + "\"}")
            #expect(huge.status == 413)
            #expect(huge.errorCode == "PAYLOAD_TOO_LARGE")

            let unknown = try await client.get("/upi/v1/transactions/pay_nobody")
            #expect(unknown.status == 404)
            #expect(unknown.errorCode == "NOT_FOUND")

            let noRoute = try await client.get("/upi/v1/nothing-here")
            #expect(noRoute.status == 404)
        }
    }

    @Test func intentAndPayerApp() async throws {
        try await withSandbox { client, recorder in
            let created = try await client.post("/upi/v1/intent", [
                "txn_id": "pay_int1", "payee_vpa": "kosh@okhdfcbank", "payee_name": "Kosh Store", "amount": 50_000,
                "currency": "INR", "note": "Order #1", "callback_url": client.callbackURL("int1"),
            ])
            #expect(created.status == 201)
            #expect(created.string("status") == "PENDING")
            let link = try #require(created.string("link"))
            #expect(link == "upi://pay?pa=kosh%40okhdfcbank&pn=Kosh%20Store&am=500.00&tr=pay_int1&cu=INR&tn=Order%20%231")
            let components = try #require(URLComponents(string: link))
            #expect(components.queryItems?.first(where: { $0.name == "pa" })?.value == "kosh@okhdfcbank")

            let again = try await client.post("/upi/v1/intent", [
                "txn_id": "pay_int1", "payee_vpa": "kosh@okhdfcbank", "payee_name": "Kosh Store", "amount": 50_000,
                "currency": "INR", "note": "Order #1", "callback_url": client.callbackURL("int1"),
            ])
            #expect(again.status == 201 && again.raw == created.raw)
            let conflicting = try await client.post("/upi/v1/intent", ["txn_id": "pay_int1", "payee_vpa": "kosh@okhdfcbank", "amount": 60_000, "currency": "INR"])
            #expect(conflicting.status == 409)

            #expect(try await client.get("/upi/v1/transactions/pay_int1").string("mode") == "intent")

            let paid = try await client.post("/upi/v1/app/pay", ["link": link, "payer_vpa": "success.meena@ybl"])
            #expect(paid.status == 202)
            #expect(paid.string("status") == "PENDING")
            #expect(paid.string("txn_id") == "pay_int1")
            let final = try await client.switchFinal("pay_int1")
            #expect(final.string("status") == "SUCCESS")
            #expect(final.string("payer_vpa") == "success.meena@ybl")
            #expect(final.string("payer_name") == "Success Meena")
            #expect(recorder.callbacks("int1").first?.json["mode"] as? String == "intent")

            let twice = try await client.post("/upi/v1/app/pay", ["link": link, "payer_vpa": "success.meena@ybl"])
            #expect(twice.status == 409)
            let unknown = try await client.post("/upi/v1/app/pay", ["link": "upi://pay?pa=kosh%40okhdfcbank&am=1.00&tr=pay_none&cu=INR",
                                                                   "payer_vpa": "success@ybl"])
            #expect(unknown.status == 404)
            let notALink = try await client.post("/upi/v1/app/pay", ["link": "https://example.com", "payer_vpa": "success@ybl"])
            #expect(notALink.status == 400)
        }
    }

    @Test func intentDeclinedAndExpired() async throws {
        try await withSandbox { client, _ in
            let declined = try await client.post("/upi/v1/intent", ["txn_id": "pay_int2", "payee_vpa": "kosh@okhdfcbank", "amount": 100, "currency": "INR"])
            let link = try #require(declined.string("link"))
            #expect(link == "upi://pay?pa=kosh%40okhdfcbank&am=1.00&tr=pay_int2&cu=INR")
            _ = try await client.post("/upi/v1/app/pay", ["link": link, "payer_vpa": "failure@ybl"])
            #expect(try await client.switchFinal("pay_int2").string("response_code") == "ZA")

            _ = try await client.post("/upi/v1/intent", ["txn_id": "pay_int3", "payee_vpa": "kosh@okhdfcbank", "amount": 100, "currency": "INR"])
            await client.advance(by: 299_999)
            #expect(try await client.get("/upi/v1/transactions/pay_int3").string("status") == "PENDING")
            await client.advance(by: 1)
            let expired = try await client.get("/upi/v1/transactions/pay_int3")
            #expect(expired.string("status") == "EXPIRED")
            #expect(expired["payer_vpa"] is NSNull)
        }
    }

    @Test func refunds() async throws {
        try await withSandbox { client, _ in
            _ = try await client.collect("pay_rf", payer: "success@ybl", amount: 50_000)
            #expect(try await client.switchFinal("pay_rf").string("status") == "SUCCESS")

            let first = try await client.post("/upi/v1/refunds", ["refund_id": "rfnd_1", "txn_id": "pay_rf", "amount": 20_000])
            #expect(first.status == 200)
            #expect(first.string("status") == "SUCCESS")
            #expect(first.string("refund_id") == "rfnd_1")
            #expect(first.string("txn_id") == "pay_rf")
            #expect(first.string("rrn")?.count == 12)
            let again = try await client.post("/upi/v1/refunds", ["refund_id": "rfnd_1", "txn_id": "pay_rf", "amount": 20_000])
            #expect(again.status == 200 && again.raw == first.raw)

            let tooMuch = try await client.post("/upi/v1/refunds", ["refund_id": "rfnd_2", "txn_id": "pay_rf", "amount": 30_001])
            #expect(tooMuch.status == 400)
            #expect(tooMuch.errorCode == "REFUND_EXCEEDS")
            let rest = try await client.post("/upi/v1/refunds", ["refund_id": "rfnd_2", "txn_id": "pay_rf", "amount": 30_000])
            #expect(rest.status == 200)
            let oneMore = try await client.post("/upi/v1/refunds", ["refund_id": "rfnd_3", "txn_id": "pay_rf", "amount": 1])
            #expect(oneMore.errorCode == "REFUND_EXCEEDS")
            let reused = try await client.post("/upi/v1/refunds", ["refund_id": "rfnd_1", "txn_id": "pay_rf", "amount": 1])
            #expect(reused.status == 409)

            _ = try await client.collect("pay_rf_fail", payer: "failure@ybl")
            _ = try await client.switchFinal("pay_rf_fail")
            let notSuccess = try await client.post("/upi/v1/refunds", ["refund_id": "rfnd_4", "txn_id": "pay_rf_fail", "amount": 1])
            #expect(notSuccess.status == 400)
            #expect(notSuccess.errorCode == "TXN_NOT_SUCCESS")
            let unknown = try await client.post("/upi/v1/refunds", ["refund_id": "rfnd_5", "txn_id": "pay_none", "amount": 1])
            #expect(unknown.status == 404)
        }
    }

    @Test func signatureIsRequired() async throws {
        try await withSandbox { client, _ in
            let body: [String: Any] = ["vpa": "success@ybl"]
            #expect(try await client.send(.POST, "/upi/v1/vpa/validate", body).status == 200)
            for signing in [Signing.none, .wrongSecret, .skewed(milliseconds: 301_000), .skewed(milliseconds: -301_000), .tamperedBody] {
                let reply = try await client.send(.POST, "/upi/v1/vpa/validate", body, signing: signing)
                #expect(reply.status == 401, "\(signing)")
                #expect(reply.errorCode == "UNAUTHORIZED")
            }
            #expect(try await client.send(.POST, "/upi/v1/vpa/validate", body, signing: .skewed(milliseconds: 240_000)).status == 200)
            #expect(try await client.send(.GET, "/sandbox/v1/stats", signing: .none).status == 401)
            #expect(try await client.send(.POST, "/alphapay/v1/payments", ["reference": "x"], signing: .wrongSecret).status == 401)
            let betapay = try await client.send(.GET, "/betapay/api/v2/transactions/x", signing: .none)
            #expect(betapay.status == 401)
            #expect(betapay.string("resultCode") == "E401")
            #expect(try await client.send(.POST, "/upi/v1/app/pay", ["link": "upi://pay?tr=x"], signing: .none).status == 401)
        }
    }

    @Test func callbackIsRetriedAfterRefusal() async throws {
        try await withSandbox { client, recorder in
            recorder.refuse("retry", times: 1)
            _ = try await client.collect("pay_retry", payer: "success@ybl", callback: client.callbackURL("retry"))
            await client.advance(by: client.payerDelayMs)
            #expect(recorder.attemptCount("retry") == 1)
            await client.advance(by: 999)
            #expect(recorder.attemptCount("retry") == 1, "the retry waits a second")
            await client.advance(by: 1)
            let delivered = recorder.callbacks("retry")
            #expect(delivered.count == 1)
            #expect(recorder.attemptCount("retry") == 2)
            #expect(delivered.first?.isValidlySigned == true)
        }
    }
}
