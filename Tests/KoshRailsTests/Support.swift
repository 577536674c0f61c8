import KoshCore
import KoshISO8583
import Logging
import Synchronization
import Testing
@testable import KoshRails

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// 2025-03-14 18:45:30 UTC, which is already 2025-03-15 00:15:30 in India.
struct FixedClock: KoshClock {
    var millis: Int64 = 1_741_977_930_000
    func nowMillis() -> Int64 { millis }
}

/// The card every test pays with: its number, expiry, CVV and CAVV must never reach a log.
enum TestCard {
    static let number = "4111111111111111"
    static let cvv = "918"
    static let cavv = "kq5ZCAVV7Rm0ZBQ2Ijc4OTAxMjM="
    static let card = VaultCard(number: number, expiryMonth: 12, expiryYear: 2029, name: "Gaurav Kumar")
    static let token = "vt_test0000000001"
}

/// The vault as the connector sees it, in memory, counting detokenisations.
final class MemoryVault: CardVault {
    struct Detokenization: Sendable, Hashable {
        let token: String
        let takeCVV: Bool
        let gotCVV: Bool
    }

    let cards = Mutex<[String: (card: VaultCard, cvv: String?)]>([:])
    let calls = Mutex<[Detokenization]>([])

    init(cards: [String: (VaultCard, String?)] = [TestCard.token: (TestCard.card, TestCard.cvv)]) {
        self.cards.withLock { $0 = cards.mapValues { (card: $0.0, cvv: $0.1) } }
    }

    var detokenizations: [Detokenization] { calls.withLock { $0 } }

    func tokenize(_ card: VaultCard, cvv: String?, retention: CardRetention) async throws -> TokenizedCard {
        let token = "vt_\(card.number.suffix(4))\(cards.withLock { $0.count })"
        cards.withLock { $0[token] = (card, cvv) }
        return TokenizedCard(token: token, fingerprint: String(repeating: "0", count: 64), iin: String(card.number.prefix(6)),
                             last4: String(card.number.suffix(4)))
    }

    func attachCVV(token: String, cvv: String) async throws {
        try cards.withLock { cards in
            guard cards[token] != nil else { throw CardVaultError.notFound }
            cards[token]!.cvv = cvv
        }
    }

    func detokenize(token: String, takeCVV: Bool) async throws -> (card: VaultCard, cvv: String?) {
        let found: (card: VaultCard, cvv: String?) = try cards.withLock { cards in
            guard let entry = cards[token] else { throw CardVaultError.notFound }
            guard takeCVV else { return (entry.card, nil) }
            cards[token]!.cvv = nil
            return entry
        }
        calls.withLock { $0.append(Detokenization(token: token, takeCVV: takeCVV, gotCVV: found.cvv != nil)) }
        return found
    }

    func setRetention(token: String, _ retention: CardRetention) async throws {}

    func purge(token: String) async throws {
        cards.withLock { $0[token] = nil }
    }
}

/// Every log line (message, metadata, source) any logger of the test wrote.
final class LogStore: Sendable {
    let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }
    func containing(_ text: String) -> [String] { all.filter { $0.contains(text) } }

    var logger: Logger {
        Logger(label: "kosh.test") { label in CapturingLogHandler(store: self, label: label) }
    }

    /// No line holds the card number (whole, or its middle digits), the CVV as a value, or the CAVV.
    func expectNoCardData(sourceLocation: SourceLocation = #_sourceLocation) {
        let middle = String(TestCard.number.dropFirst(6).dropLast(4))
        for line in all {
            #expect(!line.contains(TestCard.number), "PAN in log: \(line)", sourceLocation: sourceLocation)
            #expect(!line.contains(middle + String(TestCard.number.suffix(4))), "PAN digits in log: \(line)", sourceLocation: sourceLocation)
            #expect(!line.contains("\"\(TestCard.cvv)\"") && !line.contains("=\(TestCard.cvv)"), "CVV in log: \(line)", sourceLocation: sourceLocation)
            #expect(!line.contains(TestCard.cavv), "CAVV in log: \(line)", sourceLocation: sourceLocation)
        }
    }
}

struct CapturingLogHandler: LogHandler {
    let store: LogStore
    let label: String
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        store.lines.withLock { $0.append("\(event.level) \(label) \(event.message) \(rendered) source=\(event.source)") }
    }
}

/// Waits (briefly, polling) until `condition` holds; real sockets and timers leave nothing to step.
func eventually(within milliseconds: Int = 2_000, _ condition: () -> Bool) async throws {
    var waited = 0
    while !condition() {
        guard waited < milliseconds else { throw TestFailure("condition not met within \(milliseconds) ms") }
        try await Task.sleep(for: .milliseconds(20))
        waited += 20
    }
}

/// The connector on a fake acquirer, a memory vault and a captured log.
struct Rig {
    let acquirer: FakeAcquirer
    let client: ISO8583Client
    let connector: CardNetworkConnector
    let vault: MemoryVault
    let logs: LogStore
    let clock: FixedClock

    static func payment(_ id: String = "pay_29QQoUBi66xm2f", amount: Int64 = 50_000) -> CardPaymentContext {
        CardPaymentContext(paymentID: ID(id), merchantID: ID("acc_1AbCdEfGhIjKlMnO"), merchantName: "Acme Corp",
                           vaultToken: TestCard.token, amount: amount, currency: .inr)
    }

    static let authenticated = CardAuthentication(id: "acs_9f8e7d6c5b4a", challengeURL: nil,
                                                  state: .authenticated(eci: "05", cavv: TestCard.cavv))

    /// Timeouts of 0.4 s (the production defaults are seconds): the tests run on
    /// real sockets and real timers, and each timeout path waits this long, so they stay short
    /// yet far above a loopback round trip on a busy 2-core machine.
    static func fastConfiguration() -> CardNetworkConfiguration {
        CardNetworkConfiguration(authorizationTimeout: .milliseconds(400), financialTimeout: .milliseconds(400),
                                 reversalTimeout: .milliseconds(400), adviceAttempts: 5, adviceBackoff: .milliseconds(50),
                                 maximumAdviceBackoff: .milliseconds(200))
    }

    static func with(connections: Int = 1, echoInterval: Duration = .seconds(30),
                     configuration: CardNetworkConfiguration = fastConfiguration(),
                     _ body: (Rig) async throws -> Void) async throws {
        let acquirer = try await FakeAcquirer.start()
        let logs = LogStore()
        let clock = FixedClock()
        let client = ISO8583Client(
            configuration: ISO8583ClientConfiguration(host: "127.0.0.1", port: acquirer.port, connections: connections,
                                                      requestTimeout: .seconds(2), connectTimeout: .seconds(1),
                                                      networkManagementTimeout: .milliseconds(400), echoInterval: echoInterval,
                                                      initialSTAN: 1),
            clock: clock, logger: logs.logger)
        let http = UpstreamHTTP(configuration: UpstreamConfiguration(baseURL: "http://127.0.0.1:9", callbackBaseURL: "http://127.0.0.1:9",
                                                                     secret: "test-secret", retries: 0))
        let vault = MemoryVault()
        let connector = CardNetworkConnector(vault: vault, client: client, http: http, configuration: configuration, clock: clock,
                                             logger: logs.logger)
        let rig = Rig(acquirer: acquirer, client: client, connector: connector, vault: vault, logs: logs, clock: clock)
        do {
            try await body(rig)
        } catch {
            await connector.shutdown()
            try? await http.shutdown()
            await acquirer.stop()
            throw error
        }
        await connector.shutdown()
        try? await http.shutdown()
        await acquirer.stop()
        logs.expectNoCardData()
    }
}
