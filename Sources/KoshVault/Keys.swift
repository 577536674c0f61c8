import Crypto
import Foundation
import KoshJSON
import Synchronization

/// Something wrong with the vault's set-up (its directory, keyring file or environment).
public struct VaultSetupError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The key that signs requests to the vault and its answers (docs/CARDS.md §1, "Signature").
/// The application zone needs this key and nothing else of the vault's.
public struct VaultChannelKey: Sendable {
    let key: SymmetricKey

    public init(bytes: [UInt8]) {
        precondition(bytes.count >= 32, "a channel key is at least 32 bytes")
        key = SymmetricKey(data: bytes)
    }

    public init?(base64: String) {
        guard let data = Data(base64Encoded: base64), data.count >= 32 else { return nil }
        key = SymmetricKey(data: data)
    }

    public var base64: String { key.withUnsafeBytes { Data($0).base64EncodedString() } }

    /// `KOSH_VAULT_CHANNEL_KEY` (base64) when set, else the channel key of the keyring file in
    /// `directory` (which must exist: this does not create one).
    public static func load(directory: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> VaultChannelKey {
        if let text = environment[VaultKeys.channelKeyVariable], !text.isEmpty {
            guard let key = VaultChannelKey(base64: text) else { throw VaultSetupError("\(VaultKeys.channelKeyVariable) must be at least 32 bytes, base64") }
            return key
        }
        return try VaultKeys.readFile(VaultKeys.keyringPath(directory)).channelKey
    }
}

/// The vault's keyring: versioned AES-256 master keys, the fingerprint key and the channel key.
///
/// By default all of them live in `vault-keys.json` in the vault's directory (created mode 0600
/// by the first `open`). `KOSH_VAULT_MASTER_KEYS` ("1:<base64>,2:<base64>", 32-byte keys)
/// replaces the file's master keys for production; `KOSH_VAULT_CHANNEL_KEY` replaces its
/// channel key. A version the keyring does not know is looked for again in the file (another
/// process rotated) before giving up.
final class VaultKeys: Sendable {
    static let fileName = "vault-keys.json"
    static let lockName = "vault-keys.lock"
    static let masterKeysVariable = "KOSH_VAULT_MASTER_KEYS"
    static let channelKeyVariable = "KOSH_VAULT_CHANNEL_KEY"
    static let format = "kosh-vault-keys/1"

    struct MasterKey: Sendable {
        let version: Int
        /// nil once retired (the material is erased from the file).
        let key: SymmetricKey?
        let createdAt: Int64
    }

    /// The keyring file's content.
    struct File: Sendable {
        var masterKeys: [MasterKey]
        var fingerprintKey: [UInt8]
        var channelKey: VaultChannelKey
    }

    struct State {
        var masterKeys: [Int: SymmetricKey]
        var retired: Set<Int>
    }

    let directory: String
    let path: String
    let fingerprinter: CardFingerprinter
    let channelKey: VaultChannelKey
    /// The master keys from `KOSH_VAULT_MASTER_KEYS`, when it is set.
    let environmentKeys: [Int: SymmetricKey]?
    private let state: Mutex<State>

    static func keyringPath(_ directory: String) -> String { (directory as NSString).appendingPathComponent(fileName) }

