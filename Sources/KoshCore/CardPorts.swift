/// The ports of the cardholder-data zone (issue 13, docs/CARDS.md): the vault that holds card
/// numbers, and the card connector that alone turns a token back into a number, at the moment
/// it sends to the card network. The application zone sees tokens, last4 and BIN data only.

// MARK: - Vault

/// A card as the vault keeps it (the only value outside the vault and the connector that holds
/// a full number; it is never logged: its description shows the IIN and last 4).
public struct VaultCard: Sendable, Hashable, CustomStringConvertible {
    public let number: String
    public let expiryMonth: Int
    /// Four digits.
    public let expiryYear: Int
    public let name: String?

    public init(number: String, expiryMonth: Int, expiryYear: Int, name: String?) {
        self.number = number
        self.expiryMonth = expiryMonth
        self.expiryYear = expiryYear
        self.name = name
    }

    public var description: String { "VaultCard(\(number.prefix(6))…\(number.suffix(4)))" }
    public var debugDescription: String { description }
}

/// What tokenising a card answers.
public struct TokenizedCard: Sendable, Hashable {
    /// The vault's token (`vt_…`).
    public let token: String
    /// HMAC of the number under the vault's fingerprint key: equal for the same card.
    public let fingerprint: String
    public let iin: String
    public let last4: String

    public init(token: String, fingerprint: String, iin: String, last4: String) {
        self.token = token
        self.fingerprint = fingerprint
        self.iin = iin
        self.last4 = last4
    }
}

/// How long the vault keeps a card.
public enum CardRetention: Sendable, Hashable {
    /// Purged once this time has passed (RBI: no longer than the payment needs it).
    case until(UnixSeconds)
    /// A saved card (card-on-file token): kept until it is deleted.
    case cardOnFile
}

public enum CardVaultError: Error, Sendable, Hashable {
    case notFound
    /// The card was purged under the retention rule.
    case purged
    case invalid(field: String, reason: String)
    /// The vault did not answer, or answered something Kosh cannot trust.
    case unavailable(String)
}

/// The tokenisation vault (`KoshVault`, docs/CARDS.md §1).
public protocol CardVault: Sendable {
    /// Seals the card; a CVV, when given, is held in the vault's memory only, for ten minutes
    /// or until a detokenisation takes it.
    func tokenize(_ card: VaultCard, cvv: String?, retention: CardRetention) async throws -> TokenizedCard
    /// Holds a CVV in memory for the card (paying again with a saved card).
    func attachCVV(token: String, cvv: String) async throws
    /// The card, and its CVV when `takeCVV` (then gone from the vault). Only card connectors call this.
    func detokenize(token: String, takeCVV: Bool) async throws -> (card: VaultCard, cvv: String?)
    func setRetention(token: String, _ retention: CardRetention) async throws
    /// Deletes the card now.
    func purge(token: String) async throws
}

// MARK: - The card connector

/// What the connector needs to ask the card network about one payment. `vaultToken` is turned
/// into the card only inside the connector.
public struct CardPaymentContext: Sendable, Hashable {
    public let paymentID: ID<Payment>
    public let merchantID: ID<Merchant>
    public let merchantName: String
    public let vaultToken: String
    public let amount: Int64
    public let currency: Currency

    public init(paymentID: ID<Payment>, merchantID: ID<Merchant>, merchantName: String, vaultToken: String, amount: Int64,
                currency: Currency) {
        self.paymentID = paymentID
        self.merchantID = merchantID
        self.merchantName = merchantName
        self.vaultToken = vaultToken
        self.amount = amount
        self.currency = currency
    }
}

/// Where a 3-D Secure authentication stands.
public enum CardAuthenticationState: Sendable, Hashable {
    /// The cardholder must enter the OTP: on `challengeURL` (the ACS's page) or through Kosh's
    /// native OTP calls.
    case challengeRequired(attemptsLeft: Int, resendsLeft: Int)
    case authenticated(eci: String, cavv: String)
    /// `reason`: authentication_failed, too_many_attempts, payment_cancelled, expired.
    case failed(reason: String)
}

public struct CardAuthentication: Sendable, Hashable {
    /// The ACS's id (`acs_…`).
    public let id: String
    public let challengeURL: String?
    public let state: CardAuthenticationState

    public init(id: String, challengeURL: String?, state: CardAuthenticationState) {
        self.id = id
        self.challengeURL = challengeURL
        self.state = state
    }
}

/// The answer to a wrong OTP or a resend at the limit.
public enum CardOTPProblem: Error, Sendable, Hashable {
    case resendLimit
}

/// The card network's answer to an authorisation (0110), a capture or refund (0210), a reversal (0410).
public enum CardNetworkAnswer: Sendable, Hashable {
    case approved(authCode: String?, rrn: String)
    /// Field 39 other than 00, with the failure it means.
    case declined(responseCode: String, PaymentFailure)
    /// An authorisation got no answer in time and its reversal was answered: nothing is charged.
    case reversedAfterTimeout
    /// No answer and no acknowledged reversal yet: the outcome is unknown. The connector keeps
    /// sending reversal advices; `resolveTimeout` asks again.
    case unknown
}

/// A card network request that surely never reached the network (no connection could be had,
/// or it was refused before a byte was sent): nothing happened there, so it can be failed
/// without a reversal, or tried again. Thrown by `authorize`, `capture`, `refund` and `reverse`.
public struct CardNetworkUnavailable: Error, Sendable, Hashable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "the card network could not be reached: \(reason)" }
}

/// The authorisation data a capture, refund or reversal refers back to (field 90).
public struct CardAuthorizationReference: Sendable, Hashable {
    public let stan: String
    public let transmission: String
    public let rrn: String
    public let authCode: String?

