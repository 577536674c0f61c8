import Foundation
import KoshJSON

/// The 3-D Secure ACS's authentications (docs/CARDS.md §3), part of `SandboxWorld`.
struct ACSBook: Sendable {
    static let maximumAuthentications = 1_000_000
    static let otpLength = 6
    static let otpValidityMs: Int64 = 5 * 60 * 1000
    static let maximumAttempts = 3
    static let maximumResends = 3
    static let eci = "05"

    var authentications: [String: ACSAuthentication] = [:]
    /// Authentication id by Kosh payment id, and by the CAVV it issued.
    var byPayment: [String: String] = [:]
    var byCAVV: [String: String] = [:]

    /// Whether the ACS issued this authentication value for this card and amount (with this ECI
    /// and authentication id, when they are sent).
    func vouches(card: String, amount: Int64, cavv: String?, eci: String?, authenticationID: String?) -> Bool {
        guard let cavv, let id = authenticationID ?? byCAVV[cavv], let authentication = authentications[id] else { return false }
        return authentication.status == .authenticated && authentication.cavv == cavv && authentication.cardNumber == card
            && authentication.amount == amount && (eci == nil || eci == authentication.eci)
    }
}

enum ACSStatus: String, Sendable {
    case challengeRequired = "challenge_required"
    case authenticated
    case failed
}

struct NewAuthentication: Sendable {
    let paymentID: String
    let cardNumber: String
    let expiry: String
    let amount: Int64
    let merchantName: String
    let returnURL: String
}

struct ACSAuthentication: Sendable {
    let id: String
    let request: NewAuthentication
    let card: TestCard?
    var status: ACSStatus
    /// Why it failed, or why the last OTP was not taken (`incorrect_otp`, `otp_expired`).
    var reason: String?
    var eci: String?
    var cavv: String?
    var attemptsLeft = ACSBook.maximumAttempts
    var resendsLeft = ACSBook.maximumResends
    var otp: String?
    var otpExpiresAt: Int64 = 0

    var cardNumber: String { request.cardNumber }
    var amount: Int64 { request.amount }

    /// The API's view; `challengeURL` is where the browser page is served.
    func json(challengeURL: String) -> JSON {
        var fields: [(String, JSON)] = [("id", .string(id)), ("payment_id", .string(request.paymentID)), ("status", .string(status.rawValue))]
        switch status {
        case .challengeRequired:
            fields += [("challenge_url", .string(challengeURL)), ("otp_length", .int(Int64(ACSBook.otpLength))),
                       ("attempts_left", .int(Int64(attemptsLeft))), ("resends_left", .int(Int64(resendsLeft))),
                       ("otp_sent", .bool(otp != nil))]
            if let reason { fields.append(("reason", .string(reason))) }
        case .authenticated:
            fields += [("eci", .optional(eci)), ("cavv", .optional(cavv))]
        case .failed:
            fields.append(("reason", .optional(reason)))
        }
        return .object(fields)
    }
}

/// A text for the cardholder's phone, sent outside the world's lock.
struct OTPMessage: Sendable {
    let to: String
    let text: String
    let reference: String
}

enum ACSCreateOutcome: Sendable {
    case created(ACSAuthentication)
    case existing(ACSAuthentication)
    case full
}

enum ACSOTPOutcome: Sendable {
    case sent(ACSAuthentication, OTPMessage)
    case resendLimit(ACSAuthentication)
    case notChallenging(ACSAuthentication)
    case notFound
}

enum ACSVerifyOutcome: Sendable {
    case answered(ACSAuthentication)
    case otpNotSent(ACSAuthentication)
    case notFound
}

extension SandboxWorld {
    /// Starts the authentication of a payment, or answers the one already started for it.
    mutating func createAuthentication(_ new: NewAuthentication) -> ACSCreateOutcome {
        if let id = acs.byPayment[new.paymentID], let existing = acs.authentications[id] { return .existing(existing) }
        guard acs.authentications.count < ACSBook.maximumAuthentications else { return .full }
        let card = CardMask.isLuhnValid(new.cardNumber) ? TestCards.card(new.cardNumber) : nil
        var authentication = ACSAuthentication(id: "acs_" + identifiers.hex16(), request: new, card: card, status: .challengeRequired)
        if card == nil || card?.behaviour == .failAuthentication {
            authentication.status = .failed
            authentication.reason = "authentication_failed"
        } else if card?.domestic == false {
            authenticate(&authentication)  // international cards: frictionless
        }
        acs.authentications[authentication.id] = authentication
        acs.byPayment[new.paymentID] = authentication.id
        return .created(authentication)
    }

