import KoshCore

/// What recording a credit did.
public struct QRCreditResult: Sendable {
    public let payment: Payment
    public let qrCode: UPIQRCode
    /// False when this credit was recorded before (a notification delivered twice).
    public let recorded: Bool
}

extension PaymentFlows {
    /// A payment into a QR code, as its rail confirmed it (never as a notification said). In one
    /// transaction, under the code's row lock: an order and a payment of the code's merchant
    /// (method upi, flow qr), authorised and captured with the usual postings and webhooks, the
    /// code's counts, and `qr_code.credited`. A credit the code cannot take (closed, expired, a
    /// single-use code already paid, a fixed amount not matched) is taken in and refunded in
    /// full over the rail (`autoRefund`: no fee, both legs in the ledger, refund webhooks).
    /// The same credit again (by the rail's transaction id) records nothing and answers the
    /// payment recorded the first time.
    @discardableResult
    public func recordQRCredit(_ credit: RailCredit, rail railName: String) async throws -> QRCreditResult {
        guard Identifiers.isWellFormed(credit.reference, .qrCode) else { throw KoshError.notFound("No QR code \(credit.reference.prefix(64))", field: "tr") }
        precondition(credit.amount > 0, "a credit moves money")
        let qrID: ID<UPIQRCode> = ID(credit.reference)
        let (result, followUps) = try await store.transaction { tx -> (QRCreditResult, [FollowUp]) in
            guard var qr = try await tx.qrCode(id: qrID, merchantID: nil, forUpdate: true) else {
                throw KoshError.notFound("No QR code \(credit.reference)", field: "tr")
            }
            if let link = try await tx.qrPayment(rail: railName, railTransactionID: credit.transactionID) {
                guard let payment = try await tx.payment(id: link.paymentID, merchantID: nil, forUpdate: false) else { throw KoshError.notFound() }
                return (QRCreditResult(payment: payment, qrCode: qr, recorded: false), [])
            }
            guard let merchant = try await tx.merchant(id: qr.merchantID) else { throw KoshError.notFound() }
            // Live codes are paid over live rails, test-mode codes over the test rail only.
            guard (merchant.mode == .test) == (railName == rails.test.name) else {
                throw KoshError(.conflict, "The QR code \(qr.id) is not paid over \(railName)", reason: "wrong_connector")
            }
            let loaded = qr
            let decision = qr.credit(amount: credit.amount, now: nowSeconds)
            var (payment, followUps) = try await creditPayment(credit, qr: qr, merchant: merchant, rail: railName, tx)
            var givenBack: Refund?
            switch decision {
            case .accept:
                followUps += try await apply(.capture(amount: payment.amount, fees: merchant.feeSchedule, method: .upi), to: &payment, tx)
            case .refund(let refusal):
                var notes = Notes()
                notes.pairs.append((key: "reason", value: refusal.rawValue))
                notes.pairs.append((key: "qr_code_id", value: qr.id.rawValue))
                let refund = Refund(id: newID(.refund), merchantID: merchant.id, paymentID: payment.id, currency: payment.currency, notes: notes,
                                    receipt: nil, speedRequested: RefundSpeed.normal.rawValue, machine: RefundMachine(amount: payment.amount),
                                    createdAt: nowSeconds)
                followUps += try await apply(.autoRefund, to: &payment, tx, refundID: refund.id)
                payment.autoRefunded = true
                givenBack = refund
            }
            // Captured (or given back) here and now: nothing left for the capture settings.
            payment.captureAction = nil
            payment.captureDueAt = nil
            followUps.removeAll { if case .settleCapture = $0 { true } else { false } }
            try await tx.insertPayment(payment)
            if let refund = givenBack {
                // After its payment: a refund row refers to it.
                try await tx.insertRefund(refund)
                try await tx.appendEvent(event(merchant.id, "refund", refund.id, "created", from: nil, to: RefundState.pending.rawValue))
                try await publish(.refundCreated, merchantID: merchant.id, [.refund(refund), .payment(payment)], tx)
            }
            try await tx.insertAttempt(creditAttempt(payment, credit, rail: railName))
            let accepted = if case .accept = decision { true } else { false }
            try await tx.insertQRPayment(QRPaymentLink(paymentID: payment.id, qrCodeID: qr.id, merchantID: merchant.id, rail: railName,
                                                       railTransactionID: credit.transactionID, accepted: accepted, createdAt: nowSeconds))
            if qr != loaded {
                try await tx.updateQRCode(qr)
                qr.version = loaded.version + 1
                try await tx.appendEvent(event(merchant.id, "qr_code", qr.id, accepted ? "credited" : "refused",
                                               from: loaded.status.rawValue, to: qr.status.rawValue))
            }
            if accepted {
                try await publish(.qrCodeCredited, merchantID: merchant.id, [.payment(payment), .qrCode(qr)], tx)
            }
            return (QRCreditResult(payment: payment, qrCode: qr, recorded: true), followUps)
        }
        guard !followUps.isEmpty else { return result }
        // A refund whose call fails is left pending for the janitor.
        _ = await run(followUps)
        return QRCreditResult(payment: try await payment(id: result.payment.id), qrCode: result.qrCode, recorded: result.recorded)
    }

