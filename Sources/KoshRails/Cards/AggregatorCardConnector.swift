import KoshCore
import KoshJSON
import Logging
import NIOHTTP1

/// How Kosh talks to an aggregator's card API.
public struct AggregatorCardConfiguration: Sendable {
    /// The connector's name in routes, payments and logs.
    public var name: String
    /// The upstream's name in the rails' HTTP bookkeeping.
    public var upstream: String
    /// The API's root path.
    public var root: String
    /// Each call's timeout, but the authorisation's.
    public var timeoutMillis: Int64
    /// How long an authorisation waits before Kosh voids it.
    public var authorizationTimeoutMillis: Int64

    public init(name: String = "alphapay_card", upstream: String = "alphapay", root: String = "/alphapay/v1/card_payments",
                timeoutMillis: Int64 = 5_000, authorizationTimeoutMillis: Int64 = 10_000) {
        self.name = name
        self.upstream = upstream
        self.root = root
        self.timeoutMillis = timeoutMillis
        self.authorizationTimeoutMillis = authorizationTimeoutMillis
    }
}

/// An aggregator that takes cards (docs/CARDS.md §4: alphapay's card API), in the
/// cardholder-data zone: it turns the vault token back into the card for the one call that
/// opens the payment at the aggregator (the CVV taken then, so gone from the vault), and never
/// again — the aggregator keys everything after by Kosh's payment id. The aggregator runs 3-D
/// Secure itself; its payment id is the authentication id Kosh keeps. An authorisation with no
/// answer is voided at once (the aggregator releases a hold when it comes), as a timeout
/// reversal is on the acquirer. Nothing it logs or throws holds a card number or CVV.
public final class AggregatorCardConnector: CardConnector {
    public let configuration: AggregatorCardConfiguration
    let vault: any CardVault
    let http: UpstreamHTTP
    let logger: Logger

    public init(vault: any CardVault, http: UpstreamHTTP, configuration: AggregatorCardConfiguration = .init(),
                logger: Logger = Logger(label: "kosh.cards.aggregator")) {
        self.vault = vault
        self.http = http
        self.configuration = configuration
        self.logger = logger
    }

    public var name: String { configuration.name }

    func path(_ reference: String, _ suffix: String = "") -> String {
        "\(configuration.root)/\(percentEncoded(reference))\(suffix)"
    }

    func call(_ method: HTTPMethod, _ path: String, _ body: JSON?, timeoutMillis: Int64? = nil) async throws -> (Int, JSON) {
        try await http.call(configuration.upstream, method, path, body: body, timeoutMillis: timeoutMillis ?? configuration.timeoutMillis,
                            idempotent: true)
    }

    // MARK: - 3-D Secure, at the aggregator

    public func beginAuthentication(_ payment: CardPaymentContext, returnURL: String) async throws -> CardAuthentication {
        let (card, cvv) = try await vault.detokenize(token: payment.vaultToken, takeCVV: true)
        var cardFields: [(String, JSON)] = [("number", .string(card.number)), ("expiry_month", .int(Int64(card.expiryMonth))),
                                            ("expiry_year", .int(Int64(card.expiryYear)))]
        if let cvv { cardFields.append(("cvv", .string(cvv))) }
        if let name = card.name { cardFields.append(("name", .string(name))) }
        let body = JSON.object([
            ("reference", .string(payment.paymentID.rawValue)), ("amount", .int(payment.amount)), ("currency", .string(payment.currency.rawValue)),
            ("card", .object(cardFields)), ("merchant_name", .string(payment.merchantName)), ("return_url", .string(returnURL)),
        ])
        do {
            let (status, json) = try await call(.POST, configuration.root, body)
            // Any refusal (even a 4xx: a network it does not take after all) leaves the payment
            // to the next route: nothing was authorised here.
            guard status == 200 || status == 201 else {
                throw UpstreamError.badResponse("the aggregator refused the card payment: HTTP \(status) \(json["error"]?["code"]?.stringValue ?? "")")
            }
            return try Self.authentication(json, reference: payment.paymentID.rawValue)
        } catch {
            // Nothing is authorised without Kosh's `authorize`, so the payment may go to another
            // route: the CVV goes back to the vault for it.
            if let cvv { try? await vault.attachCVV(token: payment.vaultToken, cvv: cvv) }
            throw error
        }
    }

    public func sendOTP(authenticationID: String) async throws -> CardAuthentication {
        let (status, json) = try await call(.POST, path(authenticationID, "/otp"), .object([]))
        if status == 429 { throw CardOTPProblem.resendLimit }
        guard status == 200 else { throw Self.refusal(status, json, what: "the OTP") }
        return try Self.authentication(json, reference: authenticationID)
    }

