import Foundation
import Hummingbird
import KoshApp
import KoshFlows
import KoshCore
import KoshHTTP
import KoshStorage
import KoshTesting
import Logging
import Testing

/// The HTTP server as an attacker meets it: half heads, bodies that never come, declared
/// lengths over the limit, broken framing, and more connections than it should hold. Real
/// sockets against the production server builder; timeouts are short so that each case
/// waits on real time for about a second (the server's timers are what is under test).
@Suite("HTTP connection guards", .serialized, .timeLimit(.minutes(3)))
struct ConnectionGuardTests {
    struct Server {
        let port: Int
        let registry: ConnectionRegistry
        let task: Task<Void, any Error>
        let services: KoshServices
        /// A new merchant and its Basic credentials (base64 of key_id:key_secret).
        func merchant(_ name: String) async throws -> (MerchantCredentials, String) {
            let merchant = try await services.merchants.create(name: name)
            return (merchant, Data("\(merchant.keyID):\(merchant.keySecret)".utf8).base64EncodedString())
        }

        func stop() async throws {
            task.cancel()
            _ = try? await task.value
            try await services.db.close()
        }
    }

    static func start(maximumConnections: Int? = nil, headMillis: Int64 = 700, idleMillis: Int64 = 1_000,
                      sendMillis: Int64 = 30_000) async throws -> Server {
        let services = try await TestDatabases.services("sqlite")
        var limits = ConnectionLimits()
        limits.headTimeoutMillis = headMillis
        limits.bodyTimeoutMillis = 700
        limits.idleTimeoutMillis = idleMillis
        limits.sendTimeoutMillis = sendMillis
        limits.maximumConnections = maximumConnections
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "connection-guard-test")
        logger.logLevel = .warning
        let (app, registry) = KoshApplication.httpApplication(
            router: services.router(), host: "127.0.0.1", port: 0, limits: limits, logger: logger,
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) })
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        return Server(port: port, registry: registry, task: task, services: services)
    }

    @Test("a head that never completes is answered 408 and closed (slowloris)")
    func slowHead() async throws {
        let server = try await Self.start()
        let connection = try #require(RawConnection(port: server.port))
        connection.send("POST /v1/orders HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        let (text, closed) = await connection.readAll(timeout: 5)
        #expect(statusCode(text) == 408, "\(text)")
        #expect(responseBody(text).contains("\"reason\":\"request_timeout\""), "\(text)")
        #expect(closed)
        try await server.stop()
    }

    @Test("a keep-alive connection in use outlives the idle timeout; a slow head after it still gets 408")
    func keepAliveInUse() async throws {
        let server = try await Self.start()
        let connection = try #require(RawConnection(port: server.port))
        // Ten requests 200 ms apart: 2 s in all, twice the idle timeout, never idle for 1 s.
        for _ in 0..<10 {
            connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            let reply = await connection.readResponse(timeout: 5)
            #expect(statusCode(reply) == 200, "\(reply)")
            // Real time on purpose: the server's idle timeout runs on the wall clock (NIO timers).
            try await Task.sleep(for: .milliseconds(200))
        }
        connection.send("GET /healthz HTTP/1.1\r\nHo")
        let started = ContinuousClock.now
        let (text, closed) = await connection.readAll(timeout: 5)
        #expect(statusCode(text) == 408, "\(text)")
        #expect(closed)
        #expect(started.duration(to: .now) < .seconds(3))  // the head timeout (0.7 s), not the idle one
        try await server.stop()
    }

    @Test("a client that pipelines requests and never reads the answers is disconnected after the send timeout")
    func clientThatDoesNotRead() async throws {
        let server = try await Self.start(sendMillis: 700)
        let connection = try #require(RawConnection(port: server.port, receiveBuffer: 4_096))
        // /metrics answers a few KiB, so the unread answers fill the kernel's and the
        // server's buffers quickly (loopback send buffers grow to megabytes).
        let request = Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        var pipelined: [UInt8] = []
        for _ in 0..<2_000 { pipelined += request }
        var accepted = false
        for _ in 0..<500 where !accepted {
            accepted = server.registry.openConnections == 1
            // Real time on purpose: the listener accepting a real socket (up to 10 s).
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(accepted)
        // Keep the server's input full for a while, reading nothing back.
        let deadline = ContinuousClock.now + .seconds(30)
        var closed = false
        while ContinuousClock.now < deadline {
            _ = connection.sendWithoutWaiting(pipelined)
            if server.registry.openConnections == 0 { closed = true; break }
            // Real time on purpose: the send timeout (0.7 s) runs on the wall clock; 30 s of patience.
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(closed, "the connection of a client that reads nothing was still open after 30 s")
        try await server.stop()
    }

    @Test("at the cap with no idle connection, the next connection to go idle makes room for a waiting one")
    func capWithBusyConnections() async throws {
        // Heads may take 10 s here: only making room can let the probe in within the test.
        let server = try await Self.start(maximumConnections: 2, headMillis: 10_000, idleMillis: 60_000)
        let first = try #require(RawConnection(port: server.port))
        let second = try #require(RawConnection(port: server.port))
        first.send("GET /healthz HTTP/1.1\r\nHo")
        second.send("GET /healthz HTTP/1.1\r\nHo")
        // Real time on purpose: both connections are accepted and reading heads before the probe
        // queues, and the probe waits in the backlog before they go idle (real sockets, no hook to wait on).
        try await Task.sleep(for: .milliseconds(200))
        let probe = try #require(RawConnection(port: server.port))  // waits in the backlog
        probe.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        // Real time on purpose: the probe sits in the backlog before the two go idle.
        try await Task.sleep(for: .milliseconds(200))
        first.send("st: x\r\n\r\n")
        second.send("st: x\r\n\r\n")
        let started = ContinuousClock.now
        let reply = await probe.readResponse(timeout: 5)
        #expect(statusCode(reply) == 200, "\(reply)")
        #expect(started.duration(to: .now) < .seconds(5))
        try await server.stop()
    }

    @Test("line breaks between requests start no head: an idle connection gets no unasked 408")
    func lineBreaksAreNoHead() async throws {
        let server = try await Self.start(headMillis: 300, idleMillis: 5_000)
        let connection = try #require(RawConnection(port: server.port))
        connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\r\n")
        let reply = await connection.readResponse(timeout: 3)
        #expect(statusCode(reply) == 200, "\(reply)")
        let (rest, _) = await connection.readAll(timeout: 1)
        #expect(rest.isEmpty, "\(rest)")
        try await server.stop()
    }

    @Test("an idle keep-alive connection is closed without an answer")
    func idleClosed() async throws {
        let server = try await Self.start()
        let connection = try #require(RawConnection(port: server.port))
        connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        let first = await connection.readResponse(timeout: 5)
        #expect(statusCode(first) == 200, "\(first)")
        let (rest, closed) = await connection.readAll(timeout: 5)
        #expect(rest.isEmpty, "\(rest)")
        #expect(closed)
        try await server.stop()
    }

    @Test("a declared Content-Length over the limit is refused with 413 as soon as the head arrives")
    func declaredLengthTooLarge() async throws {
        let server = try await Self.start()
        let connection = try #require(RawConnection(port: server.port))
        connection.send("POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(APILimits.maximumBodyBytes + 1)\r\n\r\n{")
        let (text, closed) = await connection.readAll(timeout: 4)
        // 413, not the body timeout's 408: refused at the head, before any body was awaited.
        #expect(statusCode(text) == 413, "\(text)")
        #expect(responseBody(text).contains("payload_too_large"), "\(text)")
        #expect(closed)
        try await server.stop()
    }

    @Test("a body that stops coming is answered 408")
    func slowBody() async throws {
        let server = try await Self.start()
        let (_, auth) = try await server.merchant("Slow body")
        let connection = try #require(RawConnection(port: server.port))
        connection.send("POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \(auth)\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"amo")
        let (text, closed) = await connection.readAll(timeout: 8)
        #expect(statusCode(text) == 408, "\(text)")
        #expect(responseBody(text).contains("request_timeout"), "\(text)")
        #expect(closed)
        try await server.stop()
    }

    @Test("a body cut short, a chunk size zz, an overflowing chunk size: 400 with the error body, never 500",
          arguments: [
            "Content-Length: 50\r\n\r\n{\"amount\":",
            "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffffff\r\n{}\r\n0\r\n\r\n",
          ])
    func brokenFraming(_ framing: String) async throws {
        let server = try await Self.start()
        let (_, auth) = try await server.merchant("Framing")
        let connection = try #require(RawConnection(port: server.port))
        connection.send("POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \(auth)\r\nContent-Type: application/json\r\n" + framing)
        connection.finishSending()
        let (text, _) = await connection.readAll(timeout: 5)
        #expect(statusCode(text) == 400, "\(text)")
        #expect(responseBody(text).contains("\"code\":\"BAD_REQUEST_ERROR\""), "\(text)")
        try await server.stop()
    }

    @Test("request smuggling shapes are refused before any route runs", arguments: [
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n1f\r\n{\"amount\":5000,\"currency\":\"INR\"}\r\n0\r\n\r\n",
        "Content-Length: 32\r\nContent-Length: 5\r\n\r\n{\"amount\":5000,\"currency\":\"INR\"}",
        "Transfer-Encoding: gzip, chunked\r\n\r\n1f\r\n{\"amount\":5000,\"currency\":\"INR\"}\r\n0\r\n\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n1f\r\n{\"amount\":5000,\"currency\":\"INR\"}\r\n0\r\n\r\n",
        "Content-Length: -1\r\n\r\n{}",
        "Content-Length: 99999999999999999999999\r\n\r\n{}",
    ])
    func smuggling(_ framing: String) async throws {
        let server = try await Self.start()
        let (merchant, auth) = try await server.merchant("Smuggling")
        let connection = try #require(RawConnection(port: server.port))
        connection.send("POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \(auth)\r\nContent-Type: application/json\r\n" + framing)
        let (text, _) = await connection.readAll(timeout: 3)
        #expect([400, 413].contains(statusCode(text)), "\(text)")
        #expect(!text.contains("\"entity\":\"order\""), "\(text)")
        let orders = try await server.services.store.transaction { tx in try await tx.orders(merchantID: merchant.merchant.id, page: Page()) }
        #expect(orders.isEmpty)
        try await server.stop()
    }

    @Test("an HTTP/1.1 request without Host is 400")
    func missingHost() async throws {
        let server = try await Self.start()
        let connection = try #require(RawConnection(port: server.port))
        connection.send("GET /healthz HTTP/1.1\r\n\r\n")
        let (text, _) = await connection.readAll(timeout: 3)
        #expect(statusCode(text) == 400, "\(text)")
        try await server.stop()
    }

    @Test("a malformed request line is answered 400 in Razorpay's shape")
    func malformedHead() async throws {
        let server = try await Self.start()
        let connection = try #require(RawConnection(port: server.port))
        connection.send("GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        let (text, closed) = await connection.readAll(timeout: 5)
        #expect(statusCode(text) == 400, "\(text)")
        #expect(responseBody(text).contains("malformed_request"), "\(text)")
        #expect(closed)
        try await server.stop()
    }

    @Test("at the connection cap, idle connections make room: /healthz still answers")
    func capEvictsIdle() async throws {
        // Idle connections would stay a minute: only eviction can make room within the test.
        let server = try await Self.start(maximumConnections: 8, idleMillis: 60_000)
        var idle: [RawConnection] = []
        for _ in 0..<20 {
            if let connection = RawConnection(port: server.port) { idle.append(connection) }
        }
        // Twenty connections against a cap of eight: the listener holds the rest in its backlog.
        // Real time on purpose: the listener accepts what it will of real sockets.
        try await Task.sleep(for: .milliseconds(200))
        // NIO accepts up to four connections per wake-up of the listener (maxMessagesPerRead),
        // so the cap may be passed by three at most.
        #expect(server.registry.openConnections <= 8 + 3)
        for _ in 0..<3 {
            let probe = try #require(RawConnection(port: server.port))
            probe.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let reply = await probe.readResponse(timeout: 5)
            #expect(statusCode(reply) == 200, "\(reply)")
        }
        #expect(server.registry.openConnections <= 8 + 3)
        #expect(server.registry.evictedConnections > 0)
        _ = idle
        try await server.stop()
    }

    @Test("a wrong method on a known path is 405 with Allow")
    func methodNotAllowed() async throws {
        let server = try await Self.start()
        let connection = try #require(RawConnection(port: server.port))
        connection.send("DELETE /v1/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let reply = await connection.readResponse(timeout: 5)
        #expect(statusCode(reply) == 405, "\(reply)")
        #expect(reply.lowercased().contains("allow: get, head, post"), "\(reply)")
        let unknown = try #require(RawConnection(port: server.port))
        unknown.send("GET /v1/nothing-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(statusCode(await unknown.readResponse(timeout: 5)) == 404)
        try await server.stop()
    }

    @Test("the default cap stays under the descriptor limit", arguments: [256, 1_024, 20_000, 1_048_576])
    func defaultCap(_ limit: Int) {
        let cap = ConnectionLimits.defaultMaximumConnections(descriptorLimit: limit)
        #expect(cap < limit - 100)
        #expect(cap >= 16 && cap <= 10_000)
    }
}
