import KoshCore
import Synchronization

/// Everything an `InMemoryStore` holds, as plain values.
public struct InMemoryState: Sendable {
    public var merchants: [ID<Merchant>: Merchant] = [:]
    public var orders: [ID<Order>: Order] = [:]
    public var payments: [ID<Payment>: Payment] = [:]
    public var refunds: [ID<Refund>: Refund] = [:]
    public var cards: [ID<Card>: Card] = [:]
    public var cardPayments: [ID<Payment>: CardPayment] = [:]
    public var customers: [ID<Customer>: Customer] = [:]
    public var tokens: [ID<CardToken>: CardToken] = [:]
    public var qrCodes: [ID<UPIQRCode>: UPIQRCode] = [:]
    public var qrPayments: [ID<Payment>: QRPaymentLink] = [:]
    /// Unsettled tries of a refund: count, next try (ms), last reason.
    public var refundRetries: [ID<Refund>: (attempts: Int64, next: UnixMillis, reason: String)] = [:]
    public var attempts: [ID<Payment>: [PaymentAttempt]] = [:]
    public var events: [PaymentEventRecord] = []
    public var outbox: [OutboxEvent] = []
    /// Who hears of each merchant's events (set by tests), and what the outbox planned for them.
    public var recipients: [String: OutboxRecipients] = [:]
    public var deliveries: [(event: String, endpoint: String)] = []
    public var notifications: [PlannedNotification] = []
    public var entries: [JournalEntry] = []
    public var balances = LedgerBalances()
    public var idempotency: [String: (hash: String, token: String?, status: Int?, body: String?)] = [:]
    /// Insertion order, for listings (newest first, as the SQL store lists).
    var sequence: [String: Int] = [:]
    var counter = 0

    mutating func stamp(_ id: String) {
        counter += 1
        sequence[id] = counter
    }

    func listed<T>(_ values: some Sequence<T>, id: (T) -> String, createdAt: (T) -> Int64, page: Page) -> [T] {
        values.filter { value in
            (page.from.map { createdAt(value) >= $0 } ?? true) && (page.to.map { createdAt(value) <= $0 } ?? true)
        }
        .sorted { (sequence[id($0)] ?? 0) > (sequence[id($1)] ?? 0) }
        .dropFirst(page.skip).prefix(page.count).map { $0 }
    }
}

/// A `GatewayStore` in memory, for flow tests: transactions run one at a time on a copy of
/// the state, which replaces the state when the body returns and is dropped when it throws
/// (a rollback). It also keeps idempotency keys. Every write is checked as the SQL stores
/// check it (a payment's version, a journal entry's balance).
public final class InMemoryStore: GatewayStore, IdempotencyKeys, Sendable {
    let state: Mutex<InMemoryState>
    let gate = TransactionGate()
    /// When set, the next transaction throws this after its body ran (nothing is written).
    let injectedFailure = Mutex<(any Error)?>(nil)

    public init(merchants: [Merchant] = []) {
        var state = InMemoryState()
        for merchant in merchants { state.merchants[merchant.id] = merchant }
        self.state = Mutex(state)
    }

    /// The state now (a copy).
    public var snapshot: InMemoryState { state.withLock { $0 } }

    /// What `kosh ledger verify` would say of this store's ledger.
    public func ledgerReport() -> LedgerVerification.Report {
        let state = snapshot
        let postings = state.entries.flatMap { entry in
            entry.postings.map { LedgerVerification.StoredPosting(entryID: entry.id, phase: entry.phase, kind: entry.kind, paymentID: entry.paymentID,
                                                                   account: $0.account.key, currency: $0.currency, amount: $0.amount) }
        }
        let payments = state.payments.values.filter(\.machine.isCaptured).map {
            LedgerVerification.PaymentFigures(paymentID: $0.id.rawValue, merchantID: $0.merchantID.rawValue, capturedAmount: $0.amount,
                                              amountRefunded: $0.machine.amountRefunded)
        }
        let resolutions = state.entries.compactMap { entry in entry.pendingEntryID.map { (resolving: entry.id, pending: $0) } }
        return LedgerVerification.verify(postings: postings, storedBalances: state.balances.balances, payments: payments,
                                         pendingResolutions: resolutions)
    }

    /// Sets who hears of the merchant's events.
    public func setRecipients(_ recipients: OutboxRecipients, merchantID: String) { state.withLock { $0.recipients[merchantID] = recipients } }

    /// A merchant added (or replaced) between transactions.
    public func add(_ merchant: Merchant) { state.withLock { $0.merchants[merchant.id] = merchant } }

    /// Makes the next transaction fail at commit with `error`, as a database that goes away would.
    public func failNextCommit(with error: any Error) { injectedFailure.withLock { $0 = error } }