    func authentication(_ id: String) -> ACSAuthentication? { acs.authentications[id] }

    /// Sends the OTP (first call) or a new one (a resend, at most `maximumResends`).
    mutating func sendOTP(_ id: String, now: Int64) -> ACSOTPOutcome {
        guard var authentication = acs.authentications[id] else { return .notFound }
        guard authentication.status == .challengeRequired, let card = authentication.card else { return .notChallenging(authentication) }
        if authentication.otp != nil {
            guard authentication.resendsLeft > 0 else { return .resendLimit(authentication) }
            authentication.resendsLeft -= 1
        }
        let otp = identifiers.digits(ACSBook.otpLength)
        authentication.otp = otp
        authentication.otpExpiresAt = now + ACSBook.otpValidityMs
        authentication.reason = nil
        acs.authentications[id] = authentication
        let request = authentication.request
        let text = "\(otp) is the OTP for your payment of ₹\(Rupees.indian(request.amount)) at \(request.merchantName). "
            + "Do not share it. - \(card.issuer)"
        return .sent(authentication, OTPMessage(to: card.phone, text: text, reference: id))
    }

    /// Checks an OTP: right → authenticated; wrong → one attempt fewer (failed after the last);
    /// expired → a resend is needed (failed when none is left). A final authentication answers as it is.
    mutating func verifyOTP(_ id: String, otp: String, now: Int64) -> ACSVerifyOutcome {
        guard var authentication = acs.authentications[id] else { return .notFound }
        guard authentication.status == .challengeRequired else { return .answered(authentication) }
        guard let expected = authentication.otp else { return .otpNotSent(authentication) }
        if authentication.card?.behaviour == .cancelAtACS {
            fail(&authentication, "payment_cancelled")
        } else if now >= authentication.otpExpiresAt {
            if authentication.resendsLeft > 0 {
                authentication.reason = "otp_expired"
            } else {
                fail(&authentication, "expired")
            }
        } else if Self.sameDigits(otp, expected) {
            authenticate(&authentication)
        } else {
            authentication.attemptsLeft -= 1
            if authentication.attemptsLeft == 0 {
                fail(&authentication, "too_many_attempts")
            } else {
                authentication.reason = "incorrect_otp"
            }
        }
        acs.authentications[id] = authentication
        return .answered(authentication)
    }

    /// The cardholder pressed cancel on the challenge page.
    mutating func cancelAuthentication(_ id: String) -> ACSAuthentication? {
        guard var authentication = acs.authentications[id] else { return nil }
        if authentication.status == .challengeRequired {
            fail(&authentication, "payment_cancelled")
            acs.authentications[id] = authentication
        }
        return authentication
    }

    private mutating func authenticate(_ authentication: inout ACSAuthentication) {
        var bytes: [UInt8] = []
        for _ in 0..<3 { withUnsafeBytes(of: identifiers.next().bigEndian) { bytes += $0 } }
        let cavv = Data(bytes.prefix(20)).base64EncodedString()
        authentication.status = .authenticated
        authentication.reason = nil
        authentication.eci = ACSBook.eci
        authentication.cavv = cavv
        authentication.otp = nil
        acs.byCAVV[cavv] = authentication.id
    }

    private func fail(_ authentication: inout ACSAuthentication, _ reason: String) {
        authentication.status = .failed
        authentication.reason = reason
        authentication.otp = nil
    }

    /// Compares without stopping at the first difference.
    static func sameDigits(_ given: String, _ expected: String) -> Bool {
        let a = Array(given.utf8), b = Array(expected.utf8)
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

enum Rupees {
    /// 50000000 paise → "5,00,000.00" (Indian digit grouping).
    static func indian(_ paise: Int64) -> String {
        let plain = Amounts.rupees(fromPaise: max(0, paise))
        let parts = plain.split(separator: ".")
        var whole = Array(parts[0])
        var groups: [String] = []
        if whole.count > 3 {
            groups.insert(String(whole.suffix(3)), at: 0)
            whole.removeLast(3)
            while whole.count > 2 {
                groups.insert(String(whole.suffix(2)), at: 0)
                whole.removeLast(2)
            }
        }
        groups.insert(String(whole), at: 0)
        return groups.joined(separator: ",") + "." + parts[1]
    }
}
