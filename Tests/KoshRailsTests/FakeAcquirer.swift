import KoshISO8583
import NIOCore
import NIOPosix
import Synchronization

/// The acquirer host of docs/CARDS.md §2 as a test plays it: a real TCP server on 127.0.0.1
/// speaking 2-byte-length frames, recording every message with the connection it came on,
/// and answering as the test's script says (now, later, never, or by dropping the connection).
/// Without a script it answers everything approved (`00`), echoing what the doc says it echoes.
final class FakeAcquirer: Sendable {
    enum Action: Sendable {
        case answer(ISO8583Message)
        case answerAfter(Duration, ISO8583Message)
        case never
        case drop
    }

    struct Received: Sendable {
        /// 1 for the first connection accepted, 2 for the next, …
        let connection: Int
        let message: ISO8583Message
    }

    typealias Script = @Sendable (_ request: ISO8583Message, _ connection: Int) -> Action?

    let server: any Channel
    let script = Mutex<Script?>(nil)
    let log = Mutex<[Received]>([])
    let accepted = Mutex<Int>(0)

    var port: Int { server.localAddress!.port! }

    private init(server: any Channel) { self.server = server }

    static func start() async throws -> FakeAcquirer {
        let box = Mutex<FakeAcquirer?>(nil)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let acquirer = box.withLock { $0! }
                    let number = acquirer.accepted.withLock { count in
                        count += 1
                        return count
                    }
                    try channel.pipeline.syncOperations.addHandler(FakeAcquirerHandler(acquirer: acquirer, connection: number))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let acquirer = FakeAcquirer(server: server)
        box.withLock { $0 = acquirer }
        return acquirer
    }

    func stop() async {
        try? await server.close()
    }

    /// Replaces the script; a script answering nil leaves that request to the default answer.
    func play(_ script: @escaping Script) { self.script.withLock { $0 = script } }

    var received: [Received] { log.withLock { $0 } }
    func received(_ mti: String) -> [Received] { received.filter { $0.message.mti == mti } }
    var connectionsAccepted: Int { accepted.withLock { $0 } }

    func action(for request: ISO8583Message, connection: Int) -> Action {
        log.withLock { $0.append(Received(connection: connection, message: request)) }
        let script = self.script.withLock { $0 }
        return script?(request, connection) ?? .answer(Self.answer(to: request))
    }

    /// The answer the doc describes, with response code `code` (and an auth code when approved).
    static func answer(to request: ISO8583Message, code: String = "00", authCode: String = "A1B2C3") -> ISO8583Message {
        var answer = ISO8583Message(mti: request.responseMTI!)
        let echoed: [Int]
        switch request.mti {
        case "0800": echoed = [7, 11, 70]
        case "0100": echoed = [3, 4, 7, 11, 37, 41, 42, 48, 49]
        case "0200": echoed = [3, 4, 7, 11, 37, 41, 42, 48, 49]
        default: echoed = [7, 11, 37]
        }
        for field in echoed { answer[field] = request[field] }
        if request.mti != "0800", let tags = request[48].flatMap(TestTLV.decode) {
            // PI (and RI) only: never the CVV or the authentication value back.
            answer[48] = TestTLV.encode(["PI", "RI"].compactMap { tag in tags[tag].map { (tag, $0) } })
        }
        answer[39] = code
        if code == "00", request.mti == "0100" || request.mti == "0200" { answer[38] = authCode }
        return answer
    }
}

final class FakeAcquirerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let acquirer: FakeAcquirer
    let connection: Int
    var reader = ISO8583FrameReader()

    init(acquirer: FakeAcquirer, connection: Int) {
        self.acquirer = acquirer
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let frames = try? reader.append(buffer.readableBytesView) else {
            context.close(promise: nil)
            return
        }
        for frame in frames {
            guard let request = try? ISO8583Message(decoding: frame) else {
                context.close(promise: nil)
                return
            }
            let channel = context.channel
            switch acquirer.action(for: request, connection: connection) {
            case .answer(let answer):
                channel.writeAndFlush(Self.frame(answer), promise: nil)
            case .answerAfter(let delay, let answer):
                let bytes = Self.frame(answer)
                context.eventLoop.scheduleTask(in: TimeAmount(delay)) { channel.writeAndFlush(bytes, promise: nil) }
            case .never:
                break
            case .drop:
                context.close(promise: nil)
                return
            }
        }
    }

    static func frame(_ message: ISO8583Message) -> ByteBuffer {
        ByteBuffer(bytes: try! ISO8583Frame.frame(message.encoded()))
    }
}

/// Field 48's tagged data, written again here so the tests do not check the connector with its own code.
enum TestTLV {
    static func encode(_ elements: [(String, String)]) -> String {
        elements.map { tag, value in
            let length = String(value.utf8.count)
            return tag + String(repeating: "0", count: 3 - length.count) + length + value
        }.joined()
    }

    static func decode(_ text: String) -> [String: String]? {
        var rest = Array(text.utf8)[...]
        var out: [String: String] = [:]
        while !rest.isEmpty {
            guard rest.count >= 5, let length = Int(String(decoding: rest.dropFirst(2).prefix(3), as: UTF8.self)),
                  rest.count >= 5 + length else { return nil }
            out[String(decoding: rest.prefix(2), as: UTF8.self)] = String(decoding: rest.dropFirst(5).prefix(length), as: UTF8.self)
            rest = rest.dropFirst(5 + length)
        }
        return out
    }

    /// The tags in order, to check the order the doc gives.
    static func tags(_ text: String) -> [String] {
        var rest = Array(text.utf8)[...]
        var out: [String] = []
        while rest.count >= 5, let length = Int(String(decoding: rest.dropFirst(2).prefix(3), as: UTF8.self)) {
            out.append(String(decoding: rest.prefix(2), as: UTF8.self))
            rest = rest.dropFirst(5 + length)
        }
        return out
    }
}
