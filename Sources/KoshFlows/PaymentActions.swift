import KoshCore

extension PaymentFlows {
    /// Feeds `event` to the payment's machine and runs the actions it returns in `tx`. The
    /// caller writes the payment (`save`). Returns the follow-ups to run after commit (the
    /// refund of a late authorisation given back).
    @discardableResult
    func apply(_ event: PaymentEvent, to payment: inout Payment, _ tx: any StoreTransaction, refundID: ID<Refund>? = nil) async throws -> [FollowUp] {
        let actions: [PaymentAction]
        do {
            actions = try payment.machine.apply(event)
        } catch {
            throw PaymentRefusals.clientError(error)
        }
        let seconds = nowSeconds
        var resolveLate = false
        var followUps: [FollowUp] = []
        var published: [WebhookEventName] = []
        var paidOrder: Order?
        for action in actions {
            switch action {
            case .sendToRail:
                break  // the caller calls the rail after commit
            case .resolveLateAuthorization:
                resolveLate = true  // after this event's own actions, below
            case .sendAutoRefund:
                if let refundID { followUps.append(.sendRefund(refundID: refundID)) }
            case .postAuthorization(let amount):
                let entry = try PostingRules.authorization(id: newID(.journalEntry), paymentID: payment.id, merchantID: payment.merchantID,
                                                           rail: payment.rail, amount: amount, currency: payment.currency, at: seconds.value)
                try await tx.post(entry)
                payment.authorizationEntryID = entry.id
                payment.authorizedAt = seconds
                if case .authorize = event { followUps += try await applyCaptureSettings(&payment, tx) }
            case .postCapture:
                let authorization = try await authorizationEntry(of: payment, tx)
                try await tx.post(PostingRules.capture(id: newID(.journalEntry), authorization: authorization, at: seconds.value))
                payment.capturedAt = seconds
            case .postFee(let fee):
                try await tx.post(PostingRules.fee(id: newID(.journalEntry), paymentID: payment.id, merchantID: payment.merchantID,
                                                   fee: fee, currency: payment.currency, at: seconds.value))
            case .voidAuthorization:
                let authorization = try await authorizationEntry(of: payment, tx)
                try await tx.post(PostingRules.void(id: newID(.journalEntry), authorization: authorization, at: seconds.value))
            case .postRefund(let amount):
                guard let refundID else { preconditionFailure("refund without a refund id") }
                try await tx.post(PostingRules.refund(id: newID(.journalEntry), paymentID: payment.id, refundID: refundID,
                                                      merchantID: payment.merchantID, rail: payment.rail, amount: amount,
                                                      currency: payment.currency, at: seconds.value))
            case .reverseRefund(let amount):
                guard let refundID else { preconditionFailure("refund reversal without a refund id") }
                try await tx.post(PostingRules.refundReversal(id: newID(.journalEntry), paymentID: payment.id, refundID: refundID,
                                                              merchantID: payment.merchantID, rail: payment.rail, amount: amount,
                                                              currency: payment.currency, at: seconds.value))
            case .markOrderPaid:
                paidOrder = try await markOrderPaid(payment, tx)
            case .recordEvent(let from, let to, let kind):
                try await tx.appendEvent(self.event(payment.merchantID, "payment", payment.id, kind.rawValue, from: from.rawValue, to: to.rawValue))
                if let name = WebhookEventName.published(by: kind, to: to) { published.append(name) }
            }
        }
        // Rendered after every action ran, so the payload is the payment as it is written.
        for name in published {
            try await publish(name, merchantID: payment.merchantID, [.payment(payment)], tx)
        }
        if let paidOrder {
            try await publish(.orderPaid, merchantID: payment.merchantID, [.payment(payment), .order(paidOrder)], tx)
        }
        if resolveLate {
            followUps += try await resolveLateAuthorization(&payment, tx)
        }
        return followUps
    }

    func markOrderPaid(_ payment: Payment, _ tx: any StoreTransaction) async throws -> Order {
        guard var order = try await tx.order(id: payment.orderID, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
        let from = order.machine.state
        do { try order.machine.apply(.paymentCaptured) } catch {
            throw KoshError.badRequest("Order has been paid already", field: "order_id", reason: "order_already_paid")
        }
        try await tx.updateOrder(order)
        try await tx.appendEvent(event(payment.merchantID, "order", order.id, OrderEvent.paymentCaptured.rawValue,
                                       from: from.rawValue, to: order.machine.state.rawValue))
        return order
    }

    /// A late authorisation is resolved by the merchant's policy (`LateAuthorizationPolicy.resolve`).
    func resolveLateAuthorization(_ payment: inout Payment, _ tx: any StoreTransaction) async throws -> [FollowUp] {
        guard let merchant = try await tx.merchant(id: payment.merchantID),
              let order = try await tx.order(id: payment.orderID, merchantID: nil, forUpdate: true) else { throw KoshError.notFound() }
        let holding = try await tx.livePaymentCount(orderID: order.id)
        switch merchant.lateAuthorization.resolve(orderPaid: order.machine.state == .paid, otherPaymentsHoldingOrder: holding) {
        case .capture:
            return try await apply(.capture(amount: payment.amount, fees: merchant.feeSchedule.resolving(card: payment.card), method: payment.method), to: &payment, tx)
        case .giveBack:
            var notes = Notes()
            notes.pairs.append((key: "reason", value: "late_authorization"))
            let refund = Refund(id: newID(.refund), merchantID: payment.merchantID, paymentID: payment.id, currency: payment.currency,
                                notes: notes, receipt: nil, speedRequested: RefundSpeed.normal.rawValue,
                                machine: RefundMachine(amount: payment.amount), createdAt: nowSeconds)
            let followUps = try await apply(.autoRefund, to: &payment, tx, refundID: refund.id)
            payment.autoRefunded = true
            try await tx.insertRefund(refund)
            try await tx.appendEvent(event(payment.merchantID, "refund", refund.id, "created", from: nil, to: RefundState.pending.rawValue))
            try await publish(.refundCreated, merchantID: payment.merchantID, [.refund(refund), .payment(payment)], tx)
            return followUps
        }
    }

    func authorizationEntry(of payment: Payment, _ tx: any StoreTransaction) async throws -> JournalEntry {
        guard let id = payment.authorizationEntryID, let entry = try await tx.journalEntry(id: id) else {
            preconditionFailure("Invalid state: authorised payment \(payment.id) has no authorisation entry")
        }
        return entry
    }
}

extension WebhookEventName {
    /// The public event a payment transition publishes, if any.
    static func published(by kind: PaymentEventKind, to state: PaymentState) -> WebhookEventName? {
        switch (kind, state) {
        case (.authorize, .authorized), (.lateAuthorize, .authorized): .paymentAuthorized
        case (.capture, .captured): .paymentCaptured
        case (_, .failed): .paymentFailed
        default: nil
        }
    }
}

/// Razorpay's wording for a refused payment operation.
enum PaymentRefusals {
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

    static func clientError(_ refusal: OrderRefusal) -> KoshError {
        switch refusal {
        case .alreadyPaid:
            .badRequest("Order has been paid already", field: "order_id", reason: "order_already_paid")
        case .currencyMismatch:
            .badRequest("The currency should be the same as the order currency", field: "currency")
        case .amountMismatch(let due):
            .badRequest("The amount must be equal to the order amount due (\(due))", field: "amount")
        case .paymentInProgress:
            .badRequest("A payment for this order is already in progress", field: "order_id", reason: "payment_in_progress")
        }
    }
}
