/// Input for a new order, already validated for shape by the HTTP layer.
public struct NewOrder: Sendable {
    public var amount: Int64
    public var currency: Currency
    public var receipt: String?
    public var notes: Notes
    public init(amount: Int64, currency: Currency, receipt: String?, notes: Notes) {
        self.amount = amount
        self.currency = currency
        self.receipt = receipt
        self.notes = notes
    }
}

public struct NewPayment: Sendable {
    public var orderID: String
    public var amount: Int64
    public var currency: Currency
    public var method: String
    public var vpa: String?
    public var email: String?
    public var contact: String?
    public var description: String?
    public var notes: Notes
    public init(orderID: String, amount: Int64, currency: Currency, method: String, vpa: String?, email: String?,
                contact: String?, description: String?, notes: Notes) {
        self.orderID = orderID
        self.amount = amount
        self.currency = currency
        self.method = method
        self.vpa = vpa
        self.email = email
        self.contact = contact
        self.description = description
        self.notes = notes
    }
}

public struct NewRefund: Sendable {
    /// nil refunds everything still refundable.
    public var amount: Int64?
    public var speed: String
    public var receipt: String?
    public var notes: Notes
    public init(amount: Int64?, speed: String, receipt: String?, notes: Notes) {
        self.amount = amount
        self.speed = speed
        self.receipt = receipt
        self.notes = notes
    }
}

/// Which rail carries payments of a merchant.
public struct RailRegistry: Sendable {
    public var test: any PaymentRail
    public var live: (any PaymentRail)?
    public init(test: any PaymentRail, live: (any PaymentRail)? = nil) {
        self.test = test
        self.live = live
    }

    public func rail(for mode: Mode) throws -> any PaymentRail {
        switch mode {
        case .test: return test
        case .live:
            guard let live else {
                throw KoshError(.badRequest, "Live mode payments are not enabled on this server", source: "business",
                                step: "payment_initiation", reason: "live_mode_not_enabled")
            }
            return live
        }
    }

    public func rail(named name: String) -> (any PaymentRail)? {
        if test.name == name { return test }
        if let live, live.name == name { return live }
        return nil
    }
}

public struct GatewaySettings: Sendable {
    /// How long after submission to ask the rail first (ms).
    public var firstCheckAfterMillis: Int64
    /// Interval of status checks while a payment is pending (ms).
    public var checkIntervalMillis: Int64
    /// A payment still `created` this long after creation was never handed to the rail
    /// (the server stopped in between); the janitor submits it (ms).
    public var submitGraceMillis: Int64

    public init(firstCheckAfterMillis: Int64 = 1_000, checkIntervalMillis: Int64 = 2_000, submitGraceMillis: Int64 = 5_000) {
        self.firstCheckAfterMillis = firstCheckAfterMillis
        self.checkIntervalMillis = checkIntervalMillis
        self.submitGraceMillis = submitGraceMillis
    }
}

/// The payment flows. Every money decision is made by the pure machines; this type loads
/// them, feeds them inputs and runs the actions they return against the store's transaction.
/// Rail calls happen outside database transactions.
public struct PaymentGateway<Store: GatewayStore>: Sendable {
    public let store: Store
    public let rails: RailRegistry
    public let clock: any KoshClock
    public let settings: GatewaySettings

    public init(store: Store, rails: RailRegistry, clock: any KoshClock, settings: GatewaySettings = GatewaySettings()) {
        self.store = store
        self.rails = rails
        self.clock = clock
        self.settings = settings
    }

    var nowSeconds: Int64 { clock.nowMillis() / 1000 }

    func newID(_ prefix: IDPrefix) -> String { Identifiers.make(prefix, millis: clock.nowMillis()) }

    // MARK: Orders

    public func createOrder(_ tx: any StoreTransaction, merchant: Merchant, _ input: NewOrder) async throws -> Order {
        guard (AmountLimits.minimum...AmountLimits.maximum).contains(input.amount) else {
            throw KoshError.badRequest("The amount must be between \(AmountLimits.minimum) and \(AmountLimits.maximum) paise", field: "amount")
        }
        let order = Order(id: self.newID(.order), merchantID: merchant.id, currency: input.currency,
                          receipt: input.receipt, notes: input.notes, machine: OrderMachine(amount: input.amount),
                          createdAt: nowSeconds)
        try await tx.insertOrder(order)
        try await tx.appendEvent(event(merchant.id, "order", order.id, "created", from: nil, to: OrderState.created.rawValue))
        return order
    }

