/// Ledger accounts. Balances are signed: a debit is positive, a credit negative, and every
/// journal entry's postings sum to zero per currency. A liability such as a merchant's
/// balance is credit-normal, so what Kosh owes a merchant is the negation of its balance.
public enum LedgerAccount: Sendable, Hashable, CustomStringConvertible {
    /// What Kosh owes the merchant (credit-normal).
    case merchantBalance(merchantID: String)
    /// What the rail (the customer's bank, via the UPI switch / test rail) owes Kosh (debit-normal).
    case railClearing(rail: String)
    /// Refunds accepted from the merchant, not yet confirmed by the rail.
    case refundsInTransit(rail: String)
    /// Kosh's MDR income (credit-normal).
    case feeRevenue
    /// GST collected on fees, owed to the government (credit-normal).
    case gstPayable

    /// Stable storage key of the account.
    public var key: String {
        switch self {
        case .merchantBalance(let id): "merchant:\(id):balance"
        case .railClearing(let rail): "rail:\(rail):clearing"
        case .refundsInTransit(let rail): "rail:\(rail):refunds_in_transit"
        case .feeRevenue: "platform:fee_revenue"
        case .gstPayable: "platform:gst_payable"
        }
    }

    public var description: String { key }
}

public struct Posting: Sendable, Hashable {
    public let account: LedgerAccount
    /// Signed amount in minor units: debit > 0, credit < 0.
    public let amount: Int64
    public let currency: Currency

    public init(_ account: LedgerAccount, _ amount: Int64, _ currency: Currency) {
        precondition(amount != 0, "a posting moves money")
        self.account = account
        self.amount = amount
        self.currency = currency
    }
}

/// How an entry affects balances (two-phase postings as in TigerBeetle):
/// - `posted`: changes posted balances;
/// - `pending`: changes pending balances only (an authorisation hold);
/// - `postPending`: resolves a pending entry by moving its amounts from pending to posted;
/// - `voidPending`: resolves a pending entry by releasing its amounts.
/// A pending entry is resolved at most once; entries are never changed after they are written.
public enum EntryPhase: String, Sendable, Hashable, CaseIterable {
    case posted, pending, postPending = "post_pending", voidPending = "void_pending"
}

public enum EntryKind: String, Sendable, Hashable, CaseIterable {
    case authorization, capture, void, fee, refund, refundSettled = "refund_settled", refundReversal = "refund_reversal"
}

public struct JournalEntry: Sendable, Hashable {
    public let id: String
    public let kind: EntryKind
    public let phase: EntryPhase
    /// For `postPending` / `voidPending`: the pending entry resolved.
    public let pendingEntryID: String?
    public let paymentID: String?
    public let refundID: String?
    public let postings: [Posting]
    public let createdAt: Int64

    /// Builds an entry and checks the double-entry invariant: postings sum to zero per currency.
    public init(id: String, kind: EntryKind, phase: EntryPhase, pendingEntryID: String? = nil,
                paymentID: String?, refundID: String? = nil, postings: [Posting], createdAt: Int64) throws(LedgerError) {
        guard !postings.isEmpty else { throw LedgerError.emptyEntry }
        var sums: [Currency: Int64] = [:]
        for posting in postings {
            let (sum, overflow) = sums[posting.currency, default: 0].addingReportingOverflow(posting.amount)
            guard !overflow else { throw LedgerError.overflow }
            sums[posting.currency] = sum
        }
        for (currency, sum) in sums where sum != 0 {
            throw LedgerError.unbalanced(currency: currency, difference: sum)
        }
        let resolves = phase == .postPending || phase == .voidPending
        guard resolves == (pendingEntryID != nil) else { throw LedgerError.pendingReference }
        self.id = id
        self.kind = kind
        self.phase = phase
        self.pendingEntryID = pendingEntryID
        self.paymentID = paymentID
        self.refundID = refundID
        self.postings = postings
        self.createdAt = createdAt
    }
}

public enum LedgerError: Error, Sendable, Hashable {
    case emptyEntry
    case unbalanced(currency: Currency, difference: Int64)
    case overflow
    case pendingReference
}

/// The posting rules: which entry each payment or refund action produces. Pure functions.
public enum PostingRules {
    public static func authorization(id: String, paymentID: ID<Payment>, merchantID: ID<Merchant>, rail: String,
                                     amount: Int64, currency: Currency, at: Int64) throws(LedgerError) -> JournalEntry {
        try JournalEntry(id: id, kind: .authorization, phase: .pending, paymentID: paymentID.rawValue, postings: [
            Posting(.railClearing(rail: rail), amount, currency),
            Posting(.merchantBalance(merchantID: merchantID.rawValue), -amount, currency),
        ], createdAt: at)
    }

    /// Posts the pending authorisation: the same postings, now posted.
    public static func capture(id: String, authorization: JournalEntry, at: Int64) throws(LedgerError) -> JournalEntry {
        try JournalEntry(id: id, kind: .capture, phase: .postPending, pendingEntryID: authorization.id,
                         paymentID: authorization.paymentID, postings: authorization.postings, createdAt: at)
    }

