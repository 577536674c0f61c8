/// Internal payment states (DESIGN.md §3.2). Razorpay's public `status` is a view of these.
public enum PaymentState: String, Sendable, Hashable, CaseIterable {
    /// Created by the merchant's request; not yet handed to a rail.
    case created
    /// Sent to the rail; the outcome is not known yet (unknown is not failed).
    case pending
    case authorized
    case captured
    case failed
    /// An authorisation released without capture (cancel).
    case voided
    /// Captured and then refunded in full.
    case refunded

    /// Razorpay's public status for this state.
    public var publicStatus: String {
        switch self {
        case .created, .pending: "created"
        case .authorized: "authorized"
        case .captured: "captured"
        case .failed: "failed"
        // Razorpay shows an authorisation that was released without capture as refunded.
        case .voided, .refunded: "refunded"
        }
    }

    public var isTerminal: Bool {
        switch self {
        case .failed, .voided, .refunded: true
        default: false
        }
    }
}

/// Why a rail declined a payment, in Razorpay's vocabulary.
public struct PaymentFailure: Sendable, Hashable {
    public var code: String
    public var description: String
    public var source: String
    public var step: String
    public var reason: String

    public init(code: String, description: String, source: String, step: String, reason: String) {
        self.code = code
        self.description = description
        self.source = source
        self.step = step
        self.reason = reason
    }
}

/// The kinds of input a payment accepts; the transition table is keyed by these.
public enum PaymentEventKind: String, Sendable, Hashable, CaseIterable {
    case submit, authorize, fail, capture, void, refund, refundFailed, lateAuthorize, autoRefund
}

public enum PaymentEvent: Sendable, Hashable {
    /// Handed to the rail.
    case submit
    /// The rail authorised the payment.
    case authorize(railReference: String)
    /// The rail declined the payment (or it could not be submitted).
    case fail(PaymentFailure)
    /// The merchant captures the authorised amount; the fee is the schedule's for the method.
    case capture(amount: Int64, fees: FeeSchedule, method: PaymentMethod)
    /// The merchant releases the authorisation.
    case void
    /// The merchant refunds part or all of the captured amount.
    case refund(amount: Int64)
    /// A refund the rail could not process: the amount becomes refundable again.
    case refundFailed(amount: Int64)
    /// The rail reports success for a payment Kosh had already marked failed (it timed out
    /// waiting): the money moved, so the payment is authorised after all (DESIGN.md §3.6).
    case lateAuthorize(railReference: String)
    /// A late authorisation the merchant cannot use (policy, or the order was paid by
    /// another payment) is taken in and given back in full: captured without a fee and
    /// refunded, so the money goes back through the rail and the ledger shows both legs.
    case autoRefund

    public var kind: PaymentEventKind {
        switch self {
        case .submit: .submit
        case .authorize: .authorize
        case .fail: .fail
        case .capture: .capture
        case .void: .void
        case .refund: .refund
        case .refundFailed: .refundFailed
        case .lateAuthorize: .lateAuthorize
        case .autoRefund: .autoRefund
        }
    }
}

/// What the shell must do after a transition. The machine never does I/O itself.
public enum PaymentAction: Sendable, Hashable {
    case sendToRail
    /// Pending (two-phase) ledger entry for the authorised amount.
    case postAuthorization(amount: Int64)
    /// Post the pending authorisation entry.
    case postCapture(amount: Int64)
    case postFee(FeeBreakdown)
    /// Void the pending authorisation entry.
    case voidAuthorization(amount: Int64)
    case postRefund(amount: Int64)
    case reverseRefund(amount: Int64)
    case markOrderPaid(amount: Int64)
    /// A late authorisation arrived: the shell applies the merchant's policy next
    /// (capture, or `autoRefund`).
    case resolveLateAuthorization
    /// Send a full refund of an auto-refunded payment to the rail.
    case sendAutoRefund(amount: Int64)
    case recordEvent(from: PaymentState, to: PaymentState, event: PaymentEventKind)
}

/// A payment's money state as a plain value. Every input is a mutating function returning
/// the actions to run; an illegal input throws and leaves the value unchanged.
public struct PaymentMachine: Sendable, Hashable {
    public private(set) var state: PaymentState
    public let amount: Int64
    public private(set) var amountRefunded: Int64
    public private(set) var failure: PaymentFailure?
    public private(set) var fee: FeeBreakdown?

