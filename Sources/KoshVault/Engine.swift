import Crypto
import Foundation
import KoshCore
import Logging
import Synchronization

/// The vault itself (docs/CARDS.md §1): its keyring, its SQLite file and the CVVs it holds in
/// memory, in one directory. `VaultServer` serves it over HTTP; `kosh vault rotate`, `purge` and
/// `status` open it directly.
///
/// Data keys: one per UTC day. The first card sealed on a day makes a new data key (wrapped
/// under the current master key version) and the previous one stops sealing; a data key left
/// with no card after a purge is deleted.
public final class VaultEngine: CardVault, Sendable {
    public static let databaseFileName = "vault.db"
    /// How long a purged token is remembered (answered 410 rather than 404).
    public static let purgedTokenLifetimeMillis: Int64 = 30 * 86_400_000
    static let purgeBatch = 500
    static let maximumCachedDataKeys = 4_096
    static let millisPerDay: Int64 = 86_400_000

    public let directory: String
    public let clock: any KoshClock
    let keys: VaultKeys
    let database: VaultDatabase
    let cvvs: HeldCVVs
    let logger: Logger
    /// Unwrapped data keys by id (memory only; a rotation changes their wrapping, not them).
    private let dataKeys = Mutex<[String: SymmetricKey]>([:])

    /// Opens the vault in `directory`, creating the directory, the keyring and `vault.db` when
    /// missing. `environment` supplies `KOSH_VAULT_MASTER_KEYS` and `KOSH_VAULT_CHANNEL_KEY`.
    public static func open(directory: String, environment: [String: String] = ProcessInfo.processInfo.environment,
                            clock: any KoshClock = SystemClock(), logger: Logger = Logger(label: "kosh.vault")) async throws -> VaultEngine {
        let keys = try await VaultKeys.open(directory: directory, environment: environment, now: clock.nowMillis())
        let database = try VaultDatabase(path: (directory as NSString).appendingPathComponent(databaseFileName))
        do {
            let first = keys.latestVersion ?? 1
            let current = try await database.write { db in
                try VaultStore.migrate(db, masterVersion: first)
                return try VaultStore.currentMasterVersion(db)
            }
            guard (try? keys.masterKey(version: current)) != nil else {
                throw VaultSetupError(keys.environmentKeys == nil
                    ? "master key version \(current) (vault.db's current) is not in the keyring \(keys.path)"
                    : "master key version \(current) (vault.db's current) is not in \(VaultKeys.masterKeysVariable)")
            }
        } catch {
            await database.shutdown()
            throw error
        }
        return VaultEngine(directory: directory, keys: keys, database: database, clock: clock, logger: logger)
    }

    init(directory: String, keys: VaultKeys, database: VaultDatabase, clock: any KoshClock, logger: Logger) {
        self.directory = directory
        self.keys = keys
        self.database = database
        self.clock = clock
        self.cvvs = HeldCVVs(clock: clock)
        self.logger = logger
    }

    public func close() async { await database.shutdown() }

    /// The key requests and answers are signed with.
    public var channelKey: VaultChannelKey { keys.channelKey }

    /// The master key version new data keys are wrapped under.
    public func masterKeyVersion() async throws -> Int {
        try await database.read { db in try VaultStore.currentMasterVersion(db) }
    }

    // MARK: Keys

    func unwrap(_ stored: StoredDataKey) throws -> SymmetricKey {
        if let key = dataKeys.withLock({ $0[stored.id] }) { return key }
        let key = try Envelope.unwrap(stored.wrapped, id: stored.id, under: keys.masterKey(version: stored.masterVersion))
        dataKeys.withLock { cache in
            if cache.count >= Self.maximumCachedDataKeys { cache.removeAll(keepingCapacity: true) }
            cache[stored.id] = key
        }
        return key
    }

    /// Forgets the unwrapped data keys (tests: the next read unwraps under the stored version).
    func forgetDataKeys() { dataKeys.withLock { $0.removeAll() } }

    // MARK: CardVault

    public func tokenize(_ card: VaultCard, cvv: String?, retention: CardRetention) async throws -> TokenizedCard {
        let now = clock.nowMillis()
        let card = try VaultValidation.check(card, now: UnixMillis(now))
        if let cvv { try VaultValidation.checkCVV(cvv) }
        try VaultValidation.checkRetention(retention)
        let number = try CardNumber(card.number)
        let token = VaultToken.make()
        let fingerprint = keys.fingerprinter.fingerprint(number.digits)
        let day = now >= 0 ? now / Self.millisPerDay : (now + 1) / Self.millisPerDay - 1
        var retainUntil: Int64?
        if case .until(let seconds) = retention { retainUntil = seconds.value }
        let (iin, last4, until) = (number.iin, number.last4, retainUntil)
        try await database.write { db in
            let dataKeyID: String
            let dataKey: SymmetricKey
            if let sealing = try VaultStore.sealingKey(db, day: day) {
                dataKeyID = sealing.id
                dataKey = try self.unwrap(sealing)
            } else {
                let version = try VaultStore.currentMasterVersion(db)
                dataKeyID = "dk_" + VaultHex.encode((0..<8).map { _ in UInt8.random(in: .min ... .max) })
                dataKey = Envelope.newDataKey()
                let wrapped = try Envelope.wrap(dataKey, id: dataKeyID, under: self.keys.masterKey(version: version))
                try VaultStore.insertDataKey(db, StoredDataKey(id: dataKeyID, masterVersion: version, wrapped: wrapped), day: day, createdAt: now)
                self.dataKeys.withLock { $0[dataKeyID] = dataKey }
            }
            let sealed = try Envelope.seal(card, token: token, under: dataKey)
            try VaultStore.insertCard(db, StoredCard(token: token, dataKeyID: dataKeyID, sealed: sealed, fingerprint: fingerprint,
                                                     iin: iin, last4: last4, retainUntil: until, createdAt: now))
        }
        if let cvv { try cvvs.hold(cvv, token: token) }
        logger.info("card tokenised", metadata: ["vault.token": "\(token)", "card.iin": "\(number.iin)", "card.last4": "\(number.last4)"])
        return TokenizedCard(token: token, fingerprint: fingerprint, iin: number.iin, last4: number.last4)
    }

