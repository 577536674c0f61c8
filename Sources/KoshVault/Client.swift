import AsyncHTTPClient
import Foundation
import KoshCore
import KoshJSON
import Logging
import NIOCore
import NIOHTTP1

/// The vault over HTTP (docs/CARDS.md §1), from the application zone: every request signed
/// with the channel key, every answer's signature checked. An answer that is unsigned, signed
/// wrongly, stale or not what the contract says is `CardVaultError.unavailable`, as are
/// timeouts, refused connections and 5xx; 400 is `invalid(field:reason:)`, 404 `notFound`,
/// 410 `purged`.
public final class VaultClient: CardVault, Sendable {
    public let endpoint: VaultEndpoint
    let key: VaultChannelKey
    let clock: any KoshClock
    let timeout: Duration
    let http: HTTPClient
    let logger: Logger
    /// Answers larger than this are not read (the largest the contract has is a few hundred bytes).
    public static let maximumAnswerBytes = 64 * 1024

    public init(endpoint: VaultEndpoint, channelKey: VaultChannelKey, clock: any KoshClock = SystemClock(), timeout: Duration = .seconds(5),
                logger: Logger = Logger(label: "kosh.vault.client")) {
        self.endpoint = endpoint
        self.key = channelKey
        self.clock = clock
        self.timeout = timeout
        self.logger = logger
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(2), read: .seconds(Int64(timeout.components.seconds) + 1))
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// Closes the client's connections; call once, when done.
    public func shutdown() async throws {
        try await http.shutdown()
    }

    // MARK: CardVault

    public func tokenize(_ card: VaultCard, cvv: String?, retention: CardRetention) async throws -> TokenizedCard {
        var fields: [(String, JSON)] = [("number", .string(card.number)), ("expiry_month", .int(Int64(card.expiryMonth))),
                                        ("expiry_year", .int(Int64(card.expiryYear)))]
        if let name = card.name { fields.append(("name", .string(name))) }
        if let cvv { fields.append(("cvv", .string(cvv))) }
        fields += Self.retentionFields(retention)
        let json = try await call(.POST, "/vault/v1/cards", .object(fields), expecting: 201)
        guard case .string(let token)? = json?["token"], VaultToken.isWellFormed(token), case .string(let fingerprint)? = json?["fingerprint"],
              case .string(let iin)? = json?["iin"], case .string(let last4)? = json?["last4"] else {
            throw CardVaultError.unavailable("the vault's answer to a tokenisation is not a token")
        }
        return TokenizedCard(token: token, fingerprint: fingerprint, iin: iin, last4: last4)
    }

    public func attachCVV(token: String, cvv: String) async throws {
        _ = try await call(.POST, "/vault/v1/cards/\(try Self.pathToken(token))/cvv", .object([("cvv", .string(cvv))]), expecting: 204)
    }

    public func detokenize(token: String, takeCVV: Bool) async throws -> (card: VaultCard, cvv: String?) {
        let json = try await call(.POST, "/vault/v1/cards/\(try Self.pathToken(token))/detokenize", .object([("take_cvv", .bool(takeCVV))]),
                                  expecting: 200)
        guard case .string(let number)? = json?["number"], case .int(let month)? = json?["expiry_month"],
              case .int(let year)? = json?["expiry_year"] else {
            throw CardVaultError.unavailable("the vault's answer to a detokenisation is not a card")
        }
        var name: String?
        if case .string(let value)? = json?["name"] { name = value }
        var cvv: String?
        if case .string(let value)? = json?["cvv"] { cvv = value }
        return (VaultCard(number: number, expiryMonth: Int(clamping: month), expiryYear: Int(clamping: year), name: name), cvv)
    }

    public func setRetention(token: String, _ retention: CardRetention) async throws {
        _ = try await call(.PUT, "/vault/v1/cards/\(try Self.pathToken(token))/retention", .object(Self.retentionFields(retention)),
                           expecting: 204)
    }

    public func purge(token: String) async throws {
        _ = try await call(.DELETE, "/vault/v1/cards/\(try Self.pathToken(token))", nil, expecting: 204)
    }

    // MARK: The rest of the contract

