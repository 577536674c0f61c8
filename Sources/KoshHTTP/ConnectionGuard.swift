import Hummingbird
import HummingbirdCore
import KoshCore
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import Synchronization

/// What one client connection may hold of the server, and for how long. Unauthenticated
/// clients reach this code, so every wait has an end and the number of connections a cap.
public struct ConnectionLimits: Sendable {
    /// From the first byte of a request to the end of its head (`KOSH_HTTP_HEAD_TIMEOUT_MS`).
    /// A head not complete by then is answered 408 and the connection closed (slowloris).
    public var headTimeoutMillis: Int64 = 10_000
    /// From the end of the head to the end of the body (`KOSH_HTTP_BODY_TIMEOUT_MS`): a body
    /// that never arrives is answered 408.
    public var bodyTimeoutMillis: Int64 = 30_000
    /// A keep-alive connection with no request is closed after this (`KOSH_HTTP_IDLE_TIMEOUT_MS`).
    public var idleTimeoutMillis: Int64 = 60_000
    /// A client that stops taking a response (its unread bytes fill the server's buffer) is
    /// disconnected after this (`KOSH_HTTP_SEND_TIMEOUT_MS`).
    public var sendTimeoutMillis: Int64 = 30_000
    /// Open client connections at most (`KOSH_HTTP_MAX_CONNECTIONS`); `nil` takes the default
    /// below, which stays under the process's descriptor limit. The listener stops accepting
    /// at the cap; one wake-up of it accepts up to four connections (NIO's maxMessagesPerRead),
    /// so the count can pass the cap by three, which the descriptor reserve absorbs.
    public var maximumConnections: Int?
    /// Largest request body; a declared `Content-Length` above it is refused with 413 when the
    /// head arrives, without waiting for the body.
    public var maximumBodyBytes: Int = APILimits.maximumBodyBytes

    public init() {}

    /// The most connections that leave room, under the descriptor limit, for what the
    /// database, the rails' and webhooks' clients, the in-process sandbox and the runtime need
    /// (a quarter of the limit, at least 128). A process that runs out of descriptors does not
    /// just refuse connections: libdispatch's worker-pool monitor, which the Swift runtime uses
    /// on Linux, traps (SIGILL) when it cannot open /proc, so the cap must hold even when an
    /// operator asks for more.
    public static func safeMaximumConnections(descriptorLimit: Int) -> Int {
        max(16, descriptorLimit - max(128, descriptorLimit / 4))
    }

    /// The default cap: the safe maximum, and never more than 10,000.
    public static func defaultMaximumConnections(descriptorLimit: Int) -> Int {
        min(10_000, safeMaximumConnections(descriptorLimit: descriptorLimit))
    }

    /// The cap in force: what was configured (or the default), never above the safe maximum.
    public func effectiveMaximumConnections(descriptorLimit: Int) -> Int {
        min(maximumConnections ?? Self.defaultMaximumConnections(descriptorLimit: descriptorLimit),
            Self.safeMaximumConnections(descriptorLimit: descriptorLimit))
    }
}

/// Every open client connection of one server: the cap, and which connections are idle, so
/// that at the cap a new client can take the place of the connection idle the longest
/// instead of waiting (a server full of idle keep-alive connections still answers /healthz).
public final class ConnectionRegistry: Sendable {
    /// One open connection. Its idle mark changes twice a request, so it is an atomic of its
    /// own rather than a field behind the registry's lock (no lock shared by all connections
    /// on the request path).
    final class Slot: Sendable {
        let channel: any Channel
        /// Uptime in nanoseconds when the connection went idle; 0 while it serves a request.
        let idleSince = Atomic<UInt64>(0)
        let evicting = Atomic<Bool>(false)
        let openedAt = NIODeadline.now().uptimeNanoseconds

        init(channel: any Channel) { self.channel = channel }

        func setIdle(_ idle: Bool) {
            idleSince.store(idle ? max(1, NIODeadline.now().uptimeNanoseconds) : 0, ordering: .relaxed)
        }
    }

    struct State {
        var open = 0
        var slots: [ObjectIdentifier: Slot] = [:]
        var evicting = 0
        var evicted = 0
    }

    public let maximum: Int
    let state = Mutex(State())
    /// The listener is parked at the cap with no idle connection to close: the next
    /// connection to go idle is closed at once to make room (the listener is asked again
    /// only when a connection closes).
    let starving = Atomic<Bool>(false)

    public init(maximum: Int) {
        precondition(maximum > 0)
        self.maximum = maximum
    }

    /// Connections open now.
    public var openConnections: Int { state.withLock { $0.open } }
    /// Idle connections closed to make room for new ones, since start.
    public var evictedConnections: Int { state.withLock { $0.evicted } }

    func accepted() { ConnectionMetrics.open.record(state.withLock { $0.open += 1; return $0.open }) }
    func released() { ConnectionMetrics.open.record(state.withLock { $0.open -= 1; return $0.open }) }

