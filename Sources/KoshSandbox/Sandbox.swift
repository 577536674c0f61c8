import Hummingbird
import Logging
import NIOCore

/// Configuration of the sandbox server (docs/SANDBOX.md).
public struct SandboxConfiguration: Sendable {
    public var host: String
    /// 0 picks a free port; `onServerRunning` reports the one bound.
    public var port: Int
    /// Seeds the random source of fault draws; nil seeds from the system.
    public var seed: UInt64?
    /// Shared HMAC secret for requests and callbacks.
    public var secret: String
    /// The sandbox's time (`SandboxClock`); tests pass a `ManualSandboxClock` and step it.
    public var clock: any SandboxClock

    public static let defaultSecret = "kosh-sandbox-dev-secret"

    public init(host: String = "127.0.0.1", port: Int = 9090, seed: UInt64? = nil, secret: String = SandboxConfiguration.defaultSecret,
                clock: any SandboxClock = SystemSandboxClock()) {
        self.host = host
        self.port = port
        self.seed = seed
        self.secret = secret
        self.clock = clock
    }
}

/// The sandbox of India's payment rails (docs/SANDBOX.md): a UPI switch, two PSP aggregators,
/// banks, payer apps and fault injection, served over HTTP.
public struct Sandbox: Sendable {
    public let configuration: SandboxConfiguration
    public let logger: Logger

    public init(configuration: SandboxConfiguration, logger: Logger = Logger(label: "kosh.sandbox")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The server as a Hummingbird application (a swift-service-lifecycle Service). Each call
    /// makes a fresh, empty sandbox. `onServerRunning` is called with the bound port once it
    /// listens. When the application stops (graceful shutdown or cancellation) pending payer
    /// decisions and callbacks are cancelled and the callback HTTP client is shut down before
    /// `run()` returns.
    public func makeApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        makeSandboxApplication(onServerRunning: onServerRunning)
    }

    /// `makeApplication`, with the runtime in reach of tests (`runDueWork`).
    func makeSandboxApplication(onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> SandboxApplication {
        let runtime = SandboxRuntime(secret: configuration.secret, seed: configuration.seed, clock: configuration.clock, logger: logger)
        let router = Router(context: SandboxRequestContext.self)
        router.add(middleware: SandboxErrorMiddleware())
        router.add(middleware: SignatureMiddleware(secret: configuration.secret, now: { runtime.now() }))
        SwitchAPI(runtime: runtime).register(on: router)
        AlphapayAPI(runtime: runtime).register(on: router)
        BetapayAPI(runtime: runtime).register(on: router)
        ControlAPI(runtime: runtime).register(on: router)
        NotificationProviders().register(on: router)
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
        return SandboxApplication(base: application, runtime: runtime)
    }
}

/// The Hummingbird application plus the sandbox's own clean-up after the server has stopped.
struct SandboxApplication: ApplicationProtocol {
    typealias Base = Application<RouterResponder<SandboxRequestContext>>
    typealias Responder = Base.Responder

    let base: Base
    let runtime: SandboxRuntime

    var responder: Responder { base.responder }
    var eventLoopGroup: any EventLoopGroup { base.eventLoopGroup }
    var configuration: ApplicationConfiguration { base.configuration }
    var logger: Logger { base.logger }
    var processesRunBeforeServerStart: [@Sendable () async throws -> Void] { base.processesRunBeforeServerStart }

    @Sendable func onServerRunning(_ channel: any Channel) async { await base.onServerRunning(channel) }

    /// The pass over work due by the sandbox's clock (`SandboxRuntime.runDueWork`): what a test
    /// calls after stepping a `ManualSandboxClock`.
    func runDueWork() async { await runtime.runDueWork() }

    /// Runs the server; once it has stopped, cancels and awaits the sandbox's tasks and shuts
    /// its HTTP client down.
    func run() async throws {
        do {
            try await base.run()
        } catch {
            await runtime.shutdown()
            throw error
        }
        await runtime.shutdown()
    }
}
