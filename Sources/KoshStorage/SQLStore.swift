import KoshCore

/// The gateway's storage port over either database.
public struct SQLStore: GatewayStore {
    public let db: any SQLDatabase

    public init(db: any SQLDatabase) {
        self.db = db
    }

    public func transaction<T: Sendable>(_ body: (any StoreTransaction) async throws -> T) async throws -> T {
        try await db.transaction { conn in
            let tx = SQLStoreTransaction(conn: conn)
            let result = try await body(tx)
            try await tx.flush()
            return result
        }
    }
}

public final class SQLStoreTransaction: StoreTransaction {
    public let conn: any SQLConnection
    /// Balance changes of this transaction, applied at its end in account order: every
    /// transaction locks balance rows last and in the same order, so two transactions can
    /// never deadlock on them (PostgreSQL), and each account row is written once.
    private var balanceDeltas: [LedgerBalances.Key: LedgerBalances.Balance] = [:]
    /// Audit events and journal entries of this transaction, written at its end with one
    /// multi-row INSERT per table (`flush`). Nothing reads audit events back inside a
    /// transaction; journal entries are found here first by `journalEntry(id:)`.
    private var pendingEvents: [PaymentEventRecord] = []
    private var pendingEntries: [JournalEntry] = []
    /// Per merchant, read once per transaction by the outbox (`outboxRecipients`).
    var outboxRecipientsByMerchant: [String: OutboxRecipients] = [:]

    /// Most rows one multi-row INSERT writes (keeps binds far below both databases' limits).
    static let maximumRowsPerInsert = 100

    public init(conn: any SQLConnection) { self.conn = conn }

    /// Writes what this transaction buffered: audit events, journal entries and postings, then
    /// the balances. `SQLStore.transaction` calls it before commit.
    public func flush() async throws {
        let events = pendingEvents
        pendingEvents = []
        try await insertRows(events, into: "payment_events") { e in
            ["id": SQLValue(e.id), "merchant_id": SQLValue(e.merchantID), "entity_type": .text(e.entityType), "entity_id": .text(e.entityID),
             "event": .text(e.event), "from_state": SQLValue(e.fromState), "to_state": .text(e.toState), "created_at": .int(e.createdAt)]
        }
        let entries = pendingEntries
        pendingEntries = []
        try await insertRows(entries, into: "journal_entries") { entry in
            ["id": SQLValue(entry.id), "kind": .text(entry.kind.rawValue), "phase": .text(entry.phase.rawValue),
             "pending_entry_id": SQLValue(entry.pendingEntryID), "payment_id": SQLValue(entry.paymentID),
             "refund_id": SQLValue(entry.refundID), "created_at": .int(entry.createdAt)]
        }
        let postings = entries.flatMap { entry in entry.postings.enumerated().map { (entry.id, Int64($0.offset), $0.element) } }
        try await insertRows(postings, into: "postings") { entryID, seq, posting in
            ["entry_id": .text(entryID), "seq": .int(seq), "account": .text(posting.account.key),
             "currency": .text(posting.currency.rawValue), "amount": .int(posting.amount)]
        }
        try await flushBalances()
    }

    /// Rows each account's running balance is spread over (`ledger_accounts.stripe`, summed on
    /// read). Hot accounts get a transaction of their own per stripe instead of one at a time.
    public static let balanceStripes: Int64 = 16

    /// Writes the accumulated balance changes in account order, one statement, all to one
    /// stripe picked at random (so two transactions still lock rows in the same order).
    func flushBalances() async throws {
        let deltas = balanceDeltas.sorted { $0.key < $1.key }.filter { $0.value != LedgerBalances.Balance() }
        balanceDeltas = [:]
        let stripe = Int64.random(in: 0..<Self.balanceStripes)
        try await insertRows(deltas, into: "ledger_accounts",
                             then: """
                                 ON CONFLICT (account, currency, stripe) DO UPDATE SET posted = ledger_accounts.posted + excluded.posted,
                                     pending = ledger_accounts.pending + excluded.pending
                                 """) { key, delta in
            ["account": .text(key.account), "currency": .text(key.currency.rawValue), "stripe": .int(stripe),
             "posted": .int(delta.posted), "pending": .int(delta.pending)]
        }
    }

