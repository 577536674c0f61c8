import Hummingbird
import Logging

/// Configuration of the sandbox server (docs/SANDBOX.md).
public struct SandboxConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port; `onServerRunning` reports the one bound.
    public var port: Int
    /// Seeds the random source of fault draws; nil seeds from the system.
    public var seed: UInt64?
    /// Shared HMAC secret for requests and callbacks.
    public var secret: String

    public static let defaultSecret = "kosh-sandbox-dev-secret"

    public init(host: String = "127.0.0.1", port: Int = 9090, seed: UInt64? = nil, secret: String = SandboxConfiguration.defaultSecret) {
        self.host = host
        self.port = port
        self.seed = seed
        self.secret = secret
    }
}

/// The sandbox of India's payment rails (docs/SANDBOX.md). PLACEHOLDER: implemented on the sandbox branch.
public struct Sandbox: Sendable {
    public let configuration: SandboxConfiguration
    public let logger: Logger

    public init(configuration: SandboxConfiguration, logger: Logger = Logger(label: "kosh.sandbox")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The server as a Hummingbird application (a swift-service-lifecycle Service).
    /// `onServerRunning` is called with the bound port once it listens.
    public func makeApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        return Application(router: router,
                           configuration: .init(address: .hostname(configuration.host, port: configuration.port)),
                           onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? 0) },
                           logger: logger)
    }
}
