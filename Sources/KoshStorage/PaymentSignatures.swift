import Crypto
import Foundation
import KoshCore
import Synchronization

extension MerchantDirectory: PaymentSigner {
    /// `razorpay_signature` for a payment, keyed with the merchant's newest API key secret.
    /// The secret is read and unsealed once per `SigningKeys.lifetimeMillis` per merchant
    /// (`SigningKeys`), so a signature usually costs no database read.
    public func signature(merchantID: ID<Merchant>, orderID: ID<Order>, paymentID: ID<Payment>) async throws -> String {
        let key = try await signingKey(merchantID)
        let mac = HMAC<SHA256>.authenticationCode(for: Array(PaymentSignature.message(orderID: orderID, paymentID: paymentID).utf8), using: key)
        return Self.lowercaseHex(mac)
    }

    /// The merchant's newest key secret, from the cache while it is fresh, else read and unsealed.
    func signingKey(_ merchantID: ID<Merchant>) async throws -> SymmetricKey {
        let now = clock.nowMillis()
        if let key = signingKeys.key(merchantID, now: now) { return key }
        let keyID = try await db.transaction { conn in
            try await conn.query("SELECT key_id FROM api_keys WHERE merchant_id = ? ORDER BY created_at DESC, key_id DESC LIMIT 1",
                                 [SQLValue(merchantID)]).first?.text("key_id")
        }
        guard let keyID, let secret = try await secret(keyID: keyID) else { throw KoshError.notFound("The merchant has no API key") }
        let key = SymmetricKey(data: Array(secret.utf8))
        signingKeys.put(merchantID, key, now: now)
        return key
    }

    static func lowercaseHex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The unsealed key secrets payment signatures are made with, per merchant, each kept for
/// `lifetimeMillis` after it was read. A merchant's newest key is what signs, so a new key must
/// take effect: `MerchantDirectory` forgets the merchant's entry whenever it writes a key (at
/// once in this process), and any other writer (another node on the same database, an operator
/// in SQL) is seen within `lifetimeMillis`, when the entry is read again. Bounded to `capacity`
/// merchants (emptied when full, like `AuthCache`).
final class SigningKeys: Sendable {
    struct Entry {
        let key: SymmetricKey
        let readAt: Int64
    }

    static let lifetimeMillis: Int64 = 30_000
    static let capacity = 10_000
    private let entries = Mutex<[ID<Merchant>: Entry]>([:])

    func key(_ merchantID: ID<Merchant>, now: Int64) -> SymmetricKey? {
        entries.withLock { entries in
            guard let entry = entries[merchantID] else { return nil }
            // A clock that went back counts as expired too.
            guard now >= entry.readAt, now - entry.readAt < Self.lifetimeMillis else {
                entries[merchantID] = nil
                return nil
            }
            return entry.key
        }
    }

    func put(_ merchantID: ID<Merchant>, _ key: SymmetricKey, now: Int64) {
        entries.withLock { entries in
            if entries.count >= Self.capacity, entries[merchantID] == nil { entries.removeAll(keepingCapacity: true) }
            entries[merchantID] = Entry(key: key, readAt: now)
        }
    }

    func forget(_ merchantID: ID<Merchant>) {
        _ = entries.withLock { $0.removeValue(forKey: merchantID) }
    }
}
