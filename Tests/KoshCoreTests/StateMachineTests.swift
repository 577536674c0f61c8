import KoshCore
import Testing

extension PaymentEventKind {
    /// A representative event of each kind, for exhaustive tables.
    func sample(amount: Int64) -> PaymentEvent {
        switch self {
        case .submit: .submit
        case .authorize: .authorize(railReference: "ref")
        case .fail: .fail(PaymentFailure(code: "BAD_REQUEST_ERROR", description: "declined", source: "customer", step: "payment_authorization", reason: "payment_declined"))
        case .capture: .capture(amount: amount, fees: FeeSchedule(), method: .upi)
        case .void: .void
        case .refund: .refund(amount: 100)
        case .refundFailed: .refundFailed(amount: 100)
        case .lateAuthorize: .lateAuthorize(railReference: "late")
        case .autoRefund: .autoRefund
        }
    }
}

@Suite("Payment state machine")
struct PaymentMachineTests {
    static let expected: [PaymentState: [PaymentEventKind: PaymentState]] = [
        .created: [.submit: .pending, .fail: .failed],
        .pending: [.authorize: .authorized, .fail: .failed],
        .authorized: [.capture: .captured, .void: .voided, .autoRefund: .refunded],
        .captured: [.refund: .captured, .refundFailed: .captured],
        .refunded: [.refundFailed: .captured],
        .failed: [.lateAuthorize: .authorized],
        .voided: [:],
    ]

    static let allPairs: [(PaymentState, PaymentEventKind)] =
        PaymentState.allCases.flatMap { s in PaymentEventKind.allCases.map { (s, $0) } }

    @Test("every state × every event follows the table", arguments: allPairs)
    func table(state: PaymentState, kind: PaymentEventKind) throws {
        #expect(PaymentMachine.next(state, kind) == Self.expected[state]?[kind])
        let refunded: Int64 = (state == .refunded) ? 1000 : (state == .captured ? 100 : 0)
        var machine = PaymentMachine(amount: 1000, state: state, amountRefunded: refunded)
        let before = machine
        if let target = Self.expected[state]?[kind] {
            let actions = try machine.apply(kind.sample(amount: 1000))
            #expect(machine.state == target)
            #expect(actions.last == .recordEvent(from: state, to: target, event: kind))
        } else {
            #expect(throws: PaymentTransitionError.self) { try machine.apply(kind.sample(amount: 1000)) }
            #expect(machine == before, "an illegal event leaves the payment unchanged")
        }
    }

