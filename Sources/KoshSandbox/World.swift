import KoshRandom

/// The simulated world as a plain value: banks, accounts, transactions, refunds, fault settings
/// and the seeded random source. Every input is a `mutating func` that takes the time and
/// returns what happened plus the effects (timers, callbacks) the runtime must carry out; the
/// world itself never sleeps and does no I/O.
struct SandboxWorld: Sendable {
    static let maximumTransactions = 1_000_000
    static let maximumRefunds = 1_000_000

    private(set) var seed: UInt64
    /// Bumped by every reset; timers from an older epoch are ignored.
    private(set) var epoch: UInt64 = 0
    /// Fault draws and bank decline draws: one generator, so a seed replays the same faults.
    var random: SplitMix64
    /// Identifiers (RRNs, provider ids): derived from the seed but kept apart from the fault
    /// draws, so creating a payment does not shift the fault sequence.
    var identifiers: SplitMix64

    private(set) var faults: [Rail: FaultConfig] = [:]
    private(set) var timing = PayerTiming()
    var stats: [Rail: RailStats] = [:]
    var accounts: [String: Account] = [:]
    var transactions: [TxnKey: Transaction] = [:]
    /// Payee PSPs by VPA handle: where the switch sends credit notifications of payer-initiated
    /// payments (QR codes). Configuration, not test state: kept across a reset.
    var payees: [String: CallbackTarget] = [:]
    private var refunds: [RefundKey: Refund] = [:]
    /// The card network: issuers' accounts and the acquirer's books (Cards/), and the ACS.
    var cards = CardBooks()
    var acs = ACSBook()
    /// The redirect methods' banks and wallet providers (Redirect/).
    var redirect = RedirectBook()

    init(seed: UInt64) {
        self.seed = seed
        self.random = SplitMix64(seed: seed)
        self.identifiers = SplitMix64(seed: seed ^ 0x6B6F_7368_5F69_6473)  // "kosh_ids"
    }

    // MARK: Control

    mutating func reset(seed: UInt64) {
        let epoch = self.epoch &+ 1
        let payees = self.payees
        self = SandboxWorld(seed: seed)
        self.epoch = epoch
        self.payees = payees
    }

    func faultConfig(_ rail: Rail) -> FaultConfig { faults[rail] ?? FaultConfig() }
    func railStats(_ rail: Rail) -> RailStats { stats[rail] ?? RailStats() }

    mutating func updateFaults(_ rail: Rail, _ patch: FaultPatch) throws(MalformedRequest) -> FaultConfig {
        let next = try faultConfig(rail).applying(patch)
        faults[rail] = next
        return next
    }

    mutating func updateTiming(_ patch: TimingPatch) throws(MalformedRequest) -> PayerTiming {
        timing = try timing.applying(patch)
        return timing
    }

    /// Decides what the fault settings do to one API call of `rail`.
    mutating func admit(_ rail: Rail, now: Int64) -> Admission {
        let config = faultConfig(rail)
        stats[rail, default: RailStats()].calls += 1
        if config.down || config.downtime?.contains(now) == true {
            stats[rail, default: RailStats()].errorsInjected += 1
            return .unavailable(afterMs: 0)
        }
        var delay = config.latencyMinMs
        if config.latencyMaxMs > config.latencyMinMs {
            delay += Int64(random.next(below: UInt64(config.latencyMaxMs - config.latencyMinMs + 1)))
        }
        if random.chance(config.errorRate) {
            stats[rail, default: RailStats()].errorsInjected += 1
            return .unavailable(afterMs: delay)
        }
        if random.chance(config.timeoutRate) {
            stats[rail, default: RailStats()].timeoutsInjected += 1
            delay += config.hangMs
        }
        return .proceed(afterMs: delay)
    }

    // MARK: Payments

    func transaction(_ key: TxnKey) -> Transaction? { transactions[key] }

