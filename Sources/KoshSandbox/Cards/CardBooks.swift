import KoshJSON

/// The issuers' and the acquirer's books, part of `SandboxWorld` (so a reset clears them):
/// card accounts with their holds, and one authorisation per Kosh payment with its capture,
/// refunds and reversal.
struct CardBooks: Sendable {
    static let maximumAuthorisations = 1_000_000
    /// Per authorisation: 0100s repeated with new STANs that a capture or reversal may name.
    static let maximumTransmissions = 16
    static let maximumRefundsPerPayment = 1_000

    var timing = CardTiming()
    /// Opened from the test card table on first use.
    var accounts: [String: CardAccount] = [:]
    /// The acquirer's, by Kosh payment id (field 48 `PI`).
    var authorisations: [String: CardAuthorisation] = [:]
    /// alphapay's card payments (docs/CARDS.md §4), each with its authorisation once it has one.
    var alphapay = AggregatorCardBook()
    /// Payments by card number, oldest first, with the route each came by.
    var paymentsByCard: [String: [CardTransactionRef]] = [:]
    /// The route that last opened an authorisation for a payment id.
    var latestRoute: [String: CardRoute] = [:]

    func account(_ card: TestCard) -> CardAccount {
        accounts[card.number] ?? CardAccount(balance: card.openingBalance, transactionLimit: card.transactionLimit)
    }

    /// Notes a new authorisation against its card and as its payment's latest.
    mutating func opened(_ record: CardAuthorisation) {
        if let card = TestCards.card(record.cardNumber) {
            paymentsByCard[card.number, default: []].append(CardTransactionRef(paymentID: record.paymentID, via: record.via))
        }
        latestRoute[record.paymentID] = record.via
    }

    func authorisation(_ ref: CardTransactionRef) -> CardAuthorisation? {
        switch ref.via {
        case .acquirer: authorisations[ref.paymentID]
        case .alphapay: alphapay.payments[ref.paymentID]?.authorisation
        }
    }

    /// `GET /sandbox/v1/cards/transactions/{payment_id}`: the payment's books by the route that
    /// last authorised it (a payment id seen by both routes shows the later one).
    func books(_ paymentID: String) -> CardAuthorisation? {
        latestRoute[paymentID].flatMap { authorisation(CardTransactionRef(paymentID: paymentID, via: $0)) }
    }
}

/// The way a card payment reached the issuers: the acquirer's ISO 8583 host, or the alphapay
/// aggregator's card API (docs/CARDS.md §4).
enum CardRoute: String, Sendable {
    case acquirer
    case alphapay

    /// Whose `decline_rate` fault applies to its approvals.
    var faultRail: Rail {
        switch self {
        case .acquirer: .acquirer
        case .alphapay: .alphapay
        }
    }
}

struct CardTransactionRef: Sendable, Hashable {
    let paymentID: String
    let via: CardRoute
}

/// What proves 3-D Secure on an authorisation: field 48's `AV`, `EC` and `AI`, or alphapay's
/// own authentication.
struct CardAuthenticationValue: Sendable {
    let cavv: String?
    let eci: String?
    let id: String?
}

/// `PUT /sandbox/v1/cards/config`: how long the slow issuers take, in real milliseconds (they
/// hold up an answer on the wire, which only real time can do).
struct CardTiming: Sendable, Equatable {
    var lateAnswerMs: Int64 = 20_000
    var issuerTimeoutMs: Int64 = 10_000

    static let maximumMs: Int64 = 600_000

    var json: JSON { .object([("late_answer_ms", .int(lateAnswerMs)), ("issuer_timeout_ms", .int(issuerTimeoutMs))]) }

    func applying(_ patch: CardTimingPatch) throws(MalformedRequest) -> CardTiming {
        var next = self
        if let v = patch.lateAnswerMs { next.lateAnswerMs = v }
        if let v = patch.issuerTimeoutMs { next.issuerTimeoutMs = v }
        guard (0...Self.maximumMs).contains(next.lateAnswerMs), (0...Self.maximumMs).contains(next.issuerTimeoutMs) else {
            throw MalformedRequest(message: "late_answer_ms and issuer_timeout_ms must be 0…\(Self.maximumMs)")
        }
        return next
    }
}

