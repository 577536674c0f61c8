import KoshCore
import KoshJSON
import NIOCore
import NIOHTTP1
#if canImport(Glibc)
import Glibc
#endif

/// NPCI response codes, and what each means in Razorpay's error vocabulary.
public enum UPIResponseCode {
    public static func failure(code: String, message: String?) -> PaymentFailure {
        switch code {
        case "ZA":
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment was unsuccessful as the payer declined the collect request on their UPI app.",
                           source: "customer", step: "payment_authorization", reason: "payment_declined")
        case "U69":
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment was unsuccessful as the payer did not approve the request in time.",
                           source: "customer", step: "payment_authentication", reason: "payment_timed_out")
        case "Z9":
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment failed because of insufficient balance in the payer's bank account.",
                           source: "customer", step: "payment_authorization", reason: "insufficient_funds")
        case "Z8":
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment failed because the amount exceeds the UPI per-transaction limit.",
                           source: "customer", step: "payment_authorization", reason: "transaction_limit_exceeded")
        case "Z7":
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment failed because the payer has reached their daily UPI limit.",
                           source: "customer", step: "payment_authorization", reason: "daily_limit_exceeded")
        case "ZH":
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Invalid VPA. Please enter a valid Virtual Payment Address",
                           source: "customer", step: "payment_initiation", reason: "invalid_vpa")
        case "U30":
            PaymentFailure(code: "GATEWAY_ERROR", description: "Payment failed because the payer's bank could not debit the account.",
                           source: "bank", step: "payment_authorization", reason: "bank_technical_error")
        default:
            PaymentFailure(code: "GATEWAY_ERROR", description: "Payment failed at the bank (\(code)\(message.map { ": " + $0 } ?? "")).",
                           source: "bank", step: "payment_authorization", reason: "payment_failed")
        }
    }
}

/// A status that names another amount than the payment's is not believed: the payment stays
/// pending (and eventually times out) rather than being authorised for the wrong amount.
func checkAmount(_ amount: Int64?, _ request: RailPaymentRequest) throws {
    if let amount, amount != request.amount {
        throw UpstreamError.badResponse("the rail reports amount \(amount) for payment \(request.paymentID.rawValue) of \(request.amount)")
    }
}

/// Reads and checks a signed callback body; shared by the connectors.
struct CallbackReader {
    let signer: RailSigner
    let clock: any KoshClock

    func verified(method: String, path: String, headers: [String: String], body: [UInt8]) throws -> JSON {
        let header = { (name: String) in headers.first(where: { $0.key.lowercased() == name.lowercased() })?.value }
        guard signer.verify(signature: header(RailSigner.signatureHeader), timestamp: header(RailSigner.timestampHeader),
                            method: method, path: path, body: body, now: clock.nowMillis()) else {
            throw KoshError(.unauthorized, "The callback signature is missing or wrong", reason: "invalid_signature")
        }
        do { return try JSON.parse(body) } catch {
            throw KoshError.badRequest("The callback body is not JSON: \(error)")
        }
    }
}

func percentEncoded(_ s: String) -> String {
    var out = ""
    for byte in s.utf8 {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            out.append(Character(UnicodeScalar(byte)))
        default:
            out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
        }
    }
    return out
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

// MARK: - The NPCI-style UPI switch

/// Connector to the UPI switch directly (collect and intent). Its collect, intent and refund
/// calls are idempotent by our ids, so they are retried when they fail fast.
public struct UPISwitchConnector: PaymentRail {
    public let name = "upi_switch"
    let http: UpstreamHTTP
    /// Kosh's own VPA, credited by collect and intent payments.
    public let payeeVPA: String
    /// The callback URL the switch last accepted for `qrPayeeVPA`'s handle (SwitchCredits.swift).
    let payeeRegistration = PayeeRegistration()

    public init(http: UpstreamHTTP, payeeVPA: String = "kosh.gateway@oksbi") {
        self.http = http
        self.payeeVPA = payeeVPA
    }

    public func validate(method: PaymentMethod, vpa: String?) -> KoshError? { nil }