    public init(amount: Int64, state: PaymentState = .created, amountRefunded: Int64 = 0,
                failure: PaymentFailure? = nil, fee: FeeBreakdown? = nil) {
        precondition(amount > 0, "payment amount must be positive")
        precondition(amountRefunded >= 0 && amountRefunded <= amount, "amount refunded out of range")
        self.amount = amount
        self.state = state
        self.amountRefunded = amountRefunded
        self.failure = failure
        self.fee = fee
    }

    /// Captured amount still refundable.
    public var refundableAmount: Int64 {
        switch state {
        case .captured: amount - amountRefunded
        default: 0
        }
    }

    public var isCaptured: Bool { state == .captured || state == .refunded }

    /// The explicit transition table: the state an event of `kind` leads to from `state`,
    /// or nil when the event is illegal there. Refunds are legal only from captured; whether
    /// a refund lands in captured or refunded depends on the amount (see `apply`).
    public static func next(_ state: PaymentState, _ kind: PaymentEventKind) -> PaymentState? {
        switch (state, kind) {
        case (.created, .submit): .pending
        case (.created, .fail): .failed
        case (.pending, .authorize): .authorized
        case (.pending, .fail): .failed
        case (.authorized, .capture): .captured
        case (.authorized, .void): .voided
        case (.captured, .refund): .captured  // or .refunded when fully refunded
        case (.captured, .refundFailed): .captured
        case (.refunded, .refundFailed): .captured
        case (.failed, .lateAuthorize): .authorized
        case (.authorized, .autoRefund): .refunded
        default: nil
        }
    }

    @discardableResult
    public mutating func apply(_ event: PaymentEvent) throws(PaymentTransitionError) -> [PaymentAction] {
        guard var target = Self.next(state, event.kind) else {
            throw PaymentTransitionError(state: state, event: event.kind)
        }
        let from = state
        var actions: [PaymentAction] = []
        switch event {
        case .submit:
            actions.append(.sendToRail)
        case .authorize:
            actions.append(.postAuthorization(amount: amount))
        case .lateAuthorize:
            // The earlier failure was Kosh giving up, not the payer's answer.
            self.failure = nil
            actions.append(.postAuthorization(amount: amount))
            actions.append(.resolveLateAuthorization)
        case .autoRefund:
            amountRefunded = amount
            actions.append(.postCapture(amount: amount))
            actions.append(.postRefund(amount: amount))
            actions.append(.sendAutoRefund(amount: amount))
        case .fail(let failure):
            self.failure = failure
        case .capture(let captureAmount, let fees, let method):
            guard captureAmount == amount else {
                throw PaymentTransitionError(state: state, event: event.kind, reason: .captureAmountMismatch)
            }
            let fee = fees.fee(amount: amount, method: method)
            precondition(fee.total <= amount, "fee exceeds the payment amount")
            self.fee = fee
            actions.append(.postCapture(amount: amount))
            if fee.total > 0 { actions.append(.postFee(fee)) }
            actions.append(.markOrderPaid(amount: amount))
        case .void:
            actions.append(.voidAuthorization(amount: amount))
        case .refund(let refundAmount):
            guard refundAmount > 0 else {
                throw PaymentTransitionError(state: state, event: event.kind, reason: .nonPositiveAmount)
            }
            guard refundAmount <= amount - amountRefunded else {
                throw PaymentTransitionError(state: state, event: event.kind, reason: .exceedsRefundable)
            }
            amountRefunded += refundAmount
            if amountRefunded == amount { target = .refunded }
            actions.append(.postRefund(amount: refundAmount))
        case .refundFailed(let refundAmount):
            guard refundAmount > 0, refundAmount <= amountRefunded else {
                throw PaymentTransitionError(state: state, event: event.kind, reason: .exceedsRefundable)
            }
            amountRefunded -= refundAmount
            actions.append(.reverseRefund(amount: refundAmount))
        }
        state = target
        actions.append(.recordEvent(from: from, to: target, event: event.kind))
        assert(amountRefunded >= 0 && amountRefunded <= amount)
        return actions
    }

    /// Razorpay's `refund_status`: nil, "partial" or "full".
    public var refundStatus: String? {
        if state == .voided { return "full" }
        if amountRefunded == 0 { return nil }
        return amountRefunded == amount ? "full" : "partial"
    }
}

public struct PaymentTransitionError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        case illegalTransition, captureAmountMismatch, nonPositiveAmount, exceedsRefundable
    }
    public let state: PaymentState
    public let event: PaymentEventKind
    public let reason: Reason

    public init(state: PaymentState, event: PaymentEventKind, reason: Reason = .illegalTransition) {
        self.state = state
        self.event = event
        self.reason = reason
    }

    public var description: String { "\(event) is not allowed for a payment in state \(state) (\(reason))" }
}
