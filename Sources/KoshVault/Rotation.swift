import Crypto
import KoshCore
import KoshJSON

/// What a rotation did.
public struct VaultRotation: Sendable, Hashable {
    /// The master key version every data key is now wrapped under.
    public let masterKeyVersion: Int
    /// Data keys re-wrapped.
    public let rewrapped: Int
    /// Versions no data key is wrapped under any more: erased from the keyring file, or, with
    /// `KOSH_VAULT_MASTER_KEYS`, to be removed from it by the operator.
    public let retiredVersions: [Int]
}

/// What `kosh vault status` shows: versions and counts, nothing of any card.
public struct VaultStatus: Sendable, Hashable {
    public let directory: String
    public let masterKeyVersion: Int
    public let masterKeysFromEnvironment: Bool
    /// Versions the keyring holds, and those it erased.
    public let keyringVersions: [Int]
    public let retiredVersions: [Int]
    /// Data keys by the master key version they are wrapped under.
    public let dataKeysByMasterVersion: [Int: Int]
    public let cards: Int
    public let cardsOnFile: Int
    public let cardsPastRetention: Int
    public let purgedTokens: Int
    /// CVVs held in this process's memory.
    public let heldCVVs: Int

    public var json: JSON {
        .object([
            ("directory", .string(directory)),
            ("master_key_version", .int(Int64(masterKeyVersion))),
            ("master_keys_from", .string(masterKeysFromEnvironment ? VaultKeys.masterKeysVariable : VaultKeys.fileName)),
            ("keyring_versions", .array(keyringVersions.map { .int(Int64($0)) })),
            ("retired_versions", .array(retiredVersions.map { .int(Int64($0)) })),
            ("data_keys", .array(dataKeysByMasterVersion.keys.sorted().map { version in
                .object([("master_key_version", .int(Int64(version))), ("count", .int(Int64(dataKeysByMasterVersion[version] ?? 0)))])
            })),
            ("cards", .object([("total", .int(Int64(cards))), ("card_on_file", .int(Int64(cardsOnFile))),
                               ("past_retention", .int(Int64(cardsPastRetention))), ("purged_tokens", .int(Int64(purgedTokens)))])),
            ("held_cvvs", .int(Int64(heldCVVs))),
        ])
    }
}

extension VaultEngine {
    /// Makes a new master key version and re-wraps every data key under it, one key per
    /// transaction, then retires the older versions. The vault keeps serving meanwhile: a data
    /// key is unwrapped under the version its row names, and new data keys are wrapped under
    /// the new version as soon as it is current (before the re-wrapping starts). Servers in
    /// other processes find the new version in the keyring file when they first meet it.
    ///
    /// With `KOSH_VAULT_MASTER_KEYS`, the operator adds the new version to it (on every vault
    /// process) first; the rotation re-wraps under the highest version it holds.
    public func rotate() async throws -> VaultRotation {
        try await VaultFiles.withLock(keys.lockPath) {
            let target: Int
            if keys.environmentKeys == nil {
                target = try keys.addVersion(now: clock.nowMillis())
            } else {
                guard let latest = keys.latestVersion else { throw VaultSetupError("\(VaultKeys.masterKeysVariable) holds no master key") }
                target = latest
            }
            let master = try keys.masterKey(version: target)
            try await database.write { db in try VaultStore.setCurrentMasterVersion(db, target) }
            logger.notice("vault rotation started", metadata: ["master_key.version": "\(target)"])
            var rewrapped = 0
            while true {
                let moved = try await database.write { db -> Bool in
                    guard let stored = try VaultStore.dataKeyToRewrap(db, target: target) else { return false }
                    let dataKey = try Envelope.unwrap(stored.wrapped, id: stored.id, under: self.keys.masterKey(version: stored.masterVersion))
                    let wrapped = try Envelope.wrap(dataKey, id: stored.id, under: master)
                    guard try VaultStore.rewrap(db, id: stored.id, from: stored.masterVersion, to: target, wrapped: wrapped) else {
                        throw VaultCryptoError(description: "data key \(stored.id) changed during its re-wrap")
                    }
                    return true
                }
                guard moved else { break }
                rewrapped += 1
            }
            let retired: [Int]
            if keys.environmentKeys == nil {
                retired = try keys.retire(below: target)
            } else {
                retired = keys.versions.filter { $0 < target }
            }
            logger.notice("vault rotation done", metadata: ["master_key.version": "\(target)", "data_keys.rewrapped": "\(rewrapped)",
                                                            "master_key.retired": "\(retired)"])
            return VaultRotation(masterKeyVersion: target, rewrapped: rewrapped, retiredVersions: retired)
        }
    }

    public func status() async throws -> VaultStatus {
        try? keys.reload()  // another process may have rotated
        let now = clock.nowMillis()
        let bound = now >= 0 ? (now + 999) / 1000 : now / 1000
        let counts = try await database.read { db in
            (version: try VaultStore.currentMasterVersion(db),
             dataKeys: try VaultStore.dataKeysByMasterVersion(db),
             cards: try VaultStore.count(db, "SELECT COUNT(*) FROM cards"),
             onFile: try VaultStore.count(db, "SELECT COUNT(*) FROM cards WHERE card_on_file = 1"),
             past: try VaultStore.count(db, "SELECT COUNT(*) FROM cards WHERE card_on_file = 0 AND retain_until < ?", [.int(bound)]),
             purged: try VaultStore.count(db, "SELECT COUNT(*) FROM purged_tokens"))
        }
        return VaultStatus(directory: directory, masterKeyVersion: counts.version, masterKeysFromEnvironment: keys.environmentKeys != nil,
                           keyringVersions: keys.versions, retiredVersions: keys.retiredVersions,
                           dataKeysByMasterVersion: counts.dataKeys, cards: counts.cards, cardsOnFile: counts.onFile,
                           cardsPastRetention: counts.past, purgedTokens: counts.purged, heldCVVs: cvvs.count)
    }
}
