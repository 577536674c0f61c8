public enum Mode: String, Sendable, Hashable {
    case test, live
}

/// A late authorisation (DESIGN.md §3.6) is captured when the order is still unpaid and the
/// merchant chose `capture`; otherwise it is refunded in full at once.
public enum LateAuthorizationPolicy: String, Sendable, Hashable, CaseIterable {
    case capture, refund
}

public struct Merchant: Sendable, Hashable {
    public let id: ID<Merchant>
    public var name: String
    public var mode: Mode
    /// MDR in basis points for every method without an override.
    public var defaultMDRBasisPoints: Int64
    public let createdAt: Int64
    /// What happens to a payment the rail authorises after Kosh gave up on it.
    public var lateAuthorization: LateAuthorizationPolicy
    /// Connectors the merchant wants tried first (live mode), best first.
    public var routePreference: [String]
    /// The merchant's own rates by method or card key (`FeeSchedule.cardRate`), basis points.
    public var feeRates: [String: Int64]
    /// Auto-capture by default or not, and the manual capture window.
    public var capture: CaptureSettings
    /// Where the hosted checkout may send the browser back to, and whether it offers UPI collect.
    public var checkout: CheckoutSettings

    public init(id: ID<Merchant>, name: String, mode: Mode, defaultMDRBasisPoints: Int64 = FeeSchedule.defaultMDRBasisPoints, createdAt: Int64,
                lateAuthorization: LateAuthorizationPolicy = .refund, routePreference: [String] = [], feeRates: [String: Int64] = [:],
                capture: CaptureSettings = CaptureSettings(), checkout: CheckoutSettings = CheckoutSettings()) {
        self.checkout = checkout
        self.feeRates = feeRates
        self.capture = capture
        self.id = id
        self.name = name
        self.mode = mode
        self.defaultMDRBasisPoints = defaultMDRBasisPoints
        self.createdAt = createdAt
        self.lateAuthorization = lateAuthorization
        self.routePreference = routePreference
    }

    public var feeSchedule: FeeSchedule { FeeSchedule(defaultMDR: defaultMDRBasisPoints, mdrBasisPoints: feeRates) }
}

/// `notes`: at most 15 key/value pairs of strings (Razorpay's limit), kept in the order given.
public struct Notes: Sendable, Hashable {
    public static let maximumCount = 15
    public static let maximumKeyLength = 256
    public static let maximumValueLength = 256
    public var pairs: [(key: String, value: String)]

    public init(_ pairs: [(key: String, value: String)] = []) {
        self.pairs = pairs
    }

    public static func == (a: Notes, b: Notes) -> Bool {
        a.pairs.map(\.key) == b.pairs.map(\.key) && a.pairs.map(\.value) == b.pairs.map(\.value)
    }

    public func hash(into hasher: inout Hasher) {
        for pair in pairs {
            hasher.combine(pair.key)
            hasher.combine(pair.value)
        }
    }
}

public struct Order: Sendable, Hashable {
    public let id: ID<Order>
    public let merchantID: ID<Merchant>
    public let currency: Currency
    public var receipt: String?
    public var notes: Notes
    public var machine: OrderMachine
    public let createdAt: UnixSeconds
    /// `payment_capture`: capture its payments as soon as they are authorised (true), leave
    /// them to the merchant (false), or nil: the merchant's default.
    public let paymentCapture: Bool?

    public init(id: ID<Order>, merchantID: ID<Merchant>, currency: Currency, receipt: String?, notes: Notes, machine: OrderMachine, createdAt: UnixSeconds,
                paymentCapture: Bool? = nil) {
        self.paymentCapture = paymentCapture
        self.id = id
        self.merchantID = merchantID
        self.currency = currency
        self.receipt = receipt
        self.notes = notes
        self.machine = machine
        self.createdAt = createdAt
    }

    public var amount: Int64 { machine.amount }
}

