import KoshCore

/// A data key's row: the key itself exists only sealed under a master key.
struct StoredDataKey: Sendable {
    let id: String
    let masterVersion: Int
    let wrapped: [UInt8]
}

/// A card's row: ciphertext, and what may be known without it (fingerprint, IIN, last 4).
struct StoredCard: Sendable {
    let token: String
    let dataKeyID: String
    let sealed: [UInt8]
    let fingerprint: String
    let iin: String
    let last4: String
    /// Unix seconds; nil for a card on file.
    let retainUntil: Int64?
    let createdAt: Int64

    /// Whether its retention has passed at `nowMillis` (then it is purged, swept or not).
    func isPastRetention(nowMillis: Int64) -> Bool {
        guard let retainUntil else { return false }
        return retainUntil * 1000 < nowMillis
    }
}

/// The vault's SQL (`vault.db`): every function runs on the database's queue, inside the
/// transaction (or read) its caller opened.
enum VaultStore {
    static let schemaVersion: Int64 = 1

    static let schema = """
        CREATE TABLE IF NOT EXISTS vault_meta (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS data_keys (
            id TEXT PRIMARY KEY,
            master_version INTEGER NOT NULL,
            wrapped BLOB NOT NULL,
            day INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            retired INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS data_keys_master_version ON data_keys(master_version);
        CREATE TABLE IF NOT EXISTS cards (
            token TEXT PRIMARY KEY,
            data_key_id TEXT NOT NULL REFERENCES data_keys(id),
            sealed BLOB NOT NULL,
            fingerprint TEXT NOT NULL,
            iin TEXT NOT NULL,
            last4 TEXT NOT NULL,
            retain_until INTEGER,
            card_on_file INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS cards_retain_until ON cards(retain_until) WHERE card_on_file = 0;
        CREATE INDEX IF NOT EXISTS cards_data_key ON cards(data_key_id);
        CREATE INDEX IF NOT EXISTS cards_fingerprint ON cards(fingerprint);
        CREATE TABLE IF NOT EXISTS purged_tokens (
            token TEXT PRIMARY KEY,
            purged_at INTEGER NOT NULL
        ) WITHOUT ROWID;
        """

    /// Creates the tables; a new database wraps its first data keys under `masterVersion`.
    static func migrate(_ db: VaultDatabase, masterVersion: Int) throws {
        try db.execute(schema)
        if let version = try db.query("SELECT value FROM vault_meta WHERE name = 'schema_version'").first?.first?.int {
            guard version <= schemaVersion else {
                throw VaultSetupError("vault.db has schema version \(version); this kosh knows \(schemaVersion)")
            }
        } else {
            try db.query("INSERT INTO vault_meta (name, value) VALUES ('schema_version', ?)", [.int(schemaVersion)])
        }
        try db.query("INSERT OR IGNORE INTO vault_meta (name, value) VALUES ('master_version', ?)", [.int(Int64(masterVersion))])
    }

    // MARK: Master key version and data keys

    /// The master key version new data keys are wrapped under.
    static func currentMasterVersion(_ db: VaultDatabase) throws -> Int {
        guard let value = try db.query("SELECT value FROM vault_meta WHERE name = 'master_version'").first?.first?.int else {
            throw VaultSetupError("vault.db has no master key version")
        }
        return Int(value)
    }

    static func setCurrentMasterVersion(_ db: VaultDatabase, _ version: Int) throws {
        try db.query("UPDATE vault_meta SET value = ? WHERE name = 'master_version'", [.int(Int64(version))])
    }

    private static func dataKey(_ row: [VaultSQLValue]) -> StoredDataKey? {
        guard let id = row[0].text, let version = row[1].int, let wrapped = row[2].blob else { return nil }
        return StoredDataKey(id: id, masterVersion: Int(version), wrapped: wrapped)
    }

    /// The data key sealing new cards on `day` (unix days, UTC), if there is one yet.
    static func sealingKey(_ db: VaultDatabase, day: Int64) throws -> StoredDataKey? {
        try db.query("SELECT id, master_version, wrapped FROM data_keys WHERE day = ? AND retired = 0 ORDER BY created_at DESC LIMIT 1",
                     [.int(day)]).first.flatMap(dataKey)
    }

    /// Stores a new data key; every earlier one stops sealing new cards.
    static func insertDataKey(_ db: VaultDatabase, _ key: StoredDataKey, day: Int64, createdAt: Int64) throws {
        try db.query("UPDATE data_keys SET retired = 1 WHERE retired = 0")
        try db.query("INSERT INTO data_keys (id, master_version, wrapped, day, created_at, retired) VALUES (?, ?, ?, ?, ?, 0)",
                     [.text(key.id), .int(Int64(key.masterVersion)), .blob(key.wrapped), .int(day), .int(createdAt)])
    }

    static func dataKey(_ db: VaultDatabase, id: String) throws -> StoredDataKey? {
        try db.query("SELECT id, master_version, wrapped FROM data_keys WHERE id = ?", [.text(id)]).first.flatMap(dataKey)
    }

