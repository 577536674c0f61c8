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
    /// UPI flow: "collect" or "intent".
    public var flow: String
    public init(orderID: String, amount: Int64, currency: Currency, method: String, vpa: String?, email: String?,
                contact: String?, description: String?, notes: Notes, flow: String = "collect") {
        self.flow = flow
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

/// The rails payments can take: the in-process test rail for test-mode merchants, and the
/// routed connectors of live mode.
public struct RailRegistry: Sendable {
    public var test: any PaymentRail
    public var live: (any LiveRouting)?
    public init(test: any PaymentRail, live: (any LiveRouting)? = nil) {
        self.test = test
        self.live = live
    }

    func requireLive() throws -> any LiveRouting {
        guard let live else {
            throw KoshError(.badRequest, "Live mode payments are not enabled on this server", source: "business",
                            step: "payment_initiation", reason: "live_mode_not_enabled")
        }
        return live
    }

    /// Checks the instrument before a payment is created.
    public func validate(mode: Mode, method: String, vpa: String?, flow: String) throws {
        switch mode {
        case .test:
            guard flow == "collect" else {
                throw KoshError.badRequest("Test mode supports the collect flow only; the intent flow needs live keys", field: "upi.flow")
            }
            if let problem = test.validate(method: method, vpa: vpa) { throw problem }
        case .live:
            _ = try requireLive()
            guard method == "upi" else { throw KoshError.badRequest("Only the upi method is supported", field: "method") }
            if flow == "collect" && vpa == nil { throw KoshError.badRequest("The vpa field is required.", field: "vpa") }
        }
    }

    /// The routes to try, in order, with the router's reasons.
    public func plan(mode: Mode, _ request: RoutingRequest) throws -> [RouteChoice] {
        switch mode {
        case .test: [RouteChoice(connector: test.name, reason: "test mode")]
        case .live: try requireLive().plan(request)
        }
    }

    public func rail(named name: String) -> (any PaymentRail)? {
        if test.name == name { return test }
        return live?.connector(named: name)
    }

    func acquire(_ connector: String) -> Bool {
        connector == test.name ? true : (live?.acquire(connector) ?? false)
    }

    func recordOutcome(_ connector: String, success: Bool) {
        if connector != test.name { live?.recordOutcome(connector, success: success) }
    }

    public func lookup(mode: Mode, vpa: String) async throws -> VPALookup {
        switch mode {
        case .test: try await test.lookup(vpa: vpa)
        case .live: try await requireLive().lookup(vpa: vpa)
        }
    }

    public func downtimes() -> [Downtime] { live?.downtimes() ?? [] }
}

public struct GatewaySettings: Sendable {
    /// How long after submission to ask the rail first (ms).
    public var firstCheckAfterMillis: Int64
    /// Interval of status checks while a payment is pending (ms).
    public var checkIntervalMillis: Int64
    /// A payment still `created` this long after creation was never handed to the rail
    /// (the server stopped in between); the janitor submits it (ms).
    public var submitGraceMillis: Int64
    /// Poll every `checkIntervalMillis` for this long after submission, then wait for the
    /// callback and re-check only every `slowCheckIntervalMillis` (seed 003: 2 s for 30 s).
    public var pollWindowMillis: Int64
    public var slowCheckIntervalMillis: Int64
    /// A payment with no answer this long after submission is failed (timed out)…
    public var pendingTimeoutMillis: Int64
    /// …and still watched this long after submission, every `lateCheckIntervalMillis`, so a
    /// late authorisation is found even when its callback is lost.
    public var lateWatchMillis: Int64
    public var lateCheckIntervalMillis: Int64
    /// An attempt still `initiated` this long after it began lost its call (the server stopped
    /// mid-call): the janitor sends it again to the same route, which dedupes by payment id (ms).
    public var resendInitiationAfterMillis: Int64 = 10_000
    /// A refund the rail did not settle (no answer, still pending, or an auto-refund it
    /// refused) is sent again after these delays, the last repeating: a refund stuck at one
    /// rail neither hammers it nor keeps newer refunds waiting (the janitor takes due ones first).
    public var refundRetryDelaysMillis: [Int64] = [5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000]

    /// When to send a refund again after its `attempts`-th unsettled try (1-based).
    public func nextRefundAttempt(attempts: Int64, now: Int64) -> Int64 {
        let delays = refundRetryDelaysMillis.isEmpty ? [5_000] : refundRetryDelaysMillis
        return now + delays[Int(min(max(attempts, 1), Int64(delays.count))) - 1]
    }

    public init(firstCheckAfterMillis: Int64 = 1_000, checkIntervalMillis: Int64 = 2_000, submitGraceMillis: Int64 = 5_000,
                pollWindowMillis: Int64 = 30_000, slowCheckIntervalMillis: Int64 = 60_000, pendingTimeoutMillis: Int64 = 900_000,
                lateWatchMillis: Int64 = 86_400_000, lateCheckIntervalMillis: Int64 = 300_000) {
        self.firstCheckAfterMillis = firstCheckAfterMillis
        self.checkIntervalMillis = checkIntervalMillis
        self.submitGraceMillis = submitGraceMillis
        self.pollWindowMillis = pollWindowMillis
        self.slowCheckIntervalMillis = slowCheckIntervalMillis
        self.pendingTimeoutMillis = pendingTimeoutMillis
        self.lateWatchMillis = lateWatchMillis
        self.lateCheckIntervalMillis = lateCheckIntervalMillis
    }

    /// When to ask the rail next about a payment submitted at `submittedAt` that is still
    /// pending at `now`; nil means it has waited long enough and times out now.
    public func nextPendingCheck(submittedAt: Int64, now: Int64) -> Int64? {
        let age = now - submittedAt
        guard age < pendingTimeoutMillis else { return nil }
        let next = now + (age < pollWindowMillis ? checkIntervalMillis : slowCheckIntervalMillis)
        return min(next, submittedAt + pendingTimeoutMillis)
    }

    /// When to look again for a late authorisation of a timed-out payment; nil: stop watching.
    public func nextLateCheck(submittedAt: Int64, now: Int64) -> Int64? {
        now - submittedAt < lateWatchMillis ? now + lateCheckIntervalMillis : nil
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
    /// Renders the entities in webhook payloads; nil writes no public events (webhooks off).
    public let renderer: (any EntityRenderer)?

    public init(store: Store, rails: RailRegistry, clock: any KoshClock, settings: GatewaySettings = GatewaySettings(),
                renderer: (any EntityRenderer)? = nil) {
        self.store = store
        self.rails = rails
        self.clock = clock
        self.settings = settings
        self.renderer = renderer
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
        try await createPayment(tx, merchant: merchant, input, inline: false)
    }

    /// Creates a payment and, when its rail answers in-process (`submitsInline`), submits it and
    /// applies the rail's answer in the same transaction. Otherwise the payment is `created`
    /// and the caller commits, then calls `submit`, as after `createPayment`.
    public func createAndSubmitInline(_ tx: any StoreTransaction, merchant: Merchant, _ input: NewPayment) async throws -> Payment {
        try await createPayment(tx, merchant: merchant, input, inline: submitsInline(merchant))
    }

    func createPayment(_ tx: any StoreTransaction, merchant: Merchant, _ input: NewPayment, inline: Bool) async throws -> Payment {
        try rails.validate(mode: merchant.mode, method: input.method, vpa: input.vpa, flow: input.flow)
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
        // Live payments get their connector when the router picks one at submission.
        let rail = merchant.mode == .test ? rails.test.name : Self.unrouted
        let payment = Payment(id: self.newID(.payment), merchantID: merchant.id, orderID: order.id, currency: input.currency,
                              method: input.method, vpa: input.vpa, email: input.email, contact: input.contact,
                              description: input.description, notes: input.notes, machine: PaymentMachine(amount: input.amount),
                              rail: rail, flow: input.flow, createdAt: now / 1000, nextCheckAt: now + settings.submitGraceMillis)
        let fromOrderState = order.machine.state
        do { try order.machine.apply(.paymentAttempted) } catch { throw KoshError.badRequest(error.description, field: "order_id") }
        try await tx.updateOrder(order)
        try await tx.appendEvent(event(merchant.id, "payment", payment.id, "created", from: nil, to: PaymentState.created.rawValue))
        try await tx.appendEvent(event(merchant.id, "order", order.id, OrderEvent.paymentAttempted.rawValue,
                                       from: fromOrderState.rawValue, to: order.machine.state.rawValue))
        var created = payment
        guard inline else {
            try await tx.insertPayment(created)
            return created
        }
        // The payment is written once, as the rail left it; its attempt refers to it.
        let attempt = try await submitInline(&created, merchant: merchant, tx)
        try await tx.insertPayment(created)
        if let attempt { try await tx.insertAttempt(attempt) }
        return created
    }

    /// Whether a payment of this merchant is created, handed to its rail and answered in the
    /// creating transaction. Only when the rail runs inside this process with no effect outside
    /// it (the test rail): no database lock then waits on a network, and a rollback leaves
    /// nothing behind at the rail. Live rails are always called between transactions (`submit`).
    public func submitsInline(_ merchant: Merchant) -> Bool {
        merchant.mode == .test && rails.test.answersInProcess
    }

    /// `submit` and, when the rail is asked at once (`firstCheckAfterMillis == 0`), the first
    /// status check, for a rail that answers in-process, inside `tx`. The same transitions,
    /// events and postings as `submit` + `check`; the caller writes the payment, then the
    /// returned attempt.
    func submitInline(_ payment: inout Payment, merchant: Merchant, _ tx: any StoreTransaction) async throws -> PaymentAttempt? {
        guard var attempt = try await beginSubmission(&payment, merchant: merchant, tx).attempt else { return nil }
        guard let rail = rails.rail(named: attempt.connector) else {
            try await apply(.fail(Self.noRouteFailure), to: &payment, tx)
            payment.nextCheckAt = nil
            return nil
        }
        precondition(rail.answersInProcess, "Invalid state: inline submission to \(attempt.connector), which does not answer in-process")
        let now = attempt.createdAt
        let initiation: RailInitiation
        do {
            initiation = try await rail.initiate(request(for: payment, payeeName: merchant.name))
        } catch {
            // As `submit`: an unknown outcome leaves the payment pending for the janitor to check.
            attempt.status = .unknown
            attempt.errorDescription = String(String(describing: error).prefix(500))
            attempt.updatedAt = clock.nowMillis()
            attempt.latencyMillis = attempt.updatedAt - now
            return attempt
        }
        switch initiation {
        case .accepted(let reference, let link):
            attempt.status = .accepted
            attempt.upstreamReference = reference
            payment.railReference = reference
            payment.upiLink = link
            guard settings.firstCheckAfterMillis == 0 else { break }
            // As `check`: a status call that fails counts as pending.
            switch (try? await rail.status(request(for: payment))) ?? .pending {
            case .pending:
                payment.nextCheckAt = settings.nextPendingCheck(submittedAt: now, now: clock.nowMillis()) ?? clock.nowMillis()
            case .authorized(let reference, let payerVPA):
                payment.vpa = payment.vpa ?? payerVPA
                try await apply(.authorize(railReference: reference), to: &payment, tx)
                payment.nextCheckAt = nil
                attempt.status = .authorized
            case .failed(let failure):
                try await apply(.fail(failure), to: &payment, tx)
                payment.nextCheckAt = nil
                attempt.status = .failed
                attempt.errorCode = failure.reason
                attempt.errorDescription = failure.description
            }
        case .rejected(let failure):
            attempt.status = .rejected
            attempt.errorCode = failure.reason
            attempt.errorDescription = failure.description
            try await apply(.fail(failure), to: &payment, tx)
            payment.nextCheckAt = nil
        case .unavailable(let reason):
            attempt.status = .unavailable
            attempt.errorDescription = String(reason.prefix(500))
            try await apply(.fail(Self.noRouteFailure), to: &payment, tx)
            payment.nextCheckAt = nil
        }
        attempt.updatedAt = clock.nowMillis()
        attempt.latencyMillis = attempt.updatedAt - now
        return attempt
    }

    /// The rail name of a live payment not yet routed.
    public static var unrouted: String { "unrouted" }

    public static var noRouteFailure: PaymentFailure {
        PaymentFailure(code: "GATEWAY_ERROR", description: "Payment failed because no payment route is available right now. Please try again.",
                       source: "gateway", step: "payment_initiation", reason: "gateway_technical_error")
    }

    public static var timedOutFailure: PaymentFailure {
        PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Payment was unsuccessful as it was not completed in time.",
                       source: "customer", step: "payment_authentication", reason: "payment_timed_out")
    }

    /// What came of handing the payment to one route.
    enum AttemptOutcome {
        case accepted(reference: String, link: String?)
        case rejected(PaymentFailure)
        case unavailable(String)
        case skipped
        case unknown(String)
    }

    /// Hands a `created` payment to its rail, trying the routes the router chose in order.
    /// Safe to call more than once: a payment that is no longer `created` is returned
    /// unchanged. Each try is recorded as an attempt before the call, and the payment points
    /// at the attempt's connector, so after a crash the janitor asks the right upstream.
    /// The next route is tried only when the last surely did nothing (unavailable, breaker
    /// open); a timeout leaves the payment pending there, because the payer may be charged.
    @discardableResult
    public func submit(paymentID: String) async throws -> Payment {
        let started: (Payment, PaymentAttempt?, [RouteChoice], String)? = try await store.transaction { tx in
            guard var payment = try await tx.payment(id: paymentID, merchantID: nil, forUpdate: true) else {
                throw KoshError.notFound()
            }
            guard payment.state == .created else { return nil }
            guard let merchant = try await tx.merchant(id: payment.merchantID) else { throw KoshError.notFound() }
            let (plan, attempt) = try await self.beginSubmission(&payment, merchant: merchant, tx)
            if let attempt { try await tx.insertAttempt(attempt) }
            try await tx.updatePayment(payment)
            return (payment, attempt, plan, merchant.name)
        }
        guard let (submitted, firstAttempt, plan, payeeName) = started else {
            return try await self.payment(id: paymentID)
        }
        guard var attempt = firstAttempt else { return submitted }
        var current = submitted
        var index = 0
        while true {
            let connector = plan[index].connector
            let outcome: AttemptOutcome
            let began = clock.nowMillis()
            if let rail = rails.rail(named: connector), rails.acquire(connector) {
                do {
                    switch try await rail.initiate(request(for: current, payeeName: payeeName)) {
                    case .accepted(let reference, let link): outcome = .accepted(reference: reference, link: link)
                    case .rejected(let failure): outcome = .rejected(failure)
                    case .unavailable(let reason): outcome = .unavailable(reason)
                    }
                } catch {
                    outcome = .unknown(String(describing: error))
                }
            } else {
                outcome = .skipped
            }
            let latency = clock.nowMillis() - began
            // A route that could not take the payment counts against its success rate.
            if case .unavailable = outcome { rails.recordOutcome(connector, success: false) }
            let next: PaymentAttempt? = index + 1 < plan.count
                ? newAttempt(current, seq: attempt.seq + 1, plan[index + 1], now: clock.nowMillis()) : nil
            let (payment, failedOver) = try await store.transaction { tx in
                try await self.finishAttempt(paymentID: paymentID, attempt: attempt, outcome: outcome, latency: latency, next: next, tx)
            }
            current = payment
            guard failedOver, let next else { break }
            attempt = next
            index += 1
        }
        // A rail that answers at once (the test rail with no approval delay) is asked right away.
        if current.state == .pending && settings.firstCheckAfterMillis == 0 {
            return try await check(paymentID: paymentID)
        }
        return current
    }

    /// The start of every submission, in `tx`: routes the payment, marks it submitted and opens
    /// the first route's attempt (not yet written). With no route the payment fails and the
    /// attempt is nil.
    func beginSubmission(_ payment: inout Payment, merchant: Merchant,
                         _ tx: any StoreTransaction) async throws -> (plan: [RouteChoice], attempt: PaymentAttempt?) {
        let plan = try rails.plan(mode: merchant.mode, RoutingRequest(method: payment.method, flow: payment.flow, amount: payment.amount,
                                                                      preferred: merchant.routePreference))
        try await apply(.submit, to: &payment, tx)
        let now = clock.nowMillis()
        payment.submittedAtMillis = now
        guard let first = plan.first else {
            try await apply(.fail(Self.noRouteFailure), to: &payment, tx)
            payment.nextCheckAt = nil
            return ([], nil)
        }
        payment.nextCheckAt = now + settings.firstCheckAfterMillis
        payment.rail = first.connector
        return (plan, newAttempt(payment, seq: 1, first, now: now))
    }

    func newAttempt(_ payment: Payment, seq: Int64, _ choice: RouteChoice, now: Int64) -> PaymentAttempt {
        PaymentAttempt(id: newID(.attempt), paymentID: payment.id, merchantID: payment.merchantID, seq: seq, connector: choice.connector,
                       reason: choice.reason, status: .initiated, createdAt: now, updatedAt: now)
    }

    /// Records what one route did with the payment and moves the payment on. Returns the
    /// payment and whether it moved to the next route (`next`, inserted here).
    func finishAttempt(paymentID: String, attempt: PaymentAttempt, outcome: AttemptOutcome, latency: Int64, next: PaymentAttempt?,
                       _ tx: any StoreTransaction) async throws -> (Payment, Bool) {
        guard var payment = try await tx.payment(id: paymentID, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
        let loadedVersion = payment.version
        // A callback may have recorded the final word on this attempt while the call was out.
        let stored = try await tx.attempts(paymentID: paymentID).first(where: { $0.id == attempt.id }) ?? attempt
        var attempt = stored
        attempt.latencyMillis = latency
        let settled = stored.status != .initiated
        attempt.updatedAt = clock.nowMillis()
        var failedOver = false
        // Only the attempt the payment points at may move it (a callback may have been faster).
        let inCharge = payment.state == .pending && payment.rail == attempt.connector
        switch outcome {
        case .accepted(let reference, let link):
            if !settled { attempt.status = .accepted }
            attempt.upstreamReference = attempt.upstreamReference ?? reference
            if inCharge {
                payment.railReference = payment.railReference ?? reference
                payment.upiLink = payment.upiLink ?? link
                payment.version += 1
            }
        case .rejected(let failure):
            attempt.status = .rejected
            attempt.errorCode = failure.reason
            attempt.errorDescription = failure.description
            if inCharge {
                try await apply(.fail(failure), to: &payment, tx)
                payment.nextCheckAt = nil
            }
        case .unavailable(let reason), .unknown(let reason):
            if !settled {
                if case .unavailable = outcome { attempt.status = .unavailable } else { attempt.status = .unknown }
                attempt.errorDescription = String(reason.prefix(500))
            }
        case .skipped:
            attempt.status = .skipped
            attempt.errorDescription = "circuit breaker open"
        }
        var moveOn = false
        switch outcome {
        case .unavailable, .skipped: moveOn = true
        default: break
        }
        switch (moveOn, inCharge) {
        case (true, true):
            if let next {
                try await tx.insertAttempt(next)
                payment.rail = next.connector
                payment.version += 1
                failedOver = true
            } else {
                try await apply(.fail(Self.noRouteFailure), to: &payment, tx)
                payment.nextCheckAt = nil
            }
        default:
            break
        }
        try await tx.updateAttempt(attempt)
        if payment.version != loadedVersion { try await tx.updatePayment(payment) }
        return (payment, failedOver)
    }

    /// Asks the rail about a payment in flight (or a timed-out one still watched for a late
    /// authorisation) and applies the answer. Idempotent.
    @discardableResult
    public func check(paymentID: String) async throws -> Payment {
        let current = try await payment(id: paymentID)
        let watched = current.state == .pending || (current.state == .failed && current.nextCheckAt != nil)
        guard watched, let rail = rails.rail(named: current.rail) else { return current }
        if current.state == .pending, let resent = try await resendLostInitiation(current, rail) { return resent }
        let status: RailPaymentStatus
        do {
            status = try await rail.status(request(for: current))
        } catch {
            status = .pending
        }
        return try await applyRailStatus(paymentID: paymentID, status, fromCallback: false, connector: current.rail)
    }

    /// Applies what a rail said about a payment — from a status check or a callback — once:
    /// a repeated or stale answer changes nothing. A success for a payment already failed is
    /// a late authorisation: taken in, then captured or refunded per the merchant's policy.
    @discardableResult
    public func applyRailStatus(paymentID: String, _ status: RailPaymentStatus, fromCallback: Bool, amount: Int64? = nil,
                                connector: String? = nil) async throws -> Payment {
        var outcome: Bool?
        let (payment, refunds): (Payment, [String]) = try await store.transaction { tx in
            guard var payment = try await tx.payment(id: paymentID, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
            if let connector, connector != payment.rail {
                // Only the route the payment is on can speak for it; earlier routes surely did nothing.
                throw KoshError(.conflict, "The payment \(paymentID) is not on \(connector)", reason: "wrong_connector")
            }
            if let amount, amount != payment.amount {
                throw KoshError.badRequest("The amount \(amount) does not match the payment amount \(payment.amount)", field: "amount")
            }
            let now = self.clock.nowMillis()
            let submittedAt = payment.submittedAtMillis ?? payment.createdAt * 1000
            var refunds: [String] = []
            switch (payment.state, status) {
            case (.pending, .pending):
                guard !fromCallback else { return (payment, []) }
                if let next = self.settings.nextPendingCheck(submittedAt: submittedAt, now: now) {
                    payment.nextCheckAt = next
                    payment.version += 1
                } else {
                    try await self.apply(.fail(Self.timedOutFailure), to: &payment, tx)
                    payment.nextCheckAt = self.settings.nextLateCheck(submittedAt: submittedAt, now: now)
                    try await self.markAttempt(payment, .unknown, error: Self.timedOutFailure, tx)
                }
            case (.pending, .authorized(let reference, let payerVPA)):
                payment.railReference = payment.railReference ?? reference
                payment.vpa = payment.vpa ?? payerVPA
                try await self.apply(.authorize(railReference: reference), to: &payment, tx)
                payment.nextCheckAt = nil
                try await self.markAttempt(payment, .authorized, reference: reference, tx)
                outcome = true
            case (.pending, .failed(let failure)):
                try await self.apply(.fail(failure), to: &payment, tx)
                payment.nextCheckAt = nil
                try await self.markAttempt(payment, .failed, error: failure, tx)
                // A payer's "no" says nothing about the route.
                if failure.source != "customer" { outcome = false }
            case (.failed, .authorized(let reference, let payerVPA)):
                payment.railReference = reference
                payment.vpa = payment.vpa ?? payerVPA
                refunds = try await self.apply(.lateAuthorize(railReference: reference), to: &payment, tx)
                payment.nextCheckAt = nil
                try await self.markAttempt(payment, .authorized, reference: reference, tx)
                outcome = true
            case (.failed, .failed):
                guard payment.nextCheckAt != nil else { return (payment, []) }
                payment.nextCheckAt = nil
                payment.version += 1
            case (.failed, .pending):
                guard payment.nextCheckAt != nil, !fromCallback else { return (payment, []) }
                payment.nextCheckAt = self.settings.nextLateCheck(submittedAt: submittedAt, now: now)
                payment.version += 1
            default:
                // Already authorised, captured, voided or refunded: a duplicate or stale answer.
                return (payment, [])
            }
            try await tx.updatePayment(payment)
            return (payment, refunds)
        }
        if let outcome { rails.recordOutcome(payment.rail, success: outcome) }
        for refundID in refunds { try await processRefund(refundID: refundID) }
        return refunds.isEmpty ? payment : try await self.payment(id: paymentID)
    }

    /// A payment whose current attempt never got its answer recorded (the server stopped while
    /// the call was out) is sent again to the same route: every route dedupes by payment id
    /// (betapay answers E409, taken as accepted), so the payer is asked at most once.
    func resendLostInitiation(_ payment: Payment, _ rail: any PaymentRail) async throws -> Payment? {
        let attempts = try await store.transaction { tx in try await tx.attempts(paymentID: payment.id) }
        guard let attempt = attempts.last, attempt.connector == payment.rail, attempt.status == .initiated,
              clock.nowMillis() - attempt.createdAt >= settings.resendInitiationAfterMillis else { return nil }
        let began = clock.nowMillis()
        let outcome: AttemptOutcome
        do {
            switch try await rail.initiate(request(for: payment)) {
            case .accepted(let reference, let link): outcome = .accepted(reference: reference, link: link)
            case .rejected(let failure): outcome = .rejected(failure)
            case .unavailable(let reason): outcome = .unknown("resent after a restart; \(reason)")
            }
        } catch {
            outcome = .unknown("resent after a restart; \(error)")
        }
        let latency = clock.nowMillis() - began
        let (updated, _) = try await store.transaction { tx in
            try await self.finishAttempt(paymentID: payment.id, attempt: attempt, outcome: outcome, latency: latency, next: nil, tx)
        }
        return updated
    }

    /// Records the final word on the payment's current attempt.
    func markAttempt(_ payment: Payment, _ status: PaymentAttempt.Status, reference: String? = nil, error: PaymentFailure? = nil,
                     _ tx: any StoreTransaction) async throws {
        guard var attempt = try await tx.attempts(paymentID: payment.id).last(where: { $0.connector == payment.rail }) else { return }
        attempt.status = status
        attempt.upstreamReference = attempt.upstreamReference ?? reference
        if let error {
            attempt.errorCode = error.reason
            attempt.errorDescription = error.description
        }
        attempt.updatedAt = clock.nowMillis()
        try await tx.updateAttempt(attempt)
    }

    /// Submits or checks every payment whose next check is due. Returns how many it handled.
    public func runDueChecks(limit: Int = 100) async throws -> Int {
        let due = try await store.transaction { tx in try await tx.paymentsDueForCheck(now: self.clock.nowMillis(), limit: limit) }
        for payment in due {
            do {
                switch payment.state {
                case .created: try await submit(paymentID: payment.id)
                case .pending, .failed:
                    if rails.rail(named: payment.rail) == nil {
                        // Its rail is not configured on this server (live mode off): look again later.
                        try await postpone(paymentID: payment.id)
                    } else {
                        try await check(paymentID: payment.id)
                    }
                default: break
                }
            } catch {
                // One payment's trouble (e.g. live mode off for a live payment) must not stall the others.
                try? await postpone(paymentID: payment.id)
            }
        }
        return due.count
    }

    /// Moves a payment's next check back by the slow interval, so a payment that cannot be
    /// handled now does not hold the head of the queue.
    func postpone(paymentID: String) async throws {
        try await store.transaction { tx in
            guard var payment = try await tx.payment(id: paymentID, merchantID: nil, forUpdate: true), payment.nextCheckAt != nil else { return }
            payment.nextCheckAt = self.clock.nowMillis() + self.settings.slowCheckIntervalMillis
            payment.version += 1
            try await tx.updatePayment(payment)
        }
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
        var refund = Refund(id: self.newID(.refund), merchantID: merchant.id, paymentID: payment.id, currency: payment.currency,
                            notes: input.notes, receipt: input.receipt, speedRequested: input.speed,
                            machine: RefundMachine(amount: max(amount, 1)), createdAt: nowSeconds)
        try await apply(.refund(amount: amount), to: &payment, tx, refundID: refund.id)
        try await tx.updatePayment(payment)
        try await tx.insertRefund(refund)
        try await tx.appendEvent(event(merchant.id, "refund", refund.id, "created", from: nil, to: RefundState.pending.rawValue))
        try await publish(.refundCreated, merchantID: merchant.id, refund: refund, payment: payment, tx)
        // A rail that answers in-process (the test rail) is asked in this transaction, as
        // `submitsInline` explains; any other is asked after commit (`processRefund`).
        if let rail = rails.rail(named: payment.rail), rail.answersInProcess {
            // As `processRefund`: a call that fails leaves the refund pending (sent again after commit).
            if let status = try? await rail.refund(railRefundRequest(refund, payment)),
               try await settle(&refund, status, payment: payment, current: payment, tx) {
                try await tx.updateRefund(refund)
            }
        }
        return refund
    }

    func railRefundRequest(_ refund: Refund, _ payment: Payment) -> RailRefundRequest {
        RailRefundRequest(refundID: refund.id, paymentID: payment.id, paymentReference: payment.railReference,
                          amount: refund.amount, currency: refund.currency)
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
        let status: RailRefundStatus?
        var noAnswer = ""
        do {
            status = try await rail.refund(railRefundRequest(refund, payment))
        } catch {
            status = nil
            noAnswer = String("\(error)".prefix(300))
        }
        return try await store.transaction { tx in
            guard var refund = try await tx.refund(id: refundID, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
            guard refund.machine.state == .pending else { return refund }
            if let status, try await self.settle(&refund, status, payment: payment, current: nil, tx) {
                try await tx.updateRefund(refund)
            } else {
                // Not settled: no answer, still pending at the rail, or an auto-refund it refused.
                let reason = switch status {
                case nil: "the call to \(payment.rail) failed: \(noAnswer)"
                case .pending?: "still pending at \(payment.rail)"
                case .failed(let why)?: "refused by \(payment.rail): \(why) (an auto-refund is sent again, never reversed onto the merchant)"
                case .processed?: "not applied"
                }
                try await tx.postponeRefund(id: refund.id, reason: reason) { attempts in
                    self.settings.nextRefundAttempt(attempts: attempts, now: self.clock.nowMillis())
                }
            }
            return refund
        }
    }

    /// Applies the rail's answer to a pending refund in `tx`: postings, the payment's reversal,
    /// the refund's event and public event. Returns whether the refund changed (the caller
    /// writes it). `current` is the payment as `tx` holds it, when the caller has it.
    func settle(_ refund: inout Refund, _ status: RailRefundStatus, payment: Payment, current: Payment?,
                _ tx: any StoreTransaction) async throws -> Bool {
        let from = refund.machine.state
        let actions: [RefundAction]
        switch status {
        case .pending: return false
        case .processed(let reference):
            refund.railReference = reference
            actions = try refund.machine.apply(.processed)
        case .failed where payment.autoRefunded:
            // An auto-refund gives back money the merchant never had a right to: it is never
            // reversed onto the merchant's balance. It stays pending and is sent again.
            return false
        case .failed:
            actions = try refund.machine.apply(.failed)
        }
        let now = self.clock.nowMillis() / 1000
        var current = current
        for action in actions {
            switch action {
            case .postRefundSettled(let amount):
                try await tx.post(PostingRules.refundSettled(id: self.newID(.journalEntry), paymentID: payment.id, refundID: refund.id,
                                                             rail: payment.rail, amount: amount, currency: refund.currency, at: now))
            case .reverseRefund(let amount):
                guard var locked = try await tx.payment(id: payment.id, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
                try await self.apply(.refundFailed(amount: amount), to: &locked, tx, refundID: refund.id)
                try await tx.updatePayment(locked)
                current = locked
            }
        }
        refund.processedAt = now
        refund.version += 1
        try await tx.appendEvent(self.event(refund.merchantID, "refund", refund.id, status.eventName, from: from.rawValue,
                                            to: refund.machine.state.rawValue))
        if current == nil { current = try await tx.payment(id: payment.id, merchantID: nil, forUpdate: false) }
        if let current {
            try await self.publish(refund.machine.state == .failed ? .refundFailed : .refundProcessed, merchantID: refund.merchantID,
                                   refund: refund, payment: current, tx)
        }
        return true
    }

    public func processPendingRefunds(olderThanMillis: Int64 = 5_000, limit: Int = 100) async throws -> Int {
        let cutoff = (clock.nowMillis() - olderThanMillis) / 1000
        let now = clock.nowMillis()
        let pending = try await store.transaction { tx in try await tx.pendingRefunds(createdBefore: cutoff, dueBy: now, limit: limit) }
        for refund in pending {
            // One refund's trouble must not stall the others.
            _ = try? await processRefund(refundID: refund.id)
        }
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
    /// Bumps `payment.version`; the caller writes the payment. Returns the refunds to send
    /// to the rail once the transaction commits.
    @discardableResult
    func apply(_ event: PaymentEvent, to payment: inout Payment, _ tx: any StoreTransaction, refundID: String? = nil) async throws -> [String] {
        let actions: [PaymentAction]
        do {
            actions = try payment.machine.apply(event)
        } catch {
            throw Self.clientError(error)
        }
        let now = clock.nowMillis()
        let seconds = now / 1000
        var resolveLate = false
        var refundsToSend: [String] = []
        var published: [WebhookEventName] = []
        var paidOrder: Order?
        for action in actions {
            switch action {
            case .sendToRail:
                break  // the caller calls the rail after commit
            case .resolveLateAuthorization:
                resolveLate = true  // after this event's own actions, below
            case .sendAutoRefund:
                if let refundID { refundsToSend.append(refundID) }
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
                paidOrder = order
            case .recordEvent(let from, let to, let kind):
                try await tx.appendEvent(self.event(payment.merchantID, "payment", payment.id, kind.rawValue, from: from.rawValue, to: to.rawValue))
                switch (kind, to) {
                case (.authorize, .authorized), (.lateAuthorize, .authorized): published.append(.paymentAuthorized)
                case (.capture, .captured): published.append(.paymentCaptured)
                case (_, .failed): published.append(.paymentFailed)
                default: break
                }
            }
        }
        payment.version += 1
        // Rendered after every action ran, so the payload is the payment as it is written.
        for name in published {
            try await publish(name, merchantID: payment.merchantID, entities: [("payment", payment)], tx)
        }
        if let paidOrder {
            try await publish(.orderPaid, merchantID: payment.merchantID, entities: [("payment", payment), ("order", paidOrder)], tx)
        }
        if resolveLate {
            refundsToSend += try await resolveLateAuthorization(&payment, tx)
        }
        return refundsToSend
    }

    /// A late authorisation is captured when the merchant wants that and its order is still
    /// unpaid with no other payment in flight; otherwise it is refunded in full at once.
    func resolveLateAuthorization(_ payment: inout Payment, _ tx: any StoreTransaction) async throws -> [String] {
        guard let merchant = try await tx.merchant(id: payment.merchantID),
              let order = try await tx.order(id: payment.orderID, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
        if merchant.lateAuthorization == .capture, order.machine.state != .paid, try await tx.livePaymentCount(orderID: order.id) == 0 {
            let fee = merchant.feeSchedule.fee(amount: payment.amount, method: payment.method)
            return try await apply(.capture(amount: payment.amount, fee: fee), to: &payment, tx)
        }
        var notes = Notes()
        notes.pairs.append((key: "reason", value: "late_authorization"))
        let refund = Refund(id: self.newID(.refund), merchantID: payment.merchantID, paymentID: payment.id, currency: payment.currency,
                            notes: notes, receipt: nil, speedRequested: "normal", machine: RefundMachine(amount: payment.amount),
                            createdAt: nowSeconds)
        let sends = try await apply(.autoRefund, to: &payment, tx, refundID: refund.id)
        payment.autoRefunded = true
        try await tx.insertRefund(refund)
        try await tx.appendEvent(event(payment.merchantID, "refund", refund.id, "created", from: nil, to: RefundState.pending.rawValue))
        try await publish(.refundCreated, merchantID: payment.merchantID, refund: refund, payment: payment, tx)
        return sends
    }

    func authorizationEntry(of payment: Payment, _ tx: any StoreTransaction) async throws -> JournalEntry {
        guard let id = payment.authorizationEntryID, let entry = try await tx.journalEntry(id: id) else {
            preconditionFailure("Invalid state: authorised payment \(payment.id) has no authorisation entry")
        }
        return entry
    }

    func request(for payment: Payment, payeeName: String = "Kosh merchant") -> RailPaymentRequest {
        RailPaymentRequest(paymentID: payment.id, merchantID: payment.merchantID, amount: payment.amount, currency: payment.currency,
                           method: payment.method, vpa: payment.vpa, submittedAt: payment.submittedAtMillis ?? payment.createdAt * 1000,
                           flow: payment.flow, payeeName: payeeName, description: payment.description)
    }

    func event(_ merchantID: String, _ type: String, _ id: String, _ name: String, from: String?, to: String) -> PaymentEventRecord {
        let now = clock.nowMillis()
        // Ordered IDs: a payment's events of one transaction share a millisecond and must read back in order.
        return PaymentEventRecord(id: Identifiers.makeOrdered(.paymentEvent, millis: now), merchantID: merchantID, entityType: type,
                                  entityID: id, event: name, fromState: from, toState: to, createdAt: now)
    }

    // MARK: Public events (webhooks outbox)

    /// Writes the public event `name` with the entities as the API renders them, in `tx`.
    func publish(_ name: WebhookEventName, merchantID: String, entities: [(String, any Sendable)], _ tx: any StoreTransaction) async throws {
        guard let renderer else { return }
        let rendered: [(String, JSON)] = entities.map { key, value in
            switch value {
            case let payment as Payment: (key, renderer.payment(payment))
            case let order as Order: (key, renderer.order(order))
            case let refund as Refund: (key, renderer.refund(refund))
            default: preconditionFailure("Invalid state: no rendering for \(type(of: value))")
            }
        }
        let now = nowSeconds
        try await tx.enqueueEvent(OutboxEvent(id: newID(.paymentEvent), merchantID: merchantID, name: name,
                                              body: OutboxEvent.body(accountID: merchantID, name: name, entities: rendered, createdAt: now),
                                              createdAt: now))
    }

    func publish(_ name: WebhookEventName, merchantID: String, refund: Refund, payment: Payment, _ tx: any StoreTransaction) async throws {
        try await publish(name, merchantID: merchantID, entities: [("refund", refund), ("payment", payment)], tx)
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
