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

    public init(db: any SQLDatabase, leaseMillis: Int64 = 60_000) {
        self.db = db
        self.leaseMillis = leaseMillis
    }

    public func claim(merchantID: String, key: String, requestHash: String, now: Int64) async throws -> Claim {
        try await db.transaction { conn in
            let rows = try await conn.query("SELECT * FROM idempotency_keys WHERE merchant_id = ? AND key = ?\(conn.dialect.forUpdate)",
                                            [.text(merchantID), .text(key)])
            if let row = rows.first {
                let createdAt = try row.requireInt("created_at")
                if createdAt + Self.lifetimeMillis > now {
                    guard try row.requireText("request_hash") == requestHash else { return .mismatch }
                    if try row.requireText("status") == "done" {
                        return .replay(status: Int(try row.requireInt("response_status")), body: try row.requireText("response_body"))
                    }
                    if try row.requireInt("locked_at") + leaseMillis > now { return .inProgress }
                }
                // Expired, or an abandoned claim (no effect was committed with it): take it over.
                try await conn.query("""
                    UPDATE idempotency_keys SET request_hash = ?, status = 'started', response_status = NULL, response_body = NULL,
                        created_at = ?, locked_at = ? WHERE merchant_id = ? AND key = ?
                    """, [.text(requestHash), .int(now), .int(now), .text(merchantID), .text(key)])
                return .claimed
            }
            do {
                try await conn.query("""
                    INSERT INTO idempotency_keys (merchant_id, key, request_hash, status, created_at, locked_at) VALUES (?, ?, ?, 'started', ?, ?)
                    """, [.text(merchantID), .text(key), .text(requestHash), .int(now), .int(now)])
            } catch StorageError.uniqueViolation {
                return .inProgress  // a concurrent duplicate claimed it first (PostgreSQL)
            }
            return .claimed
        }
    }

    /// Records the response inside the caller's transaction.
    public static func complete(_ conn: any SQLConnection, merchantID: String, key: String, status: Int, body: String) async throws {
        try await conn.query("""
            UPDATE idempotency_keys SET status = 'done', response_status = ?, response_body = ? WHERE merchant_id = ? AND key = ?
            """, [.int(Int64(status)), .text(body), .text(merchantID), .text(key)])
    }

    public func complete(merchantID: String, key: String, status: Int, body: String) async throws {
        try await db.transaction { conn in try await Self.complete(conn, merchantID: merchantID, key: key, status: status, body: body) }
    }

    /// Forgets an unfinished claim (the request failed without effect), so a retry can run.
    public func release(merchantID: String, key: String) async throws {
        try await db.transaction { conn in
            try await conn.query("DELETE FROM idempotency_keys WHERE merchant_id = ? AND key = ? AND status = 'started'",
                                 [.text(merchantID), .text(key)])
        }
    }

    /// Deletes keys past their lifetime. Returns how many.
    public func purgeExpired(now: Int64) async throws -> Int {
        try await db.transaction { conn in
            try await conn.query("DELETE FROM idempotency_keys WHERE created_at < ? RETURNING key", [.int(now - Self.lifetimeMillis)]).count
        }
    }
}

extension SQLStoreTransaction: IdempotencyRecording {
    public func recordIdempotentResponse(merchantID: String, key: String, status: Int, body: String) async throws {
        try await IdempotencyStore.complete(conn, merchantID: merchantID, key: key, status: status, body: body)
    }
}
