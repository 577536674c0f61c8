import Foundation
import Hummingbird
import KoshCore
import KoshFlows
import KoshHTTP
import KoshRails
import KoshSandbox
import KoshStorage
import KoshVault
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// A setting Kosh refuses to start with.
public struct ConfigurationError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct KoshConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 8080
    public var database: DatabaseURL = .default
    /// Whether opening the database may create it (a new, empty SQLite file). Only `kosh serve`
    /// and `kosh migrate` do; every other command needs an existing database.
    public var createsDatabase = true
    /// Base64 master key (`KOSH_MASTER_KEY`); when absent, `masterKeyPath` is used (and created
    /// for a database that has no key yet).
    public var masterKey: String?
    /// The master key file (`KOSH_MASTER_KEY_FILE`); nil: the default, see `masterKeyPath`.
    public var masterKeyFile: String?
    /// Where the master key file is: `masterKeyFile` if set, else `kosh-master.key` beside the
    /// SQLite file (so every command run against that file finds the same key, whatever its
    /// working directory), or `./kosh-master.key` for PostgreSQL.
    public var masterKeyPath: String {
        if let masterKeyFile { return masterKeyFile }
        guard case .sqlite(let path) = database else { return "./kosh-master.key" }
        let directory = (path as NSString).deletingLastPathComponent
        return ((directory.isEmpty ? "." : directory) as NSString).appendingPathComponent("kosh-master.key")
    }
    /// Test rail: how long the simulated payer takes to approve a collect request.
    public var testApprovalDelayMillis: Int64 = 1_500
    /// How often the janitor looks for payments to submit or check.
    public var janitorIntervalMillis: Int64 = 250
    public var gateway = GatewaySettings(firstCheckAfterMillis: 1_500, checkIntervalMillis: 2_000, submitGraceMillis: 5_000)
    /// Where live payments go (`KOSH_RAILS_URL`). When nil, `kosh serve` starts the sandbox
    /// in-process on a loopback port and uses it, unless `startSandbox` is false (then live
    /// mode is off).
    public var railsURL: String?
    /// Shared secret signing calls to and callbacks from the rails (`KOSH_RAILS_SECRET`).
    public var railsSecret: String = SandboxConfiguration.defaultSecret
    /// Kosh's own base URL as the rails should call it back (`KOSH_PUBLIC_URL`); by default
    /// http://<host>:<port> (127.0.0.1 when listening on every interface).
    public var publicURL: String?
    public var startSandbox = true
    /// Port of the in-process sandbox (`KOSH_SANDBOX_PORT`); 0 picks a free one.
    public var sandboxPort = 0
    /// Seed of the in-process sandbox's fault draws (`KOSH_SANDBOX_SEED`).
    public var sandboxSeed: UInt64?
    /// The card vault (`KOSH_VAULT_URL`: `http://host:port` or `http+unix:///path`); nil: `kosh
    /// serve` runs the vault in-process on a Unix socket in `vaultDirectory`.
    public var vaultURL: String?
    /// The in-process vault's own directory: its database, keyring and socket
    /// (`KOSH_VAULT_DIR`; default `kosh-vault` beside the SQLite file, or `./kosh-vault`).
    public var vaultDirectoryOverride: String?
    public var vaultDirectory: String {
        if let vaultDirectoryOverride { return vaultDirectoryOverride }
        guard case .sqlite(let path) = database else { return "./kosh-vault" }
        let directory = (path as NSString).deletingLastPathComponent
        return ((directory.isEmpty ? "." : directory) as NSString).appendingPathComponent("kosh-vault")
    }
    /// The card acquirer's ISO 8583 host and port (`KOSH_ACQUIRER_ADDR`, `host:port`); with the
    /// in-process sandbox, its acquirer. Live card payments need it.
    public var acquirerHost: String?
    public var acquirerPort: Int?
    /// Port of the in-process sandbox's acquirer (`KOSH_SANDBOX_ACQUIRER_PORT`); 0 picks a free one.
    public var sandboxAcquirerPort = 0
    /// How long the card connector waits for an authorisation before reversing it.
    public var cardAuthorizationTimeoutMillis: Int64 = 10_000
    /// The operator's card routing rules (`KOSH_CARD_ROUTING_RULES`); nil: the sandbox's default
    /// (HDFC Bank's cards on the acquirer). Checked against the connectors when the services open.
    public var cardRoutingRules: String?
    public var breaker = CircuitBreakerPolicy()
    public var routing = RoutingPolicy()
    public var upstreamTimeouts = (initiate: Int64(3_000), status: Int64(2_000), refund: Int64(5_000))
    /// Webhook delivery: retry schedule, timeout, lease, concurrency.
    public var webhooks = WebhookSettings()
    /// Customer and merchant notifications: SMTP, SMS / push providers, retry schedule.
    public var notifications = NotificationSettings()
    /// Events (with their finished deliveries, attempts and notifications) older than this are
    /// purged hourly by the janitor (`KOSH_EVENT_RETENTION_DAYS`, at least 30, the promise of `GET /v1/events`).
    public var eventRetentionDays: Int64 = 30
    /// Timeouts and the connection cap of the HTTP server (unauthenticated clients reach it).
    public var connections = ConnectionLimits()

    public init() {}

    /// The development secret is public (it is in docs/SANDBOX.md): with it anyone could sign a
    /// "payment succeeded" callback. It is allowed only when Kosh and the rails both stay on
    /// loopback.
    func checkRailsSecret(railsURL: String) throws {
        guard railsSecret == SandboxConfiguration.defaultSecret else { return }
        func loopback(_ host: String) -> Bool { host == "127.0.0.1" || host == "localhost" || host == "::1" || host == "[::1]" }
        let railsHost = railsURL.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first
            .map { String($0.split(separator: ":").first ?? "") } ?? ""
        guard loopback(host), loopback(railsHost), publicURL.map({ $0.contains("127.0.0.1") || $0.contains("localhost") }) ?? true else {
            throw ConfigurationError("KOSH_RAILS_SECRET must be set (to a long random secret shared with the rails) when Kosh or the rails are not on loopback: the default secret is public")
        }
    }

    /// The base URL the rails call back.
    public var callbackBaseURL: String {
        if let publicURL { return publicURL }
        let host = (self.host == "0.0.0.0" || self.host == "::") ? "127.0.0.1" : self.host
        return "http://\(host):\(port)"
    }

    /// Reads `DATABASE_URL`, `KOSH_MASTER_KEY`, `KOSH_MASTER_KEY_FILE`, `KOSH_TEST_APPROVAL_DELAY_MS`.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> KoshConfiguration {
        var config = KoshConfiguration()
        if let url = env["DATABASE_URL"], !url.isEmpty { config.database = try DatabaseURL(url) }
        config.masterKey = env["KOSH_MASTER_KEY"]
        if let path = env["KOSH_MASTER_KEY_FILE"], !path.isEmpty { config.masterKeyFile = path }
        if let delay = env["KOSH_TEST_APPROVAL_DELAY_MS"] {
            guard let value = Int64(delay), (0...600_000).contains(value) else {
                throw StorageError.badURL("KOSH_TEST_APPROVAL_DELAY_MS must be 0…600000")
            }
            config.testApprovalDelayMillis = value
            config.gateway.firstCheckAfterMillis = value
        }
        func millis(_ name: String, _ range: ClosedRange<Int64>) throws -> Int64? {
            guard let text = env[name], !text.isEmpty else { return nil }
            guard let value = Int64(text), range.contains(value) else { throw StorageError.badURL("\(name) must be \(range.lowerBound)…\(range.upperBound)") }
            return value
        }
        if let url = env["KOSH_RAILS_URL"], !url.isEmpty {
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw StorageError.badURL("KOSH_RAILS_URL must be an http(s) URL") }
            config.railsURL = url
        }
        if let secret = env["KOSH_RAILS_SECRET"], !secret.isEmpty { config.railsSecret = secret }
        if let url = env["KOSH_PUBLIC_URL"], !url.isEmpty { config.publicURL = url }
        if env["KOSH_SANDBOX"] == "off" { config.startSandbox = false }
        if let port = env["KOSH_SANDBOX_PORT"], !port.isEmpty {
            guard let value = Int(port), (0...65_535).contains(value) else { throw StorageError.badURL("KOSH_SANDBOX_PORT must be 0…65535") }
            config.sandboxPort = value
        }
        if let url = env["KOSH_VAULT_URL"], !url.isEmpty {
            guard (try? VaultEndpoint(url: url)) != nil else { throw StorageError.badURL("KOSH_VAULT_URL must be http://host:port or http+unix:///path") }
            config.vaultURL = url
        }
        if let dir = env["KOSH_VAULT_DIR"], !dir.isEmpty { config.vaultDirectoryOverride = dir }
        if let address = env["KOSH_ACQUIRER_ADDR"], !address.isEmpty {
            let parts = address.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]), (1...65_535).contains(port) else {
                throw StorageError.badURL("KOSH_ACQUIRER_ADDR must be host:port")
            }
            config.acquirerHost = String(parts[0])
            config.acquirerPort = port
        }
        if let port = env["KOSH_SANDBOX_ACQUIRER_PORT"], !port.isEmpty {
            guard let value = Int(port), (0...65_535).contains(value) else { throw StorageError.badURL("KOSH_SANDBOX_ACQUIRER_PORT must be 0…65535") }
            config.sandboxAcquirerPort = value
        }
        if let seed = env["KOSH_SANDBOX_SEED"], !seed.isEmpty {
            guard let value = UInt64(seed) else { throw StorageError.badURL("KOSH_SANDBOX_SEED must be a non-negative integer") }
            config.sandboxSeed = value
        }
        if let value = try millis("KOSH_UPI_POLL_INTERVAL_MS", 100...60_000) { config.gateway.checkIntervalMillis = value }
        if let value = try millis("KOSH_UPI_POLL_WINDOW_MS", 0...600_000) { config.gateway.pollWindowMillis = value }
        if let value = try millis("KOSH_PENDING_TIMEOUT_MS", 1_000...86_400_000) { config.gateway.pendingTimeoutMillis = value }
        if let value = try millis("KOSH_CARD_AUTH_TIMEOUT_MS", 100...120_000) { config.cardAuthorizationTimeoutMillis = value }
        if let text = env["KOSH_CARD_ROUTING_RULES"] { config.cardRoutingRules = text }
        if let text = env["KOSH_ROUTING_EXPLORATION_PERCENT"], !text.isEmpty {
            guard let value = Int(text), (0...100).contains(value) else { throw StorageError.badURL("KOSH_ROUTING_EXPLORATION_PERCENT must be 0…100") }
            config.routing = RoutingPolicy(explorationPercent: value)
        }
        func schedule(_ name: String) throws -> WebhookRetrySchedule? {
            guard let text = env[name], !text.isEmpty else { return nil }
            let delays = text.split(separator: ",").map { Int64($0.trimmingCharacters(in: .whitespaces)) }
            guard !delays.isEmpty, delays.count <= 32, delays.allSatisfy({ $0 != nil && (0...604_800_000).contains($0!) }) else {
                throw StorageError.badURL("\(name) must be 1…32 comma-separated delays of 0…604800000 ms")
            }
            return WebhookRetrySchedule(retryDelaysMillis: delays.map { $0! })
        }
        if let value = try schedule("KOSH_WEBHOOK_RETRY_SCHEDULE_MS") { config.webhooks.schedule = value }
        if let value = try millis("KOSH_WEBHOOK_TIMEOUT_MS", 100...60_000) { config.webhooks.timeoutMillis = value }
        if let value = try millis("KOSH_WEBHOOK_LEASE_MS", 500...3_600_000) { config.webhooks.leaseMillis = value }
        if let value = try millis("KOSH_EVENT_RETENTION_DAYS", 30...3_650) { config.eventRetentionDays = value }
        if let value = try millis("KOSH_HTTP_HEAD_TIMEOUT_MS", 100...600_000) { config.connections.headTimeoutMillis = value }
        if let value = try millis("KOSH_HTTP_BODY_TIMEOUT_MS", 100...600_000) { config.connections.bodyTimeoutMillis = value }
        if let value = try millis("KOSH_HTTP_IDLE_TIMEOUT_MS", 100...3_600_000) { config.connections.idleTimeoutMillis = value }
        if let value = try millis("KOSH_HTTP_SEND_TIMEOUT_MS", 100...600_000) { config.connections.sendTimeoutMillis = value }
        if let value = try millis("KOSH_HTTP_MAX_CONNECTIONS", 1...1_000_000) { config.connections.maximumConnections = Int(value) }
        if let flag = env["KOSH_WEBHOOK_ALLOW_PRIVATE"], !flag.isEmpty {
            guard flag == "1" || flag == "0" else { throw StorageError.badURL("KOSH_WEBHOOK_ALLOW_PRIVATE must be 1 (development only) or 0") }
            config.webhooks.allowPrivateDestinations = flag == "1"
        }
        if let url = env["KOSH_SMTP_URL"], !url.isEmpty {
            do {
                config.notifications.smtp = try SMTPConfiguration(url: url, from: env["KOSH_SMTP_FROM"].flatMap { $0.isEmpty ? nil : $0 } ?? "no-reply@kosh.localhost")
            } catch {
                throw StorageError.badURL("\(error)")
            }
        }
        if let url = env["KOSH_NOTIFY_PROVIDER_URL"], !url.isEmpty {
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else { throw StorageError.badURL("KOSH_NOTIFY_PROVIDER_URL must be an http(s) URL") }
            config.notifications.providerURL = url
        }
        config.notifications.providerSecret = env["KOSH_NOTIFY_PROVIDER_SECRET"].flatMap { $0.isEmpty ? nil : $0 } ?? config.railsSecret
        if let value = try schedule("KOSH_NOTIFY_RETRY_SCHEDULE_MS") { config.notifications.schedule = value }
        guard config.webhooks.leaseMillis > config.webhooks.timeoutMillis else {
            throw StorageError.badURL("KOSH_WEBHOOK_LEASE_MS must be longer than the webhook timeout (KOSH_WEBHOOK_TIMEOUT_MS, default 5000)")
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
    /// The gateway's use cases.
    public let flows: PaymentFlows<SQLStore>
    /// Webhook endpoints, events and deliveries.
    public let webhooks: WebhookStore
    /// Where webhooks may point (the API checks it; dispatchers are given the same settings).
    public let webhookSettings: WebhookSettings
    /// The notification queue and log.
    public let notifications: NotificationStore
    public let clock: any KoshClock
    /// Live mode's connectors and their HTTP client, when live mode is on.
    public let live: LiveRails?
    public let upstream: UpstreamHTTP?
    /// What `/metrics` shows (Prometheus text format).
    public let metrics: PrometheusCollectorRegistry
    /// Live mode's card connector (acquirer and ACS), when live cards are on.
    public let cardConnector: CardNetworkConnector?
    /// Live mode's card routing over the acquirer and the aggregator, when live cards are on.
    public let cardRouter: CardRouter?

    /// - Parameter cardVault: the card vault (`KoshVault`'s client, or an in-memory one in tests);
    ///   nil: card payments are off.
    public static func open(_ config: KoshConfiguration, logger: Logger, clock: any KoshClock = SystemClock(),
                            metrics: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
                            cardVault: (any CardVault)? = nil) async throws -> KoshServices {
        let db = try await Databases.open(config.database, logger: logger, create: config.createsDatabase)
        do {
            // A database that already has a key never gets a new one: a missing key file is an error.
            let keyed = try await MerchantDirectory.recordedKeyFingerprint(db) != nil
            let (masterKey, created) = try MasterKey.load(environmentValue: config.masterKey, path: config.masterKeyPath,
                                                          create: !keyed)
            if created {
                logger.notice("Generated a new master key; keep it safe and back it up", metadata: ["master_key.path": "\(config.masterKeyPath)"])
            }
            let merchants = MerchantDirectory(db: db, masterKey: masterKey, clock: clock)
            try await merchants.checkMasterKey()
            try await NodeHeartbeat.beat(db)
            let store = SQLStore(db: db)
            var upstream: UpstreamHTTP?
            var live: LiveRails?
            if let railsURL = config.railsURL {
                try config.checkRailsSecret(railsURL: railsURL)
                let http = UpstreamHTTP(configuration: UpstreamConfiguration(
                    baseURL: railsURL, callbackBaseURL: config.callbackBaseURL, secret: config.railsSecret,
                    initiateTimeoutMillis: config.upstreamTimeouts.initiate, statusTimeoutMillis: config.upstreamTimeouts.status,
                    refundTimeoutMillis: config.upstreamTimeouts.refund), clock: clock)
                let (connectors, routes) = LiveRails.sandboxConnectors(http: http)
                upstream = http
                live = LiveRails(connectors: connectors, routes: routes, breakerPolicy: config.breaker, routing: config.routing,
                                 clock: clock, logger: logger, metrics: PrometheusMetricsFactory(registry: metrics))
                live?.listen(to: http)
                logger.info("Live mode rails", metadata: ["rails": "\(railsURL)", "callbacks": "\(config.callbackBaseURL)"])
            }
            let rails = RailRegistry(test: TestRail(approvalDelayMillis: config.testApprovalDelayMillis, clock: clock), live: live)
            let idempotency = IdempotencyStore(db: db)
            // Live cards: the card connector to the acquirer (ISO 8583) and the issuers' ACS (over the rails' HTTP).
            var liveCards: CardNetworkConnector?
            if let vault = cardVault, let http = upstream, let host = config.acquirerHost, let port = config.acquirerPort {
                let timeout = Duration.milliseconds(config.cardAuthorizationTimeoutMillis)
                liveCards = CardNetworkConnector(
                    vault: vault, client: ISO8583Client(configuration: ISO8583ClientConfiguration(host: host, port: port, connectTimeout: .seconds(5)), clock: clock, logger: logger),
                    http: http, configuration: CardNetworkConfiguration(authorizationTimeout: timeout, reversalTimeout: min(timeout, .seconds(5))),
                    clock: clock, logger: logger,
                    metrics: PrometheusMetricsFactory(registry: metrics))
                logger.info("Live card payments", metadata: ["acquirer": "\(host):\(port)"])
            }
            // Live card payments are routed over the acquirer and alphapay's card API (docs/CARDS.md §4).
            var cardRouter: CardRouter?
            if let acquirer = liveCards, let vault = cardVault, let http = upstream {
                let aggregator = AggregatorCardConnector(
                    vault: vault, http: http, configuration: AggregatorCardConfiguration(authorizationTimeoutMillis: config.cardAuthorizationTimeoutMillis),
                    logger: logger)
                var (routes, rules) = CardRouter.sandboxRoutes(acquirer: acquirer.name, aggregator: aggregator.name)
                if let text = config.cardRoutingRules {
                    do {
                        rules = try CardRoutingRule.parse(text, connectors: [acquirer.name, aggregator.name])
                    } catch {
                        throw StorageError.badURL("KOSH_CARD_ROUTING_RULES: \(error)")
                    }
                }
                logger.info("Live card routing", metadata: ["card.routes": "\(routes.map(\.connector))", "card.rules": "\(rules.map(\.description))"])
                cardRouter = CardRouter(connectors: [acquirer, aggregator], routes: routes, rules: rules, breakerPolicy: config.breaker,
                                        policy: config.routing, clock: clock, logger: logger, metrics: PrometheusMetricsFactory(registry: metrics))
            }
            let cards = cardVault.map { vault in
                CardRails(vault: vault, test: TestCardConnector(vault: vault, bins: .sandbox), live: cardRouter, bins: .sandbox,
                          settings: CardSettings(), signer: merchants, publicBaseURL: config.callbackBaseURL)
            }
            var gateway = config.gateway
            gateway.publicBaseURL = config.callbackBaseURL
            let flows = PaymentFlows(store: store, rails: rails, clock: clock, settings: gateway,
                                     renderer: RazorpayEntityRenderer(), idempotency: idempotency, cards: cards)
            return KoshServices(db: db, store: store, merchants: merchants, idempotency: idempotency, flows: flows,
                                webhooks: WebhookStore(db: db, masterKey: masterKey, clock: clock), webhookSettings: config.webhooks,
                                notifications: NotificationStore(db: db, clock: clock), clock: clock,
                                live: live, upstream: upstream, metrics: metrics, cardConnector: liveCards, cardRouter: cardRouter)
        } catch {
            try? await db.close()
            throw error
        }
    }

    /// Shuts the rails' HTTP client and closes the database.
    public func close() async throws {
        await cardConnector?.shutdown()
        try? await upstream?.shutdown()
        try await db.close()
    }

    public func router(ready: @escaping @Sendable () -> Bool = { true }) -> Router<KoshRequestContext> {
        let registry = metrics
        return KoshRouter.build(api: MerchantAPI(flows: flows), authenticator: merchants, ready: ready,
                                metrics: { registry.emitToString() },
                                webhooks: WebhooksAPI(flows: WebhookFlows(registry: webhooks, destinations: webhookSettings.destinations)),
                                checkoutKeys: merchants)
    }
}