    /// Purges every card past its retention now; answers how many.
    public func purgeExpired() async throws -> Int {
        guard case .int(let purged)? = try await call(.POST, "/vault/v1/purge", nil, expecting: 200)?["purged"] else {
            throw CardVaultError.unavailable("the vault's answer to a purge has no count")
        }
        return Int(purged)
    }

    /// The vault's current master key version (`GET /vault/v1/health`).
    public func health() async throws -> Int {
        let json = try await call(.GET, "/vault/v1/health", nil, expecting: 200)
        guard case .string("ok")? = json?["status"], case .int(let version)? = json?["master_key_version"] else {
            throw CardVaultError.unavailable("the vault is not healthy")
        }
        return Int(version)
    }

    // MARK: The wire

    static func retentionFields(_ retention: CardRetention) -> [(String, JSON)] {
        switch retention {
        case .until(let seconds): [("retain_until", .int(seconds.value))]
        case .cardOnFile: [("card_on_file", .bool(true))]
        }
    }

    /// A token goes into a path only when it is one (anything else cannot exist: not found).
    static func pathToken(_ token: String) throws -> String {
        guard VaultToken.isWellFormed(token) else { throw CardVaultError.notFound }
        return token
    }

    /// Sends one signed request; answers the verified JSON body of an answer with `expecting`.
    func call(_ method: HTTPMethod, _ path: String, _ body: JSON?, expecting: Int) async throws -> JSON? {
        let bytes = body.map { Array($0.serialized().utf8) } ?? []
        let timestamp = clock.nowMillis()
        var request = HTTPClientRequest(url: endpoint.url + path)
        request.method = method
        request.headers.add(name: VaultSignature.timestampHeader, value: String(timestamp))
        request.headers.add(name: VaultSignature.signatureHeader,
                            value: VaultSignature.sign(key: key, timestamp: timestamp, method: method.rawValue, path: path, body: bytes))
        if body != nil {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: bytes))
        }
        let status: Int
        let answer: ByteBuffer
        let headers: HTTPHeaders
        do {
            let response = try await http.execute(request, timeout: .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000
                                                                                    + timeout.components.attoseconds / 1_000_000_000))
            status = Int(response.status.code)
            headers = response.headers
            answer = try await response.body.collect(upTo: Self.maximumAnswerBytes)
        } catch {
            // HTTPClientError's description names the case (deadlineExceeded, connectTimeout, …)
            // and nothing of the request; other errors are named by type only.
            let why = error is HTTPClientError ? "\(error)" : "\(type(of: error))"
            logger.warning("vault unreachable", metadata: ["error": "\(why)", "http.method": "\(method.rawValue)"])
            throw CardVaultError.unavailable("the vault did not answer: \(why)")
        }
        guard VaultSignature.verify(key: key, timestampHeader: headers.first(name: VaultSignature.timestampHeader),
                                    signatureHeader: headers.first(name: VaultSignature.signatureHeader), method: method.rawValue,
                                    path: path, body: answer.readableBytesView, now: clock.nowMillis()) else {
            logger.error("vault answer with a bad signature", metadata: ["http.status": "\(status)", "http.method": "\(method.rawValue)"])
            throw CardVaultError.unavailable("the vault's answer is not signed with the channel key")
        }
        let json: JSON?
        if answer.readableBytes == 0 {
            json = nil
        } else {
            guard let parsed = try? JSON.parse(answer.readableBytesView) else {
                throw CardVaultError.unavailable("the vault's answer is not JSON")
            }
            json = parsed
        }
        if status == expecting { return json }
        let error = json?["error"]
        switch status {
        case 400:
            var field = "body"
            if case .string(let named)? = error?["field"] { field = named }
            var reason = "The vault refused the request"
            if case .string(let described)? = error?["description"] { reason = described }
            throw CardVaultError.invalid(field: field, reason: reason)
        case 404: throw CardVaultError.notFound
        case 410: throw CardVaultError.purged
        case 401: throw CardVaultError.unavailable("the vault refused the request's signature (is the channel key the vault's, the clock right?)")
        default: throw CardVaultError.unavailable("the vault answered \(status)")
        }
    }
}
