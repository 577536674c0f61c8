import KoshCore

public enum LedgerVerifier {
    /// Recomputes every balance from the journal in one consistent snapshot and compares.
    public static func verify(_ db: any SQLDatabase) async throws -> LedgerVerification.Report {
        try await db.transaction { conn in
            // PostgreSQL's default (read committed) gives each statement its own snapshot: a
            // refund settling between the postings query and the balances query once made a
            // consistent ledger look broken. One snapshot for the whole check. (SQLite's
            // transaction holds the writer lock, so it is one snapshot already.)
            if conn.dialect == .postgres {
                try await conn.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", [])
            }
            let postingRows = try await conn.query("""
                SELECT p.entry_id, p.account, p.currency, p.amount, e.phase, e.kind, e.payment_id
                FROM postings p JOIN journal_entries e ON e.id = p.entry_id
                """, [])
            let postings = try postingRows.map { row in
                guard let phase = EntryPhase(rawValue: try row.requireText("phase")),
                      let kind = EntryKind(rawValue: try row.requireText("kind")),
                      let currency = Currency(code: try row.requireText("currency")) else { throw StorageError.corrupt("posting") }
                return LedgerVerification.StoredPosting(entryID: try row.requireText("entry_id"), phase: phase, kind: kind,
                                                        paymentID: row.text("payment_id"), account: try row.requireText("account"),
                                                        currency: currency, amount: try row.requireInt("amount"))
            }
            var stored: [LedgerBalances.Key: LedgerBalances.Balance] = [:]
            // A balance is the sum of its stripes.
            for row in try await conn.query("""
                SELECT account, currency, CAST(SUM(posted) AS BIGINT) AS posted, CAST(SUM(pending) AS BIGINT) AS pending
                FROM ledger_accounts GROUP BY account, currency
                """, []) {
                guard let currency = Currency(code: try row.requireText("currency")) else { throw StorageError.corrupt("account") }
                stored[LedgerBalances.Key(account: try row.requireText("account"), currency: currency)] =
                    LedgerBalances.Balance(posted: try row.requireInt("posted"), pending: try row.requireInt("pending"))
            }
            let payments = try await conn.query("SELECT id, merchant_id, amount, status, amount_refunded FROM payments", []).map { row in
                let status = try row.requireText("status")
                let captured = status == PaymentState.captured.rawValue || status == PaymentState.refunded.rawValue
                return LedgerVerification.PaymentFigures(paymentID: try row.requireText("id"), merchantID: try row.requireText("merchant_id"),
                                                         capturedAmount: captured ? try row.requireInt("amount") : 0,
                                                         amountRefunded: captured ? try row.requireInt("amount_refunded") : 0)
            }
            let resolutions = try await conn.query("SELECT id, pending_entry_id FROM journal_entries WHERE pending_entry_id IS NOT NULL", []).map {
                (resolving: try $0.requireText("id"), pending: try $0.requireText("pending_entry_id"))
            }
            return LedgerVerification.verify(postings: postings, storedBalances: stored, payments: payments, pendingResolutions: resolutions)
        }
    }
}
