import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import Synchronization
import Testing
@testable import KoshSandbox

let testSecret = SandboxConfiguration.defaultSecret

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A decoded JSON answer from the sandbox.
struct Reply: CustomStringConvertible {
    let status: Int
    let json: [String: Any]
    let raw: String

    subscript(key: String) -> Any? { json[key] }
    func string(_ key: String) -> String? { json[key] as? String }
    func int(_ key: String) -> Int? { (json[key] as? NSNumber)?.intValue }
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
    var description: String { "\(status) \(raw)" }
}

func jsonText(_ object: [String: Any]) -> String {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    return String(decoding: data, as: UTF8.self)
}

/// How a test request is signed.
enum Signing {
    case valid
    case none
    case wrongSecret
    case skewed(milliseconds: Int64)
    case tamperedBody
}

enum Method: String {
    case GET, POST, PUT
}

/// Calls the sandbox over real HTTP, signing as docs/SANDBOX.md says, and moves its clock.
struct SandboxClient: Sendable {
    let port: Int
    let callbackBase: String
    /// The sandbox's clock; requests are signed with its time.
    let clock: any SandboxClock
    /// The sandbox's pass over the work due by its clock.
    let runDueWork: @Sendable () async -> Void
    /// The `payer_delay_ms` the sandbox was started with.
    let payerDelayMs: Int64

    /// Steps the sandbox's manual clock by `milliseconds` and runs what fell due: payer
    /// decisions, expiries and callbacks, which have been answered when this returns.
    func advance(by milliseconds: Int64) async {
        guard let clock = clock as? ManualSandboxClock else { preconditionFailure("advance(by:) needs a manual clock") }
        clock.advance(by: milliseconds)
        await runDueWork()
    }

    func callbackURL(_ name: String) -> String { "\(callbackBase)/cb/\(name)" }

    func send(_ method: Method, _ path: String, _ body: [String: Any]? = nil, raw: String? = nil, signing: Signing = .valid) async throws -> Reply {
        let text = raw ?? body.map(jsonText) ?? ""
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        switch method {
        case .GET: request.method = .GET
        case .POST: request.method = .POST
        case .PUT: request.method = .PUT
        }
        var timestamp = clock.now()
        var secret = testSecret
        var signedBody = text
        switch signing {
        case .valid, .none: break
        case .wrongSecret: secret = "not-the-secret"
        case .skewed(let ms): timestamp += ms
        case .tamperedBody: signedBody = text + " "
        }
        if case .none = signing {} else {
            request.headers.add(name: SandboxSignature.timestampHeader, value: String(timestamp))
            request.headers.add(name: SandboxSignature.signatureHeader,
                                value: SandboxSignature.sign(secret: secret, timestamp: timestamp, method: method.rawValue, path: path, body: signedBody))
        }
        if !text.isEmpty {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: text))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let buffer = try await response.body.collect(upTo: 1 << 20)
        let data = Data(buffer.readableBytesView)
        let json = data.isEmpty ? [:] : ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
        return Reply(status: Int(response.status.code), json: json, raw: String(decoding: data, as: UTF8.self))
    }

    func get(_ path: String) async throws -> Reply { try await send(.GET, path) }
    func post(_ path: String, _ body: [String: Any]) async throws -> Reply { try await send(.POST, path, body) }
    func put(_ path: String, _ body: [String: Any]) async throws -> Reply { try await send(.PUT, path, body) }

    /// `path` once the payer has answered: after stepping the clock by `payer_delay_ms`.
    func afterPayer(_ path: String) async throws -> Reply {
        await advance(by: payerDelayMs)
        return try await get(path)
    }

    func switchFinal(_ txnID: String) async throws -> Reply {
        try await afterPayer("/upi/v1/transactions/\(txnID)")
    }

    func collect(_ txnID: String, payer: String, amount: Int = 50_000, callback: String? = nil) async throws -> Reply {
        var body: [String: Any] = ["txn_id": txnID, "payer_vpa": payer, "payee_vpa": "kosh@okhdfcbank", "amount": amount,
                                   "currency": "INR", "note": "Order 1"]
        if let callback { body["callback_url"] = callback }
        return try await post("/upi/v1/collect", body)
    }
}

