import ArgumentParser
import AsyncHTTPClient
import Foundation
import KoshJSON
import KoshRails
import KoshSandbox
import NIOCore
import NIOHTTP1

/// `kosh sandbox otp`: the last OTP the sandbox's ACS texted (its SMS provider's log), as the
/// cardholder's phone would show it — for demos and scripts.
struct SandboxOTP: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "otp", abstract: "Print the last 3-D Secure OTP the sandbox texted (optionally to one phone).")
    @Option(help: "Only messages to this phone number, e.g. +919810000001") var to: String?
    @Flag(help: "Print the whole SMS, not just the OTP") var full = false
    @OptionGroup var target: SandboxTarget

    func run() async throws {
        let text = try await target.fetch(.GET, "/sms/v1/messages")
        guard case .array(let items)? = (try? JSON.parse(Array(text.utf8)))?["items"] else { throw ValidationError("the sandbox answered no messages") }
        let texts = items.compactMap { item -> String? in
            guard case .string(let body)? = item["text"], body.contains("is the OTP") else { return nil }
            if let to, item["to"] != .string(to) { return nil }
            return body
        }
        guard let last = texts.last else {
            print("no OTP has been texted\(to.map { " to \($0)" } ?? "")")
            throw ExitCode(1)
        }
        print(full ? last : String(last.prefix(while: \.isNumber)))
    }
}

/// `kosh sandbox card-books PAYMENT_ID`: the acquirer's books for one Kosh payment.
struct SandboxCardBooks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "card-books", abstract: "The sandbox acquirer's books for one card payment.")
    @Argument(help: "A Kosh payment id (pay_…)") var paymentID: String
    @OptionGroup var target: SandboxTarget

    func validate() throws {
        guard paymentID.hasPrefix("pay_"), paymentID.count <= 32, paymentID.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
            throw ValidationError("a payment id looks like pay_0VcLLUCk4rIpuV")
        }
    }

    func run() async throws { try await target.send(.GET, "/sandbox/v1/cards/transactions/\(paymentID)", body: nil) }
}

extension SandboxTarget {
    /// One signed request; the answer's text (non-2xx exits 1).
    func fetch(_ method: HTTPMethod, _ path: String) async throws -> String {
        let signer = RailSigner(secret: secret ?? ProcessInfo.processInfo.environment["KOSH_RAILS_SECRET"] ?? SandboxConfiguration.defaultSecret)
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        do {
            let response = try await client.execute(signer.request(baseURL: baseURL, method: method, path: path, body: nil), timeout: .seconds(10))
            let text = String(buffer: try await response.body.collect(upTo: 4 << 20))
            try await client.shutdown()
            guard (200..<300).contains(response.status.code) else {
                print(text)
                throw ExitCode(1)
            }
            return text
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}
