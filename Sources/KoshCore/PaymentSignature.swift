/// Razorpay's payment signature (`razorpay_signature`): hex HMAC-SHA256 of
/// `order_id|payment_id` keyed with the merchant's key secret, which the official SDKs'
/// `utility.verify_payment_signature` checks. The secret lives with the merchant's keys, so the
/// signing is a port (KoshStorage's `MerchantDirectory` implements it).
public protocol PaymentSigner: Sendable {
    func signature(merchantID: ID<Merchant>, orderID: ID<Order>, paymentID: ID<Payment>) async throws -> String
}

public enum PaymentSignature {
    /// The signed message.
    public static func message(orderID: ID<Order>, paymentID: ID<Payment>) -> String { "\(orderID.rawValue)|\(paymentID.rawValue)" }
}
