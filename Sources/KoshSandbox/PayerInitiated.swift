import Foundation
import Hummingbird

/// Payer-initiated UPI payments (docs/SANDBOX.md, "Payer-initiated payments"): a payer's app
/// pays a payee's own QR code — a `upi://pay` link whose `tr` the switch did not issue. The
/// switch routes by the payee VPA's handle to the payee's PSP, registered with
/// `PUT /upi/v1/payees/{handle}`; once the payer's bank debits the payer, the switch sends the
/// PSP a signed credit notification. The transaction's id is its RRN; it is queried and
/// refunded like any other (`GET /upi/v1/transactions/{id}`, `POST /upi/v1/refunds`).
extension SwitchAPI {
    struct PayeeBody: Decodable {
        let callbackURL: String
        enum CodingKeys: String, CodingKey { case callbackURL = "callback_url" }
    }

    /// `PUT /upi/v1/payees/{handle}` `{"callback_url"}`: where credits to `*@handle` are notified.
    func registerPayee(_ request: Request, _ context: SandboxRequestContext) async throws -> Response {
        var request = request
        let handle = try Self.payeeHandle(context.parameters.require("handle"))
        let body = try await request.decode(PayeeBody.self, context: context)
        guard let target = try Validate.callback(body.callbackURL, field: "callback_url") else { throw MalformedRequest(message: "callback_url is required") }
        runtime.withWorld { $0.payees[handle] = target }
        return jsonResponse(.object([("handle", .string(handle)), ("callback_url", .string(target.url))]))
    }

    func registeredPayee(_ context: SandboxRequestContext) throws -> Response {
        let handle = try Self.payeeHandle(context.parameters.require("handle"))
        guard let target = runtime.withWorld({ $0.payees[handle] }) else { throw SandboxHTTPError.notFound("No payee PSP for @\(handle)") }
        return jsonResponse(.object([("handle", .string(handle)), ("callback_url", .string(target.url))]))
    }

    /// `GET /upi/v1/payees/{handle}/transactions?from=<unix ms>&count=<1…500>`: the payee PSP's
    /// reconciliation — payer-initiated transactions to `*@handle` created at or after `from`,
    /// oldest first, in any status, as `GET /upi/v1/transactions/{id}` shows them plus
    /// `created_at` (ms). A PSP that missed a credit notification finds the credit here.
    func payeeTransactions(_ request: Request, _ context: SandboxRequestContext) throws -> Response {
        let handle = try Self.payeeHandle(context.parameters.require("handle"))
        let query = request.uri.queryParameters
        guard let from = query["from"].flatMap({ Int64(String($0)) }), from >= 0 else { throw SandboxHTTPError.badRequest("from (unix ms) is required") }
        let count = try query["count"].map { text throws(SandboxHTTPError) -> Int in
            guard let n = Int(String(text)), (1...500).contains(n) else { throw .badRequest("count must be 1 to 500") }
            return n
        } ?? 100
        let items = runtime.withWorld { $0.payeeTransactions(handle: handle, from: from, count: count) }
        return jsonResponse(.object([("items", .array(items.map { RailViews.switchStatus($0).adding([("created_at", .int($0.createdAt))]) }))]))
    }

    /// 2–32 lower-case letters, not a payer bank's handle (those are the switch's own banks).
    static func payeeHandle(_ text: String) throws(SandboxHTTPError) -> String {
        guard (2...32).contains(text.utf8.count), text.utf8.allSatisfy({ $0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z") }) else {
            throw .badRequest("handle must be 2 to 32 lower-case letters")
        }
        guard VPA.banks[text] == nil else { throw .badRequest("@\(text) is a payer bank's handle, not a payee PSP's") }
        return text
    }

    /// The payer's app pays a payee's QR code. The amount is the link's `am`; a link without one
    /// (an any-amount QR code) takes what the payer typed (`amount`). A test may also send an
    /// `amount` other than `am` to play an app that lets the payer change it. The payer's
    /// behaviour (docs: the payer table) decides, as for collect.
    func payerInitiated(_ link: IntentLink.Parsed, payee: String, payer: VPA, typed: PaiseField?) throws -> Response {
        let parts = payee.lowercased().split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, (1...64).contains(parts[0].utf8.count) else { throw SandboxHTTPError.badRequest("link has no valid pa (payee VPA)") }
        let handle = String(parts[1])
        let amount: Int64
        if let typed {
            guard let value = typed.value, Amounts.isAcceptable(value) else { throw Self.invalidAmount }
            amount = value
        } else {
            guard let am = link.amount else { throw SandboxHTTPError.badRequest("the link has no am: the payer must type an amount") }
            amount = am
        }
        guard Amounts.isAcceptable(amount) else { throw Self.invalidAmount }
        let note = try Validate.text(link.note, field: "tn")
        let now = runtime.now()
        let outcome = runtime.perform { world in
            let outcome = world.payPayee(payee.lowercased(), handle: handle, reference: link.txnID, payer: payer, amount: amount, note: note, now: now)
            if case .accepted(_, let effects) = outcome { return (outcome, effects) }
            return (outcome, [])
        }
        switch outcome {
        case .accepted(let transaction, _):
            return jsonResponse(.object([("txn_id", .string(transaction.key.id)), ("rrn", .string(transaction.rrn)),
                                         ("status", .string(TxnStatus.pending.rawValue)), ("mode", .string(PaymentMode.qr.rawValue))]),
                                status: .accepted)
        case .unknownPayee:
            throw SandboxHTTPError(status: .badRequest, code: "ZH", message: "No PSP serves the payee VPA \(payee)")
        case .full:
            throw Self.full
        }
    }
}

enum PayeePayment: Sendable {
    case accepted(Transaction, [Effect])
    case unknownPayee
    case full
}

extension SandboxWorld {
    func payeeTransactions(handle: String, from: Int64, count: Int) -> [Transaction] {
        let suffix = "@" + handle
        let matching = transactions.values.filter { $0.mode == .qr && $0.createdAt >= from && ($0.payee?.hasSuffix(suffix) ?? false) }
        return Array(matching.sorted { ($0.createdAt, $0.key.id) < ($1.createdAt, $1.key.id) }.prefix(count))
    }

    /// A payer-initiated transaction to `payee`, whose PSP hears of it when it succeeds. Its id
    /// is its RRN (12 digits, drawn again on the rare clash).
    mutating func payPayee(_ payee: String, handle: String, reference: String, payer: VPA, amount: Int64, note: String?,
                           now: Int64) -> PayeePayment {
        guard let target = payees[handle] else { return .unknownPayee }
        guard transactions.count < Self.maximumTransactions else { return .full }
        precondition(Amounts.isAcceptable(amount), "amount \(amount) reached the world unchecked")
        var rrn = identifiers.digits(12)
        while transactions[TxnKey(rail: .upiSwitch, id: rrn)] != nil { rrn = identifiers.digits(12) }
        let key = TxnKey(rail: .upiSwitch, id: rrn)
        let new = NewTransaction(key: key, mode: .qr, amount: amount, payer: payer, payee: payee, payeeName: nil, note: note,
                                 callback: target, reference: reference)
        let transaction = Transaction(new, rrn: rrn, providerID: rrn, createdAt: now)
        transactions[key] = transaction
        let decision = payerDecision(key, payer.behaviour, before: now + timing.collectExpiryMs, now: now)
        let expiry = Effect.timer(TimerEvent(epoch: epoch, key: key, action: .expire), at: now + timing.collectExpiryMs)
        return .accepted(transaction, [decision ?? expiry])
    }
}
