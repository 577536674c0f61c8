import AsyncHTTPClient
import Foundation
import KoshISO8583
import NIOCore
import NIOPosix
import Synchronization
import Testing
@testable import KoshSandbox

/// A sandbox with its acquirer on free ports, on a manual clock, for the card tests.
struct CardSandbox: Sendable {
    let http: SandboxClient
    let acquirerPort: Int
    let clock: ManualSandboxClock

    func connect() async throws -> ISOTestClient { try await ISOTestClient.connect(port: acquirerPort) }

    /// Sets the slow issuers' delays (real milliseconds).
    func cardTiming(lateAnswerMs: Int64, issuerTimeoutMs: Int64 = 10_000) async throws {
        let reply = try await http.put("/sandbox/v1/cards/config", ["late_answer_ms": lateAnswerMs, "issuer_timeout_ms": issuerTimeoutMs])
        try #require(reply.status == 200, "\(reply)")
    }

    func transaction(_ paymentID: String) async throws -> Reply { try await http.get("/sandbox/v1/cards/transactions/\(paymentID)") }

    func card(_ number: String) async throws -> Reply { try await http.get("/sandbox/v1/cards/\(number)") }

    /// `read` again until it answers 200, for at most 5 s (an answer processed but never sent
    /// can only be seen on the books, once the acquirer got to it).
    func eventually(_ read: () async throws -> Reply) async throws -> Reply {
        let deadline = ContinuousClock.now + .seconds(5)
        var reply = try await read()
        while reply.status != 200 && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            reply = try await read()
        }
        return reply
    }

    /// The OTPs texted so far to `phone`, oldest first.
    func otps(to phone: String) async throws -> [String] {
        let messages = try await http.get("/sms/v1/messages")["items"] as? [[String: Any]] ?? []
        return messages.filter { $0["to"] as? String == phone }.compactMap { ($0["text"] as? String).map { String($0.prefix(6)) } }
    }

    func createAuthentication(_ pan: String, amount: Int = 50_000, paymentID: String, merchant: String = "Acme Stores",
                              returnURL: String = "https://shop.example/return") async throws -> Reply {
        try await http.post("/acs/v1/authentications", ["payment_id": paymentID, "pan": pan, "expiry": "3012", "amount": amount,
                                                        "currency": "INR", "merchant_name": merchant, "return_url": returnURL])
    }

    /// The ACS flow as Kosh's connector runs it: create, send the OTP, read it off the SMS
    /// provider, verify. Answers the authentication (`id`, `cavv`, `eci`), whatever its status.
    func authenticate(_ pan: String, amount: Int = 50_000, paymentID: String) async throws -> Reply {
        let created = try await createAuthentication(pan, amount: amount, paymentID: paymentID)
        try #require(created.status == 201, "\(created)")
        guard created.string("status") == "challenge_required", let id = created.string("id") else { return created }
        let sent = try await http.post("/acs/v1/authentications/\(id)/otp", [:])
        try #require(sent.status == 200, "\(sent)")
        let phone = try #require(TestCards.card(pan)?.phone)
        let otp = try #require(try await otps(to: phone).last)
        return try await http.post("/acs/v1/authentications/\(id)/verify", ["otp": otp])
    }
}

/// Starts a sandbox (HTTP and acquirer on free ports, a manual clock) and runs `body`.
func withCardSandbox(seed: UInt64 = 7, _ body: (CardSandbox) async throws -> Void) async throws {
    let clock = ManualSandboxClock()
    let httpPorts = AsyncStream.makeStream(of: Int.self)
    let acquirerPorts = AsyncStream.makeStream(of: Int.self)
    let sandbox = Sandbox(configuration: SandboxConfiguration(host: "127.0.0.1", port: 0, acquirerPort: 0, seed: seed, clock: clock),
                          logger: quietLogger)
    let app = sandbox.makeSandboxApplication(onServerRunning: { httpPorts.continuation.yield($0) },
                                             onAcquirerRunning: { acquirerPorts.continuation.yield($0) })
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await app.run() }
        var httpIterator = httpPorts.stream.makeAsyncIterator()
        var acquirerIterator = acquirerPorts.stream.makeAsyncIterator()
        guard let httpPort = await httpIterator.next(), let acquirerPort = await acquirerIterator.next(), acquirerPort > 0 else {
            throw TestFailure("the sandbox did not start")
        }
        let client = SandboxClient(port: httpPort, callbackBase: "http://127.0.0.1:1", clock: clock,
                                   runDueWork: { await app.runDueWork() }, payerDelayMs: 300)
        do {
            try await body(CardSandbox(http: client, acquirerPort: acquirerPort, clock: clock))
        } catch {
            group.cancelAll()
            throw error
        }
        group.cancelAll()
    }
}

/// Requests as Kosh's connector writes them (docs/CARDS.md §2).
enum ISO {
    static let time = "1114221320"

    static func field48(_ tags: [(String, String?)]) -> String {
        tags.compactMap { tag, value in
            value.map { tag + String(repeating: "0", count: 3 - String($0.utf8.count).count) + String($0.utf8.count) + $0 }
        }.joined()
    }

    static func amount(_ paise: Int) -> String { String(format: "%012d", paise) }

