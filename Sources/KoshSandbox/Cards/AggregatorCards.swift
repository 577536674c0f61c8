/// alphapay's card payments (docs/CARDS.md §4), part of `SandboxWorld` through `CardBooks` (so a
/// reset clears them). alphapay runs 3-D Secure with the sandbox's ACS in-process (the ACS's
/// authentication is opened under alphapay's own payment id, `apc_…`) and authorises through the
/// same issuers, balances, holds and behaviours as the acquirer (`networkDecides`), keeping one
/// `CardAuthorisation` per payment, keyed like the acquirer's by the Kosh payment id (the
/// `reference`), with `via` `alphapay`.
struct AggregatorCardBook: Sendable {
    static let maximumPayments = 1_000_000
    static let maximumRefunds = 1_000_000

    /// By `reference` (the Kosh payment id).
    var payments: [String: AggregatorCardPayment] = [:]
    /// By `refund_reference`.
    var refunds: [String: AggregatorCardRefund] = [:]
}

enum AggregatorCardStatus: String, Sendable {
    case authenticationRequired = "authentication_required"
    case authenticated
    case authorizing
    case authorized
    case captured
    case voided
    case failed
}

/// The `error_code` words of a failed payment, from the issuer's ISO 8583 code (docs/CARDS.md §4).
enum AggregatorCardError {
    static let authenticationFailed = "AUTHENTICATION_FAILED"

    static func code(forISO code: String) -> String {
        switch code {
        case "05": "CARD_DECLINED"
        case "14": "INVALID_CARD"
        case "51": "INSUFFICIENT_FUNDS"
        case "54": "CARD_EXPIRED"
        case "57": "CARD_NOT_ENABLED"
        case "61": "LIMIT_EXCEEDED"
        case "63": authenticationFailed
        case "91": "ISSUER_TIMEOUT"
        default: "BANK_ERROR"
        }
    }

    static func description(_ errorCode: String) -> String {
        switch errorCode {
        case "CARD_DECLINED": "The issuer declined the payment"
        case "INVALID_CARD": "The issuer does not recognise the card"
        case "INSUFFICIENT_FUNDS": "The card does not have enough funds or credit"
        case "CARD_EXPIRED": "The card has expired, or the expiry does not match"
        case "CARD_NOT_ENABLED": "The card is not enabled for online payments"
        case "LIMIT_EXCEEDED": "The amount is over the card's transaction limit"
        case "ISSUER_TIMEOUT": "The issuer did not answer in time"
        case authenticationFailed: "3-D Secure authentication failed"
        default: "The issuer could not process the payment"
        }
    }
}

/// What the create call hands the world, checked.
struct NewAggregatorCardPayment: Sendable {
    let reference: String
    let amount: Int64
    let cardNumber: String
    let network: CardNetworkName
    /// YYMM.
    let expiry: String
    let cvv: String?
    let merchantName: String
    let returnURL: String
}

struct AggregatorCardPayment: Sendable {
    let id: String
    let reference: String
    let amount: Int64
    /// The PAN stays on the issuers' side of the sandbox: never answered or logged beyond
    /// first 6 and last 4.
    let cardNumber: String
    let network: CardNetworkName
    let expiry: String
    /// Held until the authorisation takes it (or the payment ends without one), then dropped.
    var cvv: String?
    let authenticationID: String
    let fee: Int64
    /// Unix milliseconds (answered in seconds).
    let createdAt: Int64
    var status: AggregatorCardStatus
    var errorCode: String?
    var errorDescription: String?
    /// Opened by the first authorize.
    var authorisation: CardAuthorisation?

    var last4: String { String(cardNumber.suffix(4)) }

    /// 1.90 % of the amount (American Express 2.90 %), rounded half up to the paisa.
    static func fee(_ amount: Int64, network: CardNetworkName) -> Int64 {
        Amounts.share(amount, basisPoints: network == .amex ? 290 : 190)
    }

    mutating func fail(_ errorCode: String) {
        status = .failed
        self.errorCode = errorCode
        errorDescription = AggregatorCardError.description(errorCode)
        cvv = nil
    }
}

struct AggregatorCardRefund: Sendable {
    let id: String
    let refundReference: String
    let paymentReference: String
    let amount: Int64
}

/// A payment as it is now, with its ACS authentication, for an answer.
struct AggregatorCardSnapshot: Sendable {
    let payment: AggregatorCardPayment
    let authentication: ACSAuthentication?
}

