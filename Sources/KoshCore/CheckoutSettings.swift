/// A merchant's checkout settings (issue 14): the web origins its hosted checkout may send the
/// customer's browser back to, and whether the page offers UPI collect.
///
/// A hosted checkout is opened by a form any page can post (`/v1/checkout/embedded`, with the
/// merchant's public key and an order id), so its `callback_url` and `cancel_url` are only
/// followed when their origin is one the merchant set: Kosh is never an open redirect to an
/// origin the merchant did not choose. (checkout.js needs none: there the merchant's own page
/// posts to its own `callback_url`.)
public struct CheckoutSettings: Sendable, Hashable {
    /// Normalised origins (`https://shop.example`, `http://127.0.0.1:5000`), at most `maximumOrigins`.
    public var origins: [String]
    /// NPCI retired UPI collect for most merchant payments from 28 Feb 2026; only the exempt
    /// (MCC 6012/6211, mandates, …) turn it on. Off by default.
    public var upiCollect: Bool

    public static let maximumOrigins = 10
    public static let maximumURLLength = 2_048

    public init(origins: [String] = [], upiCollect: Bool = false) {
        self.origins = origins
        self.upiCollect = upiCollect
    }

    /// `scheme://host[:port]` of an http(s) URL in lower case, with the default port dropped;
    /// nil when `text` is not an absolute http(s) URL with a host and nothing suspicious in it
    /// (user info, a backslash, white space or control characters, a bare `//` path).
    public static func origin(of text: String) -> String? {
        guard text.utf8.count <= maximumURLLength,
              text.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "\\" }) else { return nil }
        let lower = text.lowercased()
        let scheme: String
        if lower.hasPrefix("https://") { scheme = "https" } else if lower.hasPrefix("http://") { scheme = "http" } else { return nil }
        let rest = lower.dropFirst(scheme.count + 3)
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.isEmpty, !authority.contains("@") else { return nil }
        var host = Substring(authority)
        var port: Int?
        if let colon = authority.lastIndex(of: ":"), !authority.hasSuffix("]") {
            host = authority[..<colon]
            let digits = authority[authority.index(after: colon)...]
            guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber),
                  let value = Int(digits), (1...65_535).contains(value) else { return nil }
            port = value
        }
        guard !host.isEmpty,
              host.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" || $0 == "[" || $0 == "]" || $0 == ":" }) else { return nil }
        if (scheme == "https" && port == 443) || (scheme == "http" && port == 80) { port = nil }
        return "\(scheme)://\(host)" + (port.map { ":\($0)" } ?? "")
    }

    /// Whether the browser may be sent to `url`: an http(s) URL on one of the merchant's origins.
    public func allows(_ url: String) -> Bool {
        guard let origin = Self.origin(of: url) else { return false }
        return origins.contains(origin)
    }

    /// The origins as stored (one text column).
    public var originsText: String { origins.joined(separator: " ") }

    public static func origins(fromText text: String?) -> [String] {
        (text ?? "").split(separator: " ").map(String.init).filter { origin(of: $0) == $0 }
    }
}
