import KoshISO8583
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The card acquirer's host: ISO 8583 over TCP (docs/CARDS.md §2). Each connection carries many
/// messages at once; every message is handled in its own child task and answered on the
/// connection that carried it, as soon as it is ready (so answers can overtake each other; the
/// client matches them by STAN). The decisions are made on `SandboxWorld` under the runtime's
/// lock; this type only reads frames, waits (latency, slow issuers) and writes answers.
///
/// Structured throughout: `run` owns every connection and message task, and returns only once
/// they have all ended, which cancelling it brings about.
final class AcquirerServer: Sendable {
    static let maximumConnections = 256
    static let maximumInFlightPerConnection = 1_024
    /// How often the `down` fault and downtime windows are looked at to close open connections.
    static let downCheckInterval: Duration = .milliseconds(50)

    let host: String
    let port: Int
    let runtime: SandboxRuntime
    let logger: Logger
    private let started = ContinuousClock.now
    private let connections = Mutex<Registry>(Registry())

    private struct Registry {
        var nextID = 0
        var open: [Int: any Channel] = [:]
    }

    init(host: String, port: Int, runtime: SandboxRuntime, logger: Logger) {
        self.host = host
        self.port = port
        self.runtime = runtime
        self.logger = logger
    }

    /// Binds, reports the port, and serves until cancelled; then closes the listener and every
    /// connection and waits for their tasks.
    func run(onRunning: @escaping @Sendable (Int) async -> Void) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let boundPort = server.channel.localAddress?.port ?? 0
        logger.notice("acquirer listening", metadata: ["acquirer.port": "\(boundPort)"])
        await onRunning(boundPort)
        // The accept loop runs in a task of its own, so that cancelling `run` does not drop
        // connections already accepted (each must end through `executeThenClose`): it closes the
        // listener, and the loop takes what is left and ends; then every connection is closed.
        let loop = Task { try await self.accept(server) }
        try await withTaskCancellationHandler {
            try await loop.value
        } onCancel: {
            server.channel.close(promise: nil)
        }
        logger.notice("acquirer stopped")
    }

    private func accept(_ server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>) async throws {
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await self.closeConnectionsWhileDown() }
            try await server.executeThenClose { inbound in
                for try await connection in inbound {
                    guard let id = self.admit(connection.channel) else {
                        group.addTask { try? await connection.executeThenClose { _, _ in } }
                        continue
                    }
                    group.addTask { await self.serve(connection, id: id) }
                }
            }
            group.cancelAll()
        }
    }

    /// Registers a new connection, unless the acquirer is down or has too many.
    private func admit(_ channel: any Channel) -> Int? {
        let now = runtime.now()
        guard !runtime.withWorld({ $0.isDown(.acquirer, now: now) }) else { return nil }
        return connections.withLock { registry in
            guard registry.open.count < Self.maximumConnections else { return nil }
            let id = registry.nextID
            registry.nextID += 1
            registry.open[id] = channel
            return id
        }
    }

    private func closeConnectionsWhileDown() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: Self.downCheckInterval)
            let now = runtime.now()
            guard runtime.withWorld({ $0.isDown(.acquirer, now: now) }) else { continue }
            let open = connections.withLock { Array($0.open.values) }
            for channel in open { channel.close(promise: nil) }
        }
    }

    private func serve(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, id: Int) async {
        defer { _ = connections.withLock { $0.open.removeValue(forKey: id) } }
        let channel = connection.channel
        let inFlight = InFlight()
        do {
            try await connection.executeThenClose { inbound, outbound in
                await withDiscardingTaskGroup { group in
                    var reader = ISO8583FrameReader()
                    do {
                        for try await buffer in inbound {
                            for frame in try reader.append(buffer.readableBytesView) {
                                let request = try ISO8583Message(decoding: frame)
                                switch inFlight.enter(request[11]) {
                                case .entered:
                                    group.addTask { await self.handle(request, outbound: outbound, channel: channel, inFlight: inFlight) }
                                case .duplicate:
                                    await self.write(AcquirerProfile.answer(to: request, code: AcquirerProfile.Code.duplicateTransmission), outbound)
                                case .full:
                                    await self.write(AcquirerProfile.answer(to: request, code: AcquirerProfile.Code.systemMalfunction), outbound)
                                }
                            }
                        }
                    } catch let error as ISO8583Error {
                        // An unreadable frame: the stream cannot be trusted past it.
                        self.logger.notice("acquirer closes a connection on an unreadable frame", metadata: ["error": "\(error)"])
                        channel.close(promise: nil)
                    } catch {
                        self.logger.debug("acquirer connection ended", metadata: ["error": "\(error)"])
                    }
                }
            }
        } catch {
            logger.debug("acquirer connection closed", metadata: ["error": "\(error)"])
        }
    }

    /// One message: the faults, the decision on the world, a slow issuer's wait, the answer.
    private func handle(_ request: ISO8583Message, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, channel: any Channel,
                        inFlight: InFlight) async {
        defer { inFlight.leave(request[11]) }
        var metadata: Logger.Metadata = ["iso.mti": "\(request.mti)", "iso.stan": "\(request[11] ?? "-")"]
        if let number = request[2] { metadata["card"] = "\(CardMask.mask(number))" }
        let admitted = runtime.now()
        switch runtime.withWorld({ $0.admitCardMessage(now: admitted, networkManagement: request.mti.hasPrefix("08")) }) {
        case .closeConnection:
            logger.info("acquirer down: connection closed", metadata: metadata)
            channel.close(promise: nil)
        case .silence:
            logger.info("acquirer fault: message neither processed nor answered", metadata: metadata)
        case .malfunction(let delay):
            await runtime.pause(milliseconds: delay)
            guard !Task.isCancelled else { return }
            await write(AcquirerProfile.answer(to: request, code: AcquirerProfile.Code.systemMalfunction), outbound)
        case .proceed(let delay, let dropAnswer):
            await runtime.pause(milliseconds: delay)
            guard !Task.isCancelled, let answer = await process(request) else { return }
            metadata["iso.response_code"] = "\(answer[39] ?? "-")"
            if dropAnswer {
                logger.info("acquirer fault: answer dropped", metadata: metadata)
                return
            }
            logger.debug("acquirer answers", metadata: metadata)
            await write(answer, outbound)
        }
    }

    /// The world's answer, after waiting for a slow issuer when it has to.
    private func process(_ request: ISO8583Message) async -> ISO8583Message? {
        let now = runtime.now()
        let uptime = uptimeMilliseconds()
        switch runtime.withWorld({ $0.acquire(request, now: now, uptime: uptime) }) {
        case .answer(let answer):
            return answer
        case .awaitIssuer(let paymentID, let epoch, let milliseconds):
            await runtime.pause(milliseconds: milliseconds)
            guard !Task.isCancelled else { return nil }
            return runtime.withWorld { $0.issuerAnswered(paymentID: paymentID, epoch: epoch, request: request) }
        }
    }

    private func write(_ answer: ISO8583Message?, _ outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async {
        guard let answer else { return }
        do {
            let frame = try ISO8583Frame.frame(try answer.encoded())
            try await outbound.write(ByteBuffer(bytes: frame))
        } catch {
            logger.debug("acquirer answer not sent", metadata: ["iso.mti": "\(answer.mti)", "error": "\(error)"])
        }
    }

    private func uptimeMilliseconds() -> Int64 {
        let elapsed = started.duration(to: .now).components
        return elapsed.seconds * 1_000 + elapsed.attoseconds / 1_000_000_000_000_000
    }
}

/// The STANs of one connection's messages being handled: a second message with a STAN in
/// flight is a duplicate transmission (94); past the limit a message is refused (96).
final class InFlight: Sendable {
    enum Entry { case entered, duplicate, full }

    private let state = Mutex<(stans: Set<String>, count: Int)>(([], 0))

    func enter(_ stan: String?) -> Entry {
        state.withLock { state in
            guard state.count < AcquirerServer.maximumInFlightPerConnection else { return .full }
            if let stan {
                guard state.stans.insert(stan).inserted else { return .duplicate }
            }
            state.count += 1
            return .entered
        }
    }

    func leave(_ stan: String?) {
        state.withLock { state in
            if let stan { state.stans.remove(stan) }
            state.count -= 1
        }
    }
}
