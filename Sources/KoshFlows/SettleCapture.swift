import KoshCore

extension PaymentFlows {
    /// A payment just authorised takes its capture settings (`CaptureSettings`): its order's
    /// `payment_capture`, else the merchant's default. Auto-capture happens after the commit
    /// (a follow-up, and the janitor if the process stops first); a manual capture has until
    /// the window's end, when the janitor releases the payment.
    func applyCaptureSettings(_ payment: inout Payment, _ tx: any StoreTransaction) async throws -> [FollowUp] {
        guard let merchant = try await tx.merchant(id: payment.merchantID),
              let order = try await tx.order(id: payment.orderID, merchantID: nil, forUpdate: false) else { throw KoshError.notFound() }
        let (action, dueAt) = merchant.capture.onAuthorization(order: order.paymentCapture, authorizedAt: clock.now)
        payment.captureAction = action
        payment.captureDueAt = dueAt
        return action == .capture ? [.settleCapture(paymentID: payment.id)] : []
    }

    /// Carries out an authorised payment's capture setting once it is due: captures it in full,
    /// or releases it — a card's authorisation voided (0400), any other method's money refunded
    /// to the payer (Razorpay's auto-refund of payments not captured in time). A payment no
    /// longer authorised, or not yet due, is left as it is.
    @discardableResult
    func settleCapture(paymentID: ID<Payment>) async throws -> Payment {
        let (payment, followUps) = try await store.transaction { tx -> (Payment, [FollowUp]) in
            var payment = try await lockedPayment(paymentID, tx)
            guard payment.state == .authorized, let action = payment.captureAction, let due = payment.captureDueAt, due <= clock.now,
                  let merchant = try await tx.merchant(id: payment.merchantID) else { return (payment, []) }
            let loaded = payment
            var followUps: [FollowUp]
            switch action {
            case .capture:
                followUps = try await apply(.capture(amount: payment.amount, fees: merchant.feeSchedule.resolving(card: payment.card),
                                                     method: payment.method), to: &payment, tx)
                followUps += try await scheduleCardTask(.capture, for: payment, tx)
            case .release where payment.method == .card:
                followUps = try await apply(.void, to: &payment, tx)
                followUps += try await scheduleCardTask(.reversal, for: payment, tx)
            case .release:
                var notes = Notes()
                notes.pairs.append((key: "reason", value: "not_captured_in_time"))
                let refund = Refund(id: newID(.refund), merchantID: payment.merchantID, paymentID: payment.id, currency: payment.currency,
                                    notes: notes, receipt: nil, speedRequested: RefundSpeed.normal.rawValue,
                                    machine: RefundMachine(amount: payment.amount), createdAt: nowSeconds)
                followUps = try await apply(.autoRefund, to: &payment, tx, refundID: refund.id)
                payment.autoRefunded = true
                try await tx.insertRefund(refund)
                try await tx.appendEvent(event(payment.merchantID, "refund", refund.id, "created", from: nil, to: RefundState.pending.rawValue))
                try await publish(.refundCreated, merchantID: payment.merchantID, [.refund(refund), .payment(payment)], tx)
            }
            payment.captureDueAt = nil
            try await save(&payment, loaded: loaded, tx)
            return (payment, followUps)
        }
        _ = await run(followUps)
        return payment
    }

    /// The janitor's capture pass: every authorised payment whose capture setting is due.
    public func settleDueCaptures(limit: Int = 100) async throws -> Int {
        let due = try await store.transaction { tx in try await tx.paymentsDueForCapture(now: clock.now, limit: limit) }
        for payment in due {
            // One payment's trouble must not stall the others; it is due again next pass.
            _ = try? await settleCapture(paymentID: payment.id)
        }
        return due.count
    }
}
