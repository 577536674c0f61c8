public enum OrderState: String, Sendable, Hashable, CaseIterable {
    case created, attempted, paid
}

public enum OrderEvent: String, Sendable, Hashable, CaseIterable {
    /// A payment was created against the order.
    case paymentAttempted
    /// A payment on the order was captured.
    case paymentCaptured
}

public struct OrderTransitionError: Error, Sendable, Hashable, CustomStringConvertible {
    public let state: OrderState
    public let event: OrderEvent
    public var description: String { "\(event) is not allowed for an order in state \(state)" }
}

/// Why an order refuses a new payment.
public enum OrderRefusal: Error, Sendable, Hashable {
    case alreadyPaid
    case currencyMismatch
    case amountMismatch(due: Int64)
    case paymentInProgress
}

/// An order's state as a plain value: created → attempted → paid. Paid is final, so an
/// order is paid at most once.
public struct OrderMachine: Sendable, Hashable {
    public private(set) var state: OrderState
    public let amount: Int64
    public private(set) var amountPaid: Int64
    public private(set) var attempts: Int

    public init(amount: Int64, state: OrderState = .created, amountPaid: Int64 = 0, attempts: Int = 0) {
        self.amount = amount
        self.state = state
        self.amountPaid = amountPaid
        self.attempts = attempts
    }

    public var amountDue: Int64 { amount - amountPaid }

    public static func next(_ state: OrderState, _ event: OrderEvent) -> OrderState? {
        switch (state, event) {
        case (.created, .paymentAttempted), (.attempted, .paymentAttempted): .attempted
        case (.attempted, .paymentCaptured): .paid
        default: nil
        }
    }

    /// Admits a new payment on the order and counts the attempt. A payment must be for the
    /// amount due, in the order's currency, on an order not yet paid and with no other
    /// payment holding it (`PaymentState.holdingOrder`).
    public mutating func admitPayment(amount: Int64, currency: Currency, orderCurrency: Currency,
                                      paymentsHoldingOrder: Int) throws(OrderRefusal) {
        guard state != .paid else { throw .alreadyPaid }
        guard currency == orderCurrency else { throw .currencyMismatch }
        guard amount == amountDue else { throw .amountMismatch(due: amountDue) }
        guard paymentsHoldingOrder == 0 else { throw .paymentInProgress }
        do { try apply(.paymentAttempted) } catch { throw .alreadyPaid }
    }

    public mutating func apply(_ event: OrderEvent) throws(OrderTransitionError) {
        guard let target = Self.next(state, event) else {
            throw OrderTransitionError(state: state, event: event)
        }
        switch event {
        case .paymentAttempted: attempts += 1
        case .paymentCaptured: amountPaid = amount
        }
        state = target
    }
}

public enum RefundState: String, Sendable, Hashable, CaseIterable {
    case pending, processed, failed
}

public enum RefundEvent: String, Sendable, Hashable, CaseIterable {
    case processed, failed
}

public struct RefundTransitionError: Error, Sendable, Hashable, CustomStringConvertible {
    public let state: RefundState
    public let event: RefundEvent
    public var description: String { "\(event) is not allowed for a refund in state \(state)" }
}

public enum RefundAction: Sendable, Hashable {
    /// Move the refund from in-transit to the rail (money left us).
    case postRefundSettled(amount: Int64)
    /// Put the refund back on the merchant's balance and the payment's refundable amount.
    case reverseRefund(amount: Int64)
}

/// What a rail's answer did to a pending refund.
public enum RefundSettlement: Sendable, Hashable {
    /// It settled: run these actions and record the refund's new state.
    case settled(event: RefundEvent, [RefundAction])
    /// Not settled: send it again later, for this reason.
    case retryLater(RefundRetryReason)
}

public enum RefundRetryReason: Sendable, Hashable {
    /// The rail has not finished with it.
    case stillPending
    /// The rail refused an auto-refund, which is never reversed onto the merchant.
    case autoRefundRefused(String)
}

/// A refund: pending at the rail → processed or failed.
public struct RefundMachine: Sendable, Hashable {
    public private(set) var state: RefundState
    public let amount: Int64

    public init(amount: Int64, state: RefundState = .pending) {
        precondition(amount > 0)
        self.amount = amount
        self.state = state
    }

    public static func next(_ state: RefundState, _ event: RefundEvent) -> RefundState? {
        switch (state, event) {
        case (.pending, .processed): .processed
        case (.pending, .failed): .failed
        default: nil
        }
    }

    /// Applies the rail's answer. An auto-refund (a late authorisation given back) returns
    /// money the merchant never had a right to: a refusal by the rail is never reversed onto
    /// the merchant's balance; the refund stays pending and is sent again.
    public mutating func railAnswered(_ status: RailRefundStatus, autoRefund: Bool) throws(RefundTransitionError) -> RefundSettlement {
        switch status {
        case .pending:
            return .retryLater(.stillPending)
        case .failed(let reason) where autoRefund:
            return .retryLater(.autoRefundRefused(reason))
        case .failed:
            return .settled(event: .failed, try apply(.failed))
        case .processed:
            return .settled(event: .processed, try apply(.processed))
        }
    }

    public mutating func apply(_ event: RefundEvent) throws(RefundTransitionError) -> [RefundAction] {
        guard let target = Self.next(state, event) else {
            throw RefundTransitionError(state: state, event: event)
        }
        state = target
        switch event {
        case .processed: return [.postRefundSettled(amount: amount)]
        case .failed: return [.reverseRefund(amount: amount)]
        }
    }
}
