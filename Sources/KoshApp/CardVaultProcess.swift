import Foundation
import KoshVault
import Logging

/// The card vault `kosh serve` talks to: its own process at `KOSH_VAULT_URL`, or — the
/// two-command set-up — a vault run in this process on a Unix socket in its own directory, with
/// its own database and keys (`KoshVault`), reached through the same signed channel.
public struct CardVaultProcess: Sendable {
    public let client: VaultClient
    let running: RunningVaultServer?
    let engine: VaultEngine?

    public static func start(_ config: KoshConfiguration, logger: Logger) async throws -> CardVaultProcess {
        if let url = config.vaultURL {
            let key = try VaultChannelKey.load(directory: config.vaultDirectory, environment: ProcessInfo.processInfo.environment)
            return CardVaultProcess(client: VaultClient(endpoint: try VaultEndpoint(url: url), channelKey: key, logger: logger),
                                    running: nil, engine: nil)
        }
        let engine = try await VaultEngine.open(directory: config.vaultDirectory, logger: logger)
        do {
            let running = try await VaultServer(engine: engine, address: .unixSocket(path: (config.vaultDirectory as NSString).appendingPathComponent("vault.sock")),
                                                logger: logger).start()
            logger.info("Card vault in-process", metadata: ["vault": "\(running.endpoint.url)"])
            return CardVaultProcess(client: VaultClient(endpoint: running.endpoint, channelKey: engine.channelKey, logger: logger),
                                    running: running, engine: engine)
        } catch {
            await engine.close()
            throw error
        }
    }

    public func stop() async {
        try? await client.shutdown()
        await running?.stop()
        await engine?.close()
    }
}