    public func attachCVV(token: String, cvv: String) async throws {
        try VaultValidation.checkCVV(cvv)
        _ = try await liveCard(token)
        try cvvs.hold(cvv, token: token)
        logger.info("CVV held", metadata: ["vault.token": "\(token)"])
    }

    public func detokenize(token: String, takeCVV: Bool) async throws -> (card: VaultCard, cvv: String?) {
        let card = try await withKeyRetry {
            let now = self.clock.nowMillis()
            return try await self.database.read { db -> VaultCard in
                let stored = try Self.live(db, token: token, nowMillis: now)
                guard let dataKey = try VaultStore.dataKey(db, id: stored.dataKeyID) else {
                    throw VaultCryptoError(description: "a card's data key is missing")
                }
                return try Envelope.open(stored.sealed, token: token, under: self.unwrap(dataKey))
            }
        }
        let cvv = takeCVV ? cvvs.take(token: token) : nil
        let number = try? CardNumber(card.number)
        logger.info("card detokenised", metadata: ["vault.token": "\(token)", "card.iin": "\(number?.iin ?? "")",
                                                   "card.last4": "\(number?.last4 ?? "")", "cvv.taken": "\(cvv != nil)"])
        return (card, cvv)
    }

    public func setRetention(token: String, _ retention: CardRetention) async throws {
        try VaultValidation.checkRetention(retention)
        let now = clock.nowMillis()
        try await database.write { db in
            _ = try Self.live(db, token: token, nowMillis: now)
            try VaultStore.setRetention(db, token: token, retention)
        }
        logger.info("retention set", metadata: ["vault.token": "\(token)", "retention": "\(retention)"])
    }

    /// Deletes the card now (a token already purged is fine; an unknown one is `notFound`).
    public func purge(token: String) async throws {
        guard VaultToken.isWellFormed(token) else { throw CardVaultError.notFound }
        let now = clock.nowMillis()
        try await database.write { db in
            if try !VaultStore.deleteCard(db, token: token, nowMillis: now), try !VaultStore.isPurged(db, token: token) {
                throw CardVaultError.notFound
            }
        }
        cvvs.drop(token: token)
        logger.info("card purged", metadata: ["vault.token": "\(token)"])
    }

    /// The card, if it exists and its retention has not passed.
    private func liveCard(_ token: String) async throws -> StoredCard {
        let now = clock.nowMillis()
        return try await database.read { db in try Self.live(db, token: token, nowMillis: now) }
    }

    private static func live(_ db: VaultDatabase, token: String, nowMillis: Int64) throws -> StoredCard {
        guard VaultToken.isWellFormed(token) else { throw CardVaultError.notFound }
        guard let card = try VaultStore.card(db, token: token) else {
            throw try VaultStore.isPurged(db, token: token) ? CardVaultError.purged : CardVaultError.notFound
        }
        guard !card.isPastRetention(nowMillis: nowMillis) else { throw CardVaultError.purged }
        return card
    }

    /// Runs `body` again once when a key was missing: another process may have rotated between
    /// reading a row and reading the keyring.
    private func withKeyRetry<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch is VaultCryptoError {
            try keys.reload()
            return try await body()
        }
    }

    // MARK: Retention

    /// Deletes every card whose `retain_until` has passed at `now` (cards on file never), forgets
    /// expired CVVs, deletes the data keys left sealing nothing and the tombstones older than
    /// 30 days. Answers how many cards were purged.
    @discardableResult
    public func purge(now: UnixMillis) async throws -> Int {
        var purged = 0
        while true {
            let tokens = try await database.write { db -> [String] in
                let tokens = try VaultStore.pastRetention(db, nowMillis: now.value, limit: Self.purgeBatch)
                for token in tokens { _ = try VaultStore.deleteCard(db, token: token, nowMillis: now.value) }
                return tokens
            }
            for token in tokens { cvvs.drop(token: token) }
            purged += tokens.count
            if tokens.count < Self.purgeBatch { break }
        }
        let shredded = try await database.write { db -> [String] in
            _ = try VaultStore.forgetTombstones(db, before: now.value - Self.purgedTokenLifetimeMillis)
            return try VaultStore.deleteEmptyDataKeys(db)
        }
        dataKeys.withLock { cache in for id in shredded { cache[id] = nil } }
        cvvs.dropExpired()
        if purged > 0 || !shredded.isEmpty {
            logger.notice("vault purge", metadata: ["cards.purged": "\(purged)", "data_keys.deleted": "\(shredded.count)"])
        }
        return purged
    }

    /// `purge(now:)` at the vault clock's time.
    @discardableResult
    public func purgeExpired() async throws -> Int { try await purge(now: clock.now) }
}
