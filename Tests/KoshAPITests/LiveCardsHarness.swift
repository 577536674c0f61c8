import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KoshApp
import KoshCore
import KoshFlows
import KoshHTTP
import KoshJSON
import KoshRails
import KoshStorage
import KoshTesting
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

struct PublicPortTaken: Error, CustomStringConvertible {
    let port: Int
    let outcome: String
    var description: String { "Kosh could not listen on its public port \(port) (taken since it was picked?): \(outcome)" }
}

/// Every log line a test's Kosh, vault and sandbox wrote (message and metadata), for the PAN scan.
final class CapturedLogs: Sendable {
    let lines = Mutex<[String]>([])
    func handler(label: String) -> some LogHandler { CapturingLogHandler(sink: self) }
    var all: [String] { lines.withLock { $0 } }
}

struct CapturingLogHandler: LogHandler {
    let sink: CapturedLogs
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let all = self.metadata.merging(metadata ?? [:]) { $1 }
        sink.lines.withLock { $0.append("\(level) \(message) \(all)") }
    }
}

/// Kosh in live mode with cards: the sandbox (HTTP and its ISO 8583 acquirer on TCP), the
/// vault as its own server on a Unix socket with its own database and keys, and Kosh's card
/// connector between them — all real servers on loopback, as `kosh serve` runs them.
struct LiveCards: Sendable {
    let kosh: Kosh
    let sandboxURL: String
    let admin: HTTPClient
    let signer: RailSigner
    let logs: CapturedLogs
    let vaultDirectory: String
    let config: KoshConfiguration
    var services: KoshServices { kosh.services }

    static let secret = "live-cards-secret"
    /// Kosh's wait for an authorisation before it reverses it (the late card answers after 4.5 s; 2.5 s, not less: a CI machine running Chromium beside the suites once took 1.2 s to answer an ordinary card).
    static let authorizationTimeoutMillis: Int64 = 2_500

