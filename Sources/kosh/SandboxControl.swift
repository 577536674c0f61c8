import ArgumentParser
import AsyncHTTPClient
import Foundation
import KoshCore
import KoshJSON
import KoshRails
import KoshSandbox
import NIOCore
import NIOHTTP1

/// Where the sandbox is and how to sign calls to it, for the control subcommands.
struct SandboxTarget: ParsableArguments {
    @Option(help: "The sandbox's base URL (default: KOSH_RAILS_URL, else http://127.0.0.1:9090).")
    var url: String?
    @Option(help: "Shared HMAC secret (default: KOSH_RAILS_SECRET, else the development secret).")
    var secret: String?

    var baseURL: String {
        let value = url ?? ProcessInfo.processInfo.environment["KOSH_RAILS_URL"] ?? "http://127.0.0.1:9090"
        return value.hasSuffix("/") ? String(value.dropLast()) : value
    }

    /// Sends one signed request and prints the JSON answer; non-2xx answers exit 1.
    func send(_ method: HTTPMethod, _ path: String, body: String?) async throws {
        let signer = RailSigner(secret: secret ?? ProcessInfo.processInfo.environment["KOSH_RAILS_SECRET"] ?? SandboxConfiguration.defaultSecret)
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        do {
            let request = signer.request(baseURL: baseURL, method: method, path: path, body: body)
            let response = try await client.execute(request, timeout: .seconds(10))
            let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
            try await client.shutdown()
            print(text)
            guard (200..<300).contains(response.status.code) else { throw ExitCode(1) }
        } catch {
            try? await client.shutdown()
            throw error
        }
    }
}

func checkedJSON(_ text: String, _ what: String) throws -> String {
    guard case .object = try? JSON.parse(text) else { throw ValidationError("\(what) must be a JSON object") }
    return text
}

struct SandboxFault: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fault",
        abstract: "Inject faults into one rail, e.g. kosh sandbox fault upi_switch '{\"down\": true}' (fields: docs/SANDBOX.md). Without JSON: show all faults.")
    @Argument(help: ArgumentHelp("The rail: \(SandboxRails.described)")) var rail: String?
    @Argument(help: "The fault fields to set, as JSON") var json: String?
    @OptionGroup var target: SandboxTarget

    func run() async throws {
        guard let rail else { return try await target.send(.GET, "/sandbox/v1/faults", body: nil) }
        guard let json else { throw ValidationError("give the fault fields as JSON, e.g. '{\"error_rate\": 0.5}'") }
        try await target.send(.PUT, "/sandbox/v1/faults/\(rail)", body: try checkedJSON(json, "the fault"))
    }
}

struct SandboxConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Set payer timings, e.g. '{\"payer_delay_ms\": 300, \"late_delay_ms\": 45000, \"collect_expiry_ms\": 300000}'.")
    @Argument var json: String?
    @OptionGroup var target: SandboxTarget

    func run() async throws {
        guard let json else { return try await target.send(.GET, "/sandbox/v1/config", body: nil) }
        try await target.send(.PUT, "/sandbox/v1/config", body: try checkedJSON(json, "the config"))
    }
}

struct SandboxPay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pay", abstract: "Play the payer's UPI app paying an intent link / QR: kosh sandbox pay 'upi://pay?…' success@ybl")
    @Argument var link: String
    @Argument var payerVPA: String
    @Option(help: "Paise the payer types, for a merchant's QR code without a fixed amount (no am= in the link).") var amount: Int64?
    @OptionGroup var target: SandboxTarget

    func run() async throws {
        var fields: [(String, JSON)] = [("link", .string(link)), ("payer_vpa", .string(payerVPA))]
        if let amount { fields.append(("amount", .int(amount))) }
        let body = JSON.object(fields).serialized()
        try await target.send(.POST, "/upi/v1/app/pay", body: body)
    }
}

struct SandboxStats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Calls, injected errors and callbacks per rail.")
    @OptionGroup var target: SandboxTarget
    func run() async throws { try await target.send(.GET, "/sandbox/v1/stats", body: nil) }
}

struct SandboxReset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reset", abstract: "Clear faults, config, transactions and accounts.")
    @Option(help: "Reseed the fault draws.") var seed: UInt64?
    @OptionGroup var target: SandboxTarget
    func run() async throws {
        try await target.send(.POST, "/sandbox/v1/reset", body: seed.map { #"{"seed": \#($0)}"# })
    }
}