/// Background work that resolves what requests left in flight: submits payments whose server
/// stopped before reaching the rail, checks pending payments with the rail, sends pending
/// refunds, and forgets idempotency keys older than 24 h.
public struct Janitor: Service {
    let services: KoshServices
    let interval: Duration
    let logger: Logger

    let eventRetentionDays: Int64

    public init(services: KoshServices, intervalMillis: Int64, logger: Logger, eventRetentionDays: Int64 = 30) {
        precondition(eventRetentionDays >= 30, "events are kept at least 30 days")
        self.services = services
        self.interval = .milliseconds(intervalMillis)
        self.logger = logger
        self.eventRetentionDays = eventRetentionDays
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
            _ = try await services.flows.runDueChecks()
            _ = try await services.flows.sendPendingRefunds()
            _ = try await services.flows.sendDueCardTasks()
            _ = try await services.flows.settleDueCaptures()
            if purge {
                _ = try await services.idempotency.purgeExpired(now: services.clock.nowMillis())
                let cutoff = services.clock.nowMillis() / 1000 - eventRetentionDays * 86_400
                try await NodeHeartbeat.purge(services.db)
                let purged = try await services.webhooks.purgeEvents(createdBefore: cutoff)
                if purged > 0 { logger.info("purged old events", metadata: ["events": "\(purged)", "retention_days": "\(eventRetentionDays)"]) }
            }
            try await services.flows.runQRChecks()
        } catch {
            logger.error("janitor pass failed", metadata: ["error": "\(error)"])
        }
    }
}

