import ArgumentParser
import Foundation
import KoshApp
import KoshCore
import KoshJSON
import KoshSandbox
import KoshStorage
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

struct DatabaseOption: ParsableArguments {
    @Option(name: .long, help: """
        sqlite://PATH (default sqlite://./kosh.sqlite) or postgres://user:pass@host:port/db; overrides DATABASE_URL. \
        The master key file is kosh-master.key beside the SQLite file (./kosh-master.key for PostgreSQL) \
        unless KOSH_MASTER_KEY or KOSH_MASTER_KEY_FILE is set.
        """)
    var database: String?

    /// The configuration from the environment and `--database`. Only `serve` and `migrate` pass
    /// `createsDatabase: true`: any other command names a missing SQLite file and fails.
    func configuration(createsDatabase: Bool = false) throws -> KoshConfiguration {
        var config = try KoshConfiguration.fromEnvironment()
        if let database { config.database = try DatabaseURL(database) }
        config.createsDatabase = createsDatabase
        return config
    }
}

func makeLogger(_ label: String = "kosh") -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = ProcessInfo.processInfo.environment["KOSH_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
    return logger
}

@main
struct Kosh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kosh",
        abstract: "Kosh: a self-hosted, Razorpay-compatible payment gateway.",
        version: KoshVersion.current,
        subcommands: [Serve.self, SandboxCommand.self, Migrate.self, MerchantCommand.self, LedgerCommand.self, RefundsCommand.self, BenchCommand.self, VaultCommand.self])
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the API server (migrates the database first).",
                                                    discussion: environmentHelp)
    @Option var host: String = "127.0.0.1"
    @Option var port: Int = 8080
    @Option(name: .customLong("sandbox-port"),
            help: "Port of the in-process sandbox started when KOSH_RAILS_URL is unset (default: KOSH_SANDBOX_PORT, else a free port).")
    var sandboxPort: Int?
    @OptionGroup var db: DatabaseOption

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var config = try db.configuration(createsDatabase: true)
        config.host = host
        config.port = port
        if let sandboxPort { config.sandboxPort = sandboxPort }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        try await KoshApplication.run(config, logger: makeLogger(), metrics: registry)
    }
}

struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "The payment rails sandbox: a UPI switch, two PSP aggregators, banks and payer apps, with fault injection (docs/SANDBOX.md).",
        subcommands: [SandboxRun.self, SandboxFault.self, SandboxConfig.self, SandboxPay.self, SandboxStats.self, SandboxReset.self, SandboxOTP.self, SandboxCardBooks.self, SandboxRedirect.self],
        defaultSubcommand: SandboxRun.self)
}

struct SandboxRun: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the sandbox server (the default).")
    @Option var host: String = "127.0.0.1"
    @Option var port: Int = 9090
    @Option(help: "The card acquirer's ISO 8583 port (0 picks a free one).")
    var acquirerPort: Int = 9091
    @Option(help: "Seed of the fault-injection random source, so a run can be replayed.")
    var seed: UInt64?
    @Option(help: "Shared HMAC secret for requests and callbacks (default: KOSH_RAILS_SECRET, else the development secret).")
    var secret: String?

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = makeLogger("kosh.sandbox")
        let secret = secret ?? ProcessInfo.processInfo.environment["KOSH_RAILS_SECRET"] ?? SandboxConfiguration.defaultSecret
        let sandbox = Sandbox(configuration: SandboxConfiguration(host: host, port: port, acquirerPort: acquirerPort, seed: seed, secret: secret),
                              logger: logger)
        let app = sandbox.makeApplication(
            onServerRunning: { port in logger.notice("Sandbox listening", metadata: ["port": "\(port)"]) },
            onAcquirerRunning: { port in logger.notice("Card acquirer listening", metadata: ["acquirer.port": "\(port)"]) })
        let group = ServiceGroup(configuration: .init(services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint],
                                                      logger: logger))
        try await group.run()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "migrate", abstract: "Bring the database schema up to date.")
    @OptionGroup var db: DatabaseOption

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let config = try db.configuration(createsDatabase: true)
        let database = try await Databases.open(config.database, logger: makeLogger(), migrate: false)
        let applied = try await Migrations.migrate(database)
        try await database.close()
        print(applied.isEmpty ? "Schema is up to date (version \(Migrations.latestVersion))."
                              : "Applied migrations \(applied.map(String.init).joined(separator: ", ")).")
    }
}

