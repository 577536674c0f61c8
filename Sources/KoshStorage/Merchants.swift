import Crypto
import Dispatch
import Foundation
import KoshCore

/// The master key that protects API key secrets at rest: secrets are sealed with
/// AES-256-GCM under a key derived from it (so they can sign payment signatures later), and
/// authenticated by an HMAC-SHA256 under another derived key, compared in constant time.
public struct MasterKey: Sendable {
    let key: SymmetricKey

    public init(rawBytes: some ContiguousBytes) throws {
        let key = SymmetricKey(data: rawBytes)
        guard key.bitCount == 256 else { throw StorageError.masterKeyMismatch("The master key must be 32 bytes") }
        self.key = key
    }

    public static func generate() -> MasterKey {
        MasterKey(key: SymmetricKey(size: .bits256))
    }

    init(key: SymmetricKey) { self.key = key }

    public var base64: String { key.withUnsafeBytes { Data($0).base64EncodedString() } }

    var sealingKey: SymmetricKey { derive("kosh api key secret sealing v1") }
    var macKey: SymmetricKey { derive("kosh api key secret mac v1") }

    /// A public fingerprint, stored in the database to detect a server started with the wrong key.
    public var fingerprint: String { hex(Data(HMAC<SHA256>.authenticationCode(for: Data("kosh master key fingerprint".utf8), using: derive("fingerprint")))) }

    func derive(_ info: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Data(info.utf8), outputByteCount: 32)
    }

    /// Loads the key from `KOSH_MASTER_KEY` (base64) if given, else from `path`, creating the
    /// file (mode 0600) with a fresh random key when it does not exist and `create` is true.
    /// With `create` false (the database already has a key), a missing file is an error.
    public static func load(environmentValue: String?, path: String, create: Bool = true) throws -> (MasterKey, created: Bool) {
        if let environmentValue, !environmentValue.isEmpty {
            guard let data = Data(base64Encoded: environmentValue.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw StorageError.masterKeyMismatch("KOSH_MASTER_KEY must be base64 of 32 bytes")
            }
            return (try MasterKey(rawBytes: data), false)
        }
        if FileManager.default.fileExists(atPath: path) {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw StorageError.masterKeyMismatch("The master key file \(path) does not hold base64 of 32 bytes")
            }
            return (try MasterKey(rawBytes: data), false)
        }
        guard create else {
            throw StorageError.masterKeyMismatch(
                "\(MerchantDirectory.wrongKeyMessage) (no master key file at \(path); set KOSH_MASTER_KEY_FILE or KOSH_MASTER_KEY)")
        }
        let key = MasterKey.generate()
        let created = FileManager.default.createFile(atPath: path, contents: Data((key.base64 + "\n").utf8),
                                                     attributes: [.posixPermissions: 0o600])
        guard created else { throw StorageError.masterKeyMismatch("Could not write the master key file \(path)") }
        return (key, true)
    }
}

func hex(_ data: some Sequence<UInt8>) -> String {
    data.map { String(format: "%02x", $0) }.joined()
}

func unhex(_ text: String) -> Data? {
    var data = Data(capacity: text.count / 2)
    var iterator = text.utf8.makeIterator()
    while let h = iterator.next() {
        guard let l = iterator.next(), let byte = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) else { return nil }
        data.append(byte)
    }
    return data
}

public struct MerchantCredentials: Sendable {
    public let merchant: Merchant
    public let keyID: String
    public let keySecret: String
}

/// Merchants and their API keys.
public final class MerchantDirectory: MerchantAuthenticator, CheckoutKeys {
    let db: any SQLDatabase
    let masterKey: MasterKey
    let clock: any KoshClock
    let cache = AuthCache()
    /// The unsealed secrets payment signatures are made with (`signature(merchantID:…)`).
    let signingKeys = SigningKeys()
    /// Derived once: every authenticated request checks a secret with it.
    let macKey: SymmetricKey

    public init(db: any SQLDatabase, masterKey: MasterKey, clock: any KoshClock) {
        self.db = db
        self.masterKey = masterKey
        self.clock = clock
        self.macKey = masterKey.macKey
    }

    /// What a server started with the wrong master key (or none) is told.
    public static let wrongKeyMessage = "This database was set up with a different master key; start Kosh with the key it was created with"

