import ArgumentParser
import Foundation
import Hummingbird
import KoshApp
import KoshBench
import KoshCore
import KoshJSON
import KoshStorage
import Logging
import AsyncHTTPClient
import KoshRails
import KoshSandbox

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Load tool and micro-benchmarks (run them on a release build).",
        subcommands: [Lifecycles.self, Bare.self, BareServer.self, LedgerBench.self, QRImages.self])

    struct Lifecycles: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "lifecycles",
            abstract: "Drive full payment lifecycles (order → UPI payment → authorisation → capture → share of refunds) through the HTTP API.")
        @Option(help: "Base URL of a running kosh serve") var url: String = "http://127.0.0.1:8080"
        @Option(help: "API key id; when absent a merchant is created in --database") var keyID: String?
        @Option(help: "API key secret") var keySecret: String?
        @OptionGroup var db: DatabaseOption
        @Option(help: "Measured seconds") var duration: Int = 30
        @Option(help: "Unmeasured seconds first") var warmup: Int = 3
        @Option(help: "Closed loop: lifecycles in flight") var concurrency: Int = 32
        @Option(help: "Open loop: lifecycles started per second (overrides --concurrency)") var rate: Int?
        @Option(help: "Per mille of lifecycles that end with a partial refund") var refundPerMille: Int = 200
        @Flag(help: "Print the report as JSON") var json = false
        @Flag(help: "Live mode: create a live merchant, so payments go through the connectors to the rails (the sandbox)") var live = false
        @Option(help: "The payer's VPA; {n} becomes a number per lifecycle (default success@razorpay, or success.load{n}@okhdfcbank with --live)") var vpa: String?
        @Option(help: "HTTP client: lean (one keep-alive connection per worker, little CPU) or ahc (AsyncHTTPClient)") var client: String = "lean"
        @Option(help: "What lifecycles pay with: upi; card (create/json → otp_generate → otp/submit → capture); qr (live: create a single-use QR code → the sandbox payer's app pays it → captured); netbanking (live: create/json → the sandbox bank approves → capture)")
        var method: String = "upi"
        @Option(help: "Netbanking lifecycles: the bank (Razorpay's code)") var bank: String = "HDFC"
        @Option(help: "Card lifecycles: the card number (a success card)") var card: String = "4100280000001007"
        @Option(help: "Live card, qr and netbanking lifecycles: the sandbox (the ACS texting OTPs, the payer's app, the bank's page; default KOSH_RAILS_URL, else http://127.0.0.1:9090)")
        var sandboxURL: String?

        func validate() throws {
            guard (1...3_600).contains(duration), (0...600).contains(warmup) else { throw ValidationError("--duration 1…3600, --warmup 0…600") }
            guard (1...4_096).contains(concurrency) else { throw ValidationError("--concurrency 1…4096") }
            if let rate, !(1...100_000).contains(rate) { throw ValidationError("--rate 1…100000") }
            guard (0...1000).contains(refundPerMille) else { throw ValidationError("--refund-per-mille 0…1000") }
            guard LoadClient(rawValue: client) != nil else { throw ValidationError("--client lean or ahc") }
            guard let kind = LoadMethod(rawValue: method) else { throw ValidationError("--method upi, card, qr or netbanking") }
            if (kind == .qr || kind == .netbanking) && !live && keyID == nil {
                throw ValidationError("--method \(method) pays through the sandbox: it needs --live (or a live merchant's --key-id/--key-secret)")
            }
        }

        func run() async throws {
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            var keyID = self.keyID, keySecret = self.keySecret
            var merchantID: String?
            if keyID == nil || keySecret == nil {
                let services = try await KoshServices.open(try db.configuration(), logger: makeLogger())
                let credentials = try await services.merchants.create(name: "kosh bench \(Date())", mode: live ? .live : .test)
                try await services.close()
                keyID = credentials.keyID
                keySecret = credentials.keySecret
                merchantID = credentials.merchant.id.rawValue
            }
            var options = LoadOptions(url: url, keyID: keyID!, keySecret: keySecret!)
            options.duration = duration
            options.warmup = warmup
            options.concurrency = concurrency
            options.rate = rate
            options.refundPerMille = refundPerMille
            // Live: a payer per lifecycle (each sandbox account has a per-day limit of ₹1,00,000).
            options.vpa = vpa ?? (live ? "success.load{n}@okhdfcbank" : "success@razorpay")
            options.client = LoadClient(rawValue: client) ?? .lean
            options.method = LoadMethod(rawValue: method) ?? .upi
            options.cardNumber = card
            options.bank = bank
            var otpReader: SandboxOTPReader?
            if (live && options.method == .card) || options.method == .qr || options.method == .netbanking {
                let reader = SandboxOTPReader(baseURL: sandboxURL ?? ProcessInfo.processInfo.environment["KOSH_RAILS_URL"] ?? "http://127.0.0.1:9090",
                                              secret: ProcessInfo.processInfo.environment["KOSH_RAILS_SECRET"] ?? SandboxConfiguration.defaultSecret)
                options.otp = { paymentID in try await reader.otp(paymentID: paymentID) }
                options.sandbox = reader
                otpReader = reader
            }
            let generator = LoadGenerator(options: options)
            let report: LoadReport
            do {
                report = try await generator.run()
            } catch {
                try? await otpReader?.client.shutdown()
                throw error
            }
            try await generator.shutdown()
            try? await otpReader?.client.shutdown()
            // The outbox of the bench's own merchant (only when it made one): does dispatch keep up?
            var outbox: OutboxCheck?
            if let merchantID { outbox = try await OutboxCheck.run(try db.configuration(), merchantID: merchantID) }
            if json {
                guard case .object(let fields) = report.json() else { return }
                print(JSON.object(fields + (outbox.map { [("outbox", $0.json())] } ?? [])).serialized())
            } else {
                print(report.text())
                if let outbox { print(outbox.text()) }
            }
        }
    }

    /// After a run: what the merchant's outbox (notifications per channel, webhook deliveries)
    /// still had to send when the load stopped, and how long the server's dispatchers took to
    /// catch up. A count that never moves is a channel the server has not configured (e.g.
    /// email without KOSH_SMTP_URL): it waits in the log by design.
    struct OutboxCheck {
        var atEnd: [String: Int]
        var left: [String: Int]
        var seconds: Double

        static func run(_ configuration: KoshConfiguration, merchantID: String) async throws -> OutboxCheck {
            let services = try await KoshServices.open(configuration, logger: makeLogger())
            let start = ContinuousClock.now
            let atEnd = try await services.notifications.pending(merchantID: merchantID)
            var last = atEnd, lastChange = start, unchanged = 0
            // Until nothing is left, or nothing moved for 2 s, or 120 s.
            while last.values.reduce(0, +) > 0 && unchanged < 8 && ContinuousClock.now - start < .seconds(120) {
                try await Task.sleep(for: .milliseconds(250))
                let now = try await services.notifications.pending(merchantID: merchantID)
                if now == last { unchanged += 1 } else { unchanged = 0; lastChange = .now }
                last = now
            }
            try await services.close()
            let elapsed = lastChange - start
            return OutboxCheck(atEnd: atEnd, left: last,
                               seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        }

        static func describe(_ counts: [String: Int]) -> String {
            let shown = counts.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            return shown.isEmpty ? "nothing" : shown.joined(separator: ", ")
        }

        func text() -> String {
            "outbox: pending when the load stopped: \(Self.describe(atEnd)); caught up after \(String(format: "%.1f", seconds)) s; " +
                "still pending: \(Self.describe(left))"
        }

        func json() -> JSON {
            func counts(_ c: [String: Int]) -> JSON { .object(c.sorted { $0.key < $1.key }.map { ($0.key, .int(Int64($0.value))) }) }
            return .object([("pending_at_end", counts(atEnd)), ("caught_up_seconds", .number(String(format: "%.3f", seconds))), ("still_pending", counts(left))])
        }
    }

    struct Bare: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "bare", abstract: "The same HTTP client against a route that does nothing.")
        @Option var url: String = "http://127.0.0.1:8099"
        @Option var path: String = "/"
        @Option var duration: Int = 10
        @Option var warmup: Int = 2
        @Option var concurrency: Int = 32
        @Option(help: "HTTP client: lean or ahc") var client: String = "lean"
        @Flag var json = false

        func run() async throws {
            var options = LoadOptions(url: url, keyID: "", keySecret: "")
            options.duration = duration
            options.warmup = warmup
            options.concurrency = concurrency
            guard let kind = LoadClient(rawValue: client) else { throw ValidationError("--client lean or ahc") }
            options.client = kind
            let generator = LoadGenerator(options: options)
            let report = try await generator.runBare(path: path)
            try await generator.shutdown()
            print(json ? report.json().serialized() : report.text())
        }
    }

    struct BareServer: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "bare-server", abstract: "A bare Hummingbird route answering \"ok\": the ceiling to compare with.")
        @Option var host: String = "127.0.0.1"
        @Option var port: Int = 8099

        func run() async throws {
            let router = Router()
            router.get("/") { _, _ in "ok" }
            let app = Application(router: router, configuration: .init(address: .hostname(host, port: port)))
            try await app.runService()
        }
    }

    struct QRImages: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "qr-images",
                                                        abstract: "QR code PNGs of UPI links: each encoded once, then from the per-link cache (µs per image).")
        @Option(help: "Distinct links") var images: Int = 2_000

        func validate() throws { guard (1...1_000_000).contains(images) else { throw ValidationError("--images must be 1…1000000") } }

        func run() throws {
            let result = try QRImageBenchmark.run(images: images)
            for (name, h) in [("encoded", result.encoded), ("cached", result.cached)] {
                print("\(name): \(result.images) images, p50 \(h.valueAtPercentile(50)) µs, p99 \(h.valueAtPercentile(99)) µs, max \(h.max) µs")
            }
            print("PNG size: \(result.bytes / result.images) bytes on average")
        }
    }

    struct LedgerBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ledger", abstract: "Journal postings per second through the storage layer, single and batched.")
        @OptionGroup var db: DatabaseOption
        @Option(help: "Entries per run") var entries: Int = 5_000
        @Option(help: "Batch sizes (entries per transaction)") var batch: [Int] = [1, 10, 100]

        func run() async throws {
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            let config = try db.configuration()
            let database = try await Databases.open(config.database, logger: makeLogger(), create: config.createsDatabase)
            for size in batch {
                let result = try await LedgerBenchmark.run(db: database, entries: entries, batch: size)
                print(String(format: "batch %4d: %6d entries in %6.2f s = %8.0f entries/s, %8.0f postings/s",
                             result.batch, result.entries, result.seconds, result.entriesPerSecond, result.postingsPerSecond))
            }
            try await database.close()
        }
    }
}

/// Live card lifecycles read each payment's OTP from the sandbox, as the cardholder reads the SMS
/// (`GET /sandbox/v1/cards/otp/:payment_id`, signed).
struct SandboxOTPReader: Sendable {
    let baseURL: String
    let signer: RailSigner
    let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)

    init(baseURL: String, secret: String) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.signer = RailSigner(secret: secret)
    }

    func otp(paymentID: String) async throws -> String {
        let response = try await client.execute(signer.request(baseURL: baseURL, method: .GET, path: "/sandbox/v1/cards/otp/\(paymentID)", body: nil),
                                                timeout: .seconds(5))
        let body = try await response.body.collect(upTo: 64 * 1024)
        guard response.status.code == 200, case .string(let otp)? = (try? JSON.parse(body.readableBytesView))?["otp"] else {
            throw ValidationError("the sandbox has no OTP for \(paymentID) (HTTP \(response.status.code))")
        }
        return otp
    }
}