    /// Releases the pending authorisation.
    public static func void(id: String, authorization: JournalEntry, at: Int64) throws(LedgerError) -> JournalEntry {
        try JournalEntry(id: id, kind: .void, phase: .voidPending, pendingEntryID: authorization.id,
                         paymentID: authorization.paymentID, postings: authorization.postings, createdAt: at)
    }

    public static func fee(id: String, paymentID: ID<Payment>, merchantID: ID<Merchant>, fee: FeeBreakdown,
                           currency: Currency, at: Int64) throws(LedgerError) -> JournalEntry {
        var postings = [Posting(.merchantBalance(merchantID: merchantID.rawValue), fee.total, currency)]
        if fee.base > 0 { postings.append(Posting(.feeRevenue, -fee.base, currency)) }
        if fee.tax > 0 { postings.append(Posting(.gstPayable, -fee.tax, currency)) }
        return try JournalEntry(id: id, kind: .fee, phase: .posted, paymentID: paymentID.rawValue, postings: postings, createdAt: at)
    }

    /// A refund accepted from the merchant: taken from the merchant's balance into in-transit.
    public static func refund(id: String, paymentID: ID<Payment>, refundID: ID<Refund>, merchantID: ID<Merchant>, rail: String,
                              amount: Int64, currency: Currency, at: Int64) throws(LedgerError) -> JournalEntry {
        try JournalEntry(id: id, kind: .refund, phase: .posted, paymentID: paymentID.rawValue, refundID: refundID.rawValue, postings: [
            Posting(.merchantBalance(merchantID: merchantID.rawValue), amount, currency),
            Posting(.refundsInTransit(rail: rail), -amount, currency),
        ], createdAt: at)
    }

    /// The rail confirmed the refund: the money leaves through the rail.
    public static func refundSettled(id: String, paymentID: ID<Payment>, refundID: ID<Refund>, rail: String,
                                     amount: Int64, currency: Currency, at: Int64) throws(LedgerError) -> JournalEntry {
        try JournalEntry(id: id, kind: .refundSettled, phase: .posted, paymentID: paymentID.rawValue, refundID: refundID.rawValue, postings: [
            Posting(.refundsInTransit(rail: rail), amount, currency),
            Posting(.railClearing(rail: rail), -amount, currency),
        ], createdAt: at)
    }

    /// The rail failed the refund: the amount goes back to the merchant.
    public static func refundReversal(id: String, paymentID: ID<Payment>, refundID: ID<Refund>, merchantID: ID<Merchant>, rail: String,
                                      amount: Int64, currency: Currency, at: Int64) throws(LedgerError) -> JournalEntry {
        try JournalEntry(id: id, kind: .refundReversal, phase: .posted, paymentID: paymentID.rawValue, refundID: refundID.rawValue, postings: [
            Posting(.refundsInTransit(rail: rail), amount, currency),
            Posting(.merchantBalance(merchantID: merchantID.rawValue), -amount, currency),
        ], createdAt: at)
    }
}

/// Account balances as the ledger defines them, computed from entries. Used by
/// `kosh ledger verify` (against the stored balances) and by tests.
public struct LedgerBalances: Sendable, Hashable {
    public struct Balance: Sendable, Hashable {
        public var posted: Int64 = 0
        public var pending: Int64 = 0
        public init(posted: Int64 = 0, pending: Int64 = 0) {
            self.posted = posted
            self.pending = pending
        }
    }

    public struct Key: Sendable, Hashable, Comparable {
        public let account: String
        public let currency: Currency
        public init(account: String, currency: Currency) {
            self.account = account
            self.currency = currency
        }
        public static func < (a: Key, b: Key) -> Bool {
            (a.account, a.currency.rawValue) < (b.account, b.currency.rawValue)
        }
    }

    public private(set) var balances: [Key: Balance] = [:]

    public init() {}

    /// The effect of one posting of an entry with `phase`.
    public static func effect(phase: EntryPhase, amount: Int64) -> Balance {
        switch phase {
        case .posted: Balance(posted: amount, pending: 0)
        case .pending: Balance(posted: 0, pending: amount)
        case .postPending: Balance(posted: amount, pending: -amount)
        case .voidPending: Balance(posted: 0, pending: -amount)
        }
    }

    public mutating func apply(phase: EntryPhase, account: String, currency: Currency, amount: Int64) {
        let delta = Self.effect(phase: phase, amount: amount)
        let key = Key(account: account, currency: currency)
        balances[key, default: Balance()].posted += delta.posted
        balances[key, default: Balance()].pending += delta.pending
    }

    public mutating func apply(_ entry: JournalEntry) {
        for posting in entry.postings {
            apply(phase: entry.phase, account: posting.account.key, currency: posting.currency, amount: posting.amount)
        }
    }
}