    /// The payee name shown in the payer's app: at most 50 characters and 99 bytes.
    static func shortName(_ name: String) -> String {
        var out = ""
        for character in name.prefix(50) {
            guard out.utf8.count + character.utf8.count <= 99 else { break }
            out.append(character)
        }
        return out.isEmpty ? "Kosh merchant" : out
    }

    public func initiate(_ request: RailPaymentRequest) async throws -> RailInitiation {
        let intent = request.flow == .intent
        let body = JSON.obj([
            ("txn_id", .string(request.paymentID.rawValue)),
            ("payer_vpa", intent ? nil : request.vpa.map(JSON.string)),
            ("payee_vpa", .string(payeeVPA)),
            ("payee_name", intent ? .string(Self.shortName(request.payeeName)) : nil),
            ("amount", .int(request.amount)),
            ("currency", .string(request.currency.rawValue)),
            ("note", .string(String((request.description ?? "Payment \(request.paymentID.rawValue)").prefix(50)))),
            ("callback_url", .string(http.callbackURL(for: name))),
        ])
        let status: Int, json: JSON
        do {
            (status, json) = try await http.call(name, .POST, intent ? "/upi/v1/intent" : "/upi/v1/collect", body: body,
                                                 timeoutMillis: http.configuration.initiateTimeoutMillis, idempotent: true, breaker: true)
        } catch UpstreamError.unavailable(let why) {
            return .unavailable(reason: why)
        }
        let code = json["error"]?["code"]?.stringValue
        switch (status, code) {
        case (200...299, _):
            guard let rrn = json["rrn"]?.stringValue else { throw UpstreamError.badResponse("collect answer without rrn") }
            return .accepted(reference: rrn, link: json["link"]?.stringValue)
        case (400, "ZH"):
            return .rejected(UPIResponseCode.failure(code: "ZH", message: json["error"]?["message"]?.stringValue))
        case (400, _), (401, _), (413, _):
            // Refused before anything was created: another route may take it.
            return .unavailable(reason: "the UPI switch refused the request: HTTP \(status) \(code ?? "")")
        default:
            // 409 (it holds a transaction under our id), other answers: it may exist there.
            throw UpstreamError.noAnswer("HTTP \(status) \(code ?? "") from the UPI switch")
        }
    }

    public func status(_ request: RailPaymentRequest) async throws -> RailPaymentStatus {
        let (status, json) = try await http.call(name, .GET, "/upi/v1/transactions/\(percentEncoded(request.paymentID.rawValue))",
                                                 timeoutMillis: http.configuration.statusTimeoutMillis, idempotent: true)
        if status == 404 { return .pending }  // not (yet) known there: unknown is not failed
        guard status == 200 else { throw UpstreamError.noAnswer("HTTP \(status) from the UPI switch") }
        try checkAmount(json["amount"]?.intValue, request)
        return Self.paymentStatus(json)
    }

    static func paymentStatus(_ json: JSON) -> RailPaymentStatus {
        switch json["status"]?.stringValue {
        case "SUCCESS": .authorized(reference: json["rrn"]?.stringValue ?? "", payerVPA: json["payer_vpa"]?.stringValue)
        case "FAILURE", "EXPIRED":
            .failed(UPIResponseCode.failure(code: json["response_code"]?.stringValue ?? "XX", message: json["response_message"]?.stringValue))
        default: .pending
        }
    }

    public func refund(_ request: RailRefundRequest) async throws -> RailRefundStatus {
        // A payer-initiated payment (a QR code's) is the switch's transaction, under its own id.
        let txnID = request.railTransactionID ?? request.paymentID.rawValue
        let body = JSON.obj([("refund_id", .string(request.refundID.rawValue)), ("txn_id", .string(txnID)), ("amount", .int(request.amount))])
        let (status, json) = try await http.call(name, .POST, "/upi/v1/refunds", body: body, timeoutMillis: http.configuration.refundTimeoutMillis,
                                                 idempotent: true)
        let code = json["error"]?["code"]?.stringValue
        switch (status, code) {
        case (200...299, _) where json["status"]?.stringValue == "SUCCESS":
            return .processed(reference: json["rrn"]?.stringValue ?? request.refundID.rawValue)
        case (200...299, _): return .pending
        case (400, "REFUND_EXCEEDS"), (400, "TXN_NOT_SUCCESS"): return .failed(reason: code!)
        default: throw UpstreamError.noAnswer("refund: HTTP \(status) \(code ?? "") from the UPI switch")
        }
    }