    public func verifyOTP(authenticationID: String, otp: String) async throws -> CardAuthentication {
        let (status, json) = try await call(.POST, path(authenticationID, "/otp/verify"), .object([("otp", .string(otp))]))
        guard status == 200 else { throw Self.refusal(status, json, what: "the OTP") }
        return try Self.authentication(json, reference: authenticationID)
    }

    public func authentication(id: String) async throws -> CardAuthentication {
        let (status, json) = try await call(.GET, path(id), nil)
        guard status == 200 else { throw Self.refusal(status, json, what: "the card payment") }
        return try Self.authentication(json, reference: id)
    }

    // MARK: - Authorisation, capture, void, refund

    public func authorize(_ payment: CardPaymentContext, authentication: CardAuthentication)
        async throws -> (answer: CardNetworkAnswer, reference: CardAuthorizationReference?) {
        let reference = payment.paymentID.rawValue
        let sent: (Int, JSON)
        do {
            sent = try await call(.POST, path(reference, "/authorize"), .object([]), timeoutMillis: configuration.authorizationTimeoutMillis)
        } catch UpstreamError.unavailable(let why) {
            throw CardNetworkUnavailable("\(configuration.upstream): \(why)")
        } catch {
            logger.warning("card authorisation at the aggregator unanswered: voiding it",
                           metadata: ["payment.id": "\(reference)", "error": "\(error)"])
            return (try await resolveTimeout(payment, reference: nil), Self.unanswered)
        }
        let (status, json) = sent
        guard status == 200, let answer = Self.answer(json) else {
            logger.error("card authorisation at the aggregator answered oddly: voiding it",
                         metadata: ["payment.id": "\(reference)", "http.status": "\(status)", "error.code": "\(json["error"]?["code"]?.stringValue ?? "")"])
            return (try await resolveTimeout(payment, reference: nil), Self.unanswered)
        }
        let authorization = CardAuthorizationReference(stan: "", transmission: "", rrn: json["rrn"]?.stringValue ?? "",
                                                       authCode: json["auth_code"]?.stringValue)
        logger.info("card authorisation at the aggregator answered", metadata: ["payment.id": "\(reference)", "aggregator.status": "\(json["status"]?.stringValue ?? "")"])
        return (answer, authorization)
    }

    /// The reference of an authorisation that went unanswered: the aggregator needs none (it
    /// keys the payment by Kosh's id), but one is kept, as for any 0100 that may have arrived.
    static let unanswered = CardAuthorizationReference(stan: "", transmission: "", rrn: "", authCode: nil)

    /// Voids it: `voided` or `failed` (nothing held) is `.reversedAfterTimeout`; anything else
    /// (no answer, still authorising) `.unknown`, asked again by the janitor.
    public func resolveTimeout(_ payment: CardPaymentContext, reference: CardAuthorizationReference?) async throws -> CardNetworkAnswer {
        do {
            let (status, json) = try await call(.POST, path(payment.paymentID.rawValue, "/void"), .object([]))
            if status == 200, let state = json["status"]?.stringValue, state == "voided" || state == "failed" { return .reversedAfterTimeout }
            if status == 404 { return .reversedAfterTimeout }  // the aggregator never had the payment
            logger.error("void after an unanswered authorisation not done", metadata: ["payment.id": "\(payment.paymentID.rawValue)",
                                                                                        "http.status": "\(status)"])
            return .unknown
        } catch {
            return .unknown
        }
    }

