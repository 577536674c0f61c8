import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
@testable import KoshSandbox

/// The 3-D Secure ACS (docs/CARDS.md §3): its signed API, the OTP by SMS, and the browser pages.
@Suite(.timeLimit(.minutes(1))) struct CardACSTests {
    static let card = "4100280000001007"
    static let phone = "+919810000001"

    func challenge(_ sandbox: CardSandbox, paymentID: String) async throws -> String {
        let created = try await sandbox.createAuthentication(Self.card, paymentID: paymentID)
        #expect(created.status == 201)
        #expect(created.string("status") == "challenge_required")
        #expect(created.int("otp_length") == 6 && created.int("attempts_left") == 3 && created.int("resends_left") == 3)
        let id = try #require(created.string("id"))
        #expect(id.hasPrefix("acs_"))
        #expect(created.string("challenge_url")?.hasSuffix("/acs/challenge/\(id)") == true)
        return id
    }

    @Test func theOTPIsTextedAndWrongThenRightAuthenticates() async throws {
        try await withCardSandbox { sandbox in
            let id = try await challenge(sandbox, paymentID: "pay_otp")
            let again = try await sandbox.createAuthentication(Self.card, paymentID: "pay_otp")
            #expect(again.string("id") == id, "the same payment finds the same authentication")
            let early = try await sandbox.http.post("/acs/v1/authentications/\(id)/verify", ["otp": "000000"])
            #expect(early.status == 409 && early.errorCode == "otp_not_sent")
            #expect(try await sandbox.http.post("/acs/v1/authentications/\(id)/otp", [:]).status == 200)
            let messages = try await sandbox.http.get("/sms/v1/messages")["items"] as? [[String: Any]] ?? []
            let sms = try #require(messages.last)
            #expect(sms["to"] as? String == Self.phone)
            let text = try #require(sms["text"] as? String)
            let otp = String(text.prefix(6))
            #expect(otp.count == 6 && otp.allSatisfy(\.isNumber))
            #expect(text == "\(otp) is the OTP for your payment of ₹500.00 at Acme Stores. Do not share it. - HDFC Bank")
            let wrong = try await sandbox.http.post("/acs/v1/authentications/\(id)/verify", ["otp": otp == "111111" ? "222222" : "111111"])
            #expect(wrong.status == 200)
            #expect(wrong.string("status") == "challenge_required" && wrong.string("reason") == "incorrect_otp")
            #expect(wrong.int("attempts_left") == 2)
            let right = try await sandbox.http.post("/acs/v1/authentications/\(id)/verify", ["otp": otp])
            #expect(right.string("status") == "authenticated" && right.string("eci") == "05")
            let cavv = try #require(right.string("cavv"))
            let confirmed = try await sandbox.http.get("/acs/v1/authentications/\(id)")
            #expect(confirmed.string("status") == "authenticated" && confirmed.string("cavv") == cavv)
            #expect(try await sandbox.http.get("/acs/v1/authentications/acs_nope").status == 404)
        }
    }

    @Test func threeWrongOTPsFail() async throws {
        try await withCardSandbox { sandbox in
            let id = try await challenge(sandbox, paymentID: "pay_wrong")
            _ = try await sandbox.http.post("/acs/v1/authentications/\(id)/otp", [:])
            let otp = try #require(try await sandbox.otps(to: Self.phone).last)
            let wrong = otp == "123456" ? "654321" : "123456"
            for left in [2, 1] {
                #expect(try await sandbox.http.post("/acs/v1/authentications/\(id)/verify", ["otp": wrong]).int("attempts_left") == left)
            }
            let failed = try await sandbox.http.post("/acs/v1/authentications/\(id)/verify", ["otp": wrong])
            #expect(failed.string("status") == "failed" && failed.string("reason") == "too_many_attempts")
            let late = try await sandbox.http.post("/acs/v1/authentications/\(id)/verify", ["otp": otp])
            #expect(late.string("status") == "failed", "the right OTP after the last try changes nothing")
            let connection = try await sandbox.connect()
            #expect(try await connection.exchange(ISO.authorisation(Self.card, paymentID: "pay_wrong", stan: "000001"))[39] == "63")
            await connection.close()
        }
    }

    @Test func resendsAreLimited() async throws {
        try await withCardSandbox { sandbox in
            let id = try await challenge(sandbox, paymentID: "pay_resend")
            for left in [3, 2, 1, 0] {
                let sent = try await sandbox.http.post("/acs/v1/authentications/\(id)/otp", [:])
                #expect(sent.status == 200 && sent.int("resends_left") == left)
            }
            let refused = try await sandbox.http.post("/acs/v1/authentications/\(id)/otp", [:])
            #expect(refused.status == 429 && refused.errorCode == "resend_limit")
            let otps = try await sandbox.otps(to: Self.phone)
            #expect(otps.count == 4)
            let last = try #require(otps.last)
            if let first = otps.first, first != last {
                let stale = try await sandbox.http.post("/acs/v1/authentications/\(id)/verify", ["otp": first])
                #expect(stale.string("reason") == "incorrect_otp", "a resend replaces the OTP")
            }
            let right = try await sandbox.http.post("/acs/v1/authentications/\(id)/verify", ["otp": last])
            #expect(right.string("status") == "authenticated")
        }
    }

    /// The OTP is good for 5 minutes of the sandbox's clock: checked at 299,999 ms and at 300,000.
    @Test func theOTPExpiresAfterFiveMinutes() async throws {
        try await withCardSandbox { sandbox in
            let inTime = try await challenge(sandbox, paymentID: "pay_intime")
            _ = try await sandbox.http.post("/acs/v1/authentications/\(inTime)/otp", [:])
            let inTimeOTP = try #require(try await sandbox.otps(to: Self.phone).last)
            let tooLate = try await challenge(sandbox, paymentID: "pay_toolate")
            _ = try await sandbox.http.post("/acs/v1/authentications/\(tooLate)/otp", [:])
            let tooLateOTP = try #require(try await sandbox.otps(to: Self.phone).last)
            await sandbox.http.advance(by: 299_999)
            #expect(try await sandbox.http.post("/acs/v1/authentications/\(inTime)/verify", ["otp": inTimeOTP]).string("status") == "authenticated")
            await sandbox.http.advance(by: 1)
            let expired = try await sandbox.http.post("/acs/v1/authentications/\(tooLate)/verify", ["otp": tooLateOTP])
            #expect(expired.string("status") == "challenge_required" && expired.string("reason") == "otp_expired")
            #expect(expired.int("attempts_left") == 3, "an expired OTP is not a wrong try")
            _ = try await sandbox.http.post("/acs/v1/authentications/\(tooLate)/otp", [:])
            let fresh = try #require(try await sandbox.otps(to: Self.phone).last)
            #expect(try await sandbox.http.post("/acs/v1/authentications/\(tooLate)/verify", ["otp": fresh]).string("status") == "authenticated")
        }
    }

    @Test func theACSAPIIsSignedAndValidated() async throws {
        try await withCardSandbox { sandbox in
            let body: [String: Any] = ["payment_id": "pay_s", "pan": Self.card, "expiry": "3012", "amount": 100, "currency": "INR",
                                       "merchant_name": "Acme", "return_url": "https://shop.example/r"]
            #expect(try await sandbox.http.send(.POST, "/acs/v1/authentications", body, signing: .none).status == 401)
            for (key, value) in [("pan", "41002800"), ("expiry", "3013"), ("amount", "100"), ("currency", "USD"),
                                 ("return_url", "ftp://x"), ("merchant_name", "")] as [(String, Any)] {
                var bad = body
                bad[key] = value
                #expect(try await sandbox.http.post("/acs/v1/authentications", bad).status == 400, "\(key)")
            }
            let unknown = try await sandbox.createAuthentication("4111111111111111", paymentID: "pay_unknown")
            #expect(unknown.string("status") == "failed" && unknown.string("reason") == "authentication_failed")
            _ = try await sandbox.http.put("/sandbox/v1/faults/acs", ["error_rate": 1])
            #expect(try await sandbox.createAuthentication(Self.card, paymentID: "pay_fault").status == 503)
        }
    }

    // MARK: The browser pages

    func page(_ sandbox: CardSandbox, _ id: String, form: String? = nil) async throws -> (status: Int, html: String) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(sandbox.http.port)/acs/challenge/\(id)")
        if let form {
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: form))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        #expect(response.headers["Content-Type"].first?.hasPrefix("text/html") == true)
        return (Int(response.status.code), String(buffer: body))
    }

    @Test func theChallengePageTakesTheOTPAndPostsBack() async throws {
        try await withCardSandbox { sandbox in
            let created = try await sandbox.createAuthentication(Self.card, amount: 50_000_00, paymentID: "pay_page",
                                                                 merchant: "<b>Chai & Co</b>", returnURL: "https://shop.example/return?x=1&y=2")
            let id = try #require(created.string("id"))
            let form = try await page(sandbox, id)
            #expect(form.status == 200)
            #expect(form.html.contains("<form method=\"post\" action=\"/acs/challenge/\(id)\">"))
            #expect(form.html.contains("autocomplete=\"one-time-code\"") && form.html.contains("inputmode=\"numeric\""))
            #expect(form.html.contains("<label for=\"otp\">"))
            #expect(form.html.contains("&lt;b&gt;Chai &amp; Co&lt;/b&gt;") && !form.html.contains("<b>Chai"))
            #expect(form.html.contains("₹50,000.00") && form.html.contains("410028******1007"))
            #expect(!form.html.contains("src=") && !form.html.contains("href="), "no external resources")
            let otps = try await sandbox.otps(to: Self.phone)
            #expect(otps.count == 1, "the first view texts the OTP")
            _ = try await page(sandbox, id)
            #expect(try await sandbox.otps(to: Self.phone).count == 1, "a second view does not")
            let otp = try #require(otps.last)
            let wrong = try await page(sandbox, id, form: "otp=" + (otp == "111111" ? "222222" : "111111"))
            #expect(wrong.html.contains("Incorrect code. 2 attempts left."))
            #expect(wrong.html.contains("role=\"alert\""))
            let done = try await page(sandbox, id, form: "otp=\(otp)")
            #expect(done.html.contains("action=\"https://shop.example/return?x=1&amp;y=2\""))
            #expect(done.html.contains("<input type=\"hidden\" name=\"authentication_id\" value=\"\(id)\">"))
            #expect(done.html.contains("<input type=\"hidden\" name=\"status\" value=\"authenticated\">"))
            #expect(done.html.contains("document.forms[0].submit()") && done.html.contains("<button type=\"submit\">Continue</button>"))
            #expect(try await sandbox.http.get("/acs/v1/authentications/\(id)").string("status") == "authenticated")
            #expect(try await page(sandbox, "acs_missing").status == 404)
        }
    }

    @Test func theCardholderCancelsOnThePage() async throws {
        try await withCardSandbox { sandbox in
            let id = try #require(try await sandbox.createAuthentication(Self.card, paymentID: "pay_quit").string("id"))
            let cancelled = try await page(sandbox, id, form: "cancel=1")
            #expect(cancelled.html.contains("name=\"status\" value=\"failed\""))
            #expect(cancelled.html.contains("name=\"reason\" value=\"payment_cancelled\""))
            let state = try await sandbox.http.get("/acs/v1/authentications/\(id)")
            #expect(state.string("status") == "failed" && state.string("reason") == "payment_cancelled")
        }
    }
}
