import KoshCore
import KoshJSON
import NIOHTTP1

/// The sandbox's 3-D Secure ACS (docs/CARDS.md §3): signed JSON over HTTP through the rails'
/// `UpstreamHTTP`. Only `begin` sees the card (number and expiry, never the CVV), taken from
/// the vault for that one call. An ACS that cannot be reached throws `UpstreamError.unavailable`
/// (nothing happened there: try again), one that did not answer `UpstreamError.noAnswer`.
struct ACSClient: Sendable {
    let http: UpstreamHTTP
    let vault: any CardVault
    /// The connector's name, for the upstream's bookkeeping.
    let connector: String
    let timeoutMillis: Int64

    static let root = "/acs/v1/authentications"

    /// POST /acs/v1/authentications. Repeating it for the same payment answers the same authentication.
    func begin(_ payment: CardPaymentContext, returnURL: String) async throws -> CardAuthentication {
        let (card, _) = try await vault.detokenize(token: payment.vaultToken, takeCVV: false)
        let body = JSON.obj([
            ("payment_id", .string(payment.paymentID.rawValue)),
            ("pan", .string(card.number)),
            ("expiry", .string(CardMessageBuilder.expiry(card))),
            ("amount", .int(payment.amount)),
            ("currency", .string(payment.currency.rawValue)),
            ("merchant_name", .string(payment.merchantName)),
            ("return_url", .string(returnURL)),
        ])
        let (status, json) = try await http.call(connector, .POST, Self.root, body: body, timeoutMillis: timeoutMillis, idempotent: true)
        return try Self.authentication(status: status, json: json, id: nil)
    }

    /// POST …/{id}/otp: sends the OTP (first call) or resends it; at the limit, `CardOTPProblem.resendLimit`.
    func sendOTP(id: String) async throws -> CardAuthentication {
        // Retried only when it failed fast (the ACS surely did not act), so no resend is spent twice.
        let (status, json) = try await http.call(connector, .POST, "\(Self.root)/\(percentEncoded(id))/otp", body: .object([]),
                                                 timeoutMillis: timeoutMillis, idempotent: true)
        if status == 429 && json["error"]?["code"]?.stringValue == "resend_limit" { throw CardOTPProblem.resendLimit }
        return try Self.authentication(status: status, json: json, id: id)
    }

    /// POST …/{id}/verify with the OTP the cardholder typed.
    func verify(id: String, otp: String) async throws -> CardAuthentication {
        let (status, json) = try await http.call(connector, .POST, "\(Self.root)/\(percentEncoded(id))/verify",
                                                 body: .object([("otp", .string(otp))]), timeoutMillis: timeoutMillis, idempotent: true)
        return try Self.authentication(status: status, json: json, id: id)
    }

    /// GET …/{id}: the ACS's own word on the authentication.
    func authentication(id: String) async throws -> CardAuthentication {
        let (status, json) = try await http.call(connector, .GET, "\(Self.root)/\(percentEncoded(id))", timeoutMillis: timeoutMillis,
                                                 idempotent: true)
        return try Self.authentication(status: status, json: json, id: id)
    }

    /// An ACS answer as a `CardAuthentication`. Errors name the HTTP status and the ACS's error
    /// code only (the request held the card number; the answer never does).
    static func authentication(status: Int, json: JSON, id: String?) throws -> CardAuthentication {
        let code = json["error"]?["code"]?.stringValue
        switch status {
        case 200...299: break
        case 404: throw KoshError.notFound("The 3-D Secure authentication does not exist", field: "authentication_id")
        case 400..<500: throw UpstreamError.badResponse("the ACS refused the request: HTTP \(status) \(code ?? "")")
        default: throw UpstreamError.noAnswer("HTTP \(status) \(code ?? "") from the ACS")
        }
        guard let id = json["id"]?.stringValue ?? id else { throw UpstreamError.badResponse("an ACS answer without an id") }
        let state: CardAuthenticationState
        switch json["status"]?.stringValue {
        case "challenge_required":
            state = .challengeRequired(attemptsLeft: Int(json["attempts_left"]?.intValue ?? 0),
                                       resendsLeft: Int(json["resends_left"]?.intValue ?? 0))
        case "authenticated":
            guard let eci = json["eci"]?.stringValue, let cavv = json["cavv"]?.stringValue else {
                throw UpstreamError.badResponse("an authenticated ACS answer without eci or cavv")
            }
            state = .authenticated(eci: eci, cavv: cavv)
        case "failed": state = .failed(reason: json["reason"]?.stringValue ?? "authentication_failed")
        case "cancelled": state = .failed(reason: "payment_cancelled")
        case "expired": state = .failed(reason: "expired")
        case let other: throw UpstreamError.badResponse("the ACS answered status \(other ?? "none")")
        }
        return CardAuthentication(id: id, challengeURL: json["challenge_url"]?.stringValue, state: state)
    }
}