    static func run(_ kind: String, _ body: @Sendable (LiveCards) async throws -> Void) async throws {
        let logs = CapturedLogs()
        let logger = Logger(label: "kosh-live-cards") { logs.handler(label: $0) }
        let (sandbox, sandboxTask) = try await InProcessSandbox.start(seed: 7, secret: secret, logger: logger)
        var config = try await TestDatabases.configuration(kind)
        config.railsURL = sandbox.url
        config.railsSecret = secret
        config.acquirerHost = "127.0.0.1"
        config.acquirerPort = sandbox.acquirerPort
        config.cardAuthorizationTimeoutMillis = authorizationTimeoutMillis
        config.routing = RoutingPolicy(explorationPercent: 0)
        config.vaultDirectoryOverride = FileManager.default.temporaryDirectory.appendingPathComponent("kosh-vault-\(UUID().uuidString)").path
        // Kosh's public address — where `next` redirects the browser, the ACS's return_url and
        // the rails' callbacks — is fixed when KoshServices.open builds the card rails, before
        // any server runs, and app.test(.live) listens on a port of its own choosing. So the
        // same routes also listen on a port picked first (free when picked): the browser and
        // the sandbox come in there, the test's API client through app.test.
        let publicPort = CommandLineTests.freePort()
        config.publicURL = "http://127.0.0.1:\(publicPort)"
        let vault = try await CardVaultProcess.start(config, logger: logger)
        let settings = config
        let services = try await KoshServices.open(config, logger: logger, clock: LeapClock(), cardVault: vault.client)
        let merchant = try await services.merchants.create(name: "Card Merchant", mode: .live)
        let admin = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        let janitor = Task { try await Janitor(services: services, intervalMillis: 50, logger: logger).run() }
        let publicListener: Task<Void, any Error>
        do {
            publicListener = try await listen(services.router(), port: publicPort, logger: logger)
        } catch {
            janitor.cancel()
            _ = await janitor.result
            try? await admin.shutdown()
            try? await services.close()
            await vault.stop()
            await sandbox.stop()
            _ = try? await sandboxTask.value
            throw error
        }
        func stop() async {
            publicListener.cancel()
            _ = await publicListener.result
            janitor.cancel()
            _ = await janitor.result
            try? await admin.shutdown()
            try? await services.close()
            await vault.stop()
            await sandbox.stop()
            _ = try? await sandboxTask.value
        }
        do {
            let app = Application(router: services.router(), logger: logger)
            try await app.test(.live) { client in
                let live = LiveCards(kosh: Kosh(services: services, client: client, merchant: merchant, manualClock: nil), sandboxURL: sandbox.url,
                                     admin: admin, signer: RailSigner(secret: secret), logs: logs,
                                     vaultDirectory: settings.vaultDirectoryOverride!, config: settings)
                try await live.sandbox(.PUT, "/sandbox/v1/cards/config", #"{"late_answer_ms": 4500, "issuer_timeout_ms": 300}"#)
                try await body(live)
            }
        } catch {
            await stop()
            throw error
        }
        await stop()
    }

    /// Kosh's routes on 127.0.0.1:`port`, its public address; throws when the port was taken
    /// since it was picked. Cancel the task to stop listening.
    static func listen(_ router: Router<KoshRequestContext>, port: Int, logger: Logger) async throws -> Task<Void, any Error> {
        let (running, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
        let task = Task {
            defer { continuation.finish() }
            try await app.runService(gracefulShutdownSignals: [])
        }
        var iterator = running.makeAsyncIterator()
        guard await iterator.next() == port else {
            task.cancel()
            let outcome = await task.result
            throw PublicPortTaken(port: port, outcome: "\(outcome)")
        }
        return task
    }

    /// Kosh's public base URL (`config.publicURL`): what `next`, the ACS's return_url and the rails' callbacks point at.
    var publicURL: String { config.callbackBaseURL }

    /// A signed call to the sandbox's own API.
    @discardableResult
    func sandbox(_ method: NIOHTTP1.HTTPMethod, _ path: String, _ body: String? = nil) async throws -> (Int, JSON) {
        let request = signer.request(baseURL: sandboxURL, method: method, path: path, body: body)
        let response = try await admin.execute(request, timeout: .seconds(10))
        let buffer = try await response.body.collect(upTo: 4 << 20)
        return (Int(response.status.code), (try? JSON.parse(buffer.readableBytesView)) ?? .null)
    }

    /// create/json with a card (the sandbox issuers' expiry is 12/30); the payment id.
    func create(number: String, amount: Int64 = 50_000, extra: String = "") async throws -> String {
        let order = try await kosh.createOrder(amount: amount)
        let reply = try await kosh.call(.post, "/v1/payments/create/json", CardAPITests.cardBody(order: order, amount: amount, number: number, extra: extra))
        #expect(reply.status == 200, "\(reply.body)")
        return try #require(reply.string("razorpay_payment_id"))
    }

    /// The OTP the sandbox's ACS texted for this payment's authentication (its SMS provider's log).
    func otp(for paymentID: String) async throws -> String {
        let cardPayment = try await services.store.transaction { tx in try await tx.cardPayment(paymentID: ID(paymentID), forUpdate: false) }
        let authentication = try #require(cardPayment?.authenticationID)
        let (_, messages) = try await sandbox(.GET, "/sms/v1/messages")
        guard case .array(let items)? = messages["items"] else { throw KoshError.notFound("no SMS") }
        let texts = items.filter { $0["reference"] == .string(authentication) }.compactMap { item -> String? in
            if case .string(let text)? = item["text"] { return text } else { return nil }
        }
        let text = try #require(texts.last, "no OTP texted for \(authentication)")
        return String(text.prefix(while: \.isNumber))
    }

    /// otp_generate, then the texted OTP: the last reply.
    func authenticate(_ paymentID: String, otp override: String? = nil) async throws -> Kosh.Reply {
        let generated = try await kosh.call(.post, "/v1/payments/\(paymentID)/otp_generate", "{}")
        guard generated.status == 200, generated.string("razorpay_signature") == nil, generated.json["metadata"] != nil else { return generated }
        let otp: String
        if let override { otp = override } else { otp = try await self.otp(for: paymentID) }
        return try await kosh.call(.post, "/v1/payments/\(paymentID)/otp/submit", #"{"otp": "\#(otp)"}"#)
    }

    /// The acquirer's books for one payment.
    func books(_ paymentID: String) async throws -> JSON {
        try await sandbox(.GET, "/sandbox/v1/cards/transactions/\(paymentID)").1
    }

    func payment(_ id: String) async throws -> Payment { try await services.flows.payment(id: ID(id)) }

    /// Waits (janitor and connector working in real time) until the payment satisfies `done`.
    @discardableResult
    func wait(_ id: String, seconds: Double = 15, sourceLocation: SourceLocation = #_sourceLocation, until done: (Payment) -> Bool) async throws -> Payment {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let payment = try await payment(id)
            if done(payment) { return payment }
            // Real time on purpose: the acquirer, the issuers' delays and the janitor run on real time, as in `kosh serve`.
            try await Task.sleep(for: .milliseconds(25))
        }
        let payment = try await payment(id)
        Issue.record("payment \(id) stuck in \(payment.state)", sourceLocation: sourceLocation)
        return payment
    }
}
