import Foundation
import KoshApp
import KoshCore
import KoshStorage
import Logging

/// The databases a storage or API test runs on: SQLite always, PostgreSQL when
/// `KOSH_TEST_POSTGRES_URL` is set.
public enum TestDatabases {
    public static var all: [String] {
        var names = ["sqlite"]
        if let url = ProcessInfo.processInfo.environment["KOSH_TEST_POSTGRES_URL"], !url.isEmpty { names.append("postgres") }
        return names
    }

    /// A fresh, empty, migrated database of the given kind.
    public static func configuration(_ kind: String) async throws -> KoshConfiguration {
        var config = KoshConfiguration()
        config.masterKey = MasterKey.generate().base64
        config.testApprovalDelayMillis = 50
        config.gateway = GatewaySettings(firstCheckAfterMillis: 50, checkIntervalMillis: 50, submitGraceMillis: 1_000)
        // Webhook hosts are looked up in a table, never in DNS (tests have no network).
        config.webhooks.resolver = ScriptedResolver()
        switch kind {
        case "sqlite":
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kosh-tests-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            config.database = .sqlite(path: dir.appendingPathComponent("kosh.sqlite").path)
        default:
            let base = ProcessInfo.processInfo.environment["KOSH_TEST_POSTGRES_URL"]!
            let url = try DatabaseURL(base)
            guard case .postgres(let host, let port, let user, let password, let database, let tls) = url else {
                fatalError("KOSH_TEST_POSTGRES_URL must be a postgres:// URL")
            }
            // Each test gets its own database, created through the one named in the URL.
            let name = "kosh_test_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
            let admin = try await Databases.open(url, logger: Logger(label: "test"), migrate: false)
            try await admin.transaction { conn in _ = try await conn.query("SELECT 1", []) }
            try await PostgresAdmin.createDatabase(admin, name: name)
            try await admin.close()
            _ = database
            config.database = .postgres(host: host, port: port, user: user, password: password, database: name, tls: tls)
        }
        return config
    }

    public static func services(_ kind: String, clock: any KoshClock = SystemClock()) async throws -> KoshServices {
        let config = try await configuration(kind)
        return try await KoshServices.open(config, logger: Logger(label: "kosh-test"), clock: clock)
    }
}

extension TestDatabases {
    /// Opens an existing database by URL text (for tests that poke at what a `kosh` process wrote).
    public static func open(database: String, masterKeyFile: String) async throws -> any SQLDatabase {
        try await Databases.open(try DatabaseURL(database), logger: Logger(label: "kosh-test"), migrate: false)
    }
}