    static func original(stan: String, time: String = time) -> String { "0100" + stan + time + "00000400001" + "00000000000" }

    static func authorisation(_ pan: String, amount: Int = 50_000, paymentID: String, stan: String, expiry: String = "3012",
                              authentication: Reply? = nil) -> ISO8583Message {
        let tags: [(String, String?)] = [("PI", paymentID), ("CV", "123"), ("AV", authentication?.string("cavv")),
                                         ("EC", authentication?.string("eci")), ("AI", authentication?.string("id"))]
        return ISO8583Message(mti: "0100", fields: [
            2: pan, 3: "000000", 4: Self.amount(amount), 7: time, 11: stan, 12: "034320", 13: "1115", 14: expiry, 18: "5999",
            22: "812", 25: "59", 32: "400001", 37: "RRN" + stan + "ABC", 41: "KOSH0001", 42: "MERCHANT0000001",
            43: "Acme Stores".padding(toLength: 40, withPad: " ", startingAt: 0), 48: field48(tags), 49: "356",
        ])
    }

    static func capture(_ pan: String, amount: Int, paymentID: String, stan: String, of original: String) -> ISO8583Message {
        ISO8583Message(mti: "0200", fields: [
            2: pan, 3: "000000", 4: Self.amount(amount), 7: time, 11: stan, 14: "3012", 32: "400001", 37: "CAP" + stan + "ABC",
            41: "KOSH0001", 42: "MERCHANT0000001", 48: field48([("PI", paymentID)]), 49: "356", 90: Self.original(stan: original),
        ])
    }

    static func refund(_ pan: String, amount: Int, paymentID: String, refundID: String, stan: String, of original: String) -> ISO8583Message {
        var message = capture(pan, amount: amount, paymentID: paymentID, stan: stan, of: original)
        message[3] = "200000"
        message[48] = field48([("PI", paymentID), ("RI", refundID)])
        return message
    }

    static func reversal(_ pan: String, amount: Int = 50_000, paymentID: String, stan: String, of original: String,
                         mti: String = "0400") -> ISO8583Message {
        ISO8583Message(mti: mti, fields: [
            2: pan, 3: "000000", 4: Self.amount(amount), 7: time, 11: stan, 32: "400001", 37: "REV" + stan + "ABC", 41: "KOSH0001",
            42: "MERCHANT0000001", 48: field48([("PI", paymentID)]), 49: "356", 90: Self.original(stan: original),
        ])
    }

    static func echo(stan: String, code: String = "301") -> ISO8583Message {
        ISO8583Message(mti: "0800", fields: [7: time, 11: stan, 70: code])
    }
}

/// A plain ISO 8583 client over NIO: frames out, answers collected by STAN as they come.
final class ISOTestClient: Sendable {
    let channel: any Channel
    private let box: AnswerBox

    private init(channel: any Channel, box: AnswerBox) {
        self.channel = channel
        self.box = box
    }

    static func connect(port: Int) async throws -> ISOTestClient {
        let box = AnswerBox()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(Collector(box: box)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return ISOTestClient(channel: channel, box: box)
    }

    func send(_ message: ISO8583Message) async throws { try await sendRaw(try ISO8583Frame.frame(try message.encoded())) }

    func sendRaw(_ bytes: [UInt8]) async throws { try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get() }

    /// The next answer carrying `stan`, waiting at most `limit`.
    func answer(stan: String, within limit: Duration = .seconds(10)) async throws -> ISO8583Message {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if let answer = box.take(stan) { return answer }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw TestFailure("no answer for STAN \(stan) within \(limit)")
    }

    /// Sends and waits for the answer with the same STAN.
    func exchange(_ message: ISO8583Message) async throws -> ISO8583Message {
        try await send(message)
        return try await answer(stan: try #require(message[11]))
    }

    /// Whether nothing came for `stan` during `wait` (real time: the only way to see an answer not sent).
    func silent(stan: String, for wait: Duration) async throws -> Bool {
        try await Task.sleep(for: wait)
        return box.take(stan) == nil
    }

    var arrivalOrder: [String] { box.order() }

    /// Whether the acquirer closed the connection within `limit`.
    func closedByPeer(within limit: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if !channel.isActive { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return !channel.isActive
    }

    func close() async { try? await channel.close().get() }
}

final class AnswerBox: Sendable {
    private let state = Mutex<(answers: [String: [ISO8583Message]], order: [String])>(([:], []))

    func add(_ message: ISO8583Message) {
        state.withLock { state in
            let stan = message[11] ?? "-"
            state.answers[stan, default: []].append(message)
            state.order.append(stan)
        }
    }

    func take(_ stan: String) -> ISO8583Message? {
        state.withLock { state in
            guard var list = state.answers[stan], !list.isEmpty else { return nil }
            let first = list.removeFirst()
            state.answers[stan] = list
            return first
        }
    }

    func order() -> [String] { state.withLock { $0.order } }
}

private final class Collector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let box: AnswerBox
    var reader = ISO8583FrameReader()

    init(box: AnswerBox) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let frames = try? reader.append(buffer.readableBytesView) else {
            context.close(promise: nil)
            return
        }
        for frame in frames {
            if let message = try? ISO8583Message(decoding: frame) { box.add(message) }
        }
    }
}
