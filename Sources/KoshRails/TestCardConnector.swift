import KoshCore
import Synchronization

/// The card connector behind `rzp_test_` keys: Razorpay's test mode for cards, in-process.
///
/// - 3-D Secure: every domestic card takes the challenge; an OTP of 4–10 digits passes, any
///   other counts as wrong (3 wrong tries fail the payment); international cards are frictionless.
/// - Outcomes by card number, as Razorpay's test cards have them (`4100 2800 000X 000Y`,
///   Mastercard `5305 6200 000X 000Y`): X = 9 the bank times out, 8 insufficient funds,
///   7 the customer cancels on the bank's page, 6/5/4 declined, 3 not enabled for online
///   payments, 2 technical error, 1 invalid number, 0 with Y = 9 authentication fails. Any
///   other card is approved. Captures, voids and refunds are approved at once.
///
/// The card number is read from the vault here and nowhere else, as the live connector does.
public final class TestCardConnector: CardConnector {
    public let name = "test_card"
    static let attempts = 3
    static let resends = 3

    struct Authentication {
        let paymentID: ID<Payment>
        var attemptsLeft: Int
        var resendsLeft: Int
        var state: CardAuthenticationState
        var otpSent = false
        /// The card's test outcome says the customer cancels on the bank's page.
        let cancels: Bool
    }

    let vault: any CardVault
    let bins: BINTable
    let authentications = Mutex<[String: Authentication]>([:])

    public init(vault: any CardVault, bins: BINTable) {
        self.vault = vault
        self.bins = bins
    }

    /// What Razorpay's test cards do, by the digit pair that names the error (nil: approved).
    static func outcome(of number: String) -> (stage: String, code: String)? {
        let digits = Array(number)
        guard digits.count == 16, number.hasPrefix("410028") || number.hasPrefix("530562"), let x = digits[11].wholeNumberValue,
              String(digits[6...10]) == "00000", String(digits[12...14]) == "000" else { return nil }
        switch x {
        case 9: return ("authorize", "91")
        case 8: return ("authorize", "51")
        case 7: return ("authenticate", "payment_cancelled")
        case 6, 5, 4: return ("authorize", "05")
        case 3: return ("authorize", "57")
        case 2: return ("authorize", "96")
        case 1: return ("authorize", "14")
        case 0 where digits[15] == "9": return ("begin", "authentication_failed")
        default: return nil
        }
    }

    public func beginAuthentication(_ payment: CardPaymentContext, returnURL: String) async throws -> CardAuthentication {
        let id = "test_acs_" + payment.paymentID.rawValue.dropFirst("pay_".count)
        if let existing = authentications.withLock({ $0[id] }) {
            return CardAuthentication(id: id, challengeURL: nil, state: existing.state)
        }
        let (card, _) = try await vault.detokenize(token: payment.vaultToken, takeCVV: false)
        let outcome = Self.outcome(of: card.number)
        let state: CardAuthenticationState
        if outcome?.stage == "begin" {
            state = .failed(reason: "authentication_failed")
        } else if let number = try? CardNumber(card.number), !["IN", ""].contains(bins.lookup(number).country) {
            state = .authenticated(eci: "05", cavv: "TEST" + id.suffix(12))
        } else {
            state = .challengeRequired(attemptsLeft: Self.attempts, resendsLeft: Self.resends)
        }
        authentications.withLock {
            $0[id] = Authentication(paymentID: payment.paymentID, attemptsLeft: Self.attempts, resendsLeft: Self.resends, state: state,
                                    cancels: outcome?.stage == "authenticate")
        }
        return CardAuthentication(id: id, challengeURL: nil, state: state)
    }

