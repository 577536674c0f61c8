import KoshISO8583
import Logging
import NIOCore
import Synchronization

/// Why an exchange with the acquirer gave no answer. The two kinds matter for money:
/// `couldNotSend` means the acquirer surely never saw the request (safe to retry or fail over);
/// `sentNoAnswer` means it may have acted on it (an authorisation then needs a reversal).
/// The description never holds card data: only the STAN and what went wrong.
public struct ISO8583ClientError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// Never written to a connection: no connection could be had, the pool was full or shut
        /// down, the message could not be encoded, or the channel was closed before the write.
        case couldNotSend
        /// Written (or possibly written), then no answer: timed out, or the connection dropped.
        case sentNoAnswer
    }

    public let kind: Kind
    /// The STAN the request carried (nil when none was assigned yet).
    public let stan: String?
    /// True when the answer did not come within the request's timeout (else the connection dropped).
    public let timedOut: Bool
    public let reason: String

    init(_ kind: Kind, stan: String?, timedOut: Bool = false, _ reason: String) {
        self.kind = kind
        self.stan = stan
        self.timedOut = timedOut
        self.reason = reason
    }

    public var description: String {
        switch kind {
        case .couldNotSend: "ISO 8583 request not sent\(stan.map { " (STAN \($0))" } ?? ""): \(reason)"
        case .sentNoAnswer: "ISO 8583 request sent, no answer (STAN \(stan ?? "?")): \(reason)"
        }
    }
}

/// One persistent TCP connection to the acquirer: requests in flight keyed by STAN, answers
/// matched on arrival, a timer per request. Thread-safe; the channel handler only feeds it bytes.
final class ISO8583Connection: Sendable {
    struct Pending {
        let serial: UInt64
        let expectedMTI: String
        let promise: EventLoopPromise<ISO8583Message>
        let timer: Scheduled<Void>
    }

    struct State {
        var reader = ISO8583FrameReader()
        var pending: [String: Pending] = [:]
        var serial: UInt64 = 0
        var closed = false
        var lastReceived = NIODeadline.now()
    }

    /// The pool's slot it fills, and a number unique within the client (for logs).
    let slot: Int
    let number: Int
    let channel: any Channel
    let maximumInFlight: Int
    let maximumFrameLength: Int
    let logger: Logger
    let state = Mutex(State())
    let echoTask = Mutex<Task<Void, Never>?>(nil)

    init(slot: Int, number: Int, channel: any Channel, maximumInFlight: Int, maximumFrameLength: Int, logger: Logger) {
        self.slot = slot
        self.number = number
        self.channel = channel
        self.maximumInFlight = maximumInFlight
        self.maximumFrameLength = maximumFrameLength
        var logger = logger
        logger[metadataKey: "iso8583.connection"] = "\(number)"
        self.logger = logger
    }

    var inFlight: Int { state.withLock { $0.pending.count } }
    var isClosed: Bool { state.withLock { $0.closed } }
    var lastReceived: NIODeadline { state.withLock { $0.lastReceived } }

