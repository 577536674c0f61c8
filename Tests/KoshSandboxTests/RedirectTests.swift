import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
@testable import KoshSandbox

/// The sandbox's banks and wallet providers (docs/REDIRECT_METHODS.md).
@Suite(.timeLimit(.minutes(1))) struct RedirectTests {
    static let returnURL = "https://shop.example/return?x=1&y=2"

    func bankPayment(_ client: SandboxClient, _ reference: String, bank: String = "HDFC", amount: Int = 50_000,
                     merchant: String = "Acme Stores", returnURL: String = RedirectTests.returnURL,
                     callback: String? = nil) async throws -> Reply {
        try await client.post("/netbanking/v1/payments", [
            "reference": reference, "bank": bank, "amount": amount, "currency": "INR", "merchant_name": merchant,
            "return_url": returnURL, "callback_url": callback ?? client.callbackURL(reference),
        ])
    }

    func walletPayment(_ client: SandboxClient, _ reference: String, wallet: String = "phonepe", amount: Int = 50_000,
                       merchant: String = "Acme Stores") async throws -> Reply {
        try await client.post("/wallets/v1/\(wallet)/payments", [
            "reference": reference, "amount": amount, "currency": "INR", "merchant_name": merchant,
            "return_url": Self.returnURL, "callback_url": client.callbackURL(reference), "contact": "+919876543210",
        ])
    }

    /// A browser's request to a page: unsigned, form-encoded when there is a form.
    func page(_ client: SandboxClient, _ path: String, form: String? = nil) async throws -> (status: Int, html: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(client.port)\(path)")
        if let form {
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: form))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        #expect(response.headers["Content-Type"].first?.hasPrefix("text/html") == true)
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), String(buffer: body))
    }

    func field(_ reply: Reply) -> String? { (reply["error"] as? [String: Any])?["field"] as? String }

    @Test func createStatusAndIdempotency() async throws {
        try await withSandbox { client, _ in
            let created = try await bankPayment(client, "pay_nb1")
            #expect(created.status == 201, "\(created)")
            let id = try #require(created.string("id"))
            #expect(id.hasPrefix("nb_") && id.count == 19 && id.dropFirst(3).allSatisfy(\.isHexDigit))
            #expect(created.string("reference") == "pay_nb1")
            #expect(created.string("bank") == "HDFC")
            #expect(created.int("amount") == 50_000 && created.string("currency") == "INR")
            #expect(created.string("status") == "pending")
            #expect(created.string("redirect_url") == "http://127.0.0.1:\(client.port)/netbanking/pay/\(id)")
            #expect(created["bank_reference"] is NSNull && created["error_code"] is NSNull && created["error_description"] is NSNull)
            #expect(created.int("refunded_amount") == 0)
            #expect(created.int("fee") == 750)
            #expect(created.int("created_at") == 1_700_000_000)

            let status = try await client.get("/netbanking/v1/payments/pay_nb1")
            #expect(status.status == 200 && status.raw == created.raw)

            let again = try await bankPayment(client, "pay_nb1", merchant: "Another name")
            #expect(again.status == 200 && again.raw == created.raw, "a repeat answers the payment as it is now")
            let otherAmount = try await bankPayment(client, "pay_nb1", amount: 50_001)
            #expect(otherAmount.status == 409 && otherAmount.errorCode == "DUPLICATE_REFERENCE")
            let otherBank = try await bankPayment(client, "pay_nb1", bank: "ICIC")
            #expect(otherBank.status == 409 && otherBank.errorCode == "DUPLICATE_REFERENCE")

            _ = try await client.post("/sandbox/v1/redirect/pay_nb1/approve", [:])
            let afterwards = try await bankPayment(client, "pay_nb1")
            #expect(afterwards.status == 200 && afterwards.string("status") == "success")

            let unknown = try await client.get("/netbanking/v1/payments/pay_nobody")
            #expect(unknown.status == 404 && unknown.errorCode == "NOT_FOUND")

            let wallet = try await walletPayment(client, "pay_wl1")
            #expect(wallet.status == 201)
            let walletID = try #require(wallet.string("id"))
            #expect(walletID.hasPrefix("wl_") && walletID.count == 19)
            #expect(wallet.string("wallet") == "phonepe" && wallet["bank"] == nil)
            #expect(wallet["wallet_reference"] is NSNull && wallet["bank_reference"] == nil)
            #expect(wallet.string("redirect_url") == "http://127.0.0.1:\(client.port)/wallets/pay/\(walletID)")
            #expect(wallet.int("fee") == 950)
            #expect(try await client.get("/wallets/v1/phonepe/payments/pay_wl1").raw == wallet.raw)
            #expect(try await client.get("/wallets/v1/amazonpay/payments/pay_wl1").status == 404)
            let otherWallet = try await walletPayment(client, "pay_wl1", wallet: "amazonpay")
            #expect(otherWallet.status == 409 && otherWallet.errorCode == "DUPLICATE_REFERENCE")
        }
    }

    @Test func badFieldsAreNamed() async throws {
        try await withSandbox { client, _ in
            func create(_ change: (inout [String: Any]) -> Void) async throws -> Reply {
                var body: [String: Any] = ["reference": "pay_bad", "bank": "HDFC", "amount": 50_000, "currency": "INR",
                                           "merchant_name": "Acme", "return_url": Self.returnURL, "callback_url": client.callbackURL("bad")]
                change(&body)
                return try await client.post("/netbanking/v1/payments", body)
            }
            let cases: [(String, (inout [String: Any]) -> Void)] = [
                ("return_url", { $0["return_url"] = "/relative/return" }),
                ("return_url", { $0["return_url"] = "javascript:alert(1)" }),
                ("return_url", { $0.removeValue(forKey: "return_url") }),
                ("callback_url", { $0["callback_url"] = "ftp://example.com/cb" }),
                ("amount", { $0["amount"] = 10.5 }),
                ("amount", { $0["amount"] = "500" }),
                ("amount", { $0["amount"] = 0 }),
                ("currency", { $0["currency"] = "USD" }),
                ("reference", { $0["reference"] = "pay one" }),
                ("merchant_name", { $0["merchant_name"] = "" }),
                ("merchant_name", { $0["merchant_name"] = String(repeating: "m", count: 256) }),
            ]
            for (name, change) in cases {
                let reply = try await create(change)
                #expect(reply.status == 400 && reply.errorCode == "BAD_REQUEST" && field(reply) == name, "\(name): \(reply)")
            }
            let notJSON = try await client.send(.POST, "/netbanking/v1/payments", raw: "{")
            #expect(notJSON.status == 400 && notJSON.errorCode == "BAD_REQUEST")
        }
    }

    @Test func catalogueAndUnknownProviders() async throws {
        try await withSandbox { client, _ in
            let banks = try await client.get("/netbanking/v1/banks")
            #expect(banks.int("count") == 18)
            let items = try #require(banks["items"] as? [[String: Any]])
            func bank(_ code: String) -> [String: Any]? { items.first { $0["code"] as? String == code } }
            #expect(bank("AIRP")?["max_amount"] as? Int == 20_000_000)
            #expect(bank("HDFC")?["max_amount"] as? Int == 100_000_000 && bank("HDFC")?["fee_bps"] as? Int == 150)
            #expect(bank("SBIN")?["fee_bps"] as? Int == 120 && bank("SBIN")?["name"] as? String == "State Bank of India")
            #expect(bank("YESB_C")?["max_amount"] as? Int == 500_000_000 && bank("YESB_C")?["fee_bps"] as? Int == 200)

            let wallets = try await client.get("/wallets/v1")
            #expect(wallets.int("count") == 7)
            let walletItems = try #require(wallets["items"] as? [[String: Any]])
            #expect(walletItems.allSatisfy { $0["max_amount"] as? Int == 2_000_000 })
            #expect(walletItems.first { $0["code"] as? String == "amazonpay" }?["fee_bps"] as? Int == 200)
            #expect(walletItems.first { $0["code"] as? String == "jiomoney" }?["fee_bps"] as? Int == 175)
            #expect(walletItems.first { $0["code"] as? String == "mobikwik" }?["fee_bps"] as? Int == 190)

            let unknownBank = try await bankPayment(client, "pay_ub", bank: "ZZZZ")
            #expect(unknownBank.status == 400 && unknownBank.errorCode == "BANK_NOT_SUPPORTED")
            let lowerCase = try await bankPayment(client, "pay_ub", bank: "hdfc")
            #expect(lowerCase.errorCode == "BANK_NOT_SUPPORTED")
            let unknownWallet = try await walletPayment(client, "pay_uw", wallet: "paytm")
            #expect(unknownWallet.status == 400 && unknownWallet.errorCode == "WALLET_NOT_SUPPORTED")
        }
    }

    @Test func limitsAndFees() async throws {
        try await withSandbox { client, _ in
            let airtel = try await bankPayment(client, "pay_airp1", bank: "AIRP", amount: 20_000_000)
            #expect(airtel.status == 201)
            let overAirtel = try await bankPayment(client, "pay_airp2", bank: "AIRP", amount: 20_000_001)
            #expect(overAirtel.status == 400 && overAirtel.errorCode == "AMOUNT_LIMIT_EXCEEDED")
            #expect(try await bankPayment(client, "pay_hdfc_big", amount: 100_000_000).status == 201)
            #expect(try await bankPayment(client, "pay_hdfc_over", amount: 100_000_001).errorCode == "AMOUNT_LIMIT_EXCEEDED")
            #expect(try await bankPayment(client, "pay_corp", bank: "YESB_C", amount: 500_000_000).int("fee") == 10_000_000)

            #expect(try await walletPayment(client, "pay_w_max", amount: 2_000_000).status == 201)
            let overWallet = try await walletPayment(client, "pay_w_over", wallet: "amazonpay", amount: 2_000_001)
            #expect(overWallet.status == 400 && overWallet.errorCode == "AMOUNT_LIMIT_EXCEEDED")

            // Fees, rounded half up: 1.20 % of ₹123.45 is 148.14 paise; 1.50 % of 50 paise is 0.75.
            #expect(try await bankPayment(client, "pay_sbi", bank: "SBIN", amount: 12_345).int("fee") == 148)
            #expect(try await bankPayment(client, "pay_tiny", amount: 50).int("fee") == 1)
            #expect(try await walletPayment(client, "pay_jio", wallet: "jiomoney", amount: 10_000).int("fee") == 175)
        }
    }

    @Test func approveSucceedsWithSignedCallback() async throws {
        try await withSandbox { client, recorder in
            _ = try await bankPayment(client, "pay_ok")
            let approved = try await client.post("/sandbox/v1/redirect/pay_ok/approve", [:])
            #expect(approved.status == 200 && approved.string("status") == "success")
            let bankReference = try #require(approved.string("bank_reference"))
            #expect(bankReference.count == 12 && bankReference.allSatisfy(\.isNumber))
            #expect(approved["error_code"] is NSNull)

            await client.advance(by: 0)
            let callback = try #require(recorder.callbacks("pay_ok").first)
            #expect(callback.isValidlySigned)
            #expect(callback.json["event"] as? String == "netbanking.payment.final")
            #expect(callback.json["status"] as? String == "success")
            #expect(callback.json["bank_reference"] as? String == bankReference)
            #expect(callback.json["reference"] as? String == "pay_ok")
            #expect(recorder.callbacks("pay_ok").count == 1)

            let status = try await client.get("/netbanking/v1/payments/pay_ok")
            #expect(status.string("status") == "success" && status.string("bank_reference") == bankReference)
            let account = try await client.get("/sandbox/v1/netbanking/HDFC/account")
            #expect(account.int("balance") == 50_000_000 - 50_000)

            // Approving again changes nothing.
            let twice = try await client.post("/sandbox/v1/redirect/pay_ok/decline", [:])
            #expect(twice.status == 200 && twice.string("status") == "success")
            #expect(try await client.get("/sandbox/v1/netbanking/HDFC/account").int("balance") == 50_000_000 - 50_000)
            #expect(try await client.post("/sandbox/v1/redirect/pay_nobody/approve", [:]).status == 404)

            // A wallet, approved by its provider id.
            let wallet = try await walletPayment(client, "pay_wok", wallet: "amazonpay", amount: 60_000)
            let walletID = try #require(wallet.string("id"))
            let paid = try await client.post("/sandbox/v1/redirect/\(walletID)/approve", [:])
            #expect(paid.string("status") == "success" && paid.string("wallet_reference")?.count == 12)
            await client.advance(by: 0)
            let walletCallback = try #require(recorder.callbacks("pay_wok").first)
            #expect(walletCallback.isValidlySigned && walletCallback.json["event"] as? String == "wallet.payment.final")
            #expect(walletCallback.json["wallet"] as? String == "amazonpay")
            #expect(try await client.get("/sandbox/v1/wallets/amazonpay/account").int("balance") == 1_000_000 - 60_000)
            #expect(try await client.get("/sandbox/v1/wallets/phonepe/account").int("balance") == 1_000_000)
        }
    }

    @Test func declinedAndBankErrors() async throws {
        try await withSandbox { client, recorder in
            _ = try await bankPayment(client, "pay_no")
            let declined = try await client.post("/sandbox/v1/redirect/pay_no/decline", [:])
            #expect(declined.string("status") == "failure" && declined.string("error_code") == "PAYMENT_DECLINED")
            #expect(declined["bank_reference"] is NSNull && declined.string("error_description") != nil)
            await client.advance(by: 0)
            #expect(recorder.callbacks("pay_no").first?.json["error_code"] as? String == "PAYMENT_DECLINED")
            #expect(try await client.get("/sandbox/v1/netbanking/HDFC/account").int("balance") == 50_000_000)

            let fault = try await client.put("/sandbox/v1/faults/netbanking", ["decline_rate": 1])
            #expect(fault.status == 200)
            _ = try await bankPayment(client, "pay_bankerr")
            let failed = try await client.post("/sandbox/v1/redirect/pay_bankerr/approve", [:])
            #expect(failed.string("status") == "failure" && failed.string("error_code") == "BANK_ERROR")
            #expect(try await client.get("/sandbox/v1/netbanking/HDFC/account").int("balance") == 50_000_000)
        }
    }

    @Test func insufficientFunds() async throws {
        try await withSandbox { client, _ in
            let set = try await client.put("/sandbox/v1/netbanking/ICIC/account", ["balance": 1_000])
            #expect(set.status == 200 && set.int("balance") == 1_000 && set.string("bank") == "ICIC")
            _ = try await bankPayment(client, "pay_poor", bank: "ICIC")
            let poor = try await client.post("/sandbox/v1/redirect/pay_poor/approve", [:])
            #expect(poor.string("status") == "failure" && poor.string("error_code") == "INSUFFICIENT_FUNDS")
            #expect(try await client.get("/sandbox/v1/netbanking/ICIC/account").int("balance") == 1_000)

            // ₹15,000 is within the wallet's limit but over its customer's ₹10,000.
            _ = try await walletPayment(client, "pay_wpoor", amount: 1_500_000)
            let walletPoor = try await client.post("/sandbox/v1/redirect/pay_wpoor/approve", [:])
            #expect(walletPoor.string("error_code") == "INSUFFICIENT_FUNDS")

            #expect(try await client.put("/sandbox/v1/wallets/nowallet/account", ["balance": 1]).status == 404)
            let negative = try await client.put("/sandbox/v1/wallets/phonepe/account", ["balance": -1])
            #expect(negative.status == 400 && negative.errorCode == "BAD_REQUEST")
            #expect(try await client.put("/sandbox/v1/wallets/phonepe/account", ["balance": 1, "limit": 2]).status == 400)
        }
    }

    @Test func expiresAfterFifteenMinutesOfSandboxTime() async throws {
        try await withSandbox { client, recorder in
            _ = try await bankPayment(client, "pay_slow")
            await client.advance(by: 15 * 60 * 1000 - 1)
            #expect(try await client.get("/netbanking/v1/payments/pay_slow").string("status") == "pending")
            #expect(recorder.callbacks("pay_slow").isEmpty)
            await client.advance(by: 1)
            let callback = try #require(recorder.callbacks("pay_slow").first)
            #expect(callback.json["error_code"] as? String == "TIMED_OUT" && callback.isValidlySigned)
            let expired = try await client.get("/netbanking/v1/payments/pay_slow")
            #expect(expired.string("status") == "failure" && expired.string("error_code") == "TIMED_OUT")
            let late = try await client.post("/sandbox/v1/redirect/pay_slow/approve", [:])
            #expect(late.string("status") == "failure" && late.string("error_code") == "TIMED_OUT")
            #expect(try await client.get("/sandbox/v1/netbanking/HDFC/account").int("balance") == 50_000_000)

            // A wallet page opened after the expiry shows the result, not the buttons.
            let wallet = try await walletPayment(client, "pay_wslow")
            await client.advance(by: 15 * 60 * 1000)
            let shown = try await page(client, "/wallets/pay/\(try #require(wallet.string("id")))")
            #expect(shown.html.contains("Payment timed out") && !shown.html.contains(">Approve<"))
            #expect(shown.html.contains("<input type=\"hidden\" name=\"status\" value=\"failure\">"))
        }
    }

    @Test func refundsAreIdempotentAndBounded() async throws {
        try await withSandbox { client, _ in
            _ = try await bankPayment(client, "pay_rf")
            let notPaid = try await client.post("/netbanking/v1/refunds", ["refund_reference": "rfnd_0", "reference": "pay_rf", "amount": 1])
            #expect(notPaid.status == 409 && notPaid.errorCode == "NOT_PAID")
            _ = try await client.post("/sandbox/v1/redirect/pay_rf/approve", [:])

            let first = try await client.post("/netbanking/v1/refunds", ["refund_reference": "rfnd_1", "reference": "pay_rf", "amount": 10_000])
            #expect(first.status == 200 && first.string("status") == "processed")
            #expect(first.string("refund_reference") == "rfnd_1" && first.string("reference") == "pay_rf" && first.int("amount") == 10_000)
            let refundID = try #require(first.string("id"))
            #expect(refundID.hasPrefix("nbr_") && refundID.count == 20)
            let again = try await client.post("/netbanking/v1/refunds", ["refund_reference": "rfnd_1", "reference": "pay_rf", "amount": 10_000])
            #expect(again.status == 200 && again.raw == first.raw)
            let reused = try await client.post("/netbanking/v1/refunds", ["refund_reference": "rfnd_1", "reference": "pay_rf", "amount": 5_000])
            #expect(reused.status == 409 && reused.errorCode == "DUPLICATE_REFERENCE")
            let exceeds = try await client.post("/netbanking/v1/refunds", ["refund_reference": "rfnd_2", "reference": "pay_rf", "amount": 40_001])
            #expect(exceeds.status == 400 && exceeds.errorCode == "REFUND_EXCEEDS")
            let rest = try await client.post("/netbanking/v1/refunds", ["refund_reference": "rfnd_3", "reference": "pay_rf", "amount": 40_000])
            #expect(rest.status == 200)
            let more = try await client.post("/netbanking/v1/refunds", ["refund_reference": "rfnd_4", "reference": "pay_rf", "amount": 1])
            #expect(more.errorCode == "REFUND_EXCEEDS")
            #expect(try await client.get("/netbanking/v1/payments/pay_rf").int("refunded_amount") == 50_000)
            #expect(try await client.get("/sandbox/v1/netbanking/HDFC/account").int("balance") == 50_000_000)
            let unknown = try await client.post("/netbanking/v1/refunds", ["refund_reference": "rfnd_5", "reference": "pay_none", "amount": 1])
            #expect(unknown.status == 404)

            _ = try await walletPayment(client, "pay_wrf", wallet: "mobikwik", amount: 20_000)
            _ = try await client.post("/sandbox/v1/redirect/pay_wrf/approve", [:])
            let walletRefund = try await client.post("/wallets/v1/mobikwik/refunds", ["refund_reference": "rfnd_w1", "reference": "pay_wrf", "amount": 20_000])
            #expect(walletRefund.status == 200 && walletRefund.string("id")?.hasPrefix("wlr_") == true)
            let wrongWallet = try await client.post("/wallets/v1/phonepe/refunds", ["refund_reference": "rfnd_w2", "reference": "pay_wrf", "amount": 1])
            #expect(wrongWallet.status == 404)
            #expect(try await client.get("/sandbox/v1/wallets/mobikwik/account").int("balance") == 1_000_000)
        }
    }

    @Test func droppedCallbackLeavesTheStatusCheckRight() async throws {
        try await withSandbox { client, recorder in
            #expect(try await client.put("/sandbox/v1/faults/netbanking", ["drop_callback_rate": 1]).status == 200)
            _ = try await bankPayment(client, "pay_drop")
            _ = try await client.post("/sandbox/v1/redirect/pay_drop/approve", [:])
            await client.advance(by: 5_000)
            #expect(recorder.callbacks("pay_drop").isEmpty && recorder.attemptCount("pay_drop") == 0)
            let status = try await client.get("/netbanking/v1/payments/pay_drop")
            #expect(status.string("status") == "success" && status.string("bank_reference") != nil)
            let stats = try await client.get("/sandbox/v1/stats")
            let netbanking = try #require(stats["netbanking"] as? [String: Any])
            #expect(netbanking["callbacks_dropped"] as? Int == 1 && netbanking["callbacks_sent"] as? Int == 0)
            #expect(netbanking["calls"] as? Int == 2, "the create and the status check; control calls are not the bank's")
        }
    }

    @Test func callbackRetriesAndDuplicates() async throws {
        try await withSandbox { client, recorder in
            #expect(try await client.put("/sandbox/v1/faults/wallets", ["duplicate_callback_rate": 1]).status == 200)
            recorder.refuse("pay_dup", times: 1)
            _ = try await walletPayment(client, "pay_dup")
            _ = try await client.post("/sandbox/v1/redirect/pay_dup/decline", [:])
            await client.advance(by: 0)
            await client.advance(by: 1_000)
            #expect(recorder.callbacks("pay_dup").count == 2 && recorder.attemptCount("pay_dup") == 3)
            let stats = try #require(try await client.get("/sandbox/v1/stats")["wallets"] as? [String: Any])
            #expect(stats["callbacks_duplicated"] as? Int == 1 && stats["callbacks_sent"] as? Int == 2)
        }
    }

    @Test func pageEscapesTheMerchant() async throws {
        try await withSandbox { client, _ in
            let created = try await bankPayment(client, "pay_page", merchant: "<script>alert(1)</script> & \"Co\"")
            let id = try #require(created.string("id"))
            let shown = try await page(client, "/netbanking/pay/\(id)")
            #expect(shown.status == 200)
            #expect(shown.html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Co&quot;"))
            #expect(!shown.html.contains("<script>alert"))
            #expect(shown.html.contains("HDFC Bank") && shown.html.contains("₹500.00"))
            #expect(shown.html.contains("<form method=\"post\" action=\"/netbanking/pay/\(id)\">"))
            #expect(shown.html.contains("name=\"action\" value=\"approve\"") && shown.html.contains(">Approve</button>"))
            #expect(shown.html.contains("name=\"action\" value=\"decline\"") && shown.html.contains(">Decline</button>"))
            #expect(shown.html.contains("name=\"viewport\""))
            #expect(!shown.html.contains("src=") && !shown.html.contains("href="), "no external resources")

            let wallet = try await walletPayment(client, "pay_wpage", wallet: "olamoney", merchant: "<b>Chai</b>")
            let walletShown = try await page(client, "/wallets/pay/\(try #require(wallet.string("id")))")
            #expect(walletShown.html.contains("Ola Money") && walletShown.html.contains("₹10,000.00"))
            #expect(walletShown.html.contains("&lt;b&gt;Chai&lt;/b&gt;"))

            #expect(try await page(client, "/netbanking/pay/nb_0000000000000000").status == 404)
            // A bank id on the wallets' page is not found either.
            #expect(try await page(client, "/wallets/pay/\(id)").status == 404)
        }
    }

    @Test func approvingOnThePageReturnsToTheMerchant() async throws {
        try await withSandbox { client, recorder in
            let created = try await bankPayment(client, "pay_form", bank: "KKBK")
            let id = try #require(created.string("id"))
            let done = try await page(client, "/netbanking/pay/\(id)", form: "action=approve")
            #expect(done.status == 200)
            #expect(done.html.contains("<form method=\"post\" action=\"https://shop.example/return?x=1&amp;y=2\">"))
            #expect(done.html.contains("<input type=\"hidden\" name=\"reference\" value=\"pay_form\">"))
            #expect(done.html.contains("<input type=\"hidden\" name=\"status\" value=\"success\">"))
            let status = try await client.get("/netbanking/v1/payments/pay_form")
            let bankReference = try #require(status.string("bank_reference"))
            #expect(done.html.contains("<input type=\"hidden\" name=\"bank_reference\" value=\"\(bankReference)\">"))
            #expect(done.html.contains(">Continue</button>") && done.html.contains("document.forms[0].submit()"))
            await client.advance(by: 0)
            #expect(recorder.callbacks("pay_form").first?.json["status"] as? String == "success")

            // Shown again, the page has the same return form; a second POST changes nothing.
            let again = try await page(client, "/netbanking/pay/\(id)", form: "action=decline")
            #expect(again.html.contains("name=\"status\" value=\"success\""))

            let wallet = try await walletPayment(client, "pay_wform")
            let walletID = try #require(wallet.string("id"))
            let nothing = try await page(client, "/wallets/pay/\(walletID)", form: "action=maybe")
            #expect(nothing.status == 400 && nothing.html.contains(">Approve</button>"))
            let declined = try await page(client, "/wallets/pay/\(walletID)", form: "action=decline")
            #expect(declined.html.contains("name=\"status\" value=\"failure\"") && declined.html.contains("name=\"wallet_reference\" value=\"\""))
            #expect(try await client.get("/wallets/v1/phonepe/payments/pay_wform").string("error_code") == "PAYMENT_DECLINED")
        }
    }

    @Test func faultsSignaturesAndReset() async throws {
        try await withSandbox { client, _ in
            _ = try await bankPayment(client, "pay_before")
            let id = try #require(try await client.get("/netbanking/v1/payments/pay_before").string("id"))
            #expect(try await client.put("/sandbox/v1/faults/netbanking", ["down": true]).status == 200)
            let down = try await bankPayment(client, "pay_down")
            #expect(down.status == 503 && down.errorCode == "UPSTREAM_UNAVAILABLE")
            #expect(try await client.get("/netbanking/v1/banks").status == 503)
            #expect(try await walletPayment(client, "pay_wup").status == 201, "only the banks are down")
            #expect(try await page(client, "/netbanking/pay/\(id)").status == 200, "the pages are exempt from faults")
            #expect(try await client.post("/sandbox/v1/redirect/pay_before/approve", [:]).string("status") == "success")
            #expect(try await client.put("/sandbox/v1/faults/wallets", ["down": true]).status == 200)
            #expect(try await client.get("/wallets/v1").status == 503)
            let faults = try await client.get("/sandbox/v1/faults")
            #expect((faults["wallets"] as? [String: Any])?["down"] as? Bool == true)

            let unsigned = try await client.send(.GET, "/netbanking/v1/payments/pay_before", signing: .none)
            #expect(unsigned.status == 401)
            #expect(try await client.send(.POST, "/sandbox/v1/redirect/pay_before/approve", raw: "", signing: .none).status == 401)

            _ = try await client.put("/sandbox/v1/netbanking/HDFC/account", ["balance": 5])
            let reset = try await client.post("/sandbox/v1/reset", [:])
            #expect(reset.status == 200)
            let stats = try await client.get("/sandbox/v1/stats")
            #expect((stats["netbanking"] as? [String: Any])?["calls"] as? Int == 0)
            #expect((stats["wallets"] as? [String: Any])?["errors_injected"] as? Int == 0)
            #expect(try await client.get("/netbanking/v1/payments/pay_before").status == 404)
            #expect(try await client.get("/wallets/v1/phonepe/payments/pay_wup").status == 404)
            #expect(try await page(client, "/netbanking/pay/\(id)").status == 404)
            #expect(try await client.get("/sandbox/v1/netbanking/HDFC/account").int("balance") == 50_000_000)
            #expect(try await bankPayment(client, "pay_before").status == 201, "the faults are cleared and the reference is free")
        }
    }
}
