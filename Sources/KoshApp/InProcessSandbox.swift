import KoshSandbox
import KoshStorage
import Logging
import ServiceLifecycle

/// The sandbox started in-process for `kosh serve`, on a free loopback port.
public struct InProcessSandbox: Sendable {
    public let url: String
    /// The card acquirer's ISO 8583 port on 127.0.0.1.
    public let acquirerPort: Int
    let group: ServiceGroup

    public static func start(port: Int = 0, acquirerPort: Int = 0, seed: UInt64?, secret: String,
                             logger: Logger) async throws -> (InProcessSandbox, Task<Void, any Error>) {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let (acquirerPorts, acquirerContinuation) = AsyncStream<Int>.makeStream()
        let sandbox = Sandbox(configuration: SandboxConfiguration(host: "127.0.0.1", port: port, acquirerPort: acquirerPort, seed: seed,
                                                                  secret: secret),
                              logger: logger)
        let app = sandbox.makeApplication(onServerRunning: { port in continuation.yield(port) },
                                          onAcquirerRunning: { port in acquirerContinuation.yield(port) })
        let group = ServiceGroup(configuration: .init(services: [.init(service: app)], logger: logger))
        let task = Task {
            defer {
                continuation.finish()
                acquirerContinuation.finish()
            }
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        var acquirerIterator = acquirerPorts.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0, let acquirerPort = await acquirerIterator.next(), acquirerPort > 0 else {
            throw StorageError.badURL("the in-process sandbox did not start")
        }
        return (InProcessSandbox(url: "http://127.0.0.1:\(port)", acquirerPort: acquirerPort, group: group), task)
    }

    public func stop() async {
        await group.triggerGracefulShutdown()
    }
}
