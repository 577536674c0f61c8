import Hummingbird
import HummingbirdCore
import KoshCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1

/// A request whose body did not arrive in time; rendered as 408.
public struct RequestBodyTimeout: Error, Sendable {}

/// One connection's timers and phase, shared by its two guard handlers (same event loop).
final class ConnectionPhase {
    let limits: ConnectionLimits
    let registry: ConnectionRegistry
    /// Bytes of a request head arrived and the head is not complete yet.
    var headPending = false
    /// A head was read and its end not yet.
    var requestOpen = false
    /// Requests read whose response has not ended.
    var responsesOpen = 0
    /// A request refused at its head (413): everything else it sends is dropped.
    var refusing = false
    /// When the current wait began: the first byte of a head, the end of a head, the end of
    /// the last response. Each is nil when not waiting for it.
    var headStarted: NIODeadline?
    var bodyStarted: NIODeadline?
    var idleStarted: NIODeadline?
    /// One timer per connection, set for the earliest deadline and moved only when it fires
    /// (a busy keep-alive connection does not schedule and cancel timers on every request).
    var timer: Scheduled<Void>?
    var timerDeadline: NIODeadline?
    var bodyTimedOut = false
    /// Since when the client has not been taking the response (the channel's outbound buffer
    /// is over its high-water mark); nil while it reads.
    var stalledSince: NIODeadline?
    /// A response ended while its bytes were still queued: the connection goes idle once
    /// they drain, not before.
    var idleAfterDrain = false
    var rawContext: ChannelHandlerContext?
    var slot: ConnectionRegistry.Slot?

    init(limits: ConnectionLimits, registry: ConnectionRegistry) {
        self.limits = limits
        self.registry = registry
    }

    var isIdle: Bool { !headPending && !requestOpen && responsesOpen == 0 }

    func cancelTimers() {
        timer?.cancel(); timer = nil; timerDeadline = nil
        headStarted = nil; bodyStarted = nil; idleStarted = nil
    }

    /// The earliest deadline of what the connection waits for now.
    var nextDeadline: NIODeadline? {
        var next: NIODeadline?
        func consider(_ start: NIODeadline?, _ millis: Int64) {
            guard let start else { return }
            let deadline = start + .milliseconds(millis)
            if next == nil || deadline < next! { next = deadline }
        }
        if headPending { consider(headStarted, limits.headTimeoutMillis) }
        if requestOpen && !bodyTimedOut { consider(bodyStarted, limits.bodyTimeoutMillis) }
        if isIdle { consider(idleStarted, limits.idleTimeoutMillis) }
        consider(stalledSince, limits.sendTimeoutMillis)
        return next
    }

    /// Makes sure a timer fires no later than the next deadline.
    func arm() {
        guard let context = rawContext, let deadline = nextDeadline else { return }
        if let current = timerDeadline, current <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            timer = nil
            timerDeadline = nil
            expire(context)
        }
    }

    /// What a fired timer finds: a head or a body over its time, an idle connection over its
    /// time, or nothing yet (then the timer is set again).
    func expire(_ context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        if headPending, let started = headStarted, now >= started + .milliseconds(limits.headTimeoutMillis) {
            headPending = false
            refusing = true
            ConnectionMetrics.headTimeouts.increment()
            if responsesOpen == 0 {
                RawConnectionGuard.answerAndClose(context, status: "408 Request Timeout", error: RawConnectionGuard.headTimeoutError)
            } else {
                context.close(promise: nil)
            }
            return
        }
        if requestOpen, !bodyTimedOut, let started = bodyStarted, now >= started + .milliseconds(limits.bodyTimeoutMillis) {
            bodyTimedOut = true
            ConnectionMetrics.bodyTimeouts.increment()
            // The handler reading the body gets this error and answers 408; the connection
            // closes after that answer (and at the latest five seconds later).
            codecContext?.fireErrorCaught(RequestBodyTimeout())
            context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(5)) { context.close(promise: nil) }
            return
        }
        if let stalled = stalledSince, now >= stalled + .milliseconds(limits.sendTimeoutMillis) {
            // A client that does not read what it asked for holds the connection and the
            // queued response; it gets no more time than a slow body does.
            ConnectionMetrics.sendTimeouts.increment()
            context.close(promise: nil)
            return
        }
        if isIdle, let started = idleStarted, now >= started + .milliseconds(limits.idleTimeoutMillis) {
            ConnectionMetrics.idleClosed.increment()
            context.close(promise: nil)
            return
        }
        arm()
    }

    /// The request guard's context: errors fired from it reach the handler reading the body.
    var codecContext: ChannelHandlerContext?

    func enterIdle() {
        guard isIdle, idleStarted == nil else { return }
        idleStarted = .now()
        slot?.setIdle(true)
        if let slot { registry.wentIdle(slot) }
        arm()
    }

    /// The channel's outbound buffer crossed its high-water mark (the client stopped taking
    /// the response) or drained below the low one.
    func writabilityChanged(writable: Bool) {
        if writable {
            stalledSince = nil
            if idleAfterDrain {
                idleAfterDrain = false
                enterIdle()
            }
        } else if stalledSince == nil {
            stalledSince = .now()
            arm()
        }
    }

    func leaveIdle() {
        idleStarted = nil
        slot?.setIdle(false)
    }
}