    public func lookup(vpa: String) async throws -> VPALookup {
        let (status, json) = try await http.call(name, .POST, "/upi/v1/vpa/validate", body: .object([("vpa", .string(vpa))]),
                                                 timeoutMillis: http.configuration.statusTimeoutMillis, idempotent: true)
        guard status == 200 else { throw UpstreamError.noAnswer("HTTP \(status) from the UPI switch") }
        let valid = json["valid"] == .bool(true)
        return VPALookup(vpa: vpa, valid: valid, customerName: valid ? json["name"]?.stringValue : nil)
    }

    public func parseCallback(method: String, path: String, headers: [String: String], body: [UInt8]) throws -> RailCallback {
        let json = try CallbackReader(signer: http.signer, clock: http.clock).verified(method: method, path: path, headers: headers, body: body)
        guard let id = json["txn_id"]?.stringValue else { throw KoshError.badRequest("The callback has no txn_id", field: "txn_id") }
        return RailCallback(paymentID: ID(id), status: Self.paymentStatus(json), amount: json["amount"]?.intValue)
    }
}

// MARK: - alphapay (Razorpay-style aggregator)

public struct AlphaPayConnector: PaymentRail {
    public let name = "alphapay"
    let http: UpstreamHTTP

    public init(http: UpstreamHTTP) { self.http = http }

    public func validate(method: PaymentMethod, vpa: String?) -> KoshError? { nil }

    static func failure(code: String?, description: String?) -> PaymentFailure {
        let npci: String = switch code {
        case "PAYER_DECLINED": "ZA"
        case "COLLECT_EXPIRED": "U69"
        case "INSUFFICIENT_FUNDS": "Z9"
        case "LIMIT_EXCEEDED": "Z8"
        case "INVALID_VPA": "ZH"
        case "BANK_ERROR": "U30"
        default: code ?? "XX"
        }
        return UPIResponseCode.failure(code: npci, message: description)
    }

    public func initiate(_ request: RailPaymentRequest) async throws -> RailInitiation {
        let body = JSON.obj([
            ("reference", .string(request.paymentID.rawValue)), ("amount", .int(request.amount)), ("currency", .string(request.currency.rawValue)),
            ("method", .string("upi")), ("vpa", request.vpa.map(JSON.string)), ("notify_url", .string(http.callbackURL(for: name))),
        ])
        let status: Int, json: JSON
        do {
            (status, json) = try await http.call(name, .POST, "/alphapay/v1/payments", body: body, timeoutMillis: http.configuration.initiateTimeoutMillis,
                                                 idempotent: true, breaker: true)
        } catch UpstreamError.unavailable(let why) {
            return .unavailable(reason: why)
        }
        let code = json["error"]?["code"]?.stringValue
        switch (status, code) {
        case (200...299, _):
            guard let id = json["id"]?.stringValue else { throw UpstreamError.badResponse("alphapay answer without id") }
            return .accepted(reference: id, link: nil)
        case (400, "INVALID_VPA"):
            return .rejected(Self.failure(code: code, description: json["error"]?["description"]?.stringValue))
        case (400, _), (401, _), (413, _):
            return .unavailable(reason: "alphapay refused the request: HTTP \(status) \(code ?? "")")
        default:
            throw UpstreamError.noAnswer("HTTP \(status) \(code ?? "") from alphapay")
        }
    }

    public func status(_ request: RailPaymentRequest) async throws -> RailPaymentStatus {
        let (status, json) = try await http.call(name, .GET, "/alphapay/v1/payments/\(percentEncoded(request.paymentID.rawValue))",
                                                 timeoutMillis: http.configuration.statusTimeoutMillis, idempotent: true)
        if status == 404 { return .pending }
        guard status == 200 else { throw UpstreamError.noAnswer("HTTP \(status) from alphapay") }
        try checkAmount(json["amount"]?.intValue, request)
        return Self.paymentStatus(json)
    }