public struct Payment: Sendable, Hashable {
    public let id: ID<Payment>
    public let merchantID: ID<Merchant>
    public let orderID: ID<Order>
    public let currency: Currency
    public let method: PaymentMethod
    public var vpa: String?
    public var email: String?
    public var contact: String?
    public var description: String?
    public var notes: Notes
    public var machine: PaymentMachine
    /// How a UPI payment reaches the payer.
    public let flow: UPIFlow
    /// The `upi://pay` link of an intent payment, once the rail issued it.
    public var upiLink: String?
    /// A late authorisation given back in full: it never paid its order.
    public var autoRefunded: Bool
    /// Which rail (connector) carries the payment — the current attempt's — and its reference once it has one.
    public var rail: String
    public var railReference: String?
    /// The pending ledger entry holding the authorisation.
    public var authorizationEntryID: String?
    public let createdAt: UnixSeconds
    public var authorizedAt: UnixSeconds?
    public var capturedAt: UnixSeconds?
    /// When the payment was handed to its rail.
    public var submittedAt: UnixMillis?
    /// When the janitor should next ask the rail about a payment still in flight.
    public var nextCheckAt: UnixMillis?
    /// Optimistic concurrency: bumped on every update.
    public var version: Int64
    /// A card payment's card (no number: see `Card`).
    public var card: Card?
    /// The issuer's authorisation code of a card payment (ISO 8583 field 38).
    public var authCode: String?
    /// A netbanking payment's bank, a wallet payment's wallet (Razorpay's codes).
    public var bank: String?
    public var wallet: String?
    /// Where the customer's browser goes with the result of a redirect payment.
    public var callbackURL: String?
    /// An authorised payment's capture settings at work: what the janitor does, and from when.
    public var captureAction: CaptureAction?
    public var captureDueAt: UnixMillis?

    public init(id: ID<Payment>, merchantID: ID<Merchant>, orderID: ID<Order>, currency: Currency, method: PaymentMethod, vpa: String?,
                email: String?, contact: String?, description: String?, notes: Notes, machine: PaymentMachine,
                rail: String, flow: UPIFlow = .collect, upiLink: String? = nil, autoRefunded: Bool = false, railReference: String? = nil, authorizationEntryID: String? = nil, createdAt: UnixSeconds,
                authorizedAt: UnixSeconds? = nil, capturedAt: UnixSeconds? = nil, submittedAt: UnixMillis? = nil, nextCheckAt: UnixMillis? = nil, version: Int64 = 0,
                card: Card? = nil, authCode: String? = nil, captureAction: CaptureAction? = nil, captureDueAt: UnixMillis? = nil,
                bank: String? = nil, wallet: String? = nil, callbackURL: String? = nil) {
        self.bank = bank
        self.wallet = wallet
        self.callbackURL = callbackURL
        self.captureAction = captureAction
        self.captureDueAt = captureDueAt
        self.card = card
        self.authCode = authCode
        self.id = id
        self.merchantID = merchantID
        self.orderID = orderID
        self.currency = currency
        self.method = method
        self.vpa = vpa
        self.email = email
        self.contact = contact
        self.description = description
        self.notes = notes
        self.machine = machine
        self.rail = rail
        self.flow = flow
        self.upiLink = upiLink
        self.autoRefunded = autoRefunded
        self.railReference = railReference
        self.authorizationEntryID = authorizationEntryID
        self.createdAt = createdAt
        self.authorizedAt = authorizedAt
        self.capturedAt = capturedAt
        self.submittedAt = submittedAt
        self.nextCheckAt = nextCheckAt
        self.version = version
    }

    public var amount: Int64 { machine.amount }
    public var state: PaymentState { machine.state }
}

public struct Refund: Sendable, Hashable {
    public let id: ID<Refund>
    public let merchantID: ID<Merchant>
    public let paymentID: ID<Payment>
    public let currency: Currency
    public var notes: Notes
    public var receipt: String?
    public let speedRequested: String
    public var machine: RefundMachine
    public var railReference: String?
    public let createdAt: UnixSeconds
    public var processedAt: UnixSeconds?
    public var version: Int64

