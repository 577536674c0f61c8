import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
@testable import KoshSandbox

/// alphapay's card API (docs/CARDS.md §4): its own 3-D Secure with the sandbox's ACS, the
/// issuers' decisions shared with the acquirer, capture, void, refunds, faults and the books.
@Suite(.timeLimit(.minutes(1))) struct AggregatorCardTests {
    /// The payment's `authentication` object.
    static func authentication(_ reply: Reply) -> Reply {
        Reply(status: reply.status, json: reply.json["authentication"] as? [String: Any] ?? [:], raw: "")
    }

    static func errorField(_ reply: Reply) -> String? { (reply.json["error"] as? [String: Any])?["field"] as? String }

    static let visa = "4100280000001007"           // domestic: an OTP
    static let visaPhone = "+919810000001"
    static let international = "4012888888881881" // frictionless
    static let fiveLakh = Int(TestCards.fiveLakh)

    static func body(_ reference: String, _ number: String, amount: Int = 50_000, cvv: String? = "123") -> [String: Any] {
        var card: [String: Any] = ["number": number, "expiry_month": 12, "expiry_year": 2030, "name": "Asha Rao"]
        if let cvv { card["cvv"] = cvv }
        return ["reference": reference, "amount": amount, "currency": "INR", "card": card, "merchant_name": "Acme Stores",
                "return_url": "https://shop.example/return/\(reference)"]
    }

    /// A payment that has passed 3-D Secure: an OTP read off the SMS provider for a domestic card.
    func authenticated(_ sandbox: CardSandbox, _ reference: String, _ number: String, amount: Int = 50_000) async throws -> Reply {
        let created = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body(reference, number, amount: amount,
                                                                                            cvv: number.hasPrefix("37") ? "1234" : "123"))
        try #require(created.status == 201, "\(created)")
        guard created.string("status") == "authentication_required" else { return created }
        let otp = try await sendOTP(sandbox, reference, number)
        return try await sandbox.http.post("/alphapay/v1/card_payments/\(reference)/otp/verify", ["otp": otp])
    }

    /// Has alphapay text the OTP; answers the one the cardholder's phone got.
    func sendOTP(_ sandbox: CardSandbox, _ reference: String, _ number: String) async throws -> String {
        let sent = try await sandbox.http.post("/alphapay/v1/card_payments/\(reference)/otp", [:])
        try #require(sent.status == 200, "\(sent)")
        let phone = try #require(TestCards.card(number)?.phone)
        return try #require(try await sandbox.otps(to: phone).last)
    }

    func authorize(_ sandbox: CardSandbox, _ reference: String) async throws -> Reply {
        try await sandbox.http.post("/alphapay/v1/card_payments/\(reference)/authorize", [:])
    }

    func get(_ sandbox: CardSandbox, _ reference: String) async throws -> Reply {
        try await sandbox.http.get("/alphapay/v1/card_payments/\(reference)")
    }

    // MARK: The happy paths

    @Test func aDomesticVisaPaymentGoesFromChallengeToRefund() async throws {
        try await withCardSandbox { sandbox in
            let created = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_happy", Self.visa))
            #expect(created.status == 201)
            let id = try #require(created.string("id"))
            #expect(id.hasPrefix("apc_") && id.count == 20)
            #expect(created.string("reference") == "pay_happy" && created.int("amount") == 50_000 && created.string("currency") == "INR")
            #expect(created.string("status") == "authentication_required")
            #expect(created.json["card"] as? [String: String] == ["last4": "1007", "network": "Visa"])
            #expect(created.int("fee") == 950, "1.90 % of ₹500")
            #expect(created.int("created_at") == 1_700_000_000, "unix seconds")
            #expect(created["auth_code"] is NSNull && created["rrn"] is NSNull && created["error_code"] is NSNull)
            let authentication = Self.authentication(created)
            #expect(authentication.string("status") == "challenge_required")
            #expect(authentication.string("challenge_url")?.contains("/acs/challenge/acs_") == true)
            #expect(authentication.int("attempts_left") == 3 && authentication.int("resends_left") == 3)
            #expect((authentication["otp_sent"] as? NSNumber)?.boolValue == false && authentication["reason"] is NSNull)

            let early = try await sandbox.http.post("/alphapay/v1/card_payments/pay_happy/otp/verify", ["otp": "123456"])
            #expect(early.status == 409 && early.errorCode == "OTP_NOT_SENT")
            let notYet = try await authorize(sandbox, "pay_happy")
            #expect(notYet.status == 409 && notYet.errorCode == "NOT_AUTHENTICATED")

            let sent = try await sandbox.http.post("/alphapay/v1/card_payments/pay_happy/otp", [:])
            #expect((Self.authentication(sent)["otp_sent"] as? NSNumber)?.boolValue == true)
            let phoneOTP = try await sandbox.http.get("/sandbox/v1/cards/otp/pay_happy")
            let sms = try #require((try await sandbox.http.get("/sms/v1/messages")["items"] as? [[String: Any]])?.last)
            #expect(sms["to"] as? String == Self.visaPhone)
            let otp = String((sms["text"] as? String ?? "").prefix(6))
            #expect(phoneOTP.string("otp") == otp, "the control route finds alphapay's authentication too")
            #expect(sms["text"] as? String == "\(otp) is the OTP for your payment of ₹500.00 at Acme Stores. Do not share it. - HDFC Bank")
            let verified = try await sandbox.http.post("/alphapay/v1/card_payments/pay_happy/otp/verify", ["otp": otp])
            #expect(verified.status == 200 && verified.string("status") == "authenticated")
            #expect(Self.authentication(verified)["challenge_url"] is NSNull)

            let authorized = try await authorize(sandbox, "pay_happy")
            #expect(authorized.status == 200 && authorized.string("status") == "authorized")
            #expect(authorized.string("auth_code")?.count == 6)
            #expect(authorized.string("rrn")?.count == 12)
            var card = try await sandbox.card(Self.visa)
            #expect(card.int("held") == 50_000 && card.int("available") == Self.fiveLakh - 50_000)

            let captured = try await sandbox.http.post("/alphapay/v1/card_payments/pay_happy/capture", ["amount": 40_000])
            #expect(captured.status == 200 && captured.string("status") == "captured" && captured.int("captured_amount") == 40_000)
            card = try await sandbox.card(Self.visa)
            #expect(card.int("held") == 0, "the rest of the hold released")
            #expect(card.int("balance") == Self.fiveLakh - 40_000)

            let refund = try await sandbox.http.post("/alphapay/v1/card_payments/pay_happy/refunds",
                                                     ["refund_reference": "rfnd_happy", "amount": 10_000])
            #expect(refund.status == 200 && refund.string("status") == "processed")
            #expect(refund.string("id")?.hasPrefix("apcr_") == true && refund.string("id")?.count == 21)
            #expect(refund.string("refund_reference") == "rfnd_happy" && refund.string("payment_reference") == "pay_happy")
            #expect(refund.int("amount") == 10_000)
            #expect(try await sandbox.card(Self.visa).int("balance") == Self.fiveLakh - 30_000)
            let after = try await get(sandbox, "pay_happy")
            #expect(after.string("status") == "captured" && after.int("refunded_amount") == 10_000)

            let books = try await sandbox.transaction("pay_happy")
            #expect(books.status == 200 && books.string("via") == "alphapay" && books.string("status") == "approved")
            #expect(books.int("captured_amount") == 40_000 && books.int("refunded_amount") == 10_000)
            #expect(books.json["response_codes"] as? [String] == ["0110:00", "0210:00", "0210:00"])
            #expect(books.string("card") == "410028******1007")
            for reply in [created, sent, verified, authorized, captured, after, books] {
                #expect(!reply.raw.contains(Self.visa), "never the full card number")
                #expect(!reply.raw.contains("\"cvv\""))
            }
        }
    }

    @Test func anInternationalCardIsFrictionlessAndAmexPaysMore() async throws {
        try await withCardSandbox { sandbox in
            let created = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_intl", Self.international, amount: 12_345))
            #expect(created.status == 201 && created.string("status") == "authenticated")
            let authentication = Self.authentication(created)
            #expect(authentication.string("status") == "authenticated" && authentication["challenge_url"] is NSNull)
            #expect(created.int("fee") == 235, "234.555 rounds half up")
            let otp = try await sandbox.http.post("/alphapay/v1/card_payments/pay_intl/otp", [:])
            #expect(otp.status == 409 && otp.errorCode == "NOT_CHALLENGING")
            #expect(try await authorize(sandbox, "pay_intl").string("status") == "authorized")
            #expect(try await sandbox.card(Self.international).int("held") == 12_345)

            let amex = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_amex", "378282246310005", cvv: "1234"))
            #expect(amex.int("fee") == 1_450, "2.90 % for American Express")
            #expect(amex.json["card"] as? [String: String] == ["last4": "0005", "network": "American Express"])
        }
    }

    // MARK: 3-D Secure

    @Test func aWrongOTPThenTheRightOneAuthenticates() async throws {
        try await withCardSandbox { sandbox in
            _ = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_wrong", Self.visa))
            let otp = try await sendOTP(sandbox, "pay_wrong", Self.visa)
            let wrong = try await sandbox.http.post("/alphapay/v1/card_payments/pay_wrong/otp/verify",
                                                    ["otp": otp == "111111" ? "222222" : "111111"])
            #expect(wrong.status == 200 && wrong.string("status") == "authentication_required")
            let authentication = Self.authentication(wrong)
            #expect(authentication.string("reason") == "incorrect_otp" && authentication.int("attempts_left") == 2)
            let right = try await sandbox.http.post("/alphapay/v1/card_payments/pay_wrong/otp/verify", ["otp": otp])
            #expect(right.string("status") == "authenticated")
            #expect(Self.authentication(right)["reason"] is NSNull)
        }
    }

    @Test func tooManyWrongOTPsFailAndResendsAreLimited() async throws {
        try await withCardSandbox { sandbox in
            _ = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_many", Self.visa))
            let otp = try await sendOTP(sandbox, "pay_many", Self.visa)
            let wrong = otp == "123456" ? "654321" : "123456"
            for _ in 0..<2 { _ = try await sandbox.http.post("/alphapay/v1/card_payments/pay_many/otp/verify", ["otp": wrong]) }
            let failed = try await sandbox.http.post("/alphapay/v1/card_payments/pay_many/otp/verify", ["otp": wrong])
            #expect(failed.status == 200 && failed.string("status") == "failed")
            #expect(failed.string("error_code") == "AUTHENTICATION_FAILED" && failed.string("error_description") != nil)
            #expect(Self.authentication(failed).string("reason") == "too_many_attempts")
            let late = try await sandbox.http.post("/alphapay/v1/card_payments/pay_many/otp/verify", ["otp": otp])
            #expect(late.string("status") == "failed", "the right OTP after the last try changes nothing")
            let refused = try await authorize(sandbox, "pay_many")
            #expect(refused.status == 409 && refused.errorCode == "NOT_AUTHENTICATED")
            #expect(try await sandbox.http.post("/alphapay/v1/card_payments/pay_many/otp", [:]).errorCode == "NOT_CHALLENGING")

            _ = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_resend", Self.visa))
            for left in [3, 2, 1, 0] {
                let sent = try await sandbox.http.post("/alphapay/v1/card_payments/pay_resend/otp", [:])
                #expect(sent.status == 200 && Self.authentication(sent).int("resends_left") == left)
            }
            let limit = try await sandbox.http.post("/alphapay/v1/card_payments/pay_resend/otp", [:])
            #expect(limit.status == 429 && limit.errorCode == "RESEND_LIMIT")
        }
    }

    /// A cardholder's browser completes the ACS page named by `challenge_url`, which posts back to
    /// the `return_url`; alphapay's GET then sees the authentication (it asks the ACS).
    @Test func theChallengePageCompletesTheAuthentication() async throws {
        try await withCardSandbox { sandbox in
            let created = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_page", Self.visa))
            let url = try #require(Self.authentication(created).string("challenge_url"))
            #expect(url.hasPrefix("http://127.0.0.1:\(sandbox.http.port)/acs/challenge/acs_"))
            let form = try await browse(url)
            #expect(form.contains("Acme Stores") && form.contains("410028******1007") && !form.contains(Self.visa))
            let otp = try #require(try await sandbox.otps(to: Self.visaPhone).last, "the first view texts the OTP")
            let done = try await browse(url, form: "otp=\(otp)")
            #expect(done.contains("action=\"https://shop.example/return/pay_page\""))
            #expect(done.contains("name=\"status\" value=\"authenticated\""))
            let seen = try await get(sandbox, "pay_page")
            #expect(seen.string("status") == "authenticated")
            #expect(try await authorize(sandbox, "pay_page").string("status") == "authorized")
        }
    }

    func browse(_ url: String, form: String? = nil) async throws -> String {
        var request = HTTPClientRequest(url: url)
        if let form {
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: form))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        #expect(response.status == .ok)
        return String(buffer: try await response.body.collect(upTo: 1 << 20))
    }

    // MARK: What alphapay refuses

    @Test func unsupportedInvalidAndMalformedCardsAreRefused() async throws {
        try await withCardSandbox { sandbox in
            for number in ["6527658900001005", "30569309025904"] {  // RuPay, Diners Club
                let refused = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_ns", number))
                #expect(refused.status == 400 && refused.errorCode == "CARD_NOT_SUPPORTED", "\(number)")
                #expect(!refused.raw.contains(number))
            }
            let luhn = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_luhn", "4100280000001008"))
            #expect(luhn.status == 400 && luhn.errorCode == "INVALID_CARD")
            let cases: [(String, [String: Any], String)] = [
                ("amount", ["amount": "500"], "amount"),
                ("currency", ["currency": "USD"], "currency"),
                ("unknown", ["method": "card"], "method"),
                ("return_url", ["return_url": "ftp://x"], "return_url"),
                ("reference", ["reference": "pay bad"], "reference"),
            ]
            for (name, change, field) in cases {
                let body = Self.body("pay_bad", Self.visa).merging(change) { $1 }
                let bad = try await sandbox.http.post("/alphapay/v1/card_payments", body)
                #expect(bad.status == 400 && bad.errorCode == "BAD_REQUEST", "\(name): \(bad)")
                #expect(Self.errorField(bad) == field, "\(name)")
                #expect((bad.json["error"] as? [String: Any])?["description"] is String)
            }
            var noMonth = Self.body("pay_nomonth", Self.visa)
            noMonth["card"] = ["number": Self.visa, "expiry_year": 2030]
            let missing = try await sandbox.http.post("/alphapay/v1/card_payments", noMonth)
            #expect(missing.status == 400 && Self.errorField(missing) == "card.expiry_month")
            let refusedByACS = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_acsno", "4100280000000009"))
            #expect(refusedByACS.status == 201 && refusedByACS.string("status") == "failed")
            #expect(refusedByACS.string("error_code") == "AUTHENTICATION_FAILED")
            #expect(Self.authentication(refusedByACS).string("reason") == "authentication_failed")
            #expect(try await get(sandbox, "pay_none").errorCode == "NOT_FOUND")
            #expect(try await sandbox.http.send(.POST, "/alphapay/v1/card_payments", Self.body("pay_unsigned", Self.visa),
                                                signing: .none).status == 401)
        }
    }

    // MARK: The issuers' answers

    /// The issuers are the acquirer's: the same cards decline the same way, in alphapay's words.
    @Test func declinesMapToAlphapaysErrorCodes() async throws {
        try await withCardSandbox { sandbox in
            try await sandbox.cardTiming(lateAnswerMs: 50, issuerTimeoutMs: 50)  // real time, kept short
            let expected: [(String, Int, String)] = [
                ("4100280000080001", 50_000, "INSUFFICIENT_FUNDS"), ("4100280000060003", 50_000, "CARD_DECLINED"),
                ("4100280000030006", 50_000, "CARD_NOT_ENABLED"), ("4100280000010008", 50_000, "INVALID_CARD"),
                ("4100280000020007", 50_000, "BANK_ERROR"), ("5305620000001004", 50_000, "CARD_EXPIRED"),
                ("4100280000090000", 50_000, "ISSUER_TIMEOUT"), (Self.visa, 20_000_001, "LIMIT_EXCEEDED"),
            ]
            for (index, (number, amount, code)) in expected.enumerated() {
                let reference = "pay_decl\(index)"
                let verified = try await authenticated(sandbox, reference, number, amount: amount)
                #expect(verified.string("status") == "authenticated", "\(number)")
                let failed = try await authorize(sandbox, reference)
                #expect(failed.status == 200 && failed.string("status") == "failed", "\(number)")
                #expect(failed.string("error_code") == code, "\(number): \(failed)")
                #expect(failed["auth_code"] is NSNull)
                #expect(try await sandbox.transaction(reference).string("status") == "declined")
            }
            #expect(try await sandbox.card("4100280000080001").int("held") == 0)
            let cancelled = try await authenticated(sandbox, "pay_cancel", "4100280000070002")
            #expect(cancelled.string("status") == "failed" && cancelled.string("error_code") == "AUTHENTICATION_FAILED")
            #expect(Self.authentication(cancelled).string("reason") == "payment_cancelled")
            // alphapay's decline_rate declines an approval as CARD_DECLINED.
            _ = try await sandbox.http.put("/sandbox/v1/faults/alphapay", ["decline_rate": 1])
            _ = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_fault", Self.international))
            let declined = try await authorize(sandbox, "pay_fault")
            #expect(declined.string("status") == "failed" && declined.string("error_code") == "CARD_DECLINED")
            #expect(try await sandbox.transaction("pay_fault").json["response_codes"] as? [String] == ["0110:05"])
        }
    }

    // MARK: Idempotency

    @Test func createAuthorizeCaptureAndRefundAreIdempotent() async throws {
        try await withCardSandbox { sandbox in
            let first = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_idem", Self.international))
            let again = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_idem", Self.international, cvv: nil))
            #expect(first.status == 201 && again.status == 200 && again.string("id") == first.string("id"))
            let other = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_idem", Self.international, amount: 50_001))
            #expect(other.status == 409 && other.errorCode == "DUPLICATE_REFERENCE")

            let authorized = try await authorize(sandbox, "pay_idem")
            let reauthorized = try await authorize(sandbox, "pay_idem")
            #expect(authorized.string("status") == "authorized" && reauthorized.string("status") == "authorized")
            #expect(authorized.string("auth_code") == reauthorized.string("auth_code"))
            #expect((try await sandbox.card(Self.international)["holds"] as? [Any])?.count == 1)
            let repeatedCreate = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_idem", Self.international))
            #expect(repeatedCreate.status == 200 && repeatedCreate.string("status") == "authorized", "a repeat answers the payment as it is now")

            for _ in 0..<2 {
                let captured = try await sandbox.http.post("/alphapay/v1/card_payments/pay_idem/capture", ["amount": 50_000])
                #expect(captured.status == 200 && captured.string("status") == "captured")
            }
            #expect(try await sandbox.card(Self.international).int("balance") == Self.fiveLakh - 50_000)
            let refund = try await sandbox.http.post("/alphapay/v1/card_payments/pay_idem/refunds", ["refund_reference": "rfnd_i", "amount": 20_000])
            let replay = try await sandbox.http.post("/alphapay/v1/card_payments/pay_idem/refunds", ["refund_reference": "rfnd_i", "amount": 20_000])
            #expect(refund.status == 200 && replay.status == 200 && replay.string("id") == refund.string("id"))
            #expect(try await sandbox.card(Self.international).int("balance") == Self.fiveLakh - 30_000, "credited once")
            let clash = try await sandbox.http.post("/alphapay/v1/card_payments/pay_idem/refunds", ["refund_reference": "rfnd_i", "amount": 1])
            #expect(clash.status == 409 && clash.errorCode == "DUPLICATE_REFERENCE")
            let books = try await sandbox.transaction("pay_idem")
            #expect(books.json["response_codes"] as? [String] == ["0110:00", "0210:00", "0210:00"])
        }
    }

    /// Two authorize calls for a payment whose issuer answers late (300 ms of real time: slow
    /// issuers hold up the answer on the wire, which only real time can do) get the same answer
    /// and one hold.
    @Test func aRepeatWhileTheIssuerDecidesWaitsForTheSameAnswer() async throws {
        try await withCardSandbox { sandbox in
            try await sandbox.cardTiming(lateAnswerMs: 300)
            let late = "5241810000001008"
            #expect(try await authenticated(sandbox, "pay_wait", late).string("status") == "authenticated")
            let started = ContinuousClock.now
            async let first = authorize(sandbox, "pay_wait")
            async let second = authorize(sandbox, "pay_wait")
            let (a, b) = try await (first, second)
            #expect(ContinuousClock.now - started >= .milliseconds(300))
            #expect(a.string("status") == "authorized" && b.string("status") == "authorized")
            #expect(a.string("auth_code") == b.string("auth_code"))
            #expect(try await sandbox.card(late).int("held") == 50_000)
        }
    }

    // MARK: Void

    @Test func aVoidReleasesTheHold() async throws {
        try await withCardSandbox { sandbox in
            _ = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_void", Self.international, amount: 25_000))
            _ = try await authorize(sandbox, "pay_void")
            #expect(try await sandbox.card(Self.international).int("held") == 25_000)
            let voided = try await sandbox.http.post("/alphapay/v1/card_payments/pay_void/void", [:])
            #expect(voided.status == 200 && voided.string("status") == "voided")
            #expect(voided.string("auth_code") != nil, "it was authorised")
            let card = try await sandbox.card(Self.international)
            #expect(card.int("held") == 0 && card.int("balance") == Self.fiveLakh)
            let books = try await sandbox.transaction("pay_void")
            #expect(books.string("status") == "reversed" && books.int("reversed_amount") == 25_000)
            #expect(try await sandbox.http.post("/alphapay/v1/card_payments/pay_void/void", [:]).string("status") == "voided")
            let capture = try await sandbox.http.post("/alphapay/v1/card_payments/pay_void/capture", ["amount": 25_000])
            #expect(capture.status == 409 && capture.errorCode == "NOT_AUTHORIZED")

            // Voided before any authorize: nothing held, and a later authorize holds nothing.
            _ = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_early", Self.international))
            #expect(try await sandbox.http.post("/alphapay/v1/card_payments/pay_early/void", [:]).string("status") == "voided")
            #expect(try await authorize(sandbox, "pay_early").string("status") == "voided")
            #expect(try await sandbox.card(Self.international).int("held") == 0)
            #expect(try await sandbox.transaction("pay_early").status == 404, "never authorised")

            _ = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_cap", Self.international))
            _ = try await authorize(sandbox, "pay_cap")
            _ = try await sandbox.http.post("/alphapay/v1/card_payments/pay_cap/capture", ["amount": 50_000])
            let tooLate = try await sandbox.http.post("/alphapay/v1/card_payments/pay_cap/void", [:])
            #expect(tooLate.status == 409 && tooLate.errorCode == "ALREADY_CAPTURED")
        }
    }

    /// The late issuer's card with `late_answer_ms` at 1.5 s (real time: the issuer holds up the
    /// authorize call on the wire; long enough that a loaded machine still voids while it
    /// waits): a void while the issuer decides answers `voided` at once and
    /// the approval that comes later is released at once, as the acquirer's `late_reversed`.
    @Test func aVoidWhileAuthorisingReleasesTheLateApproval() async throws {
        try await withCardSandbox { sandbox in
            try await sandbox.cardTiming(lateAnswerMs: 1_500)
            let late = "5241810000001008"
            #expect(try await authenticated(sandbox, "pay_late", late).string("status") == "authenticated")
            async let authorizing = authorize(sandbox, "pay_late")
            var state = try await get(sandbox, "pay_late")
            let deadline = ContinuousClock.now + .seconds(5)
            while state.string("status") != "authorizing" && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
                state = try await get(sandbox, "pay_late")
            }
            #expect(state.string("status") == "authorizing")
            #expect(try await sandbox.transaction("pay_late").string("status") == "pending")
            let voided = try await sandbox.http.post("/alphapay/v1/card_payments/pay_late/void", [:])
            #expect(voided.status == 200 && voided.string("status") == "voided")
            let answer = try await authorizing
            #expect(answer.status == 200 && answer.string("status") == "voided")
            #expect(answer["auth_code"] is NSNull)
            let books = try await sandbox.transaction("pay_late")
            #expect(books.string("status") == "late_reversed" && books.int("reversed_amount") == 50_000)
            let card = try await sandbox.card(late)
            #expect(card.int("held") == 0 && card.int("balance") == Self.fiveLakh)
        }
    }

    // MARK: Limits

    @Test func captureAndRefundsAreBoundedByWhatWasAuthorisedAndCaptured() async throws {
        try await withCardSandbox { sandbox in
            _ = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_lim", Self.international, amount: 30_000))
            let early = try await sandbox.http.post("/alphapay/v1/card_payments/pay_lim/capture", ["amount": 30_000])
            #expect(early.status == 409 && early.errorCode == "NOT_AUTHORIZED")
            _ = try await authorize(sandbox, "pay_lim")
            let notCaptured = try await sandbox.http.post("/alphapay/v1/card_payments/pay_lim/refunds", ["refund_reference": "rfnd_l0", "amount": 1])
            #expect(notCaptured.status == 409 && notCaptured.errorCode == "NOT_CAPTURED")
            let over = try await sandbox.http.post("/alphapay/v1/card_payments/pay_lim/capture", ["amount": 30_001])
            #expect(over.status == 400 && over.errorCode == "AMOUNT_EXCEEDS")
            #expect(try await sandbox.http.post("/alphapay/v1/card_payments/pay_lim/capture", ["amount": 20_000]).string("status") == "captured")
            _ = try await sandbox.http.post("/alphapay/v1/card_payments/pay_lim/refunds", ["refund_reference": "rfnd_l1", "amount": 15_000])
            let beyond = try await sandbox.http.post("/alphapay/v1/card_payments/pay_lim/refunds", ["refund_reference": "rfnd_l2", "amount": 5_001])
            #expect(beyond.status == 400 && beyond.errorCode == "REFUND_EXCEEDS")
            let rest = try await sandbox.http.post("/alphapay/v1/card_payments/pay_lim/refunds", ["refund_reference": "rfnd_l3", "amount": 5_000])
            #expect(rest.status == 200)
            #expect(try await sandbox.card(Self.international).int("balance") == Self.fiveLakh)
            #expect(try await sandbox.http.post("/alphapay/v1/card_payments/pay_nobody/refunds",
                                                ["refund_reference": "rfnd_l4", "amount": 1]).status == 404)
        }
    }

    // MARK: Faults, books and reset

    @Test func alphapaysFaultsApplyToItsCardAPI() async throws {
        try await withCardSandbox { sandbox in
            _ = try await sandbox.http.put("/sandbox/v1/faults/alphapay", ["down": true])
            let down = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_down", Self.international))
            #expect(down.status == 503 && down.errorCode == "UPSTREAM_UNAVAILABLE")
            #expect((down.json["error"] as? [String: Any])?["description"] is String)
            #expect(try await get(sandbox, "pay_down").status == 503)
            let stats = try await sandbox.http.get("/sandbox/v1/stats")["alphapay"] as? [String: Any]
            #expect((stats?["errors_injected"] as? NSNumber)?.intValue == 2)
            _ = try await sandbox.http.put("/sandbox/v1/faults/alphapay", ["down": false, "error_rate": 1])
            #expect(try await get(sandbox, "pay_down").errorCode == "UPSTREAM_UNAVAILABLE")
            _ = try await sandbox.http.put("/sandbox/v1/faults/alphapay", ["error_rate": 0])
            #expect(try await get(sandbox, "pay_down").status == 404, "nothing was created while down")
        }
    }

    @Test func theBooksShowWhichRouteAPaymentTookAndResetClearsThem() async throws {
        try await withCardSandbox { sandbox in
            let connection = try await sandbox.connect()
            let direct = try await connection.exchange(ISO.authorisation(Self.international, amount: 10_000, paymentID: "pay_direct",
                                                                         stan: "000001"))
            #expect(direct[39] == "00")
            await connection.close()
            _ = try await sandbox.http.post("/alphapay/v1/card_payments", Self.body("pay_via", Self.international, amount: 20_000))
            _ = try await authorize(sandbox, "pay_via")
            #expect(try await sandbox.transaction("pay_direct").string("via") == "acquirer")
            #expect(try await sandbox.transaction("pay_via").string("via") == "alphapay")
            let card = try await sandbox.card(Self.international)
            #expect(card.int("held") == 30_000)
            let listed = (card["transactions"] as? [[String: Any]] ?? []).map { ($0["payment_id"] as? String ?? "", $0["via"] as? String ?? "") }
            #expect(listed.map(\.0) == ["pay_direct", "pay_via"] && listed.map(\.1) == ["acquirer", "alphapay"])
            let otpRoute = try await sandbox.http.get("/sandbox/v1/cards/otp/pay_via")
            #expect(otpRoute.status == 404, "a frictionless payment had no OTP")

            #expect(try await sandbox.http.post("/sandbox/v1/reset", [:]).status == 200)
            #expect(try await get(sandbox, "pay_via").status == 404)
            #expect(try await sandbox.transaction("pay_via").status == 404)
            #expect(try await sandbox.card(Self.international).int("held") == 0)
        }
    }
}