    public func transaction<T: Sendable>(_ body: (any StoreTransaction) async throws -> T) async throws -> T {
        await gate.enter()
        let tx = InMemoryTransaction(state: state.withLock { $0 })
        do {
            let result = try await body(tx)
            if let failure = injectedFailure.withLock({ value in defer { value = nil }; return value }) { throw failure }
            let committed = tx.state
            state.withLock { $0 = committed }
            await gate.leave()
            return result
        } catch {
            await gate.leave()
            throw error
        }
    }

    // MARK: IdempotencyKeys (between transactions, as the SQL stores keep them in their own)

    func exclusively<T>(_ body: (inout InMemoryState) -> T) async -> T {
        await gate.enter()
        let result = state.withLock { body(&$0) }
        await gate.leave()
        return result
    }

    public func claim(merchantID: String, key: String, requestHash: String, now: Int64) async throws -> IdempotencyClaim {
        await exclusively { state in
            let id = "\(merchantID)/\(key)"
            guard let record = state.idempotency[id] else {
                state.counter += 1
                let token = "claim-\(state.counter)"
                state.idempotency[id] = (requestHash, token, nil, nil)
                return .claimed(token: token)
            }
            guard record.hash == requestHash else { return .mismatch }
            if let status = record.status, let body = record.body { return .replay(status: status, body: body) }
            return .inProgress(retryAfterSeconds: 1)
        }
    }

    public func complete(merchantID: String, key: String, token: String, status: Int, body: String) async throws {
        await exclusively { state in
            let id = "\(merchantID)/\(key)"
            guard let record = state.idempotency[id], record.token == token else { return }
            state.idempotency[id] = (record.hash, token, status, body)
        }
    }

    public func release(merchantID: String, key: String, token: String) async throws {
        await exclusively { state in
            let id = "\(merchantID)/\(key)"
            if state.idempotency[id]?.token == token { state.idempotency[id] = nil }
        }
    }
}

