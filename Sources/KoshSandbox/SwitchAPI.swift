import Foundation
import Hummingbird

/// The NPCI-style UPI switch under `/upi/v1` (docs/SANDBOX.md), and the payer-app endpoint.
struct SwitchAPI: Sendable {
    let runtime: SandboxRuntime

    func register(on router: Router<SandboxRequestContext>) {
        let upi = router.group("upi/v1").add(middleware: FaultMiddleware(rail: .upiSwitch, runtime: runtime))
        upi.post("vpa/validate") { request, context in try await validateVPA(request, context) }
        upi.post("collect") { request, context in try await collect(request, context) }
        upi.get("transactions/:id") { _, context in
            let id = try context.parameters.require("id")
            guard let transaction = runtime.withWorld({ $0.transaction(TxnKey(rail: .upiSwitch, id: id)) }) else {
                throw SandboxHTTPError.notFound("No transaction \(id)")
            }
            return jsonResponse(RailViews.switchStatus(transaction))
        }
        upi.post("intent") { request, context in try await intent(request, context) }
        upi.post("refunds") { request, context in try await refund(request, context) }
        upi.put("payees/:handle") { request, context in try await registerPayee(request, context) }
        upi.get("payees/:handle") { _, context in try registeredPayee(context) }
        upi.get("payees/:handle/transactions") { request, context in try payeeTransactions(request, context) }
        // The payer's app is not the switch's API: no faults, not counted in the switch's stats.
        router.group("upi/v1/app").post("pay") { request, context in try await appPay(request, context) }
    }

    static let invalidVPA = SandboxHTTPError(status: .badRequest, code: "ZH", message: "Invalid VPA")
    static let invalidAmount = SandboxHTTPError(status: .badRequest, code: "XB", message: "Invalid amount or currency: amount must be 1…\(Amounts.maximumAccepted) paise in INR")
    static let full = SandboxHTTPError(status: .serviceUnavailable, code: "SANDBOX_FULL", message: "The sandbox holds too many transactions; reset it")

    // MARK: Handlers

    struct ValidateBody: Decodable { let vpa: String }

    func validateVPA(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decode(ValidateBody.self, context: context)
        guard let vpa = VPA(body.vpa) else {
            return jsonResponse(.object([("vpa", .string(body.vpa)), ("valid", .bool(false))]))
        }
        return jsonResponse(.object([("vpa", .string(vpa.address)), ("valid", .bool(true)), ("name", .string(vpa.payerName)),
                                     ("handle", .string(vpa.handle)), ("bank", .string(vpa.bank))]))
    }

    struct CollectBody: Decodable {
        let txnID: String
        let payerVPA: String
        let payeeVPA: String?
        let amount: PaiseField
        let currency: String
        let note: String?
        let callbackURL: String?

        enum CodingKeys: String, CodingKey {
            case txnID = "txn_id", payerVPA = "payer_vpa", payeeVPA = "payee_vpa", amount, currency, note, callbackURL = "callback_url"
        }
    }

    func collect(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decode(CollectBody.self, context: context)
        let new = NewTransaction(key: TxnKey(rail: .upiSwitch, id: try Validate.identifier(body.txnID, field: "txn_id")),
                                 mode: .collect,
                                 amount: try Self.amount(body.amount, currency: body.currency),
                                 payer: try Self.payer(body.payerVPA),
                                 payee: try Validate.text(body.payeeVPA, field: "payee_vpa"),
                                 payeeName: nil,
                                 note: try Validate.text(body.note, field: "note"),
                                 callback: try Validate.callback(body.callbackURL, field: "callback_url"))
        let transaction = try create(new)
        return jsonResponse(RailViews.switchAccepted(transaction), status: .accepted)
    }

    struct IntentBody: Decodable {
        let txnID: String
        let payeeVPA: String
        let payeeName: String?
        let amount: PaiseField
        let currency: String
        let note: String?
        let callbackURL: String?