    /// `INSERT INTO table (…) VALUES (…), (…) then` of one record per item, at most
    /// `maximumRowsPerInsert` rows per statement.
    func insertRows<Item>(_ items: [Item], into table: String, then suffix: String = "",
                          _ record: (Item) -> SQLRecord) async throws {
        for chunk in items.chunks(of: Self.maximumRowsPerInsert) {
            let (insert, binds) = SQLRecord.insert(into: table, chunk.map(record))
            try await conn.query(suffix.isEmpty ? insert : insert + "\n" + suffix, binds)
        }
    }

    /// `(?, ?), (?, ?)` for `rows` rows of `columns` values.
    static func placeholders(rows: Int, columns: Int) -> String {
        let row = "(" + Array(repeating: "?", count: columns).joined(separator: ", ") + ")"
        return Array(repeating: row, count: rows).joined(separator: ", ")
    }

    var forUpdate: String { conn.dialect.forUpdate }

    // MARK: Merchants

    public func merchant(id: ID<Merchant>) async throws -> Merchant? {
        try await conn.query("SELECT * FROM merchants WHERE id = ?", [SQLValue(id)]).first.map(Self.merchant)
    }

    static func merchant(_ row: SQLRow) throws -> Merchant {
        Merchant(id: ID(try row.requireText("id")), name: try row.requireText("name"),
                 mode: Mode(rawValue: try row.requireText("mode")) ?? .test,
                 defaultMDRBasisPoints: try row.requireInt("default_mdr_bps"), createdAt: try row.requireInt("created_at"),
                 lateAuthorization: LateAuthorizationPolicy(rawValue: row.text("late_authorization") ?? "") ?? .refund,
                 routePreference: (row.text("route_preference") ?? "").split(separator: ",").map(String.init),
                 feeRates: feeRates(row.text("fee_rates")),
                 capture: CaptureSettings(automatic: (row.int("auto_capture") ?? 0) != 0,
                                          windowSeconds: min(max(row.int("capture_window_seconds") ?? CaptureSettings.defaultWindowSeconds,
                                                                 CaptureSettings.windowRange.lowerBound), CaptureSettings.windowRange.upperBound)),
                 checkout: CheckoutSettings(origins: CheckoutSettings.origins(fromText: row.text("checkout_origins")),
                                            upiCollect: (row.int("upi_collect") ?? 0) != 0))
    }

    // MARK: Orders

    public func insertOrder(_ order: Order) async throws {
        let record: SQLRecord = [
            "id": SQLValue(order.id), "merchant_id": SQLValue(order.merchantID), "amount": .int(order.amount),
            "currency": .text(order.currency.rawValue), "receipt": SQLValue(order.receipt),
            "created_at": SQLValue(order.createdAt), "payment_capture": SQLValue(order.paymentCapture.map { Int64($0 ? 1 : 0) }),
        ] + Self.updatableColumns(order)
        try await conn.query(record.insertSQL(into: "orders"), record.binds)
    }

    /// The columns `updateOrder` writes; an insert writes these and those fixed at creation.
    static func updatableColumns(_ order: Order) -> SQLRecord {
        ["amount_paid": .int(order.machine.amountPaid), "status": .text(order.machine.state.rawValue),
         "attempts": .int(Int64(order.machine.attempts)), "notes": .text(order.notes.storageText)]
    }

    public func order(id: ID<Order>, merchantID: ID<Merchant>?, forUpdate lock: Bool) async throws -> Order? {
        var sql = "SELECT * FROM orders WHERE id = ?"
        var binds: [SQLValue] = [SQLValue(id)]
        if let merchantID {
            sql += " AND merchant_id = ?"
            binds.append(SQLValue(merchantID))
        }
        if lock { sql += forUpdate }
        return try await conn.query(sql, binds).first.map(Self.order)
    }

    public func updateOrder(_ order: Order) async throws {
        let record = Self.updatableColumns(order)
        try await conn.query(record.updateSQL("orders") + " WHERE id = ?", record.binds + [SQLValue(order.id)])
    }

