import KoshCore

extension SQLStoreTransaction {
    /// Authorised payments whose capture setting is due (issue 14's capture settings), oldest first.
    public func paymentsDueForCapture(now: UnixMillis, limit: Int) async throws -> [Payment] {
        let due = try await conn.query("""
            SELECT * FROM payments WHERE capture_due_at IS NOT NULL AND capture_due_at <= ? AND status = 'authorized'
            ORDER BY capture_due_at LIMIT ?
            """, [SQLValue(now), .int(Int64(limit))])
        return try await payments(due)
    }
}
