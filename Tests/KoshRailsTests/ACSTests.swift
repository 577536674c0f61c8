import Foundation
import Hummingbird
import KoshCore
import Logging
import NIOCore
import Synchronization
import Testing
@testable import KoshRails

/// The ACS of docs/CARDS.md §3 as a test plays it: checks each request's signature, records
/// the bodies, and runs one authentication's OTP counters.
final class FakeACS: Sendable {
    struct State {
        var bodies: [String: String] = [:]
        var unsigned = 0
        var resendsLeft = 3
        var otpCalls = 0
        var attemptsLeft = 3
        var status = "challenge_required"
    }

    let secret = "acs-test-secret"
    let state = Mutex(State())
    static let otp = "246810"

    func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func current(_ state: State) -> [String: Any] {
        switch state.status {
        case "authenticated": ["id": "acs_test1", "status": "authenticated", "eci": "05", "cavv": TestCard.cavv]
        case "failed": ["id": "acs_test1", "status": "failed", "reason": "too_many_attempts"]
        default: ["id": "acs_test1", "status": "challenge_required", "challenge_url": "http://acs.test/acs/challenge/acs_test1",
                  "otp_length": 6, "attempts_left": state.attemptsLeft, "resends_left": state.resendsLeft]
        }
    }

    func application(onServerRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        let signer = RailSigner(secret: secret)
        router.add(middleware: SignatureCheck(acs: self, signer: signer))
        router.post("acs/v1/authentications") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 16)
            let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:]
            self.state.withLock { $0.bodies["begin"] = String(decoding: body.readableBytesView, as: UTF8.self) }
            if object["pan"] as? String != TestCard.number {
                return self.json(.created, ["id": "acs_test2", "status": "authenticated", "eci": "05", "cavv": TestCard.cavv])
            }
            return self.json(.created, self.state.withLock { self.current($0) })
        }
        router.post("acs/v1/authentications/:id/otp") { _, _ -> Response in
            let over = self.state.withLock { state -> Bool in
                state.otpCalls += 1
                if state.otpCalls == 1 { return false }  // the first call sends
                guard state.resendsLeft > 0 else { return true }
                state.resendsLeft -= 1
                return false
            }
            if over { return self.json(.tooManyRequests, ["error": ["code": "resend_limit", "description": "No resends left"]]) }
            return self.json(.ok, self.state.withLock { self.current($0) })
        }
        router.post("acs/v1/authentications/:id/verify") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 16)
            let otp = ((try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any])?["otp"] as? String
            let answer: [String: Any] = self.state.withLock { state in
                if otp == Self.otp {
                    state.status = "authenticated"
                    return ["status": "authenticated", "eci": "05", "cavv": TestCard.cavv]
                }
                state.attemptsLeft -= 1
                if state.attemptsLeft == 0 {
                    state.status = "failed"
                    return ["status": "failed", "reason": "too_many_attempts"]
                }
                return ["status": "challenge_required", "reason": "incorrect_otp", "attempts_left": state.attemptsLeft]
            }
            return self.json(.ok, answer)
        }
        router.get("acs/v1/authentications/:id") { _, context -> Response in
            guard try context.parameters.require("id") == "acs_test1" else {
                return self.json(.notFound, ["error": ["code": "not_found", "description": "No such authentication"]])
            }
            return self.json(.ok, self.state.withLock { self.current($0) })
        }
        var logger = Logger(label: "kosh.test.acs")
        logger.logLevel = .critical
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                           onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) }, logger: logger)
    }

    struct SignatureCheck: RouterMiddleware {
        typealias Context = BasicRequestContext
        let acs: FakeACS
        let signer: RailSigner

        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            var request = request
            let body = try await request.collectBody(upTo: 1 << 16)
            let signed = signer.verify(signature: request.headers[HTTPFields.Element.Name(RailSigner.signatureHeader)!],
                                       timestamp: request.headers[HTTPFields.Element.Name(RailSigner.timestampHeader)!],
                                       method: request.method.rawValue, path: request.head.path ?? "", body: Array(body.readableBytesView),
                                       now: SystemClock().nowMillis())
            guard signed else {
                acs.state.withLock { $0.unsigned += 1 }
                return Response(status: .unauthorized)
            }
            return try await next(request, context)
        }
    }

    /// Runs `body` with a connector whose ACS is this fake (and whose acquirer is nowhere).
    static func with(_ body: (CardNetworkConnector, FakeACS, MemoryVault) async throws -> Void) async throws {
        let acs = FakeACS()
        let ports = AsyncStream.makeStream(of: Int.self)
        let app = acs.application { port in ports.continuation.yield(port) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var iterator = ports.stream.makeAsyncIterator()
            guard let port = await iterator.next() else { throw TestFailure("the ACS did not start") }
            let logs = LogStore()
            let http = UpstreamHTTP(configuration: UpstreamConfiguration(baseURL: "http://127.0.0.1:\(port)", callbackBaseURL: "http://127.0.0.1:9",
                                                                         secret: acs.secret, retries: 0))
            let vault = MemoryVault()
            let client = ISO8583Client(configuration: ISO8583ClientConfiguration(host: "127.0.0.1", port: 9, connections: 1), logger: logs.logger)
            let connector = CardNetworkConnector(vault: vault, client: client, http: http, logger: logs.logger)
            do {
                try await body(connector, acs, vault)
            } catch {
                await connector.shutdown()
                try? await http.shutdown()
                group.cancelAll()
                throw error
            }
            await connector.shutdown()
            try? await http.shutdown()
            group.cancelAll()
            logs.expectNoCardData()
        }
    }
}

