import Crypto
import Foundation
import KoshCore
import KoshJSON
import Synchronization

/// Why the vault could not open something it sealed (wrong key, tampered row): never shown to
/// a client beyond "internal error".
struct VaultCryptoError: Error, CustomStringConvertible {
    let description: String
}

/// Envelope encryption (docs/CARDS.md §1): a card is sealed with AES-256-GCM under a data key;
/// a data key is stored sealed (AES-256-GCM, "wrapped") under a master key. Both seals are
/// bound to their row (the data key's id, the card's token) as authenticated data, so a sealed
/// value moved to another row does not open.
enum Envelope {
    static func newDataKey() -> SymmetricKey { SymmetricKey(size: .bits256) }

    static func wrap(_ dataKey: SymmetricKey, id: String, under master: SymmetricKey) throws -> [UInt8] {
        let raw = dataKey.withUnsafeBytes { Array($0) }
        return try seal(raw, aad: "kosh-vault/data-key/\(id)", key: master)
    }

    static func unwrap(_ wrapped: [UInt8], id: String, under master: SymmetricKey) throws -> SymmetricKey {
        SymmetricKey(data: try open(wrapped, aad: "kosh-vault/data-key/\(id)", key: master))
    }

    static func seal(_ card: VaultCard, token: String, under dataKey: SymmetricKey) throws -> [UInt8] {
        var fields: [(String, JSON)] = [("number", .string(card.number)), ("expiry_month", .int(Int64(card.expiryMonth))),
                                        ("expiry_year", .int(Int64(card.expiryYear)))]
        if let name = card.name { fields.append(("name", .string(name))) }
        return try seal(Array(JSON.object(fields).serialized().utf8), aad: "kosh-vault/card/\(token)", key: dataKey)
    }

    static func open(_ sealed: [UInt8], token: String, under dataKey: SymmetricKey) throws -> VaultCard {
        let plain = try open(sealed, aad: "kosh-vault/card/\(token)", key: dataKey)
        guard let json = try? JSON.parse(plain), case .string(let number)? = json["number"],
              case .int(let month)? = json["expiry_month"], case .int(let year)? = json["expiry_year"] else {
            throw VaultCryptoError(description: "a sealed card does not hold a card")
        }
        var name: String?
        if case .string(let value)? = json["name"] { name = value }
        return VaultCard(number: number, expiryMonth: Int(month), expiryYear: Int(year), name: name)
    }

    private static func seal(_ plain: [UInt8], aad: String, key: SymmetricKey) throws -> [UInt8] {
        let box = try AES.GCM.seal(plain, using: key, authenticating: Array(aad.utf8))
        guard let combined = box.combined else { throw VaultCryptoError(description: "AES-GCM gave no combined box") }
        return Array(combined)
    }

    private static func open(_ combined: [UInt8], aad: String, key: SymmetricKey) throws -> [UInt8] {
        do {
            return Array(try AES.GCM.open(AES.GCM.SealedBox(combined: combined), using: key, authenticating: Array(aad.utf8)))
        } catch {
            throw VaultCryptoError(description: "a sealed value does not open under its key")
        }
    }
}

/// The card fingerprint: hex HMAC-SHA256 of the number under the fingerprint key. The same
/// number gives the same fingerprint under one key; the number cannot be recovered from it.
public struct CardFingerprinter: Sendable {
    let key: SymmetricKey

    public init(key: [UInt8]) {
        precondition(key.count >= 32, "a fingerprint key is at least 32 bytes")
        self.key = SymmetricKey(data: key)
    }

    /// A fingerprinter with a fresh random key (an in-memory vault's).
    public static func random() -> CardFingerprinter { CardFingerprinter(key: SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }) }

    public func fingerprint(_ number: String) -> String {
        VaultHex.encode(HMAC<SHA256>.authenticationCode(for: Array(number.utf8), using: key))
    }
}

/// Vault tokens: `vt_` and 32 lower-case hex digits (128 random bits).
public enum VaultToken {
    public static let prefix = "vt_"

    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return prefix + VaultHex.encode(bytes)
    }

    /// Whether `text` looks like a token (anything else is answered 404 without a lookup).
    public static func isWellFormed(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 35, text.hasPrefix(prefix) else { return false }
        return bytes.dropFirst(3).allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }
}

enum VaultHex {
    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        var i = 0
        while i < chars.count {
            guard let high = Hex.nibble(chars[i]), let low = Hex.nibble(chars[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }
}

/// CVVs, in memory only (never on disk, never logged): held for ten minutes or until a
/// detokenisation takes one, whichever comes first. A new CVV for a card replaces the old.
public final class HeldCVVs: Sendable {
    /// How long a CVV is held.
    public static let lifetimeMillis: Int64 = 10 * 60 * 1000
    /// Most CVVs held at once (bounds memory); past it, expired ones are dropped first, then
    /// holding another is refused.
    public static let maximumHeld = 100_000

    private struct Held {
        let cvv: String
        let expiresAt: Int64
    }

    private let clock: any KoshClock
    private let held = Mutex<[String: Held]>([:])

    public init(clock: any KoshClock) {
        self.clock = clock
    }

    public func hold(_ cvv: String, token: String) throws(CardVaultError) {
        let now = clock.nowMillis()
        let stored = held.withLock { held -> Bool in
            if held.count >= Self.maximumHeld, held[token] == nil {
                held = held.filter { $0.value.expiresAt > now }
                if held.count >= Self.maximumHeld { return false }
            }
            held[token] = Held(cvv: cvv, expiresAt: now + Self.lifetimeMillis)
            return true
        }
        guard stored else { throw .unavailable("the vault holds too many CVVs") }
    }

    /// The CVV, removed; nil when none is held or it has expired.
    public func take(token: String) -> String? {
        let now = clock.nowMillis()
        guard let entry = held.withLock({ $0.removeValue(forKey: token) }), entry.expiresAt > now else { return nil }
        return entry.cvv
    }

    public func drop(token: String) {
        _ = held.withLock { $0.removeValue(forKey: token) }
    }

    /// Forgets every expired CVV; answers how many.
    @discardableResult
    public func dropExpired() -> Int {
        let now = clock.nowMillis()
        return held.withLock { held in
            let before = held.count
            held = held.filter { $0.value.expiresAt > now }
            return before - held.count
        }
    }

    /// CVVs held now (expired ones not yet dropped included).
    public var count: Int { held.withLock { $0.count } }
}