    /// Creates a collect or intent transaction. With `.replayIfSame` a repeated id answers the
    /// stored transaction when the request is the same one, else a conflict; with `.rejectRepeats`
    /// (betapay) every repeat is a conflict.
    mutating func create(_ new: NewTransaction, idempotency: Idempotency, now: Int64) -> CreateOutcome {
        if let existing = transactions[new.key] {
            if idempotency == .replayIfSame && existing.isSameRequest(as: new) { return .replayed(existing) }
            return .conflict(existing)
        }
        guard transactions.count < Self.maximumTransactions else { return .full }
        precondition(Amounts.isAcceptable(new.amount), "amount \(new.amount) reached the world unchecked")
        let rrn = identifiers.digits(12)
        let providerID = switch new.key.rail {
        case .upiSwitch: rrn
        case .alphapay: "ap_" + identifiers.hex16()
        case .betapay: "BP" + identifiers.digits(12)
        case .acquirer, .acs, .netbanking, .wallets: preconditionFailure("Invalid state: a UPI transaction on the rail \(new.key.rail)")
        }
        let transaction = Transaction(new, rrn: rrn, providerID: providerID, createdAt: now)
        transactions[new.key] = transaction
        // One timer per transaction: the payer's decision if it comes before the expiry, else the expiry.
        let decision = new.payer.flatMap { payerDecision(new.key, $0.behaviour, before: now + timing.collectExpiryMs, now: now) }
        let expiry = Effect.timer(TimerEvent(epoch: epoch, key: new.key, action: .expire), at: now + timing.collectExpiryMs)
        return .created(transaction, [decision ?? expiry])
    }

    /// The payer's app opening an intent link (`POST /upi/v1/app/pay`).
    mutating func payIntent(_ key: TxnKey, payer: VPA, linkAmount: Int64?, now: Int64) -> IntentPayment {
        guard var transaction = transactions[key] else { return .notFound }
        guard transaction.mode == .intent, transaction.status == .pending, transaction.payer == nil else { return .notPending }
        if let linkAmount, linkAmount != transaction.amount { return .amountMismatch }
        transaction.payer = payer
        transactions[key] = transaction
        // The intent's expiry timer, set at creation, still runs.
        let decision = payerDecision(key, payer.behaviour, before: transaction.createdAt + timing.collectExpiryMs, now: now)
        return .accepted(transaction, decision.map { [$0] } ?? [])
    }

    /// The timer for what the payer does, or nil when the payer never answers or answers only
    /// at or after `deadline` (the expiry comes first).
    func payerDecision(_ key: TxnKey, _ behaviour: PayerBehaviour, before deadline: Int64, now: Int64) -> Effect? {
        let decision: PayerDecision
        let delay: Int64
        switch behaviour {
        case .approve: (decision, delay) = (.approve, timing.payerDelayMs)
        case .decline: (decision, delay) = (.decline, timing.payerDelayMs)
        case .ignore: return nil
        case .approveLate: (decision, delay) = (.approve, timing.lateDelayMs)
        case .approveWithoutFunds: (decision, delay) = (.approveWithoutFunds, timing.payerDelayMs)
        }
        guard now + delay < deadline else { return nil }
        return .timer(TimerEvent(epoch: epoch, key: key, action: .decide(decision)), at: now + delay)
    }

    /// A payer decision or an expiry falling due. Whatever comes first on a pending transaction
    /// decides it; anything later, or from before a reset, changes nothing.
    mutating func fire(_ event: TimerEvent, now: Int64) -> [Effect] {
        if let kind = RedirectKind(rail: event.key.rail) { return fireRedirect(event, kind: kind, now: now) }
        guard event.epoch == epoch, let transaction = transactions[event.key], transaction.status == .pending else { return [] }
        let code: ResponseCode
        switch event.action {
        case .expire:
            code = .collectExpired
        case .decide(let decision):
            guard let payer = transaction.payer else { preconditionFailure("Invalid state: payer decision on \(event.key) without a payer") }
            switch decision {
            case .decline: code = .payerDeclined
            case .approveWithoutFunds: code = .insufficientFunds
            case .approve: code = debit(payer, amount: transaction.amount, rail: event.key.rail, now: now)
            }
        }
        return finish(event.key, code, now: now)
    }

    /// The issuer bank's answer to an approved payment; debits the account when it says yes.
    private mutating func debit(_ payer: VPA, amount: Int64, rail: Rail, now: Int64) -> ResponseCode {
        if amount > Amounts.perTransactionLimit { return .perTransactionLimit }
        var account = accounts[payer.address] ?? Account()
        account.rollOver(to: Account.day(of: now))
        if account.usedToday + amount > Amounts.dailyLimit { return .dailyLimit }
        if amount > account.balance { return .insufficientFunds }
        if random.chance(faultConfig(rail).declineRate) { return .bankError }
        account.balance -= amount
        account.usedToday += amount
        precondition(account.balance >= 0 && account.usedToday <= Amounts.dailyLimit, "Invalid state: account \(payer.address) \(account)")
        accounts[payer.address] = account
        return .success
    }

