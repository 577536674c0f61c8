/// Card payments' entities and their pure rules (issue 13): what the application zone keeps
/// of a card (no number: the vault's token, IIN, last 4 and BIN data), and where a card
/// payment stands between 3-D Secure, the acquirer and the follow-up messages a capture, void
/// or refund sends over ISO 8583.

/// Razorpay's card entity (`card_…`): one per card payment.
public struct Card: Sendable, Hashable {
    public let id: ID<Card>
    public let merchantID: ID<Merchant>
    /// The vault's token; only the card connector turns it back into a number.
    public let vaultToken: String
    public let fingerprint: String
    public let iin: String
    public let last4: String
    public let network: CardNetwork
    public let type: CardType
    public let issuer: String?
    public let international: Bool
    public let emi: Bool
    public let subType: String
    public let name: String?
    public let expiryMonth: Int
    public let expiryYear: Int
    public let createdAt: UnixSeconds

    public init(id: ID<Card>, merchantID: ID<Merchant>, vaultToken: String, fingerprint: String, iin: String, last4: String,
                network: CardNetwork, type: CardType, issuer: String?, international: Bool, emi: Bool = false, subType: String,
                name: String?, expiryMonth: Int, expiryYear: Int, createdAt: UnixSeconds) {
        self.id = id
        self.merchantID = merchantID
        self.vaultToken = vaultToken
        self.fingerprint = fingerprint
        self.iin = iin
        self.last4 = last4
        self.network = network
        self.type = type
        self.issuer = issuer
        self.international = international
        self.emi = emi
        self.subType = subType
        self.name = name
        self.expiryMonth = expiryMonth
        self.expiryYear = expiryYear
        self.createdAt = createdAt
    }
}

/// The card details of `POST /v1/payments/create/json`, checked (Luhn, expiry) before anything
/// is sent anywhere. The CVV goes to the vault's memory and nowhere else.
public struct CardDetails: Sendable {
    public let number: CardNumber
    public let expiry: CardExpiry
    public let cvv: String?
    public let name: String?

    public init(number: CardNumber, expiry: CardExpiry, cvv: String?, name: String?) {
        self.number = number
        self.expiry = expiry
        self.cvv = cvv
        self.name = name
    }
}

public struct NewCardPayment: Sendable {
    public var payment: NewPayment
    public var card: CardDetails
    /// Where the browser goes after 3-D Secure (Razorpay's `callback_url`).
    public var callbackURL: String?
    /// Save the card for this customer once the payment is authorised (`save: 1`, `customer_id`).
    public var saveFor: ID<Customer>?

    public init(payment: NewPayment, card: CardDetails, callbackURL: String?, saveFor: ID<Customer>? = nil) {
        self.payment = payment
        self.card = card
        self.callbackURL = callbackURL
        self.saveFor = saveFor
    }
}

/// A payment with a saved card: the token, the customer it belongs to, and the CVV when the
/// customer gave one (optional for a token).
public struct NewTokenPayment: Sendable {
    public var payment: NewPayment
    public var customerID: ID<Customer>
    public var tokenID: ID<CardToken>
    public var cvv: String?
    public var callbackURL: String?

    public init(payment: NewPayment, customerID: ID<Customer>, tokenID: ID<CardToken>, cvv: String?, callbackURL: String?) {
        self.payment = payment
        self.customerID = customerID
        self.tokenID = tokenID
        self.cvv = cvv
        self.callbackURL = callbackURL
    }
}

/// Where a card payment stands at the card network.
public enum CardPaymentStage: String, Sendable, Hashable, CaseIterable {
    /// Waiting for the cardholder's OTP (3-D Secure challenge). The payment is `created`.
    case authenticating
    /// The 0100 is out. The payment is `pending`.
    case authorizing
    /// The 0100 got no answer; its reversal has not been answered yet. `pending`: the outcome is unknown.
    case reversing
    /// The authorisation's answer is in (approved, declined or reversed after a timeout).
    case answered
}

/// A message the card network still has to acknowledge after a money event: sent after commit,
/// again by the janitor until it is answered.
public enum CardNetworkTask: String, Sendable, Hashable {
    /// 0200: the capture of the authorisation.
    case capture
    /// 0400: the void of the authorisation.
    case reversal
}

/// A card payment's network state, beside the payment (`card_payments`).
public struct CardPayment: Sendable, Hashable {
    public let paymentID: ID<Payment>
    public let merchantID: ID<Merchant>
    public let cardID: ID<Card>
    public let vaultToken: String
    public var stage: CardPaymentStage
    public var authenticationID: String?
    public var challengeURL: String?
    public var callbackURL: String?
    /// The approved authorisation (field 90 of what follows).
    public var authorization: CardAuthorizationReference?
    public var task: CardNetworkTask?
    public var taskDueAt: UnixMillis?
    public var taskAttempts: Int
    public var taskError: String?
    /// Save the card for this customer once authorised.
    public var saveFor: ID<Customer>?
    public let createdAt: UnixSeconds
    public var version: Int64

