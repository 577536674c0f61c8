/// UPI QR codes (issue 14, point 4): Razorpay's `qr_…` entity under `/v1/payments/qr_codes`.
/// A QR code is a `upi://pay` link a payer's app scans; payments into it arrive from the UPI
/// switch (payer-initiated) and become ordinary captured payments of the merchant. What a
/// credit does to the QR code, and whether it is kept or given back, is decided here.

public enum QRUsage: String, Sendable, Hashable, CaseIterable {
    case singleUse = "single_use"
    case multipleUse = "multiple_use"
}

public enum QRStatus: String, Sendable, Hashable, CaseIterable {
    case active, closed
}

/// Razorpay's `close_reason`: `on_demand` (the merchant closed it) or `paid` (a single-use
/// QR code took its payment). A QR code closed because its `close_by` passed has none (null),
/// as Razorpay's entity page lists only these two and null.
public enum QRCloseReason: String, Sendable, Hashable, CaseIterable {
    case onDemand = "on_demand"
    case paid
}

/// The `close_by` rule. Razorpay's pages disagree (razorpay-api.md §1 item 8): the create
/// page says 2 minutes to 2 hours (clamped) for single-use codes, the entity and close pages
/// 15 minutes to 45 days, multiple-use never expiring. Kosh takes the wider range without
/// clamping: `close_by` must be at least 2 minutes and at most 45 days from now, is taken only
/// for single-use codes (a multiple-use code never expires: refused naming `close_by`), and is
/// stored and returned exactly as given. Omitted, the code stays open until paid or closed.
public enum QRCloseByRule {
    public static let minimumSeconds: Int64 = 120
    public static let maximumSeconds: Int64 = 45 * 86_400

    public static func range(now: UnixSeconds) -> ClosedRange<Int64> {
        (now.value + minimumSeconds)...(now.value + maximumSeconds)
    }
}

/// Why a credit is given back to the payer instead of kept.
public enum QRRefusal: String, Sendable, Hashable {
    /// The QR code was closed (on demand, or a single-use code already paid).
    case closed = "qr_code_closed"
    /// Its `close_by` had passed (the janitor had not closed it yet).
    case expired = "qr_code_expired"
    /// A fixed-amount code paid another amount.
    case amountMismatch = "amount_mismatch"
    /// Less than Razorpay's minimum payment (₹1), on an any-amount code.
    case belowMinimum = "amount_below_minimum"
}

public enum QRCreditDecision: Sendable, Hashable {
    /// Kept: counted on the QR code; `closes` when a single-use code is now paid.
    case accept(closes: Bool)
    /// Taken in and refunded in full over the rail (the payer's money moved already).
    case refund(QRRefusal)
}

public struct QRCodeTransitionError: Error, Sendable, Hashable, CustomStringConvertible {
    public let status: QRStatus
    public var description: String { "The QR code is \(status.rawValue)" }
}

public struct UPIQRCode: Sendable, Hashable {
    public let id: ID<UPIQRCode>
    public let merchantID: ID<Merchant>
    public var name: String?
    public let usage: QRUsage
    /// Always `upi_qr` (Bharat QR is not offered).
    public let type: String
    public let fixedAmount: Bool
    /// The amount a fixed-amount code takes (paise); nil for any amount.
    public let paymentAmount: Int64?
    public var description: String?
    public let customerID: ID<Customer>?
    public var closeBy: UnixSeconds?
    public var notes: Notes
    public private(set) var status: QRStatus
    public private(set) var closedAt: UnixSeconds?
    public private(set) var closeReason: QRCloseReason?
    /// Payments kept (not those given back), their sum in paise.
    public private(set) var paymentsAmountReceived: Int64
    public private(set) var paymentsCountReceived: Int64
    /// Where its PNG is served (Kosh's own route), and the `upi://pay` link it encodes.
    public let imageURL: String
    public let imageContent: String
    public let createdAt: UnixSeconds
    public var version: Int64

    public init(id: ID<UPIQRCode>, merchantID: ID<Merchant>, name: String?, usage: QRUsage, fixedAmount: Bool, paymentAmount: Int64?,
                description: String?, customerID: ID<Customer>?, closeBy: UnixSeconds?, notes: Notes, status: QRStatus = .active,
                closedAt: UnixSeconds? = nil, closeReason: QRCloseReason? = nil, paymentsAmountReceived: Int64 = 0,
                paymentsCountReceived: Int64 = 0, imageURL: String, imageContent: String, createdAt: UnixSeconds, version: Int64 = 0) {
        precondition(fixedAmount == (paymentAmount != nil), "a fixed-amount QR code has a payment amount, and only it")
        precondition(usage == .multipleUse ? closeBy == nil : true, "a multiple-use QR code never expires")
        precondition(paymentsAmountReceived >= 0 && paymentsCountReceived >= 0)
        self.id = id
        self.merchantID = merchantID
        self.name = name
        self.usage = usage
        self.type = "upi_qr"
        self.fixedAmount = fixedAmount
        self.paymentAmount = paymentAmount
        self.description = description
        self.customerID = customerID
        self.closeBy = closeBy
        self.notes = notes
        self.status = status
        self.closedAt = closedAt
        self.closeReason = closeReason
        self.paymentsAmountReceived = paymentsAmountReceived
        self.paymentsCountReceived = paymentsCountReceived
        self.imageURL = imageURL
        self.imageContent = imageContent
        self.createdAt = createdAt
        self.version = version
    }

