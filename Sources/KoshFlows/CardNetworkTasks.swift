import KoshCore

extension PaymentFlows {
    /// After a card payment's capture or void is committed (the ledger moved in the same
    /// transaction), the network still has to hear of it: 0200 for a capture, 0400 for a void.
    /// The task is written with the payment and sent after commit; the janitor sends it again
    /// until the network acknowledges it (the acquirer dedupes by payment id).
    func scheduleCardTask(_ task: CardNetworkTask, for payment: Payment, _ tx: any StoreTransaction) async throws -> [FollowUp] {
        guard payment.method == .card, var cardPayment = try await tx.cardPayment(paymentID: payment.id, forUpdate: true) else { return [] }
        let loaded = cardPayment
        cardPayment.task = task
        // The follow-up sends it at once; the janitor only if that has not been acknowledged by then.
        cardPayment.taskDueAt = try requireCards().settings.nextTaskAttempt(attempts: 1, now: clock.now)
        cardPayment.taskAttempts = 0
        cardPayment.taskError = nil
        try await save(&cardPayment, loaded: loaded, tx)
        return [.sendCardTask(paymentID: payment.id)]
    }

    /// Sends a card payment's pending capture or void to its connector and records the answer.
    /// Answers the payment as read before sending (the task changes the card payment only).
    /// Two transactions: one read before the call, one write after it.
    @discardableResult
    public func sendCardTask(paymentID: ID<Payment>) async throws -> Payment {
        let cards = try requireCards()
        let (payment, cardPayment, merchantName) = try await cardPaymentForNetwork(paymentID)
        guard let task = cardPayment.task, let reference = cardPayment.authorization else { return payment }
        let connector = try cards.connector(for: payment)
        let context = context(payment, cardPayment, merchantName: merchantName)
        var answer: CardNetworkAnswer
        var problem: String?
        do {
            switch task {
            case .capture: answer = try await connector.capture(context, amount: payment.amount, reference: reference)
            case .reversal: answer = try await connector.reverse(context, reference: reference)
            }
        } catch {
            answer = .unknown
            problem = String("\(error)".prefix(300))
        }
        try await store.transaction { tx in
            guard var current = try await tx.cardPayment(paymentID: paymentID, forUpdate: true), current.task == task else { return }
            let loaded = current
            switch answer {
            case .approved, .reversedAfterTimeout:
                current.task = nil
                current.taskDueAt = nil
                current.taskError = nil
            case .declined(let code, let failure):
                // A refusal of a capture or void is for an operator: the books say captured (or
                // voided); the network disagrees. Kept due, slowly, with the reason.
                current.taskAttempts += 1
                current.taskError = "\(task.rawValue) refused with \(code): \(failure.description)"
                current.taskDueAt = cards.settings.nextTaskAttempt(attempts: current.taskAttempts, now: clock.now)
            case .unknown:
                current.taskAttempts += 1
                current.taskError = problem ?? "no answer from \(payment.rail)"
                current.taskDueAt = cards.settings.nextTaskAttempt(attempts: current.taskAttempts, now: clock.now)
            }
            try await save(&current, loaded: loaded, tx)
        }
        return payment
    }

    /// A card payment, its network state and its merchant's name, in one read transaction:
    /// what a message to the card network is built from.
    func cardPaymentForNetwork(_ id: ID<Payment>) async throws -> (Payment, CardPayment, merchantName: String) {
        try await store.transaction { tx in
            guard let payment = try await tx.payment(id: id, merchantID: nil, forUpdate: false), payment.method == .card,
                  let card = try await tx.cardPayment(paymentID: id, forUpdate: false) else { throw KoshError.notFound() }
            return (payment, card, try await tx.merchant(id: payment.merchantID)?.name ?? "Kosh merchant")
        }
    }

    /// The janitor's card pass: every capture or void the network has not acknowledged yet.
    public func sendDueCardTasks(limit: Int = 100) async throws -> Int {
        guard cards != nil else { return 0 }
        let due = try await store.transaction { tx in try await tx.cardTasksDue(now: clock.now, limit: limit) }
        for cardPayment in due {
            // One payment's trouble must not stall the others.
            _ = try? await sendCardTask(paymentID: cardPayment.paymentID)
        }
        return due.count
    }

    /// A card refund over the network: 0200 with processing code 20, keyed by the refund id.
    func cardRefundStatus(_ refund: Refund, _ payment: Payment) async throws -> RailRefundStatus {
        let cards = try requireCards()
        let (_, cardPayment, merchantName) = try await cardPaymentForNetwork(payment.id)
        guard let reference = cardPayment.authorization else { return .failed(reason: "the payment has no authorisation to refund") }
        let connector = try cards.connector(for: payment)
        let answer = try await connector.refund(context(payment, cardPayment, merchantName: merchantName),
                                                refundID: refund.id, amount: refund.amount, reference: reference)
        switch answer {
        case .approved(_, let rrn): return .processed(reference: rrn)
        case .declined(let code, let failure): return .failed(reason: "\(code): \(failure.description)")
        case .reversedAfterTimeout, .unknown: return .pending
        }
    }
}