    // MARK: Payments

    /// Creates a payment on an order (state `created`). The caller commits, then calls `submit`.
    public func createPayment(_ tx: any StoreTransaction, merchant: Merchant, _ input: NewPayment) async throws -> Payment {
        let rail = try rails.rail(for: merchant.mode)
        if let problem = rail.validate(method: input.method, vpa: input.vpa) { throw problem }
        guard var order = try await tx.order(id: input.orderID, merchantID: merchant.id, forUpdate: true) else {
            throw KoshError.badRequest("The id provided does not exist", field: "order_id", reason: "input_validation_failed")
        }
        guard order.machine.state != .paid else {
            throw KoshError.badRequest("Order has been paid already", field: "order_id", reason: "order_already_paid")
        }
        guard input.currency == order.currency else {
            throw KoshError.badRequest("The currency should be the same as the order currency", field: "currency")
        }
        guard input.amount == order.machine.amountDue else {
            throw KoshError.badRequest("The amount must be equal to the order amount due (\(order.machine.amountDue))", field: "amount")
        }
        guard try await tx.livePaymentCount(orderID: order.id) == 0 else {
            throw KoshError.badRequest("A payment for this order is already in progress", field: "order_id", reason: "payment_in_progress")
        }
        let now = clock.nowMillis()
        let payment = Payment(id: self.newID(.payment), merchantID: merchant.id, orderID: order.id, currency: input.currency,
                              method: input.method, vpa: input.vpa, email: input.email, contact: input.contact,
                              description: input.description, notes: input.notes, machine: PaymentMachine(amount: input.amount),
                              rail: rail.name, createdAt: now / 1000, nextCheckAt: now + settings.submitGraceMillis)
        let fromOrderState = order.machine.state
        do { try order.machine.apply(.paymentAttempted) } catch { throw KoshError.badRequest(error.description, field: "order_id") }
        try await tx.insertPayment(payment)
        try await tx.updateOrder(order)
        try await tx.appendEvent(event(merchant.id, "payment", payment.id, "created", from: nil, to: PaymentState.created.rawValue))
        try await tx.appendEvent(event(merchant.id, "order", order.id, OrderEvent.paymentAttempted.rawValue,
                                       from: fromOrderState.rawValue, to: order.machine.state.rawValue))
        return payment
    }