enum AggregatorCardCreateOutcome: Sendable {
    case created(AggregatorCardSnapshot)
    /// A repeat of the reference with the same amount: the payment as it is now.
    case existing(AggregatorCardSnapshot)
    case conflict
    case full
}

enum AggregatorCardOTPOutcome: Sendable {
    case sent(AggregatorCardSnapshot, OTPMessage)
    case resendLimit
    case notChallenging
    case notFound
}

enum AggregatorCardVerifyOutcome: Sendable {
    case answered(AggregatorCardSnapshot)
    case otpNotSent
    case notFound
}

enum AggregatorCardAuthorizeStep: Sendable {
    case answer(AggregatorCardSnapshot)
    case notAuthenticated(AggregatorCardSnapshot)
    /// The issuer is still deciding: wait this long (real time), then `cardPaymentIssuerAnswered`.
    case awaitIssuer(epoch: UInt64, afterMs: Int64)
    case notFound
}

enum AggregatorCardCaptureOutcome: Sendable {
    case captured(AggregatorCardSnapshot)
    case exceeds
    case notAuthorized(AggregatorCardStatus)
    case notFound
}

enum AggregatorCardVoidOutcome: Sendable {
    case answer(AggregatorCardSnapshot)
    case alreadyCaptured
    case notFound
}

enum AggregatorCardRefundOutcome: Sendable {
    case refunded(AggregatorCardRefund)
    case replayed(AggregatorCardRefund)
    case conflict
    case notFound
    case notCaptured(AggregatorCardStatus)
    case exceeds
    case full
}

extension SandboxWorld {
    /// A payment as it is now: the ACS's answer read while a challenge is open (so a browser that
    /// finished on the challenge page is seen), and a slow issuer's answer settled once it is due
    /// (`uptime`: monotonic real milliseconds, as the authorisation was opened with).
    mutating func cardPayment(_ reference: String, uptime: Int64) -> AggregatorCardSnapshot? {
        guard var payment = cards.alphapay.payments[reference] else { return nil }
        if payment.status == .authenticationRequired, let authentication = acs.authentications[payment.authenticationID] {
            switch authentication.status {
            case .challengeRequired: break
            case .authenticated: payment.status = .authenticated
            case .failed: payment.fail(AggregatorCardError.authenticationFailed)
            }
        }
        if var record = payment.authorisation, record.status == .pending, let due = record.issuerDue, uptime >= due {
            settle(&payment, &record)
        }
        cards.alphapay.payments[reference] = payment
        return AggregatorCardSnapshot(payment: payment, authentication: acs.authentications[payment.authenticationID])
    }

    /// Starts a card payment and its 3-D Secure authentication at the ACS; a repeat of the
    /// reference answers the payment as it is (the same amount) or a conflict.
    mutating func createCardPayment(_ new: NewAggregatorCardPayment, now: Int64, uptime: Int64) -> AggregatorCardCreateOutcome {
        if let repeated = repeatedCardPayment(new.reference, amount: new.amount, uptime: uptime) { return repeated }
        guard cards.alphapay.payments.count < AggregatorCardBook.maximumPayments else { return .full }
        let id = "apc_" + identifiers.hex16()
        let authentication: ACSAuthentication
        switch createAuthentication(NewAuthentication(paymentID: id, cardNumber: new.cardNumber, expiry: new.expiry, amount: new.amount,
                                                      merchantName: new.merchantName, returnURL: new.returnURL)) {
        case .created(let created), .existing(let created): authentication = created
        case .full: return .full
        }
        var payment = AggregatorCardPayment(id: id, reference: new.reference, amount: new.amount, cardNumber: new.cardNumber,
                                            network: new.network, expiry: new.expiry, cvv: new.cvv, authenticationID: authentication.id,
                                            fee: AggregatorCardPayment.fee(new.amount, network: new.network), createdAt: now,
                                            status: .authenticationRequired)
        switch authentication.status {
        case .challengeRequired: break
        case .authenticated: payment.status = .authenticated
        case .failed: payment.fail(AggregatorCardError.authenticationFailed)
        }
        cards.alphapay.payments[new.reference] = payment
        return .created(AggregatorCardSnapshot(payment: payment, authentication: authentication))
    }

    /// A create repeating a reference: the payment as it is now (the same amount), or a
    /// conflict; nil when the reference is new.
    mutating func repeatedCardPayment(_ reference: String, amount: Int64, uptime: Int64) -> AggregatorCardCreateOutcome? {
        guard let existing = cards.alphapay.payments[reference] else { return nil }
        guard existing.amount == amount, let snapshot = cardPayment(reference, uptime: uptime) else { return .conflict }
        return .existing(snapshot)
    }