    /// Sends `message` (its field 11 already set) and waits for the answer with the same STAN
    /// and the response MTI. Throws `ISO8583ClientError` only.
    func exchange(_ message: ISO8583Message, timeout: Duration) async throws -> ISO8583Message {
        guard let stan = message[11], let expected = message.responseMTI else {
            preconditionFailure("an ISO 8583 request needs a STAN and a request MTI")
        }
        let bytes: [UInt8]
        do {
            let encoded = try message.encoded()
            guard encoded.count <= maximumFrameLength else {
                throw ISO8583Error("a message of \(encoded.count) bytes is over the \(maximumFrameLength)-byte limit")
            }
            bytes = try ISO8583Frame.frame(encoded)
        } catch {
            // ISO8583Error names fields and limits, never their values.
            throw ISO8583ClientError(.couldNotSend, stan: stan, "\(message.mti) could not be encoded: \(error)")
        }
        let promise = channel.eventLoop.makePromise(of: ISO8583Message.self)
        let registration: Result<UInt64, ISO8583ClientError> = state.withLock { state in
            if state.closed { return .failure(ISO8583ClientError(.couldNotSend, stan: stan, "the connection is closed")) }
            if state.pending.count >= maximumInFlight {
                return .failure(ISO8583ClientError(.couldNotSend, stan: stan, "\(maximumInFlight) requests in flight on the connection"))
            }
            precondition(state.pending[stan] == nil, "STAN \(stan) is already in flight")
            state.serial += 1
            let serial = state.serial
            let timer = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { [self] in
                self.fail(stan: stan, serial: serial,
                          ISO8583ClientError(.sentNoAnswer, stan: stan, timedOut: true, "no answer to \(message.mti) within \(timeout)"))
            }
            state.pending[stan] = Pending(serial: serial, expectedMTI: expected, promise: promise, timer: timer)
            return .success(serial)
        }
        let serial = try registration.get()
        channel.writeAndFlush(ByteBuffer(bytes: bytes)).whenFailure { [self] error in
            // A closed channel refuses the write before any byte leaves; anything else may have sent part of it.
            let neverSent = (error as? ChannelError) == .ioOnClosedChannel
            self.fail(stan: stan, serial: serial,
                      ISO8583ClientError(neverSent ? .couldNotSend : .sentNoAnswer, stan: stan, "writing \(message.mti) failed: \(error)"))
        }
        do {
            return try await promise.futureResult.get()
        } catch let error as ISO8583ClientError {
            throw error
        } catch {
            throw ISO8583ClientError(.sentNoAnswer, stan: stan, "\(error)")
        }
    }

    /// Fails the request `stan` if it is still the one registered under `serial`.
    func fail(stan: String, serial: UInt64, _ error: ISO8583ClientError) {
        let entry: Pending? = state.withLock { state in
            guard let entry = state.pending[stan], entry.serial == serial else { return nil }
            state.pending[stan] = nil
            return entry
        }
        guard let entry else { return }
        entry.timer.cancel()
        entry.promise.fail(error)
    }

    /// Bytes from the socket (on the channel's event loop).
    func received(_ bytes: ByteBufferView) {
        var answers: [(EventLoopPromise<ISO8583Message>, ISO8583Message)] = []
        var unmatched: [ISO8583Message] = []
        var undecodable = 0
        var fatal: String?
        state.withLock { state in
            state.lastReceived = .now()
            let frames: [[UInt8]]
            do {
                frames = try state.reader.append(bytes)
            } catch {
                fatal = "\(error)"
                return
            }
            for frame in frames {
                guard frame.count <= maximumFrameLength else {
                    fatal = "a frame of \(frame.count) bytes is over the \(maximumFrameLength)-byte limit"
                    return
                }
                guard let message = try? ISO8583Message(decoding: frame) else {
                    undecodable += 1
                    continue
                }
                guard let stan = message[11], let entry = state.pending[stan], entry.expectedMTI == message.mti else {
                    unmatched.append(message)
                    continue
                }
                state.pending[stan] = nil
                entry.timer.cancel()
                answers.append((entry.promise, message))
            }
        }
        for message in unmatched {
            // Only the MTI, STAN and response code: an answer may carry card data in other fields.
            logger.warning("late or unmatched ISO 8583 answer dropped",
                           metadata: ["iso8583.mti": "\(message.mti)", "iso8583.stan": "\(message[11] ?? "-")",
                                      "iso8583.response_code": "\(message[39] ?? "-")"])
        }
        if undecodable > 0 { logger.warning("undecodable ISO 8583 message dropped", metadata: ["count": "\(undecodable)"]) }
        for (promise, message) in answers { promise.succeed(message) }
        if let fatal {
            logger.error("closing the ISO 8583 connection: bad framing", metadata: ["error": "\(fatal)"])
            channel.close(promise: nil)
        }
    }

    /// The channel closed: every request in flight fails as sent without an answer.
    func closed() {
        let pending: [String: Pending] = state.withLock { state in
            state.closed = true
            defer { state.pending = [:] }
            return state.pending
        }
        echoTask.withLock { $0?.cancel() }
        for (stan, entry) in pending {
            entry.timer.cancel()
            entry.promise.fail(ISO8583ClientError(.sentNoAnswer, stan: stan, "the connection closed before the answer"))
        }
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// Feeds the bytes of one connection to its `ISO8583Connection`.
final class ISO8583FrameHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    let connection: ISO8583Connection

    init(connection: ISO8583Connection) { self.connection = connection }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        connection.received(buffer.readableBytesView)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.logger.warning("ISO 8583 connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
