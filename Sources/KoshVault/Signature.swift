import Crypto
import KoshCore

/// The signature on every request to the vault and every answer from it (docs/CARDS.md §1):
///
///     X-Vault-Timestamp: <unix milliseconds>
///     X-Vault-Signature: hex(HMAC-SHA256(channel key, "<timestamp>\n<METHOD>\n<path with query>\n<hex(SHA256(body))>"))
///
/// An answer is signed over its own body with the request's method and path.
public enum VaultSignature {
    public static let timestampHeader = "X-Vault-Timestamp"
    public static let signatureHeader = "X-Vault-Signature"
    /// A timestamp further than this from the receiver's clock is refused.
    public static let maximumSkewMillis: Int64 = 60_000

    /// Lower-case hex HMAC-SHA256 of the canonical message.
    public static func sign(key: VaultChannelKey, timestamp: Int64, method: String, path: String, body: some Sequence<UInt8>) -> String {
        VaultHex.encode(HMAC<SHA256>.authenticationCode(for: message(timestamp: timestamp, method: method, path: path, body: body),
                                                        using: key.key))
    }

    /// Whether the two header values as received sign this message, compared in constant time,
    /// with a timestamp within ±60 s of `now` (unix ms).
    public static func verify(key: VaultChannelKey, timestampHeader: String?, signatureHeader: String?, method: String, path: String,
                              body: some Sequence<UInt8>, now: Int64) -> Bool {
        guard let timestampHeader, let signatureHeader, (1...15).contains(timestampHeader.utf8.count),
              timestampHeader.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let timestamp = Int64(timestampHeader), (timestamp - now).magnitude <= UInt64(maximumSkewMillis),
              signatureHeader.utf8.count == 2 * SHA256.byteCount, let mac = VaultHex.decode(signatureHeader) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: message(timestamp: timestamp, method: method, path: path, body: body),
                                                      using: key.key)
    }

    static func message(timestamp: Int64, method: String, path: String, body: some Sequence<UInt8>) -> [UInt8] {
        var bytes = Array("\(timestamp)\n\(method)\n\(path)\n".utf8)
        bytes.append(contentsOf: VaultHex.encode(SHA256.hash(data: Array(body))).utf8)
        return bytes
    }
}
