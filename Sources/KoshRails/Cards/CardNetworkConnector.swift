import KoshCore
import KoshISO8583
import Logging
import Metrics
import Synchronization

/// How the card connector talks to the acquirer and the ACS.
public struct CardNetworkConfiguration: Sendable {
    /// The connector's name in routes and logs.
    public var name: String
    /// Field 32, the acquiring institution.
    public var acquirerID: String
    /// Field 41, the terminal.
    public var terminalID: String
    /// Field 18, the merchant category code.
    public var merchantCategoryCode: String
    /// How long a 0100 waits before Kosh reverses it.
    public var authorizationTimeout: Duration
    /// How long a capture or refund (0200) or a void (0400) waits; past that the answer is `.unknown`.
    public var financialTimeout: Duration
    /// How long a timeout reversal (0400) or an advice (0420) waits.
    public var reversalTimeout: Duration
    /// Advices (0420) sent in the background after an unanswered timeout reversal; after the
    /// last, only `resolveTimeout` (the janitor) sends more.
    public var adviceAttempts: Int
    /// The wait before the first advice; it doubles after each, up to `maximumAdviceBackoff`.
    public var adviceBackoff: Duration
    public var maximumAdviceBackoff: Duration
    /// Payments whose timeout reversal is followed in memory at once; past that new ones are
    /// left to `resolveTimeout`.
    public var maximumPendingReversals: Int
    /// Each ACS call's timeout.
    public var acsTimeoutMillis: Int64

    public init(name: String = "acquirer", acquirerID: String = "400001", terminalID: String = "KOSH0001",
                merchantCategoryCode: String = "5999", authorizationTimeout: Duration = .seconds(10),
                financialTimeout: Duration = .seconds(10), reversalTimeout: Duration = .seconds(5), adviceAttempts: Int = 8,
                adviceBackoff: Duration = .seconds(2), maximumAdviceBackoff: Duration = .seconds(60),
                maximumPendingReversals: Int = 10_000, acsTimeoutMillis: Int64 = 5_000) {
        self.name = name
        self.acquirerID = acquirerID
        self.terminalID = terminalID
        self.merchantCategoryCode = merchantCategoryCode
        self.authorizationTimeout = authorizationTimeout
        self.financialTimeout = financialTimeout
        self.reversalTimeout = reversalTimeout
        self.adviceAttempts = adviceAttempts
        self.adviceBackoff = adviceBackoff
        self.maximumAdviceBackoff = maximumAdviceBackoff
        self.maximumPendingReversals = maximumPendingReversals
        self.acsTimeoutMillis = acsTimeoutMillis
    }
}

/// The card connector of the cardholder-data zone: 3-D Secure with the ACS, and the acquirer
/// over ISO 8583 (docs/CARDS.md). It alone turns a vault token back into a card, at the moment
/// it builds a 0100 (or asks the ACS to authenticate), and drops it once sent; the CVV is taken
/// (and so gone from the vault) for the 0100 only. Captures, refunds and reversals name the
/// authorisation (field 90 and `PI`) and never read the vault. Nothing it logs or throws holds
/// a card number, expiry, CVV or CAVV.
public final class CardNetworkConnector: CardConnector {
    public let name: String
    public let configuration: CardNetworkConfiguration
    let vault: any CardVault
    let client: ISO8583Client
    let acs: ACSClient
    let builder: CardMessageBuilder
    let rrns = RRNGenerator()
    let clock: any KoshClock
    let logger: Logger
    let metrics: any MetricsFactory
    let counters = Mutex<[String: Counter]>([:])
    let reversals = Mutex(ReversalBook())

    /// `client` and the advices' tasks belong to the connector from now on: `shutdown()` ends them.
    public init(vault: any CardVault, client: ISO8583Client, http: UpstreamHTTP, configuration: CardNetworkConfiguration = .init(),
                clock: any KoshClock = SystemClock(), logger: Logger = Logger(label: "kosh.cards"),
                metrics: any MetricsFactory = MetricsSystem.factory) {
        precondition(configuration.acquirerID.count <= 11 && configuration.acquirerID.allSatisfy(\.isNumber), "the acquirer id is ≤ 11 digits")
        precondition((0...100).contains(configuration.adviceAttempts), "0…100 advices")
        self.name = configuration.name
        self.configuration = configuration
        self.vault = vault
        self.client = client
        self.acs = ACSClient(http: http, vault: vault, connector: configuration.name, timeoutMillis: configuration.acsTimeoutMillis)
        self.builder = CardMessageBuilder(acquirerID: configuration.acquirerID, terminalID: configuration.terminalID,
                                          merchantCategoryCode: configuration.merchantCategoryCode)
        self.clock = clock
        self.logger = logger
        self.metrics = metrics
    }