    /// Has the ACS text the OTP (first call) or a new one (a resend).
    mutating func sendCardPaymentOTP(_ reference: String, now: Int64, uptime: Int64) -> AggregatorCardOTPOutcome {
        guard let before = cardPayment(reference, uptime: uptime) else { return .notFound }
        guard before.payment.status == .authenticationRequired else { return .notChallenging }
        switch sendOTP(before.payment.authenticationID, now: now) {
        case .sent(_, let message):
            guard let after = cardPayment(reference, uptime: uptime) else { return .notFound }
            return .sent(after, message)
        case .resendLimit: return .resendLimit
        case .notChallenging: return .notChallenging
        case .notFound: preconditionFailure("Invalid state: \(reference)'s authentication is missing")
        }
    }

    /// Checks the OTP at the ACS; a payment no longer authenticating answers as it is.
    mutating func verifyCardPaymentOTP(_ reference: String, otp: String, now: Int64, uptime: Int64) -> AggregatorCardVerifyOutcome {
        guard let before = cardPayment(reference, uptime: uptime) else { return .notFound }
        guard before.payment.status == .authenticationRequired else { return .answered(before) }
        switch verifyOTP(before.payment.authenticationID, otp: otp, now: now) {
        case .answered:
            guard let after = cardPayment(reference, uptime: uptime) else { return .notFound }
            return .answered(after)
        case .otpNotSent: return .otpNotSent
        case .notFound: preconditionFailure("Invalid state: \(reference)'s authentication is missing")
        }
    }

    /// The first authorize opens the authorisation (the network's and the issuer's decision,
    /// as for the acquirer's 0100); a repeat answers the outcome, or waits with the first while
    /// a slow issuer decides.
    mutating func authorizeCardPayment(_ reference: String, now: Int64, uptime: Int64) -> AggregatorCardAuthorizeStep {
        guard let snapshot = cardPayment(reference, uptime: uptime), var payment = cards.alphapay.payments[reference] else { return .notFound }
        switch payment.status {
        case .authenticationRequired:
            return .notAuthenticated(snapshot)
        case .failed where payment.authorisation == nil:
            return .notAuthenticated(snapshot)
        case .authorizing:
            let due = payment.authorisation?.issuerDue ?? uptime
            return .awaitIssuer(epoch: epoch, afterMs: max(0, due - uptime))
        case .authorized, .captured, .voided, .failed:
            return .answer(snapshot)
        case .authenticated:
            break
        }
        guard let authentication = acs.authentications[payment.authenticationID] else {
            preconditionFailure("Invalid state: \(reference)'s authentication is missing")
        }
        var record = CardAuthorisation(paymentID: reference, cardNumber: payment.cardNumber, amount: payment.amount,
                                       rrn: identifiers.digits(12), createdAt: now, transmissions: [], status: .declined)
        record.via = .alphapay
        let decision = networkDecides(record, expiry: payment.expiry,
                                      authentication: CardAuthenticationValue(cavv: authentication.cavv, eci: authentication.eci,
                                                                              id: authentication.id), now: now)
        payment.cvv = nil  // the authorisation has taken it
        cards.opened(record)
        switch decision {
        case .answered(let code, let authCode):
            record.responseCode = code
            record.authCode = authCode
            record.status = code == Code.approved ? .approved : .declined
            record.answers.append("0110:" + code)
            if code == Code.approved {
                payment.status = .authorized
            } else {
                payment.fail(AggregatorCardError.code(forISO: code))
            }
            payment.authorisation = record
            cards.alphapay.payments[reference] = payment
            return .answer(AggregatorCardSnapshot(payment: payment, authentication: authentication))
        case .issuerAnswersAfter(let milliseconds):
            record.status = .pending
            record.issuerDue = uptime + milliseconds
            payment.status = .authorizing
            payment.authorisation = record
            cards.alphapay.payments[reference] = payment
            return .awaitIssuer(epoch: epoch, afterMs: milliseconds)
        }
    }

    /// After the wait for a slow issuer: settles the authorisation (once; a repeat that waited
    /// too finds it settled). Nil after a reset.
    mutating func cardPaymentIssuerAnswered(_ reference: String, epoch: UInt64, uptime: Int64) -> AggregatorCardSnapshot? {
        guard epoch == self.epoch, var payment = cards.alphapay.payments[reference] else { return nil }
        if var record = payment.authorisation, record.status == .pending {
            settle(&payment, &record)
            cards.alphapay.payments[reference] = payment
        }
        return cardPayment(reference, uptime: uptime)
    }