    public init(id: ID<Refund>, merchantID: ID<Merchant>, paymentID: ID<Payment>, currency: Currency, notes: Notes, receipt: String?,
                speedRequested: String, machine: RefundMachine, railReference: String? = nil, createdAt: UnixSeconds,
                processedAt: UnixSeconds? = nil, version: Int64 = 0) {
        self.id = id
        self.merchantID = merchantID
        self.paymentID = paymentID
        self.currency = currency
        self.notes = notes
        self.receipt = receipt
        self.speedRequested = speedRequested
        self.machine = machine
        self.railReference = railReference
        self.createdAt = createdAt
        self.processedAt = processedAt
        self.version = version
    }

    public var amount: Int64 { machine.amount }
}

/// One row of the append-only `payment_events` log.
public struct PaymentEventRecord: Sendable, Hashable {
    public let id: String
    public let merchantID: String
    public let entityType: String   // "payment", "order", "refund"
    public let entityID: String
    public let event: String
    public let fromState: String?
    public let toState: String
    public let createdAt: Int64

    public init(id: String, merchantID: String, entityType: String, entityID: String, event: String,
                fromState: String?, toState: String, createdAt: Int64) {
        self.id = id
        self.merchantID = merchantID
        self.entityType = entityType
        self.entityID = entityID
        self.event = event
        self.fromState = fromState
        self.toState = toState
        self.createdAt = createdAt
    }
}

/// Collection paging as Razorpay has it: `count` (1…100, default 10), `skip`, `from`, `to` (unix seconds, inclusive).
public struct Page: Sendable, Hashable {
    public static let maximumCount = 100
    public var count: Int
    public var skip: Int
    public var from: Int64?
    public var to: Int64?

    public init(count: Int = 10, skip: Int = 0, from: Int64? = nil, to: Int64? = nil) {
        self.count = count
        self.skip = skip
        self.from = from
        self.to = to
    }
}

/// One try of a payment on one route (connector). A payment that fails over has several.
public struct PaymentAttempt: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable {
        /// Being sent to the connector.
        case initiated
        /// The connector took it; the outcome comes later.
        case accepted
        /// The connector (or the bank behind it) refused it.
        case rejected
        /// The connector could not take it and surely did not charge: the next route is tried.
        case unavailable
        /// Its breaker was open: not sent.
        case skipped
        /// No answer (timeout, broken connection): the payer may have been charged, so no failover.
        case unknown
        case authorized
        case failed
    }

    public let id: ID<PaymentAttempt>
    public let paymentID: ID<Payment>
    public let merchantID: ID<Merchant>
    public let seq: Int64
    public let connector: String
    public let reason: String
    public var status: Status
    public var upstreamReference: String?
    public var errorCode: String?
    public var errorDescription: String?
    public var latencyMillis: Int64?
    public let createdAt: UnixMillis
    public var updatedAt: UnixMillis

    public init(id: ID<PaymentAttempt>, paymentID: ID<Payment>, merchantID: ID<Merchant>, seq: Int64, connector: String, reason: String, status: Status,
                upstreamReference: String? = nil, errorCode: String? = nil, errorDescription: String? = nil, latencyMillis: Int64? = nil,
                createdAt: UnixMillis, updatedAt: UnixMillis) {
        self.id = id
        self.paymentID = paymentID
        self.merchantID = merchantID
        self.seq = seq
        self.connector = connector
        self.reason = reason
        self.status = status
        self.upstreamReference = upstreamReference
        self.errorCode = errorCode
        self.errorDescription = errorDescription
        self.latencyMillis = latencyMillis
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A connector's downtime as Razorpay's downtime API shows it: opened when its circuit
/// breaker opens, resolved when it closes again.
public struct Downtime: Sendable, Hashable {
    public let id: String
    public let connector: String
    public let method: PaymentMethod
    /// unix seconds
    public let begin: Int64
    public var end: Int64?
    public var severity: String
    public let createdAt: Int64
    public var updatedAt: Int64

    public init(id: String, connector: String, method: PaymentMethod, begin: Int64, end: Int64? = nil, severity: String, createdAt: Int64, updatedAt: Int64) {
        self.id = id
        self.connector = connector
        self.method = method
        self.begin = begin
        self.end = end
        self.severity = severity
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }

    public var status: String { end == nil ? "started" : "resolved" }
}