    func register(_ channel: any Channel) -> Slot {
        let slot = Slot(channel: channel)
        slot.setIdle(true)
        state.withLock { $0.slots[ObjectIdentifier(channel)] = slot }
        return slot
    }

    func unregister(_ channel: any Channel) {
        state.withLock { state in
            if let slot = state.slots.removeValue(forKey: ObjectIdentifier(channel)), slot.evicting.load(ordering: .relaxed) {
                state.evicting -= 1
                state.evicted += 1
                ConnectionMetrics.evicted.increment()
            }
        }
    }

    /// Whether to accept another connection now. At the cap, closes the connection idle the
    /// longest (one at a time); the listener accepts again when it has closed. Only at the
    /// cap does this walk the connections.
    func admit() -> Bool {
        let victim: Slot? = state.withLock { state in
            if state.open < maximum { return nil }
            guard state.evicting == 0 else { return nil }
            var oldest: (slot: Slot, since: UInt64)?
            // A connection accepted within the last second counts as idle only after that:
            // its first request may not have been read yet (the listener asks again right
            // after every accept, and would otherwise close the newcomer it just let in).
            let newborn = NIODeadline.now().uptimeNanoseconds &- 1_000_000_000
            for slot in state.slots.values {
                let since = slot.idleSince.load(ordering: .relaxed)
                guard since != 0, slot.openedAt < newborn, !slot.evicting.load(ordering: .relaxed) else { continue }
                if oldest == nil || since < oldest!.since { oldest = (slot, since) }
            }
            guard let oldest else { return nil }
            oldest.slot.evicting.store(true, ordering: .relaxed)
            state.evicting += 1
            return oldest.slot
        }
        if let victim { evict(victim) }
        let admitted = state.withLock { $0.open < maximum }
        starving.store(!admitted && victim == nil, ordering: .relaxed)
        return admitted
    }

    /// Closes an idle connection on its own event loop, after checking there that it is
    /// still idle (a request may have arrived since it was chosen); if not, the eviction is
    /// called off and the next connection to go idle makes room instead.
    func evict(_ slot: Slot) {
        slot.channel.eventLoop.execute { [self] in
            if slot.idleSince.load(ordering: .relaxed) != 0 {
                slot.channel.close(promise: nil)
            } else {
                slot.evicting.store(false, ordering: .relaxed)
                state.withLock { $0.evicting -= 1 }
                starving.store(true, ordering: .relaxed)
            }
        }
    }

    /// While the listener is parked at the cap, asks it again four times a second: a
    /// connection that was too new to close, or busy, may be idle by now (otherwise the
    /// listener is asked only when a connection closes). Called once the server listens.
    public func watch(listener: any Channel) {
        listener.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(250), delay: .milliseconds(250)) { [self] task in
            guard listener.isActive else { task.cancel(); return }
            if starving.load(ordering: .relaxed) { listener.read() }
        }
    }

    /// A connection went idle: if the listener is parked at the cap, this one makes room.
    func wentIdle(_ slot: Slot) {
        guard starving.load(ordering: .relaxed), slot.openedAt < NIODeadline.now().uptimeNanoseconds &- 1_000_000_000 else { return }
        let chosen = state.withLock { state -> Bool in
            guard state.evicting == 0, !slot.evicting.load(ordering: .relaxed) else { return false }
            slot.evicting.store(true, ordering: .relaxed)
            state.evicting += 1
            return true
        }
        if chosen {
            starving.store(false, ordering: .relaxed)
            slot.channel.close(promise: nil)
        }
    }
}

/// What the guards count, for `/metrics` (created once, fixed dimensions).
enum ConnectionMetrics {
    static let open = Gauge(label: "kosh_http_open_connections")
    static let evicted = Counter(label: "kosh_http_connections_evicted_total")
    static let headTimeouts = Counter(label: "kosh_http_request_timeouts_total", dimensions: [("phase", "head")])
    static let bodyTimeouts = Counter(label: "kosh_http_request_timeouts_total", dimensions: [("phase", "body")])
    static let idleClosed = Counter(label: "kosh_http_idle_connections_closed_total")
    static let sendTimeouts = Counter(label: "kosh_http_request_timeouts_total", dimensions: [("phase", "send")])
    static let refusedTooLarge = Counter(label: "kosh_http_requests_refused_total", dimensions: [("reason", "payload_too_large")])
    static let refusedMalformed = Counter(label: "kosh_http_requests_refused_total", dimensions: [("reason", "malformed_request")])
}

/// The listener's side of the cap: Hummingbird stops accepting while this says no.
struct RegistryAdmission: AvailableConnectionsDelegate {
    let registry: ConnectionRegistry
    mutating func connectionOpened() { registry.accepted() }
    mutating func connectionClosed() { registry.released() }
    func isAcceptingNewConnections() -> Bool { registry.admit() }
}

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
