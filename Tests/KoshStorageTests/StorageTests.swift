import Foundation
import KoshApp
import KoshCore
import KoshStorage
import KoshTesting
import Logging
import Testing

@Suite("Storage", .serialized, .timeLimit(.minutes(3)))
struct StorageTests {
    @Test("migrations are idempotent", arguments: TestDatabases.all)
    func migrationsTwice(db: String) async throws {
        let services = try await TestDatabases.services(db)
        #expect(try await Migrations.migrate(services.db) == [])
        let versions = try await services.db.transaction { conn in
            try await conn.query("SELECT version FROM schema_migrations", []).compactMap { $0.int("version") }
        }
        #expect(versions.sorted() == Array(1...Migrations.latestVersion))
        try await services.db.close()
    }

    @Test("journal, postings and events are append-only at the database level", arguments: TestDatabases.all)
    func appendOnly(db: String) async throws {
        let services = try await TestDatabases.services(db)
        let entry = try PostingRules.fee(id: "jrnl_test", paymentID: nil ?? "pay_x", merchantID: "m", fee: FeeBreakdown(base: 10, tax: 2), currency: .inr, at: 1)
        try await services.store.transaction { tx in try await tx.post(entry) }
        for sql in ["UPDATE postings SET amount = 1", "DELETE FROM postings", "UPDATE journal_entries SET kind = 'x'", "DELETE FROM journal_entries"] {
            await #expect(throws: (any Error).self, "\(sql)") {
                try await services.db.transaction { conn in try await conn.query(sql, []) }
            }
        }
        #expect(try await LedgerVerifier.verify(services.db).isConsistent)
        try await services.db.close()
    }

    @Test("ledger verify finds a tampered balance and an unbalanced entry", arguments: TestDatabases.all)
    func verifyDetectsTampering(db: String) async throws {
        let services = try await TestDatabases.services(db)
        let entry = try PostingRules.authorization(id: "jrnl_a", paymentID: "pay_x", merchantID: "m", rail: "r", amount: 500, currency: .inr, at: 1)
        try await services.store.transaction { tx in try await tx.post(entry) }
        #expect(try await LedgerVerifier.verify(services.db).isConsistent)
        try await services.db.transaction { conn in
            try await conn.query("UPDATE ledger_accounts SET posted = posted + 1 WHERE account = 'platform:fee_revenue' OR account = 'rail:r:clearing'", [])
        }
        let report = try await LedgerVerifier.verify(services.db)
        #expect(!report.isConsistent)
        #expect(report.problems.contains { $0.contains("rail:r:clearing") })
        // A posting written around the ledger API (no balancing leg).
        try await services.db.transaction { conn in
            try await conn.query("INSERT INTO journal_entries (id, kind, phase, created_at) VALUES ('jrnl_bad', 'fee', 'posted', 1)", [])
            try await conn.query("INSERT INTO postings (entry_id, seq, account, currency, amount) VALUES ('jrnl_bad', 0, 'platform:fee_revenue', 'INR', 7)", [])
        }
        #expect(try await LedgerVerifier.verify(services.db).problems.contains { $0.contains("jrnl_bad does not balance") })
        try await services.db.close()
    }

    @Test("a balance is spread over stripes and summed: ledger verify agrees with the postings", arguments: TestDatabases.all)
    func stripedBalances(db: String) async throws {
        let services = try await TestDatabases.services(db)
        for i in 0..<40 {
            let entry = try PostingRules.authorization(id: "jrnl_s\(i)", paymentID: "pay_s\(i)", merchantID: "m", rail: "r", amount: 100 + Int64(i),
                                                       currency: .inr, at: 1)
            try await services.store.transaction { tx in try await tx.post(entry) }
        }
        let rows = try await services.db.transaction { conn in
            try await conn.query("SELECT stripe, pending FROM ledger_accounts WHERE account = 'rail:r:clearing'", [])
        }
        #expect(rows.count > 1)  // 40 transactions over 16 stripes
        let stored: Int64 = rows.reduce(0) { $0 + ($1.int("pending") ?? 0) }
        let posted: Int64 = (0..<40).reduce(0) { $0 + 100 + Int64($1) }
        #expect(stored == posted)
        #expect(try await LedgerVerifier.verify(services.db).isConsistent)
        try await services.db.close()
    }

    @Test("PostgreSQL: a statement is prepared once per connection and reused", arguments: TestDatabases.all.filter { $0 == "postgres" })
    func preparedOnce(db: String) async throws {
        let services = try await TestDatabases.services(db)
        let prepared = try await services.db.transaction { conn in
            for _ in 0..<3 { _ = try await conn.query("SELECT id FROM merchants WHERE id = ?", [.text("mer_none")]) }
            return try await conn.query("SELECT COUNT(*) AS n FROM pg_prepared_statements WHERE statement = 'SELECT id FROM merchants WHERE id = $1'", [])
        }
        #expect(prepared.first?.int("n") == 1)
        try await services.db.close()
    }

    @Test("API secrets are stored sealed and hashed, and a wrong master key is refused", arguments: TestDatabases.all)
    func secretsAtRest(db: String) async throws {
        let config = try await TestDatabases.configuration(db)
        let services = try await KoshServices.open(config, logger: Logger(label: "t"))
        let creds = try await services.merchants.create(name: "Vault Test")
        let rows = try await services.db.transaction { conn in try await conn.query("SELECT * FROM api_keys", []) }
        let row = try #require(rows.first)
        #expect(row.text("secret_mac")?.contains(creds.keySecret) == false)
        #expect(row.text("secret_sealed")?.contains(creds.keySecret) == false)
        #expect(try await services.merchants.secret(keyID: creds.keyID) == creds.keySecret)
        #expect(try await services.merchants.authenticate(keyID: creds.keyID, secret: creds.keySecret)?.id == creds.merchant.id)
        #expect(try await services.merchants.authenticate(keyID: creds.keyID, secret: creds.keySecret + "x") == nil)
        try await services.db.close()

        var wrong = config
        wrong.masterKey = MasterKey.generate().base64
        await #expect(throws: StorageError.self) { _ = try await KoshServices.open(wrong, logger: Logger(label: "t")) }
    }

    @Test("razorpay_signature uses the merchant's newest key; a key written by another process is used within the cache's lifetime", arguments: TestDatabases.all)
    func signingKeys(db: String) async throws {
        let clock = ManualClock()
        let services = try await TestDatabases.services(db, clock: clock)
        func sign(_ merchant: ID<Merchant>) async throws -> String {
            try await services.merchants.signature(merchantID: merchant, orderID: ID("order_1"), paymentID: ID("pay_1"))
        }
        let acme = try await services.merchants.create(name: "Acme")
        let other = try await services.merchants.create(name: "Other")
        let (acmeSignature, otherSignature) = (try await sign(acme.merchant.id), try await sign(other.merchant.id))
        #expect(acmeSignature.count == 64 && acmeSignature != otherSignature)
        // Another node rotates Acme's key: a newer key row (here Other's key, moved over).
        try await services.db.transaction { conn in
            _ = try await conn.query("UPDATE api_keys SET merchant_id = ?, created_at = created_at + 1 WHERE key_id = ?",
                                     [.text(acme.merchant.id.rawValue), .text(other.keyID)])
        }
        #expect(try await sign(acme.merchant.id) == acmeSignature, "read 0 s ago: the cached key")
        clock.advance(byMillis: 29_999)
        #expect(try await sign(acme.merchant.id) == acmeSignature)
        clock.advance(byMillis: 1)
        #expect(try await sign(acme.merchant.id) == otherSignature, "past the lifetime: the newest key")
        await #expect(throws: KoshError.self) { _ = try await sign(ID("mer_nobody")) }
        try await services.db.close()
    }

    @Test("database URLs", arguments: [
        ("sqlite://./kosh.sqlite", DatabaseURL.sqlite(path: "./kosh.sqlite")),
        ("sqlite:///var/lib/kosh/k.db", DatabaseURL.sqlite(path: "/var/lib/kosh/k.db")),
        ("postgres://kosh:s%40cret@db.internal:6543/payments", DatabaseURL.postgres(host: "db.internal", port: 6543, user: "kosh", password: "s@cret", database: "payments", tls: false)),
        ("postgresql://u@localhost/d?sslmode=require", DatabaseURL.postgres(host: "localhost", port: 5432, user: "u", password: nil, database: "d", tls: true)),
    ])
    func urls(text: String, expected: DatabaseURL) throws {
        #expect(try DatabaseURL(text) == expected)
    }

    @Test func badURLs() {
        for text in ["mysql://x", "sqlite://", "postgres://host/db", "postgres://u@host", "postgres://u@host:port/db"] {
            #expect(throws: StorageError.self, "\(text)") { try DatabaseURL(text) }
        }
    }
}