    static func paymentStatus(_ json: JSON) -> RailPaymentStatus {
        switch json["status"]?.stringValue {
        case "authorized": .authorized(reference: json["id"]?.stringValue ?? "")
        case "failed": .failed(failure(code: json["error_code"]?.stringValue, description: json["error_description"]?.stringValue))
        default: .pending
        }
    }

    public func refund(_ request: RailRefundRequest) async throws -> RailRefundStatus {
        let body = JSON.obj([("reference", .string(request.refundID.rawValue)), ("payment_reference", .string(request.paymentID.rawValue)),
                             ("amount", .int(request.amount))])
        let (status, json) = try await http.call(name, .POST, "/alphapay/v1/refunds", body: body, timeoutMillis: http.configuration.refundTimeoutMillis,
                                                 idempotent: true)
        let code = json["error"]?["code"]?.stringValue
        switch (status, code) {
        case (200...299, _) where json["status"]?.stringValue == "processed": return .processed(reference: json["id"]?.stringValue ?? request.refundID.rawValue)
        case (200...299, _): return .pending
        case (400, "REFUND_EXCEEDS"), (400, "PAYMENT_NOT_AUTHORIZED"): return .failed(reason: code!)
        default: throw UpstreamError.noAnswer("refund: HTTP \(status) \(code ?? "") from alphapay")
        }
    }

    public func lookup(vpa: String) async throws -> VPALookup {
        throw KoshError.badRequest("alphapay does not look up VPAs")
    }

    public func parseCallback(method: String, path: String, headers: [String: String], body: [UInt8]) throws -> RailCallback {
        let json = try CallbackReader(signer: http.signer, clock: http.clock).verified(method: method, path: path, headers: headers, body: body)
        let payload = json["payload"] ?? .null
        guard let id = payload["reference"]?.stringValue else { throw KoshError.badRequest("The callback has no reference", field: "reference") }
        return RailCallback(paymentID: ID(id), status: Self.paymentStatus(payload), amount: payload["amount"]?.intValue)
    }
}

// MARK: - betapay (PayU-style aggregator)

/// betapay's create is not idempotent (a repeat answers E409), so it is never retried: a
/// create without an answer is resolved by status checks instead.
public struct BetaPayConnector: PaymentRail {
    public let name = "betapay"
    let http: UpstreamHTTP

    public init(http: UpstreamHTTP) { self.http = http }

    public func validate(method: PaymentMethod, vpa: String?) -> KoshError? { nil }

    /// Paise as betapay's rupee string: 50000 → "500.00".
    static func rupees(_ paise: Int64) -> String {
        "\(paise / 100)." + String(paise % 100).leftPadded(to: 2)
    }

    /// betapay's rupee string as paise; nil unless it is digits with at most two decimals.
    static func paise(_ rupees: String) -> Int64? {
        let parts = rupees.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let whole = Int64(parts[0]), whole >= 0, parts[0].allSatisfy(\.isASCII) else { return nil }
        var fraction: Int64 = 0
        if parts.count == 2 {
            guard (1...2).contains(parts[1].count), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let f = Int64(parts[1]) else { return nil }
            fraction = parts[1].count == 1 ? f * 10 : f
        }
        let (value, overflow) = whole.multipliedReportingOverflow(by: 100)
        return overflow ? nil : value + fraction
    }

    static func failure(code: String?, message: String?) -> PaymentFailure {
        let npci: String = switch code {
        case "E205": "ZA"
        case "E206": "Z9"
        case "E207": "Z8"
        case "E208": "U69"
        case "E101": "ZH"
        case "E500": "U30"
        default: code ?? "XX"
        }
        return UPIResponseCode.failure(code: npci, message: message)
    }

