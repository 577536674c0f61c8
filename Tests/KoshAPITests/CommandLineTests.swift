import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import KoshApp
import KoshFlows
import KoshCore
import KoshJSON
import KoshStorage
import KoshTesting
import Testing

/// The `kosh` executable as scripts and operators use it: real processes, real sockets.
@Suite("kosh command line", .serialized, .timeLimit(.minutes(5)))
struct CommandLineTests {
    static var binary: URL {
        // Tests run from .build/<config>/<package>PackageTests.xctest; the executable sits beside it.
        let runner = URL(fileURLWithPath: CommandLine.arguments[0])
        var dir = runner.deletingLastPathComponent()
        while dir.path != "/" {
            let candidate = dir.appendingPathComponent("kosh")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/kosh")
    }

    struct Run {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kosh-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func environment(_ dir: URL) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["DATABASE_URL"] = nil
        env["KOSH_MASTER_KEY"] = nil
        env["KOSH_MASTER_KEY_FILE"] = dir.appendingPathComponent("master.key").path
        env["KOSH_TEST_APPROVAL_DELAY_MS"] = "100"
        env["KOSH_WEBHOOK_ALLOW_PRIVATE"] = nil  // as in production: tests that need a local receiver set it
        return env
    }

    static func start(_ arguments: [String], in dir: URL, env extra: [String: String] = [:]) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = dir
        process.environment = environment(dir).merging(extra) { _, new in new }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return (process, out, err)
    }

