/// What `kosh ledger verify` checks, as a pure function over the stored data.
public struct LedgerVerification: Sendable {
    public struct StoredPosting: Sendable {
        public let entryID: String
        public let phase: EntryPhase
        public let kind: EntryKind
        public let paymentID: String?
        public let account: String
        public let currency: Currency
        public let amount: Int64
        public init(entryID: String, phase: EntryPhase, kind: EntryKind, paymentID: String?, account: String, currency: Currency, amount: Int64) {
            self.entryID = entryID
            self.phase = phase
            self.kind = kind
            self.paymentID = paymentID
            self.account = account
            self.currency = currency
            self.amount = amount
        }
    }

    public struct PaymentFigures: Sendable {
        public let paymentID: String
        public let merchantID: String
        public let capturedAmount: Int64
        public let amountRefunded: Int64
        public init(paymentID: String, merchantID: String, capturedAmount: Int64, amountRefunded: Int64) {
            self.paymentID = paymentID
            self.merchantID = merchantID
            self.capturedAmount = capturedAmount
            self.amountRefunded = amountRefunded
        }
    }

    public struct Report: Sendable {
        public var entries = 0
        public var postings = 0
        public var accounts = 0
        public var payments = 0
        public var problems: [String] = []
        public var isConsistent: Bool { problems.isEmpty }
    }

    public static func verify(postings: [StoredPosting], storedBalances: [LedgerBalances.Key: LedgerBalances.Balance],
                              payments: [PaymentFigures], pendingResolutions: [(resolving: String, pending: String)]) -> Report {
        var report = Report()
        report.postings = postings.count
        report.payments = payments.count
        var sums: [String: [Currency: Int64]] = [:]
        var byEntry: [String: [StoredPosting]] = [:]
        var computed = LedgerBalances()
        var merchantByPayment: [String: Int64] = [:]
        for posting in postings {
            sums[posting.entryID, default: [:]][posting.currency, default: 0] += posting.amount
            byEntry[posting.entryID, default: []].append(posting)
            computed.apply(phase: posting.phase, account: posting.account, currency: posting.currency, amount: posting.amount)
            if let paymentID = posting.paymentID, posting.account.hasPrefix("merchant:"), posting.account.hasSuffix(":balance"),
               [.capture, .refund, .refundReversal].contains(posting.kind) {
                merchantByPayment[paymentID, default: 0] += posting.amount
            }
        }
        report.entries = sums.count
        for (entry, perCurrency) in sums.sorted(by: { $0.key < $1.key }) {
            for (currency, sum) in perCurrency where sum != 0 {
                report.problems.append("entry \(entry) does not balance in \(currency.rawValue): postings sum to \(sum)")
            }
        }
        let keys = Set(computed.balances.keys).union(storedBalances.keys).sorted()
        report.accounts = keys.count
        for key in keys {
            let want = computed.balances[key] ?? LedgerBalances.Balance()
            let have = storedBalances[key] ?? LedgerBalances.Balance()
            if want != have {
                report.problems.append("account \(key.account) \(key.currency.rawValue): stored posted \(have.posted) pending \(have.pending), "
                                       + "postings give posted \(want.posted) pending \(want.pending)")
            }
        }
        for (resolving, pending) in pendingResolutions {
            let a = (byEntry[resolving] ?? []).map { "\($0.account) \($0.currency) \($0.amount)" }.sorted()
            let b = (byEntry[pending] ?? []).map { "\($0.account) \($0.currency) \($0.amount)" }.sorted()
            if a != b {
                report.problems.append("entry \(resolving) resolves \(pending) with different postings")
            }
        }
        for payment in payments {
            // The merchant's balance is credit-normal: captured minus refunded shows as a negative sum.
            let held = -(merchantByPayment[payment.paymentID] ?? 0)
            let expected = payment.capturedAmount - payment.amountRefunded
            if held != expected {
                report.problems.append("payment \(payment.paymentID): captured \(payment.capturedAmount) − refunded \(payment.amountRefunded) = \(expected), "
                                       + "but the ledger holds \(held) for it")
            }
        }
        return report
    }
}
