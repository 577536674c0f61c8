#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Wall-clock time as a port, so tests can step it.
public protocol KoshClock: Sendable {
    /// Unix time in milliseconds.
    func nowMillis() -> Int64
}

public struct SystemClock: KoshClock {
    public init() {}
    public func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }
}

// MARK: - Rails

public struct RailPaymentRequest: Sendable, Hashable {
    public let paymentID: ID<Payment>
    public let merchantID: ID<Merchant>
    public let amount: Int64
    public let currency: Currency
    public let method: PaymentMethod
    public let vpa: String?
    /// When the payment was handed to the rail.
    public let submittedAt: UnixMillis
    public let flow: UPIFlow
    /// Who is paid (shown in the payer's app).
    public let payeeName: String
    public let description: String?
    /// Netbanking's bank, a wallet payment's wallet; where the provider sends the browser back.
    public var bank: String?
    public var wallet: String?
    public var returnURL: String?

    public init(paymentID: ID<Payment>, merchantID: ID<Merchant>, amount: Int64, currency: Currency, method: PaymentMethod, vpa: String?, submittedAt: UnixMillis,
                flow: UPIFlow = .collect, payeeName: String = "Kosh merchant", description: String? = nil) {
        self.flow = flow
        self.payeeName = payeeName
        self.description = description
        self.paymentID = paymentID
        self.merchantID = merchantID
        self.amount = amount
        self.currency = currency
        self.method = method
        self.vpa = vpa
        self.submittedAt = submittedAt
    }
}

public enum RailInitiation: Sendable, Hashable {
    /// The rail took the payment; the outcome comes later (status checks or a callback).
    /// An intent payment also gets the `upi://pay` link the payer's app pays.
    case accepted(reference: String, link: String?)
    /// The rail refused it outright.
    case rejected(PaymentFailure)
    /// The rail could not take it and surely did nothing (refused connection, 503 before
    /// any work, open breaker): safe to try another route.
    case unavailable(reason: String)
}

/// What a rail's callback said about one payment.
public struct RailCallback: Sendable, Hashable {
    public let paymentID: ID<Payment>
    public let status: RailPaymentStatus
    /// The amount the rail says moved, when it says (paise).
    public let amount: Int64?

    public init(paymentID: ID<Payment>, status: RailPaymentStatus, amount: Int64?) {
        self.paymentID = paymentID
        self.status = status
        self.amount = amount
    }
}

/// The answer of a VPA lookup (`POST /v1/payments/validate/vpa`).
public struct VPALookup: Sendable, Hashable {
    public let vpa: String
    public let valid: Bool
    public let customerName: String?

    public init(vpa: String, valid: Bool, customerName: String?) {
        self.vpa = vpa
        self.valid = valid
        self.customerName = customerName
    }
}

public enum RailPaymentStatus: Sendable, Hashable {
    case pending
    /// `payerVPA`: the address that paid, when the rail says (an intent payment's payer is
    /// chosen in their app, so Kosh learns it here).
    case authorized(reference: String, payerVPA: String? = nil)
    case failed(PaymentFailure)
}

public struct RailRefundRequest: Sendable, Hashable {
    public let refundID: ID<Refund>
    public let paymentID: ID<Payment>
    public let paymentReference: String?
    public let amount: Int64
    public let currency: Currency
    /// A wallet payment's wallet (its refunds go to that provider).
    public var wallet: String?
    /// The rail's own id of a payer-initiated payment (a QR code's), which the rail knows
    /// instead of the payment id.
    public var railTransactionID: String?

    public init(refundID: ID<Refund>, paymentID: ID<Payment>, paymentReference: String?, amount: Int64, currency: Currency) {
        self.refundID = refundID
        self.paymentID = paymentID
        self.paymentReference = paymentReference
        self.amount = amount
        self.currency = currency
    }
}

