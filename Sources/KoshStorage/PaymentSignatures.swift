import Crypto
import Foundation
import KoshCore

extension MerchantDirectory: PaymentSigner {
    /// `razorpay_signature` for a payment, keyed with the merchant's newest API key secret.
    public func signature(merchantID: ID<Merchant>, orderID: ID<Order>, paymentID: ID<Payment>) async throws -> String {
        let keyID = try await db.transaction { conn in
            try await conn.query("SELECT key_id FROM api_keys WHERE merchant_id = ? ORDER BY created_at DESC, key_id DESC LIMIT 1",
                                 [SQLValue(merchantID)]).first?.text("key_id")
        }
        guard let keyID, let secret = try await secret(keyID: keyID) else { throw KoshError.notFound("The merchant has no API key") }
        let mac = HMAC<SHA256>.authenticationCode(for: Data(PaymentSignature.message(orderID: orderID, paymentID: paymentID).utf8),
                                                  using: SymmetricKey(data: Data(secret.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined()
    }
}