/// Lets one transaction run at a time, in arrival order.
actor TransactionGate {
    var busy = false
    var waiting: [CheckedContinuation<Void, Never>] = []

    func enter() async {
        guard busy else { busy = true; return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
    }
}

public struct InMemoryStoreError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// One transaction of an `InMemoryStore`: reads and writes its own copy of the state.
final class InMemoryTransaction: StoreTransaction {
    var state: InMemoryState

    init(state: InMemoryState) { self.state = state }

    func merchant(id: ID<Merchant>) async throws -> Merchant? { state.merchants[id] }

    func insertOrder(_ order: Order) async throws {
        guard state.orders[order.id] == nil else { throw InMemoryStoreError(description: "duplicate order \(order.id)") }
        state.orders[order.id] = order
        state.stamp(order.id.rawValue)
    }

    func order(id: ID<Order>, merchantID: ID<Merchant>?, forUpdate: Bool) async throws -> Order? {
        state.orders[id].flatMap { merchantID == nil || $0.merchantID == merchantID ? $0 : nil }
    }

    func updateOrder(_ order: Order) async throws { state.orders[order.id] = order }

    func orders(merchantID: ID<Merchant>, page: Page) async throws -> [Order] {
        state.listed(state.orders.values.filter { $0.merchantID == merchantID }, id: \.id.rawValue, createdAt: \.createdAt.value, page: page)
    }

    func insertPayment(_ payment: Payment) async throws {
        guard state.payments[payment.id] == nil else { throw InMemoryStoreError(description: "duplicate payment \(payment.id)") }
        // The unique index of the SQL stores: one payment holding an order.
        if payment.holdsOrder, state.payments.values.contains(where: { $0.orderID == payment.orderID && $0.holdsOrder }) {
            throw InMemoryStoreError(description: "unique index: a payment already holds order \(payment.orderID)")
        }
        state.payments[payment.id] = payment
        state.stamp(payment.id.rawValue)
    }

    func payment(id: ID<Payment>, merchantID: ID<Merchant>?, forUpdate: Bool) async throws -> Payment? {
        state.payments[id].flatMap { merchantID == nil || $0.merchantID == merchantID ? $0 : nil }
    }

    func updatePayment(_ payment: Payment) async throws {
        guard let stored = state.payments[payment.id], stored.version == payment.version - 1 else {
            throw InMemoryStoreError(description: "payment \(payment.id) was changed by someone else (version \(payment.version))")
        }
        state.payments[payment.id] = payment
    }

    func payments(merchantID: ID<Merchant>, orderID: ID<Order>?, page: Page) async throws -> [Payment] {
        let matching = state.payments.values.filter { $0.merchantID == merchantID && (orderID == nil || $0.orderID == orderID) }
        return state.listed(matching, id: \.id.rawValue, createdAt: \.createdAt.value, page: page)
    }

    func livePaymentCount(orderID: ID<Order>) async throws -> Int {
        state.payments.values.filter { $0.orderID == orderID && $0.holdsOrder }.count
    }

    func paymentsDueForCheck(now: UnixMillis, limit: Int) async throws -> [Payment] {
        state.payments.values
            .filter { payment in payment.nextCheckAt.map { $0 <= now } ?? false && PaymentState.watched.contains(payment.state) }
            .sorted { ($0.nextCheckAt?.value ?? 0, $0.id.rawValue) < ($1.nextCheckAt?.value ?? 0, $1.id.rawValue) }
            .prefix(limit).map { $0 }
    }

    func paymentsDueForCapture(now: UnixMillis, limit: Int) async throws -> [Payment] {
        state.payments.values
            .filter { payment in payment.captureDueAt.map { $0 <= now } ?? false && payment.state == .authorized }
            .sorted { ($0.captureDueAt?.value ?? 0, $0.id.rawValue) < ($1.captureDueAt?.value ?? 0, $1.id.rawValue) }
            .prefix(limit).map { $0 }
    }

    func insertRefund(_ refund: Refund) async throws {
        guard state.refunds[refund.id] == nil else { throw InMemoryStoreError(description: "duplicate refund \(refund.id)") }
        state.refunds[refund.id] = refund
        state.stamp(refund.id.rawValue)
    }

    func refund(id: ID<Refund>, merchantID: ID<Merchant>?, forUpdate: Bool) async throws -> Refund? {
        state.refunds[id].flatMap { merchantID == nil || $0.merchantID == merchantID ? $0 : nil }
    }

    func updateRefund(_ refund: Refund) async throws { state.refunds[refund.id] = refund }

    func refunds(merchantID: ID<Merchant>, paymentID: ID<Payment>?, page: Page) async throws -> [Refund] {
        let matching = state.refunds.values.filter { $0.merchantID == merchantID && (paymentID == nil || $0.paymentID == paymentID) }
        return state.listed(matching, id: \.id.rawValue, createdAt: \.createdAt.value, page: page)
    }

    func pendingRefunds(createdBefore: UnixSeconds, dueBy: UnixMillis, limit: Int) async throws -> [Refund] {
        state.refunds.values
            .filter { $0.machine.state == .pending && $0.createdAt <= createdBefore && (state.refundRetries[$0.id]?.next ?? 0) <= dueBy }
            .sorted { (state.refundRetries[$0.id]?.next.value ?? 0, $0.createdAt.value, $0.id.rawValue) < (state.refundRetries[$1.id]?.next.value ?? 0, $1.createdAt.value, $1.id.rawValue) }
            .prefix(limit).map { $0 }
    }

    func postponeRefund(id: ID<Refund>, reason: String, next: (Int64) -> UnixMillis) async throws {
        guard state.refunds[id] != nil else { return }
        let attempts = (state.refundRetries[id]?.attempts ?? 0) + 1
        state.refundRetries[id] = (attempts, next(attempts), reason)
    }

    func insertAttempt(_ attempt: PaymentAttempt) async throws {
        guard state.payments[attempt.paymentID] != nil else {
            throw InMemoryStoreError(description: "attempt \(attempt.id) refers to a payment not written")
        }
        state.attempts[attempt.paymentID, default: []].append(attempt)
    }

    func updateAttempt(_ attempt: PaymentAttempt) async throws {
        guard let index = state.attempts[attempt.paymentID]?.firstIndex(where: { $0.id == attempt.id }) else {
            throw InMemoryStoreError(description: "no attempt \(attempt.id)")
        }
        state.attempts[attempt.paymentID]![index] = attempt
    }

    func attempts(paymentID: ID<Payment>) async throws -> [PaymentAttempt] { state.attempts[paymentID] ?? [] }

    func appendEvent(_ event: PaymentEventRecord) async throws { state.events.append(event) }

    func outboxRecipients(merchantID: String) async throws -> OutboxRecipients { state.recipients[merchantID] ?? OutboxRecipients() }

    func writeOutbox(_ plan: OutboxPlan) async throws {
        state.outbox.append(plan.event)
        state.deliveries += plan.deliveries.map { (event: plan.event.id, endpoint: $0) }
        state.notifications += plan.notifications
    }

    func post(_ entry: JournalEntry) async throws {
        guard !state.entries.contains(where: { $0.id == entry.id }) else { throw InMemoryStoreError(description: "duplicate entry \(entry.id)") }
        state.entries.append(entry)
        state.balances.apply(entry)
    }

    func journalEntry(id: String) async throws -> JournalEntry? { state.entries.first(where: { $0.id == id }) }

    func recordIdempotentResponse(merchantID: String, key: String, token: String, status: Int, body: String) async throws {
        let id = "\(merchantID)/\(key)"
        guard let record = state.idempotency[id], record.token == token else {
            throw InMemoryStoreError(description: "the claim on \(key) was taken over")
        }
        state.idempotency[id] = (record.hash, token, status, body)
    }
}

extension StoreTransaction {
    /// Writes an event with no entities (no notifications) to the outbox as the flows do:
    /// one delivery per endpoint of its merchant subscribed to it.
    public func enqueueEvent(_ event: OutboxEvent) async throws {
        let recipients = try await outboxRecipients(merchantID: event.merchantID)
        try await writeOutbox(OutboxPlanner.plan(event, payment: nil, refund: nil, recipients: recipients))
    }
}
