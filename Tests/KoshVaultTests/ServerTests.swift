import AsyncHTTPClient
import Foundation
import Hummingbird
import KoshCore
import KoshJSON
import KoshTesting
import NIOCore
import NIOHTTP1
import Testing
@testable import KoshVault

@Suite("Vault server and client", .timeLimit(.minutes(2)))
struct ServerTests {
    /// The whole contract through the real client: what runs on TCP and on a Unix socket alike.
    func exercise(_ client: VaultClient, clock: ManualClock) async throws {
        let card = testCard(seed: 11)
        let tokenized = try await client.tokenize(card, cvv: "123", retention: .until(UnixSeconds(clock.now.seconds.value + 600)))
        #expect(VaultToken.isWellFormed(tokenized.token) && tokenized.iin == "411111" && tokenized.last4 == String(card.number.suffix(4)))
        var (opened, cvv) = try await client.detokenize(token: tokenized.token, takeCVV: true)
        #expect(opened == card && cvv == "123")
        (opened, cvv) = try await client.detokenize(token: tokenized.token, takeCVV: true)
        #expect(opened == card && cvv == nil)
        try await client.attachCVV(token: tokenized.token, cvv: "4321")
        #expect(try await client.detokenize(token: tokenized.token, takeCVV: true).cvv == "4321")
        try await client.setRetention(token: tokenized.token, .cardOnFile)
        #expect(try await client.health() == 1)

        let brief = try await client.tokenize(VaultCard(number: "5555555555554444", expiryMonth: 1, expiryYear: 2031, name: nil), cvv: nil,
                                              retention: .until(UnixSeconds(clock.now.seconds.value + 30)))
        clock.advance(bySeconds: 31)
        #expect(try await client.purgeExpired() == 1)
        await #expect(throws: CardVaultError.purged) { try await client.detokenize(token: brief.token, takeCVV: false) }
        #expect(try await client.detokenize(token: tokenized.token, takeCVV: false).card == card, "the card on file is kept")

        try await client.purge(token: tokenized.token)
        await #expect(throws: CardVaultError.purged) { try await client.detokenize(token: tokenized.token, takeCVV: false) }
        await #expect(throws: CardVaultError.purged) { try await client.attachCVV(token: tokenized.token, cvv: "123") }
        await #expect(throws: CardVaultError.notFound) { try await client.detokenize(token: VaultToken.make(), takeCVV: false) }
        await #expect(throws: CardVaultError.notFound) { try await client.setRetention(token: "card_1", .cardOnFile) }
        await #expect(throws: CardVaultError.invalid(field: "cvv", reason: "The CVV must be 3 or 4 digits")) {
            try await client.tokenize(card, cvv: "12", retention: .cardOnFile)
        }
    }

    @Test("the contract over TCP with the real client")
    func overTCP() async throws {
        let clock = ManualClock()
        let vault = try await openVault(clock: clock)
        try await withServer(vault, clock: clock) { client, endpoint in
            guard case .tcp(_, let port) = endpoint else { throw TestFailure("not TCP: \(endpoint)") }
            #expect(port > 0)
            try await exercise(client, clock: clock)
        }
        await vault.closeRemovingDirectory()
    }

    @Test("the contract over a Unix domain socket (mode 0600) with the real client")
    func overUnixSocket() async throws {
        let clock = ManualClock()
        let directory = try temporaryVaultDirectory()
        let vault = try await openVault(clock: clock, directory: directory)
        let path = (directory as NSString).appendingPathComponent("vault.sock")
        try await withServer(vault, address: .unixSocket(path: path), clock: clock) { client, endpoint in
            #expect(endpoint == .unixSocket(path: path))
            #expect(endpoint.url.hasPrefix("http+unix://"))
            #expect(try VaultEndpoint(url: endpoint.url) == endpoint)
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            try await exercise(client, clock: clock)
        }
        await vault.closeRemovingDirectory()
    }

    @Test("requests unsigned, signed with another key, stale, from the future or with a tampered body get 401")
    func signatures() async throws {
        let clock = ManualClock()
        let vault = try await openVault(clock: clock)
        try await withServer(vault, clock: clock) { client, endpoint in
            let body = cardBody("4111111111111111")
            let cases: [Signing] = [.none, .wrongKey, .skewed(milliseconds: -61_000), .skewed(milliseconds: 61_000), .tamperedBody]
            for signing in cases {
                let answer = try await rawRequest(endpoint, key: vault.channelKey, clock: clock, .POST, "/vault/v1/cards", body: body, signing: signing)
                #expect(answer.status == 401, "\(signing): \(answer)")
                #expect(answer.errorCode == "unauthenticated")
            }
            // Health is signed too; an unsigned GET of an unknown path is 401 before 404.
            #expect(try await rawRequest(endpoint, key: vault.channelKey, clock: clock, .GET, "/vault/v1/health", body: nil, signing: .none).status == 401)
            #expect(try await rawRequest(endpoint, key: vault.channelKey, clock: clock, .GET, "/nowhere", body: nil, signing: .none).status == 401)
            #expect(try await vault.status().cards == 0, "nothing was tokenised")

            // Within the window is fine; the answer is signed over its body with the request's method and path.
            let good = try await rawRequest(endpoint, key: vault.channelKey, clock: clock, .POST, "/vault/v1/cards", body: body,
                                            signing: .skewed(milliseconds: -59_000))
            #expect(good.status == 201, "\(good)")
            #expect(VaultSignature.verify(key: vault.channelKey, timestampHeader: good.headers.first(name: VaultSignature.timestampHeader),
                                          signatureHeader: good.headers.first(name: VaultSignature.signatureHeader), method: "POST",
                                          path: "/vault/v1/cards", body: Array(good.body.utf8), now: clock.nowMillis()))
            #expect(!VaultSignature.verify(key: vault.channelKey, timestampHeader: good.headers.first(name: VaultSignature.timestampHeader),
                                           signatureHeader: good.headers.first(name: VaultSignature.signatureHeader), method: "POST",
                                           path: "/vault/v1/purge", body: Array(good.body.utf8), now: clock.nowMillis()))
            let unknown = try await rawRequest(endpoint, key: vault.channelKey, clock: clock, .GET, "/nowhere", body: nil)
            #expect(unknown.status == 404 && unknown.errorCode == "not_found")

            // A client with the wrong key is refused, and says the vault is unavailable.
            let stranger = VaultClient(endpoint: endpoint, channelKey: VaultChannelKey(bytes: Array(repeating: 1, count: 32)), clock: clock,
                                       logger: quietLogger)
            await #expect(throws: CardVaultError.self) { try await stranger.health() }
            try await stranger.shutdown()
            _ = client
        }
        await vault.closeRemovingDirectory()
    }

    static let badBodies: [(String, String, String)] = [
        (cardBody("4111111111111112"), "number", "invalid_number"),
        (cardBody("411111111111"), "number", "invalid_number"),
        (cardBody("4111-1111-1111-1111"), "number", "invalid_number"),
        (cardBody("4111111111111111", month: 13), "expiry_month", "invalid_expiry"),
        (cardBody("4111111111111111", year: 1999), "expiry_year", "invalid_expiry"),
        (cardBody("4111111111111111", year: 2024), "expiry_year", "invalid_expiry"),
        (cardBody("4111111111111111", cvv: "1"), "cvv", "invalid_cvv"),
        (cardBody("4111111111111111", cvv: "12345"), "cvv", "invalid_cvv"),
        (cardBody("4111111111111111", name: String(repeating: "n", count: 101)), "name", "invalid_name"),
        (cardBody("4111111111111111", retainUntil: nil), "retain_until", "invalid_retention"),
        (cardBody("4111111111111111", extra: [("card_on_file", .bool(true))]), "card_on_file", "invalid_retention"),
        (cardBody("4111111111111111", extra: [("pan", .string("x"))]), "pan", "invalid_request"),
        (#"{"number":4111111111111111,"expiry_month":12,"expiry_year":2030,"retain_until":1}"#, "number", "invalid_number"),
        (#"{"number":"4111111111111111","expiry_month":"12","expiry_year":2030,"retain_until":1}"#, "expiry_month", "invalid_expiry"),
        (#"{"expiry_month":12,"expiry_year":2030,"retain_until":1}"#, "number", "invalid_number"),
        ("[1,2]", "body", "invalid_request"),
        ("{\"number\":", "body", "invalid_request"),
        (cardBody("4111111111111111", name: String(repeating: "n", count: 17_000)), "body", "invalid_request"),
    ]

    @Test("bad input is a 400 naming the field, and never echoes the number")
    func validationOverHTTP() async throws {
        let clock = ManualClock()
        let vault = try await openVault(clock: clock)
        try await withServer(vault, clock: clock) { client, endpoint in
            for (body, field, code) in Self.badBodies {
                let answer = try await rawRequest(endpoint, key: vault.channelKey, clock: clock, .POST, "/vault/v1/cards", body: body)
                #expect(answer.status == 400, "\(field): \(answer.status)")
                #expect(answer.errorField == field && answer.errorCode == code, "\(answer.errorField ?? "-") \(answer.errorCode ?? "-")")
                #expect(!answer.body.contains("411111111111"))
            }
            let token = try await client.tokenize(testCard(seed: 12), cvv: nil, retention: .cardOnFile).token
            let cvv = try await rawRequest(endpoint, key: vault.channelKey, clock: clock, .POST, "/vault/v1/cards/\(token)/cvv", body: #"{"cvv":"ab1"}"#)
            #expect(cvv.status == 400 && cvv.errorField == "cvv" && cvv.errorCode == "invalid_cvv")
            let retention = try await rawRequest(endpoint, key: vault.channelKey, clock: clock, .PUT, "/vault/v1/cards/\(token)/retention",
                                                 body: #"{"retain_until":-5}"#)
            #expect(retention.status == 400 && retention.errorField == "retain_until")
            let take = try await rawRequest(endpoint, key: vault.channelKey, clock: clock, .POST, "/vault/v1/cards/\(token)/detokenize",
                                            body: #"{"take_cvv":"yes"}"#)
            #expect(take.status == 400 && take.errorField == "take_cvv")
            await #expect(throws: CardVaultError.invalid(field: "expiry_month", reason: "The expiry month must be 1 to 12")) {
                try await client.tokenize(VaultCard(number: "4111111111111111", expiryMonth: 0, expiryYear: 2030, name: nil), cvv: nil,
                                          retention: .cardOnFile)
            }
            #expect(try await vault.status().cards == 1)
        }
        await vault.closeRemovingDirectory()
    }

    @Test("an answer unsigned, forged or from a vault that does not answer is unavailable to the client")
    func forgedAnswers() async throws {
        let clock = ManualClock()
        let forger = VaultChannelKey(bytes: Array(repeating: 9, count: 32))
        let router = Router()
        let answer = #"{"token":"vt_00000000000000000000000000000000","fingerprint":"00","iin":"411111","last4":"1111"}"#
        router.post("/vault/v1/cards") { _, _ -> Response in
            // Not signed at all.
            Response(status: .created, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: answer)))
        }
        router.get("/vault/v1/health") { _, _ -> Response in
            // Signed, but with another key.
            let body = #"{"status":"ok","master_key_version":1}"#
            let now = clock.nowMillis()
            var headers: HTTPFields = [.contentType: "application/json"]
            headers[HTTPFields.Element.Name(VaultSignature.timestampHeader)!] = String(now)
            headers[HTTPFields.Element.Name(VaultSignature.signatureHeader)!] = VaultSignature.sign(key: forger, timestamp: now, method: "GET",
                                                                                        path: "/vault/v1/health", body: Array(body.utf8))
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.post("/vault/v1/purge") { _, _ -> Response in
            // Signed with the right key, but stale.
            let body = #"{"purged":0}"#
            let then = clock.nowMillis() - 120_000
            var headers: HTTPFields = [.contentType: "application/json"]
            headers[HTTPFields.Element.Name(VaultSignature.timestampHeader)!] = String(then)
            headers[HTTPFields.Element.Name(VaultSignature.signatureHeader)!] = VaultSignature.sign(key: VaultChannelKey(bytes: Array(repeating: 2, count: 32)),
                                                                                        timestamp: then, method: "POST", path: "/vault/v1/purge",
                                                                                        body: Array(body.utf8))
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        let key = VaultChannelKey(bytes: Array(repeating: 2, count: 32))
        router.put("/vault/v1/cards/:token/retention") { request, _ -> Response in
            // Properly signed, but a 5xx.
            let body = #"{"error":{"code":"internal_error","description":"Internal error"}}"#
            let now = clock.nowMillis()
            var headers: HTTPFields = [.contentType: "application/json"]
            headers[HTTPFields.Element.Name(VaultSignature.timestampHeader)!] = String(now)
            headers[HTTPFields.Element.Name(VaultSignature.signatureHeader)!] = VaultSignature.sign(key: key, timestamp: now, method: "PUT",
                                                                                                 path: request.uri.path, body: Array(body.utf8))
            return Response(status: .internalServerError, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        router.delete("/vault/v1/cards/:token") { _, _ -> Response in
            // No answer within the client's timeout.
            try await Task.sleep(for: .seconds(3))
            return Response(status: .noContent)
        }
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }, logger: quietLogger)
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        let port = await iterator.next() ?? 0
        let client = VaultClient(endpoint: .tcp(host: "127.0.0.1", port: port), channelKey: key, clock: clock, timeout: .seconds(1),
                                 logger: quietLogger)
        func expectUnavailable(_ call: () async throws -> Void) async {
            do {
                try await call()
                Issue.record("a forged answer was believed")
            } catch CardVaultError.unavailable {
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        await expectUnavailable { _ = try await client.tokenize(testCard(seed: 13), cvv: nil, retention: .cardOnFile) }
        await expectUnavailable { _ = try await client.health() }
        await expectUnavailable { _ = try await client.purgeExpired() }
        await expectUnavailable { _ = try await client.detokenize(token: VaultToken.make(), takeCVV: false) }
        await expectUnavailable { try await client.setRetention(token: VaultToken.make(), .cardOnFile) }
        let started = ContinuousClock.now
        await expectUnavailable { try await client.purge(token: VaultToken.make()) }
        #expect(ContinuousClock.now - started < .milliseconds(2_500), "the client gives up at its timeout")
        try await client.shutdown()
        task.cancel()
        _ = try? await task.value

        // Nobody listening: unavailable, not a crash or a hang.
        let nowhere = VaultClient(endpoint: .unixSocket(path: "/tmp/kv-none-\(UUID().uuidString.prefix(6)).sock"),
                                  channelKey: VaultChannelKey(bytes: Array(repeating: 2, count: 32)), clock: clock, timeout: .seconds(2),
                                  logger: quietLogger)
        await expectUnavailable { _ = try await nowhere.health() }
        try await nowhere.shutdown()
    }

    @Test("logs carry tokens, IINs and last 4 digits, never a number or a CVV")
    func logsHoldNoCardData() async throws {
        let clock = ManualClock()
        let capture = LogCapture()
        let vault = try await openVault(clock: clock, logger: capture.logger())
        let card = testCard(seed: 14)
        try await withServer(vault, clock: clock, logger: capture.logger("kosh.vault.server")) { client, _ in
            let tokenized = try await client.tokenize(card, cvv: "8642", retention: .until(UnixSeconds(clock.now.seconds.value + 5)))
            _ = try await client.detokenize(token: tokenized.token, takeCVV: true)
            try await client.attachCVV(token: tokenized.token, cvv: "9753")
            await #expect(throws: CardVaultError.self) {
                try await client.tokenize(VaultCard(number: card.number, expiryMonth: 12, expiryYear: 2030, name: nil), cvv: "1", retention: .cardOnFile)
            }
            clock.advance(bySeconds: 10)
            _ = try await client.purgeExpired()
            let logged = capture.text
            #expect(logged.contains(tokenized.token) && logged.contains(tokenized.last4))
            #expect(!logged.contains(card.number) && !logged.contains(String(card.number.suffix(8))))
            // A CVV is a word on its own: a port or a hex id that happens to contain its digits
            // (a server on port 39753, a request id …a9753f…) is not one.
            let numbers = Set(logged.split(whereSeparator: { !$0.isNumber && !$0.isLetter }).map(String.init))
            #expect(!numbers.contains("8642") && !numbers.contains("9753"), "\(logged)")
        }
        await vault.closeRemovingDirectory()
    }

    @Test("vault URLs: TCP, http+unix and unix: forms")
    func endpoints() throws {
        #expect(try VaultEndpoint(url: "http://127.0.0.1:7070") == .tcp(host: "127.0.0.1", port: 7070))
        #expect(try VaultEndpoint(url: "unix:/var/run/kosh vault.sock") == .unixSocket(path: "/var/run/kosh vault.sock"))
        let endpoint = VaultEndpoint.unixSocket(path: "/var/run/kosh vault.sock")
        #expect(try VaultEndpoint(url: endpoint.url) == endpoint)
        #expect(throws: VaultSetupError.self) { try VaultEndpoint(url: "https://vault:443") }
        #expect(throws: VaultSetupError.self) { try VaultEndpoint(url: "http://vault") }
    }
}