struct MerchantCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "merchant", abstract: "Manage merchants.", subcommands: [Create.self, Update.self, MerchantWebhookCommand.self, MerchantNotificationsCommand.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Create a merchant with an API key (test mode unless --live); prints {\"merchant_id\", \"key_id\", \"key_secret\"} as JSON.")
        @Option var name: String
        @Flag(help: "Issue live-mode keys (rzp_live_…): payments go through the connectors to the rails (the sandbox).")
        var live = false
        @Option(name: .customLong("late-authorization"),
                help: "What to do with a payment the bank authorises after Kosh gave up on it: capture (if its order is still unpaid) or refund.")
        var lateAuthorization: String = LateAuthorizationPolicy.refund.rawValue
        @Option(help: "Connectors to try first for this merchant's live payments, comma-separated: UPI (upi_switch, alphapay, betapay) and cards (acquirer, alphapay_card).")
        var prefer: String = ""
        @Option(help: "Where this merchant's own notifications go (payment captured or failed, refund processed).")
        var email: String?
        @Option(name: .customLong("fee"), help: """
            The merchant's own rate, KEY=BASIS_POINTS, repeatable: a method (upi, card) or a card key \
            (card:rupay:debit, card:amex, card:international, card:debit, …; README, Fees). 100 = 1 %.
            """)
        var fees: [String] = []
        @Flag(name: .customLong("auto-capture"),
              help: "Capture payments as soon as they are authorised unless their order says payment_capture: 0 (default: manual capture).")
        var autoCapture = false
        @Option(name: .customLong("capture-window-hours"),
                help: "How long an authorised payment waits for a manual capture before Kosh releases it (refund, or a card's void): 1–720 hours.")
        var captureWindowHours: Int64 = CaptureSettings.defaultWindowSeconds / 3_600
        @Option(name: .customLong("checkout-origin"), help: """
            An origin (https://shop.example) the hosted checkout may send the customer back to (callback_url, cancel_url), \
            repeatable, at most \(CheckoutSettings.maximumOrigins). checkout.js needs none.
            """)
        var checkoutOrigins: [String] = []
        @Flag(name: .customLong("upi-collect"),
              help: "Offer UPI collect (pay by UPI ID) on the checkout page: only for merchants NPCI still allows it (default: QR and intent only).")
        var upiCollect = false
        @OptionGroup var db: DatabaseOption

        var feeRates: [String: Int64] {
            var rates: [String: Int64] = [:]
            for fee in fees {
                let parts = fee.split(separator: "=", maxSplits: 1)
                if parts.count == 2, let value = Int64(parts[1]) { rates[String(parts[0])] = value }
            }
            return rates
        }

        func validate() throws {
            let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty, trimmed.count <= MerchantDirectory.maximumNameLength else {
                throw ValidationError("--name must be 1 to \(MerchantDirectory.maximumNameLength) characters")
            }
            guard LateAuthorizationPolicy(rawValue: lateAuthorization) != nil else {
                throw ValidationError("--late-authorization must be capture or refund")
            }
            if let email, !(email.unicodeScalars.contains("@") && email.count <= 254 && !email.contains(where: { $0.isWhitespace || $0 == "<" || $0 == ">" })) {
                throw ValidationError("--email must be an email address")
            }
            for fee in fees {
                let parts = fee.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, FeeSchedule.isRateKey(parts[0]), let value = Int64(parts[1]),
                      (0...FeeSchedule.maximumMDRBasisPoints).contains(value) else {
                    throw ValidationError("--fee \(fee): KEY=BASIS_POINTS with a method (upi, card) or a card key (card:rupay:debit, card:amex, card:international, card:debit) and 0…\(FeeSchedule.maximumMDRBasisPoints)")
                }
            }
            guard checkoutOrigins.count <= CheckoutSettings.maximumOrigins else {
                throw ValidationError("--checkout-origin: at most \(CheckoutSettings.maximumOrigins)")
            }
            for origin in checkoutOrigins where CheckoutSettings.origin(of: origin) == nil {
                throw ValidationError("--checkout-origin \(origin): an http or https origin such as https://shop.example")
            }
            guard (1...720).contains(captureWindowHours) else {
                throw ValidationError("--capture-window-hours must be 1…720")
            }
            // UPI connectors and card connectors: a payment looks only at those of its method.
            let known = ["upi_switch", "alphapay", "betapay", "acquirer", "alphapay_card"]
            for name in preferred where !known.contains(name) {
                throw ValidationError("--prefer: unknown connector \(name); known: \(known.joined(separator: ", "))")
            }
        }

        var preferred: [String] { prefer.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

        func run() async throws {
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            let config = try db.configuration()
            let logger = makeLogger()
            var quiet = config
            quiet.railsURL = nil  // creating a merchant needs no rails
            let services = try await KoshServices.open(quiet, logger: logger)
            let credentials = try await services.merchants.create(name: name.trimmingCharacters(in: .whitespacesAndNewlines),
                                                                  mode: live ? .live : .test,
                                                                  lateAuthorization: LateAuthorizationPolicy(rawValue: lateAuthorization) ?? .refund,
                                                                  routePreference: preferred, feeRates: feeRates,
                                                                  capture: CaptureSettings(automatic: autoCapture, windowSeconds: captureWindowHours * 3_600),
                                                                  checkout: CheckoutSettings(origins: checkoutOrigins.compactMap(CheckoutSettings.origin(of:)),
                                                                                             upiCollect: upiCollect))
            if let email {
                try await services.notifications.setMerchantEmail(merchantID: credentials.merchant.id.rawValue, email: email)
            }
            try await services.close()
            print(JSON.object([
                ("merchant_id", .string(credentials.merchant.id.rawValue)),
                ("key_id", .string(credentials.keyID)),
                ("key_secret", .string(credentials.keySecret)),
            ]).serialized())
        }
    }
}