    /// The order and payment of a credit, in `tx`: the order (receipt: the QR code's id) is
    /// written, the payment is authorised but not yet written (the caller captures or gives it
    /// back first, then inserts it).
    func creditPayment(_ credit: RailCredit, qr: UPIQRCode, merchant: Merchant, rail: String,
                       _ tx: any StoreTransaction) async throws -> (Payment, [FollowUp]) {
        let now = clock.now
        var order = Order(id: newID(.order), merchantID: merchant.id, currency: .inr, receipt: qr.id.rawValue, notes: Notes(),
                          machine: OrderMachine(amount: credit.amount), createdAt: now.seconds, paymentCapture: true)
        do {
            try order.machine.admitPayment(amount: credit.amount, currency: .inr, orderCurrency: .inr, paymentsHoldingOrder: 0)
        } catch {
            preconditionFailure("Invalid state: a new order refused its only payment: \(error)")
        }
        try await tx.insertOrder(order)
        try await tx.appendEvent(event(merchant.id, "order", order.id, "created", from: nil, to: OrderState.created.rawValue))
        try await tx.appendEvent(event(merchant.id, "order", order.id, OrderEvent.paymentAttempted.rawValue,
                                       from: OrderState.created.rawValue, to: order.machine.state.rawValue))
        var payment = Payment(id: newID(.payment), merchantID: merchant.id, orderID: order.id, currency: .inr, method: .upi, vpa: credit.payerVPA,
                              email: nil, contact: nil, description: qr.description, notes: qr.notes, machine: PaymentMachine(amount: credit.amount),
                              rail: rail, flow: .qr, railReference: credit.transactionID, createdAt: now.seconds, submittedAt: now)
        try await tx.appendEvent(event(merchant.id, "payment", payment.id, "created", from: nil, to: PaymentState.created.rawValue))
        var followUps = try await apply(.submit, to: &payment, tx)
        followUps += try await apply(.authorize(railReference: credit.transactionID), to: &payment, tx)
        return (payment, followUps)
    }

    func creditAttempt(_ payment: Payment, _ credit: RailCredit, rail: String) -> PaymentAttempt {
        let now = clock.now
        var attempt = PaymentAttempt(id: newID(.attempt), paymentID: payment.id, merchantID: payment.merchantID, seq: 1, connector: rail,
                                     reason: "payer-initiated (QR code \(credit.reference))", status: .accepted, upstreamReference: credit.transactionID,
                                     createdAt: now, updatedAt: now)
        attempt.settle(.authorized, reference: credit.transactionID, failure: nil, at: now)
        return attempt
    }

    /// A rail's signed credit notification: only its transaction id is read; the rail is then
    /// asked (server to server) what the transaction was. A transaction the rail does not
    /// confirm as a successful credit to Kosh's QR payee is not recorded (404).
    @discardableResult
    public func railCredited(rail name: String, method: String, path: String, headers: [String: String], body: [UInt8]) async throws -> QRCreditResult {
        guard let rail = rails.live?.connector(named: name) as? any PayerInitiatedRail else {
            throw KoshError(.notFound, "The rail \(name) sends no credit notifications")
        }
        let transactionID = try rail.creditTransactionID(method: method, path: path, headers: headers, body: body)
        guard let credit = try await rail.confirmCredit(transactionID: transactionID) else {
            throw KoshError.notFound("The rail does not confirm a credit \(transactionID)", field: "txn_id")
        }
        return try await recordQRCredit(credit, rail: name)
    }

    /// Test mode's stand-in for a payer scanning the code (Razorpay's dashboard "make a test
    /// payment"): a credit on the test rail, from `success@razorpay` unless another test VPA is
    /// given. Live-mode codes are paid only by the rail.
    public func testQRPayment(merchant: Merchant, qrID: ID<UPIQRCode>, amount: Int64?, vpa: String?) async throws -> QRCreditResult {
        guard merchant.mode == .test else {
            throw KoshError.badRequest("Test payments are for test mode; live QR codes are paid by the payer's UPI app", reason: "live_mode")
        }
        let qr = try await qrCode(id: qrID, merchantID: merchant.id)
        guard let amount = amount ?? qr.paymentAmount else { throw KoshError.badRequest("The amount field is required.", field: "amount") }
        let payer = vpa ?? TestRailVPA.success
        guard payer.lowercased() == TestRailVPA.success else {
            throw KoshError.badRequest("Invalid VPA. In test mode a QR code is paid by \(TestRailVPA.success)", field: "vpa", reason: "invalid_vpa")
        }
        let txn = "test_" + String(newID(.attempt).dropFirst("patt_".count))
        return try await recordQRCredit(RailCredit(transactionID: txn, rrn: txn, reference: qrID.rawValue, payeeVPA: QRPayee.defaultVPA,
                                                   payerVPA: payer, amount: amount), rail: rails.test.name)
    }
}

enum TestRailVPA {
    static let success = "success@razorpay"
}
