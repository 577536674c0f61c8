import KoshCore
import KoshISO8583
import Logging
import Metrics
import NIOCore
import NIOPosix
import Synchronization

/// Where the acquirer host is and the limits of the connections to it (docs/CARDS.md §2).
public struct ISO8583ClientConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Persistent connections in the pool (1…64), opened on first use.
    public var connections: Int
    /// Requests waiting for an answer on one connection (1…10,000); past that a request goes to
    /// another connection, or is refused (not sent) when every connection is that busy.
    public var maximumInFlightPerConnection: Int
    /// How long a request waits for its answer unless the caller says otherwise.
    public var requestTimeout: Duration
    public var connectTimeout: Duration
    /// How long a sign-on (0800/001) or an echo (0800/301) waits for its 0810.
    public var networkManagementTimeout: Duration
    /// A connection that received nothing for this long sends an echo; one whose echo goes
    /// unanswered is closed and replaced.
    public var echoInterval: Duration
    /// Largest message sent or accepted (at most `ISO8583Frame.maximumLength`); a bigger one
    /// arriving closes the connection.
    public var maximumFrameLength: Int
    /// The first STAN handed out (1…999,999); by default one drawn from the clock, so a restarted
    /// process does not reuse the STANs its predecessor may still have in flight.
    public var initialSTAN: Int?

    public init(host: String, port: Int, connections: Int = 4, maximumInFlightPerConnection: Int = 256,
                requestTimeout: Duration = .seconds(10), connectTimeout: Duration = .seconds(2),
                networkManagementTimeout: Duration = .seconds(5), echoInterval: Duration = .seconds(30),
                maximumFrameLength: Int = ISO8583Frame.maximumLength, initialSTAN: Int? = nil) {
        self.host = host
        self.port = port
        self.connections = connections
        self.maximumInFlightPerConnection = maximumInFlightPerConnection
        self.requestTimeout = requestTimeout
        self.connectTimeout = connectTimeout
        self.networkManagementTimeout = networkManagementTimeout
        self.echoInterval = echoInterval
        self.maximumFrameLength = maximumFrameLength
        self.initialSTAN = initialSTAN
    }
}

/// An answer and the STAN its request carried.
public struct ISO8583Answer: Sendable {
    public let stan: String
    public let message: ISO8583Message
}

/// STANs 000001…999999 in turn, wrapping, skipping any still in flight.
struct STANAllocator {
    static let highest = 999_999
    var next: Int
    var inFlight: Set<Int> = []

    init(first: Int) {
        precondition((1...Self.highest).contains(first), "a STAN is 1…999999")
        next = first
    }

    mutating func take() -> String? {
        guard inFlight.count < Self.highest else { return nil }
        while inFlight.contains(next) { advance() }
        let stan = next
        inFlight.insert(stan)
        advance()
        let digits = String(stan)
        return String(repeating: "0", count: 6 - digits.count) + digits
    }

    mutating func release(_ stan: String) {
        if let number = Int(stan) { inFlight.remove(number) }
    }

    private mutating func advance() { next = next == Self.highest ? 1 : next + 1 }
}

/// A pool of persistent TCP connections to the acquirer host, speaking ISO 8583 in 2-byte
/// length frames. Many requests are in flight on each connection; each gets a STAN of its own
/// and its answer is matched by STAN on the connection that carried it. Connections sign on
/// (0800/001) when opened, send echoes (0800/301) when idle, and are reopened on the next
/// request after they drop. Thread-safe.
public final class ISO8583Client: Sendable {
    enum Slot {
        case empty
        case connecting(EventLoopFuture<ISO8583Connection>)
        case ready(ISO8583Connection)
    }

    struct State {
        var slots: [Slot]
        var nextSlot = 0
        var stans: STANAllocator
        var connectionsOpened = 0
        var shutDown = false
    }

    public let configuration: ISO8583ClientConfiguration
    let group: any EventLoopGroup
    let clock: any KoshClock
    let logger: Logger
    let state: Mutex<State>
    let inFlight = Atomic<Int>(0)
    let inFlightGauge: Gauge