    public func capture(_ payment: CardPaymentContext, amount: Int64, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer {
        try await afterAuthorization(payment, "/capture", .object([("amount", .int(amount))])) { json in
            json["status"]?.stringValue == "captured"
                ? .approved(authCode: json["auth_code"]?.stringValue, rrn: json["rrn"]?.stringValue ?? reference.rrn) : nil
        }
    }

    public func reverse(_ payment: CardPaymentContext, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer {
        try await afterAuthorization(payment, "/void", .object([])) { json in
            switch json["status"]?.stringValue {
            case "voided", "failed", "authentication_required", "authenticated": .approved(authCode: nil, rrn: json["rrn"]?.stringValue ?? reference.rrn)
            default: nil
            }
        }
    }

    public func refund(_ payment: CardPaymentContext, refundID: ID<Refund>, amount: Int64, reference: CardAuthorizationReference)
        async throws -> CardNetworkAnswer {
        try await afterAuthorization(payment, "/refunds", .object([("refund_reference", .string(refundID.rawValue)), ("amount", .int(amount))])) { json in
            json["status"]?.stringValue == "processed" && json["refund_reference"]?.stringValue == refundID.rawValue
                ? .approved(authCode: nil, rrn: json["id"]?.stringValue ?? reference.rrn) : nil
        }
    }

    /// A capture, void or refund: `done` reads a 200; a 4xx the aggregator explains is a decline
    /// (`12`, invalid transaction); no answer is `.unknown` (every one of them is idempotent, so the
    /// janitor sends it again); not sent at all is `CardNetworkUnavailable`.
    func afterAuthorization(_ payment: CardPaymentContext, _ suffix: String, _ body: JSON, done: (JSON) -> CardNetworkAnswer?)
        async throws -> CardNetworkAnswer {
        let (status, json): (Int, JSON)
        do {
            (status, json) = try await call(.POST, path(payment.paymentID.rawValue, suffix), body)
        } catch UpstreamError.unavailable(let why) {
            throw CardNetworkUnavailable("\(configuration.upstream): \(why)")
        } catch {
            logger.warning("aggregator card call unanswered", metadata: ["payment.id": "\(payment.paymentID.rawValue)", "call": "\(suffix)"])
            return .unknown
        }
        if status == 200, let answer = done(json) { return answer }
        if (400..<500).contains(status), let code = json["error"]?["code"]?.stringValue {
            logger.error("aggregator refused a card call", metadata: ["payment.id": "\(payment.paymentID.rawValue)", "call": "\(suffix)",
                                                                      "http.status": "\(status)", "error.code": "\(code)"])
            return .declined(responseCode: "12", CardResponseCodes.failure(responseCode: "12"))
        }
        return .unknown
    }

    // MARK: - The wire

    /// The payment's `authentication` as Kosh's; a payment that already failed or got past
    /// authentication is read from its `status`.
    static func authentication(_ json: JSON, reference: String) throws -> CardAuthentication {
        guard json["reference"]?.stringValue == reference else {
            throw UpstreamError.badResponse("the aggregator answered for another payment")
        }
        let auth = json["authentication"]
        let challengeURL = auth?["challenge_url"]?.stringValue
        let state: CardAuthenticationState
        switch (json["status"]?.stringValue, auth?["status"]?.stringValue) {
        case ("failed", _), (_, "failed"):
            let reason = auth?["reason"]?.stringValue ?? (json["error_code"]?.stringValue == "AUTHENTICATION_FAILED" ? "authentication_failed" : nil)
            state = .failed(reason: reason ?? "authentication_failed")
        case ("authentication_required", _):
            state = .challengeRequired(attemptsLeft: Int(auth?["attempts_left"]?.intValue ?? 0), resendsLeft: Int(auth?["resends_left"]?.intValue ?? 0))
        case ("authenticated", _), ("authorizing", _), ("authorized", _), ("captured", _), ("voided", _):
            // The aggregator holds the authentication value; Kosh's 0100 fields do not apply.
            state = .authenticated(eci: "", cavv: "")
        case (let other, _):
            throw UpstreamError.badResponse("the aggregator answered status \(other ?? "none")")
        }
        return CardAuthentication(id: reference, challengeURL: challengeURL, state: state)
    }

    /// An authorisation's outcome; nil for a payment still being authorised (or anything else).
    static func answer(_ json: JSON) -> CardNetworkAnswer? {
        switch json["status"]?.stringValue {
        case "authorized", "captured":
            return .approved(authCode: json["auth_code"]?.stringValue, rrn: json["rrn"]?.stringValue ?? "")
        case "failed":
            let code = responseCode(errorCode: json["error_code"]?.stringValue)
            return .declined(responseCode: code, CardResponseCodes.failure(responseCode: code))
        default:
            return nil
        }
    }

    /// docs/CARDS.md §4: the aggregator's `error_code` as the issuer's ISO 8583 response code.
    static func responseCode(errorCode: String?) -> String {
        switch errorCode {
        case "CARD_DECLINED": "05"
        case "INVALID_CARD": "14"
        case "INSUFFICIENT_FUNDS": "51"
        case "CARD_EXPIRED": "54"
        case "CARD_NOT_ENABLED": "57"
        case "LIMIT_EXCEEDED": "61"
        case "AUTHENTICATION_FAILED": "63"
        case "ISSUER_TIMEOUT": "91"
        default: "96"
        }
    }

    /// A refusal as an error: a payment the aggregator does not know is 404 as for the ACS; a
    /// 4xx is a bad request Kosh made; anything else is no answer.
    static func refusal(_ status: Int, _ json: JSON, what: String) -> any Error {
        let code = json["error"]?["code"]?.stringValue ?? ""
        switch status {
        case 404: return KoshError.notFound("The 3-D Secure authentication does not exist", field: "authentication_id")
        case 400..<500: return UpstreamError.badResponse("the aggregator refused \(what): HTTP \(status) \(code)")
        default: return UpstreamError.noAnswer("HTTP \(status) \(code) from the aggregator")
        }
    }
}