    mutating func finish(_ key: TxnKey, _ code: ResponseCode, now: Int64) -> [Effect] {
        guard var transaction = transactions[key], transaction.status == .pending else {
            preconditionFailure("Invalid state: finishing \(key), which is not pending")
        }
        transaction.responseCode = code
        transaction.status = switch code {
        case .success: .success
        case .collectExpired: .expired
        default: .failure
        }
        transactions[key] = transaction
        // A payer-initiated payment is told to the payee's PSP only when the money moved.
        guard let target = transaction.callback, transaction.mode != .qr || transaction.status == .success else { return [] }
        let config = faultConfig(key.rail)
        if random.chance(config.dropCallbackRate) {
            stats[key.rail, default: RailStats()].callbacksDropped += 1
            return []
        }
        let copies = random.chance(config.duplicateCallbackRate) ? 2 : 1
        if copies == 2 { stats[key.rail, default: RailStats()].callbacksDuplicated += 1 }
        stats[key.rail, default: RailStats()].callbacksSent += Int64(copies)
        return [.callback(CallbackJob(rail: key.rail, target: target, body: RailViews.callback(transaction).bytes,
                                      copies: copies, notBefore: now + config.callbackDelayMs))]
    }

    // MARK: Refunds

    /// A refund of a successful payment; credits the payer at once. Idempotent by refund id.
    mutating func refund(_ key: RefundKey, of txnKey: TxnKey, amount: Int64) -> RefundOutcome {
        precondition(key.rail == txnKey.rail && Amounts.isAcceptable(amount))
        if let existing = refunds[key] {
            return existing.transaction == txnKey && existing.amount == amount ? .replayed(existing) : .conflict
        }
        guard var transaction = transactions[txnKey] else { return .unknownTransaction }
        guard transaction.status == .success, let payer = transaction.payer else { return .notSuccessful }
        guard amount <= transaction.amount - transaction.refunded else { return .exceeds }
        guard refunds.count < Self.maximumRefunds else { return .full }
        transaction.refunded += amount
        precondition(transaction.refunded <= transaction.amount, "Invalid state: over-refunded \(txnKey)")
        transactions[txnKey] = transaction
        accounts[payer.address, default: Account()].balance += amount
        let providerID = switch key.rail {
        case .upiSwitch: identifiers.digits(12)
        case .alphapay: "apr_" + identifiers.hex16()
        case .betapay: "BPR" + identifiers.digits(12)
        case .acquirer, .acs, .netbanking, .wallets: preconditionFailure("Invalid state: a UPI refund on the rail \(key.rail)")
        }
        let refund = Refund(key: key, transaction: txnKey, amount: amount, providerID: providerID, rrn: identifiers.digits(12))
        refunds[key] = refund
        return .refunded(refund)
    }
}

// MARK: - Values the world deals in

struct TxnKey: Hashable, Sendable, CustomStringConvertible {
    let rail: Rail
    let id: String
    var description: String { "\(rail.rawValue)/\(id)" }
}

struct RefundKey: Hashable, Sendable {
    let rail: Rail
    let id: String
}

enum TxnStatus: String, Sendable {
    case pending = "PENDING", success = "SUCCESS", failure = "FAILURE", expired = "EXPIRED"
}

enum PaymentMode: String, Sendable {
    case collect, intent
    /// Payer-initiated: the payer's app paid a payee's QR code (a `tr` the switch did not issue).
    case qr
}

/// Final results in NPCI vocabulary.
enum ResponseCode: String, Sendable {
    case success = "00"
    case payerDeclined = "ZA"
    case collectExpired = "U69"
    case insufficientFunds = "Z9"
    case perTransactionLimit = "Z8"
    case dailyLimit = "Z7"
    case bankError = "U30"

    var message: String {
        switch self {
        case .success: "Transaction successful"
        case .payerDeclined: "Transaction declined by payer"
        case .collectExpired: "Collect request expired"
        case .insufficientFunds: "Insufficient funds in payer account"
        case .perTransactionLimit: "Per transaction limit exceeded"
        case .dailyLimit: "Daily transaction limit exceeded"
        case .bankError: "Debit failed at the bank"
        }
    }
}

