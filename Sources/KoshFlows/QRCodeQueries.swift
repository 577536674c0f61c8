import KoshCore

/// `GET /v1/payments/qr_codes`, `GET /:id` and `GET /:id/payments`.
extension PaymentFlows {
    public func qrCode(id: ID<UPIQRCode>, merchantID: ID<Merchant>) async throws -> UPIQRCode {
        guard let qr = try await store.transaction({ tx in try await tx.qrCode(id: id, merchantID: merchantID, forUpdate: false) }) else {
            throw KoshError.notFound()
        }
        return qr
    }

    /// A QR code by id for its public image: any merchant's (the image is what the payer scans).
    public func qrCodeImageContent(id: ID<UPIQRCode>) async throws -> String {
        guard let qr = try await store.transaction({ tx in try await tx.qrCode(id: id, merchantID: nil, forUpdate: false) }) else {
            throw KoshError.notFound()
        }
        return qr.imageContent
    }

    public func qrCodes(merchantID: ID<Merchant>, filter: QRCodeFilter, page: Page) async throws -> [UPIQRCode] {
        try await store.transaction { tx in try await tx.qrCodes(merchantID: merchantID, filter: filter, page: page) }
    }

    /// Every payment into the code, kept or given back, newest first.
    public func qrCodePayments(id: ID<UPIQRCode>, merchantID: ID<Merchant>, page: Page) async throws -> [Payment] {
        try await store.transaction { tx in
            guard try await tx.qrCode(id: id, merchantID: merchantID, forUpdate: false) != nil else { throw KoshError.notFound() }
            return try await tx.qrPayments(qrCodeID: id, page: page)
        }
    }
}