    /// Opens the keyring in `directory`, creating the directory (0700) and the file (0600) if missing.
    static func open(directory: String, environment: [String: String], now: Int64) async throws -> VaultKeys {
        try VaultFiles.makeDirectory(directory)
        let path = keyringPath(directory)
        let environmentKeys = try parseEnvironmentKeys(environment[masterKeysVariable])
        if !FileManager.default.fileExists(atPath: path) {
            try await VaultFiles.withLock((directory as NSString).appendingPathComponent(lockName)) {
                guard !FileManager.default.fileExists(atPath: path) else { return }
                let first = environmentKeys == nil ? [MasterKey(version: 1, key: SymmetricKey(size: .bits256), createdAt: now)] : []
                let file = File(masterKeys: first, fingerprintKey: SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) },
                                channelKey: VaultChannelKey(bytes: SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }))
                try VaultFiles.writeAtomically(path, contents: Array(serialize(file).utf8))
            }
        }
        let file = try readFile(path)
        var channelKey = file.channelKey
        if let text = environment[channelKeyVariable], !text.isEmpty {
            guard let key = VaultChannelKey(base64: text) else { throw VaultSetupError("\(channelKeyVariable) must be at least 32 bytes, base64") }
            channelKey = key
        }
        let keys = VaultKeys(directory: directory, path: path, file: file, channelKey: channelKey, environmentKeys: environmentKeys)
        guard keys.latestVersion != nil else {
            throw VaultSetupError(environmentKeys == nil ? "the keyring \(path) holds no usable master key"
                                                         : "\(masterKeysVariable) holds no master key")
        }
        return keys
    }

    private init(directory: String, path: String, file: File, channelKey: VaultChannelKey, environmentKeys: [Int: SymmetricKey]?) {
        self.directory = directory
        self.path = path
        self.fingerprinter = CardFingerprinter(key: file.fingerprintKey)
        self.channelKey = channelKey
        self.environmentKeys = environmentKeys
        self.state = Mutex(Self.state(of: file, environmentKeys: environmentKeys))
    }

    private static func state(of file: File, environmentKeys: [Int: SymmetricKey]?) -> State {
        if let environmentKeys { return State(masterKeys: environmentKeys, retired: []) }
        var keys: [Int: SymmetricKey] = [:]
        var retired: Set<Int> = []
        for master in file.masterKeys {
            if let key = master.key { keys[master.version] = key } else { retired.insert(master.version) }
        }
        return State(masterKeys: keys, retired: retired)
    }

    /// The newest master key version this keyring can wrap under.
    var latestVersion: Int? { state.withLock { $0.masterKeys.keys.max() } }
    var versions: [Int] { state.withLock { $0.masterKeys.keys.sorted() } }
    var retiredVersions: [Int] { state.withLock { $0.retired.sorted() } }

    /// The master key of `version`; reads the file again first when it is not known (a rotation
    /// by another process), so running servers pick up new versions without a restart.
    func masterKey(version: Int) throws -> SymmetricKey {
        if let key = state.withLock({ $0.masterKeys[version] }) { return key }
        try reload()
        guard let key = state.withLock({ $0.masterKeys[version] }) else {
            throw VaultCryptoError(description: "master key version \(version) is not in the keyring")
        }
        return key
    }

    func reload() throws {
        guard environmentKeys == nil else { return }
        let file = try Self.readFile(path)
        state.withLock { $0 = Self.state(of: file, environmentKeys: nil) }
    }

    // MARK: Rotation (the file's master keys; the caller holds the rotation lock)

    /// Adds a new master key version to the file and answers it.
    func addVersion(now: Int64) throws -> Int {
        var file = try Self.readFile(path)
        let version = (file.masterKeys.map(\.version).max() ?? 0) + 1
        file.masterKeys.append(MasterKey(version: version, key: SymmetricKey(size: .bits256), createdAt: now))
        try VaultFiles.writeAtomically(path, contents: Array(Self.serialize(file).utf8))
        try reload()
        return version
    }

    /// Erases every master key older than `version` from the file; answers the versions retired.
    func retire(below version: Int) throws -> [Int] {
        var file = try Self.readFile(path)
        var retired: [Int] = []
        file.masterKeys = file.masterKeys.map { master in
            guard master.version < version, master.key != nil else { return master }
            retired.append(master.version)
            return MasterKey(version: master.version, key: nil, createdAt: master.createdAt)
        }
        try VaultFiles.writeAtomically(path, contents: Array(Self.serialize(file).utf8))
        try reload()
        return retired
    }

    var lockPath: String { (directory as NSString).appendingPathComponent(Self.lockName) }

    // MARK: The file and the environment

    static func parseEnvironmentKeys(_ text: String?) throws -> [Int: SymmetricKey]? {
        guard let text, !text.isEmpty else { return nil }
        var keys: [Int: SymmetricKey] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, let version = Int(parts[0]), version > 0, let data = Data(base64Encoded: parts[1]), data.count == 32,
                  keys[version] == nil else {
                throw VaultSetupError("\(masterKeysVariable) must be version:base64 pairs of 32-byte keys, comma-separated, e.g. 1:…,2:…")
            }
            keys[version] = SymmetricKey(data: data)
        }
        return keys
    }

    static func readFile(_ path: String) throws -> File {
        guard let data = FileManager.default.contents(atPath: path) else { throw VaultSetupError("cannot read the vault keyring \(path)") }
        func bad(_ what: String) -> VaultSetupError { VaultSetupError("the vault keyring \(path) is damaged: \(what)") }
        guard let json = try? JSON.parse(Array(data)), case .string(let format)? = json["format"], format == Self.format else {
            throw bad("not a \(Self.format) file")
        }
        guard case .string(let fingerprint)? = json["fingerprint_key"], let fingerprintKey = Data(base64Encoded: fingerprint),
              fingerprintKey.count == 32 else { throw bad("fingerprint_key") }
        guard case .string(let channel)? = json["channel_key"], let channelKey = VaultChannelKey(base64: channel) else {
            throw bad("channel_key")
        }
        guard case .array(let items)? = json["master_keys"] else { throw bad("master_keys") }
        var masters: [MasterKey] = []
        for item in items {
            guard case .int(let version)? = item["version"], version > 0, case .int(let createdAt)? = item["created_at"] else {
                throw bad("a master key without version or created_at")
            }
            var key: SymmetricKey?
            if case .string(let text)? = item["key"] {
                guard let raw = Data(base64Encoded: text), raw.count == 32 else { throw bad("master key \(version)") }
                key = SymmetricKey(data: raw)
            }
            masters.append(MasterKey(version: Int(version), key: key, createdAt: createdAt))
        }
        return File(masterKeys: masters, fingerprintKey: Array(fingerprintKey), channelKey: channelKey)
    }

    static func serialize(_ file: File) -> String {
        let masters: [JSON] = file.masterKeys.map { master in
            var fields: [(String, JSON)] = [("version", .int(Int64(master.version))), ("created_at", .int(master.createdAt))]
            if let key = master.key {
                fields.append(("key", .string(key.withUnsafeBytes { Data($0).base64EncodedString() })))
            } else {
                fields.append(("retired", .bool(true)))
            }
            return .object(fields)
        }
        return JSON.object([
            ("format", .string(Self.format)),
            ("master_keys", .array(masters)),
            ("fingerprint_key", .string(Data(file.fingerprintKey).base64EncodedString())),
            ("channel_key", .string(file.channelKey.base64)),
        ]).serialized() + "\n"
    }
}