    /// Hands a `created` payment to its rail. Safe to call more than once: a payment that is
    /// no longer `created` is returned unchanged. The payment is marked pending before the
    /// call, so a crash during the call leaves it to the janitor's status checks.
    @discardableResult
    public func submit(paymentID: String) async throws -> Payment {
        let submitted: Payment? = try await store.transaction { tx in
            guard var payment = try await tx.payment(id: paymentID, merchantID: nil, forUpdate: true) else {
                throw KoshError.notFound()
            }
            guard payment.state == .created else { return nil }
            try await self.apply(.submit, to: &payment, tx)
            let now = self.clock.nowMillis()
            payment.submittedAtMillis = now
            payment.nextCheckAt = now + self.settings.firstCheckAfterMillis
            try await tx.updatePayment(payment)
            return payment
        }
        guard let submitted else {
            return try await self.payment(id: paymentID)
        }
        guard let rail = rails.rail(named: submitted.rail) else { return submitted }
        let initiation: RailInitiation
        do {
            initiation = try await rail.initiate(request(for: submitted))
        } catch {
            // Unknown outcome: leave the payment pending for the status checks.
            return submitted
        }
        let afterInitiation: Payment = try await store.transaction { tx in
            guard var payment = try await tx.payment(id: paymentID, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
            guard payment.state == .pending else { return payment }
            switch initiation {
            case .accepted(let reference):
                guard payment.railReference == nil else { return payment }
                payment.railReference = reference
                payment.version += 1
                try await tx.updatePayment(payment)
            case .rejected(let failure):
                try await self.apply(.fail(failure), to: &payment, tx)
                try await tx.updatePayment(payment)
            }
            return payment
        }
        // A rail that answers at once (the test rail with no approval delay) is asked right away.
        if afterInitiation.state == .pending && settings.firstCheckAfterMillis == 0 {
            return try await check(paymentID: paymentID)
        }
        return afterInitiation
    }

    /// Asks the rail about a pending payment and applies the answer. Idempotent.
    @discardableResult
    public func check(paymentID: String) async throws -> Payment {
        let current = try await payment(id: paymentID)
        guard current.state == .pending, let rail = rails.rail(named: current.rail) else { return current }
        let status: RailPaymentStatus
        do {
            status = try await rail.status(request(for: current))
        } catch {
            status = .pending
        }
        return try await store.transaction { tx in
            guard var payment = try await tx.payment(id: paymentID, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
            guard payment.state == .pending else { return payment }
            switch status {
            case .pending:
                payment.nextCheckAt = self.clock.nowMillis() + self.settings.checkIntervalMillis
                payment.version += 1
            case .authorized(let reference):
                payment.railReference = payment.railReference ?? reference
                try await self.apply(.authorize(railReference: reference), to: &payment, tx)
                payment.nextCheckAt = nil
            case .failed(let failure):
                try await self.apply(.fail(failure), to: &payment, tx)
                payment.nextCheckAt = nil
            }
            try await tx.updatePayment(payment)
            return payment
        }
    }

    /// Submits or checks every payment whose next check is due. Returns how many it handled.
    public func runDueChecks(limit: Int = 100) async throws -> Int {
        let due = try await store.transaction { tx in try await tx.paymentsDueForCheck(now: self.clock.nowMillis(), limit: limit) }
        for payment in due {
            switch payment.state {
            case .created: try await submit(paymentID: payment.id)
            case .pending: try await check(paymentID: payment.id)
            default: break
            }
        }
        return due.count
    }

    public func capture(_ tx: any StoreTransaction, merchant: Merchant, paymentID: String, amount: Int64, currency: Currency) async throws -> Payment {
        guard var payment = try await tx.payment(id: paymentID, merchantID: merchant.id, forUpdate: true) else { throw KoshError.notFound() }
        guard currency == payment.currency else {
            throw KoshError.badRequest("The currency should be the same as the payment currency", field: "currency")
        }
        let fee = merchant.feeSchedule.fee(amount: payment.amount, method: payment.method)
        try await apply(.capture(amount: amount, fee: fee), to: &payment, tx)
        try await tx.updatePayment(payment)
        return payment
    }

    public func void(_ tx: any StoreTransaction, merchant: Merchant, paymentID: String) async throws -> Payment {
        guard var payment = try await tx.payment(id: paymentID, merchantID: merchant.id, forUpdate: true) else { throw KoshError.notFound() }
        try await apply(.void, to: &payment, tx)
        try await tx.updatePayment(payment)
        return payment
    }

    // MARK: Refunds

    /// Accepts a refund (state pending): the payment's refundable amount and the merchant's
    /// balance are reduced in this transaction. The caller commits, then calls `processRefund`.
    public func refund(_ tx: any StoreTransaction, merchant: Merchant, paymentID: String, _ input: NewRefund) async throws -> Refund {
        guard var payment = try await tx.payment(id: paymentID, merchantID: merchant.id, forUpdate: true) else { throw KoshError.notFound() }
        let amount = input.amount ?? payment.machine.refundableAmount
        let refund = Refund(id: self.newID(.refund), merchantID: merchant.id, paymentID: payment.id, currency: payment.currency,
                            notes: input.notes, receipt: input.receipt, speedRequested: input.speed,
                            machine: RefundMachine(amount: max(amount, 1)), createdAt: nowSeconds)
        try await apply(.refund(amount: amount), to: &payment, tx, refundID: refund.id)
        try await tx.updatePayment(payment)
        try await tx.insertRefund(refund)
        try await tx.appendEvent(event(merchant.id, "refund", refund.id, "created", from: nil, to: RefundState.pending.rawValue))
        return refund
    }

    /// Sends a pending refund to the rail and applies the answer. Idempotent.
    @discardableResult
    public func processRefund(refundID: String) async throws -> Refund {
        let (refund, payment) = try await store.transaction { tx in
            guard let refund = try await tx.refund(id: refundID, merchantID: nil, forUpdate: false) else { throw KoshError.notFound() }
            guard let payment = try await tx.payment(id: refund.paymentID, merchantID: nil, forUpdate: false) else { throw KoshError.notFound() }
            return (refund, payment)
        }
        guard refund.machine.state == .pending, let rail = rails.rail(named: payment.rail) else { return refund }
        let status: RailRefundStatus
        do {
            status = try await rail.refund(RailRefundRequest(refundID: refund.id, paymentID: payment.id, paymentReference: payment.railReference,
                                                              amount: refund.amount, currency: refund.currency))
        } catch {
            return refund
        }
        return try await store.transaction { tx in
            guard var refund = try await tx.refund(id: refundID, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
            guard refund.machine.state == .pending else { return refund }
            let from = refund.machine.state
            let actions: [RefundAction]
            switch status {
            case .pending: return refund
            case .processed(let reference):
                refund.railReference = reference
                actions = try refund.machine.apply(.processed)
            case .failed:
                actions = try refund.machine.apply(.failed)
            }
            let now = self.clock.nowMillis() / 1000
            for action in actions {
                switch action {
                case .postRefundSettled(let amount):
                    try await tx.post(PostingRules.refundSettled(id: self.newID(.journalEntry), paymentID: payment.id, refundID: refund.id,
                                                                 rail: payment.rail, amount: amount, currency: refund.currency, at: now))
                case .reverseRefund(let amount):
                    guard var locked = try await tx.payment(id: payment.id, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
                    try await self.apply(.refundFailed(amount: amount), to: &locked, tx, refundID: refund.id)
                    try await tx.updatePayment(locked)
                }
            }
            refund.processedAt = now
            refund.version += 1
            try await tx.updateRefund(refund)
            try await tx.appendEvent(self.event(refund.merchantID, "refund", refund.id, status.eventName, from: from.rawValue,
                                                to: refund.machine.state.rawValue))
            return refund
        }
    }

    public func processPendingRefunds(olderThanMillis: Int64 = 5_000, limit: Int = 100) async throws -> Int {
        let cutoff = (clock.nowMillis() - olderThanMillis) / 1000
        let pending = try await store.transaction { tx in try await tx.pendingRefunds(createdBefore: cutoff, limit: limit) }
        for refund in pending { try await processRefund(refundID: refund.id) }
        return pending.count
    }

    // MARK: Reads

    public func payment(id: String) async throws -> Payment {
        try await store.transaction { tx in
            guard let payment = try await tx.payment(id: id, merchantID: nil, forUpdate: false) else { throw KoshError.notFound() }
            return payment
        }
    }

    // MARK: Running the machine's actions

    /// Feeds `event` to the payment's machine and runs the actions it returns in `tx`.
    /// Bumps `payment.version`; the caller writes the payment.
    func apply(_ event: PaymentEvent, to payment: inout Payment, _ tx: any StoreTransaction, refundID: String? = nil) async throws {
        let actions: [PaymentAction]
        do {
            actions = try payment.machine.apply(event)
        } catch {
            throw Self.clientError(error)
        }
        let now = clock.nowMillis()
        let seconds = now / 1000
        for action in actions {
            switch action {
            case .sendToRail:
                break  // the caller calls the rail after commit
            case .postAuthorization(let amount):
                let entry = try PostingRules.authorization(id: self.newID(.journalEntry), paymentID: payment.id, merchantID: payment.merchantID,
                                                           rail: payment.rail, amount: amount, currency: payment.currency, at: seconds)
                try await tx.post(entry)
                payment.authorizationEntryID = entry.id
                payment.authorizedAt = seconds
            case .postCapture:
                let authorization = try await authorizationEntry(of: payment, tx)
                try await tx.post(PostingRules.capture(id: self.newID(.journalEntry), authorization: authorization, at: seconds))
                payment.capturedAt = seconds
            case .postFee(let fee):
                try await tx.post(PostingRules.fee(id: self.newID(.journalEntry), paymentID: payment.id, merchantID: payment.merchantID,
                                                   fee: fee, currency: payment.currency, at: seconds))
            case .voidAuthorization:
                let authorization = try await authorizationEntry(of: payment, tx)
                try await tx.post(PostingRules.void(id: self.newID(.journalEntry), authorization: authorization, at: seconds))
            case .postRefund(let amount):
                guard let refundID else { preconditionFailure("refund without a refund id") }
                try await tx.post(PostingRules.refund(id: self.newID(.journalEntry), paymentID: payment.id, refundID: refundID,
                                                      merchantID: payment.merchantID, rail: payment.rail, amount: amount,
                                                      currency: payment.currency, at: seconds))
            case .reverseRefund(let amount):
                guard let refundID else { preconditionFailure("refund reversal without a refund id") }
                try await tx.post(PostingRules.refundReversal(id: self.newID(.journalEntry), paymentID: payment.id, refundID: refundID,
                                                              merchantID: payment.merchantID, rail: payment.rail, amount: amount,
                                                              currency: payment.currency, at: seconds))
            case .markOrderPaid:
                guard var order = try await tx.order(id: payment.orderID, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
                let from = order.machine.state
                do { try order.machine.apply(.paymentCaptured) } catch {
                    throw KoshError.badRequest("Order has been paid already", field: "order_id", reason: "order_already_paid")
                }
                try await tx.updateOrder(order)
                try await tx.appendEvent(self.event(payment.merchantID, "order", order.id, OrderEvent.paymentCaptured.rawValue,
                                                    from: from.rawValue, to: order.machine.state.rawValue))
            case .recordEvent(let from, let to, let kind):
                try await tx.appendEvent(self.event(payment.merchantID, "payment", payment.id, kind.rawValue, from: from.rawValue, to: to.rawValue))
            }
        }
        payment.version += 1
    }

    func authorizationEntry(of payment: Payment, _ tx: any StoreTransaction) async throws -> JournalEntry {
        guard let id = payment.authorizationEntryID, let entry = try await tx.journalEntry(id: id) else {
            preconditionFailure("Invalid state: authorised payment \(payment.id) has no authorisation entry")
        }
        return entry
    }

    func request(for payment: Payment) -> RailPaymentRequest {
        RailPaymentRequest(paymentID: payment.id, merchantID: payment.merchantID, amount: payment.amount, currency: payment.currency,
                           method: payment.method, vpa: payment.vpa, submittedAt: payment.submittedAtMillis ?? payment.createdAt * 1000)
    }

    func event(_ merchantID: String, _ type: String, _ id: String, _ name: String, from: String?, to: String) -> PaymentEventRecord {
        PaymentEventRecord(id: self.newID(.paymentEvent), merchantID: merchantID, entityType: type, entityID: id,
                           event: name, fromState: from, toState: to, createdAt: clock.nowMillis())
    }

    /// Razorpay's wording for a refused payment operation.
    static func clientError(_ error: PaymentTransitionError) -> KoshError {
        switch (error.event, error.reason, error.state) {
        case (.capture, .captureAmountMismatch, _):
            return .badRequest("Capture amount must be equal to the amount authorized", field: "amount")
        case (.capture, _, .captured), (.capture, _, .refunded):
            return .badRequest("This payment has already been captured", reason: "payment_already_captured")
        case (.capture, _, _):
            return .badRequest("Only payments which have been authorized and not yet captured can be captured", reason: "payment_not_authorized")
        case (.void, _, _):
            return .badRequest("Only payments which have been authorized and not yet captured can be cancelled", reason: "payment_not_authorized")
        case (.refund, .exceedsRefundable, _):
            return .badRequest("The total refund amount is greater than the refund payment amount", field: "amount", reason: "refund_amount_exceeded")
        case (.refund, .nonPositiveAmount, _):
            return .badRequest("The refund amount must be at least 1 paisa", field: "amount")
        case (.refund, _, .refunded), (.refund, _, .voided):
            return .badRequest("The payment has been fully refunded already", reason: "payment_fully_refunded")
        case (.refund, _, _):
            return .badRequest("The payment status should be captured for action to be taken", reason: "payment_not_captured")
        default:
            return .badRequest(error.description, reason: "invalid_state")
        }
    }
}

extension RailRefundStatus {
    var eventName: String {
        switch self {
        case .pending: "pending"
        case .processed: "processed"
        case .failed: "failed"
        }
    }
}
