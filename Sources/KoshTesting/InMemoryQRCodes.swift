import KoshCore

/// QR codes and their payments in the in-memory store, as `QRCodesSQL` keeps them.
extension InMemoryTransaction {
    func insertQRCode(_ qr: UPIQRCode) async throws {
        guard state.qrCodes[qr.id] == nil else { throw InMemoryStoreError(description: "duplicate qr code \(qr.id)") }
        state.qrCodes[qr.id] = qr
        state.stamp(qr.id.rawValue)
    }

    func qrCode(id: ID<UPIQRCode>, merchantID: ID<Merchant>?, forUpdate: Bool) async throws -> UPIQRCode? {
        state.qrCodes[id].flatMap { merchantID == nil || $0.merchantID == merchantID ? $0 : nil }
    }

    func updateQRCode(_ qr: UPIQRCode) async throws {
        guard let stored = state.qrCodes[qr.id], stored.version == qr.version else {
            throw InMemoryStoreError(description: "qr code \(qr.id) was changed by someone else (version \(qr.version))")
        }
        var next = qr
        next.version += 1
        state.qrCodes[qr.id] = next
    }

    func qrCodes(merchantID: ID<Merchant>, filter: QRCodeFilter, page: Page) async throws -> [UPIQRCode] {
        let held = filter.paymentID.flatMap { state.qrPayments[$0]?.qrCodeID }
        if filter.paymentID != nil && held == nil { return [] }
        return state.listed(state.qrCodes.values.filter {
            $0.merchantID == merchantID && (filter.customerID == nil || $0.customerID == filter.customerID) && (held == nil || $0.id == held)
        }, id: \.id.rawValue, createdAt: \.createdAt.value, page: page)
    }

    func insertQRPayment(_ link: QRPaymentLink) async throws {
        guard state.qrPayments[link.paymentID] == nil,
              !state.qrPayments.values.contains(where: { $0.rail == link.rail && $0.railTransactionID == link.railTransactionID }) else {
            throw InMemoryStoreError(description: "unique index: a payment already holds \(link.rail)/\(link.railTransactionID)")
        }
        state.qrPayments[link.paymentID] = link
    }

    func qrPayment(rail: String, railTransactionID: String) async throws -> QRPaymentLink? {
        state.qrPayments.values.first { $0.rail == rail && $0.railTransactionID == railTransactionID }
    }

    func qrPayment(paymentID: ID<Payment>) async throws -> QRPaymentLink? { state.qrPayments[paymentID] }

    func qrPayments(qrCodeID: ID<UPIQRCode>, page: Page) async throws -> [Payment] {
        let ids = Set(state.qrPayments.values.filter { $0.qrCodeID == qrCodeID }.map(\.paymentID))
        return state.listed(state.payments.values.filter { ids.contains($0.id) }, id: \.id.rawValue, createdAt: \.createdAt.value, page: page)
    }

    func qrCodesDue(closeBy now: UnixSeconds, limit: Int) async throws -> [ID<UPIQRCode>] {
        state.qrCodes.values.filter { $0.status == .active && ($0.closeBy.map { $0 <= now } ?? false) }
            .sorted { ($0.closeBy!.value, $0.id.rawValue) < ($1.closeBy!.value, $1.id.rawValue) }.prefix(limit).map(\.id)
    }
}