/// A callback received by the test's own HTTP server.
struct ReceivedCallback: Sendable {
    let name: String
    let target: String
    let timestamp: String?
    let signature: String?
    let body: [UInt8]
    /// The sandbox's time when it arrived.
    let receivedAt: Int64

    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:] }

    var isValidlySigned: Bool {
        SandboxSignature.verify(secret: testSecret, timestampHeader: timestamp, signatureHeader: signature, method: "POST",
                                path: target, body: body, now: receivedAt)
    }
}

/// Records callbacks posted to `/cb/{name}`; can refuse the first few with 500.
final class CallbackRecorder: Sendable {
    private let clock: any SandboxClock
    private let received = Mutex<[ReceivedCallback]>([])
    private let refusals = Mutex<[String: Int]>([:])
    private let attempts = Mutex<[String: Int]>([:])

    func refuse(_ name: String, times: Int) { refusals.withLock { $0[name] = times } }

    func attemptCount(_ name: String) -> Int { attempts.withLock { $0[name] ?? 0 } }

    init(clock: any SandboxClock) { self.clock = clock }

    func callbacks(_ name: String) -> [ReceivedCallback] { received.withLock { $0.filter { $0.name == name } } }

    func application(onServerRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        router.post("cb/:name") { request, context -> Response in
            var request = request
            let name = try context.parameters.require("name")
            let body = try await request.collectBody(upTo: 1 << 20)
            self.attempts.withLock { $0[name, default: 0] += 1 }
            let refuse = self.refusals.withLock { refusals -> Bool in
                guard let left = refusals[name], left > 0 else { return false }
                refusals[name] = left - 1
                return true
            }
            if refuse { return Response(status: .internalServerError) }
            let callback = ReceivedCallback(
                name: name, target: request.head.path ?? "",
                timestamp: request.headers[HTTPFields.Element.Name(SandboxSignature.timestampHeader)!],
                signature: request.headers[HTTPFields.Element.Name(SandboxSignature.signatureHeader)!],
                body: Array(body.readableBytesView), receivedAt: self.clock.now())
            self.received.withLock { $0.append(callback) }
            return Response(status: .ok)
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                           onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
                           logger: quietLogger)
    }
}

let quietLogger: Logger = {
    var logger = Logger(label: "kosh.sandbox.test")
    logger.logLevel = .critical  // cancelling the servers at the end of each test logs errors
    return logger
}()

/// Starts a sandbox on 127.0.0.1 port 0 on `clock` (by default a manual one the test steps with
/// `client.advance(by:)`) and a callback receiver, sets the payer timings and runs `body`; stops
/// both afterwards.
func withSandbox(seed: UInt64? = 7, clock: any SandboxClock = ManualSandboxClock(), payerDelayMs: Int64 = 300,
                 lateDelayMs: Int64 = 45_000, collectExpiryMs: Int64 = 300_000,
                 _ body: (SandboxClient, CallbackRecorder) async throws -> Void) async throws {
    let recorder = CallbackRecorder(clock: clock)
    let receiverPorts = AsyncStream.makeStream(of: Int.self)
    let receiver = recorder.application(onServerRunning: { port in receiverPorts.continuation.yield(port) })

    let sandboxPorts = AsyncStream.makeStream(of: Int.self)
    let sandbox = Sandbox(configuration: SandboxConfiguration(host: "127.0.0.1", port: 0, acquirerPort: 0, seed: seed, clock: clock), logger: quietLogger)
    let app = sandbox.makeSandboxApplication(onServerRunning: { port in sandboxPorts.continuation.yield(port) })

    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await receiver.run() }
        group.addTask { try await app.run() }
        var receiverIterator = receiverPorts.stream.makeAsyncIterator()
        var sandboxIterator = sandboxPorts.stream.makeAsyncIterator()
        guard let receiverPort = await receiverIterator.next(), let sandboxPort = await sandboxIterator.next() else {
            throw TestFailure("servers did not start")
        }
        let client = SandboxClient(port: sandboxPort, callbackBase: "http://127.0.0.1:\(receiverPort)", clock: clock,
                                   runDueWork: { await app.runDueWork() }, payerDelayMs: payerDelayMs)
        do {
            let configured = try await client.put("/sandbox/v1/config", ["payer_delay_ms": payerDelayMs, "late_delay_ms": lateDelayMs,
                                                                       "collect_expiry_ms": collectExpiryMs])
            try #require(configured.status == 200, "config: \(configured)")
            try await body(client, recorder)
        } catch {
            group.cancelAll()
            throw error
        }
        group.cancelAll()
    }
}
