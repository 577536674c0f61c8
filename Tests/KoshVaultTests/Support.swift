import AsyncHTTPClient
import Foundation
import KoshCore
import KoshJSON
import KoshTesting
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import Testing
@testable import KoshVault

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A value tasks share (a `Mutex` in a class, so closures capture a reference they may send).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}

/// A fresh directory for one vault (short: Unix socket paths are limited to ~100 bytes).
func temporaryVaultDirectory() throws -> String {
    let path = "/tmp/kv-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// A log handler that keeps every line with its metadata, so tests can read what was logged.
final class LogCapture: Sendable {
    let lines = Mutex<[String]>([])

    func logger(_ label: String = "kosh.vault.test") -> Logger {
        var logger = Logger(label: label) { _ in CapturingHandler(capture: self) }
        logger.logLevel = .trace
        return logger
    }

    var text: String { lines.withLock { $0.joined(separator: "\n") } }

    struct CapturingHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let line = "\(event.level) \(event.message) \(all.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " "))"
                + (event.error.map { " error=\(String(reflecting: $0))" } ?? "")
            capture.lines.withLock { $0.append(line) }
        }
    }
}

let quietLogger: Logger = {
    var logger = Logger(label: "kosh.vault.test")
    logger.logLevel = .critical
    return logger
}()

/// A Luhn-valid number: `prefix`, then digits from `seed`, then the check digit.
func testCardNumber(prefix: String = "411111", length: Int = 16, seed: Int) -> String {
    var digits = prefix
    var value = UInt64(truncatingIfNeeded: seed &* 2_654_435_761 &+ 97)
    while digits.count < length - 1 {
        value = value &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        digits.append(String((value >> 33) % 10))
    }
    for check in 0...9 {
        let candidate = digits + String(check)
        if CardNumber.luhnValid(Array(candidate.utf8)) { return candidate }
    }
    preconditionFailure("no check digit")
}

func testCard(seed: Int, name: String? = "A Cardholder") -> VaultCard {
    VaultCard(number: testCardNumber(seed: seed), expiryMonth: 12, expiryYear: 2030, name: name)
}

/// An engine in a fresh directory on a manual clock (June 2025 by default).
func openVault(clock: ManualClock = ManualClock(), directory: String? = nil, logger: Logger = quietLogger) async throws -> VaultEngine {
    try await VaultEngine.open(directory: try directory ?? temporaryVaultDirectory(), environment: [:], clock: clock, logger: logger)
}

extension VaultEngine {
    /// Closes the vault and deletes its directory (tests only).
    func closeRemovingDirectory() async {
        await close()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Serves `engine` on `address` and runs `body` with a client; stops both after.
func withServer<T>(_ engine: VaultEngine, address: VaultEndpoint = .tcp(host: "127.0.0.1", port: 0), clock: any KoshClock,
                   logger: Logger = quietLogger, _ body: (VaultClient, VaultEndpoint) async throws -> T) async throws -> T {
    let running = try await VaultServer(engine: engine, address: address, logger: logger).start()
    // A long timeout: these tests are about what the vault answers, and a loaded CI machine
    // (both databases' suites in parallel on two cores) can stall an fsync for seconds.
    let client = VaultClient(endpoint: running.endpoint, channelKey: engine.channelKey, clock: clock, timeout: .seconds(30), logger: logger)
    do {
        let value = try await body(client, running.endpoint)
        try await client.shutdown()
        await running.stop()
        return value
    } catch {
        try? await client.shutdown()
        await running.stop()
        throw error
    }
}

/// How a raw test request is signed.
enum Signing {
    case valid
    case none
    case wrongKey
    case skewed(milliseconds: Int64)
    case tamperedBody
}

struct RawAnswer: CustomStringConvertible {
    let status: Int
    let body: String
    let headers: HTTPHeaders
    var json: JSON? { try? JSON.parse(body) }
    var errorCode: String? { if case .string(let code)? = json?["error"]?["code"] { code } else { nil } }
    var errorField: String? { if case .string(let field)? = json?["error"]?["field"] { field } else { nil } }
    var description: String { "\(status) \(body)" }
}

/// Sends one request to the vault signed (or not) as `signing` says, without the client's checks.
func rawRequest(_ endpoint: VaultEndpoint, key: VaultChannelKey, clock: any KoshClock, _ method: HTTPMethod, _ path: String, body: String?,
                signing: Signing = .valid) async throws -> RawAnswer {
    let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
    do {
        var request = HTTPClientRequest(url: endpoint.url + path)
        request.method = method
        let bytes = Array((body ?? "").utf8)
        var timestamp = clock.nowMillis()
        var signedBody = bytes
        var signingKey = key
        switch signing {
        case .valid, .none: break
        case .wrongKey: signingKey = VaultChannelKey(bytes: Array(repeating: 7, count: 32))
        case .skewed(let milliseconds): timestamp += milliseconds
        case .tamperedBody: signedBody = Array((body ?? "").replacingOccurrences(of: "2030", with: "2031").utf8)
        }
        if case .none = signing {} else {
            request.headers.add(name: VaultSignature.timestampHeader, value: String(timestamp))
            request.headers.add(name: VaultSignature.signatureHeader,
                                value: VaultSignature.sign(key: signingKey, timestamp: timestamp, method: method.rawValue, path: path, body: signedBody))
        }
        if body != nil {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: bytes))
        }
        let response = try await http.execute(request, timeout: .seconds(10))
        let answer = try await response.body.collect(upTo: 1 << 20)
        try await http.shutdown()
        return RawAnswer(status: Int(response.status.code), body: String(buffer: answer), headers: response.headers)
    } catch {
        try? await http.shutdown()
        throw error
    }
}

func cardBody(_ number: String, month: Int = 12, year: Int = 2030, name: String? = nil, cvv: String? = nil, retainUntil: Int64? = 1_900_000_000,
              extra: [(String, JSON)] = []) -> String {
    var fields: [(String, JSON)] = [("number", .string(number)), ("expiry_month", .int(Int64(month))), ("expiry_year", .int(Int64(year)))]
    if let name { fields.append(("name", .string(name))) }
    if let cvv { fields.append(("cvv", .string(cvv))) }
    if let retainUntil { fields.append(("retain_until", .int(retainUntil))) }
    return JSON.object(fields + extra).serialized()
}

extension Data {
    /// Whether `needle` occurs anywhere in these bytes.
    func contains(_ needle: String) -> Bool { range(of: Data(needle.utf8)) != nil }

    /// These bytes with every occurrence of each of `texts` overwritten with zeros.
    func blanking(_ texts: [String]) -> Data {
        var copy = self
        for text in texts {
            let needle = Data(text.utf8)
            var start = copy.startIndex
            while let found = copy.range(of: needle, in: start..<copy.endIndex) {
                copy.replaceSubrange(found, with: Data(count: needle.count))
                start = found.upperBound
            }
        }
        return copy
    }
}
