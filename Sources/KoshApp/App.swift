import Foundation
import Hummingbird
import KoshCore
import KoshHTTP
import KoshRails
import KoshStorage
import Logging
import ServiceLifecycle

public struct KoshConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    public var database: DatabaseURL = .default
    /// Base64 master key (`KOSH_MASTER_KEY`); when absent, `masterKeyPath` is used (and created).
    public var masterKey: String?
    public var masterKeyPath: String = "./kosh-master.key"
    /// Test rail: how long the simulated payer takes to approve a collect request.
    public var testApprovalDelayMillis: Int64 = 1_500
    /// How often the janitor looks for payments to submit or check.
    public var janitorIntervalMillis: Int64 = 250
    public var gateway = GatewaySettings(firstCheckAfterMillis: 1_500, checkIntervalMillis: 2_000, submitGraceMillis: 5_000)

    public init() {}

    /// Reads `DATABASE_URL`, `KOSH_MASTER_KEY`, `KOSH_MASTER_KEY_FILE`, `KOSH_TEST_APPROVAL_DELAY_MS`.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> KoshConfiguration {
        var config = KoshConfiguration()
        if let url = env["DATABASE_URL"], !url.isEmpty { config.database = try DatabaseURL(url) }
        config.masterKey = env["KOSH_MASTER_KEY"]
        if let path = env["KOSH_MASTER_KEY_FILE"], !path.isEmpty { config.masterKeyPath = path }
        if let delay = env["KOSH_TEST_APPROVAL_DELAY_MS"] {
            guard let value = Int64(delay), (0...600_000).contains(value) else {
                throw StorageError.badURL("KOSH_TEST_APPROVAL_DELAY_MS must be 0…600000")
            }
            config.testApprovalDelayMillis = value
            config.gateway.firstCheckAfterMillis = value
        }
        return config
    }
}

/// Everything a running Kosh needs, built once. Tests build it too.
public struct KoshServices: Sendable {
    public let db: any SQLDatabase
    public let store: SQLStore
    public let merchants: MerchantDirectory
    public let idempotency: IdempotencyStore
    public let gateway: PaymentGateway<SQLStore>
    public let clock: any KoshClock

    public static func open(_ config: KoshConfiguration, logger: Logger, clock: any KoshClock = SystemClock()) async throws -> KoshServices {
        let db = try await Databases.open(config.database, logger: logger)
        do {
            let (masterKey, created) = try MasterKey.load(environmentValue: config.masterKey, path: config.masterKeyPath)
            if created {
                logger.notice("Generated a new master key; keep it safe and back it up", metadata: ["master_key.path": "\(config.masterKeyPath)"])
            }
            let merchants = MerchantDirectory(db: db, masterKey: masterKey, clock: clock)
            try await merchants.checkMasterKey()
            let store = SQLStore(db: db)
            let rails = RailRegistry(test: TestRail(approvalDelayMillis: config.testApprovalDelayMillis, clock: clock))
            let gateway = PaymentGateway(store: store, rails: rails, clock: clock, settings: config.gateway)
            return KoshServices(db: db, store: store, merchants: merchants, idempotency: IdempotencyStore(db: db), gateway: gateway, clock: clock)
        } catch {
            try? await db.close()
            throw error
        }
    }

    public func router(ready: @escaping @Sendable () -> Bool = { true }) -> Router<KoshRequestContext> {
        KoshRouter.build(api: MerchantAPI(gateway: gateway, idempotency: idempotency), authenticator: merchants, ready: ready)
    }
}

/// Background work that resolves what requests left in flight: submits payments whose server
/// stopped before reaching the rail, checks pending payments with the rail, sends pending
/// refunds, and forgets idempotency keys older than 24 h.
public struct Janitor: Service {
    let services: KoshServices
    let interval: Duration
    let logger: Logger

    public init(services: KoshServices, intervalMillis: Int64, logger: Logger) {
        self.services = services
        self.interval = .milliseconds(intervalMillis)
        self.logger = logger
    }

    public func run() async throws {
        var lastPurge: Int64 = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            await runOnce(purge: services.clock.nowMillis() - lastPurge > 3_600_000)
            if services.clock.nowMillis() - lastPurge > 3_600_000 { lastPurge = services.clock.nowMillis() }
            try? await Task.sleep(for: interval)
        }
    }

    public func runOnce(purge: Bool = false) async {
        do {
            _ = try await services.gateway.runDueChecks()
            _ = try await services.gateway.processPendingRefunds()
            if purge { _ = try await services.idempotency.purgeExpired(now: services.clock.nowMillis()) }
        } catch {
            logger.error("janitor pass failed", metadata: ["error": "\(error)"])
        }
    }
}

/// Closes the database after everything else stopped.
struct DatabaseService: Service {
    let db: any SQLDatabase
    func run() async throws {
        try? await gracefulShutdown()
        try await db.close()
    }
}

public enum KoshApplication {
    /// The server: HTTP, the janitor and the database, started in dependency order and
    /// stopped in reverse on SIGTERM / SIGINT (HTTP stops accepting and drains in-flight requests first).
    public static func run(_ config: KoshConfiguration, logger: Logger) async throws {
        let services = try await KoshServices.open(config, logger: logger)
        let app = Application(
            router: services.router(),
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: "kosh"),
            logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: DatabaseService(db: services.db)),
                .init(service: Janitor(services: services, intervalMillis: config.janitorIntervalMillis, logger: logger)),
                .init(service: app),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        logger.info("Kosh listening", metadata: ["address": "\(config.host):\(config.port)", "database": "\(config.database.redacted)"])
        try await group.run()
    }
}
