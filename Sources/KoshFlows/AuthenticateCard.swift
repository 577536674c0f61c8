import KoshCore
import KoshJSON

/// What a step of a card payment's authentication answers: Razorpay's bodies, written as they are.
public struct CardStepReply: Sendable, Equatable {
    public let status: Int
    public let body: JSON
}

/// Where the cardholder's browser goes when 3-D Secure is over: the merchant's `callback_url`
/// (POSTed the fields) or, without one, Kosh's own result page showing them.
public struct CardBrowserResult: Sendable, Equatable {
    public let callbackURL: String?
    public let fields: [String: String]
    public let succeeded: Bool
}

/// The OTP limits of the API (the ACS keeps its own count of wrong tries).
public enum CardOTPInput {
    /// Razorpay's test mode takes 4–10 digits; issuers' OTPs are 6 or 8.
    public static let maximumLength = 12
}

extension PaymentFlows {
    /// `POST /v1/payments/:id/otp_generate`: starts 3-D Secure with the issuer's ACS when not
    /// started yet, and has the OTP texted to the cardholder. A card the ACS refuses fails here.
    public func generateCardOTP(merchantID: ID<Merchant>?, paymentID: ID<Payment>) async throws -> CardStepReply {
        let cards = try requireCards()
        let (payment, cardPayment) = try await cardPayment(paymentID, merchantID: merchantID)
        guard payment.state == .created, cardPayment.stage == .authenticating else { return try await finalReply(payment) }
        // The connector that started it: the payment may have moved to its next route.
        let (authentication, connector) = try await startAuthentication(payment, cardPayment, cards)
        switch authentication.state {
        case .failed, .authenticated: return try await finalReply(paymentID: paymentID)
        case .challengeRequired: break
        }
        do {
            _ = try await connector.sendOTP(authenticationID: authentication.id)
        } catch CardOTPProblem.resendLimit {
            throw KoshError.badRequest("The OTP cannot be sent again for this payment", field: "otp", reason: "otp_resend_limit_reached")
        } catch {
            throw KoshError(.gatewayError, "The bank's authentication service did not answer; try again", source: "bank",
                            step: "payment_authentication", reason: "authentication_service_unavailable")
        }
        let id = payment.id.rawValue
        var metadata: [(String, JSON)] = []
        if let card = payment.card {
            metadata = [("issuer", card.issuer.map { .string($0) } ?? .null), ("network", .string(card.network.methodCode)), ("last4", .string(card.last4)),
                        ("iin", .string(card.iin))]
        }
        return CardStepReply(status: 200, body: .object([
            ("razorpay_payment_id", .string(id)),
            ("next", .array([
                .object([("action", .string("otp_submit")), ("url", .string(cards.url("/v1/payments/\(id)/otp_submit/json")))]),
                .object([("action", .string("otp_resend")), ("url", .string(cards.url("/v1/payments/\(id)/otp_resend/json")))]),
            ])),
            ("metadata", .object(metadata)),
        ]))
    }

    /// `POST /v1/payments/:id/otp/submit` (and `/otp_submit/…`): checks the OTP with the ACS;
    /// once authenticated, authorises with the card network and answers the signed result.
    public func submitCardOTP(merchantID: ID<Merchant>?, paymentID: ID<Payment>, otp: String) async throws -> CardStepReply {
        let cards = try requireCards()
        guard (1...CardOTPInput.maximumLength).contains(otp.utf8.count), otp.utf8.allSatisfy({ (48...57).contains($0) }) else {
            throw KoshError.badRequest("The OTP must be 1 to \(CardOTPInput.maximumLength) digits", field: "otp")
        }
        let (payment, cardPayment) = try await cardPayment(paymentID, merchantID: merchantID)
        guard payment.state == .created, cardPayment.stage == .authenticating else { return try await finalReply(payment) }
        guard let authenticationID = cardPayment.authenticationID else {
            throw KoshError.badRequest("Generate the OTP first (otp_generate)", field: "otp", reason: "otp_not_generated")
        }
        let connector = try cards.connector(for: payment)
        let verified: CardAuthentication
        do {
            verified = try await connector.verifyOTP(authenticationID: authenticationID, otp: otp)
        } catch {
            throw KoshError(.gatewayError, "The bank's authentication service did not answer; try again", source: "bank",
                            step: "payment_authentication", reason: "authentication_service_unavailable")
        }
        switch verified.state {
        case .challengeRequired(let attemptsLeft, _):
            return CardStepReply(status: 400, body: .object([
                ("error", .object([
                    ("code", .string("BAD_REQUEST_ERROR")),
                    ("description", .string("payment processing failed because of incorrect otp")),
                    ("source", .string("customer")), ("step", .string("payment_authentication")), ("reason", .string("incorrect_otp")),
                    ("field", .string("otp")),
                    ("metadata", .object([("payment_id", .string(payment.id.rawValue)), ("attempts_left", .int(Int64(attemptsLeft)))])),
                ])),
                ("next", .array([.string("otp_submit"), .string("otp_resend")])),
            ]))
        case .failed(let reason):
            return try await finalReply(try await failCardAuthentication(paymentID: paymentID, CardResponseCodes.authenticationFailure(reason: reason)))
        case .authenticated:
            // The payment as the authorisation left it: no read again.
            return try await finalReply(try await authorizeCard(paymentID: paymentID, authentication: verified))
        }
    }