/// First in the pipeline, on raw bytes: notices the first byte of a request head (which the
/// HTTP decoder does not report until the head is complete) and answers a head that takes
/// too long with 408.
final class RawConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let phase: ConnectionPhase

    init(phase: ConnectionPhase) { self.phase = phase }

    func handlerAdded(context: ChannelHandlerContext) {
        phase.rawContext = context
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    private var started = false
    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        phase.slot = phase.registry.register(context.channel)
        phase.enterIdle()
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase.cancelTimers()
        phase.registry.unregister(context.channel)
        phase.rawContext = nil
        phase.codecContext = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        phase.cancelTimers()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        phase.writabilityChanged(writable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Line breaks between requests are ignored (RFC 9112 §2.2), so they start no head.
        let onlyLineBreaks = unwrapInboundIn(data).readableBytesView.allSatisfy { $0 == 0x0D || $0 == 0x0A }
        if !onlyLineBreaks && !phase.requestOpen && !phase.headPending && !phase.refusing {
            phase.headPending = true
            phase.headStarted = .now()
            phase.leaveIdle()
        }
        context.fireChannelRead(data)
    }

    /// Every part decoded from this read has passed the request guard by now: set the timer
    /// for what the connection still waits for.
    func channelReadComplete(context: ChannelHandlerContext) {
        phase.arm()
        context.fireChannelReadComplete()
    }

    static let headTimeoutError = KoshError(.requestTimeout, "The request head was not received in time.", source: "NA", step: "NA",
                                            reason: "request_timeout")

    /// Writes a whole response below the HTTP encoder (only when no response is under way),
    /// then closes: first the output, so the client reads the answer even while it is still
    /// sending (closing both ways at once could reset the connection and lose the answer),
    /// and the rest two seconds later.
    static func answerAndClose(_ context: ChannelHandlerContext, status: String, error: KoshError) {
        let body = ErrorRendering.json(error).serialized()
        let text = "HTTP/1.1 \(status)\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n"
            + "Connection: close\r\n\r\n" + body
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: text)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { _ in context.close(mode: .output, promise: nil) }
        // Closed in two seconds whether or not the answer was taken (a client that reads
        // nothing would otherwise hold the connection).
        context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(2)) { context.close(promise: nil) }
    }
}

