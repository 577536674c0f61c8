import Hummingbird
import Logging
import NIOCore

/// Configuration of the sandbox server (docs/SANDBOX.md).
public struct SandboxConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port; `onServerRunning` reports the one bound.
    public var port: Int
    /// The card acquirer's ISO 8583 port (docs/CARDS.md §2), on the same host; 0 picks a free
    /// port, which `onAcquirerRunning` reports.
    public var acquirerPort: Int
    /// Seeds the random source of fault draws; nil seeds from the system.
    public var seed: UInt64?
    /// Shared HMAC secret for requests and callbacks.
    public var secret: String
    /// The sandbox's time (`SandboxClock`); tests pass a `ManualSandboxClock` and step it.
    public var clock: any SandboxClock

    public static let defaultSecret = "kosh-sandbox-dev-secret"

    public init(host: String = "127.0.0.1", port: Int = 9090, acquirerPort: Int = 9091, seed: UInt64? = nil,
                secret: String = SandboxConfiguration.defaultSecret, clock: any SandboxClock = SystemSandboxClock()) {
        self.host = host
        self.port = port
        self.acquirerPort = acquirerPort
        self.seed = seed
        self.secret = secret
        self.clock = clock
    }
}

/// The sandbox of India's payment rails (docs/SANDBOX.md): a UPI switch, two PSP aggregators,
/// banks, payer apps, the card network, netbanking banks and wallet providers
/// (docs/REDIRECT_METHODS.md) and fault injection, served over HTTP.
public struct Sandbox: Sendable {
    public let configuration: SandboxConfiguration
    public let logger: Logger

    public init(configuration: SandboxConfiguration, logger: Logger = Logger(label: "kosh.sandbox")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The server as a Hummingbird application (a swift-service-lifecycle Service), with the
    /// card acquirer's TCP server beside it. Each call makes a fresh, empty sandbox.
    /// `onServerRunning` is called with the bound HTTP port once it listens, `onAcquirerRunning`
    /// with the acquirer's. When the application stops (graceful shutdown or cancellation) the
    /// acquirer closes its connections, pending payer decisions and callbacks are cancelled and
    /// the callback HTTP client is shut down before `run()` returns.
    public func makeApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
                                onAcquirerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        makeSandboxApplication(onServerRunning: onServerRunning, onAcquirerRunning: onAcquirerRunning)
    }

    /// `makeApplication`, with the runtime in reach of tests (`runDueWork`).
    func makeSandboxApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in },
                                onAcquirerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> SandboxApplication {
        let runtime = SandboxRuntime(secret: configuration.secret, seed: configuration.seed, clock: configuration.clock, logger: logger)
        let notifications = NotificationProviders()
        let router = Router(context: SandboxRequestContext.self)
        router.add(middleware: SandboxErrorMiddleware())
        router.add(middleware: SignatureExceptRedirectPages(signature: SignatureMiddleware(secret: configuration.secret, now: { runtime.now() })))
        SwitchAPI(runtime: runtime).register(on: router)
        AlphapayAPI(runtime: runtime).register(on: router)
        BetapayAPI(runtime: runtime).register(on: router)
        ControlAPI(runtime: runtime).register(on: router)
        notifications.register(on: router)
        ACSAPI(runtime: runtime, notifications: notifications).register(on: router)
        ChallengePages(runtime: runtime, notifications: notifications).register(on: router)
        CardControlAPI(runtime: runtime).register(on: router)
        AlphapayCardAPI(runtime: runtime, notifications: notifications).register(on: router)
        RedirectAPI(runtime: runtime).register(on: router)
        RedirectPages(runtime: runtime).register(on: router)
        let acquirer = AcquirerServer(host: configuration.host, port: configuration.acquirerPort, runtime: runtime, logger: logger)
        let application = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { channel in
                // The listening socket closes as soon as shutdown starts: stop timers, callbacks
                // and injected hangs then, so in-flight requests finish promptly.
                channel.closeFuture.whenComplete { _ in runtime.beginShutdown() }
                await onServerRunning(channel.localAddress?.port ?? 0)
            },
            logger: logger)
        return SandboxApplication(base: application, runtime: runtime, acquirer: acquirer, onAcquirerRunning: onAcquirerRunning)
    }
}

/// The Hummingbird application plus the sandbox's own clean-up after the server has stopped.
struct SandboxApplication: ApplicationProtocol {
    typealias Base = Application<RouterResponder<SandboxRequestContext>>
    typealias Responder = Base.Responder

    let base: Base
    let runtime: SandboxRuntime
    let acquirer: AcquirerServer
    let onAcquirerRunning: @Sendable (Int) async -> Void

    var responder: Responder { base.responder }
    var eventLoopGroup: any EventLoopGroup { base.eventLoopGroup }
    var configuration: ApplicationConfiguration { base.configuration }
    var logger: Logger { base.logger }
    var processesRunBeforeServerStart: [@Sendable () async throws -> Void] { base.processesRunBeforeServerStart }

    @Sendable func onServerRunning(_ channel: any Channel) async { await base.onServerRunning(channel) }

    /// The pass over work due by the sandbox's clock (`SandboxRuntime.runDueWork`): what a test
    /// calls after stepping a `ManualSandboxClock`.
    func runDueWork() async { await runtime.runDueWork() }

    /// Runs the HTTP server and the acquirer; once either has stopped (the HTTP server on
    /// shutdown, or a failure such as a port in use), stops the other, then cancels and awaits
    /// the sandbox's tasks and shuts its HTTP client down.
    func run() async throws {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await base.run() }
                group.addTask { [acquirer, onAcquirerRunning] in try await acquirer.run(onRunning: onAcquirerRunning) }
                defer { group.cancelAll() }
                try await group.next()
            }
        } catch {
            await runtime.shutdown()
            throw error
        }
        await runtime.shutdown()
    }
}
