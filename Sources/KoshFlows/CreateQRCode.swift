import KoshCore

extension PaymentFlows {
    /// `POST /v1/payments/qr_codes`: a UPI QR code of the merchant. Its image encodes a
    /// `upi://pay` link to Kosh's payee VPA with the code's id as `tr`; payments into it arrive
    /// from the rail (`recordQRCredit`). In live mode the switch is first told where to send
    /// credits for that VPA (once per process; the janitor tries again when it could not).
    public func createQRCode(merchant: Merchant, _ input: NewQRCode, idempotency: IdempotencyRequest? = nil) async throws -> CommandResponse {
        precondition(input.fixedAmount == (input.paymentAmount != nil) && (input.usage == .singleUse ? input.fixedAmount : true),
                     "the API checks a QR code's amounts")
        await registerQRPayee(mode: merchant.mode)
        let payee = qrPayeeVPA(mode: merchant.mode)
        return try await command(idempotency) { tx in
            if let customerID = input.customerID, try await tx.customer(id: customerID, merchantID: merchant.id) == nil {
                throw KoshError.badRequest("The id provided does not exist", field: "customer_id")
            }
            let id: ID<UPIQRCode> = newID(.qrCode)
            let link = UPIQRLink.make(payeeVPA: payee, payeeName: Self.payeeName(input.name ?? merchant.name), reference: id.rawValue,
                                      amount: input.paymentAmount, note: input.description)
            assert(link.utf8.count <= UPIQRLink.maximumBytes, "a QR code's link always fits its image")
            let qr = UPIQRCode(id: id, merchantID: merchant.id, name: input.name, usage: input.usage, fixedAmount: input.fixedAmount,
                               paymentAmount: input.paymentAmount, description: input.description, customerID: input.customerID,
                               closeBy: input.closeBy, notes: input.notes, imageURL: "\(settings.publicBaseURL)/qr/\(id.rawValue)/image.png",
                               imageContent: link, createdAt: nowSeconds)
            try await tx.insertQRCode(qr)
            try await tx.appendEvent(event(merchant.id, "qr_code", qr.id, "created", from: nil, to: QRStatus.active.rawValue))
            try await publish(.qrCodeCreated, merchantID: merchant.id, [.qrCode(qr)], tx)
            return Outcome(reply: .body(renderer.qrCode(qr)))
        }
    }

    /// The payee name a payer's app shows (`pn`): at most 50 characters.
    static func payeeName(_ name: String) -> String {
        let short = UPIQRLink.short(name)
        return short.isEmpty ? "Kosh merchant" : short
    }

    /// The rail that tells Kosh of payments into QR codes: the UPI switch in live mode; none
    /// in test mode (`testQRPayment` stands in for the payer there).
    func payerInitiatedRail(mode: Mode) -> (any PayerInitiatedRail)? {
        guard mode == .live else { return nil }
        return rails.live?.connector(named: QRPayee.liveRail) as? any PayerInitiatedRail
    }

    func qrPayeeVPA(mode: Mode) -> String {
        payerInitiatedRail(mode: mode)?.qrPayeeVPA ?? QRPayee.defaultVPA
    }

    /// Tells the switch where Kosh takes credits; a failure is logged by the caller's janitor
    /// pass and tried again there, and does not stop a QR code being created.
    @discardableResult
    public func registerQRPayee(mode: Mode = .live) async -> Bool {
        guard let rail = payerInitiatedRail(mode: mode) else { return false }
        do {
            try await rail.registerPayee()
            return true
        } catch {
            return false
        }
    }
}

/// Kosh's payee VPA in QR codes, and the rail that carries their payments in live mode.
public enum QRPayee {
    public static let defaultVPA = "kosh.qr@kosh"
    public static let liveRail = "upi_switch"
}