    public func orders(merchantID: ID<Merchant>, page: Page) async throws -> [Order] {
        let (sql, binds) = Self.pageQuery("orders", dialect: conn.dialect, merchantID: merchantID.rawValue, extra: nil, page: page)
        return try await conn.query(sql, binds).map(Self.order)
    }

    static func order(_ row: SQLRow) throws -> Order {
        guard let currency = Currency(code: try row.requireText("currency")),
              let state = OrderState(rawValue: try row.requireText("status")) else { throw StorageError.corrupt("order") }
        return Order(id: ID(try row.requireText("id")), merchantID: ID(try row.requireText("merchant_id")), currency: currency,
                     receipt: row.text("receipt"), notes: Notes(storageText: try row.requireText("notes")),
                     machine: OrderMachine(amount: try row.requireInt("amount"), state: state, amountPaid: try row.requireInt("amount_paid"),
                                           attempts: Int(try row.requireInt("attempts"))),
                     createdAt: try row.requireSeconds("created_at"), paymentCapture: row.int("payment_capture").map { $0 != 0 })
    }

    /// Razorpay's collection query: newest first, `from`/`to` inclusive, then `skip` and `count`.
    static func pageQuery(_ table: String, dialect: SQLDialect, merchantID: String, extra: (String, SQLValue)?, page: Page) -> (String, [SQLValue]) {
        var sql = "SELECT * FROM \(table) WHERE merchant_id = ?"
        var binds: [SQLValue] = [SQLValue(merchantID)]
        if let (column, value) = extra {
            sql += " AND \(column) = ?"
            binds.append(value)
        }
        if let from = page.from {
            sql += " AND created_at >= ?"
            binds.append(.int(from))
        }
        if let to = page.to {
            sql += " AND created_at <= ?"
            binds.append(.int(to))
        }
        // IDs begin with their creation time in ms, so this is newest first to the millisecond.
        sql += " ORDER BY created_at DESC, id\(dialect.byteOrder) DESC LIMIT ? OFFSET ?"
        binds.append(.int(Int64(page.count)))
        binds.append(.int(Int64(page.skip)))
        return (sql, binds)
    }

    // MARK: Payments

    public func insertPayment(_ p: Payment) async throws {
        let record: SQLRecord = [
            "id": SQLValue(p.id), "merchant_id": SQLValue(p.merchantID), "order_id": SQLValue(p.orderID), "amount": .int(p.amount),
            "currency": .text(p.currency.rawValue), "method": .text(p.method.rawValue), "email": SQLValue(p.email),
            "contact": SQLValue(p.contact), "description": SQLValue(p.description),
            "flow": .text(p.flow.rawValue), "created_at": SQLValue(p.createdAt), "card_id": SQLValue(p.card?.id),
            "bank": SQLValue(p.bank), "wallet": SQLValue(p.wallet), "callback_url": SQLValue(p.callbackURL),
        ] + Self.updatableColumns(p)
        try await conn.query(record.insertSQL(into: "payments"), record.binds)
    }

    /// The columns `updatePayment` writes; an insert writes these and those fixed at creation.
    static func updatableColumns(_ p: Payment) -> SQLRecord {
        let failure = p.machine.failure
        return [
            "status": .text(p.state.rawValue),
            "amount_refunded": .int(p.machine.amountRefunded),
            "fee": SQLValue(p.machine.fee?.total),
            "tax": SQLValue(p.machine.fee?.tax),
            "error_code": SQLValue(failure?.code),
            "error_description": SQLValue(failure?.description),
            "error_source": SQLValue(failure?.source),
            "error_step": SQLValue(failure?.step),
            "error_reason": SQLValue(failure?.reason),
            "rail_reference": SQLValue(p.railReference),
            "authorization_entry_id": SQLValue(p.authorizationEntryID),
            "submitted_at_ms": SQLValue(p.submittedAt),
            "authorized_at": SQLValue(p.authorizedAt),
            "captured_at": SQLValue(p.capturedAt),
            "next_check_at": SQLValue(p.nextCheckAt),
            "version": .int(p.version),
            "rail": .text(p.rail),
            "upi_link": SQLValue(p.upiLink),
            "auto_refunded": .int(p.autoRefunded ? 1 : 0),
            "vpa": SQLValue(p.vpa),
            "auth_code": SQLValue(p.authCode),
            "notes": .text(p.notes.storageText),
            "capture_action": SQLValue(p.captureAction?.rawValue),
            "capture_due_at": SQLValue(p.captureDueAt),
        ]
    }