    /// The fingerprint of the master key the database was set up with, if it has one yet.
    public static func recordedKeyFingerprint(_ db: any SQLDatabase) async throws -> String? {
        try await db.transaction { conn in
            try await conn.query("SELECT value FROM settings WHERE key = 'master_key_fingerprint'", []).first?.text("value")
        }
    }

    /// Records the master key's fingerprint on first use and refuses a different key later.
    public func checkMasterKey() async throws {
        let fingerprint = masterKey.fingerprint
        try await db.transaction { conn in
            let rows = try await conn.query("SELECT value FROM settings WHERE key = 'master_key_fingerprint'", [])
            if let stored = rows.first?.text("value") {
                guard stored == fingerprint else { throw StorageError.masterKeyMismatch(Self.wrongKeyMessage) }
            } else {
                let setting: SQLRecord = ["key": .text("master_key_fingerprint"), "value": .text(fingerprint)]
                try await conn.query(setting.insertSQL(into: "settings"), setting.binds)
            }
        }
    }

    public static let maximumNameLength = 120

    public func create(name: String, mode: Mode = .test, lateAuthorization: LateAuthorizationPolicy = .refund,
                       routePreference: [String] = [], feeRates: [String: Int64] = [:],
                       capture: CaptureSettings = CaptureSettings(), checkout: CheckoutSettings = CheckoutSettings()) async throws -> MerchantCredentials {
        precondition(feeRates.allSatisfy { FeeSchedule.isRateKey($0.key) && (0...FeeSchedule.maximumMDRBasisPoints).contains($0.value) },
                     "fee rates are checked by the caller")
        let now = clock.nowMillis() / 1000
        let merchant = Merchant(id: ID(Identifiers.make(.merchant)), name: name, mode: mode, createdAt: now,
                                lateAuthorization: lateAuthorization, routePreference: routePreference, feeRates: feeRates, capture: capture,
                                checkout: checkout)
        let keyID = Identifiers.make(mode == .test ? .testKey : .liveKey)
        var secretBytes = [UInt8](repeating: 0, count: 18)
        var generator = SystemRandomNumberGenerator()
        for i in secretBytes.indices { secretBytes[i] = generator.next() }
        let secret = Data(secretBytes).base64EncodedString().replacingOccurrences(of: "+", with: "A").replacingOccurrences(of: "/", with: "b")
        let mac = hex(Data(HMAC<SHA256>.authenticationCode(for: Data(secret.utf8), using: macKey)))
        let sealed = try AES.GCM.seal(Data(secret.utf8), using: masterKey.sealingKey, authenticating: Data(keyID.utf8)).combined!
        try await db.transaction { conn in
            let merchantRecord: SQLRecord = [
                "id": SQLValue(merchant.id), "name": .text(name), "mode": .text(mode.rawValue),
                "default_mdr_bps": .int(merchant.defaultMDRBasisPoints), "created_at": .int(now),
                "late_authorization": .text(lateAuthorization.rawValue), "route_preference": .text(routePreference.joined(separator: ",")),
                "fee_rates": .text(SQLStoreTransaction.feeRatesText(feeRates)),
                "auto_capture": .int(capture.automatic ? 1 : 0), "capture_window_seconds": .int(capture.windowSeconds),
                "checkout_origins": .text(checkout.originsText), "upi_collect": .int(checkout.upiCollect ? 1 : 0),
            ]
            try await conn.query(merchantRecord.insertSQL(into: "merchants"), merchantRecord.binds)
            let key: SQLRecord = [
                "key_id": .text(keyID), "merchant_id": SQLValue(merchant.id), "mode": .text(mode.rawValue), "secret_mac": .text(mac),
                "secret_sealed": .text(sealed.base64EncodedString()), "created_at": .int(now),
            ]
            try await conn.query(key.insertSQL(into: "api_keys"), key.binds)
        }
        // A key written: the merchant's next signature reads its newest key again. (A new
        // merchant has nothing cached; whatever writes a key for an existing one must do this too.)
        signingKeys.forget(merchant.id)
        return MerchantCredentials(merchant: merchant, keyID: keyID, keySecret: secret)
    }

