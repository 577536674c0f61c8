import KoshJSON

// The banks' and wallet providers' books (docs/REDIRECT_METHODS.md) as part of the world value:
// payments, refunds and the test customers' balances, changed only under the runtime's lock and
// cleared with the world by a reset. Expiries run on the sandbox's clock through the agenda.

enum RedirectStatus: String, Sendable {
    case pending, success, failure
}

/// Why a redirect payment failed (`error_code`).
enum RedirectFailure: String, Sendable {
    case declined = "PAYMENT_DECLINED"
    case insufficientFunds = "INSUFFICIENT_FUNDS"
    case timedOut = "TIMED_OUT"
    case bankError = "BANK_ERROR"

    func description(_ kind: RedirectKind) -> String {
        switch self {
        case .declined: "The customer declined the payment"
        case .insufficientFunds: kind == .netbanking ? "The customer's account has insufficient funds"
            : "The customer's wallet balance is insufficient"
        case .timedOut: "The customer did not approve the payment within 15 minutes"
        case .bankError: kind == .netbanking ? "The bank could not debit the account" : "The wallet provider could not debit the wallet"
        }
    }
}

struct NewRedirectPayment: Sendable {
    let provider: RedirectProvider
    let reference: String
    let amount: Int64
    let merchantName: String
    let returnURL: String
    let callback: CallbackTarget
    let contact: String?
    /// `http://<host>` the create came to, for the `redirect_url` in callbacks; "" when unknown.
    let origin: String
}

struct RedirectPayment: Sendable {
    let id: String
    let provider: RedirectProvider
    let reference: String
    let amount: Int64
    let merchantName: String
    let returnURL: String
    let callback: CallbackTarget
    let contact: String?
    let origin: String
    /// Unix milliseconds on the sandbox's clock.
    let createdAt: Int64
    var status: RedirectStatus = .pending
    /// The bank's or wallet's 12-digit reference, set on success.
    var providerReference: String?
    var failure: RedirectFailure?
    var refunded: Int64 = 0

    var kind: RedirectKind { provider.kind }
    var key: RedirectBook.Key { RedirectBook.Key(kind: kind, reference: reference) }
    /// Not approved by then (unix ms), the payment fails `TIMED_OUT`.
    var expiresAt: Int64 { createdAt + RedirectCatalogue.expiryMs }
    var fee: Int64 { provider.fee(amount) }

    func redirectURL(origin: String) -> String { origin + kind.pagePath + id }

    /// The payment object of docs/REDIRECT_METHODS.md, its `redirect_url` on `origin`.
    func json(origin: String) -> JSON {
        .object([
            ("id", .string(id)),
            ("reference", .string(reference)),
            (kind.providerField, .string(provider.code)),
            ("amount", .int(amount)),
            ("currency", .string("INR")),
            ("status", .string(status.rawValue)),
            ("redirect_url", .string(redirectURL(origin: origin))),
            (kind.referenceField, .optional(providerReference)),
            ("error_code", .optional(failure?.rawValue)),
            ("error_description", .optional(failure?.description(kind))),
            ("refunded_amount", .int(refunded)),
            ("fee", .int(fee)),
            ("created_at", .int(createdAt / 1000)),
        ])
    }
}

struct RedirectRefund: Sendable {
    let id: String
    let kind: RedirectKind
    let refundReference: String
    let reference: String
    let amount: Int64

    var json: JSON {
        .object([("id", .string(id)), ("refund_reference", .string(refundReference)), ("reference", .string(reference)),
                 ("amount", .int(amount)), ("status", .string("processed"))])
    }
}

struct RedirectBook: Sendable {
    /// A payment by Kosh's reference, a refund by its refund reference, or a test customer's
    /// balance by provider code, within one kind (references are unique across all banks, and
    /// across all wallets).
    struct Key: Hashable, Sendable {
        let kind: RedirectKind
        let reference: String
    }

    static let maximumPayments = 1_000_000
    static let maximumRefunds = 1_000_000

