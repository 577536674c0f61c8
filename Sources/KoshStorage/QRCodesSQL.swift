import KoshCore

/// UPI QR codes (issue 14, point 4): the `qr_codes` table, and `qr_payments`, which ties each
/// payment into a QR code to the rail's transaction id — unique, so a credit delivered twice
/// (or by two nodes at once) cannot record a second payment.
extension SQLStoreTransaction {
    public func insertQRCode(_ qr: UPIQRCode) async throws {
        let record: SQLRecord = [
            "id": SQLValue(qr.id), "merchant_id": SQLValue(qr.merchantID), "usage": .text(qr.usage.rawValue), "type": .text(qr.type),
            "fixed_amount": .int(qr.fixedAmount ? 1 : 0), "payment_amount": SQLValue(qr.paymentAmount),
            "customer_id": SQLValue(qr.customerID), "image_url": .text(qr.imageURL), "image_content": .text(qr.imageContent),
            "created_at": SQLValue(qr.createdAt), "version": .int(qr.version),
        ] + Self.updatableColumns(qr)
        try await conn.query(record.insertSQL(into: "qr_codes"), record.binds)
    }

    static func updatableColumns(_ qr: UPIQRCode) -> SQLRecord {
        ["name": SQLValue(qr.name), "description": SQLValue(qr.description), "close_by": SQLValue(qr.closeBy),
         "notes": .text(qr.notes.storageText), "status": .text(qr.status.rawValue), "closed_at": SQLValue(qr.closedAt),
         "close_reason": SQLValue(qr.closeReason?.rawValue), "payments_amount_received": .int(qr.paymentsAmountReceived),
         "payments_count_received": .int(qr.paymentsCountReceived)]
    }

    public func qrCode(id: ID<UPIQRCode>, merchantID: ID<Merchant>?, forUpdate lock: Bool) async throws -> UPIQRCode? {
        var sql = "SELECT * FROM qr_codes WHERE id = ?"
        var binds: [SQLValue] = [SQLValue(id)]
        if let merchantID {
            sql += " AND merchant_id = ?"
            binds.append(SQLValue(merchantID))
        }
        if lock { sql += forUpdate }
        return try await conn.query(sql, binds).first.map(Self.qrCode)
    }

    public func updateQRCode(_ qr: UPIQRCode) async throws {
        let record = Self.updatableColumns(qr) + ["version": .int(qr.version + 1)]
        let rows = try await conn.query(record.updateSQL("qr_codes") + " WHERE id = ? AND version = ? RETURNING id",
                                        record.binds + [SQLValue(qr.id), .int(qr.version)])
        guard rows.count == 1 else { throw StorageError.concurrentUpdate("qr code \(qr.id)") }
    }

    public func qrCodes(merchantID: ID<Merchant>, filter: QRCodeFilter, page: Page) async throws -> [UPIQRCode] {
        if let paymentID = filter.paymentID {
            // At most one code holds a payment.
            guard let link = try await qrPayment(paymentID: paymentID), link.merchantID == merchantID,
                  let qr = try await qrCode(id: link.qrCodeID, merchantID: merchantID, forUpdate: false),
                  filter.customerID.map({ $0 == qr.customerID }) ?? true else { return [] }
            return Self.listed([qr], page: page)
        }
        let (sql, binds) = Self.pageQuery("qr_codes", dialect: conn.dialect, merchantID: merchantID.rawValue,
                                          extra: filter.customerID.map { ("customer_id", SQLValue($0)) }, page: page)
        return try await conn.query(sql, binds).map(Self.qrCode)
    }

    /// One code listed as a page would list it (`from`/`to`, `skip`).
    static func listed(_ codes: [UPIQRCode], page: Page) -> [UPIQRCode] {
        codes.filter { qr in (page.from.map { qr.createdAt.value >= $0 } ?? true) && (page.to.map { qr.createdAt.value <= $0 } ?? true) }
            .dropFirst(page.skip).prefix(page.count).map { $0 }
    }

