import KoshCore

/// `Idempotency-Key` records (Stripe semantics). A key is claimed in its own committed
/// transaction before the request runs; the response is recorded in the same transaction as
/// the request's effect, so a crash can never leave an effect without its recorded response.
/// An unfinished claim older than `leaseMillis` therefore had no effect and may be taken over.
public struct IdempotencyStore: IdempotencyKeys {
    public static let lifetimeMillis: Int64 = 24 * 60 * 60 * 1000
    public static let maximumKeyLength = 255

    public typealias Claim = IdempotencyClaim

    let db: any SQLDatabase
    let leaseMillis: Int64
    /// A claim held by a process whose heartbeat is older than this is taken over (its
    /// process is gone: killed, crashed, or cut off from the database).
    let staleOwnerMillis: Int64

    public init(db: any SQLDatabase, leaseMillis: Int64 = 60_000, staleOwnerMillis: Int64 = NodeHeartbeat.staleAfterMillis) {
        self.db = db
        self.leaseMillis = leaseMillis
        self.staleOwnerMillis = staleOwnerMillis
    }

    public func claim(merchantID: String, key: String, requestHash: String, now: Int64) async throws -> Claim {
        let token = NodeHeartbeat.newClaimToken()
        // What a new claim writes, whether it inserts the key or takes it over.
        let claim: SQLRecord = [
            "request_hash": .text(requestHash), "status": .text("started"), "created_at": .int(now), "locked_at": .int(now),
            "owner": .text(NodeHeartbeat.node), "claim_token": .text(token),
        ]
        return try await db.transaction { conn in
            let rows = try await conn.query("SELECT * FROM idempotency_keys WHERE merchant_id = ? AND key = ?\(conn.dialect.forUpdate)",
                                            [.text(merchantID), .text(key)])
            if let row = rows.first {
                let createdAt = try row.requireInt("created_at")
                if createdAt + Self.lifetimeMillis > now {
                    guard try row.requireText("request_hash") == requestHash else { return .mismatch }
                    if try row.requireText("status") == "done" {
                        return .replay(status: Int(try row.requireInt("response_status")), body: try row.requireText("response_body"))
                    }
                    let lockedAt = try row.requireInt("locked_at")
                    if lockedAt + leaseMillis > now {
                        let ownerAlive = try await NodeHeartbeat.isAlive(row.text("owner"), conn: conn, staleAfter: staleOwnerMillis)
                        if ownerAlive {
                            // A request normally finishes in milliseconds; one second is a fair wait.
                            return .inProgress(retryAfterSeconds: 1)
                        }
                    }
                }
                // Expired, abandoned (its lease ran out) or held by a dead process: no effect
                // was committed with it, so take it over with a new token (the old claim, if it
                // is still running somewhere, can no longer record its response).
                let takeover = claim + ["response_status": .null, "response_body": .null]
                try await conn.query(takeover.updateSQL("idempotency_keys") + " WHERE merchant_id = ? AND key = ?",
                                     takeover.binds + [.text(merchantID), .text(key)])
                return .claimed(token: token)
            }
            do {
                let record: SQLRecord = ["merchant_id": .text(merchantID), "key": .text(key)] + claim
                try await conn.query(record.insertSQL(into: "idempotency_keys"), record.binds)
            } catch StorageError.uniqueViolation {
                return .inProgress(retryAfterSeconds: 1)  // a concurrent duplicate claimed it first (PostgreSQL)
            }
            return .claimed(token: token)
        }
    }

