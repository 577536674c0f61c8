import NIOCore
import NIOPosix
import Synchronization

/// The load tool's lean HTTP/1.1 client: one keep-alive connection per worker, requests written
/// as prepared bytes, answers parsed just enough (status, Content-Length or chunked body).
/// AsyncHTTPClient costs the tool about as much CPU per request as the server spends on it; on a
/// 2-core machine shared with the server that caps what can be measured. Plain `http://` only.
struct LeanTarget: Sendable {
    let host: String
    let port: Int
    /// Prefix every request starts with after its request line: Host and Authorization.
    let fixedHeaders: String

    init(url: String, authorization: String?) throws {
        guard url.hasPrefix("http://") else { throw LeanHTTPError("the lean client speaks plain http:// only (use --client ahc)") }
        let authority = url.dropFirst("http://".count).prefix { $0 != "/" }
        let parts = authority.split(separator: ":", maxSplits: 1)
        guard let host = parts.first, !host.isEmpty else { throw LeanHTTPError("no host in \(url)") }
        let port = parts.count == 2 ? Int(parts[1]) : 80
        guard let port, (1...65_535).contains(port) else { throw LeanHTTPError("bad port in \(url)") }
        self.host = String(host)
        self.port = port
        var headers = "Host: \(authority)\r\n"
        if let authorization { headers += "Authorization: \(authorization)\r\n" }
        self.fixedHeaders = headers
    }
}

struct LeanHTTPError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One connection, used by one task at a time (not shared): `send` writes a request and reads
/// its answer. After a transport error it is `broken` and must be replaced.
final class LeanConnection {
    private var iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    private let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    private let target: LeanTarget
    private var pending = ByteBuffer()
    private(set) var broken = false
    static let maximumAnswer = 1 << 20

    init(iterator: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>, target: LeanTarget) {
        self.iterator = iterator
        self.outbound = outbound
        self.target = target
    }

    /// Opens a connection, runs `body` with it, closes it.
    static func with<T>(_ target: LeanTarget, _ body: (LeanConnection) async throws -> T) async throws -> T {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .connect(host: target.host, port: target.port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await body(LeanConnection(iterator: inbound.makeAsyncIterator(), outbound: outbound, target: target))
        }
    }

    /// One request and its answer: (status, body).
    func send(method: String, path: String, body: String?) async throws -> (Int, ByteBuffer) {
        do {
            var request = "\(method) \(path) HTTP/1.1\r\n\(target.fixedHeaders)"
            if let body {
                request += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            } else {
                request += "\r\n"
            }
            try await outbound.write(ByteBuffer(string: request))
            return try await readAnswer()
        } catch {
            broken = true
            throw error
        }
    }

    private func more() async throws {
        guard var chunk = try await iterator.next() else { throw LeanHTTPError("connection closed by the server") }
        guard pending.readableBytes + chunk.readableBytes <= Self.maximumAnswer else { throw LeanHTTPError("answer over 1 MiB") }
        pending.writeBuffer(&chunk)
        if pending.readerIndex > 64 * 1024 { pending.discardReadBytes() }
    }

    /// Index (relative to the reader index) just past the first CRLF CRLF, if there is one.
    private func headerEnd() -> Int? {
        let view = pending.readableBytesView
        var i = view.startIndex
        while i + 3 < view.endIndex {
            if view[i] == 13 && view[i + 1] == 10 && view[i + 2] == 13 && view[i + 3] == 10 { return i - view.startIndex + 4 }
            i += 1
        }
        return nil
    }

    private func readAnswer() async throws -> (Int, ByteBuffer) {
        var end = headerEnd()
        while end == nil {
            try await more()
            end = headerEnd()
        }
        let head = pending.readString(length: end!)!
        guard head.hasPrefix("HTTP/1."), head.utf8.count >= 12, let status = Int(head.dropFirst(9).prefix(3)) else {
            throw LeanHTTPError("not an HTTP answer: \(head.prefix(40))")
        }
        var contentLength: Int?
        var chunked = false
        var close = false
        for line in head.split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingPrefix(" ")
            switch name {
            case "content-length": contentLength = Int(value)
            case "transfer-encoding": chunked = value.lowercased().contains("chunked")
            case "connection": close = value.lowercased() == "close"
            default: break
            }
        }
        var body = ByteBuffer()
        if chunked {
            while true {
                var lineEnd = pending.readableBytesView.firstIndex(of: 10)
                while lineEnd == nil {
                    try await more()
                    lineEnd = pending.readableBytesView.firstIndex(of: 10)
                }
                let sizeLine = pending.readString(length: lineEnd! - pending.readerIndex + 1)!
                guard let size = Int(sizeLine.prefix { $0.isHexDigit }, radix: 16) else { throw LeanHTTPError("bad chunk size") }
                while pending.readableBytes < size + 2 { try await more() }
                var chunk = pending.readSlice(length: size)!
                body.writeBuffer(&chunk)
                pending.moveReaderIndex(forwardBy: 2)
                if size == 0 { break }
            }
        } else if let length = contentLength {
            guard length <= Self.maximumAnswer else { throw LeanHTTPError("answer over 1 MiB") }
            while pending.readableBytes < length { try await more() }
            body = pending.readSlice(length: length)!
        } else {
            throw LeanHTTPError("answer without Content-Length or chunked encoding")
        }
        if close { broken = true }
        return (status, body)
    }
}

/// Open loop: lifecycle start times handed to whichever worker (connection) is free.
final class StartQueue: Sendable {
    private struct State {
        var starts: [ContinuousClock.Instant] = []
        var head = 0
        var waiters: [CheckedContinuation<ContinuousClock.Instant?, Never>] = []
        var finished = false
    }
    private let state = Mutex(State())

    /// Queues `start`; true when no worker was waiting for it (the caller may add one).
    func push(_ start: ContinuousClock.Instant) -> Bool {
        let waiter: CheckedContinuation<ContinuousClock.Instant?, Never>? = state.withLock { s in
            if !s.waiters.isEmpty { return s.waiters.removeFirst() }
            if s.head > 4_096 && s.head * 2 > s.starts.count {
                s.starts.removeFirst(s.head)
                s.head = 0
            }
            s.starts.append(start)
            return nil
        }
        waiter?.resume(returning: start)
        return waiter == nil
    }

    /// The next start to run, or nil once finished.
    func next() async -> ContinuousClock.Instant? {
        await withCheckedContinuation { continuation in
            let ready: ContinuousClock.Instant?? = state.withLock { s in
                if s.head < s.starts.count {
                    s.head += 1
                    return .some(s.starts[s.head - 1])
                }
                if s.finished { return .some(nil) }
                s.waiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// No more starts: waiting workers get nil; starts already queued are still handed out
    /// (after the measured window, so they are not counted), as the other client finishes the
    /// lifecycles it started.
    func finish() {
        let waiters = state.withLock { s in
            s.finished = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume(returning: nil) }
    }
}
