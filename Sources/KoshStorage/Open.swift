import KoshCore
import Logging

public enum Databases {
    /// Opens the database at `url` and brings its schema up to date. With `create` false, a
    /// missing SQLite file is `StorageError.missingDatabase` (only `kosh serve` and `kosh migrate`
    /// create one); a missing PostgreSQL database already fails to connect.
    public static func open(_ url: DatabaseURL, logger: Logger, migrate: Bool = true, create: Bool = true) async throws -> any SQLDatabase {
        let db: any SQLDatabase
        switch url {
        case .sqlite(let path):
            db = try await SQLiteDatabase.open(path: path, logger: logger, create: create)
        case .postgres(let host, let port, let user, let password, let database, let tls):
            db = try await PostgresDatabase.connect(host: host, port: port, user: user, password: password, database: database,
                                                    tls: tls, logger: logger)
        }
        if migrate { try await Migrations.migrate(db) }
        return db
    }
}