    public init(configuration: ISO8583ClientConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                clock: any KoshClock = SystemClock(), logger: Logger = Logger(label: "kosh.cards.iso8583"),
                metrics: any MetricsFactory = MetricsSystem.factory) {
        precondition((1...64).contains(configuration.connections), "the pool holds 1…64 connections")
        precondition((1...10_000).contains(configuration.maximumInFlightPerConnection), "1…10000 requests in flight per connection")
        precondition((64...ISO8583Frame.maximumLength).contains(configuration.maximumFrameLength), "frames of 64…8192 bytes")
        self.configuration = configuration
        self.group = group
        self.clock = clock
        self.logger = logger
        let first = configuration.initialSTAN ?? Int(clock.nowMillis() % Int64(STANAllocator.highest)) + 1
        self.state = Mutex(State(slots: Array(repeating: .empty, count: configuration.connections), stans: STANAllocator(first: first)))
        self.inFlightGauge = Gauge(label: "kosh_card_network_in_flight", factory: metrics)
    }

    /// Sends `request` with a new STAN in field 11 on one of the pool's connections and waits
    /// up to `timeout` (the configuration's `requestTimeout` when nil) for its answer.
    /// Throws `ISO8583ClientError` only: `.couldNotSend` when the acquirer surely never saw it.
    public func exchange(_ request: ISO8583Message, timeout: Duration? = nil) async throws -> ISO8583Answer {
        precondition(request.responseMTI != nil, "\(request.mti) is not a request")
        let stan = try takeSTAN()
        defer { releaseSTAN(stan) }
        var request = request
        request[11] = stan
        let connection = try await connection(stan: stan)
        inFlightGauge.record(inFlight.add(1, ordering: .relaxed).newValue)
        defer { inFlightGauge.record(inFlight.subtract(1, ordering: .relaxed).newValue) }
        let answer = try await connection.exchange(request, timeout: timeout ?? configuration.requestTimeout)
        return ISO8583Answer(stan: stan, message: answer)
    }

    /// Closes every connection; requests in flight fail as sent without an answer, later ones are not sent.
    public func shutdown() async {
        let (ready, connecting): ([ISO8583Connection], [EventLoopFuture<ISO8583Connection>]) = state.withLock { state in
            state.shutDown = true
            var connections: [ISO8583Connection] = []
            var connecting: [EventLoopFuture<ISO8583Connection>] = []
            for slot in state.slots {
                switch slot {
                case .empty: break
                case .connecting(let future): connecting.append(future)
                case .ready(let connection): connections.append(connection)
                }
            }
            state.slots = Array(repeating: .empty, count: state.slots.count)
            return (connections, connecting)
        }
        var connections = ready
        for future in connecting {
            if let connection = try? await future.get() { connections.append(connection) }
        }
        for connection in connections {
            connection.close()
            try? await connection.channel.closeFuture.get()
        }
    }

    /// How many connections have been opened since the start (reconnects count again).
    public var connectionsOpened: Int { state.withLock { $0.connectionsOpened } }

    // MARK: - STANs

    func takeSTAN() throws -> String {
        guard let stan = state.withLock({ $0.stans.take() }) else {
            throw ISO8583ClientError(.couldNotSend, stan: nil, "every STAN is in flight")
        }
        return stan
    }

    func releaseSTAN(_ stan: String) { state.withLock { $0.stans.release(stan) } }

    // MARK: - The pool

    /// The next slot in turn whose connection can take one more request, opening it if needed.
    func connection(stan: String) async throws -> ISO8583Connection {
        let choice: Result<EventLoopFuture<ISO8583Connection>, ISO8583ClientError> = state.withLock { state in
            guard !state.shutDown else { return .failure(ISO8583ClientError(.couldNotSend, stan: stan, "the client is shut down")) }
            let count = state.slots.count
            for offset in 0..<count {
                let index = (state.nextSlot + offset) % count
                if case .ready(let connection) = state.slots[index], connection.isClosed { state.slots[index] = .empty }
                switch state.slots[index] {
                case .ready(let connection):
                    guard connection.inFlight < configuration.maximumInFlightPerConnection else { continue }
                    state.nextSlot = index + 1
                    return .success(connection.channel.eventLoop.makeSucceededFuture(connection))
                case .connecting(let future):
                    state.nextSlot = index + 1
                    return .success(future)
                case .empty:
                    state.nextSlot = index + 1
                    return .success(startConnecting(slot: index, &state))
                }
            }
            return .failure(ISO8583ClientError(.couldNotSend, stan: stan, "every connection has its maximum in flight"))
        }
        do {
            return try await choice.get().get()
        } catch let error as ISO8583ClientError {
            throw ISO8583ClientError(.couldNotSend, stan: stan, error.reason)
        } catch {
            throw ISO8583ClientError(.couldNotSend, stan: stan, "\(error)")
        }
    }

