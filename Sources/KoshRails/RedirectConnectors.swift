import KoshCore
import KoshJSON

/// The sandbox's banks (netbanking) and wallet providers (docs/REDIRECT_METHODS.md): Kosh
/// opens the payment there and gets the page the customer's browser goes to; the outcome comes
/// from the provider's status API and its signed callback, never from the browser's return.
public struct RedirectConnector: PaymentRail {
    public enum Kind: Sendable {
        case netbanking, wallet
    }

    public let name: String
    let kind: Kind
    let http: UpstreamHTTP

    public static func netbanking(http: UpstreamHTTP) -> RedirectConnector { RedirectConnector(name: "netbanking", kind: .netbanking, http: http) }
    public static func wallets(http: UpstreamHTTP) -> RedirectConnector { RedirectConnector(name: "wallets", kind: .wallet, http: http) }

    public func validate(method: PaymentMethod, vpa: String?) -> KoshError? { nil }

    /// The create and refund paths, and a payment's status path.
    func paths(_ request: RailPaymentRequest?, wallet: String?) throws -> (payments: String, refunds: String) {
        switch kind {
        case .netbanking: return ("/netbanking/v1/payments", "/netbanking/v1/refunds")
        case .wallet:
            guard let wallet, RedirectProviders.wallet(wallet) != nil else { throw UpstreamError.badResponse("a wallet payment without a known wallet") }
            return ("/wallets/v1/\(wallet)/payments", "/wallets/v1/\(wallet)/refunds")
        }
    }

    /// The provider's failure words as Razorpay's error fields.
    static func failure(code: String?, description: String?) -> PaymentFailure {
        switch code {
        case "PAYMENT_DECLINED":
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment was cancelled by the customer on the bank's or wallet's page.",
                           source: "customer", step: "payment_authorization", reason: "payment_cancelled")
        case "INSUFFICIENT_FUNDS":
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment failed due to insufficient balance in the customer's account.",
                           source: "customer", step: "payment_authorization", reason: "insufficient_funds")
        case "TIMED_OUT":
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment was unsuccessful as it was not completed in time.",
                           source: "customer", step: "payment_authentication", reason: "payment_timed_out")
        default:
            PaymentFailure(code: "GATEWAY_ERROR", description: "Payment failed due to a technical error at the bank or wallet.",
                           source: "bank", step: "payment_authorization", reason: "gateway_technical_error")
        }
    }

    public func initiate(_ request: RailPaymentRequest) async throws -> RailInitiation {
        let path = try paths(request, wallet: request.wallet).payments
        guard let returnURL = request.returnURL else { throw UpstreamError.badResponse("a redirect payment without a return URL") }
        var fields: [(String, JSON?)] = [
            ("reference", .string(request.paymentID.rawValue)), ("amount", .int(request.amount)), ("currency", .string(request.currency.rawValue)),
            ("merchant_name", .string(request.payeeName)), ("return_url", .string(returnURL)), ("callback_url", .string(http.callbackURL(for: name))),
        ]
        if kind == .netbanking { fields.insert(("bank", request.bank.map(JSON.string)), at: 1) }
        let status: Int, json: JSON
        do {
            (status, json) = try await http.call(name, .POST, path, body: JSON.obj(fields), timeoutMillis: http.configuration.initiateTimeoutMillis,
                                                 idempotent: true, breaker: true)
        } catch UpstreamError.unavailable(let why) {
            return .unavailable(reason: why)
        }
        let code = json["error"]?["code"]?.stringValue
        switch (status, code) {
        case (200...299, _):
            guard let id = json["id"]?.stringValue, let link = json["redirect_url"]?.stringValue,
                  link.hasPrefix("http://") || link.hasPrefix("https://") else {
                throw UpstreamError.badResponse("\(name) answered without an id or a page")
            }
            return .accepted(reference: id, link: link)
        case (400, "AMOUNT_LIMIT_EXCEEDED"), (400, "BANK_NOT_SUPPORTED"), (400, "WALLET_NOT_SUPPORTED"):
            return .rejected(PaymentFailure(code: "BAD_REQUEST_ERROR", description: json["error"]?["description"]?.stringValue ?? "Refused by the bank or wallet",
                                            source: "business", step: "payment_initiation", reason: code == "AMOUNT_LIMIT_EXCEEDED" ? "amount_exceeds_maximum_amount_allowed" : "payment_method_not_supported"))
        case (400, _), (401, _), (409, _), (413, _):
            return .unavailable(reason: "\(name) refused the request: HTTP \(status) \(code ?? "")")
        default:
            throw UpstreamError.noAnswer("HTTP \(status) \(code ?? "") from \(name)")
        }
    }

    public func status(_ request: RailPaymentRequest) async throws -> RailPaymentStatus {
        let path = try paths(request, wallet: request.wallet).payments + "/\(percentEncoded(request.paymentID.rawValue))"
        let (status, json) = try await http.call(name, .GET, path, timeoutMillis: http.configuration.statusTimeoutMillis, idempotent: true)
        if status == 404 { return .pending }
        guard status == 200 else { throw UpstreamError.noAnswer("HTTP \(status) from \(name)") }
        guard json["amount"]?.intValue == request.amount else { throw UpstreamError.badResponse("\(name) reports another amount") }
        return Self.paymentStatus(json)
    }

    static func paymentStatus(_ json: JSON) -> RailPaymentStatus {
        switch json["status"]?.stringValue {
        case "success": .authorized(reference: json["bank_reference"]?.stringValue ?? json["wallet_reference"]?.stringValue ?? json["id"]?.stringValue ?? "")
        case "failure": .failed(failure(code: json["error_code"]?.stringValue, description: json["error_description"]?.stringValue))
        default: .pending
        }
    }

    public func refund(_ request: RailRefundRequest) async throws -> RailRefundStatus {
        let body = JSON.obj([("refund_reference", .string(request.refundID.rawValue)), ("reference", .string(request.paymentID.rawValue)),
                             ("amount", .int(request.amount))])
        let (status, json) = try await http.call(name, .POST, try paths(nil, wallet: request.wallet).refunds, body: body,
                                                 timeoutMillis: http.configuration.refundTimeoutMillis, idempotent: true)
        let code = json["error"]?["code"]?.stringValue
        switch (status, code) {
        case (200...299, _) where json["status"]?.stringValue == "processed": return .processed(reference: json["id"]?.stringValue ?? request.refundID.rawValue)
        case (200...299, _): return .pending
        case (400, "REFUND_EXCEEDS"), (409, "NOT_PAID"): return .failed(reason: code!)
        default: throw UpstreamError.noAnswer("refund: HTTP \(status) \(code ?? "") from \(name)")
        }
    }

    public func lookup(vpa: String) async throws -> VPALookup {
        throw KoshError.badRequest("\(name) does not look up VPAs")
    }

    public func parseCallback(method: String, path: String, headers: [String: String], body: [UInt8]) throws -> RailCallback {
        let json = try CallbackReader(signer: http.signer, clock: http.clock).verified(method: method, path: path, headers: headers, body: body)
        guard let id = json["reference"]?.stringValue else { throw KoshError.badRequest("The callback has no reference", field: "reference") }
        return RailCallback(paymentID: ID(id), status: Self.paymentStatus(json), amount: json["amount"]?.intValue)
    }
}
