import Foundation
import Testing
@testable import KoshSandbox

@Suite(.timeLimit(.minutes(1))) struct AlphapayTests {
    func payment(_ reference: String, vpa: String, amount: Int = 50_000, notify: String? = nil) -> [String: Any] {
        var body: [String: Any] = ["reference": reference, "amount": amount, "currency": "INR", "method": "upi", "vpa": vpa]
        if let notify { body["notify_url"] = notify }
        return body
    }

    func final(_ client: SandboxClient, _ reference: String) async throws -> Reply {
        try await client.afterPayer("/alphapay/v1/payments/\(reference)")
    }

    @Test func authorizedWithWebhook() async throws {
        try await withSandbox { client, recorder in
            let created = try await client.post("/alphapay/v1/payments", payment("pay_ap1", vpa: "success@okicici", notify: client.callbackURL("ap1")))
            #expect(created.status == 200)
            #expect(created.string("status") == "processing")
            #expect(created.string("reference") == "pay_ap1")
            #expect(created.int("amount") == 50_000)
            #expect(created.int("fee") == 900)
            let id = try #require(created.string("id"))
            #expect(id.hasPrefix("ap_") && id.count == 19 && id.dropFirst(3).allSatisfy(\.isHexDigit))

            let again = try await client.post("/alphapay/v1/payments", payment("pay_ap1", vpa: "success@okicici", notify: client.callbackURL("ap1")))
            #expect(again.status == 200 && again.raw == created.raw)
            let different = try await client.post("/alphapay/v1/payments", payment("pay_ap1", vpa: "success@okicici", amount: 1))
            #expect(different.status == 409)
            #expect(different.errorCode == "DUPLICATE_REFERENCE")

            let done = try await final(client, "pay_ap1")
            #expect(done.string("status") == "authorized")
            #expect(done["error_code"] is NSNull)
            #expect(done.string("vpa") == "success@okicici")
            #expect(done.string("id") == id)

            let webhook = try #require(recorder.callbacks("ap1").first)
            #expect(webhook.isValidlySigned)
            #expect(webhook.json["event"] as? String == "payment.authorized")
            #expect((webhook.json["payload"] as? [String: Any])?["reference"] as? String == "pay_ap1")

            let refund = try await client.post("/alphapay/v1/refunds", ["reference": "rfnd_ap1", "payment_reference": "pay_ap1", "amount": 10_000])
            #expect(refund.status == 200)
            #expect(refund.string("status") == "processed")
            #expect(refund.string("id")?.hasPrefix("apr_") == true)
            let exceeds = try await client.post("/alphapay/v1/refunds", ["reference": "rfnd_ap2", "payment_reference": "pay_ap1", "amount": 40_001])
            #expect(exceeds.errorCode == "REFUND_EXCEEDS")
            #expect((exceeds["error"] as? [String: Any])?["description"] is String)
        }
    }

    @Test func declinedAndInvalid() async throws {
        try await withSandbox { client, recorder in
            _ = try await client.post("/alphapay/v1/payments", payment("pay_ap2", vpa: "failure@okicici", notify: client.callbackURL("ap2")))
            let done = try await final(client, "pay_ap2")
            #expect(done.string("status") == "failed")
            #expect(done.string("error_code") == "PAYER_DECLINED")
            let webhook = try #require(recorder.callbacks("ap2").first)
            #expect(webhook.json["event"] as? String == "payment.failed")

            let notAuthorized = try await client.post("/alphapay/v1/refunds", ["reference": "rfnd_ap3", "payment_reference": "pay_ap2", "amount": 1])
            #expect(notAuthorized.errorCode == "PAYMENT_NOT_AUTHORIZED")

            _ = try await client.post("/alphapay/v1/payments", payment("pay_ap3", vpa: "success@okicici", amount: 10_000_001))
            #expect(try await final(client, "pay_ap3").string("error_code") == "LIMIT_EXCEEDED")

            let badVPA = try await client.post("/alphapay/v1/payments", payment("pay_ap4", vpa: "nobody"))
            #expect(badVPA.status == 400)
            #expect(badVPA.errorCode == "INVALID_VPA")
            let badAmount = try await client.post("/alphapay/v1/payments", payment("pay_ap5", vpa: "success@ybl", amount: -5))
            #expect(badAmount.errorCode == "INVALID_AMOUNT")
            #expect(try await client.get("/alphapay/v1/payments/pay_nobody").status == 404)
        }
    }
}