    public init(stan: String, transmission: String, rrn: String, authCode: String?) {
        self.stan = stan
        self.transmission = transmission
        self.rrn = rrn
        self.authCode = authCode
    }

    /// Stored as one text column: "stan|transmission|rrn|authCode".
    public var encoded: String { [stan, transmission, rrn, authCode ?? ""].joined(separator: "|") }

    public init?(encoded: String) {
        let parts = encoded.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4 else { return nil }
        self.init(stan: parts[0], transmission: parts[1], rrn: parts[2], authCode: parts[3].isEmpty ? nil : parts[3])
    }
}

/// The card connector (KoshRails/Cards): 3-D Secure with the ACS and the acquirer over ISO 8583.
public protocol CardConnector: Sendable {
    var name: String { get }
    /// Starts (or finds again, for the same payment) the 3-D Secure authentication.
    func beginAuthentication(_ payment: CardPaymentContext, returnURL: String) async throws -> CardAuthentication
    /// Sends (first call) or resends the OTP to the cardholder.
    func sendOTP(authenticationID: String) async throws -> CardAuthentication
    func verifyOTP(authenticationID: String, otp: String) async throws -> CardAuthentication
    /// The ACS's own word on an authentication (after a browser came back from the challenge page).
    func authentication(id: String) async throws -> CardAuthentication
    /// 0100 with the card from the vault (CVV taken), the authentication value and ECI.
    /// `reference` is there whenever the 0100 may have reached the acquirer (any answer,
    /// `.unknown` and `.reversedAfterTimeout` included); after `.unknown` the caller keeps it
    /// and hands it to `resolveTimeout`. It is nil only when nothing was sent (then it throws).
    func authorize(_ payment: CardPaymentContext, authentication: CardAuthentication)
        async throws -> (answer: CardNetworkAnswer, reference: CardAuthorizationReference?)
    /// After `.unknown`: whether the timeout reversal has been answered now (`.reversedAfterTimeout`),
    /// else `.unknown` after one more reversal advice. `reference` is the one `authorize` gave
    /// with `.unknown` (kept by the caller): the advice's field 90 must name the original STAN
    /// and transmission time, which a connector restarted since (its pending reversals were in
    /// memory) cannot know, and which the acquirer checks (a wrong one answers 25, "no such
    /// original", which would read as "nothing charged"). Nil (a crash between sending and
    /// keeping the reference): only a reversal the connector still holds in memory can settle it.
    func resolveTimeout(_ payment: CardPaymentContext, reference: CardAuthorizationReference?) async throws -> CardNetworkAnswer
    /// 0200 capture of the authorisation for `amount`.
    func capture(_ payment: CardPaymentContext, amount: Int64, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer
    /// 0400 reversal of the authorisation (void).
    func reverse(_ payment: CardPaymentContext, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer
    /// 0200 refund (processing code 20) of `amount`, keyed by the refund id.
    func refund(_ payment: CardPaymentContext, refundID: ID<Refund>, amount: Int64, reference: CardAuthorizationReference)
        async throws -> CardNetworkAnswer
}

// MARK: - Response codes

/// What an ISO 8583 response code (field 39) means to a merchant: Razorpay's error fields
/// (docs/CARDS.md §2). Pure, so the connector, the test-mode card rail and the tests agree.
public enum CardResponseCodes {
    public static func failure(responseCode: String) -> PaymentFailure {
        func bad(_ description: String, _ reason: String, source: String = "customer") -> PaymentFailure {
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: description, source: source, step: "payment_authorization", reason: reason)
        }
        func gateway(_ description: String, _ reason: String, source: String) -> PaymentFailure {
            PaymentFailure(code: "GATEWAY_ERROR", description: description, source: source, step: "payment_authorization", reason: reason)
        }
        switch responseCode {
        case "05": return bad("Payment failed because the card was declined by the bank.", "card_declined", source: "issuer")
        case "14": return bad("Payment failed because the card number is invalid.", "card_number_invalid")
        case "51": return bad("Payment failed due to insufficient balance or limit on the card.", "insufficient_funds")
        case "54": return bad("Payment failed because the card has expired.", "card_expired")
        case "57": return bad("Payment failed because the card is not enabled for online payments.", "card_disabled_for_online_payments")
        case "61": return bad("Payment failed because the amount exceeds the card's limit.", "card_limit_exceeded")
        case "63": return gateway("Payment failed because the card could not be authenticated.", "authentication_failed", source: "customer")
        case "91": return bad("Payment failed because the bank did not answer in time.", "payment_timed_out", source: "issuer")
        case "96": return gateway("Payment failed due to a technical error at the bank.", "gateway_technical_error", source: "bank")
        default: return gateway("Payment failed: the card network answered \(responseCode).", "payment_failed", source: "gateway")
        }
    }

    /// A failed 3-D Secure authentication's error fields (`reason` as `CardAuthenticationState.failed` has it).
    public static func authenticationFailure(reason: String) -> PaymentFailure {
        switch reason {
        case "payment_cancelled":
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment was cancelled by the customer on the bank's page.",
                           source: "customer", step: "payment_authentication", reason: "payment_cancelled")
        case "too_many_attempts":
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment failed because an incorrect OTP was entered too many times.",
                           source: "customer", step: "payment_authentication", reason: "authentication_failed")
        case "expired":
            PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment failed because the OTP was not entered in time.",
                           source: "customer", step: "payment_authentication", reason: "payment_timed_out")
        default:
            PaymentFailure(code: "GATEWAY_ERROR", description: "Payment failed because the card could not be authenticated.",
                           source: "customer", step: "payment_authentication", reason: "authentication_failed")
        }
    }
}