    public init(paymentID: ID<Payment>, merchantID: ID<Merchant>, cardID: ID<Card>, vaultToken: String, stage: CardPaymentStage,
                authenticationID: String? = nil, challengeURL: String? = nil, callbackURL: String? = nil,
                authorization: CardAuthorizationReference? = nil, task: CardNetworkTask? = nil, taskDueAt: UnixMillis? = nil,
                taskAttempts: Int = 0, taskError: String? = nil, saveFor: ID<Customer>? = nil, createdAt: UnixSeconds, version: Int64 = 0) {
        self.saveFor = saveFor
        self.paymentID = paymentID
        self.merchantID = merchantID
        self.cardID = cardID
        self.vaultToken = vaultToken
        self.stage = stage
        self.authenticationID = authenticationID
        self.challengeURL = challengeURL
        self.callbackURL = callbackURL
        self.authorization = authorization
        self.task = task
        self.taskDueAt = taskDueAt
        self.taskAttempts = taskAttempts
        self.taskError = taskError
        self.createdAt = createdAt
        self.version = version
    }
}

/// The timings of card payments (pure values; `GatewaySettings` style).
public struct CardSettings: Sendable, Hashable {
    /// How long a cardholder has to finish 3-D Secure before the payment fails.
    public var authenticationWindowMillis: Int64 = 15 * 60_000
    /// When the janitor first looks at an authorisation still out: well after the connector's
    /// own timeout and reversal, so it never reverses an authorisation whose answer is on its way.
    public var authorizationCheckMillis: Int64 = 120_000
    /// How soon the janitor asks again about an authorisation whose outcome is unknown.
    public var reversalCheckMillis: Int64 = 5_000
    /// Retries of a capture or void message the network has not acknowledged.
    public var taskRetryDelaysMillis: [Int64] = [2_000, 10_000, 60_000, 300_000]
    /// How long the vault keeps a card used once (RBI: no longer than the payment needs it;
    /// at most T+4 — four days — or settlement, whichever is earlier).
    public var retentionSeconds: Int64 = 4 * 86_400

    public init() {}

    public func nextTaskAttempt(attempts: Int, now: UnixMillis) -> UnixMillis {
        let delays = taskRetryDelaysMillis
        return now + delays[min(max(attempts - 1, 0), delays.count - 1)]
    }
}

/// What an authorisation answer does to a card payment: the payment event (if any), the stage,
/// and when to look again. Pure, so the test-mode connector and the acquirer take one path.
public enum CardAuthorizationRules {
    public struct Decision: Sendable, Hashable {
        public let event: PaymentEvent?
        public let stage: CardPaymentStage
        /// When the janitor asks again (an unknown outcome), else nil.
        public let checkAt: UnixMillis?
    }

    /// The failure of an authorisation that timed out and was reversed: nothing was charged.
    public static let reversedAfterTimeout = PaymentFailure(
        code: "BAD_REQUEST_ERROR", description: "Payment failed because the bank did not answer in time. No money was debited.",
        source: "issuer", step: "payment_authorization", reason: "payment_timed_out")

    public static func decide(_ answer: CardNetworkAnswer, now: UnixMillis, settings: CardSettings) -> Decision {
        switch answer {
        case .approved(_, let rrn):
            Decision(event: .authorize(railReference: rrn), stage: .answered, checkAt: nil)
        case .declined(_, let failure):
            Decision(event: .fail(failure), stage: .answered, checkAt: nil)
        case .reversedAfterTimeout:
            Decision(event: .fail(reversedAfterTimeout), stage: .answered, checkAt: nil)
        case .unknown:
            Decision(event: nil, stage: .reversing, checkAt: now + settings.reversalCheckMillis)
        }
    }
}

/// Storage of cards and card payments; part of every store transaction.
public protocol CardRecords {
    func insertCard(_ card: Card) async throws
    func card(id: ID<Card>, merchantID: ID<Merchant>?) async throws -> Card?
    func insertCardPayment(_ cardPayment: CardPayment) async throws
    func cardPayment(paymentID: ID<Payment>, forUpdate: Bool) async throws -> CardPayment?
    func updateCardPayment(_ cardPayment: CardPayment) async throws
    /// Card payments whose capture or void message is due (`taskDueAt` passed), the longest-due first.
    func cardTasksDue(now: UnixMillis, limit: Int) async throws -> [CardPayment]
}