/// Where a callback goes: the URL, and the path with query its signature covers.
struct CallbackTarget: Sendable, Equatable {
    let url: String
    let signedPath: String
}

struct NewTransaction: Sendable {
    var key: TxnKey
    var mode: PaymentMode
    var amount: Int64
    var payer: VPA?
    var payee: String?
    var payeeName: String?
    var note: String?
    var callback: CallbackTarget?
    /// The `tr` of a payer-initiated payment's link (the payee's own reference).
    var reference: String? = nil
}

struct Transaction: Sendable {
    let key: TxnKey
    let mode: PaymentMode
    let rrn: String
    /// The rail's own id: the RRN on the switch, `ap_…` at alphapay, `BP…` at betapay.
    let providerID: String
    let amount: Int64
    var payer: VPA?
    let payee: String?
    let payeeName: String?
    let note: String?
    let callback: CallbackTarget?
    let reference: String?
    let createdAt: Int64
    var status: TxnStatus = .pending
    var responseCode: ResponseCode?
    var refunded: Int64 = 0

    init(_ new: NewTransaction, rrn: String, providerID: String, createdAt: Int64) {
        key = new.key
        mode = new.mode
        self.rrn = rrn
        self.providerID = providerID
        amount = new.amount
        payer = new.payer
        payee = new.payee
        payeeName = new.payeeName
        note = new.note
        callback = new.callback
        reference = new.reference
        self.createdAt = createdAt
    }

    /// Whether a repeated create is the same request: on the switch the same mode, amount, payer
    /// and payee (docs: "a different amount or payer → 409"); at alphapay the same body.
    func isSameRequest(as new: NewTransaction) -> Bool {
        switch key.rail {
        case .upiSwitch: mode == new.mode && amount == new.amount && payer == new.payer && payee == new.payee
        case .alphapay: amount == new.amount && payer == new.payer && callback == new.callback
        case .betapay, .acquirer, .acs, .netbanking, .wallets: false
        }
    }
}

struct Refund: Sendable {
    let key: RefundKey
    let transaction: TxnKey
    let amount: Int64
    let providerID: String
    let rrn: String
}

struct Account: Sendable, CustomStringConvertible {
    var balance = Amounts.openingBalance
    /// Days since the epoch in India Standard Time (UTC+5:30), when `usedToday` was counted.
    var day: Int64 = 0
    var usedToday: Int64 = 0

    static func day(of unixMilliseconds: Int64) -> Int64 { (unixMilliseconds + 19_800_000) / 86_400_000 }

    mutating func rollOver(to today: Int64) {
        if today != day {
            day = today
            usedToday = 0
        }
    }

    var description: String { "balance \(balance), day \(day), used today \(usedToday)" }
}

enum Idempotency: Sendable, Equatable {
    case replayIfSame
    case rejectRepeats
}

enum CreateOutcome: Sendable {
    case created(Transaction, [Effect])
    case replayed(Transaction)
    case conflict(Transaction)
    case full
}

enum IntentPayment: Sendable {
    case accepted(Transaction, [Effect])
    case notFound
    case notPending
    case amountMismatch
}

enum RefundOutcome: Sendable {
    case refunded(Refund)
    case replayed(Refund)
    case conflict
    case unknownTransaction
    case notSuccessful
    case exceeds
    case full
}

enum Admission: Sendable, Equatable {
    case unavailable(afterMs: Int64)
    case proceed(afterMs: Int64)
}

enum PayerDecision: Sendable, Equatable {
    case approve, decline, approveWithoutFunds
}

struct TimerEvent: Sendable {
    enum Action: Sendable, Equatable {
        case decide(PayerDecision)
        case expire
    }

    let epoch: UInt64
    let key: TxnKey
    let action: Action
}

struct CallbackJob: Sendable {
    let rail: Rail
    let target: CallbackTarget
    let body: [UInt8]
    /// 1, or 2 when the duplicate fault hit.
    let copies: Int
    /// When the first try is due (unix ms): `callback_delay_ms` after the result.
    let notBefore: Int64
}

/// Work for the runtime: fire a timer when the clock reads `at` (unix ms), or deliver a callback.
enum Effect: Sendable {
    case timer(TimerEvent, at: Int64)
    case callback(CallbackJob)
}
