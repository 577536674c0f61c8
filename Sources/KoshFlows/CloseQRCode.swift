import KoshCore

extension PaymentFlows {
    /// `POST /v1/payments/qr_codes/:id/close`: closed on demand, with `qr_code.closed`. A code
    /// already closed is refused (400), in the same transaction that read it.
    public func closeQRCode(id: ID<UPIQRCode>, merchant: Merchant, idempotency: IdempotencyRequest? = nil) async throws -> CommandResponse {
        try await command(idempotency) { tx in
            guard var qr = try await tx.qrCode(id: id, merchantID: merchant.id, forUpdate: true) else { throw KoshError.notFound() }
            let loaded = qr
            do { try qr.close(now: nowSeconds) } catch {
                throw KoshError.badRequest("The QR code is already closed", field: "id", reason: "qr_code_closed")
            }
            try await tx.updateQRCode(qr)
            qr.version = loaded.version + 1
            try await tx.appendEvent(event(merchant.id, "qr_code", qr.id, "closed", from: loaded.status.rawValue, to: qr.status.rawValue))
            try await publish(.qrCodeClosed, merchantID: merchant.id, [.qrCode(qr)], tx)
            return Outcome(reply: .body(renderer.qrCode(qr)))
        }
    }

    /// The janitor's QR pass: closes every active code whose `close_by` has passed (closed at
    /// `close_by`, no `close_reason`). No webhook: Razorpay sends `qr_code.closed` only for a
    /// close on demand. Returns how many it closed.
    @discardableResult
    public func closeExpiredQRCodes(limit: Int = 100) async throws -> Int {
        let now = nowSeconds
        let due = try await store.transaction { tx in try await tx.qrCodesDue(closeBy: now, limit: limit) }
        var closed = 0
        for id in due {
            // One code's trouble (a concurrent credit moved its version) must not stall the others.
            let didClose = try? await store.transaction { tx -> Bool in
                guard var qr = try await tx.qrCode(id: id, merchantID: nil, forUpdate: true), qr.status == .active, qr.isExpired(now: now) else {
                    return false
                }
                qr.expire(now: now)
                try await tx.updateQRCode(qr)
                try await tx.appendEvent(event(qr.merchantID, "qr_code", qr.id, "expired", from: QRStatus.active.rawValue, to: qr.status.rawValue))
                return true
            }
            if didClose == true { closed += 1 }
        }
        return closed
    }
}