    @Test func happyPathActions() throws {
        var m = PaymentMachine(amount: 10_000)
        #expect(try m.apply(.submit) == [.sendToRail, .recordEvent(from: .created, to: .pending, event: .submit)])
        #expect(try m.apply(.authorize(railReference: "r")) == [.postAuthorization(amount: 10_000), .recordEvent(from: .pending, to: .authorized, event: .authorize)])
        let fee = FeeBreakdown(base: 200, tax: 36)
        #expect(try m.apply(.capture(amount: 10_000, fees: FeeSchedule(), method: .upi)) == [
            .postCapture(amount: 10_000), .postFee(fee), .markOrderPaid(amount: 10_000),
            .recordEvent(from: .authorized, to: .captured, event: .capture),
        ])
        #expect(try m.apply(.refund(amount: 4_000)) == [.postRefund(amount: 4_000), .recordEvent(from: .captured, to: .captured, event: .refund)])
        #expect(m.refundStatus == "partial")
        #expect(m.refundableAmount == 6_000)
        #expect(try m.apply(.refund(amount: 6_000)).first == .postRefund(amount: 6_000))
        #expect(m.state == .refunded)
        #expect(m.refundStatus == "full")
        #expect(m.state.publicStatus == "refunded")
    }

    @Test func captureMustEqualAuthorizedAmount() {
        var m = PaymentMachine(amount: 10_000, state: .authorized)
        #expect(throws: PaymentTransitionError(state: .authorized, event: .capture, reason: .captureAmountMismatch)) {
            try m.apply(.capture(amount: 9_999, fees: FeeSchedule(), method: .upi))
        }
        #expect(m.state == .authorized)
    }

    @Test func overRefundIsRefused() throws {
        var m = PaymentMachine(amount: 10_000, state: .captured)
        try m.apply(.refund(amount: 9_000))
        #expect(throws: PaymentTransitionError(state: .captured, event: .refund, reason: .exceedsRefundable)) {
            try m.apply(.refund(amount: 1_001))
        }
        #expect(m.amountRefunded == 9_000)
        #expect(throws: PaymentTransitionError(state: .captured, event: .refund, reason: .nonPositiveAmount)) {
            try m.apply(.refund(amount: 0))
        }
    }

    @Test func failedRefundRestoresRefundable() throws {
        var m = PaymentMachine(amount: 500, state: .captured)
        try m.apply(.refund(amount: 500))
        #expect(m.state == .refunded)
        #expect(try m.apply(.refundFailed(amount: 500)) == [.reverseRefund(amount: 500), .recordEvent(from: .refunded, to: .captured, event: .refundFailed)])
        #expect(m.state == .captured && m.amountRefunded == 0)
    }

    @Test func lateAuthorizationThenAutoRefund() throws {
        let timeout = PaymentFailure(code: "GATEWAY_ERROR", description: "timed out", source: "gateway", step: "payment_authorization", reason: "payment_timed_out")
        var m = PaymentMachine(amount: 700)
        try m.apply(.submit)
        try m.apply(.fail(timeout))
        #expect(try m.apply(.lateAuthorize(railReference: "r")) == [
            .postAuthorization(amount: 700), .resolveLateAuthorization,
            .recordEvent(from: .failed, to: .authorized, event: .lateAuthorize),
        ])
        #expect(m.failure == nil)
        #expect(try m.apply(.autoRefund) == [
            .postCapture(amount: 700), .postRefund(amount: 700), .sendAutoRefund(amount: 700),
            .recordEvent(from: .authorized, to: .refunded, event: .autoRefund),
        ])
        #expect(m.state == .refunded && m.amountRefunded == 700 && m.refundStatus == "full")
        #expect(throws: PaymentTransitionError.self) { try m.apply(.lateAuthorize(railReference: "again")) }
    }

    @Test("public statuses are Razorpay's", arguments: PaymentState.allCases)
    func publicStatus(state: PaymentState) {
        #expect(["created", "authorized", "captured", "refunded", "failed"].contains(state.publicStatus))
    }
}

@Suite("Order and refund state machines")
struct OrderRefundMachineTests {
    static let orderPairs: [(OrderState, OrderEvent)] = OrderState.allCases.flatMap { s in OrderEvent.allCases.map { (s, $0) } }

    @Test("every order state × event", arguments: orderPairs)
    func orderTable(state: OrderState, event: OrderEvent) throws {
        let expected: OrderState? = switch (state, event) {
        case (.created, .paymentAttempted), (.attempted, .paymentAttempted): .attempted
        case (.attempted, .paymentCaptured): .paid
        default: nil
        }
        #expect(OrderMachine.next(state, event) == expected)
        var machine = OrderMachine(amount: 100, state: state)
        if let expected {
            try machine.apply(event)
            #expect(machine.state == expected)
        } else {
            #expect(throws: OrderTransitionError.self) { try machine.apply(event) }
        }
    }

    @Test func orderIsPaidOnce() throws {
        var order = OrderMachine(amount: 5_000)
        try order.apply(.paymentAttempted)
        try order.apply(.paymentAttempted)
        #expect(order.attempts == 2)
        try order.apply(.paymentCaptured)
        #expect(order.amountPaid == 5_000 && order.amountDue == 0 && order.state == .paid)
        #expect(throws: OrderTransitionError.self) { try order.apply(.paymentCaptured) }
        #expect(throws: OrderTransitionError.self) { try order.apply(.paymentAttempted) }
    }

    static let refundPairs: [(RefundState, RefundEvent)] = RefundState.allCases.flatMap { s in RefundEvent.allCases.map { (s, $0) } }

    @Test("every refund state × event", arguments: refundPairs)
    func refundTable(state: RefundState, event: RefundEvent) throws {
        var machine = RefundMachine(amount: 100, state: state)
        if state == .pending {
            let actions = try machine.apply(event)
            #expect(machine.state == (event == .processed ? .processed : .failed))
            #expect(actions == [event == .processed ? .postRefundSettled(amount: 100) : .reverseRefund(amount: 100)])
        } else {
            #expect(RefundMachine.next(state, event) == nil)
            #expect(throws: RefundTransitionError.self) { _ = try machine.apply(event) }
        }
    }
}