    public func initiate(_ request: RailPaymentRequest) async throws -> RailInitiation {
        let body = JSON.obj([
            ("merchantTxnId", .string(request.paymentID.rawValue)), ("txnAmount", .string(Self.rupees(request.amount))),
            ("payerVpa", request.vpa.map(JSON.string)), ("callbackUrl", .string(http.callbackURL(for: name))),
        ])
        let status: Int, json: JSON
        do {
            (status, json) = try await http.call(name, .POST, "/betapay/api/v2/transactions", body: body,
                                                 timeoutMillis: http.configuration.initiateTimeoutMillis, idempotent: false, breaker: true)
        } catch UpstreamError.unavailable(let why) {
            return .unavailable(reason: why)
        }
        guard status == 200 else { throw UpstreamError.noAnswer("HTTP \(status) from betapay") }
        switch json["resultCode"]?.stringValue {
        case "0000":
            guard let id = json["betaTxnId"]?.stringValue else { throw UpstreamError.badResponse("betapay accepted without betaTxnId") }
            return .accepted(reference: id, link: nil)
        case "E409":
            // A transaction under our id exists there already: it is resolved by status checks.
            return .accepted(reference: request.paymentID.rawValue, link: nil)
        case "E101":
            return .rejected(Self.failure(code: "E101", message: json["resultMsg"]?.stringValue))
        case "E100", "E102", "E401", "E413":
            return .unavailable(reason: "betapay refused the request: \(json["resultCode"]?.stringValue ?? "")")
        case let code:
            // Anything else may or may not have created a transaction: unknown, never failover.
            throw UpstreamError.noAnswer("betapay answered resultCode \(code ?? "none")")
        }
    }

    public func status(_ request: RailPaymentRequest) async throws -> RailPaymentStatus {
        let (status, json) = try await http.call(name, .GET, "/betapay/api/v2/transactions/\(percentEncoded(request.paymentID.rawValue))",
                                                 timeoutMillis: http.configuration.statusTimeoutMillis, idempotent: true)
        guard status == 200 else { throw UpstreamError.noAnswer("HTTP \(status) from betapay") }
        try checkAmount(json["txnAmount"]?.stringValue.flatMap(Self.paise), request)
        return Self.paymentStatus(json)
    }

    static func paymentStatus(_ json: JSON) -> RailPaymentStatus {
        switch json["txnStatus"]?.stringValue {
        case "SUCCESS": .authorized(reference: json["betaTxnId"]?.stringValue ?? "")
        case "FAILURE": .failed(failure(code: json["resultCode"]?.stringValue, message: json["resultMsg"]?.stringValue))
        default: .pending  // INITIATED, NOT_FOUND: unknown is not failed
        }
    }

    public func refund(_ request: RailRefundRequest) async throws -> RailRefundStatus {
        let body = JSON.obj([("merchantRefundId", .string(request.refundID.rawValue)), ("merchantTxnId", .string(request.paymentID.rawValue)),
                             ("refundAmount", .string(Self.rupees(request.amount)))])
        let (status, json) = try await http.call(name, .POST, "/betapay/api/v2/refunds", body: body, timeoutMillis: http.configuration.refundTimeoutMillis,
                                                 idempotent: true)
        guard status == 200 else { throw UpstreamError.noAnswer("HTTP \(status) from betapay") }
        switch (json["resultCode"]?.stringValue, json["refundStatus"]?.stringValue) {
        case ("0000", "SUCCESS"): return .processed(reference: json["betaRefundId"]?.stringValue ?? request.refundID.rawValue)
        case ("0000", _): return .pending
        case ("E301", _), ("E302", _): return .failed(reason: json["resultCode"]!.stringValue!)
        case (let code, _): throw UpstreamError.noAnswer("refund: betapay answered resultCode \(code ?? "none")")
        }
    }

    public func lookup(vpa: String) async throws -> VPALookup {
        throw KoshError.badRequest("betapay does not look up VPAs")
    }

    public func parseCallback(method: String, path: String, headers: [String: String], body: [UInt8]) throws -> RailCallback {
        let json = try CallbackReader(signer: http.signer, clock: http.clock).verified(method: method, path: path, headers: headers, body: body)
        guard let id = json["merchantTxnId"]?.stringValue else { throw KoshError.badRequest("The callback has no merchantTxnId") }
        return RailCallback(paymentID: ID(id), status: Self.paymentStatus(json), amount: json["txnAmount"]?.stringValue.flatMap(Self.paise))
    }
}