public enum RailRefundStatus: Sendable, Hashable {
    case pending
    case processed(reference: String)
    case failed(reason: String)
}

/// A payment rail (DESIGN.md §6). Every call must be safe to repeat with the same request:
/// the rail dedupes by payment / refund id.
public protocol PaymentRail: Sendable {
    var name: String { get }
    /// See the default implementation: false unless the rail runs in-process.
    var answersInProcess: Bool { get }
    /// Checks the instrument before a payment is created (e.g. a VPA's shape and handle).
    func validate(method: PaymentMethod, vpa: String?) -> KoshError?
    func initiate(_ request: RailPaymentRequest) async throws -> RailInitiation
    func status(_ request: RailPaymentRequest) async throws -> RailPaymentStatus
    func refund(_ request: RailRefundRequest) async throws -> RailRefundStatus
    /// Asks the rail who owns a VPA.
    func lookup(vpa: String) async throws -> VPALookup
    /// Verifies and reads a callback the rail sent to `/v1/rails/callbacks/<name>`.
    /// Throws `KoshError` (401) when the signature does not hold.
    func parseCallback(method: String, path: String, headers: [String: String], body: [UInt8]) throws -> RailCallback
}

extension PaymentRail {
    /// Whether the rail runs inside this process with no effect outside it, its answers a
    /// pure function of the request and the clock (the test rail). Such a rail may be called
    /// inside a database transaction: no lock waits on a network, and a rollback leaves
    /// nothing behind at the rail. Every network rail answers false.
    public var answersInProcess: Bool { false }

    public func parseCallback(method: String, path: String, headers: [String: String], body: [UInt8]) throws -> RailCallback {
        throw KoshError(.notFound, "The rail \(name) sends no callbacks")
    }
}

/// Live mode's routes: several connectors, an order in which to try them, and their
/// circuit breakers and success statistics (kept by the rails module).
public protocol LiveRouting: Sendable {
    func plan(_ request: RoutingRequest) -> [RouteChoice]
    func connector(named name: String) -> (any PaymentRail)?
    var connectorNames: [String] { get }
    /// Takes a breaker slot for one call; false when the breaker refuses calls now.
    func acquire(_ connector: String) -> Bool
    /// A payment's final outcome on the connector, for success-rate routing.
    func recordOutcome(_ connector: String, success: Bool)
    /// Downtimes, newest first (open ones included).
    func downtimes() -> [Downtime]
    /// Who owns a VPA, from the UPI switch.
    func lookup(vpa: String) async throws -> VPALookup
}

// MARK: - Storage

/// One database transaction. Reads with `forUpdate` lock the row until commit, so money
/// changes on one payment or order are serialised.
public protocol StoreTransaction: CardRecords, CustomerRecords, QRCodeRecords {
    func merchant(id: ID<Merchant>) async throws -> Merchant?

    func insertOrder(_ order: Order) async throws
    func order(id: ID<Order>, merchantID: ID<Merchant>?, forUpdate: Bool) async throws -> Order?
    func updateOrder(_ order: Order) async throws
    func orders(merchantID: ID<Merchant>, page: Page) async throws -> [Order]

    func insertPayment(_ payment: Payment) async throws
    func payment(id: ID<Payment>, merchantID: ID<Merchant>?, forUpdate: Bool) async throws -> Payment?
    /// Writes the payment if its stored version is `payment.version - 1`; throws otherwise.
    func updatePayment(_ payment: Payment) async throws
    func payments(merchantID: ID<Merchant>, orderID: ID<Order>?, page: Page) async throws -> [Payment]
    /// Payments of the order that hold it (`Payment.holdsOrder`).
    func livePaymentCount(orderID: ID<Order>) async throws -> Int
    /// Payments in flight whose next check is due.
    func paymentsDueForCheck(now: UnixMillis, limit: Int) async throws -> [Payment]
    /// Authorised payments whose capture setting is due (`captureDueAt` passed), the oldest first.
    func paymentsDueForCapture(now: UnixMillis, limit: Int) async throws -> [Payment]