    /// Stops the background advices and closes the acquirer connections.
    public func shutdown() async {
        let tasks = reversals.withLock { $0.shutDown() }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
        await client.shutdown()
    }

    // MARK: - 3-D Secure

    public func beginAuthentication(_ payment: CardPaymentContext, returnURL: String) async throws -> CardAuthentication {
        try await acs.begin(payment, returnURL: returnURL)
    }

    public func sendOTP(authenticationID: String) async throws -> CardAuthentication {
        try await acs.sendOTP(id: authenticationID)
    }

    public func verifyOTP(authenticationID: String, otp: String) async throws -> CardAuthentication {
        try await acs.verify(id: authenticationID, otp: otp)
    }

    public func authentication(id: String) async throws -> CardAuthentication {
        try await acs.authentication(id: id)
    }

    // MARK: - The acquirer

    public func authorize(_ payment: CardPaymentContext, authentication: CardAuthentication)
        async throws -> (answer: CardNetworkAnswer, reference: CardAuthorizationReference?) {
        let time = CardMessageTime(clock.now)
        let rrn = rrns.next(for: payment.paymentID)
        _ = try CardMessageBuilder.amount(payment.amount)  // refused before the CVV is taken
        let (card, cvv) = try await vault.detokenize(token: payment.vaultToken, takeCVV: true)
        let request: ISO8583Message
        do {
            request = try builder.authorization(payment, card: card, cvv: cvv, authentication: authentication, time: time, rrn: rrn)
        } catch {
            if let cvv { try? await vault.attachCVV(token: payment.vaultToken, cvv: cvv) }
            throw error
        }
        var logger = logger
        logger[metadataKey: "payment.id"] = "\(payment.paymentID.rawValue)"
        do {
            let answer = try await client.exchange(request, timeout: configuration.authorizationTimeout)
            let reference = CardAuthorizationReference(stan: answer.stan, transmission: time.transmission, rrn: answer.message[37] ?? rrn,
                                                       authCode: answer.message[38])
            guard let code = trustedResponseCode(answer.message, payment: payment, refundID: nil, amount: payment.amount, logger: logger) else {
                count("0100", "bad_answer")
                return (await reverseAfterTimeout(payment, original: reference, logger: logger), reference)
            }
            count("0100", code == "00" ? "approved" : "declined")
            logger.info("card authorisation answered", metadata: ["iso8583.stan": "\(answer.stan)", "iso8583.response_code": "\(code)"])
            let result: CardNetworkAnswer = code == "00" ? .approved(authCode: answer.message[38], rrn: reference.rrn)
                : .declined(responseCode: code, CardResponseCodes.failure(responseCode: code))
            return (result, reference)
        } catch let error as ISO8583ClientError {
            guard error.kind == .sentNoAnswer, let stan = error.stan else {
                count("0100", "not_sent")
                // The acquirer never saw it: the CVV goes back to the vault for the next try.
                if let cvv { try? await vault.attachCVV(token: payment.vaultToken, cvv: cvv) }
                throw CardNetworkUnavailable("the authorisation was not sent: \(error.reason)")
            }
            count("0100", "no_answer")
            logger.warning("card authorisation unanswered: reversing it", metadata: ["iso8583.stan": "\(stan)", "error": "\(error.reason)"])
            let reference = CardAuthorizationReference(stan: stan, transmission: time.transmission, rrn: rrn, authCode: nil)
            return (await reverseAfterTimeout(payment, original: reference, logger: logger), reference)
        }
    }

    /// Answered already (in memory): `.reversedAfterTimeout`. Else one more advice, naming the
    /// original from `reference` (or from memory); with neither, nothing can name the 0100
    /// (a guessed field 90 would be answered 25, "nothing charged", wrongly): `.unknown`, logged.
    public func resolveTimeout(_ payment: CardPaymentContext, reference: CardAuthorizationReference?) async throws -> CardNetworkAnswer {
        var logger = logger
        logger[metadataKey: "payment.id"] = "\(payment.paymentID.rawValue)"
        let (answered, remembered) = reversals.withLock { ($0.answered(payment.paymentID), $0.entries[payment.paymentID]?.original) }
        if answered {
            _ = reversals.withLock { $0.forget(payment.paymentID) }
            return .reversedAfterTimeout
        }
        guard let original = reference ?? remembered else {
            logger.error("no reference to the timed-out authorisation: its reversal cannot be sent; an operator must settle it")
            return .unknown
        }
        if await sendReversal(payment, original: original, advice: true, logger: logger) {
            reversals.withLock { $0.forget(payment.paymentID) }?.cancel()
            return .reversedAfterTimeout
        }
        return .unknown
    }