/// Writes this process's heartbeat every second (`NodeHeartbeat`), so an idempotency key
/// it holds when it dies is free again within seconds on the other nodes (or after a restart).
struct HeartbeatService: Service {
    let db: any SQLDatabase
    let logger: Logger

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await NodeHeartbeat.beat(db)
            } catch {
                logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .milliseconds(NodeHeartbeat.intervalMillis))
        }
    }
}

public enum KoshApplication {
    /// The HTTP server with Kosh's connection guards (timeouts, cap). The cap defaults to what
    /// the descriptor limit allows, after raising the soft limit to the hard one.
    public static func httpApplication(router: Router<KoshRequestContext>, host: String, port: Int, limits: ConnectionLimits,
                                       logger: Logger, onServerRunning: (@Sendable (any Channel) async -> Void)? = nil)
        -> (some ApplicationProtocol, ConnectionRegistry) {
        let descriptors = DescriptorLimit.raiseToHard()
        let maximum = limits.effectiveMaximumConnections(descriptorLimit: descriptors)
        if let asked = limits.maximumConnections, asked > maximum {
            logger.warning("KOSH_HTTP_MAX_CONNECTIONS lowered to stay under the open-file limit",
                           metadata: ["http.max_connections.asked": "\(asked)", "http.max_connections": "\(maximum)",
                                      "process.open_file_limit": "\(descriptors)"])
        }
        let registry = ConnectionRegistry(maximum: maximum)
        let (server, configuration) = GuardedServer.make(address: .hostname(host, port: port), serverName: "kosh", limits: limits,
                                                         registry: registry)
        let app = Application(router: router, server: server, configuration: configuration, onServerRunning: { listener in
            registry.watch(listener: listener)
            await onServerRunning?(listener)
        }, logger: logger)
        return (app, registry)
    }