    fileprivate(set) var payments: [Key: RedirectPayment] = [:]
    /// `nb_…` / `wl_…` → the payment's key.
    fileprivate(set) var ids: [String: Key] = [:]
    fileprivate(set) var refunds: [Key: RedirectRefund] = [:]
    /// Balances set or moved since the reset; the others hold the opening balance.
    fileprivate(set) var balances: [Key: Int64] = [:]
}

enum RedirectCreateOutcome: Sendable {
    case created(RedirectPayment)
    /// The same reference with the same provider and amount: the payment as it is now.
    case existing(RedirectPayment)
    case conflict
    case full
}

enum RedirectDecision: String, Sendable {
    case approve, decline
}

enum RedirectRefundOutcome: Sendable {
    case refunded(RedirectRefund)
    case replayed(RedirectRefund)
    case conflict
    case unknownPayment
    case notPaid
    case exceeds
    case full
}

extension SandboxWorld {
    // MARK: The test customers

    func redirectBalance(_ provider: RedirectProvider) -> Int64 {
        redirect.balances[RedirectBook.Key(kind: provider.kind, reference: provider.code)] ?? provider.openingBalance
    }

    mutating func setRedirectBalance(_ provider: RedirectProvider, _ balance: Int64) {
        precondition(balance >= 0, "negative balance \(balance)")
        redirect.balances[RedirectBook.Key(kind: provider.kind, reference: provider.code)] = balance
    }

    // MARK: Payments

    /// Opens a payment, with its expiry on the agenda; a repeated reference answers the payment
    /// as it is now when the provider and amount match, else a conflict.
    mutating func createRedirect(_ new: NewRedirectPayment, now: Int64) -> (RedirectCreateOutcome, [Effect]) {
        let key = RedirectBook.Key(kind: new.provider.kind, reference: new.reference)
        if let existing = redirect.payments[key] {
            guard existing.provider == new.provider && existing.amount == new.amount else { return (.conflict, []) }
            let (payment, effects) = redirectPayment(key, now: now)
            return (.existing(payment ?? existing), effects)
        }
        guard redirect.payments.count < RedirectBook.maximumPayments else { return (.full, []) }
        precondition(new.amount >= 1 && new.amount <= new.provider.maxAmount, "amount \(new.amount) reached the world unchecked")
        var id = new.provider.kind.idPrefix + identifiers.hex16()
        while redirect.ids[id] != nil { id = new.provider.kind.idPrefix + identifiers.hex16() }
        let payment = RedirectPayment(id: id, provider: new.provider, reference: new.reference, amount: new.amount,
                                      merchantName: new.merchantName, returnURL: new.returnURL, callback: new.callback,
                                      contact: new.contact, origin: new.origin, createdAt: now)
        redirect.payments[key] = payment
        redirect.ids[id] = key
        let expiry = Effect.timer(TimerEvent(epoch: epoch, key: TxnKey(rail: key.kind.rail, id: key.reference), action: .expire),
                                  at: payment.expiresAt)
        return (.created(payment), [expiry])
    }

    /// The key of the payment with this provider id (`nb_…`, `wl_…`).
    func redirectKey(id: String) -> RedirectBook.Key? { redirect.ids[id] }

    /// Whether a payment has this reference.
    func redirectExists(_ key: RedirectBook.Key) -> Bool { redirect.payments[key] != nil }

    /// The payment as it is now: one still pending past its 15 minutes is failed `TIMED_OUT`
    /// here (and its callback made), so no reader sees it pending however late the timer runs.
    mutating func redirectPayment(_ key: RedirectBook.Key, now: Int64) -> (RedirectPayment?, [Effect]) {
        guard let payment = redirect.payments[key] else { return (nil, []) }
        guard payment.status == .pending && now >= payment.expiresAt else { return (payment, []) }
        let effects = finishRedirect(key, .timedOut, now: now)
        return (redirect.payments[key], effects)
    }

