import Foundation
import Testing
@testable import KoshSandbox

/// Payer-initiated UPI payments (QR codes): the payee's PSP registers its handle, the payer's
/// app pays a `tr` the switch never issued, the PSP hears of the credit only when the money moved.
@Suite(.timeLimit(.minutes(1))) struct PayerInitiatedTests {
    static let qrLink = "upi://pay?pa=kosh.qr%40kosh&pn=Acme&tr=qr_ABCDEFGH123456&am=250.00&cu=INR&tn=Table%204"

    @Test func registeredPayeeIsCreditedWithASignedNotification() async throws {
        try await withSandbox { client, recorder in
            // Before the PSP registers, the link is no transaction the switch knows.
            let early = try await client.post("/upi/v1/app/pay", ["link": Self.qrLink, "payer_vpa": "success.asha@ybl"])
            #expect(early.status == 404)

            let registered = try await client.put("/upi/v1/payees/kosh", ["callback_url": client.callbackURL("credits")])
            #expect(registered.status == 200 && registered.string("handle") == "kosh")
            #expect(try await client.get("/upi/v1/payees/kosh").string("callback_url") == client.callbackURL("credits"))
            #expect(try await client.put("/upi/v1/payees/ybl", ["callback_url": client.callbackURL("x")]).status == 400, "a payer bank's handle")
            #expect(try await client.put("/upi/v1/payees/Kosh1", ["callback_url": client.callbackURL("x")]).status == 400)
            #expect(try await client.put("/upi/v1/payees/kosh", ["callback_url": "ftp://x"]).status == 400)

            let paid = try await client.post("/upi/v1/app/pay", ["link": Self.qrLink, "payer_vpa": "success.asha@ybl"])
            #expect(paid.status == 202, "\(paid)")
            #expect(paid.string("mode") == "qr" && paid.string("status") == "PENDING")
            let txn = try #require(paid.string("txn_id"))
            #expect(txn.count == 12 && txn.allSatisfy(\.isNumber) && paid.string("rrn") == txn, "its id is its RRN")
            #expect(recorder.callbacks("credits").isEmpty, "nothing before the payer's bank debits")

            let final = try await client.switchFinal(txn)
            #expect(final.string("status") == "SUCCESS" && final.string("mode") == "qr")
            #expect(final.int("amount") == 25_000 && final.string("tr") == "qr_ABCDEFGH123456" && final.string("payee_vpa") == "kosh.qr@kosh")
            let callback = try #require(recorder.callbacks("credits").first)
            #expect(callback.isValidlySigned)
            #expect(callback.json["txn_id"] as? String == txn && callback.json["event"] as? String == "upi.txn.final")

            // Refundable like any other switch transaction.
            let refund = try await client.post("/upi/v1/refunds", ["refund_id": "rfnd_qr1", "txn_id": txn, "amount": 25_000])
            #expect(refund.status == 200 && refund.string("status") == "SUCCESS", "\(refund)")
            #expect(try await client.post("/upi/v1/refunds", ["refund_id": "rfnd_qr2", "txn_id": txn, "amount": 1]).status == 400)

            // Registrations are configuration: a reset keeps them.
            #expect(try await client.post("/sandbox/v1/reset", [:]).status == 200)
            #expect(try await client.get("/upi/v1/payees/kosh").status == 200)
        }
    }

    @Test func amountsDeclinesAndBadLinks() async throws {
        try await withSandbox { client, recorder in
            _ = try await client.put("/upi/v1/payees/kosh", ["callback_url": client.callbackURL("credits")])
            let anyAmount = "upi://pay?pa=kosh.qr%40kosh&pn=Acme&tr=qr_ANYAMOUNT12345&cu=INR"
            let untyped = try await client.post("/upi/v1/app/pay", ["link": anyAmount, "payer_vpa": "success@ybl"])
            #expect(untyped.status == 400, "no am and nothing typed")
            let typed = try await client.post("/upi/v1/app/pay", ["link": anyAmount, "payer_vpa": "success@ybl", "amount": 12_345])
            #expect(typed.status == 202)
            #expect(try await client.switchFinal(try #require(typed.string("txn_id"))).int("amount") == 12_345)
            #expect(try await client.post("/upi/v1/app/pay", ["link": anyAmount, "payer_vpa": "success@ybl", "amount": 0]).status == 400)

            // The payer declines: the switch says so, the payee's PSP hears nothing.
            let declined = try await client.post("/upi/v1/app/pay", ["link": Self.qrLink, "payer_vpa": "failure@ybl"])
            let declinedID = try #require(declined.string("txn_id"))
            #expect(try await client.switchFinal(declinedID).string("response_code") == "ZA")
            #expect(recorder.callbacks("credits").count == 1, "only the successful credit was notified")
            #expect(recorder.callbacks("credits").allSatisfy { $0.json["status"] as? String == "SUCCESS" })

            // A payee whose PSP is not registered: no such transaction, as before.
            let elsewhere = try await client.post("/upi/v1/app/pay", ["link": "upi://pay?pa=shop%40other&tr=qr_X&am=1.00&cu=INR", "payer_vpa": "success@ybl"])
            #expect(elsewhere.status == 404)
            // An amount for a switch-issued intent is refused.
            let intent = try await client.post("/upi/v1/intent", ["txn_id": "pay_i1", "payee_vpa": "kosh@okhdfcbank", "amount": 100, "currency": "INR"])
            let intentLink = try #require(intent.string("link"))
            #expect(try await client.post("/upi/v1/app/pay", ["link": intentLink, "payer_vpa": "success@ybl", "amount": 100]).status == 400)
        }
    }
}