    /// The merchant whose key this is, if the secret is right. Constant-time comparison.
    public func authenticate(keyID: String, secret: String) async throws -> Merchant? {
        guard keyID.count <= 64, secret.count <= 256 else { return nil }
        let entry: AuthCache.Entry
        if let cached = cache.get(keyID), cached.mac != nil {
            entry = cached
        } else {
            let row = try await db.transaction { conn in
                try await conn.query("""
                    SELECT k.secret_mac, m.* FROM api_keys k JOIN merchants m ON m.id = k.merchant_id
                    WHERE k.key_id = ? AND k.revoked_at IS NULL
                    """, [.text(keyID)]).first
            }
            guard let row, let mac = row.text("secret_mac").flatMap(unhex) else { return nil }
            entry = AuthCache.Entry(mac: mac, merchant: try SQLStoreTransaction.merchant(row))
            cache.put(keyID, entry)
        }
        guard let mac = entry.mac, HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data(secret.utf8), using: macKey) else {
            return nil
        }
        return entry.merchant
    }

    /// The merchant with this id (operator tools).
    public func merchant(id: ID<Merchant>) async throws -> Merchant? {
        guard id.rawValue.count <= 64 else { return nil }
        return try await db.transaction { conn in
            try await conn.query("SELECT * FROM merchants WHERE id = ?", [SQLValue(id)]).first.map(SQLStoreTransaction.merchant)
        }
    }

    /// The merchant whose (unrevoked) key id this is, without its secret: the checkout's public
    /// key, as Razorpay's `key` option. Nothing secret is shown with it.
    public func merchant(publicKeyID keyID: String) async throws -> Merchant? {
        guard keyID.count <= 64 else { return nil }
        if let cached = cache.get(keyID) { return cached.merchant }
        let merchant = try await db.transaction { conn in
            try await conn.query("SELECT m.* FROM api_keys k JOIN merchants m ON m.id = k.merchant_id WHERE k.key_id = ? AND k.revoked_at IS NULL",
                                 [.text(keyID)]).first.map(SQLStoreTransaction.merchant)
        }
        if let merchant { cache.put(keyID, AuthCache.Entry(mac: nil, merchant: merchant)) }
        return merchant
    }

    /// Sets a merchant's checkout settings (`kosh merchant update`). Servers see it within
    /// `AuthCache.lifetimeNanoseconds`; this process at once.
    public func updateCheckout(merchantID: ID<Merchant>, _ checkout: CheckoutSettings) async throws -> Merchant? {
        let updated = try await db.transaction { conn in
            try await conn.query("UPDATE merchants SET checkout_origins = ?, upi_collect = ? WHERE id = ?",
                                 [.text(checkout.originsText), .int(checkout.upiCollect ? 1 : 0), SQLValue(merchantID)])
            return try await conn.query("SELECT * FROM merchants WHERE id = ?", [SQLValue(merchantID)]).first.map(SQLStoreTransaction.merchant)
        }
        cache.forgetAll()
        return updated
    }

    /// The key secret in the clear (for signing payment signatures).
    public func secret(keyID: String) async throws -> String? {
        let sealed = try await db.transaction { conn in
            try await conn.query("SELECT secret_sealed FROM api_keys WHERE key_id = ?", [.text(keyID)]).first?.text("secret_sealed")
        }
        guard let sealed, let data = Data(base64Encoded: sealed) else { return nil }
        let box = try AES.GCM.SealedBox(combined: data)
        return String(decoding: try AES.GCM.open(box, using: masterKey.sealingKey, authenticating: Data(keyID.utf8)), as: UTF8.self)
    }
}

/// Keys and their merchants, kept for `lifetime`: a merchant's settings changed by another
/// process (`kosh merchant update`) are seen by every server within that time.
final class AuthCache: @unchecked Sendable {
    struct Entry: Sendable {
        /// nil: looked up by the public key id alone (the checkout), secret unknown.
        let mac: Data?
        let merchant: Merchant
        var expiresAt: UInt64 = 0
    }
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    static let capacity = 10_000
    static let lifetimeNanoseconds: UInt64 = 30 * 1_000_000_000

    func get(_ keyID: String) -> Entry? {
        let now = DispatchTime.now().uptimeNanoseconds
        return lock.withLock {
            guard let entry = entries[keyID], entry.expiresAt > now else { return nil }
            return entry
        }
    }
    func put(_ keyID: String, _ entry: Entry) {
        var entry = entry
        entry.expiresAt = DispatchTime.now().uptimeNanoseconds + Self.lifetimeNanoseconds
        lock.withLock {
            if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
            // A public lookup (no MAC) may replace one with the MAC: the next authentication reads the key again.
            entries[keyID] = entry
        }
    }
    func forgetAll() { lock.withLock { entries.removeAll(keepingCapacity: true) } }
}