    public func sendOTP(authenticationID: String) async throws -> CardAuthentication {
        let result: Result<CardAuthentication, CardOTPProblem>? = authentications.withLock { all in
            guard var entry = all[authenticationID] else { return nil }
            if entry.otpSent {
                guard entry.resendsLeft > 0 else { return .failure(.resendLimit) }
                entry.resendsLeft -= 1
            }
            entry.otpSent = true
            if case .challengeRequired = entry.state { entry.state = .challengeRequired(attemptsLeft: entry.attemptsLeft, resendsLeft: entry.resendsLeft) }
            all[authenticationID] = entry
            return .success(CardAuthentication(id: authenticationID, challengeURL: nil, state: entry.state))
        }
        guard let result else { throw CardVaultError.notFound }
        return try result.get()
    }

    public func verifyOTP(authenticationID: String, otp: String) async throws -> CardAuthentication {
        guard let entry = authentications.withLock({ $0[authenticationID] }) else { throw CardVaultError.notFound }
        guard case .challengeRequired = entry.state else { return CardAuthentication(id: authenticationID, challengeURL: nil, state: entry.state) }
        let valid = (4...10).contains(otp.count) && otp.allSatisfy(\.isASCII) && otp.allSatisfy(\.isNumber)
        let cancelled = valid && entry.cancels
        let state: CardAuthenticationState = authentications.withLock { all in
            guard var current = all[authenticationID] else { return .failed(reason: "expired") }
            if cancelled {
                current.state = .failed(reason: "payment_cancelled")
            } else if valid {
                current.state = .authenticated(eci: "05", cavv: "TEST" + authenticationID.suffix(12))
            } else {
                current.attemptsLeft -= 1
                current.state = current.attemptsLeft > 0
                    ? .challengeRequired(attemptsLeft: current.attemptsLeft, resendsLeft: current.resendsLeft)
                    : .failed(reason: "too_many_attempts")
            }
            all[authenticationID] = current
            return current.state
        }
        return CardAuthentication(id: authenticationID, challengeURL: nil, state: state)
    }

    public func authentication(id: String) async throws -> CardAuthentication {
        guard let entry = authentications.withLock({ $0[id] }) else { throw CardVaultError.notFound }
        return CardAuthentication(id: id, challengeURL: nil, state: entry.state)
    }

    public func authorize(_ payment: CardPaymentContext, authentication: CardAuthentication)
        async throws -> (answer: CardNetworkAnswer, reference: CardAuthorizationReference?) {
        guard case .authenticated = authentication.state else {
            return (.declined(responseCode: "63", CardResponseCodes.failure(responseCode: "63")), nil)
        }
        // The CVV is taken (and so dropped from the vault's memory) as the acquirer would take it.
        let (card, _) = try await vault.detokenize(token: payment.vaultToken, takeCVV: true)
        if let outcome = Self.outcome(of: card.number), outcome.stage == "authorize" {
            return (.declined(responseCode: outcome.code, CardResponseCodes.failure(responseCode: outcome.code)), nil)
        }
        let rrn = Self.rrn(payment.paymentID.rawValue)
        let code = String(rrn.suffix(6))
        return (.approved(authCode: code, rrn: rrn), CardAuthorizationReference(stan: String(rrn.suffix(6)), transmission: "0000000000", rrn: rrn, authCode: code))
    }

    public func resolveTimeout(_ payment: CardPaymentContext, reference: CardAuthorizationReference?) async throws -> CardNetworkAnswer {
        .reversedAfterTimeout
    }

    public func capture(_ payment: CardPaymentContext, amount: Int64, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer {
        .approved(authCode: reference.authCode, rrn: reference.rrn)
    }

    public func reverse(_ payment: CardPaymentContext, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer {
        .approved(authCode: nil, rrn: reference.rrn)
    }

    public func refund(_ payment: CardPaymentContext, refundID: ID<Refund>, amount: Int64, reference: CardAuthorizationReference)
        async throws -> CardNetworkAnswer {
        .approved(authCode: nil, rrn: Self.rrn(refundID.rawValue))
    }

    /// 12 digits from an id (FNV-1a), as an acquirer's retrieval reference number.
    static func rrn(_ id: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in id.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        let digits = String(hash % 1_000_000_000_000)
        return String(repeating: "0", count: 12 - digits.count) + digits
    }
}