        enum CodingKeys: String, CodingKey {
            case txnID = "txn_id", payeeVPA = "payee_vpa", payeeName = "payee_name", amount, currency, note, callbackURL = "callback_url"
        }
    }

    func intent(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decode(IntentBody.self, context: context)
        guard !body.payeeVPA.isEmpty else { throw MalformedRequest(message: "payee_vpa must not be empty") }
        let new = NewTransaction(key: TxnKey(rail: .upiSwitch, id: try Validate.identifier(body.txnID, field: "txn_id")),
                                 mode: .intent,
                                 amount: try Self.amount(body.amount, currency: body.currency),
                                 payer: nil,
                                 payee: try Validate.text(body.payeeVPA, field: "payee_vpa"),
                                 payeeName: try Validate.text(body.payeeName, field: "payee_name"),
                                 note: try Validate.text(body.note, field: "note"),
                                 callback: try Validate.callback(body.callbackURL, field: "callback_url"))
        let transaction = try create(new)
        return jsonResponse(RailViews.switchAccepted(transaction).adding([("link", .string(IntentLink.make(transaction)))]),
                            status: .created)
    }

    struct AppPayBody: Decodable {
        let link: String
        let payerVPA: String
        /// What the payer typed, for a link without `am` (paise); see `payerInitiated`.
        let amount: PaiseField?

        enum CodingKeys: String, CodingKey { case link, payerVPA = "payer_vpa", amount }
    }

    func appPay(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decode(AppPayBody.self, context: context)
        let link = try IntentLink.parse(body.link)
        let payer = try Self.payer(body.payerVPA)
        let payeeHandle = link.payee.flatMap { $0.lowercased().split(separator: "@").last.map(String.init) }
        let (issued, served) = runtime.withWorld { world in
            (world.transaction(TxnKey(rail: .upiSwitch, id: link.txnID)) != nil, payeeHandle.map { world.payees[$0] != nil } ?? false)
        }
        if !issued, served, let payee = link.payee {
            // Not a transaction the switch issued, to a payee whose PSP is registered: the payer
            // pays the payee's own QR code. (Neither: 404, no such transaction.)
            return try payerInitiated(link, payee: payee, payer: payer, typed: body.amount)
        }
        if body.amount != nil { throw SandboxHTTPError.badRequest("amount is taken only for a payee's own QR code (a tr the switch did not issue)") }
        let now = runtime.now()
        let outcome = runtime.perform { world in
            let outcome = world.payIntent(TxnKey(rail: .upiSwitch, id: link.txnID), payer: payer, linkAmount: link.amount, now: now)
            if case .accepted(_, let effects) = outcome { return (outcome, effects) }
            return (outcome, [])
        }
        switch outcome {
        case .accepted(let transaction, _):
            return jsonResponse(.object([("txn_id", .string(transaction.key.id)), ("status", .string(TxnStatus.pending.rawValue))]),
                                status: .accepted)
        case .notFound:
            throw SandboxHTTPError.notFound("No transaction \(link.txnID)")
        case .notPending:
            throw SandboxHTTPError(status: .conflict, code: "TXN_NOT_PENDING", message: "The transaction is no longer waiting for a payer")
        case .amountMismatch:
            throw Self.invalidAmount
        }
    }

    struct RefundBody: Decodable {
        let refundID: String
        let txnID: String
        let amount: PaiseField

        enum CodingKeys: String, CodingKey { case refundID = "refund_id", txnID = "txn_id", amount }
    }

