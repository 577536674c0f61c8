import Logging
import PostgresNIO

public enum PostgresAdmin {
    /// CREATE DATABASE cannot run inside a transaction block, so it goes straight to a connection.
    public static func createDatabase(_ db: any SQLDatabase, name: String) async throws {
        guard let pg = db as? PostgresDatabase else { return }
        precondition(name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" })
        try await pg.client.withConnection { conn in
            _ = try await conn.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: pg.logger)
        }
    }
}