    /// A data key not yet wrapped under `version`.
    static func dataKeyToRewrap(_ db: VaultDatabase, target version: Int) throws -> StoredDataKey? {
        try db.query("SELECT id, master_version, wrapped FROM data_keys WHERE master_version <> ? ORDER BY created_at LIMIT 1",
                     [.int(Int64(version))]).first.flatMap(dataKey)
    }

    static func rewrap(_ db: VaultDatabase, id: String, from old: Int, to version: Int, wrapped: [UInt8]) throws -> Bool {
        try db.query("UPDATE data_keys SET master_version = ?, wrapped = ? WHERE id = ? AND master_version = ?",
                     [.int(Int64(version)), .blob(wrapped), .text(id), .int(Int64(old))])
        return db.changes == 1
    }

    /// Deletes the data keys that seal no card any more and will seal no new one (after a purge
    /// their ciphertext is gone; deleting the key shreds whatever copies of it may remain).
    static func deleteEmptyDataKeys(_ db: VaultDatabase) throws -> [String] {
        let ids = try db.query("""
            SELECT id FROM data_keys WHERE retired = 1 AND NOT EXISTS (SELECT 1 FROM cards WHERE cards.data_key_id = data_keys.id)
            """).compactMap { $0.first?.text }
        for id in ids { try db.query("DELETE FROM data_keys WHERE id = ?", [.text(id)]) }
        return ids
    }

    // MARK: Cards

    static func insertCard(_ db: VaultDatabase, _ card: StoredCard) throws {
        try db.query("""
            INSERT INTO cards (token, data_key_id, sealed, fingerprint, iin, last4, retain_until, card_on_file, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, [.text(card.token), .text(card.dataKeyID), .blob(card.sealed), .text(card.fingerprint), .text(card.iin),
                  .text(card.last4), card.retainUntil.map(VaultSQLValue.int) ?? .null, .int(card.retainUntil == nil ? 1 : 0),
                  .int(card.createdAt)])
    }

    static func card(_ db: VaultDatabase, token: String) throws -> StoredCard? {
        guard let row = try db.query("""
            SELECT token, data_key_id, sealed, fingerprint, iin, last4, retain_until, created_at FROM cards WHERE token = ?
            """, [.text(token)]).first,
              let token = row[0].text, let dataKeyID = row[1].text, let sealed = row[2].blob, let fingerprint = row[3].text,
              let iin = row[4].text, let last4 = row[5].text, let createdAt = row[7].int else { return nil }
        return StoredCard(token: token, dataKeyID: dataKeyID, sealed: sealed, fingerprint: fingerprint, iin: iin, last4: last4,
                          retainUntil: row[6].int, createdAt: createdAt)
    }

    static func isPurged(_ db: VaultDatabase, token: String) throws -> Bool {
        try !db.query("SELECT 1 FROM purged_tokens WHERE token = ?", [.text(token)]).isEmpty
    }

    static func setRetention(_ db: VaultDatabase, token: String, _ retention: CardRetention) throws {
        switch retention {
        case .until(let seconds):
            try db.query("UPDATE cards SET retain_until = ?, card_on_file = 0 WHERE token = ?", [.int(seconds.value), .text(token)])
        case .cardOnFile:
            try db.query("UPDATE cards SET retain_until = NULL, card_on_file = 1 WHERE token = ?", [.text(token)])
        }
    }

    /// Deletes the card's row and remembers its token was purged (so it answers 410, not 404).
    static func deleteCard(_ db: VaultDatabase, token: String, nowMillis: Int64) throws -> Bool {
        try db.query("DELETE FROM cards WHERE token = ?", [.text(token)])
        guard db.changes == 1 else { return false }
        try db.query("INSERT OR REPLACE INTO purged_tokens (token, purged_at) VALUES (?, ?)", [.text(token), .int(nowMillis)])
        return true
    }

    /// Up to `limit` tokens of cards whose `retain_until` has passed at `nowMillis`.
    static func pastRetention(_ db: VaultDatabase, nowMillis: Int64, limit: Int) throws -> [String] {
        // retain_until * 1000 < now  ⟺  retain_until < ceil(now / 1000), which the index can serve.
        let bound = nowMillis >= 0 ? (nowMillis + 999) / 1000 : nowMillis / 1000
        return try db.query("SELECT token FROM cards WHERE card_on_file = 0 AND retain_until < ? LIMIT ?",
                            [.int(bound), .int(Int64(limit))]).compactMap { $0.first?.text }
    }

    static func forgetTombstones(_ db: VaultDatabase, before millis: Int64) throws -> Int {
        try db.query("DELETE FROM purged_tokens WHERE purged_at < ?", [.int(millis)])
        return db.changes
    }

    // MARK: Status

    static func count(_ db: VaultDatabase, _ sql: String, _ binds: [VaultSQLValue] = []) throws -> Int {
        Int(try db.query(sql, binds).first?.first?.int ?? 0)
    }

    static func dataKeysByMasterVersion(_ db: VaultDatabase) throws -> [Int: Int] {
        var counts: [Int: Int] = [:]
        for row in try db.query("SELECT master_version, COUNT(*) FROM data_keys GROUP BY master_version") {
            if let version = row[0].int, let count = row[1].int { counts[Int(version)] = Int(count) }
        }
        return counts
    }
}