    /// A slow issuer's answer: the authorisation settles; the payment becomes authorised or
    /// failed, unless it was voided meanwhile (then an approval's hold is released at once).
    private mutating func settle(_ payment: inout AggregatorCardPayment, _ record: inout CardAuthorisation) {
        settlePending(&record)
        guard let code = record.responseCode else { preconditionFailure("Invalid state: \(record.paymentID) settled without a code") }
        record.answers.append("0110:" + code)
        if payment.status == .authorizing {
            if record.status == .approved {
                payment.status = .authorized
            } else {
                payment.fail(AggregatorCardError.code(forISO: code))
            }
        }
        payment.authorisation = record
    }

    /// Captures up to the authorised amount (the rest of the hold released); a repeat answers the
    /// captured payment again without moving money.
    mutating func captureCardPayment(_ reference: String, amount: Int64, uptime: Int64) -> AggregatorCardCaptureOutcome {
        guard let snapshot = cardPayment(reference, uptime: uptime), var payment = cards.alphapay.payments[reference] else { return .notFound }
        switch payment.status {
        case .captured:
            return .captured(snapshot)
        case .authorized:
            guard var record = payment.authorisation else { preconditionFailure("Invalid state: \(reference) authorised without books") }
            guard amount <= record.amount else { return .exceeds }
            _ = postCapture(&record, amount: amount)
            record.answers.append("0210:" + Code.approved)
            payment.authorisation = record
            payment.status = .captured
            cards.alphapay.payments[reference] = payment
            return .captured(AggregatorCardSnapshot(payment: payment, authentication: snapshot.authentication))
        default:
            return .notAuthorized(payment.status)
        }
    }

    /// Voids: an authorised payment's hold is released; one still being authorised is voided at
    /// once and its hold released when the issuer answers; one never authorised is voided with
    /// nothing to release (its open challenge cancelled), so a later authorize holds nothing.
    mutating func voidCardPayment(_ reference: String, uptime: Int64) -> AggregatorCardVoidOutcome {
        guard let snapshot = cardPayment(reference, uptime: uptime), var payment = cards.alphapay.payments[reference] else { return .notFound }
        switch payment.status {
        case .captured:
            return .alreadyCaptured
        case .failed, .voided:
            return .answer(snapshot)
        case .authorized:
            guard var record = payment.authorisation else { preconditionFailure("Invalid state: \(reference) authorised without books") }
            releaseHold(&record)
            record.answers.append("0410:" + Code.approved)
            payment.authorisation = record
        case .authorizing:
            guard var record = payment.authorisation else { preconditionFailure("Invalid state: \(reference) authorising without books") }
            record.reversalRequested = true
            record.answers.append("0410:" + Code.approved)
            payment.authorisation = record
        case .authenticationRequired:
            _ = cancelAuthentication(payment.authenticationID)
        case .authenticated:
            break
        }
        payment.status = .voided
        payment.cvv = nil
        cards.alphapay.payments[reference] = payment
        return .answer(AggregatorCardSnapshot(payment: payment, authentication: acs.authentications[payment.authenticationID]))
    }

    /// Refunds part or all of the captured amount to the card; idempotent by refund reference
    /// (the same payment and amount answer the stored refund, anything else is a conflict).
    mutating func refundCardPayment(_ reference: String, refundReference: String, amount: Int64, uptime: Int64) -> AggregatorCardRefundOutcome {
        if let existing = cards.alphapay.refunds[refundReference] {
            return existing.paymentReference == reference && existing.amount == amount ? .replayed(existing) : .conflict
        }
        guard cardPayment(reference, uptime: uptime) != nil, var payment = cards.alphapay.payments[reference] else { return .notFound }
        guard payment.status == .captured, var record = payment.authorisation else { return .notCaptured(payment.status) }
        guard amount <= record.captured - record.refunded else { return .exceeds }
        guard cards.alphapay.refunds.count < AggregatorCardBook.maximumRefunds,
              record.refunds.count < CardBooks.maximumRefundsPerPayment else { return .full }
        _ = postRefund(&record, refundID: refundReference, amount: amount)
        record.answers.append("0210:" + Code.approved)
        payment.authorisation = record
        cards.alphapay.payments[reference] = payment
        let refund = AggregatorCardRefund(id: "apcr_" + identifiers.hex16(), refundReference: refundReference, paymentReference: reference,
                                          amount: amount)
        cards.alphapay.refunds[refundReference] = refund
        return .refunded(refund)
    }
}