    public func payment(id: ID<Payment>, merchantID: ID<Merchant>?, forUpdate lock: Bool) async throws -> Payment? {
        var sql = "SELECT * FROM payments WHERE id = ?"
        var binds: [SQLValue] = [SQLValue(id)]
        if let merchantID {
            sql += " AND merchant_id = ?"
            binds.append(SQLValue(merchantID))
        }
        if lock { sql += forUpdate }
        return try await payments(conn.query(sql, binds)).first
    }

    public func updatePayment(_ p: Payment) async throws {
        let record = Self.updatableColumns(p)
        let rows = try await conn.query(record.updateSQL("payments") + " WHERE id = ? AND version < ? RETURNING id",
                                        record.binds + [SQLValue(p.id), .int(p.version)])
        guard rows.count == 1 else { throw StorageError.concurrentUpdate("payment \(p.id)") }
    }

    public func payments(merchantID: ID<Merchant>, orderID: ID<Order>?, page: Page) async throws -> [Payment] {
        let (sql, binds) = Self.pageQuery("payments", dialect: conn.dialect, merchantID: merchantID.rawValue, extra: orderID.map { ("order_id", SQLValue($0)) }, page: page)
        return try await payments(conn.query(sql, binds))
    }

    public func livePaymentCount(orderID: ID<Order>) async throws -> Int {
        let rows = try await conn.query("""
            SELECT COUNT(*) AS n FROM payments WHERE order_id = ? AND \(PaymentStatesSQL.holdsOrder)
            """, [SQLValue(orderID)])
        return Int(rows.first?.int("n") ?? 0)
    }

    public func paymentsDueForCheck(now: UnixMillis, limit: Int) async throws -> [Payment] {
        let due = try await conn.query("""
            SELECT * FROM payments WHERE next_check_at IS NOT NULL AND next_check_at <= ? AND \(PaymentStatesSQL.watched)
            ORDER BY next_check_at LIMIT ?
            """, [SQLValue(now), .int(Int64(limit))])
        return try await payments(due)
    }

    static func payment(_ row: SQLRow) throws -> Payment {
        guard let currency = Currency(code: try row.requireText("currency")),
              let state = PaymentState(rawValue: try row.requireText("status")),
              let method = PaymentMethod(rawValue: try row.requireText("method")),
              let flow = UPIFlow(rawValue: row.text("flow") ?? UPIFlow.collect.rawValue) else { throw StorageError.corrupt("payment") }
        var failure: PaymentFailure?
        if let code = row.text("error_code") {
            failure = PaymentFailure(code: code, description: row.text("error_description") ?? "", source: row.text("error_source") ?? "",
                                     step: row.text("error_step") ?? "", reason: row.text("error_reason") ?? "")
        }
        var fee: FeeBreakdown?
        if let total = row.int("fee"), let tax = row.int("tax") {
            fee = FeeBreakdown(base: total - tax, tax: tax)
        }
        let machine = PaymentMachine(amount: try row.requireInt("amount"), state: state,
                                     amountRefunded: try row.requireInt("amount_refunded"), failure: failure, fee: fee)
        return Payment(id: ID(try row.requireText("id")), merchantID: ID(try row.requireText("merchant_id")), orderID: ID(try row.requireText("order_id")),
                       currency: currency, method: method, vpa: row.text("vpa"), email: row.text("email"),
                       contact: row.text("contact"), description: row.text("description"),
                       notes: Notes(storageText: try row.requireText("notes")), machine: machine, rail: try row.requireText("rail"),
                       flow: flow, upiLink: row.text("upi_link"), autoRefunded: (row.int("auto_refunded") ?? 0) != 0,
                       railReference: row.text("rail_reference"), authorizationEntryID: row.text("authorization_entry_id"),
                       createdAt: try row.requireSeconds("created_at"), authorizedAt: row.seconds("authorized_at"),
                       capturedAt: row.seconds("captured_at"), submittedAt: row.millis("submitted_at_ms"),
                       nextCheckAt: row.millis("next_check_at"), version: try row.requireInt("version"),
                       authCode: row.text("auth_code"), captureAction: row.text("capture_action").flatMap(CaptureAction.init(rawValue:)),
                       captureDueAt: row.millis("capture_due_at"), bank: row.text("bank"), wallet: row.text("wallet"),
                       callbackURL: row.text("callback_url"))
    }

