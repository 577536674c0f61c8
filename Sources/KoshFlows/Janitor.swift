import KoshCore

extension PaymentFlows {
    /// The janitor's payment pass: submits or checks every payment whose next check is due.
    /// Returns how many it handled.
    public func runDueChecks(limit: Int = 100) async throws -> Int {
        let due = try await store.transaction { tx in try await tx.paymentsDueForCheck(now: clock.now, limit: limit) }
        for payment in due {
            do {
                if payment.method == .card {
                    try await checkCard(paymentID: payment.id)
                    continue
                }
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
    func postpone(paymentID: ID<Payment>) async throws {
        try await store.transaction { tx in
            var payment = try await lockedPayment(paymentID, tx)
            guard payment.nextCheckAt != nil else { return }
            let loaded = payment
            payment.nextCheckAt = clock.now + settings.slowCheckIntervalMillis
            try await save(&payment, loaded: loaded, tx)
        }
    }

    /// The janitor's refund pass: sends again every pending refund older than
    /// `olderThanMillis` whose next try is due, the longest-due first.
    public func sendPendingRefunds(olderThanMillis: Int64 = 5_000, limit: Int = 100) async throws -> Int {
        let now = clock.now
        let cutoff = (now - olderThanMillis).seconds
        let pending = try await store.transaction { tx in try await tx.pendingRefunds(createdBefore: cutoff, dueBy: now, limit: limit) }
        for refund in pending {
            // One refund's trouble must not stall the others.
            _ = try? await sendRefund(refundID: refund.id)
        }
        return pending.count
    }
}