    /// Under the lock: marks the slot as connecting and opens its connection in a task.
    func startConnecting(slot: Int, _ state: inout State) -> EventLoopFuture<ISO8583Connection> {
        state.connectionsOpened += 1
        let number = state.connectionsOpened
        let promise = group.next().makePromise(of: ISO8583Connection.self)
        state.slots[slot] = .connecting(promise.futureResult)
        Task {
            do {
                let connection = try await open(slot: slot, number: number)
                let keep = self.state.withLock { state in
                    guard !state.shutDown else { return false }
                    state.slots[slot] = connection.isClosed ? .empty : .ready(connection)
                    return true
                }
                if keep { startEcho(connection) } else { connection.close() }
                promise.succeed(connection)
            } catch {
                self.state.withLock { state in
                    if case .connecting = state.slots[slot] { state.slots[slot] = .empty }
                }
                logger.warning("could not open an ISO 8583 connection",
                               metadata: ["iso8583.connection": "\(number)", "error": "\(error)"])
                promise.fail(error)
            }
        }
        return promise.futureResult
    }

    /// Connects, installs the framing and signs on (0800/001, answered 00).
    func open(slot: Int, number: Int) async throws -> ISO8583Connection {
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(TimeAmount(configuration.connectTimeout))
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .connect(host: configuration.host, port: configuration.port).get()
        } catch {
            throw ISO8583ClientError(.couldNotSend, stan: nil, "cannot connect to \(configuration.host):\(configuration.port): \(error)")
        }
        let connection = ISO8583Connection(slot: slot, number: number, channel: channel,
                                           maximumInFlight: configuration.maximumInFlightPerConnection,
                                           maximumFrameLength: configuration.maximumFrameLength, logger: logger)
        do {
            try await channel.pipeline.addHandler(ISO8583FrameHandler(connection: connection)).get()
        } catch {
            channel.close(promise: nil)
            throw ISO8583ClientError(.couldNotSend, stan: nil, "cannot set up the connection: \(error)")
        }
        channel.closeFuture.whenComplete { [self] _ in
            connection.closed()
            self.closed(connection)
        }
        do {
            let answer = try await networkManagement("001", on: connection)
            guard answer[39] == "00" else {
                throw ISO8583ClientError(.couldNotSend, stan: answer[11], "the acquirer refused the sign-on (\(answer[39] ?? "no response code"))")
            }
        } catch {
            connection.close()
            let failure = error as? ISO8583ClientError
            throw ISO8583ClientError(.couldNotSend, stan: failure?.stan, "sign-on: \(failure?.reason ?? "\(error)")")
        }
        logger.info("ISO 8583 connection signed on", metadata: ["iso8583.connection": "\(number)", "iso8583.slot": "\(slot)"])
        return connection
    }

    func closed(_ connection: ISO8583Connection) {
        state.withLock { state in
            if case .ready(let current) = state.slots[connection.slot], current === connection { state.slots[connection.slot] = .empty }
        }
        logger.info("ISO 8583 connection closed", metadata: ["iso8583.connection": "\(connection.number)"])
    }

    /// 0800 with network management code `code` (001 sign-on, 301 echo) on one connection.
    func networkManagement(_ code: String, on connection: ISO8583Connection) async throws -> ISO8583Message {
        let stan = try takeSTAN()
        defer { releaseSTAN(stan) }
        let message = ISO8583Message(mti: "0800", fields: [7: CardMessageTime(clock.now).transmission, 11: stan, 70: code])
        return try await connection.exchange(message, timeout: configuration.networkManagementTimeout)
    }

    /// Every `echoInterval` in which the connection received nothing: an echo. An echo without
    /// an answer closes the connection and opens another in its slot.
    func startEcho(_ connection: ISO8583Connection) {
        let interval = configuration.echoInterval
        let task = Task { [self] in
            while !connection.isClosed {
                let mark = connection.lastReceived
                do { try await Task.sleep(for: interval) } catch { return }
                guard !connection.isClosed, connection.lastReceived == mark else { continue }
                do {
                    _ = try await networkManagement("301", on: connection)
                } catch {
                    guard !connection.isClosed, !Task.isCancelled else { return }
                    logger.warning("ISO 8583 echo unanswered: replacing the connection",
                                   metadata: ["iso8583.connection": "\(connection.number)", "error": "\(error)"])
                    connection.close()
                    try? await connection.channel.closeFuture.get()
                    replace(slot: connection.slot)
                    return
                }
            }
        }
        connection.echoTask.withLock { $0 = task }
    }

    /// Opens a connection in an emptied slot now, rather than on the next request.
    func replace(slot: Int) {
        state.withLock { state in
            guard !state.shutDown, case .empty = state.slots[slot] else { return }
            _ = startConnecting(slot: slot, &state)
        }
    }
}