    /// Whether its `close_by` has passed (it may still read active until the janitor closes it).
    public func isExpired(now: UnixSeconds) -> Bool {
        guard let closeBy else { return false }
        return closeBy <= now
    }

    /// A payment of `amount` arrived: what to do with it, and the code's new state. A credit
    /// that is kept counts and, on a single-use code, closes it (`paid`); an expired code is
    /// closed (no reason) and the credit refused.
    public mutating func credit(amount: Int64, now: UnixSeconds) -> QRCreditDecision {
        precondition(amount > 0, "a credit moves money")
        guard status == .active else { return .refund(.closed) }
        if isExpired(now: now) {
            expire(now: now)
            return .refund(.expired)
        }
        if let paymentAmount, amount != paymentAmount { return .refund(.amountMismatch) }
        if amount < AmountLimits.minimum { return .refund(.belowMinimum) }
        let (sum, overflow) = paymentsAmountReceived.addingReportingOverflow(amount)
        precondition(!overflow, "Invalid state: QR code \(id) received more than Int64 paise")
        paymentsAmountReceived = sum
        paymentsCountReceived += 1
        if usage == .singleUse {
            status = .closed
            closedAt = now
            closeReason = .paid
            return .accept(closes: true)
        }
        return .accept(closes: false)
    }

    /// `POST /:id/close`: closing a closed code is an error, not a no-op.
    public mutating func close(now: UnixSeconds) throws(QRCodeTransitionError) {
        guard status == .active else { throw QRCodeTransitionError(status: status) }
        status = .closed
        closedAt = now
        closeReason = .onDemand
    }

    /// The janitor's close of a code whose `close_by` passed: closed at `close_by`, no reason.
    public mutating func expire(now: UnixSeconds) {
        guard status == .active, let closeBy, closeBy <= now else { return }
        status = .closed
        closedAt = closeBy
        closeReason = nil
    }
}

/// What `POST /v1/payments/qr_codes` asks for, checked by the API.
public struct NewQRCode: Sendable {
    public var name: String?
    public var usage: QRUsage
    public var fixedAmount: Bool
    public var paymentAmount: Int64?
    public var description: String?
    public var customerID: ID<Customer>?
    public var closeBy: UnixSeconds?
    public var notes: Notes

    public init(name: String?, usage: QRUsage, fixedAmount: Bool, paymentAmount: Int64?, description: String?, customerID: ID<Customer>?,
                closeBy: UnixSeconds?, notes: Notes) {
        self.name = name
        self.usage = usage
        self.fixedAmount = fixedAmount
        self.paymentAmount = paymentAmount
        self.description = description
        self.customerID = customerID
        self.closeBy = closeBy
        self.notes = notes
    }
}

/// `PATCH /v1/payments/qr_codes/:id`: the fields given replace the stored ones.
public struct QRCodeEdit: Sendable {
    public var name: String?
    public var description: String?
    public var notes: Notes?
    public var closeBy: UnixSeconds?

    public init(name: String? = nil, description: String? = nil, notes: Notes? = nil, closeBy: UnixSeconds? = nil) {
        self.name = name
        self.description = description
        self.notes = notes
        self.closeBy = closeBy
    }
}

/// Which QR codes `GET /v1/payments/qr_codes` lists.
public struct QRCodeFilter: Sendable, Hashable {
    public var customerID: ID<Customer>?
    public var paymentID: ID<Payment>?
    public init(customerID: ID<Customer>? = nil, paymentID: ID<Payment>? = nil) {
        self.customerID = customerID
        self.paymentID = paymentID
    }
}

/// One payment into a QR code, keyed by the rail's own transaction id: a credit delivered
/// twice finds this and records nothing new.
public struct QRPaymentLink: Sendable, Hashable {
    public let paymentID: ID<Payment>
    public let qrCodeID: ID<UPIQRCode>
    public let merchantID: ID<Merchant>
    public let rail: String
    public let railTransactionID: String
    /// False when the credit was refused and given back.
    public let accepted: Bool
    public let createdAt: UnixSeconds

    public init(paymentID: ID<Payment>, qrCodeID: ID<UPIQRCode>, merchantID: ID<Merchant>, rail: String, railTransactionID: String, accepted: Bool,
                createdAt: UnixSeconds) {
        self.paymentID = paymentID
        self.qrCodeID = qrCodeID
        self.merchantID = merchantID
        self.rail = rail
        self.railTransactionID = railTransactionID
        self.accepted = accepted
        self.createdAt = createdAt
    }
}