    public func capture(_ payment: CardPaymentContext, amount: Int64, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer {
        try await financial(payment, amount: amount, refundID: nil, reference: reference)
    }

    public func refund(_ payment: CardPaymentContext, refundID: ID<Refund>, amount: Int64, reference: CardAuthorizationReference)
        async throws -> CardNetworkAnswer {
        try await financial(payment, amount: amount, refundID: refundID, reference: reference)
    }

    /// 0400 for the authorisation (a void). `00`, and `25` (no such authorisation), both mean
    /// nothing is held any more: `.approved`. No answer: `.unknown` (the acquirer keys reversals
    /// by payment, so trying again is safe).
    public func reverse(_ payment: CardPaymentContext, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer {
        let time = CardMessageTime(clock.now)
        let rrn = rrns.next(for: payment.paymentID)
        let request = try builder.reversal(payment, advice: false, original: reference, time: time, rrn: rrn)
        guard let message = try await send(request, payment: payment, timeout: configuration.financialTimeout) else { return .unknown }
        guard let code = trustedResponseCode(message, payment: payment, refundID: nil, amount: nil, logger: logger) else { return .unknown }
        if code == "00" || code == "25" { return .approved(authCode: nil, rrn: message[37] ?? rrn) }
        return .declined(responseCode: code, CardResponseCodes.failure(responseCode: code))
    }

    /// 0200: a capture, or a refund when `refundID` is given. No answer: `.unknown` (the
    /// acquirer keys them by payment and refund id, so trying again is safe). The card is not
    /// read back from the vault: the acquirer finds the authorisation by field 90 and `PI`, so
    /// a refund weeks later, after the vault has purged the card (RBI: card data is kept no
    /// longer than the payment needs it), goes the same way.
    func financial(_ payment: CardPaymentContext, amount: Int64, refundID: ID<Refund>?, reference: CardAuthorizationReference)
        async throws -> CardNetworkAnswer {
        let time = CardMessageTime(clock.now)
        let rrn = rrns.next(for: payment.paymentID)
        let request = try builder.financial(payment, amount: amount, refundID: refundID, reference: reference, time: time, rrn: rrn)
        guard let message = try await send(request, payment: payment, timeout: configuration.financialTimeout) else { return .unknown }
        guard let code = trustedResponseCode(message, payment: payment, refundID: refundID, amount: amount, logger: logger) else { return .unknown }
        return code == "00" ? .approved(authCode: message[38], rrn: message[37] ?? rrn)
            : .declined(responseCode: code, CardResponseCodes.failure(responseCode: code))
    }

    /// Sends a capture, refund or void: the answer, or nil when it was sent and not answered.
    /// Not sent at all: `CardNetworkUnavailable`.
    func send(_ request: ISO8583Message, payment: CardPaymentContext, timeout: Duration) async throws -> ISO8583Message? {
        do {
            let answer = try await client.exchange(request, timeout: timeout)
            count(request.mti, answer.message[39] == "00" ? "approved" : "declined")
            return answer.message
        } catch let error as ISO8583ClientError {
            guard error.kind == .sentNoAnswer else {
                count(request.mti, "not_sent")
                throw CardNetworkUnavailable("\(request.mti) was not sent: \(error.reason)")
            }
            count(request.mti, "no_answer")
            logger.warning("card network request unanswered", metadata: ["payment.id": "\(payment.paymentID.rawValue)",
                                                                           "iso8583.mti": "\(request.mti)", "error": "\(error.reason)"])
            return nil
        }
    }

    /// Field 39 of an answer that echoes the payment (and refund) id in field 48 and, when
    /// given, the amount; nil for an answer Kosh cannot trust (treated as no answer).
    func trustedResponseCode(_ answer: ISO8583Message, payment: CardPaymentContext, refundID: ID<Refund>?, amount: Int64?,
                             logger: Logger) -> String? {
        let tags = answer[48].flatMap(CardTLV.decode)
        let echoed = tags?["PI"] == payment.paymentID.rawValue && tags?["RI"] == refundID?.rawValue
        let sameAmount = amount == nil || answer[4] == nil || Int64(answer[4]!) == amount
        guard echoed, sameAmount, let code = answer[39], code.utf8.count == 2 else {
            logger.error("card network answer does not match its request",
                         metadata: ["payment.id": "\(payment.paymentID.rawValue)", "iso8583.mti": "\(answer.mti)",
                                    "iso8583.stan": "\(answer[11] ?? "-")"])
            return nil
        }
        return code
    }

    /// kosh_card_network_requests_total{mti, result}: one counter per pair, made once.
    func count(_ mti: String, _ result: String) {
        let counter = counters.withLock { counters in
            if let counter = counters["\(mti)|\(result)"] { return counter }
            let counter = Counter(label: "kosh_card_network_requests_total", dimensions: [("mti", mti), ("result", result)], factory: metrics)
            counters["\(mti)|\(result)"] = counter
            return counter
        }
        counter.increment()
    }
}
