import KoshCore

/// Cards and card payments (issue 13): the `cards` and `card_payments` tables. No column holds
/// a card number; `vault_token` is the vault's reference to it.
extension SQLStoreTransaction {
    /// Payments from their rows, each card payment with its card (one query for all of them).
    func payments(_ rows: [SQLRow]) async throws -> [Payment] {
        var payments = try rows.map(Self.payment)
        let cardIDs = rows.compactMap { $0.text("card_id") }
        guard !cardIDs.isEmpty else { return payments }
        let placeholders = Array(repeating: "?", count: cardIDs.count).joined(separator: ", ")
        let cards = try await conn.query("SELECT * FROM cards WHERE id IN (\(placeholders))", cardIDs.map { .text($0) }).map(Self.card)
        let byID = Dictionary(cards.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        for (index, row) in rows.enumerated() {
            if let id = row.text("card_id") { payments[index].card = byID[ID(id)] }
        }
        return payments
    }

    public func insertCard(_ c: Card) async throws {
        let record: SQLRecord = [
            "id": SQLValue(c.id), "merchant_id": SQLValue(c.merchantID), "vault_token": .text(c.vaultToken),
            "fingerprint": .text(c.fingerprint), "iin": .text(c.iin), "last4": .text(c.last4), "network": .text(c.network.rawValue),
            "type": .text(c.type.rawValue), "issuer": SQLValue(c.issuer), "international": .int(c.international ? 1 : 0),
            "emi": .int(c.emi ? 1 : 0), "sub_type": .text(c.subType), "name": SQLValue(c.name),
            "expiry_month": .int(Int64(c.expiryMonth)), "expiry_year": .int(Int64(c.expiryYear)), "created_at": SQLValue(c.createdAt),
        ]
        try await conn.query(record.insertSQL(into: "cards"), record.binds)
    }

    public func card(id: ID<Card>, merchantID: ID<Merchant>?) async throws -> Card? {
        var sql = "SELECT * FROM cards WHERE id = ?"
        var binds: [SQLValue] = [SQLValue(id)]
        if let merchantID {
            sql += " AND merchant_id = ?"
            binds.append(SQLValue(merchantID))
        }
        return try await conn.query(sql, binds).first.map(Self.card)
    }

    static func card(_ row: SQLRow) throws -> Card {
        guard let network = CardNetwork(rawValue: try row.requireText("network")),
              let type = CardType(rawValue: try row.requireText("type")) else { throw StorageError.corrupt("card") }
        return Card(id: ID(try row.requireText("id")), merchantID: ID(try row.requireText("merchant_id")),
                    vaultToken: try row.requireText("vault_token"), fingerprint: try row.requireText("fingerprint"),
                    iin: try row.requireText("iin"), last4: try row.requireText("last4"), network: network, type: type,
                    issuer: row.text("issuer"), international: try row.requireInt("international") != 0, emi: try row.requireInt("emi") != 0,
                    subType: try row.requireText("sub_type"), name: row.text("name"),
                    expiryMonth: Int(try row.requireInt("expiry_month")), expiryYear: Int(try row.requireInt("expiry_year")),
                    createdAt: try row.requireSeconds("created_at"))
    }

    public func insertCardPayment(_ c: CardPayment) async throws {
        let record: SQLRecord = [
            "payment_id": SQLValue(c.paymentID), "merchant_id": SQLValue(c.merchantID), "card_id": SQLValue(c.cardID),
            "vault_token": .text(c.vaultToken), "created_at": SQLValue(c.createdAt),
        ] + Self.updatableColumns(c)
        try await conn.query(record.insertSQL(into: "card_payments"), record.binds)
    }

    static func updatableColumns(_ c: CardPayment) -> SQLRecord {
        ["stage": .text(c.stage.rawValue), "authentication_id": SQLValue(c.authenticationID), "challenge_url": SQLValue(c.challengeURL),
         "callback_url": SQLValue(c.callbackURL), "authorization_ref": SQLValue(c.authorization?.encoded),
         "task": SQLValue(c.task?.rawValue), "task_due_at": SQLValue(c.taskDueAt), "task_attempts": .int(Int64(c.taskAttempts)),
         "task_error": SQLValue(c.taskError.map(Masking.text)), "save_customer_id": SQLValue(c.saveFor), "version": .int(c.version)]
    }

    public func cardPayment(paymentID: ID<Payment>, forUpdate lock: Bool) async throws -> CardPayment? {
        try await conn.query("SELECT * FROM card_payments WHERE payment_id = ?" + (lock ? forUpdate : ""), [SQLValue(paymentID)])
            .first.map(Self.cardPayment)
    }

    public func updateCardPayment(_ c: CardPayment) async throws {
        let record = Self.updatableColumns(c)
        let rows = try await conn.query(record.updateSQL("card_payments") + " WHERE payment_id = ? AND version < ? RETURNING payment_id",
                                        record.binds + [SQLValue(c.paymentID), .int(c.version)])
        guard rows.count == 1 else { throw StorageError.concurrentUpdate("card payment \(c.paymentID)") }
    }

    public func cardTasksDue(now: UnixMillis, limit: Int) async throws -> [CardPayment] {
        try await conn.query("""
            SELECT * FROM card_payments WHERE task_due_at IS NOT NULL AND task_due_at <= ? ORDER BY task_due_at LIMIT ?
            """, [SQLValue(now), .int(Int64(limit))]).map(Self.cardPayment)
    }

    static func cardPayment(_ row: SQLRow) throws -> CardPayment {
        guard let stage = CardPaymentStage(rawValue: try row.requireText("stage")) else { throw StorageError.corrupt("card payment") }
        var task: CardNetworkTask?
        if let text = row.text("task") {
            guard let value = CardNetworkTask(rawValue: text) else { throw StorageError.corrupt("card payment task") }
            task = value
        }
        return CardPayment(paymentID: ID(try row.requireText("payment_id")), merchantID: ID(try row.requireText("merchant_id")),
                           cardID: ID(try row.requireText("card_id")), vaultToken: try row.requireText("vault_token"), stage: stage,
                           authenticationID: row.text("authentication_id"), challengeURL: row.text("challenge_url"),
                           callbackURL: row.text("callback_url"),
                           authorization: row.text("authorization_ref").flatMap(CardAuthorizationReference.init(encoded:)),
                           task: task, taskDueAt: row.millis("task_due_at"), taskAttempts: Int(try row.requireInt("task_attempts")),
                           taskError: row.text("task_error"), saveFor: row.text("save_customer_id").map { ID($0) }, createdAt: try row.requireSeconds("created_at"),
                           version: try row.requireInt("version"))
    }
}
