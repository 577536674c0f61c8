import Foundation
import Hummingbird
import KoshCore
import Logging
import NIOCore
import ServiceLifecycle

/// Where the vault listens, or where a client finds it.
public enum VaultEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// Port 0 (to serve) picks a free port; the running server reports the one bound.
    case tcp(host: String, port: Int)
    case unixSocket(path: String)

    /// `http://HOST:PORT`, `http+unix://<percent-encoded socket path>` (AsyncHTTPClient's form)
    /// or `unix:PATH`.
    public init(url: String) throws {
        if url.hasPrefix("unix:"), !url.hasPrefix("unix://") {
            self = .unixSocket(path: String(url.dropFirst("unix:".count)))
        } else if url.hasPrefix("http+unix://") {
            let encoded = url.dropFirst("http+unix://".count).prefix { $0 != "/" }
            guard let path = String(encoded).removingPercentEncoding, !path.isEmpty else { throw VaultSetupError("bad vault URL \(url)") }
            self = .unixSocket(path: path)
        } else if let components = URLComponents(string: url), components.scheme == "http", let host = components.host, !host.isEmpty,
                  let port = components.port, components.path.isEmpty || components.path == "/" {
            self = .tcp(host: host, port: port)
        } else {
            throw VaultSetupError("the vault URL must be http://HOST:PORT, http+unix://ENCODED-PATH or unix:PATH, not \(url)")
        }
    }

    /// The base URL for AsyncHTTPClient.
    public var url: String {
        switch self {
        case .tcp(let host, let port): "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        case .unixSocket(let path):
            "http+unix://" + (path.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? path)
        }
    }

    public var description: String { url }
}

/// The vault's HTTP server (docs/CARDS.md §1) over a `VaultEngine`, on TCP or a Unix domain
/// socket (created mode 0600), with the retention purge every `purgeInterval`. A
/// swift-service-lifecycle `Service`: `run()` serves until cancelled or a graceful shutdown;
/// `start()` runs it in a task and answers once it listens.
public struct VaultServer: Service {
    public let engine: VaultEngine
    public let address: VaultEndpoint
    public let purgeInterval: Duration
    let logger: Logger
    let onRunning: @Sendable (VaultEndpoint) async -> Void

    public init(engine: VaultEngine, address: VaultEndpoint, purgeInterval: Duration = .seconds(60),
                logger: Logger = Logger(label: "kosh.vault"), onRunning: @escaping @Sendable (VaultEndpoint) async -> Void = { _ in }) {
        self.engine = engine
        self.address = address
        self.purgeInterval = purgeInterval
        self.logger = logger
        self.onRunning = onRunning
    }

    public func run() async throws {
        let router = Router(context: VaultRequestContext.self)
        VaultAPI(engine: engine, key: engine.channelKey, logger: logger).register(on: router)
        let bind: BindAddress
        switch address {
        case .tcp(let host, let port): bind = .hostname(host, port: port)
        case .unixSocket(let path): bind = .unixDomainSocket(path: path)
        }
        let address = self.address
        let logger = self.logger
        let onRunning = self.onRunning
        let application = Application(router: router, configuration: .init(address: bind, serverName: nil), onServerRunning: { channel in
            let bound: VaultEndpoint
            switch address {
            case .tcp(let host, let port): bound = .tcp(host: host, port: channel.localAddress?.port ?? port)
            case .unixSocket(let path):
                chmod(path, 0o600)
                bound = .unixSocket(path: path)
            }
            logger.notice("vault listening", metadata: ["vault.endpoint": "\(bound)"])
            await onRunning(bound)
        }, logger: logger)
        let engine = self.engine
        let interval = purgeInterval
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await application.run() }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    if Task.isCancelled { break }
                    do {
                        try await engine.purgeExpired()
                    } catch {
                        logger.error("vault purge failed", metadata: ["error.type": "\(type(of: error))"])
                    }
                }
            }
            // The server ends on a graceful shutdown or cancellation; the purge loop with it.
            try await group.next()
            group.cancelAll()
        }
    }

    /// Runs the server in a task; answers once it listens (or throws why it could not).
    public func start() async throws -> RunningVaultServer {
        let (endpoints, continuation) = AsyncStream<VaultEndpoint>.makeStream()
        let server = VaultServer(engine: engine, address: address, purgeInterval: purgeInterval, logger: logger) { endpoint in
            continuation.yield(endpoint)
            continuation.finish()
            await onRunning(endpoint)
        }
        let task = Task {
            defer { continuation.finish() }
            try await server.run()
        }
        var iterator = endpoints.makeAsyncIterator()
        guard let endpoint = await iterator.next() else {
            try await task.value
            throw VaultSetupError("the vault server stopped before it listened")
        }
        return RunningVaultServer(endpoint: endpoint, task: task)
    }
}

/// A server `VaultServer.start()` started.
public final class RunningVaultServer: Sendable {
    /// Where it listens (the bound port for TCP port 0).
    public let endpoint: VaultEndpoint
    let task: Task<Void, any Error>

    init(endpoint: VaultEndpoint, task: Task<Void, any Error>) {
        self.endpoint = endpoint
        self.task = task
    }

    /// Stops the server and waits until it has.
    public func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}
