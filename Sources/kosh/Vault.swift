import ArgumentParser
import Foundation
import KoshCore
import KoshJSON
import KoshVault
import Logging
import ServiceLifecycle

struct VaultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vault",
        abstract: "The card tokenisation vault: the cardholder-data zone's own service, store and keys (docs/CARDS.md §1).",
        subcommands: [VaultServe.self, VaultRotate.self, VaultPurge.self, VaultStatusCommand.self])
}

/// The vault's directory: its keyring (vault-keys.json), vault.db and, by default, its socket.
struct VaultDirectoryOption: ParsableArguments {
    @Option(name: .customLong("dir"), help: "The vault's directory (default: KOSH_VAULT_DIR, else ./kosh-vault); created 0700 when missing.")
    var directory: String?

    var path: String {
        if let directory { return directory }
        if let value = ProcessInfo.processInfo.environment["KOSH_VAULT_DIR"], !value.isEmpty { return value }
        return "./kosh-vault"
    }

    func open(logger: Logger) async throws -> VaultEngine {
        try await VaultEngine.open(directory: path, logger: logger)
    }

    /// The one-shot commands (rotate, purge, status): opens the vault, runs `body`, closes the
    /// vault whatever happened, then prints what `body` answered.
    func run(_ body: (VaultEngine) async throws -> JSON) async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let engine = try await open(logger: makeLogger("kosh.vault"))
        let answer: JSON
        do {
            answer = try await body(engine)
        } catch {
            await engine.close()
            throw error
        }
        await engine.close()
        print(answer.serialized())
    }
}

let vaultEnvironmentHelp = """
    Environment: KOSH_VAULT_DIR (the directory), KOSH_VAULT_MASTER_KEYS ("1:<base64>,2:<base64>", 32-byte \
    AES-256 keys, replacing the keyring file's master keys), KOSH_VAULT_CHANNEL_KEY (base64, replacing its \
    request-signing key), KOSH_LOG_LEVEL.
    """

struct VaultServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the vault's HTTP API on a Unix socket (default: DIR/vault.sock) or on TCP (--host/--port); purges every 60 s.",
        discussion: vaultEnvironmentHelp)
    @OptionGroup var directory: VaultDirectoryOption
    @Option(help: "Listen on TCP at this host (default 127.0.0.1 when --port is given).") var host: String?
    @Option(help: "Listen on TCP at this port.") var port: Int?
    @Option(help: "Listen on this Unix domain socket path.") var socket: String?

    func validate() throws {
        if socket != nil, host != nil || port != nil { throw ValidationError("give --socket or --host/--port, not both") }
        if host != nil, port == nil { throw ValidationError("--host needs --port") }
        if let port, !(0...65_535).contains(port) { throw ValidationError("--port must be 0 to 65535") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = makeLogger("kosh.vault")
        let address: VaultEndpoint
        if let port {
            address = .tcp(host: host ?? "127.0.0.1", port: port)
        } else {
            address = .unixSocket(path: socket ?? (directory.path as NSString).appendingPathComponent("vault.sock"))
        }
        let engine = try await directory.open(logger: logger)
        let server = VaultServer(engine: engine, address: address, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [.init(service: server)], gracefulShutdownSignals: [.sigterm, .sigint],
                                                      logger: logger))
        do {
            try await group.run()
        } catch {
            await engine.close()
            throw error
        }
        await engine.close()
    }
}

struct VaultRotate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate",
        abstract: "Make a new master key version and re-wrap every data key under it (the vault may keep serving); retire the old versions.",
        discussion: vaultEnvironmentHelp + " With KOSH_VAULT_MASTER_KEYS, add the new version to it first: the rotation re-wraps under its highest version.")
    @OptionGroup var directory: VaultDirectoryOption

    func run() async throws {
        try await directory.run { engine in
            let rotation = try await engine.rotate()
            return JSON.object([("master_key_version", .int(Int64(rotation.masterKeyVersion))), ("rewrapped", .int(Int64(rotation.rewrapped))),
                                ("retired_versions", .array(rotation.retiredVersions.map { .int(Int64($0)) }))])
        }
    }
}

struct VaultPurge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "purge",
        abstract: "Delete every card whose retention has passed (cards on file are kept); prints {\"purged\": n}.",
        discussion: vaultEnvironmentHelp)
    @OptionGroup var directory: VaultDirectoryOption

    func run() async throws {
        try await directory.run { engine in JSON.object([("purged", .int(Int64(try await engine.purgeExpired())))]) }
    }
}

struct VaultStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Master key versions, data keys per version and card counts, as JSON (never a card number).",
        discussion: vaultEnvironmentHelp)
    @OptionGroup var directory: VaultDirectoryOption

    func run() async throws {
        try await directory.run { engine in try await engine.status().json }
    }
}
