import Crypto
import Foundation

/// The signature on every request to the sandbox and every callback from it (docs/SANDBOX.md):
///
///     X-Sandbox-Timestamp: <unix milliseconds>
///     X-Sandbox-Signature: hex(HMAC-SHA256(secret, "<timestamp>\n<METHOD>\n<path with query>\n<raw body>"))
public enum SandboxSignature {
    public static let timestampHeader = "X-Sandbox-Timestamp"
    public static let signatureHeader = "X-Sandbox-Signature"
    /// A timestamp further than this from the receiver's clock is refused.
    public static let maximumSkewMilliseconds: Int64 = 5 * 60 * 1000

    /// Lower-case hex HMAC-SHA256 of the canonical message.
    public static func sign(secret: String, timestamp: Int64, method: String, path: String, body: some Sequence<UInt8>) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: message(timestamp: timestamp, method: method, path: path, body: body),
                                                  using: SymmetricKey(data: Array(secret.utf8)))
        return mac.map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    public static func sign(secret: String, timestamp: Int64, method: String, path: String, body: String) -> String {
        sign(secret: secret, timestamp: timestamp, method: method, path: path, body: Array(body.utf8))
    }

    /// Whether `signature` (hex, either case) is the MAC of the message, compared in constant time.
    /// Does not look at the clock; see `verify(secret:timestamp:method:path:body:signature:now:)`.
    public static func verify(secret: String, timestamp: Int64, method: String, path: String, body: some Sequence<UInt8>, signature: String) -> Bool {
        guard let mac = decodeHex(signature), mac.count == SHA256.byteCount else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: message(timestamp: timestamp, method: method, path: path, body: body),
                                                      using: SymmetricKey(data: Array(secret.utf8)))
    }

    /// Verifies the two header values as received, and the timestamp against `now` (unix ms).
    public static func verify(secret: String, timestampHeader: String?, signatureHeader: String?, method: String, path: String,
                              body: some Sequence<UInt8>, now: Int64) -> Bool {
        guard let timestampHeader, let signatureHeader, timestampHeader.utf8.count <= 20,
              timestampHeader.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let timestamp = Int64(timestampHeader) else { return false }
        let (skew, overflow) = now.subtractingReportingOverflow(timestamp)
        guard !overflow, skew.magnitude <= UInt64(maximumSkewMilliseconds) else { return false }
        return verify(secret: secret, timestamp: timestamp, method: method, path: path, body: body, signature: signatureHeader)
    }

    /// The current time in unix milliseconds, as the timestamp header wants it.
    public static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    static func message(timestamp: Int64, method: String, path: String, body: some Sequence<UInt8>) -> [UInt8] {
        var bytes = Array("\(timestamp)\n\(method)\n\(path)\n".utf8)
        bytes.append(contentsOf: body)
        return bytes
    }

    static func decodeHex(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0, digits.count <= 128 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        var i = 0
        while i < digits.count {
            guard let high = value(digits[i]), let low = value(digits[i + 1]) else { return nil }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }
}