    // MARK: Refunds

    public func insertRefund(_ r: Refund) async throws {
        let record: SQLRecord = [
            "id": SQLValue(r.id), "merchant_id": SQLValue(r.merchantID), "payment_id": SQLValue(r.paymentID), "amount": .int(r.amount),
            "currency": .text(r.currency.rawValue), "receipt": SQLValue(r.receipt),
            "speed_requested": .text(r.speedRequested), "created_at": SQLValue(r.createdAt),
        ] + Self.updatableColumns(r)
        try await conn.query(record.insertSQL(into: "refunds"), record.binds)
    }

    /// The columns `updateRefund` writes; an insert writes these and those fixed at creation.
    static func updatableColumns(_ r: Refund) -> SQLRecord {
        ["status": .text(r.machine.state.rawValue), "rail_reference": SQLValue(r.railReference),
         "processed_at": SQLValue(r.processedAt), "version": .int(r.version), "notes": .text(r.notes.storageText)]
    }

    public func refund(id: ID<Refund>, merchantID: ID<Merchant>?, forUpdate lock: Bool) async throws -> Refund? {
        var sql = "SELECT * FROM refunds WHERE id = ?"
        var binds: [SQLValue] = [SQLValue(id)]
        if let merchantID {
            sql += " AND merchant_id = ?"
            binds.append(SQLValue(merchantID))
        }
        if lock { sql += forUpdate }
        return try await conn.query(sql, binds).first.map(Self.refund)
    }

    public func updateRefund(_ r: Refund) async throws {
        let record = Self.updatableColumns(r)
        let rows = try await conn.query(record.updateSQL("refunds") + " WHERE id = ? AND version < ? RETURNING id",
                                        record.binds + [SQLValue(r.id), .int(r.version)])
        guard rows.count == 1 else { throw StorageError.concurrentUpdate("refund \(r.id)") }
    }

    public func refunds(merchantID: ID<Merchant>, paymentID: ID<Payment>?, page: Page) async throws -> [Refund] {
        let (sql, binds) = Self.pageQuery("refunds", dialect: conn.dialect, merchantID: merchantID.rawValue, extra: paymentID.map { ("payment_id", SQLValue($0)) }, page: page)
        return try await conn.query(sql, binds).map(Self.refund)
    }

    public func pendingRefunds(createdBefore: UnixSeconds, dueBy: UnixMillis, limit: Int) async throws -> [Refund] {
        try await conn.query("""
            SELECT * FROM refunds WHERE status = 'pending' AND created_at <= ? AND COALESCE(next_attempt_at, 0) <= ?
            ORDER BY COALESCE(next_attempt_at, 0), created_at LIMIT ?
            """, [SQLValue(createdBefore), SQLValue(dueBy), .int(Int64(limit))]).map(Self.refund)
    }