    func refund(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        var request = request
        let body = try await request.decode(RefundBody.self, context: context)
        let refundID = try Validate.identifier(body.refundID, field: "refund_id")
        let txnID = try Validate.identifier(body.txnID, field: "txn_id")
        let amount = try Self.amount(body.amount, currency: "INR")
        let outcome = runtime.withWorld { $0.refund(RefundKey(rail: .upiSwitch, id: refundID), of: TxnKey(rail: .upiSwitch, id: txnID), amount: amount) }
        switch outcome {
        case .refunded(let refund), .replayed(let refund):
            return jsonResponse(.object([("refund_id", .string(refund.key.id)), ("txn_id", .string(refund.transaction.id)),
                                         ("status", .string("SUCCESS")), ("rrn", .string(refund.rrn))]))
        case .conflict:
            throw SandboxHTTPError(status: .conflict, code: "DUPLICATE_REFUND", message: "refund_id \(refundID) was used for a different refund")
        case .unknownTransaction:
            throw SandboxHTTPError.notFound("No transaction \(txnID)")
        case .notSuccessful:
            throw SandboxHTTPError(status: .badRequest, code: "TXN_NOT_SUCCESS", message: "The original transaction is not successful")
        case .exceeds:
            throw SandboxHTTPError(status: .badRequest, code: "REFUND_EXCEEDS", message: "The refund exceeds the amount not yet refunded")
        case .full:
            throw Self.full
        }
    }

    // MARK: Helpers

    private func create(_ new: NewTransaction) throws -> Transaction {
        let now = runtime.now()
        let outcome = runtime.perform { world in
            let outcome = world.create(new, idempotency: .replayIfSame, now: now)
            if case .created(_, let effects) = outcome { return (outcome, effects) }
            return (outcome, [])
        }
        switch outcome {
        case .created(let transaction, _), .replayed(let transaction):
            return transaction
        case .conflict:
            throw SandboxHTTPError(status: .conflict, code: "DUPLICATE_TXN",
                                   message: "txn_id \(new.key.id) was used with a different amount, payer or payee")
        case .full:
            throw Self.full
        }
    }

    static func amount(_ field: PaiseField, currency: String) throws(SandboxHTTPError) -> Int64 {
        guard currency == "INR", let amount = field.value, Amounts.isAcceptable(amount) else { throw invalidAmount }
        return amount
    }

    static func payer(_ text: String) throws(SandboxHTTPError) -> VPA {
        guard let vpa = VPA(text) else { throw invalidVPA }
        return vpa
    }
}

/// `upi://pay?pa=…&pn=…&am=500.00&tr=…&cu=INR&tn=…`, query values percent-encoded (RFC 3986
/// unreserved characters kept); `pn` and `tn` are left out when there is no name or note.
enum IntentLink {
    static func make(_ t: Transaction) -> String {
        var items: [(String, String)] = [("pa", t.payee ?? "")]
        if let name = t.payeeName { items.append(("pn", name)) }
        items.append(("am", Amounts.rupees(fromPaise: t.amount)))
        items.append(("tr", t.key.id))
        items.append(("cu", "INR"))
        if let note = t.note { items.append(("tn", note)) }
        return "upi://pay?" + items.map { "\($0.0)=\(encode($0.1))" }.joined(separator: "&")
    }

    static func encode(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (byte < 16 ? "0" : "") + hex
            }
        }
        return out
    }

    struct Parsed: Sendable {
        let txnID: String
        let amount: Int64?
        /// `pa`, `tn`.
        var payee: String? = nil
        var note: String? = nil
    }

    static func parse(_ link: String) throws(SandboxHTTPError) -> Parsed {
        let prefix = "upi://pay?"
        guard link.utf8.count <= SandboxLimits.maximumURLLength, link.lowercased().hasPrefix(prefix) else {
            throw .badRequest("link must be a upi://pay? link")
        }
        var fields: [String: String] = [:]
        for pair in link.dropFirst(prefix.count).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, let key = String(parts[0]).removingPercentEncoding,
                  let value = String(parts[1]).removingPercentEncoding else {
                throw .badRequest("link has a malformed query")
            }
            fields[key] = value
        }
        guard let txnID = fields["tr"], (try? Validate.identifier(txnID, field: "tr")) != nil else {
            throw .badRequest("link has no valid tr (transaction reference)")
        }
        var amount: Int64?
        if let am = fields["am"] {
            guard let paise = Amounts.paise(fromRupees: am) else { throw SwitchAPI.invalidAmount }
            amount = paise
        }
        return Parsed(txnID: txnID, amount: amount, payee: fields["pa"], note: fields["tn"])
    }
}