    /// What the customer's Approve or Decline does. A payment no longer pending (or past its
    /// expiry) is answered as it is.
    mutating func decideRedirect(_ key: RedirectBook.Key, _ decision: RedirectDecision, now: Int64) -> (RedirectPayment?, [Effect]) {
        let (current, expiryEffects) = redirectPayment(key, now: now)
        guard let payment = current, payment.status == .pending else { return (current, expiryEffects) }
        let failure: RedirectFailure?
        switch decision {
        case .decline:
            failure = .declined
        case .approve:
            let balance = redirectBalance(payment.provider)
            if payment.amount > balance {
                failure = .insufficientFunds
            } else if random.chance(faultConfig(key.kind.rail).declineRate) {
                failure = .bankError
            } else {
                setRedirectBalance(payment.provider, balance - payment.amount)
                failure = nil
            }
        }
        let effects = finishRedirect(key, failure, now: now)
        return (redirect.payments[key], effects)
    }

    /// The expiry timer: fails the payment `TIMED_OUT` if it is still pending.
    mutating func fireRedirect(_ event: TimerEvent, kind: RedirectKind, now: Int64) -> [Effect] {
        let key = RedirectBook.Key(kind: kind, reference: event.key.id)
        guard event.epoch == epoch, event.action == .expire, let payment = redirect.payments[key], payment.status == .pending else { return [] }
        precondition(now >= payment.expiresAt, "Invalid state: \(payment.id) expiring at \(now), before \(payment.expiresAt)")
        return finishRedirect(key, .timedOut, now: now)
    }

    /// Makes a pending payment final (`success` when `failure` is nil) and the signed callback,
    /// through the rail's callback faults.
    private mutating func finishRedirect(_ key: RedirectBook.Key, _ failure: RedirectFailure?, now: Int64) -> [Effect] {
        guard var payment = redirect.payments[key], payment.status == .pending else {
            preconditionFailure("Invalid state: finishing \(key), which is not pending")
        }
        if let failure {
            payment.status = .failure
            payment.failure = failure
        } else {
            payment.status = .success
            payment.providerReference = identifiers.digits(12)
        }
        redirect.payments[key] = payment
        let rail = key.kind.rail
        let config = faultConfig(rail)
        if random.chance(config.dropCallbackRate) {
            stats[rail, default: RailStats()].callbacksDropped += 1
            return []
        }
        let copies = random.chance(config.duplicateCallbackRate) ? 2 : 1
        if copies == 2 { stats[rail, default: RailStats()].callbacksDuplicated += 1 }
        stats[rail, default: RailStats()].callbacksSent += Int64(copies)
        let body = payment.json(origin: payment.origin).adding([("event", .string(key.kind.event))])
        return [.callback(CallbackJob(rail: rail, target: payment.callback, body: body.bytes, copies: copies,
                                      notBefore: now + config.callbackDelayMs))]
    }

    // MARK: Refunds

    /// A refund of a successful payment at `provider` (for wallets, the one in the path; nil for
    /// banks, whose refund path names none); credits the customer at once. Idempotent by refund
    /// reference.
    mutating func refundRedirect(kind: RedirectKind, provider: RedirectProvider?, refundReference: String, reference: String,
                                 amount: Int64) -> RedirectRefundOutcome {
        precondition(amount >= 1, "refund amount \(amount) reached the world unchecked")
        let key = RedirectBook.Key(kind: kind, reference: reference)
        guard var payment = redirect.payments[key], provider == nil || provider == payment.provider else { return .unknownPayment }
        let refundKey = RedirectBook.Key(kind: kind, reference: refundReference)
        if let existing = redirect.refunds[refundKey] {
            return existing.reference == reference && existing.amount == amount ? .replayed(existing) : .conflict
        }
        guard payment.status == .success else { return .notPaid }
        guard amount <= payment.amount - payment.refunded else { return .exceeds }
        guard redirect.refunds.count < RedirectBook.maximumRefunds else { return .full }
        payment.refunded += amount
        precondition(payment.refunded <= payment.amount, "Invalid state: over-refunded \(payment.id)")
        redirect.payments[key] = payment
        setRedirectBalance(payment.provider, redirectBalance(payment.provider) + amount)
        let refund = RedirectRefund(id: kind.refundPrefix + identifiers.hex16(), kind: kind, refundReference: refundReference,
                                    reference: reference, amount: amount)
        redirect.refunds[refundKey] = refund
        return .refunded(refund)
    }
}
