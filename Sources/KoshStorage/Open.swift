import KoshCore
import Logging

public enum Databases {
    /// Opens the database at `url` and brings its schema up to date.
    public static func open(_ url: DatabaseURL, logger: Logger, migrate: Bool = true) async throws -> any SQLDatabase {
        let db: any SQLDatabase
        switch url {
        case .sqlite(let path):
            db = try await SQLiteDatabase.open(path: path, logger: logger)
        case .postgres(let host, let port, let user, let password, let database, let tls):
            db = try await PostgresDatabase.connect(host: host, port: port, user: user, password: password, database: database,
                                                    tls: tls, logger: logger)
        }
        if migrate { try await Migrations.migrate(db) }
        return db
    }
}