    static func qrCode(_ row: SQLRow) throws -> UPIQRCode {
        guard let usage = QRUsage(rawValue: try row.requireText("usage")), let status = QRStatus(rawValue: try row.requireText("status")) else {
            throw StorageError.corrupt("qr code")
        }
        let reason = try row.text("close_reason").map { text in
            guard let reason = QRCloseReason(rawValue: text) else { throw StorageError.corrupt("qr code close_reason") }
            return reason
        }
        let fixed = try row.requireInt("fixed_amount") != 0
        guard fixed == (row.int("payment_amount") != nil), usage == .singleUse || row.int("close_by") == nil else {
            throw StorageError.corrupt("qr code amounts")
        }
        return UPIQRCode(id: ID(try row.requireText("id")), merchantID: ID(try row.requireText("merchant_id")), name: row.text("name"),
                         usage: usage, fixedAmount: fixed, paymentAmount: row.int("payment_amount"), description: row.text("description"),
                         customerID: row.text("customer_id").map { ID($0) }, closeBy: row.seconds("close_by"),
                         notes: Notes(storageText: try row.requireText("notes")), status: status, closedAt: row.seconds("closed_at"),
                         closeReason: reason, paymentsAmountReceived: try row.requireInt("payments_amount_received"),
                         paymentsCountReceived: try row.requireInt("payments_count_received"), imageURL: try row.requireText("image_url"),
                         imageContent: try row.requireText("image_content"), createdAt: try row.requireSeconds("created_at"),
                         version: try row.requireInt("version"))
    }

    public func insertQRPayment(_ link: QRPaymentLink) async throws {
        let record: SQLRecord = ["payment_id": SQLValue(link.paymentID), "qr_code_id": SQLValue(link.qrCodeID), "merchant_id": SQLValue(link.merchantID),
                                 "rail": .text(link.rail), "rail_txn_id": .text(link.railTransactionID), "accepted": .int(link.accepted ? 1 : 0),
                                 "created_at": SQLValue(link.createdAt)]
        try await conn.query(record.insertSQL(into: "qr_payments"), record.binds)
    }

    public func qrPayment(rail: String, railTransactionID: String) async throws -> QRPaymentLink? {
        try await conn.query("SELECT * FROM qr_payments WHERE rail = ? AND rail_txn_id = ?", [.text(rail), .text(railTransactionID)])
            .first.map(Self.qrPaymentLink)
    }

    public func qrPayment(paymentID: ID<Payment>) async throws -> QRPaymentLink? {
        try await conn.query("SELECT * FROM qr_payments WHERE payment_id = ?", [SQLValue(paymentID)]).first.map(Self.qrPaymentLink)
    }

    static func qrPaymentLink(_ row: SQLRow) throws -> QRPaymentLink {
        QRPaymentLink(paymentID: ID(try row.requireText("payment_id")), qrCodeID: ID(try row.requireText("qr_code_id")),
                      merchantID: ID(try row.requireText("merchant_id")), rail: try row.requireText("rail"),
                      railTransactionID: try row.requireText("rail_txn_id"), accepted: try row.requireInt("accepted") != 0,
                      createdAt: try row.requireSeconds("created_at"))
    }

    public func qrPayments(qrCodeID: ID<UPIQRCode>, page: Page) async throws -> [Payment] {
        var sql = "SELECT p.* FROM qr_payments q JOIN payments p ON p.id = q.payment_id WHERE q.qr_code_id = ?"
        var binds: [SQLValue] = [SQLValue(qrCodeID)]
        if let from = page.from {
            sql += " AND p.created_at >= ?"
            binds.append(.int(from))
        }
        if let to = page.to {
            sql += " AND p.created_at <= ?"
            binds.append(.int(to))
        }
        sql += " ORDER BY p.created_at DESC, p.id\(conn.dialect.byteOrder) DESC LIMIT ? OFFSET ?"
        binds += [.int(Int64(page.count)), .int(Int64(page.skip))]
        return try await payments(conn.query(sql, binds))
    }

    public func qrCodesDue(closeBy now: UnixSeconds, limit: Int) async throws -> [ID<UPIQRCode>] {
        try await conn.query("""
            SELECT id FROM qr_codes WHERE status = 'active' AND close_by IS NOT NULL AND close_by <= ? ORDER BY close_by LIMIT ?
            """, [SQLValue(now), .int(Int64(limit))]).map { ID(try $0.requireText("id")) }
    }
}