    public func postponeRefund(id: ID<Refund>, reason: String, next: (Int64) -> UnixMillis) async throws {
        guard let row = try await conn.query("SELECT attempts FROM refunds WHERE id = ?\(conn.dialect.forUpdate)", [SQLValue(id)]).first else { return }
        let attempts = (row.int("attempts") ?? 0) + 1
        try await conn.query("UPDATE refunds SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                             [.int(attempts), SQLValue(next(attempts)), .text(Masking.text(reason)), SQLValue(id)])
    }

    static func refund(_ row: SQLRow) throws -> Refund {
        guard let currency = Currency(code: try row.requireText("currency")),
              let state = RefundState(rawValue: try row.requireText("status")) else { throw StorageError.corrupt("refund") }
        return Refund(id: ID(try row.requireText("id")), merchantID: ID(try row.requireText("merchant_id")), paymentID: ID(try row.requireText("payment_id")),
                      currency: currency, notes: Notes(storageText: try row.requireText("notes")), receipt: row.text("receipt"),
                      speedRequested: try row.requireText("speed_requested"),
                      machine: RefundMachine(amount: try row.requireInt("amount"), state: state), railReference: row.text("rail_reference"),
                      createdAt: try row.requireSeconds("created_at"), processedAt: row.seconds("processed_at"), version: try row.requireInt("version"))
    }

    // MARK: Payment attempts

    public func insertAttempt(_ a: PaymentAttempt) async throws {
        let record: SQLRecord = [
            "id": SQLValue(a.id), "payment_id": SQLValue(a.paymentID), "merchant_id": SQLValue(a.merchantID), "seq": .int(a.seq),
            "connector": .text(a.connector), "reason": .text(a.reason), "created_at": SQLValue(a.createdAt),
        ] + Self.updatableColumns(a)
        try await conn.query(record.insertSQL(into: "payment_attempts"), record.binds)
    }

    /// The columns `updateAttempt` writes; an insert writes these and those fixed at creation.
    static func updatableColumns(_ a: PaymentAttempt) -> SQLRecord {
        ["status": .text(a.status.rawValue), "upstream_reference": SQLValue(a.upstreamReference), "error_code": SQLValue(a.errorCode),
         "error_description": SQLValue(a.errorDescription), "latency_ms": SQLValue(a.latencyMillis), "updated_at": SQLValue(a.updatedAt)]
    }

    public func updateAttempt(_ a: PaymentAttempt) async throws {
        let record = Self.updatableColumns(a)
        try await conn.query(record.updateSQL("payment_attempts") + " WHERE id = ?", record.binds + [SQLValue(a.id)])
    }

    public func attempts(paymentID: ID<Payment>) async throws -> [PaymentAttempt] {
        try await conn.query("SELECT * FROM payment_attempts WHERE payment_id = ? ORDER BY seq", [SQLValue(paymentID)]).map { row in
            guard let status = PaymentAttempt.Status(rawValue: try row.requireText("status")) else { throw StorageError.corrupt("payment attempt") }
            return PaymentAttempt(id: ID(try row.requireText("id")), paymentID: ID(try row.requireText("payment_id")),
                                  merchantID: ID(try row.requireText("merchant_id")), seq: try row.requireInt("seq"),
                                  connector: try row.requireText("connector"), reason: try row.requireText("reason"), status: status,
                                  upstreamReference: row.text("upstream_reference"), errorCode: row.text("error_code"),
                                  errorDescription: row.text("error_description"), latencyMillis: row.int("latency_ms"),
                                  createdAt: try row.requireMillis("created_at"), updatedAt: try row.requireMillis("updated_at"))
        }
    }

    // MARK: Events

    public func appendEvent(_ e: PaymentEventRecord) async throws {
        pendingEvents.append(e)
    }

    public func events(entityID: String) async throws -> [PaymentEventRecord] {
        try await flush()  // this transaction's own events too
        return try await conn.query("SELECT * FROM payment_events WHERE entity_id = ? ORDER BY created_at, id", [.text(entityID)]).map { row in
            PaymentEventRecord(id: try row.requireText("id"), merchantID: try row.requireText("merchant_id"),
                               entityType: try row.requireText("entity_type"), entityID: try row.requireText("entity_id"),
                               event: try row.requireText("event"), fromState: row.text("from_state"), toState: try row.requireText("to_state"),
                               createdAt: try row.requireInt("created_at"))
        }
    }

    // MARK: Ledger

    public func post(_ entry: JournalEntry) async throws {
        pendingEntries.append(entry)
        for posting in entry.postings {
            let delta = LedgerBalances.effect(phase: entry.phase, amount: posting.amount)
            let key = LedgerBalances.Key(account: posting.account.key, currency: posting.currency)
            balanceDeltas[key, default: LedgerBalances.Balance()].posted += delta.posted
            balanceDeltas[key, default: LedgerBalances.Balance()].pending += delta.pending
        }
    }

    public func journalEntry(id: String) async throws -> JournalEntry? {
        if let entry = pendingEntries.first(where: { $0.id == id }) { return entry }
        guard let row = try await conn.query("SELECT * FROM journal_entries WHERE id = ?", [.text(id)]).first else { return nil }
        let postingRows = try await conn.query("SELECT * FROM postings WHERE entry_id = ? ORDER BY seq", [.text(id)])
        let postings = try postingRows.map { row in
            guard let currency = Currency(code: try row.requireText("currency")),
                  let account = LedgerAccount(key: try row.requireText("account")) else { throw StorageError.corrupt("posting") }
            return Posting(account, try row.requireInt("amount"), currency)
        }
        guard let kind = EntryKind(rawValue: try row.requireText("kind")),
              let phase = EntryPhase(rawValue: try row.requireText("phase")) else { throw StorageError.corrupt("journal entry") }
        return try JournalEntry(id: id, kind: kind, phase: phase, pendingEntryID: row.text("pending_entry_id"),
                                paymentID: row.text("payment_id"), refundID: row.text("refund_id"), postings: postings,
                                createdAt: try row.requireInt("created_at"))
    }
}

extension LedgerAccount {
    /// Parses `key` back into an account.
    public init?(key: String) {
        let parts = key.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        switch (parts.first, parts.count) {
        case ("merchant", 3) where parts[2] == "balance": self = .merchantBalance(merchantID: parts[1])
        case ("rail", 3) where parts[2] == "clearing": self = .railClearing(rail: parts[1])
        case ("rail", 3) where parts[2] == "refunds_in_transit": self = .refundsInTransit(rail: parts[1])
        case ("platform", 2) where parts[1] == "fee_revenue": self = .feeRevenue
        case ("platform", 2) where parts[1] == "gst_payable": self = .gstPayable
        default: return nil
        }
    }
}

extension Array {
    /// Consecutive slices of at most `size` elements.
    func chunks(of size: Int) -> [ArraySlice<Element>] {
        precondition(size > 0)
        return stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}

/// A refund still pending after tries that did not settle (`kosh refunds stuck`).
public struct StuckRefund: Sendable, Hashable {
    public let id: String
    public let paymentID: String
    public let merchantID: String
    public let amount: Int64
    public let currency: String
    public let attempts: Int64
    public let nextAttemptAt: Int64?
    public let lastError: String?
    public let autoRefund: Bool
    public let createdAt: Int64
}

extension SQLStore {
    /// Pending refunds tried at least `minimumAttempts` times without settling, oldest first:
    /// what an operator must look at (a rail that keeps refusing an auto-refund is retried
    /// hourly for ever; this is where it shows).
    public func stuckRefunds(minimumAttempts: Int64, limit: Int = 100) async throws -> [StuckRefund] {
        precondition(limit > 0 && limit <= 1_000)
        return try await db.transaction { conn in
            try await conn.query("""
                SELECT r.id, r.payment_id, r.merchant_id, r.amount, r.currency, r.attempts, r.next_attempt_at, r.last_error, r.created_at,
                    p.auto_refunded
                FROM refunds r JOIN payments p ON p.id = r.payment_id
                WHERE r.status = 'pending' AND r.attempts >= ? ORDER BY r.created_at, r.id LIMIT ?
                """, [.int(minimumAttempts), .int(Int64(limit))]).map { row in
                StuckRefund(id: try row.requireText("id"), paymentID: try row.requireText("payment_id"),
                            merchantID: try row.requireText("merchant_id"), amount: try row.requireInt("amount"),
                            currency: try row.requireText("currency"), attempts: try row.requireInt("attempts"),
                            nextAttemptAt: row.int("next_attempt_at"), lastError: row.text("last_error"),
                            autoRefund: row.int("auto_refunded") == 1, createdAt: try row.requireInt("created_at"))
            }
        }
    }
}