/// After the HTTP decoder, on request and response parts: refuses a declared body over the
/// limit at once, bounds the time a body may take, and tells the phase when a connection is
/// idle again.
final class RequestGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    var phase: ConnectionPhase?

    init() {}

    func handlerAdded(context: ChannelHandlerContext) {
        phase = (try? context.pipeline.syncOperations.handler(type: RawConnectionGuard.self))?.phase
        phase?.codecContext = context
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let phase else { return context.fireChannelRead(data) }
        let part = unwrapInboundIn(data)
        if phase.refusing { return }
        switch part {
        case .head(let head):
            phase.headPending = false
            phase.headStarted = nil
            phase.leaveIdle()
            if let declared = head.headers.first(name: "content-length"), let length = Int(declared), length > phase.limits.maximumBodyBytes {
                refuse(context, phase: phase, error: KoshError(.payloadTooLarge, "The request body must be at most \(phase.limits.maximumBodyBytes) bytes",
                                                               source: "NA", step: "NA", reason: "payload_too_large"), status: "413 Content Too Large")
                return
            }
            // Only chunked framing: with another coding (gzip, …) Kosh and a proxy in front of
            // it would read different bodies from the same bytes.
            let codings = head.headers["transfer-encoding"].flatMap { $0.split(separator: ",") }.map { String($0).trimmingCharacters(in: " \t").lowercased() }
            if !codings.isEmpty && codings != ["chunked"] {
                refuse(context, phase: phase, error: KoshError(.badRequest, "Transfer-Encoding must be chunked (no other coding is accepted).",
                                                               field: "Transfer-Encoding", source: "NA", step: "NA", reason: "malformed_request"),
                       status: "400 Bad Request")
                return
            }
            // HTTP/1.1 requires Host (RFC 9112 §3.2).
            if head.version == .http1_1 && head.headers["host"].count != 1 {
                refuse(context, phase: phase, error: KoshError(.badRequest, "An HTTP/1.1 request needs exactly one Host header.", field: "Host",
                                                               source: "NA", step: "NA", reason: "malformed_request"), status: "400 Bad Request")
                return
            }
            phase.requestOpen = true
            phase.responsesOpen += 1
            phase.bodyStarted = .now()
            phase.bodyTimedOut = false
        case .body:
            break
        case .end:
            phase.requestOpen = false
            phase.bodyStarted = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
        guard let phase, case .end = unwrapOutboundIn(data) else { return }
        phase.responsesOpen = max(0, phase.responsesOpen - 1)
        if context.channel.isWritable {
            phase.enterIdle()
        } else {
            phase.idleAfterDrain = true
        }
    }

    /// Answers a request refused at its head (413, 400), then closes: its body is never read.
    private func refuse(_ context: ChannelHandlerContext, phase: ConnectionPhase, error: KoshError, status: String) {
        (error.code == .payloadTooLarge ? ConnectionMetrics.refusedTooLarge : ConnectionMetrics.refusedMalformed).increment()
        phase.refusing = true
        phase.cancelTimers()
        if phase.responsesOpen == 0, let raw = phase.rawContext {
            RawConnectionGuard.answerAndClose(raw, status: status, error: error)
        } else {
            context.close(promise: nil)
        }
    }

    /// A malformed head (no request under way) is answered 400 in Razorpay's shape here;
    /// malformed framing inside a body reaches the handler reading it, which answers 400.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let phase, error is HTTPParserError, !phase.requestOpen, phase.responsesOpen == 0, !phase.refusing, let raw = phase.rawContext {
            phase.refusing = true
            phase.cancelTimers()
            ConnectionMetrics.refusedMalformed.increment()
            RawConnectionGuard.answerAndClose(raw, status: "400 Bad Request", error: KoshError(
                .badRequest, "The request is not valid HTTP/1.1.", source: "NA", step: "NA", reason: "malformed_request"))
            return
        }
        context.fireErrorCaught(error)
    }
}

/// Hummingbird's HTTP/1 channel with the two guards in front.
struct GuardedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let inner: HTTP1Channel
    let limits: ConnectionLimits
    let registry: ConnectionRegistry

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(RawConnectionGuard(phase: ConnectionPhase(limits: limits, registry: registry)))
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        // The request guard reads NIO's HTTP/1 parts (framing headers such as
        // Transfer-Encoding are gone once converted to HTTP types), so it sits just before
        // the conversion.
        return inner.setup(channel: channel, logger: logger).assumeIsolated().flatMapThrowing { value in
            let codec = try channel.pipeline.syncOperations.handler(type: HTTP1ToHTTPServerCodec.self)
            try channel.pipeline.syncOperations.addHandler(RequestGuard(), position: .before(codec))
            return value
        }.nonisolated()
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

public enum GuardedServer {
    /// The HTTP/1 server builder and server configuration with Kosh's connection guards.
    public static func make(address: BindAddress, serverName: String, limits: ConnectionLimits, registry: ConnectionRegistry)
        -> (HTTPServerBuilder, ApplicationConfiguration) {
        let builder = HTTPServerBuilder { responder in
            GuardedHTTP1Channel(inner: HTTP1Channel(responder: responder, configuration: .init()),
                                limits: limits, registry: registry)
        }
        let configuration = ApplicationConfiguration(address: address, serverName: serverName, backlog: 1_024,
                                                     availableConnectionsDelegate: RegistryAdmission(registry: registry))
        return (builder, configuration)
    }
}