/// A payer-initiated credit as the rail confirmed it (server to server), not as a callback said.
public struct RailCredit: Sendable, Hashable {
    /// The rail's transaction id (the switch: the RRN).
    public let transactionID: String
    public let rrn: String
    /// The `tr` of the link the payer paid: the QR code's id.
    public let reference: String
    public let payeeVPA: String
    public let payerVPA: String?
    public let amount: Int64

    public init(transactionID: String, rrn: String, reference: String, payeeVPA: String, payerVPA: String?, amount: Int64) {
        self.transactionID = transactionID
        self.rrn = rrn
        self.reference = reference
        self.payeeVPA = payeeVPA
        self.payerVPA = payerVPA
        self.amount = amount
    }
}

/// A rail that tells Kosh of money paid to Kosh's own VPA without Kosh having asked (a payer
/// scanning a QR code): it signs a credit notification, and confirms a transaction by its id.
public protocol PayerInitiatedRail: Sendable {
    var name: String { get }
    /// The VPA Kosh's QR codes pay (`pa=`).
    var qrPayeeVPA: String { get }
    /// Verifies a credit notification's signature and reads the transaction id from it; nothing
    /// else in it is believed.
    func creditTransactionID(method: String, path: String, headers: [String: String], body: [UInt8]) throws -> String
    /// Asks the rail about the transaction: the credit when it succeeded and paid `qrPayeeVPA`, nil when it did not.
    func confirmCredit(transactionID: String) async throws -> RailCredit?
    /// Tells the rail where to send credit notifications for `qrPayeeVPA`'s handle. Idempotent.
    func registerPayee() async throws
    /// Reconciliation, for credits whose notification never arrived: the rail's successful
    /// credits to `qrPayeeVPA` since the last call (the rail adapter keeps the cursor, starting
    /// shortly before the process did), each handed to `record`, which must be idempotent.
    /// The cursor moves only past transactions that are final and recorded. Returns how many
    /// credits it handed over.
    func reconcileCredits(_ record: @Sendable (RailCredit) async throws -> Void) async throws -> Int
}

/// The `upi://pay` link of a QR code (NPCI's UPI linking specification): `pa` the payee VPA,
/// `pn` the payee name, `tr` the QR code's id, `am` only for a fixed amount, `cu`, `tn` the
/// description. Values percent-encoded (RFC 3986 unreserved characters kept).
public enum UPIQRLink {
    /// `pn` and `tn` are cut to 50 characters and 99 bytes each (what payer apps show), so the
    /// link always fits a QR code (`maximumBytes`).
    public static func make(payeeVPA: String, payeeName: String, reference: String, amount: Int64?, note: String?) -> String {
        var items: [(String, String)] = [("pa", payeeVPA), ("pn", short(payeeName)), ("tr", reference)]
        if let amount { items.append(("am", rupees(amount))) }
        items.append(("cu", "INR"))
        if let note, !note.isEmpty { items.append(("tn", short(note))) }
        return "upi://pay?" + items.map { "\($0.0)=\(encode($0.1))" }.joined(separator: "&")
    }

    /// The longest link: every field at its longest, each byte percent-encoded (3 bytes).
    public static let maximumBytes = 1_024

    /// At most 50 characters and 99 UTF-8 bytes, whole characters only.
    public static func short(_ text: String) -> String {
        var out = ""
        for character in text.prefix(50) {
            guard out.utf8.count + character.utf8.count <= 99 else { break }
            out.append(character)
        }
        return out
    }

    /// Paise as NPCI's rupee string: 50000 → "500.00".
    public static func rupees(_ paise: Int64) -> String {
        precondition(paise >= 0)
        let fraction = paise % 100
        return "\(paise / 100)." + (fraction < 10 ? "0" : "") + String(fraction)
    }

    public static func encode(_ value: String) -> String {
        var out = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (byte < 16 ? "0" : "") + hex
            }
        }
        return out
    }
}

/// Storage of QR codes and their payments; part of every store transaction.
public protocol QRCodeRecords {
    func insertQRCode(_ qr: UPIQRCode) async throws
    func qrCode(id: ID<UPIQRCode>, merchantID: ID<Merchant>?, forUpdate: Bool) async throws -> UPIQRCode?
    /// Writes the code; throws when its version moved since it was read (optimistic lock).
    func updateQRCode(_ qr: UPIQRCode) async throws
    func qrCodes(merchantID: ID<Merchant>, filter: QRCodeFilter, page: Page) async throws -> [UPIQRCode]
    func insertQRPayment(_ link: QRPaymentLink) async throws
    func qrPayment(rail: String, railTransactionID: String) async throws -> QRPaymentLink?
    func qrPayment(paymentID: ID<Payment>) async throws -> QRPaymentLink?
    /// A QR code's payments, newest first.
    func qrPayments(qrCodeID: ID<UPIQRCode>, page: Page) async throws -> [Payment]
    /// Active codes whose `close_by` is at or before `now`, the earliest first.
    func qrCodesDue(closeBy now: UnixSeconds, limit: Int) async throws -> [ID<UPIQRCode>]
}