    /// Records the response inside the caller's transaction, only while `token`'s claim
    /// still holds the key: if it was taken over, the caller's transaction fails and its
    /// effect is rolled back, so the request runs once.
    public static func complete(_ conn: any SQLConnection, merchantID: String, key: String, token: String, status: Int, body: String) async throws {
        let updated = try await conn.query("""
            UPDATE idempotency_keys SET status = 'done', response_status = ?, response_body = ?
            WHERE merchant_id = ? AND key = ? AND claim_token = ? RETURNING key
            """, [.int(Int64(status)), .text(body), .text(merchantID), .text(key), .text(token)])
        guard !updated.isEmpty else {
            throw KoshError(.conflict, "Another request took over this Idempotency-Key; retry the request", field: "Idempotency-Key",
                            source: "NA", step: "NA", reason: "idempotency_key_in_use", retryAfterSeconds: 1)
        }
    }

    public func complete(merchantID: String, key: String, token: String, status: Int, body: String) async throws {
        try await db.transaction { conn in
            try await Self.complete(conn, merchantID: merchantID, key: key, token: token, status: status, body: body)
        }
    }

    /// Forgets an unfinished claim (the request failed without effect), so a retry can run.
    public func release(merchantID: String, key: String, token: String) async throws {
        try await db.transaction { conn in
            try await conn.query("DELETE FROM idempotency_keys WHERE merchant_id = ? AND key = ? AND status = 'started' AND claim_token = ?",
                                 [.text(merchantID), .text(key), .text(token)])
        }
    }

    /// Deletes keys past their lifetime. Returns how many.
    public func purgeExpired(now: Int64) async throws -> Int {
        try await db.transaction { conn in
            try await conn.query("DELETE FROM idempotency_keys WHERE created_at < ? RETURNING key", [.int(now - Self.lifetimeMillis)]).count
        }
    }
}

extension SQLStoreTransaction {
    public func recordIdempotentResponse(merchantID: String, key: String, token: String, status: Int, body: String) async throws {
        try await IdempotencyStore.complete(conn, merchantID: merchantID, key: key, token: token, status: status, body: body)
    }
}

/// This process's row in `nodes`: written at start and every second while it runs, so other
/// processes sharing the database can tell that it is gone. Beats are stamped and judged with
/// the database's clock, so the clocks of the nodes never need to agree.
public enum NodeHeartbeat {
    /// This process's name among the nodes sharing a database.
    public static let node = "node-" + String(UInt64.random(in: 1 ... .max), radix: 36)
    public static let intervalMillis: Int64 = 1_000
    /// Fifteen missed beats: longer than SQLite's busy timeout (10 s), so a node whose beat
    /// waits behind a busy writer is not declared dead; a node that is gone is found within
    /// seconds all the same.
    public static let staleAfterMillis: Int64 = 15_000

    static func newClaimToken() -> String {
        String(UInt64.random(in: 1 ... .max), radix: 36) + String(UInt64.random(in: 1 ... .max), radix: 36)
    }

    public static func beat(_ db: any SQLDatabase) async throws {
        try await db.transaction { conn in
            var record: SQLRecord = ["id": .text(node)]
            record.append("started_at", sql: conn.dialect.nowMillis)
            record.append("heartbeat_at", sql: conn.dialect.nowMillis)
            try await conn.query(record.insertSQL(into: "nodes") + "\nON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                                 record.binds)
        }
    }

    /// Whether the process holding a claim still beats (by the database's clock). A claim
    /// from before owners were recorded (nil) is judged by its lease alone.
    static func isAlive(_ owner: String?, conn: any SQLConnection, staleAfter: Int64) async throws -> Bool {
        guard let owner else { return true }
        if owner == node { return true }
        let rows = try await conn.query("SELECT heartbeat_at, \(conn.dialect.nowMillis) AS db_now FROM nodes WHERE id = ?", [.text(owner)])
        guard let row = rows.first else { return false }
        return try row.requireInt("heartbeat_at") + staleAfter > row.requireInt("db_now")
    }

    /// Forgets nodes silent for a day.
    public static func purge(_ db: any SQLDatabase) async throws {
        try await db.transaction { conn in
            try await conn.query("DELETE FROM nodes WHERE heartbeat_at < \(conn.dialect.nowMillis) - 86400000", [])
        }
    }
}