    /// The server: HTTP, the janitor and the dispatchers over the database, and the in-process
    /// sandbox. SIGTERM / SIGINT stop the services in reverse order (HTTP stops accepting and
    /// drains in-flight requests first); if one fails (the port is taken), the others are
    /// cancelled and its error is thrown. Either way the database closes only after every
    /// service has returned, then the sandbox stops.
    public static func run(_ config: KoshConfiguration, logger: Logger,
                           metrics: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) async throws {
        var config = config
        var sandbox: (InProcessSandbox, Task<Void, any Error>)?
        if config.railsURL == nil && config.startSandbox {
            let started = try await InProcessSandbox.start(port: config.sandboxPort, acquirerPort: config.sandboxAcquirerPort,
                                                           seed: config.sandboxSeed, secret: config.railsSecret, logger: logger)
            sandbox = started
            config.railsURL = started.0.url
            if config.acquirerHost == nil {
                config.acquirerHost = "127.0.0.1"
                config.acquirerPort = started.0.acquirerPort
            }
            if config.notifications.providerURL == nil {
                config.notifications.providerURL = started.0.url
                config.notifications.providerSecret = config.railsSecret
            }
            logger.notice("Started the payment rails sandbox in-process", metadata: ["sandbox": "\(started.0.url)"])
        }
        let outcome: Result<Void, any Error>
        do {
            try await serve(config, logger: logger, metrics: metrics)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        if let sandbox {
            await sandbox.0.stop()
            _ = try? await sandbox.1.value
        }
        try outcome.get()
    }

    static func serve(_ config: KoshConfiguration, logger: Logger, metrics: PrometheusCollectorRegistry) async throws {
        let vault = try await CardVaultProcess.start(config, logger: logger)
        let services: KoshServices
        do {
            services = try await KoshServices.open(config, logger: logger, metrics: metrics, cardVault: vault.client)
        } catch {
            await vault.stop()
            throw error
        }
        let (app, registry) = httpApplication(router: services.router(), host: config.host, port: config.port, limits: config.connections,
                                              logger: logger) { channel in
            // Only once the socket is bound: a taken port is an error, never "listening".
            logger.info("Kosh listening", metadata: ["address": "\(config.host):\(channel.localAddress?.port ?? config.port)",
                                                     "database": "\(config.database.redacted)"])
        }
        logger.info("HTTP connection limits", metadata: [
            "http.max_connections": "\(registry.maximum)", "http.head_timeout_ms": "\(config.connections.headTimeoutMillis)",
            "http.body_timeout_ms": "\(config.connections.bodyTimeoutMillis)", "http.idle_timeout_ms": "\(config.connections.idleTimeoutMillis)",
            "http.send_timeout_ms": "\(config.connections.sendTimeoutMillis)",
        ])
        // The database is not a service of the group: when a service fails, the group cancels
        // the others all at once, and a database closed among them would race their last
        // transactions. It closes after the group has returned, whichever way.
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: HeartbeatService(db: services.db, logger: logger)),
                .init(service: Janitor(services: services, intervalMillis: config.janitorIntervalMillis, logger: logger,
                                          eventRetentionDays: config.eventRetentionDays)),
                .init(service: WebhookDispatcher(store: services.webhooks, settings: config.webhooks, logger: logger)),
                .init(service: NotificationDispatcher(store: services.notifications, settings: config.notifications, logger: logger)),
                .init(service: app),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch {
            try? await services.close()
            await vault.stop()
            throw error
        }
        // The vault stops last: the services' last card work may still reach it.
        do { try await services.close() } catch {
            await vault.stop()
            throw error
        }
        await vault.stop()
    }
}
