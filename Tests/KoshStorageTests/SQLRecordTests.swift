import KoshCore
@testable import KoshStorage
import KoshTesting
import Testing

/// Statements built from (column, value) lists, and the rows they write read back whole.
@Suite("SQL records", .serialized, .timeLimit(.minutes(3)))
struct SQLRecordTests {
    @Test func statementText() {
        var record: SQLRecord = ["id": .text("a"), "amount": .int(5), "note": .null]
        #expect(record.insertSQL(into: "t") == "INSERT INTO t (id, amount, note) VALUES (?, ?, ?)")
        #expect(record.updateSQL("t") == "UPDATE t SET id = ?, amount = ?, note = ?")
        #expect(record.binds == [.text("a"), .int(5), .null])

        record.append("at", sql: "now()")
        #expect(record.insertSQL(into: "t") == "INSERT INTO t (id, amount, note, at) VALUES (?, ?, ?, now())")
        #expect(record.binds == [.text("a"), .int(5), .null])

        let joined: SQLRecord = ["id": .text("b")] + ["status": .text("s"), "version": .int(2)]
        #expect(joined.insertSQL(into: "t") == "INSERT INTO t (id, status, version) VALUES (?, ?, ?)")
        #expect(joined.binds == [.text("b"), .text("s"), .int(2)])
    }

    @Test func multiRowInsert() {
        let rows: [SQLRecord] = [["k": .text("a"), "v": .int(1)], ["k": .text("b"), "v": .null]]
        let (sql, binds) = SQLRecord.insert(into: "t", rows)
        #expect(sql == "INSERT INTO t (k, v) VALUES (?, ?), (?, ?)")
        #expect(binds == [.text("a"), .int(1), .text("b"), .null])
    }

    /// The text depends on the columns only: a nil is bound as NULL, never left out, so each
    /// call site keeps one prepared statement.
    @Test func textDoesNotDependOnValues() {
        let some: SQLRecord = ["a": SQLValue("x" as String?), "b": .int(1)]
        let none: SQLRecord = ["a": SQLValue(nil as String?), "b": .int(2)]
        #expect(some.insertSQL(into: "t") == none.insertSQL(into: "t"))
        #expect(some.updateSQL("t") == none.updateSQL("t"))
    }

    /// Every column an insert or update writes comes back as written: a column and its value
    /// can no longer be paired wrongly without this failing.
    @Test("orders, payments, attempts and refunds round-trip through insert and update", arguments: TestDatabases.all)
    func roundTrip(db: String) async throws {
        let services = try await TestDatabases.services(db)
        let merchant = try await services.merchants.create(name: "Round Trip").merchant
        var order = Order(id: "order_rt1", merchantID: merchant.id, currency: .inr, receipt: "rcpt-1",
                          notes: Notes([(key: "k", value: "v")]), machine: OrderMachine(amount: 50_000), createdAt: 1_700_000_000)
        var payment = Payment(id: "pay_rt1", merchantID: merchant.id, orderID: order.id, currency: .inr, method: .upi,
                              vpa: "ravi@okhdfcbank", email: "r@example.com", contact: "+919900000000", description: "tea",
                              notes: Notes([(key: "n", value: "1")]), machine: PaymentMachine(amount: 50_000), rail: "test",
                              flow: .intent, upiLink: "upi://pay?pa=x", createdAt: 1_700_000_001, submittedAt: 1_700_000_001_500,
                              nextCheckAt: 1_700_000_003)
        var attempt = PaymentAttempt(id: "att_rt1", paymentID: payment.id, merchantID: merchant.id, seq: 1, connector: "test",
                                     reason: "primary", status: .initiated, createdAt: 1_700_000_001, updatedAt: 1_700_000_001)
        var refund = Refund(id: "rfnd_rt1", merchantID: merchant.id, paymentID: payment.id, currency: .inr,
                            notes: Notes([(key: "why", value: "late")]), receipt: "r-1", speedRequested: "optimum",
                            machine: RefundMachine(amount: 1_000), createdAt: 1_700_000_010)
        try await services.store.transaction { tx in
            try await tx.insertOrder(order)
            try await tx.insertPayment(payment)
            try await tx.insertAttempt(attempt)
            try await tx.insertRefund(refund)
        }
        try await expectStored(services.store, order, payment, attempt, refund)

        // Every column the updates write, changed.
        order.machine = OrderMachine(amount: 50_000, state: .paid, amountPaid: 50_000, attempts: 2)
        payment.machine = PaymentMachine(amount: 50_000, state: .failed, amountRefunded: 1_000,
                                         failure: PaymentFailure(code: "BAD_REQUEST_ERROR", description: "declined", source: "bank",
                                                                 step: "payment_authorization", reason: "payment_declined"),
                                         fee: FeeBreakdown(base: 1_000, tax: 180))
        payment.vpa = "asha@ybl"
        payment.upiLink = nil
        payment.autoRefunded = true
        payment.rail = "betapay"
        payment.railReference = "ref-1"
        payment.authorizationEntryID = "jrnl_auth"
        payment.authorizedAt = 1_700_000_004
        payment.capturedAt = 1_700_000_005
        payment.submittedAt = 1_700_000_002_000
        payment.nextCheckAt = nil
        payment.version = 3
        attempt.status = .rejected
        attempt.upstreamReference = "up-1"
        attempt.errorCode = "Z9"
        attempt.errorDescription = "insufficient funds"
        attempt.latencyMillis = 42
        attempt.updatedAt = 1_700_000_002
        refund.machine = RefundMachine(amount: 1_000, state: .processed)
        refund.railReference = "rref-1"
        refund.processedAt = 1_700_000_020
        refund.version = 2
        try await services.store.transaction { tx in
            try await tx.updateOrder(order)
            try await tx.updatePayment(payment)
            try await tx.updateAttempt(attempt)
            try await tx.updateRefund(refund)
        }
        try await expectStored(services.store, order, payment, attempt, refund)
        try await services.db.close()
    }

    private func expectStored(_ store: SQLStore, _ order: Order, _ payment: Payment, _ attempt: PaymentAttempt,
                              _ refund: Refund) async throws {
        let stored = try await store.transaction { tx in
            (try await tx.order(id: order.id, merchantID: order.merchantID, forUpdate: false),
             try await tx.payment(id: payment.id, merchantID: payment.merchantID, forUpdate: false),
             try await tx.attempts(paymentID: payment.id),
             try await tx.refund(id: refund.id, merchantID: refund.merchantID, forUpdate: false))
        }
        #expect(stored.0 == order)
        #expect(stored.1 == payment)
        #expect(stored.2 == [attempt])
        #expect(stored.3 == refund)
    }
}
