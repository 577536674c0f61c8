import KoshCore

/// Customers and saved-card tokens (issue 13): the `customers` and `card_tokens` tables.
extension SQLStoreTransaction {
    public func insertCustomer(_ c: Customer) async throws {
        let record: SQLRecord = ["id": SQLValue(c.id), "merchant_id": SQLValue(c.merchantID), "created_at": SQLValue(c.createdAt)]
            + Self.updatableColumns(c)
        try await conn.query(record.insertSQL(into: "customers"), record.binds)
    }

    static func updatableColumns(_ c: Customer) -> SQLRecord {
        ["name": SQLValue(c.name), "email": SQLValue(c.email), "contact": SQLValue(c.contact), "gstin": SQLValue(c.gstin),
         "notes": .text(c.notes.storageText)]
    }

    public func customer(id: ID<Customer>, merchantID: ID<Merchant>) async throws -> Customer? {
        try await conn.query("SELECT * FROM customers WHERE id = ? AND merchant_id = ?", [SQLValue(id), SQLValue(merchantID)])
            .first.map(Self.customer)
    }

    public func customer(merchantID: ID<Merchant>, email: String?, contact: String?) async throws -> Customer? {
        // NULL-safe equality on both databases.
        try await conn.query("""
            SELECT * FROM customers WHERE merchant_id = ? AND COALESCE(email, '') = ? AND COALESCE(contact, '') = ?
            ORDER BY created_at, id LIMIT 1
            """, [SQLValue(merchantID), .text(email ?? ""), .text(contact ?? "")]).first.map(Self.customer)
    }

    public func updateCustomer(_ c: Customer) async throws {
        let record = Self.updatableColumns(c)
        try await conn.query(record.updateSQL("customers") + " WHERE id = ?", record.binds + [SQLValue(c.id)])
    }

    public func customers(merchantID: ID<Merchant>, page: Page) async throws -> [Customer] {
        let (sql, binds) = Self.pageQuery("customers", dialect: conn.dialect, merchantID: merchantID.rawValue, extra: nil, page: page)
        return try await conn.query(sql, binds).map(Self.customer)
    }

    static func customer(_ row: SQLRow) throws -> Customer {
        Customer(id: ID(try row.requireText("id")), merchantID: ID(try row.requireText("merchant_id")), name: row.text("name"),
                 email: row.text("email"), contact: row.text("contact"), gstin: row.text("gstin"),
                 notes: Notes(storageText: try row.requireText("notes")), createdAt: try row.requireSeconds("created_at"))
    }

    public func insertToken(_ t: CardToken) async throws {
        let record: SQLRecord = ["id": SQLValue(t.id), "merchant_id": SQLValue(t.merchantID), "customer_id": SQLValue(t.customerID),
                                 "card_id": SQLValue(t.card.id), "created_at": SQLValue(t.createdAt),
                                 "used_at": SQLValue(t.usedAt), "deleted_at": SQLValue(t.deletedAt)]
        try await conn.query(record.insertSQL(into: "card_tokens"), record.binds)
    }

    public func token(id: ID<CardToken>, merchantID: ID<Merchant>) async throws -> CardToken? {
        try await tokens(conn.query("SELECT * FROM card_tokens WHERE id = ? AND merchant_id = ?", [SQLValue(id), SQLValue(merchantID)])).first
    }

    public func updateToken(_ t: CardToken) async throws {
        try await conn.query("UPDATE card_tokens SET used_at = ?, deleted_at = ? WHERE id = ?",
                             [SQLValue(t.usedAt), SQLValue(t.deletedAt), SQLValue(t.id)])
    }

    public func tokens(customerID: ID<Customer>, merchantID: ID<Merchant>) async throws -> [CardToken] {
        try await tokens(conn.query("""
            SELECT * FROM card_tokens WHERE customer_id = ? AND merchant_id = ? AND deleted_at IS NULL ORDER BY created_at DESC, id DESC
            """, [SQLValue(customerID), SQLValue(merchantID)]))
    }

    /// Tokens from their rows, each with its card.
    func tokens(_ rows: [SQLRow]) async throws -> [CardToken] {
        var out: [CardToken] = []
        for row in rows {
            guard let card = try await card(id: ID(try row.requireText("card_id")), merchantID: nil) else { throw StorageError.corrupt("token card") }
            out.append(CardToken(id: ID(try row.requireText("id")), merchantID: ID(try row.requireText("merchant_id")),
                                 customerID: ID(try row.requireText("customer_id")), card: card, createdAt: try row.requireSeconds("created_at"),
                                 usedAt: row.seconds("used_at"), deletedAt: row.seconds("deleted_at")))
        }
        return out
    }
}