struct CardTimingPatch: Decodable, Sendable {
    var lateAnswerMs: Int64?
    var issuerTimeoutMs: Int64?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case lateAnswerMs = "late_answer_ms", issuerTimeoutMs = "issuer_timeout_ms"
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: Set(CodingKeys.allCases.map(\.rawValue)))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        lateAnswerMs = try c.decodeIfPresent(Int64.self, forKey: .lateAnswerMs)
        issuerTimeoutMs = try c.decodeIfPresent(Int64.self, forKey: .issuerTimeoutMs)
    }
}

/// A card's balance (or open credit limit) and the amounts held on it by approved authorisations.
struct CardAccount: Sendable, Equatable {
    var balance: Int64
    var transactionLimit: Int64
    /// Payment id → amount held.
    var holds: [String: Int64] = [:]

    var held: Int64 { holds.values.reduce(0, +) }
    var available: Int64 { balance - held }
}

enum AuthorisationStatus: String, Sendable {
    /// Waiting on the issuer (a slow card).
    case pending
    case approved
    case declined
    /// Approved, then reversed: the hold was released and nothing is charged.
    case reversed
    /// Reversed while the issuer had not answered; its approval came later and was released at once.
    case lateReversed = "late_reversed"
}

struct CardRefund: Sendable {
    let refundID: String
    let amount: Int64
    let authCode: String
}

/// One Kosh payment at the acquirer (keyed by `PI`).
struct CardAuthorisation: Sendable {
    struct Transmission: Sendable, Hashable {
        let stan: String
        let time: String
    }

    let paymentID: String
    let cardNumber: String
    let amount: Int64
    let rrn: String
    let createdAt: Int64
    var transmissions: [Transmission]
    var status: AuthorisationStatus
    var via: CardRoute = .acquirer
    /// The 0110's field 39 (nil while pending) and field 38.
    var responseCode: String?
    var authCode: String?
    /// When the issuer answers a pending authorisation (monotonic milliseconds) and what it says.
    var issuerDue: Int64?
    var reversalRequested = false
    var reversedAmount: Int64 = 0
    var captured: Int64 = 0
    var captureAuthCode: String?
    var refunds: [CardRefund] = []
    /// Every answer's field 39, in order: `0110:00`, `0210:00`, `0410:00`, … (alphapay's
    /// payments record the same codes its own acquiring answered.)
    var answers: [String] = []

    var refunded: Int64 { refunds.reduce(0) { $0 + $1.amount } }

    func refund(_ id: String) -> CardRefund? { refunds.first { $0.refundID == id } }

    var json: JSON {
        .object([
            ("payment_id", .string(paymentID)),
            ("via", .string(via.rawValue)),
            ("card", .string(CardMask.mask(cardNumber))),
            ("status", .string(status.rawValue)),
            ("response_code", .optional(responseCode)),
            ("auth_code", .optional(authCode)),
            ("rrn", .string(rrn)),
            ("authorised_amount", .int(status == .approved || status == .reversed || status == .lateReversed ? amount : 0)),
            ("requested_amount", .int(amount)),
            ("captured_amount", .int(captured)),
            ("refunded_amount", .int(refunded)),
            ("reversed_amount", .int(reversedAmount)),
            ("reversal_requested", .bool(reversalRequested)),
            ("refunds", .array(refunds.map { .object([("refund_id", .string($0.refundID)), ("amount", .int($0.amount)),
                                                      ("auth_code", .string($0.authCode))]) })),
            ("response_codes", .array(answers.map(JSON.string))),
            ("created_at", .int(createdAt)),
        ])
    }
}

/// What the fault settings do to one message on the acquirer's wire.
enum CardAdmission: Sendable, Equatable {
    /// `down` or a downtime window: the connection is closed.
    case closeConnection
    /// `error_rate`: 96 after the latency, the books untouched.
    case malfunction(afterMs: Int64)
    /// `timeout_rate`: never answered and not processed.
    case silence
    /// Processed after the latency; with `dropAnswer` (`drop_response_rate`) the answer is not sent.
    case proceed(afterMs: Int64, dropAnswer: Bool)
}