    static func run(_ arguments: [String], in dir: URL, env extra: [String: String] = [:]) throws -> Run {
        let (process, out, err) = try start(arguments, in: dir, env: extra)
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// A port for a child `kosh serve`: below Linux's ephemeral range (32768–60999, where this
    /// process's own outgoing connections take theirs) and free to bind right now.
    static func freePort() -> Int {
        for _ in 0..<100 {
            let port = Int.random(in: 20_000...32_000)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            let bound = withLoopbackAddress(port: port) { bind(fd, $0, $1) }
            if bound == 0 { return port }
        }
        return Int.random(in: 20_000...32_000)
    }

    static func http(_ method: String, _ url: String, body: String? = nil, auth: (String, String)? = nil) async throws -> (Int, JSON) {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        request.timeoutInterval = 5
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        if let (id, secret) = auth {
            request.setValue("Basic " + Data("\(id):\(secret)".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as! HTTPURLResponse).statusCode, (try? JSON.parse(Array(data))) ?? .null)
    }

    static func waitForHealth(port: Int) async throws {
        for _ in 0..<600 {
            if let (status, _) = try? await http("GET", "http://127.0.0.1:\(port)/healthz"), status == 200 { return }
            // Real time on purpose: a `kosh` process starting up (up to 30 s on a loaded machine).
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("server on port \(port) never became healthy")
    }

    static func string(_ json: JSON, _ key: String) -> String? {
        if case .string(let s)? = json[key] { return s }
        return nil
    }

    @Test func merchantCreatePrintsExactlyOneJSONObject() throws {
        let dir = try Self.scratch()
        #expect(try Self.run(["migrate", "--database", "sqlite://\(dir.path)/k.sqlite"], in: dir).status == 0)
        let run = try Self.run(["merchant", "create", "--name", "Acme Stores", "--database", "sqlite://\(dir.path)/k.sqlite"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let json = try JSON.parse(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        guard case .object(let pairs) = json else { Issue.record("not an object: \(run.stdout)"); return }
        #expect(pairs.map(\.0) == ["merchant_id", "key_id", "key_secret"])
        #expect(Self.string(json, "key_id")?.hasPrefix("rzp_test_") == true)
        #expect(Self.string(json, "merchant_id")?.hasPrefix("mer_") == true)
        #expect(run.stdout.split(separator: "\n").count == 1)
        let bad = try Self.run(["merchant", "create", "--name", "", "--database", "sqlite://\(dir.path)/k.sqlite"], in: dir)
        #expect(bad.status != 0)
        let badURL = try Self.run(["migrate", "--database", "mysql://x"], in: dir)
        #expect(badURL.status != 0)
    }

    @Test func merchantCreateSetsTheNotificationEmail() async throws {
        let dir = try Self.scratch()
        let database = "sqlite://\(dir.path)/k.sqlite"
        #expect(try Self.run(["migrate", "--database", database], in: dir).status == 0)
        let run = try Self.run(["merchant", "create", "--name", "Acme Stores", "--email", "ops@acme.example", "--database", database], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let merchantID = try #require(Self.string(try JSON.parse(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "merchant_id"))
        let db = try await TestDatabases.open(database: database, masterKeyFile: "\(dir.path)/kosh-master.key")
        let stored = try await db.transaction { conn in
            try await conn.query("SELECT notification_email FROM merchants WHERE id = ?", [.text(merchantID)]).first?.text("notification_email")
        }
        try await db.close()
        #expect(stored == "ops@acme.example")
        let bad = try Self.run(["merchant", "create", "--name", "Acme", "--email", "not an address", "--database", database], in: dir)
        #expect(bad.status != 0)
    }

    /// `kosh merchant webhook …` does what /v1/webhooks does, with the same checks.
    @Test("merchant create/update: the checkout's origins (normalised, checked) and UPI collect")
    func merchantCheckoutSettings() async throws {
        let dir = try Self.scratch()
        let database = "sqlite://\(dir.path)/k.sqlite"
        func kosh(_ args: [String]) throws -> Run { try Self.run(args + ["--database", database], in: dir) }
        func object(_ run: Run) throws -> JSON { try JSON.parse(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(try Self.run(["migrate", "--database", database], in: dir).status == 0)
        let created = try kosh(["merchant", "create", "--name", "Shop", "--checkout-origin", "HTTPS://Shop.Example:443/pay"])
        #expect(created.status == 0, "\(created.stderr)")
        let merchantID = try #require(Self.string(try object(created), "merchant_id"))
        let collect = try kosh(["merchant", "update", "--merchant", merchantID, "--upi-collect", "on"])
        #expect(collect.status == 0, "\(collect.stderr)")
        #expect(try object(collect)["checkout_origins"] == .array([.string("https://shop.example")]), "\(collect.stdout)")
        #expect(try object(collect)["upi_collect"] == .bool(true))
        let moved = try kosh(["merchant", "update", "--merchant", merchantID, "--checkout-origin", "http://127.0.0.1:5000", "--checkout-origin", "https://b.example"])
        #expect(try object(moved)["checkout_origins"] == .array([.string("http://127.0.0.1:5000"), .string("https://b.example")]), "\(moved.stdout)")
        let cleared = try kosh(["merchant", "update", "--merchant", merchantID, "--checkout-origin", "none"])
        #expect(try object(cleared)["checkout_origins"] == .array([]), "\(cleared.stdout)")
        for bad in [["--checkout-origin", "javascript:alert(1)"], ["--checkout-origin", "https://me@evil.example"], ["--upi-collect", "yes"], []] {
            let refused = try kosh(["merchant", "update", "--merchant", merchantID] + bad)
            #expect(refused.status == 64, "\(bad): \(refused.stdout) \(refused.stderr)")
        }
        #expect(try kosh(["merchant", "update", "--merchant", "mer_0000000000000A", "--upi-collect", "on"]).status == 64)
    }

    @Test func merchantWebhookSubcommands() async throws {
        let dir = try Self.scratch()
        let database = "sqlite://\(dir.path)/k.sqlite"
        func kosh(_ args: [String]) throws -> Run { try Self.run(args + ["--database", database], in: dir) }
        func object(_ run: Run) throws -> JSON { try JSON.parse(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) }
        #expect(try Self.run(["migrate", "--database", database], in: dir).status == 0)
        let created = try kosh(["merchant", "create", "--name", "Hooks Ltd"])
        #expect(created.status == 0, "\(created.stderr)")
        let merchantID = try #require(Self.string(try object(created), "merchant_id"))

        // A public address (names would need DNS, which tests do not have); nothing connects to it.
        let made = try kosh(["merchant", "webhook", "create", "--merchant", merchantID, "--url", "https://93.184.215.14/kosh",
                             "--events", "payment.captured,refund.processed"])
        #expect(made.status == 0, "\(made.stderr)")
        let endpoint = try object(made)
        let webhookID = try #require(Self.string(endpoint, "id"))
        #expect(webhookID.hasPrefix("wh_"))
        #expect(endpoint["events"] == .array([.string("payment.captured"), .string("refund.processed")]))
        #expect((Self.string(endpoint, "secret") ?? "").count == 32, "a generated secret is shown once")

        let listed = try kosh(["merchant", "webhook", "list", "--merchant", merchantID])
        #expect(listed.status == 0 && listed.stdout.contains(webhookID) && !listed.stdout.contains("secret"))

        let paused = try kosh(["merchant", "webhook", "update", webhookID, "--merchant", merchantID, "--active", "false", "--events", "order.paid"])
        #expect(paused.status == 0, "\(paused.stderr)")
        #expect(try object(paused)["active"] == .bool(false))
        #expect(try object(paused)["events"] == .array([.string("order.paid")]))

        let deliveries = try kosh(["merchant", "webhook", "deliveries", webhookID, "--merchant", merchantID])
        #expect(deliveries.status == 0 && deliveries.stdout.isEmpty)
        let notifications = try kosh(["merchant", "notifications", "--merchant", merchantID])
        #expect(notifications.status == 0 && notifications.stdout.isEmpty)

        // Bad input: the API's words, a usage error, nothing written.
        let badURL = try kosh(["merchant", "webhook", "create", "--merchant", merchantID, "--url", "ftp://x", "--events", "payment.captured"])
        #expect(badURL.status == 64 && badURL.stderr.contains("The url must be an http or https URL."))
        let badEvent = try kosh(["merchant", "webhook", "create", "--merchant", merchantID, "--url", "https://93.184.215.14", "--events", "payment.exploded"])
        #expect(badEvent.status == 64 && badEvent.stderr.contains("payment.exploded is not a valid event"))
        let shortSecret = try kosh(["merchant", "webhook", "create", "--merchant", merchantID, "--url", "https://93.184.215.14",
                                    "--events", "order.paid", "--secret", "short"])
        #expect(shortSecret.status == 64)
        // The operator's own network is out of reach, as through the API (issue 11 §3).
        for url in ["http://127.0.0.1:8080/v1/payments", "http://0x7f.1/", "http://[::ffff:169.254.169.254]/latest/meta-data",
                    "http://localhost:8080/", "http://10.0.0.5/hook"] {
            let refused = try kosh(["merchant", "webhook", "create", "--merchant", merchantID, "--url", url, "--events", "payment.captured"])
            #expect(refused.status == 64 && refused.stderr.contains("public"), "\(url): \(refused.stderr)")
            let moved = try kosh(["merchant", "webhook", "update", webhookID, "--merchant", merchantID, "--url", url])
            #expect(moved.status == 64 && moved.stderr.contains("public"), "\(url): \(moved.stderr)")
        }
        let userInfo = try kosh(["merchant", "webhook", "create", "--merchant", merchantID, "--url", "https://me@93.184.215.14/",
                                 "--events", "payment.captured"])
        #expect(userInfo.status == 64 && userInfo.stderr.contains("user name"))
        // The development setting lets a local receiver in.
        let local = try Self.run(["merchant", "webhook", "create", "--merchant", merchantID, "--url", "http://127.0.0.1:18090/hook",
                                  "--events", "payment.captured", "--database", database], in: dir, env: ["KOSH_WEBHOOK_ALLOW_PRIVATE": "1"])
        #expect(local.status == 0, "\(local.stderr)")
        let localID = try #require(Self.string(try object(local), "id"))
        #expect(try kosh(["merchant", "webhook", "delete", localID, "--merchant", merchantID]).status == 0)
        let noMerchant = try kosh(["merchant", "webhook", "list", "--merchant", "mer_nobody"])
        #expect(noMerchant.status == 64 && noMerchant.stderr.contains("no merchant mer_nobody"))
        let otherMerchant = try object(try kosh(["merchant", "create", "--name", "Other"]))
        let foreign = try kosh(["merchant", "webhook", "delete", webhookID, "--merchant", Self.string(otherMerchant, "merchant_id")!])
        #expect(foreign.status == 64, "a merchant cannot touch another's endpoint")
        #expect(try kosh(["merchant", "webhook", "list", "--merchant", merchantID]).stdout.split(separator: "\n").count == 1)

        let deleted = try kosh(["merchant", "webhook", "delete", webhookID, "--merchant", merchantID])
        let deletedJSON = try object(deleted)
        #expect(deleted.status == 0 && deletedJSON["deleted"] == .bool(true))
        #expect(try kosh(["merchant", "webhook", "list", "--merchant", merchantID]).stdout.isEmpty)
    }

    /// serve → merchant create while it runs → payment → kill -9 mid-flight → restart →
    /// the janitor resolves it → capture → SIGTERM exits 0 → ledger verify OK; then a
    /// tampered balance makes ledger verify fail.
    @Test func serveSurvivesKillNineAndLedgerVerifies() async throws {
        let dir = try Self.scratch()
        let database = "sqlite://\(dir.path)/kosh.sqlite"
        let port = Self.freePort()
        var (server, _, _) = try Self.start(["serve", "--port", "\(port)", "--database", database], in: dir)
        try await Self.waitForHealth(port: port)

        let created = try Self.run(["merchant", "create", "--name", "Live Shop", "--database", database], in: dir)
        #expect(created.status == 0, "\(created.stderr)")
        let creds = try JSON.parse(created.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let auth = (Self.string(creds, "key_id")!, Self.string(creds, "key_secret")!)
        let base = "http://127.0.0.1:\(port)"

        let (orderStatus, order) = try await Self.http("POST", "\(base)/v1/orders", body: #"{"amount": 10000, "currency": "INR"}"#, auth: auth)
        #expect(orderStatus == 200)
        let orderID = try #require(Self.string(order, "id"))
        let (payStatus, pay) = try await Self.http("POST", "\(base)/v1/payments/create/upi", body: """
            {"order_id": "\(orderID)", "amount": 10000, "currency": "INR", "vpa": "success@razorpay", "email": "a@b.co", "contact": "9123456789"}
            """, auth: auth)
        #expect(payStatus == 200)
        let paymentID = try #require(Self.string(pay, "razorpay_payment_id"))

        // kill -9 before the approval could be taken in.
        kill(server.processIdentifier, SIGKILL)
        server.waitUntilExit()
        (server, _, _) = try Self.start(["serve", "--port", "\(port)", "--database", database], in: dir)
        try await Self.waitForHealth(port: port)
        var status = ""
        for _ in 0..<300 {
            let (_, payment) = try await Self.http("GET", "\(base)/v1/payments/\(paymentID)", auth: auth)
            status = Self.string(payment, "status") ?? ""
            if status == "authorized" { break }
            // Real time on purpose: the restarted process's own janitor (its clock is the system's), up to 30 s.
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(status == "authorized")
        let (captureStatus, captured) = try await Self.http("POST", "\(base)/v1/payments/\(paymentID)/capture",
                                                            body: #"{"amount": 10000, "currency": "INR"}"#, auth: auth)
        #expect(captureStatus == 200)
        #expect(Self.string(captured, "status") == "captured")

        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
        #expect(server.terminationStatus == 0)

        let verify = try Self.run(["ledger", "verify", "--database", database], in: dir)
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        #expect(verify.stdout.contains("ledger OK"))

        let services = try await KoshTesting.TestDatabases.open(database: database, masterKeyFile: dir.appendingPathComponent("master.key").path)
        try await services.transaction { conn in
            _ = try await conn.query("UPDATE ledger_accounts SET posted = posted - 5 WHERE account = 'platform:fee_revenue'", [])
        }
        try await services.close()
        let tampered = try Self.run(["ledger", "verify", "--database", database], in: dir)
        #expect(tampered.status != 0)
        #expect(tampered.stdout.contains("platform:fee_revenue"))
    }

    /// Live mode as an operator runs it: a separate `kosh sandbox`, `kosh serve` pointed at it,
    /// a live merchant, a payment, a fault injected with `kosh sandbox fault`, failover.
    @Test func liveModeAgainstASandboxProcess() async throws {
        let dir = try Self.scratch()
        let database = "sqlite://\(dir.path)/kosh.sqlite"
        let port = Self.freePort(), sandboxPort = Self.freePort() + 1
        // No exploration draw: the second payment must try the (down) switch first, then fail over.
        let rails = ["KOSH_RAILS_URL": "http://127.0.0.1:\(sandboxPort)", "KOSH_RAILS_SECRET": "cli-test-secret",
                     "KOSH_ROUTING_EXPLORATION_PERCENT": "0"]
        let (sandbox, _, _) = try Self.start(["sandbox", "--port", "\(sandboxPort)", "--secret", "cli-test-secret"], in: dir)
        defer { kill(sandbox.processIdentifier, SIGTERM) }
        let (server, _, _) = try Self.start(["serve", "--port", "\(port)", "--database", database], in: dir, env: rails)
        try await Self.waitForHealth(port: port)

        let created = try Self.run(["merchant", "create", "--name", "Live Shop", "--live", "--database", database], in: dir)
        #expect(created.status == 0, "\(created.stderr)")
        let creds = try JSON.parse(created.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(Self.string(creds, "key_id")?.hasPrefix("rzp_live_") == true)
        let auth = (Self.string(creds, "key_id")!, Self.string(creds, "key_secret")!)
        let base = "http://127.0.0.1:\(port)"

        func pay(_ vpa: String) async throws -> (String, String) {
            let (_, order) = try await Self.http("POST", "\(base)/v1/orders", body: #"{"amount": 20000, "currency": "INR"}"#, auth: auth)
            let orderID = try #require(Self.string(order, "id"))
            let (status, pay) = try await Self.http("POST", "\(base)/v1/payments/create/upi", body: """
                {"order_id": "\(orderID)", "amount": 20000, "currency": "INR", "vpa": "\(vpa)", "email": "a@b.co", "contact": "9123456789"}
                """, auth: auth)
            #expect(status == 200, "\(pay.serialized())")
            let paymentID = try #require(Self.string(pay, "razorpay_payment_id"))
            for _ in 0..<300 {
                let (_, payment) = try await Self.http("GET", "\(base)/v1/payments/\(paymentID)", auth: auth)
                if let s = Self.string(payment, "status"), s != "created" { return (paymentID, s) }
                // Real time on purpose: a `kosh serve` process submits the payment, up to 30 s.
                try await Task.sleep(for: .milliseconds(100))
            }
            return (paymentID, "created")
        }

        let (first, firstStatus) = try await pay("success@okhdfcbank")
        #expect(firstStatus == "authorized")
        let fault = try Self.run(["sandbox", "fault", "upi_switch", #"{"down": true}"#, "--url", "http://127.0.0.1:\(sandboxPort)",
                                  "--secret", "cli-test-secret"], in: dir)
        #expect(fault.status == 0, "\(fault.stdout) \(fault.stderr)")
        #expect(fault.stdout.contains(#""down":true"#))
        let wrongSecret = try Self.run(["sandbox", "stats", "--url", "http://127.0.0.1:\(sandboxPort)", "--secret", "nope"], in: dir)
        #expect(wrongSecret.status != 0, "the sandbox refuses unsigned control calls")

        let (second, secondStatus) = try await pay("success@ybl")
        #expect(secondStatus == "authorized")
        let (_, attempts) = try await Self.http("GET", "\(base)/v1/payments/\(second)/attempts", auth: auth)
        guard case .array(let items)? = attempts["items"] else { Issue.record("\(attempts.serialized())"); return }
        #expect(items.map { Self.string($0, "status") } == ["unavailable", "authorized"])
        let (_, firstAttempts) = try await Self.http("GET", "\(base)/v1/payments/\(first)/attempts", auth: auth)
        #expect(firstAttempts["count"] == .int(1))

        let (captureStatus, _) = try await Self.http("POST", "\(base)/v1/payments/\(second)/capture",
                                                     body: #"{"amount": 20000, "currency": "INR"}"#, auth: auth)
        #expect(captureStatus == 200)
        kill(server.processIdentifier, SIGTERM)
        server.waitUntilExit()
        #expect(server.terminationStatus == 0)
        let verify = try Self.run(["ledger", "verify", "--database", database], in: dir)
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
    }

    /// Waits for `process` to exit for up to `seconds`; kills it (SIGKILL) if it does not.
    static func exited(_ process: Process, within seconds: Double) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1_000))
        while process.isRunning && ContinuousClock.now < deadline {
            // Real time on purpose: a process shutting down.
            try await Task.sleep(for: .milliseconds(20))
        }
        guard process.isRunning else { return true }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        return false
    }

    /// Issue 12 §6.1: a second server on a taken port used to log "Kosh listening", never
    /// report the bind error, and (about one try in three) hang with SIGTERM ignored: the
    /// failed HTTP service made the group cancel the others at once, the database closed
    /// among them took the writer lock from a transaction waiting for its batch's commit, and
    /// that transaction waited forever. Every try must fail fast and say why.
    @Test func secondServeOnATakenPortFailsAtOnceWithTheBindError() async throws {
        let dir = try Self.scratch()
        let port = Self.freePort()
        let (first, _, _) = try Self.start(["serve", "--port", "\(port)", "--database", "sqlite://\(dir.path)/kosh.sqlite"], in: dir)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        try await Self.waitForHealth(port: port)
        for attempt in 1...10 {
            let other = try Self.scratch()
            let (second, _, err) = try Self.start(["serve", "--port", "\(port)", "--database", "sqlite://\(other.path)/kosh.sqlite"], in: other)
            let exited = try await Self.exited(second, within: 10)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(exited, "try \(attempt): still running after 10 s\n\(stderr)")
            guard exited else { break }
            #expect(second.terminationStatus != 0, "try \(attempt)")
            #expect(stderr.contains("Address already in use"), "try \(attempt): \(stderr)")
            #expect(!stderr.contains("Kosh listening"), "try \(attempt): \(stderr)")
        }
        // The first server still serves, and SIGINT ends it as SIGTERM would.
        let (status, _) = try await Self.http("GET", "http://127.0.0.1:\(port)/healthz")
        #expect(status == 200)
        kill(first.processIdentifier, SIGINT)
        #expect(try await Self.exited(first, within: 10))
        #expect(first.terminationStatus == 0)
    }

    /// Issue 12 §6.2: only `serve` and `migrate` create a database; every other command
    /// pointed at a missing SQLite file names it and fails, leaving no file (nor key) behind.
    @Test func onlyServeAndMigrateCreateADatabase() throws {
        let dir = try Self.scratch()
        let path = dir.appendingPathComponent("missing.sqlite").path
        let database = "sqlite://\(path)"
        let commands: [[String]] = [
            ["ledger", "verify"],
            ["merchant", "create", "--name", "Nobody"],
            ["merchant", "webhook", "list", "--merchant", "mer_nobody"],
            ["merchant", "notifications", "--merchant", "mer_nobody"],
            ["refunds", "stuck"],
            ["bench", "ledger", "--entries", "1", "--batch", "1"],
        ]
        for command in commands {
            let run = try Self.run(command + ["--database", database], in: dir)
            #expect(run.status != 0, "\(command): \(run.stdout)")
            #expect(run.stderr.contains("No database at \(path)"), "\(command): \(run.stderr)")
            #expect(!run.stdout.contains("ledger OK"))
            #expect(!FileManager.default.fileExists(atPath: path), "\(command) created the database")
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("master.key").path), "\(command) wrote a master key")
        }
        let migrated = try Self.run(["migrate", "--database", database], in: dir)
        #expect(migrated.status == 0, "\(migrated.stderr)")
        let verify = try Self.run(["ledger", "verify", "--database", database], in: dir)
        #expect(verify.status == 0 && verify.stdout.contains("ledger OK"), "\(verify.stdout) \(verify.stderr)")
    }

    /// Issue 12 §6.3: the master key file sits beside the SQLite file by default, so a command
    /// run from another directory finds it; a database that has a key never gets a new one.
    @Test func masterKeyFileSitsBesideTheDatabase() throws {
        let data = try Self.scratch(), elsewhere = try Self.scratch()
        let database = "sqlite://\(data.path)/kosh.sqlite"
        let defaults = ["KOSH_MASTER_KEY_FILE": ""]  // unset (empty counts as unset)
        let keyFile = data.appendingPathComponent("kosh-master.key").path
        #expect(try Self.run(["migrate", "--database", database], in: elsewhere, env: defaults).status == 0)
        let created = try Self.run(["merchant", "create", "--name", "First", "--database", database], in: elsewhere, env: defaults)
        #expect(created.status == 0, "\(created.stderr)")
        #expect(FileManager.default.fileExists(atPath: keyFile))
        #expect(!FileManager.default.fileExists(atPath: elsewhere.appendingPathComponent("kosh-master.key").path))
        // Another working directory, the same database: the same key.
        let third = try Self.scratch()
        let again = try Self.run(["merchant", "create", "--name", "Second", "--database", database], in: third, env: defaults)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(!FileManager.default.fileExists(atPath: third.appendingPathComponent("kosh-master.key").path))

        // The key file gone: the clear refusal, and no fresh key written in its place.
        let saved = data.appendingPathComponent("saved.key").path
        try FileManager.default.moveItem(atPath: keyFile, toPath: saved)
        let refused = try Self.run(["merchant", "create", "--name", "Third", "--database", database], in: third, env: defaults)
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("This database was set up with a different master key"), "\(refused.stderr)")
        #expect(refused.stderr.contains(keyFile), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: keyFile))
        // KOSH_MASTER_KEY_FILE and KOSH_MASTER_KEY still choose the key.
        let byFile = try Self.run(["merchant", "create", "--name", "Fourth", "--database", database], in: third,
                                  env: ["KOSH_MASTER_KEY_FILE": saved])
        #expect(byFile.status == 0, "\(byFile.stderr)")
        let key = try String(contentsOfFile: saved, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let byValue = try Self.run(["merchant", "create", "--name", "Fifth", "--database", database], in: third,
                                   env: defaults.merging(["KOSH_MASTER_KEY": key]) { _, new in new })
        #expect(byValue.status == 0, "\(byValue.stderr)")
        #expect(!FileManager.default.fileExists(atPath: keyFile))

        let help = try Self.run(["merchant", "create", "--help"], in: third)
        #expect(help.stdout.replacingOccurrences(of: "\n", with: " ").contains("beside the SQLite file"), "\(help.stdout)")
    }

    /// `kosh sandbox fault --help` names every rail the sandbox plays (faults are set per rail).
    @Test func sandboxFaultHelpListsEveryRail() throws {
        let help = try Self.run(["sandbox", "fault", "--help"], in: try Self.scratch())
        #expect(help.status == 0)
        for rail in ["upi_switch", "alphapay", "betapay", "acquirer", "acs", "netbanking", "wallets"] {
            #expect(help.stdout.contains(rail), "kosh sandbox fault --help does not mention \(rail): \(help.stdout)")
        }
    }

    /// Issue 12 §6.4: `kosh --version`, and `kosh serve --help` lists every environment variable
    /// the server reads (every name in the configuration code, so a new one cannot be forgotten).
    @Test func versionAndTheEnvironmentInServeHelp() throws {
        let dir = try Self.scratch()
        let version = try Self.run(["--version"], in: dir)
        #expect(version.status == 0)
        #expect(version.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == KoshVersion.current)

        let help = try Self.run(["serve", "--help"], in: dir)
        #expect(help.status == 0)
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources")
        var names = Set<String>()
        for file in ["KoshApp/App.swift", "kosh/Kosh.swift"] {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            for match in text.matches(of: /"((?:KOSH|DATABASE)_[A-Z0-9_]+)"/) { names.insert(String(match.output.1)) }
        }
        #expect(names.count > 20 && names.contains("DATABASE_URL") && names.contains("KOSH_LOG_LEVEL"))
        for name in names.sorted() {
            #expect(help.stdout.contains(name), "kosh serve --help does not mention \(name)")
        }
    }
}