    /// `POST /v1/payments/:id/otp/resend`.
    public func resendCardOTP(merchantID: ID<Merchant>?, paymentID: ID<Payment>) async throws -> CardStepReply {
        let cards = try requireCards()
        let (payment, cardPayment) = try await cardPayment(paymentID, merchantID: merchantID)
        guard payment.state == .created, cardPayment.stage == .authenticating, let id = cardPayment.authenticationID else {
            throw KoshError.badRequest("The OTP cannot be resent for this payment now", field: "otp", reason: "otp_not_generated")
        }
        do {
            _ = try await cards.connector(for: payment).sendOTP(authenticationID: id)
        } catch CardOTPProblem.resendLimit {
            throw KoshError.badRequest("The OTP cannot be sent again for this payment", field: "otp", reason: "otp_resend_limit_reached")
        }
        return CardStepReply(status: 200, body: .object([
            ("next", .array([.string("otp_submit"), .string("otp_resend")])), ("razorpay_payment_id", .string(payment.id.rawValue)),
        ]))
    }

    /// `GET /v1/payments/:id/authenticate` (the `redirect` action, opened by the cardholder's
    /// browser): where to send the browser — the ACS's challenge page, or the result when the
    /// payment is past authentication.
    public func cardChallengeURL(paymentID: ID<Payment>) async throws -> String? {
        let cards = try requireCards()
        let (payment, cardPayment) = try await cardPayment(paymentID, merchantID: nil)
        guard payment.state == .created, cardPayment.stage == .authenticating else { return nil }
        let (authentication, _) = try await startAuthentication(payment, cardPayment, cards)
        guard case .challengeRequired = authentication.state else { return nil }
        return authentication.challengeURL
    }

    /// The ACS sent the browser back (`POST /v1/payments/:id/authentication/return`): the
    /// redirect alone is never trusted — Kosh asks the ACS itself how the authentication ended,
    /// then authorises or fails the payment. Answers where the browser goes next.
    public func cardAuthenticationReturned(paymentID: ID<Payment>) async throws -> CardBrowserResult {
        let cards = try requireCards()
        let (payment, cardPayment) = try await cardPayment(paymentID, merchantID: nil)
        if payment.state == .created, cardPayment.stage == .authenticating, let id = cardPayment.authenticationID,
           // An ACS that does not answer now (timeout, outage) leaves the payment waiting: the
           // browser sees it pending, and the janitor's `checkCard` asks the ACS again.
           let confirmed = try? await cards.connector(for: payment).authentication(id: id) {
            switch confirmed.state {
            case .authenticated: try await authorizeCard(paymentID: paymentID, authentication: confirmed)
            case .failed(let reason): try await failCardAuthentication(paymentID: paymentID, CardResponseCodes.authenticationFailure(reason: reason))
            case .challengeRequired: break
            }
        }
        return try await browserResult(paymentID: paymentID)
    }

    /// The fields the browser carries to the merchant: the signed success, or Razorpay's `error[…]` fields.
    public func browserResult(paymentID: ID<Payment>) async throws -> CardBrowserResult {
        let (payment, cardPayment) = try await cardPayment(paymentID, merchantID: nil)
        return try await browserResult(payment, callbackURL: cardPayment.callbackURL)
    }

    /// The answer once authentication is over: the signed result when authorised, Razorpay's
    /// error when failed, a `poll` action while the outcome is unknown.
    func finalReply(paymentID: ID<Payment>) async throws -> CardStepReply {
        try await finalReply(try await self.payment(id: paymentID))
    }

    /// `finalReply(paymentID:)` for the payment as the caller just read or wrote it.
    func finalReply(_ payment: Payment) async throws -> CardStepReply {
        switch payment.state {
        case .authorized, .captured, .refunded:
            let signature = try await requireCards().signer.signature(merchantID: payment.merchantID, orderID: payment.orderID, paymentID: payment.id)
            return CardStepReply(status: 200, body: .object([
                ("razorpay_payment_id", .string(payment.id.rawValue)), ("razorpay_order_id", .string(payment.orderID.rawValue)),
                ("razorpay_signature", .string(signature)),
            ]))
        case .failed, .voided:
            let failure = payment.machine.failure ?? PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment failed", source: "gateway",
                                                                    step: "payment_authorization", reason: "payment_failed")
            return CardStepReply(status: 400, body: .object([("error", .object([
                ("code", .string(failure.code)), ("description", .string(failure.description)), ("source", .string(failure.source)),
                ("step", .string(failure.step)), ("reason", .string(failure.reason)),
                ("metadata", .object([("payment_id", .string(payment.id.rawValue)), ("order_id", .string(payment.orderID.rawValue))])),
            ]))]))
        case .created, .pending:
            return CardStepReply(status: 200, body: .object([
                ("razorpay_payment_id", .string(payment.id.rawValue)),
                ("next", .array([.object([("action", .string("poll")),
                                          ("url", .string(try requireCards().url("/v1/payments/\(payment.id.rawValue)")))])])),
            ]))
        }
    }
}
