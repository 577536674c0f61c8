import Hummingbird
import KoshJSON

/// The 3-D Secure ACS's signed JSON API under `/acs/v1` (docs/CARDS.md §3). The OTP goes to
/// the cardholder's phone through the sandbox's SMS provider, so `GET /sms/v1/messages` shows it.
struct ACSAPI: Sendable {
    let runtime: SandboxRuntime
    let notifications: NotificationProviders

    func register(on router: Router<SandboxRequestContext>) {
        let api = router.group("acs/v1").add(middleware: FaultMiddleware(rail: .acs, runtime: runtime))
        api.post("authentications") { request, context in try await create(request, context) }
        api.get("authentications/:id") { request, context in
            let authentication = try find(try context.parameters.require("id"))
            return jsonResponse(authentication.json(challengeURL: Self.challengeURL(authentication.id, request)))
        }
        api.post("authentications/:id/otp") { request, context in
            let id = try context.parameters.require("id")
            let now = runtime.now()
            let authentication = try Self.send(runtime.withWorld { $0.sendOTP(id, now: now) }, notifications)
            return jsonResponse(authentication.json(challengeURL: Self.challengeURL(id, request)))
        }
        api.post("authentications/:id/verify") { request, context in
            let id = try context.parameters.require("id")
            var request = request
            let body = try await request.decode(VerifyBody.self, context: context)
            let now = runtime.now()
            switch runtime.withWorld({ $0.verifyOTP(id, otp: body.otp, now: now) }) {
            case .answered(let authentication):
                return jsonResponse(authentication.json(challengeURL: Self.challengeURL(id, request)))
            case .otpNotSent:
                throw SandboxHTTPError(status: .conflict, code: "otp_not_sent", message: "Send the OTP first: POST …/otp")
            case .notFound:
                throw SandboxHTTPError.notFound("No authentication \(id)")
            }
        }
    }

    struct CreateBody: Decodable {
        let paymentID: String
        let pan: String
        let expiry: String
        let amount: PaiseField
        let currency: String
        let merchantName: String
        let returnURL: String

        enum CodingKeys: String, CodingKey, CaseIterable {
            case paymentID = "payment_id", pan, expiry, amount, currency, merchantName = "merchant_name", returnURL = "return_url"
        }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: Set(CodingKeys.allCases.map(\.rawValue)))
            let c = try decoder.container(keyedBy: CodingKeys.self)
            paymentID = try c.decode(String.self, forKey: .paymentID)
            pan = try c.decode(String.self, forKey: .pan)
            expiry = try c.decode(String.self, forKey: .expiry)
            amount = try c.decode(PaiseField.self, forKey: .amount)
            currency = try c.decode(String.self, forKey: .currency)
            merchantName = try c.decode(String.self, forKey: .merchantName)
            returnURL = try c.decode(String.self, forKey: .returnURL)
        }
    }

    struct VerifyBody: Decodable {
        let otp: String

        enum CodingKeys: String, CodingKey { case otp }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: ["otp"])
            otp = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .otp)
            guard otp.utf8.count <= 32 else { throw MalformedRequest(message: "otp must be at most 32 characters") }
        }
    }

    private func create(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decode(CreateBody.self, context: context)
        let new = try Self.validate(body)
        switch runtime.withWorld({ $0.createAuthentication(new) }) {
        case .created(let authentication), .existing(let authentication):
            return jsonResponse(authentication.json(challengeURL: Self.challengeURL(authentication.id, request)), status: .created)
        case .full:
            throw SandboxHTTPError(status: .serviceUnavailable, code: "SANDBOX_FULL", message: "The ACS holds too many authentications; reset it")
        }
    }

    static func validate(_ body: CreateBody) throws -> NewAuthentication {
        let paymentID = try Validate.identifier(body.paymentID, field: "payment_id")
        guard (12...19).contains(body.pan.utf8.count), body.pan.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else {
            throw MalformedRequest(message: "pan must be 12 to 19 digits")
        }
        guard body.expiry.utf8.count == 4, body.expiry.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let month = Int(body.expiry.suffix(2)), (1...12).contains(month) else {
            throw MalformedRequest(message: "expiry must be YYMM")
        }
        guard body.currency == "INR", let amount = body.amount.value, Amounts.isAcceptable(amount) else {
            throw MalformedRequest(message: "amount must be 1…\(Amounts.maximumAccepted) paise in INR")
        }
        guard let merchantName = try Validate.text(body.merchantName, field: "merchant_name"), !merchantName.isEmpty else {
            throw MalformedRequest(message: "merchant_name must be 1 to \(SandboxLimits.maximumTextLength) bytes")
        }
        guard let returnURL = try Validate.callback(body.returnURL, field: "return_url") else {
            throw MalformedRequest(message: "return_url is required")
        }
        return NewAuthentication(paymentID: paymentID, cardNumber: body.pan, expiry: body.expiry, amount: amount,
                                 merchantName: merchantName, returnURL: returnURL.url)
    }

    private func find(_ id: String) throws -> ACSAuthentication {
        guard let authentication = runtime.withWorld({ $0.authentication(id) }) else {
            throw SandboxHTTPError.notFound("No authentication \(id)")
        }
        return authentication
    }

    /// Texts the OTP the world made; answers the authentication, or the error for the outcome.
    static func send(_ outcome: ACSOTPOutcome, _ notifications: NotificationProviders) throws -> ACSAuthentication {
        switch outcome {
        case .sent(let authentication, let message):
            guard text(message, notifications) else {
                throw SandboxHTTPError(status: .serviceUnavailable, code: "otp_delivery_failed",
                                       message: "The SMS provider refused the OTP; resend it")
            }
            return authentication
        case .resendLimit:
            throw SandboxHTTPError(status: .tooManyRequests, code: "resend_limit", message: "No resends are left")
        case .notChallenging:
            throw SandboxHTTPError(status: .conflict, code: "not_challenging", message: "The authentication is no longer waiting for an OTP")
        case .notFound:
            throw SandboxHTTPError.notFound("No such authentication")
        }
    }

    /// Texts an OTP to the cardholder's phone through the sandbox's SMS provider; false when
    /// the provider refused it (an outage).
    static func text(_ message: OTPMessage, _ notifications: NotificationProviders) -> Bool {
        let fields: [(String, JSON)] = [("to", .string(message.to)), ("text", .string(message.text)), ("reference", .string(message.reference))]
        return notifications.accept("sms", fields) != nil
    }

    /// The challenge page's address on the host the caller reached the sandbox at.
    static func challengeURL(_ id: String, _ request: Request) -> String {
        let path = "/acs/challenge/" + id
        guard let authority = request.head.authority, !authority.isEmpty, authority.utf8.count <= 255,
              authority.utf8.allSatisfy({ byte in
                  (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                      || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || Array(".-:[]").contains(Character(UnicodeScalar(byte)))
              }) else { return path }
        return "http://" + authority + path
    }
}
