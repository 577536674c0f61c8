import KoshCore
import Logging

/// The timeout reversals the connector is following (docs/CARDS.md §2, "Timeouts").
///
/// They live in memory only: a crash or restart loses them, with their background advices.
/// That is safe because the state a reversal needs is not only here: `authorize` hands the
/// caller the original's reference (STAN, transmission time, RRN) with `.unknown`, the payment
/// context carries the amount and the vault token, and Kosh's janitor calls `resolveTimeout`
/// for every payment left unknown, which sends another advice built from exactly those.
struct ReversalBook {
    struct Entry {
        let payment: CardPaymentContext
        let original: CardAuthorizationReference
        /// A reversal or advice for it was answered 00 or 25: nothing is charged.
        var answered = false
        var advices: Task<Void, Never>?
    }

    var entries: [ID<Payment>: Entry] = [:]
    var isShutDown = false

    func answered(_ payment: ID<Payment>) -> Bool { entries[payment]?.answered ?? false }

    /// Starts following a payment; false when the book is full (or shut down) and it is left to
    /// `resolveTimeout`. A full book first lets go of the answered reversals nobody asked about yet
    /// (`resolveTimeout` would get `.reversedAfterTimeout` for them anyway, from the acquirer).
    mutating func follow(_ payment: CardPaymentContext, original: CardAuthorizationReference, limit: Int) -> Bool {
        guard !isShutDown else { return false }
        if entries[payment.paymentID] != nil { return true }
        if entries.count >= limit { entries = entries.filter { !$0.value.answered } }
        guard entries.count < limit else { return false }
        entries[payment.paymentID] = Entry(payment: payment, original: original)
        return true
    }

    /// Marks the reversal answered; answers the advices' task to cancel.
    mutating func markAnswered(_ payment: ID<Payment>) -> Task<Void, Never>? {
        guard entries[payment] != nil else { return nil }
        entries[payment]!.answered = true
        defer { entries[payment]!.advices = nil }
        return entries[payment]!.advices
    }

    /// Stops following the payment; answers its advices' task to cancel.
    @discardableResult
    mutating func forget(_ payment: ID<Payment>) -> Task<Void, Never>? {
        entries.removeValue(forKey: payment)?.advices
    }

    /// No more reversals are followed; answers every running advices' task.
    mutating func shutDown() -> [Task<Void, Never>] {
        isShutDown = true
        defer { entries = [:] }
        return entries.values.compactMap(\.advices)
    }
}

extension CardNetworkConnector {
    /// The 0100 got no answer (or one Kosh cannot trust): reverse it at once with a 0400. Answered
    /// 00 or 25 → `.reversedAfterTimeout`; else advices (0420) go on in the background → `.unknown`.
    func reverseAfterTimeout(_ payment: CardPaymentContext, original: CardAuthorizationReference, logger: Logger) async -> CardNetworkAnswer {
        let followed = reversals.withLock { $0.follow(payment, original: original, limit: configuration.maximumPendingReversals) }
        if await sendReversal(payment, original: original, advice: false, logger: logger) {
            // The caller learns it now: nothing left to follow (nor any earlier advices for the payment).
            reversals.withLock { $0.forget(payment.paymentID) }?.cancel()
            return .reversedAfterTimeout
        }
        if followed {
            startAdvices(payment, original: original, logger: logger)
        } else {
            logger.error("timeout reversal not followed in memory (too many, or shutting down): left to resolveTimeout")
        }
        return .unknown
    }

    /// One 0400 (or 0420 advice) for the authorisation `original`: true when answered 00 or 25.
    /// It names the original by field 90 and `PI`, without the card, so it goes out even while
    /// the vault cannot be reached.
    func sendReversal(_ payment: CardPaymentContext, original: CardAuthorizationReference, advice: Bool, logger: Logger) async -> Bool {
        let mti = advice ? "0420" : "0400"
        do {
            let time = CardMessageTime(clock.now)
            let rrn = rrns.next(for: payment.paymentID)
            let request = try builder.reversal(payment, advice: advice, original: original, time: time, rrn: rrn)
            let answer = try await client.exchange(request, timeout: configuration.reversalTimeout)
            guard let code = trustedResponseCode(answer.message, payment: payment, refundID: nil, amount: nil, logger: logger) else {
                count(mti, "bad_answer")
                return false
            }
            guard code == "00" || code == "25" else {
                count(mti, "declined")
                logger.warning("timeout reversal refused", metadata: ["iso8583.mti": "\(mti)", "iso8583.response_code": "\(code)"])
                return false
            }
            count(mti, "approved")
            logger.info("timeout reversal answered: nothing is charged",
                        metadata: ["iso8583.mti": "\(mti)", "iso8583.stan": "\(answer.stan)", "iso8583.response_code": "\(code)"])
            return true
        } catch let error as ISO8583ClientError {
            count(mti, error.kind == .couldNotSend ? "not_sent" : "no_answer")
            logger.warning("timeout reversal unanswered", metadata: ["iso8583.mti": "\(mti)", "error": "\(error.reason)"])
            return false
        } catch {
            count(mti, "error")
            logger.warning("timeout reversal not built", metadata: ["iso8583.mti": "\(mti)", "error": "\(error)"])
            return false
        }
    }

    /// Background 0420 advices with doubling waits, until one is answered, `resolveTimeout`
    /// gets an answer first, the attempts run out, or the connector shuts down.
    func startAdvices(_ payment: CardPaymentContext, original: CardAuthorizationReference, logger: Logger) {
        let attempts = configuration.adviceAttempts
        let first = configuration.adviceBackoff
        let ceiling = configuration.maximumAdviceBackoff
        reversals.withLock { book in
            guard var entry = book.entries[payment.paymentID], !entry.answered, entry.advices == nil, attempts > 0 else { return }
            entry.advices = Task { [self] in
                var wait = first
                for _ in 0..<attempts {
                    do { try await Task.sleep(for: wait) } catch { return }
                    if Task.isCancelled || reversals.withLock({ $0.entries[payment.paymentID]?.answered ?? true }) { return }
                    if await sendReversal(payment, original: original, advice: true, logger: logger) {
                        _ = reversals.withLock { $0.markAnswered(payment.paymentID) }
                        return
                    }
                    wait = min(wait * 2, ceiling)
                }
                logger.error("timeout reversal advices exhausted: left to resolveTimeout")
                reversals.withLock { book in book.entries[payment.paymentID]?.advices = nil }
            }
            book.entries[payment.paymentID] = entry
        }
    }
}