@Suite("3-D Secure ACS client", .timeLimit(.minutes(1)))
struct ACSTests {
    @Test func aChallengeRunsThroughOTPsToAnAuthentication() async throws {
        try await FakeACS.with { connector, acs, vault in
            let payment = Rig.payment()
            let begun = try await connector.beginAuthentication(payment, returnURL: "https://kosh.test/v1/payments/pay_29QQoUBi66xm2f/3ds")
            #expect(begun == CardAuthentication(id: "acs_test1", challengeURL: "http://acs.test/acs/challenge/acs_test1",
                                                state: .challengeRequired(attemptsLeft: 3, resendsLeft: 3)))
            let text = try #require(acs.state.withLock { $0.bodies["begin"] })
            let body = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            #expect(body["pan"] as? String == TestCard.number)
            #expect(body["expiry"] as? String == "2912")
            #expect(body["payment_id"] as? String == "pay_29QQoUBi66xm2f")
            #expect(body["amount"] as? Int == 50_000 && body["currency"] as? String == "INR")
            #expect(body["merchant_name"] as? String == "Acme Corp")
            #expect(body["return_url"] as? String == "https://kosh.test/v1/payments/pay_29QQoUBi66xm2f/3ds")
            #expect(body["cvv"] == nil)
            #expect(vault.detokenizations == [.init(token: TestCard.token, takeCVV: false, gotCVV: false)], "the CVV stays for the 0100")
            #expect(acs.state.withLock { $0.unsigned } == 0)

            _ = try await connector.sendOTP(authenticationID: "acs_test1")
            for left in [2, 1, 0] {
                let resent = try await connector.sendOTP(authenticationID: "acs_test1")
                #expect(resent.state == .challengeRequired(attemptsLeft: 3, resendsLeft: left))
            }
            await #expect(throws: CardOTPProblem.resendLimit) { _ = try await connector.sendOTP(authenticationID: "acs_test1") }

            let wrong = try await connector.verifyOTP(authenticationID: "acs_test1", otp: "000000")
            #expect(wrong.id == "acs_test1")
            #expect(wrong.state == .challengeRequired(attemptsLeft: 2, resendsLeft: 0))
            let right = try await connector.verifyOTP(authenticationID: "acs_test1", otp: FakeACS.otp)
            #expect(right.state == .authenticated(eci: "05", cavv: TestCard.cavv))
            let confirmed = try await connector.authentication(id: "acs_test1")
            #expect(confirmed.state == .authenticated(eci: "05", cavv: TestCard.cavv))
            await #expect(throws: KoshError.self) { _ = try await connector.authentication(id: "acs_nope") }
        }
    }

    @Test func tooManyWrongOTPsFail() async throws {
        try await FakeACS.with { connector, _, _ in
            _ = try await connector.beginAuthentication(Rig.payment(), returnURL: "https://kosh.test/return")
            _ = try await connector.verifyOTP(authenticationID: "acs_test1", otp: "111111")
            _ = try await connector.verifyOTP(authenticationID: "acs_test1", otp: "222222")
            let failed = try await connector.verifyOTP(authenticationID: "acs_test1", otp: "333333")
            #expect(failed.state == .failed(reason: "too_many_attempts"))
        }
    }

    @Test func aFrictionlessCardIsAuthenticatedAtOnce() async throws {
        try await FakeACS.with { connector, _, vault in
            let foreign = VaultCard(number: "5105105105105100", expiryMonth: 1, expiryYear: 2031, name: nil)
            let token = try await vault.tokenize(foreign, cvv: "123", retention: .until(0)).token
            let payment = CardPaymentContext(paymentID: ID("pay_frictionless01"), merchantID: ID("acc_1"), merchantName: "Acme",
                                             vaultToken: token, amount: 100, currency: .inr)
            let authentication = try await connector.beginAuthentication(payment, returnURL: "https://kosh.test/return")
            #expect(authentication == CardAuthentication(id: "acs_test2", challengeURL: nil, state: .authenticated(eci: "05", cavv: TestCard.cavv)))
        }
    }

    @Test func anACSThatIsDownIsRetriable() async throws {
        let http = UpstreamHTTP(configuration: UpstreamConfiguration(baseURL: "http://127.0.0.1:9", callbackBaseURL: "http://127.0.0.1:9",
                                                                     secret: "s", retries: 0))
        let client = ISO8583Client(configuration: ISO8583ClientConfiguration(host: "127.0.0.1", port: 9, connections: 1))
        let connector = CardNetworkConnector(vault: MemoryVault(), client: client, http: http)
        do {
            _ = try await connector.beginAuthentication(Rig.payment(), returnURL: "https://kosh.test/return")
            Issue.record("an answer from nowhere")
        } catch let error as UpstreamError {
            guard case .unavailable = error else { throw error }
        }
        await connector.shutdown()
        try await http.shutdown()
    }
}