struct LedgerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ledger", abstract: "Ledger tools.", subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify",
            abstract: "Check that every journal entry balances and every stored balance equals its postings.")
        @OptionGroup var db: DatabaseOption

        func run() async throws {
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            let config = try db.configuration()
            let database = try await Databases.open(config.database, logger: makeLogger(), create: config.createsDatabase)
            let report = try await LedgerVerifier.verify(database)
            try await database.close()
            print("entries: \(report.entries)  postings: \(report.postings)  accounts: \(report.accounts)  payments: \(report.payments)")
            if report.isConsistent {
                print("ledger OK: every entry balances, every stored balance matches its postings, every payment's captured − refunded matches the ledger")
            } else {
                print("ledger INCONSISTENT: \(report.problems.count) problem(s)")
                for problem in report.problems { print("  - \(problem)") }
                throw ExitCode(1)
            }
        }
    }
}

struct RefundsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "refunds", abstract: "Refund tools for operators.", subcommands: [Stuck.self])

    struct Stuck: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "stuck",
            abstract: "Pending refunds the rail has not settled after several tries, oldest first, with why (Kosh keeps retrying them).")
        @OptionGroup var db: DatabaseOption
        @Option(help: "Least number of unsettled tries (1…1000)") var attempts: Int64 = 3
        @Option(help: "Most refunds to list (1…1000)") var limit: Int = 100

        func validate() throws {
            guard (1...1_000).contains(attempts), (1...1_000).contains(limit) else { throw ValidationError("--attempts and --limit: 1…1000") }
        }

        func run() async throws {
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            let config = try db.configuration()
            let database = try await Databases.open(config.database, logger: makeLogger(), create: config.createsDatabase)
            let stuck = try await SQLStore(db: database).stuckRefunds(minimumAttempts: attempts, limit: limit)
            try await database.close()
            guard !stuck.isEmpty else {
                print("no pending refund has gone \(attempts) or more tries without settling")
                return
            }
            for r in stuck {
                let next = r.nextAttemptAt.map { Date(timeIntervalSince1970: Double($0) / 1000).ISO8601Format() } ?? "-"
                print("\(r.id)  \(NotificationTemplates.amount(r.amount, currency: r.currency))  payment \(r.paymentID)  merchant \(r.merchantID)" +
                      "\(r.autoRefund ? "  auto-refund" : "")  tries \(r.attempts)  next \(next)")
                print("    last: \(r.lastError ?? "-")")
            }
        }
    }
}
