/// Where a rail's word on a payment came from.
public enum RailAnswerSource: Sendable, Hashable {
    /// Kosh asked (the janitor's status check, or the first check after submission).
    case statusCheck
    /// The rail called back on its own.
    case callback
}

/// What the shell must do with a rail's answer, in order. An empty list: the answer changes
/// nothing (a duplicate or stale answer).
public enum RailAnswerAction: Sendable, Hashable {
    /// Feed this event to the payment's machine and run the actions it returns.
    case apply(PaymentEvent)
    /// Keep the rail's reference for the payment; `replacing` an earlier one or not.
    case takeReference(String, replacing: Bool)
    /// The payer's VPA the rail reported (an intent payment learns it here), unless known.
    case takePayerVPA(String)
    /// Ask the rail again at this time (unix ms).
    case scheduleCheck(at: UnixMillis)
    /// Ask no more.
    case stopWatching
    /// Record the final word on the payment's current attempt.
    case settleAttempt(PaymentAttempt.Status, reference: String?, failure: PaymentFailure?)
    /// The payment's outcome on its route, for success-rate routing.
    case recordRouteOutcome(success: Bool)
}

extension PaymentMachine {
    /// Reconciles what a rail said about the payment with its state: the transition a rail's
    /// answer makes, with the schedule of the next check. Applying the same answer twice
    /// changes nothing the second time.
    ///
    /// - A pending payment with no answer is asked again on the schedule until the pending
    ///   timeout, then failed as timed out and watched for a late authorisation.
    /// - A success for a payment already failed is a late authorisation: the money moved.
    /// - A payer's "no" says nothing about the route; any other failure counts against it.
    ///
    /// - Parameters:
    ///   - watching: whether the payment has a next check scheduled.
    ///   - submittedAt: when the payment was handed to its rail (unix ms).
    public func reconcile(_ answer: RailPaymentStatus, from source: RailAnswerSource, watching: Bool, submittedAt: UnixMillis, now: UnixMillis,
                          schedule: GatewaySettings) -> [RailAnswerAction] {
        switch (state, answer) {
        case (.pending, .pending):
            guard source == .statusCheck else { return [] }
            if let next = schedule.nextPendingCheck(submittedAt: submittedAt, now: now) { return [.scheduleCheck(at: next)] }
            return [.apply(.fail(.timedOut)), Self.lateWatch(schedule.nextLateCheck(submittedAt: submittedAt, now: now)),
                    .settleAttempt(.unknown, reference: nil, failure: .timedOut)]
        case (.pending, .authorized(let reference, let payerVPA)):
            return [.takeReference(reference, replacing: false)] + (payerVPA.map { [.takePayerVPA($0)] } ?? [])
                + [.apply(.authorize(railReference: reference)), .stopWatching,
                   .settleAttempt(.authorized, reference: reference, failure: nil), .recordRouteOutcome(success: true)]
        case (.pending, .failed(let failure)):
            return [.apply(.fail(failure)), .stopWatching, .settleAttempt(.failed, reference: nil, failure: failure)]
                + (failure.countsAgainstRoute ? [.recordRouteOutcome(success: false)] : [])
        case (.failed, .authorized(let reference, let payerVPA)):
            return [.takeReference(reference, replacing: true)] + (payerVPA.map { [.takePayerVPA($0)] } ?? [])
                + [.apply(.lateAuthorize(railReference: reference)), .stopWatching,
                   .settleAttempt(.authorized, reference: reference, failure: nil), .recordRouteOutcome(success: true)]
        case (.failed, .failed):
            return watching ? [.stopWatching] : []
        case (.failed, .pending):
            guard watching, source == .statusCheck else { return [] }
            return [Self.lateWatch(schedule.nextLateCheck(submittedAt: submittedAt, now: now))]
        default:
            // Already authorised, captured, voided or refunded: a duplicate or stale answer.
            return []
        }
    }

    static func lateWatch(_ next: UnixMillis?) -> RailAnswerAction {
        next.map { .scheduleCheck(at: $0) } ?? .stopWatching
    }
}

extension PaymentState {
    /// The states in which a payment holds its order: while one exists (and was not a late
    /// authorisation given back), no other payment may be made on the order. The storage's
    /// count and unique index are generated from this list.
    public static let holdingOrder: [PaymentState] = [.created, .pending, .authorized, .captured, .refunded]

    /// The states in which the janitor may still have to act on a payment (submit it, ask
    /// its rail, or watch for a late authorisation).
    public static let watched: [PaymentState] = [.created, .pending, .failed]
}

extension Payment {
    /// Whether this payment holds its order (see `PaymentState.holdingOrder`).
    public var holdsOrder: Bool { PaymentState.holdingOrder.contains(state) && !autoRefunded }
}

extension LateAuthorizationPolicy {
    /// What becomes of a late authorisation: captured when the merchant wants that and its
    /// order is still unpaid with no other payment holding it; otherwise given back in full.
    public func resolve(orderPaid: Bool, otherPaymentsHoldingOrder: Int) -> LateAuthorizationResolution {
        self == .capture && !orderPaid && otherPaymentsHoldingOrder == 0 ? .capture : .giveBack
    }
}

public enum LateAuthorizationResolution: Sendable, Hashable {
    case capture
    /// Captured without a fee and refunded in full at once (`PaymentEvent.autoRefund`).
    case giveBack
}