@Suite(.timeLimit(.minutes(1))) struct BetapayTests {
    func create(_ id: String, vpa: String, amount: String = "500.00", callback: String? = nil) -> [String: Any] {
        var body: [String: Any] = ["merchantTxnId": id, "txnAmount": amount, "payerVpa": vpa]
        if let callback { body["callbackUrl"] = callback }
        return body
    }

    func final(_ client: SandboxClient, _ id: String) async throws -> Reply {
        try await client.afterPayer("/betapay/api/v2/transactions/\(id)")
    }

    @Test func successWithCallbackAndRefund() async throws {
        try await withSandbox { client, recorder in
            let created = try await client.post("/betapay/api/v2/transactions", create("pay_bp1", vpa: "success@paytm", callback: client.callbackURL("bp1")))
            #expect(created.status == 200)
            #expect(created.string("resultCode") == "0000")
            #expect(created.string("resultMsg") == "Accepted")
            #expect(created.string("txnStatus") == "INITIATED")
            let betaID = try #require(created.string("betaTxnId"))
            #expect(betaID.hasPrefix("BP") && betaID.count == 14 && betaID.dropFirst(2).allSatisfy(\.isNumber))

            let duplicate = try await client.post("/betapay/api/v2/transactions", create("pay_bp1", vpa: "success@paytm"))
            #expect(duplicate.status == 200)
            #expect(duplicate.string("resultCode") == "E409")

            let done = try await final(client, "pay_bp1")
            #expect(done.string("txnStatus") == "SUCCESS")
            #expect(done.string("resultCode") == "0000")
            #expect(done.string("txnAmount") == "500.00")
            #expect(done.string("betaTxnId") == betaID)

            let callbacks = recorder.callbacks("bp1")
            await client.advance(by: 10_000)  // past any retry
            #expect(recorder.callbacks("bp1").count == 1, "the duplicate create must not add a second payment")
            let callback = try #require(callbacks.first)
            #expect(callback.isValidlySigned)
            #expect(callback.json["txnStatus"] as? String == "SUCCESS")
            #expect(callback.json["merchantTxnId"] as? String == "pay_bp1")

            let refund = try await client.post("/betapay/api/v2/refunds", ["merchantRefundId": "rf_bp1", "merchantTxnId": "pay_bp1", "refundAmount": "100.00"])
            #expect(refund.string("resultCode") == "0000")
            #expect(refund.string("refundStatus") == "SUCCESS")
            let betaRefundID = try #require(refund.string("betaRefundId"))
            let again = try await client.post("/betapay/api/v2/refunds", ["merchantRefundId": "rf_bp1", "merchantTxnId": "pay_bp1", "refundAmount": "100.00"])
            #expect(again.string("betaRefundId") == betaRefundID)
            let exceeds = try await client.post("/betapay/api/v2/refunds", ["merchantRefundId": "rf_bp2", "merchantTxnId": "pay_bp1", "refundAmount": "400.01"])
            #expect(exceeds.status == 200)
            #expect(exceeds.string("resultCode") == "E301")
            let rest = try await client.post("/betapay/api/v2/refunds", ["merchantRefundId": "rf_bp2", "merchantTxnId": "pay_bp1", "refundAmount": "400"])
            #expect(rest.string("resultCode") == "0000")
        }
    }

    @Test func declinedAndRejected() async throws {
        try await withSandbox { client, _ in
            _ = try await client.post("/betapay/api/v2/transactions", create("pay_bp2", vpa: "failure@paytm"))
            let done = try await final(client, "pay_bp2")
            #expect(done.string("txnStatus") == "FAILURE")
            #expect(done.string("resultCode") == "E205")
            let notSuccess = try await client.post("/betapay/api/v2/refunds", ["merchantRefundId": "rf_bp3", "merchantTxnId": "pay_bp2", "refundAmount": "1.00"])
            #expect(notSuccess.string("resultCode") == "E302")

            _ = try await client.post("/betapay/api/v2/transactions", create("pay_bp3", vpa: "poor@paytm"))
            #expect(try await final(client, "pay_bp3").string("resultCode") == "E206")

            let badVPA = try await client.post("/betapay/api/v2/transactions", create("pay_bp4", vpa: "nobody@nowhere"))
            #expect(badVPA.status == 200)
            #expect(badVPA.string("resultCode") == "E101")
            #expect(badVPA.string("txnStatus") == "REJECTED")
            for amount in ["500.001", "5,00", "-1.00", "0.00", "abc"] {
                let badAmount = try await client.post("/betapay/api/v2/transactions", create("pay_bp5", vpa: "success@paytm", amount: amount))
                #expect(badAmount.string("resultCode") == "E102", "\(amount)")
            }
            // A rejected create does not take the id.
            #expect(try await client.post("/betapay/api/v2/transactions", create("pay_bp5", vpa: "success@paytm")).string("resultCode") == "0000")

            let unknown = try await client.get("/betapay/api/v2/transactions/pay_nobody")
            #expect(unknown.status == 200)
            #expect(unknown.string("resultCode") == "E404")
            #expect(unknown.string("txnStatus") == "NOT_FOUND")

            let malformed = try await client.send(.POST, "/betapay/api/v2/transactions", raw: "[1, 2")
            #expect(malformed.status == 400)
            #expect(malformed.string("resultCode") == "E100")
        }
    }
}
