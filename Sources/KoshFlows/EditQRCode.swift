import KoshCore

extension PaymentFlows {
    /// `PATCH /v1/payments/qr_codes/:id`: name, description, notes and close_by (the last only on
    /// an active single-use code, in the range `QRCloseByRule` gives). The image does not change:
    /// it was printed already.
    public func editQRCode(id: ID<UPIQRCode>, merchant: Merchant, _ edit: QRCodeEdit) async throws -> UPIQRCode {
        try await store.transaction { tx in
            guard var qr = try await tx.qrCode(id: id, merchantID: merchant.id, forUpdate: true) else { throw KoshError.notFound() }
            let loaded = qr
            if let closeBy = edit.closeBy {
                guard qr.usage == .singleUse else {
                    throw KoshError.badRequest("close_by is allowed only for single_use QR codes", field: "close_by")
                }
                guard qr.status == .active else { throw KoshError.badRequest("The QR code is closed", field: "close_by", reason: "qr_code_closed") }
                guard QRCloseByRule.range(now: nowSeconds).contains(closeBy.value) else {
                    throw KoshError.badRequest(Self.closeByMessage, field: "close_by")
                }
                qr.closeBy = closeBy
            }
            if let name = edit.name { qr.name = name }
            if let description = edit.description { qr.description = description }
            if let notes = edit.notes { qr.notes = notes }
            guard qr != loaded else { return qr }
            try await tx.updateQRCode(qr)
            qr.version = loaded.version + 1
            try await tx.appendEvent(event(merchant.id, "qr_code", qr.id, "edited", from: qr.status.rawValue, to: qr.status.rawValue))
            return qr
        }
    }

    public static var closeByMessage: String {
        "close_by must be at least \(QRCloseByRule.minimumSeconds / 60) minutes and at most \(QRCloseByRule.maximumSeconds / 86_400) days from now"
    }
}