    func insertRefund(_ refund: Refund) async throws
    func refund(id: ID<Refund>, merchantID: ID<Merchant>?, forUpdate: Bool) async throws -> Refund?
    func updateRefund(_ refund: Refund) async throws
    func refunds(merchantID: ID<Merchant>, paymentID: ID<Payment>?, page: Page) async throws -> [Refund]
    /// Pending refunds created before `createdBefore` (s) whose next try is due by `dueBy`
    /// (ms), the longest-due first.
    func pendingRefunds(createdBefore: UnixSeconds, dueBy: UnixMillis, limit: Int) async throws -> [Refund]
    /// Counts one unsettled try of a pending refund, keeps why it did not settle (for
    /// operators: `kosh refunds stuck`) and sets its next try to `next(attempts)` (attempts
    /// counted with this one).
    func postponeRefund(id: ID<Refund>, reason: String, next: (Int64) -> UnixMillis) async throws

    func insertAttempt(_ attempt: PaymentAttempt) async throws
    func updateAttempt(_ attempt: PaymentAttempt) async throws
    func attempts(paymentID: ID<Payment>) async throws -> [PaymentAttempt]

    func appendEvent(_ event: PaymentEventRecord) async throws
    /// Who hears of the merchant's public events (read once per transaction).
    func outboxRecipients(merchantID: String) async throws -> OutboxRecipients
    /// Writes a public event's rows as planned (`OutboxPlanner`), in this transaction.
    func writeOutbox(_ plan: OutboxPlan) async throws
    /// Writes the entry and its postings and updates the stored balances, in this transaction.
    func post(_ entry: JournalEntry) async throws
    func journalEntry(id: String) async throws -> JournalEntry?

    /// Records the response of an idempotent request in this transaction, atomically with its
    /// effect; only the claim holding the key (`token`) may record it.
    func recordIdempotentResponse(merchantID: String, key: String, token: String, status: Int, body: String) async throws
}

public protocol GatewayStore: Sendable {
    func transaction<T: Sendable>(_ body: (any StoreTransaction) async throws -> T) async throws -> T
}

// MARK: - Merchants and idempotency

public protocol MerchantAuthenticator: Sendable {
    /// The merchant owning `keyID` when `secret` is its secret; nil otherwise.
    func authenticate(keyID: String, secret: String) async throws -> Merchant?
}

/// The checkout's public key (Razorpay's `key` option): the merchant a browser pays, known by
/// the key id alone, which is public. It authorises nothing but paying that merchant's orders.
public protocol CheckoutKeys: Sendable {
    func merchant(publicKeyID: String) async throws -> Merchant?
}

public enum IdempotencyClaim: Sendable, Equatable {
    /// The key is ours: run the request and record its response with this claim's token
    /// (only the claim that holds the key can record it, so a request whose claim was taken
    /// over can never commit its effect).
    case claimed(token: String)
    /// The same request ran before: send its response again.
    case replay(status: Int, body: String)
    /// The key was used with a different request.
    case mismatch
    /// The same request is running right now (on a live process); retry after this long.
    case inProgress(retryAfterSeconds: Int)
}

public protocol IdempotencyKeys: Sendable {
    func claim(merchantID: String, key: String, requestHash: String, now: Int64) async throws -> IdempotencyClaim
    /// Records (or replaces) the response outside any other transaction.
    func complete(merchantID: String, key: String, token: String, status: Int, body: String) async throws
    func release(merchantID: String, key: String, token: String) async throws
}

/// Looks up a host name's addresses (A and AAAA) as the system resolver does; webhook
/// destinations are checked against every one (tests give a scripted resolver).
public protocol HostResolver: Sendable {
    /// Every address the name resolves to; empty when it does not resolve.
    func addresses(of host: String) async throws -> [NetworkAddress]
}
