import Foundation
import KoshCore
import KoshJSON
import Testing

/// `kosh serve` held at its open-file limit by idle connections. A process that runs out of
/// descriptors dies: libdispatch's worker-pool monitor traps (SIGILL, exit 132) when it
/// cannot open /proc, 15–30 s after the last descriptor is taken (reproduced with 19,980 idle
/// connections against the 20,000 limit). The cap keeps a reserve even when the operator
/// asks for more, and at the cap the longest-idle connection makes room for a new one.
///
/// Waits on real time (20 s): what is under test is that the process survives while held at
/// the limit, which only the passing of time can show.
@Suite("kosh serve at its descriptor limit", .serialized, .timeLimit(.minutes(3)))
struct DescriptorLimitTests {
    @Test("600 idle connections against a 512-descriptor process: it stays up, /healthz and the API answer")
    func heldAtTheLimit() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else {
            Issue.record("prlimit (util-linux) is needed to run kosh serve under a low descriptor limit")
            return
        }
        let dir = try CommandLineTests.scratch()
        #expect(try CommandLineTests.run(["migrate"], in: dir).status == 0)  // only serve and migrate create a database
        let created = try CommandLineTests.run(["merchant", "create", "--name", "Limits"], in: dir)
        #expect(created.status == 0, "\(created.stderr)")
        let credentials = try JSON.parse(created.stdout)
        guard case .string(let keyID)? = credentials["key_id"], case .string(let secret)? = credentials["key_secret"] else {
            Issue.record("no credentials: \(created.stdout)")
            return
        }
        let port = CommandLineTests.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        process.arguments = ["--nofile=512:512", CommandLineTests.binary.path, "serve", "--port", "\(port)"]
        process.currentDirectoryURL = dir
        // Asks for far more connections than 512 descriptors allow: the server must not obey.
        process.environment = CommandLineTests.environment(dir).merging(["KOSH_HTTP_MAX_CONNECTIONS": "100000"]) { _, new in new }
        let log = dir.appendingPathComponent("serve.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        try await CommandLineTests.waitForHealth(port: port)

        var held: [RawConnection] = []
        for _ in 0..<600 {
            guard let connection = RawConnection(port: port) else { break }
            held.append(connection)
        }
        #expect(held.count == 600)

        var answered = 0
        for _ in 0..<20 {
            // Real time on purpose: a `kosh serve` process under a descriptor limit, probed once a second for 20 s.
            try await Task.sleep(for: .seconds(1))
            guard process.isRunning else { break }
            if let probe = RawConnection(port: port) {
                probe.send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if statusCode(await probe.readResponse(timeout: 3)) == 200 { answered += 1 }
            }
        }
        #expect(process.isRunning, "kosh serve died (status \(process.isRunning ? 0 : process.terminationStatus)): \(String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self).suffix(2_000))")
        #expect(answered >= 18, "/healthz answered \(answered) of 20 probes")

        // The API still takes money-moving requests at the limit.
        let order = try #require(RawConnection(port: port))
        let body = #"{"amount":5000,"currency":"INR"}"#
        let auth = Data("\(keyID):\(secret)".utf8).base64EncodedString()
        order.send("POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Basic \(auth)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        let reply = await order.readResponse(timeout: 5)
        #expect(statusCode(reply) == 200, "\(reply)")
        let serveLog = String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self)
        #expect(serveLog.contains("KOSH_HTTP_MAX_CONNECTIONS lowered"), "\(serveLog.suffix(1_000))")
        held.removeAll()
        process.terminate()
        process.waitUntilExit()
    }
}
