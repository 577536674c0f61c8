/// An IP address, and whether it is one a merchant's webhook may reach (issue 11 §3).
///
/// Webhook URLs are chosen by merchants and Kosh shows them the first KiB of the answer, so a
/// destination on the operator's own network (loopback, RFC 1918, link-local metadata at
/// 169.254.169.254, …) would let any merchant probe it. Everything in IANA's IPv4 and IPv6
/// special-purpose address registries is "not public" here, and so is every IPv4 address
/// embedded in an IPv6 one (mapped, compatible, NAT64, 6to4) that is not public itself.
/// Pure values: parsing and classification only, no I/O.
public enum NetworkAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt128)

    /// `a.b.c.d` from four octets.
    public static func ipv4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> NetworkAddress {
        .v4(UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d))
    }

    /// An address from the bytes of a socket address (4 or 16, network order); nil otherwise.
    public init?(bytes: some Collection<UInt8>) {
        switch bytes.count {
        case 4: self = .v4(bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        case 16: self = .v6(bytes.reduce(UInt128(0)) { $0 << 8 | UInt128($1) })
        default: return nil
        }
    }

    /// Canonical text: dotted decimal, or RFC 5952 IPv6 (lower case, longest zero run as `::`), no brackets.
    public var description: String {
        switch self {
        case .v4(let value):
            return "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
        case .v6(let value):
            let groups = (0..<8).map { UInt16(truncatingIfNeeded: value >> (112 - 16 * $0)) }
            // The longest run of two or more zero groups (the first of equal ones) becomes "::".
            var best = (start: -1, length: 0), run = (start: -1, length: 0)
            for (i, group) in groups.enumerated() {
                if group == 0 {
                    run = run.start < 0 ? (i, 1) : (run.start, run.length + 1)
                    if run.length > best.length { best = run }
                } else {
                    run = (-1, 0)
                }
            }
            let hex = groups.map { String($0, radix: 16) }
            guard best.length >= 2 else { return hex.joined(separator: ":") }
            let head = hex[..<best.start].joined(separator: ":")
            let tail = hex[(best.start + best.length)...].joined(separator: ":")
            return head + "::" + tail
        }
    }

    // MARK: Classification

    /// True when the address is ordinary global unicast: not in any special-purpose block.
    public var isPublic: Bool {
        switch self {
        case .v4(let value):
            return !Self.specialIPv4.contains { $0.contains(value) }
        case .v6(let value):
            if let embedded = Self.embeddedIPv4(value) { return NetworkAddress.v4(embedded).isPublic }
            // Only 2000::/3 is allocated as global unicast; everything else (::, ::1, fc00::/7,
            // fe80::/10, fec0::/10, ff00::/8, 100::/64, 64:ff9b:1::/48, 5f00::/16, …) is not public.
            guard value >> 125 == 0b001 else { return false }
            return !Self.specialIPv6.contains { $0.contains(value) }
        }
    }

    /// The IPv4 address an IPv6 one carries, for the forms that route to it: IPv4-mapped
    /// (::ffff:0:0/96), IPv4-translated (::ffff:0:0:0/96), IPv4-compatible (::/96, which holds
    /// :: and ::1 too), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
    public static func embeddedIPv4(_ value: UInt128) -> UInt32? {
        let low32 = UInt32(truncatingIfNeeded: value)
        let high96 = value >> 32
        if high96 == 0xFFFF || high96 == 0 || high96 == 0xFFFF_0000 { return low32 }
        if high96 == 0x0064_FF9B_0000_0000_0000_0000 { return low32 }
        if value >> 112 == 0x2002 { return UInt32(truncatingIfNeeded: value >> 80) }
        return nil
    }

    struct Block<Value: FixedWidthInteger & UnsignedInteger & Sendable>: Sendable {
        let base: Value
        let prefix: Int
        func contains(_ value: Value) -> Bool {
            let shift = Value.bitWidth - prefix
            return prefix == 0 || value >> shift == base >> shift
        }
    }

    static func v4Block(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: UInt32, _ prefix: Int) -> Block<UInt32> {
        Block(base: a << 24 | b << 16 | c << 8 | d, prefix: prefix)
    }

    /// IANA IPv4 Special-Purpose Address Registry, plus multicast and the reserved 240/4.
    static let specialIPv4: [Block<UInt32>] = [
        v4Block(0, 0, 0, 0, 8),          // "this network"
        v4Block(10, 0, 0, 0, 8),         // private
        v4Block(100, 64, 0, 0, 10),      // shared address space (carrier-grade NAT)
        v4Block(127, 0, 0, 0, 8),        // loopback
        v4Block(169, 254, 0, 0, 16),     // link-local (cloud metadata services live here)
        v4Block(172, 16, 0, 0, 12),      // private
        v4Block(192, 0, 0, 0, 24),       // IETF protocol assignments
        v4Block(192, 0, 2, 0, 24),       // TEST-NET-1
        v4Block(192, 88, 99, 0, 24),     // 6to4 relay anycast
        v4Block(192, 168, 0, 0, 16),     // private
        v4Block(198, 18, 0, 0, 15),      // benchmarking
        v4Block(198, 51, 100, 0, 24),    // TEST-NET-2
        v4Block(203, 0, 113, 0, 24),     // TEST-NET-3
        v4Block(224, 0, 0, 0, 4),        // multicast
        v4Block(240, 0, 0, 0, 4),        // reserved, and 255.255.255.255 broadcast
    ]

    /// IANA IPv6 Special-Purpose Address Registry blocks inside 2000::/3 (6to4 is judged by
    /// the address it embeds, above).
    static let specialIPv6: [Block<UInt128>] = [
        Block(base: 0x2001_0000 << 96, prefix: 23),       // IETF protocol assignments: Teredo, benchmarking, ORCHID, …
        Block(base: 0x2001_0DB8 << 96, prefix: 32),       // documentation
        Block(base: 0x3FFF_0000 << 96, prefix: 20),       // documentation (RFC 9637)
    ]

    // MARK: Parsing

    /// Parses an IPv4 address as `inet_aton` and browsers (the WHATWG URL standard) do: one to
    /// four parts, each decimal, octal (leading 0) or hex (0x); the last part fills the
    /// remaining bytes, so `2130706433`, `0x7f.1`, `127.1` and `0177.0.0.1` are all 127.0.0.1.
    /// A single trailing dot is allowed. Nil when the text is not such an address.
    public static func parseIPv4(_ text: Substring) -> UInt32? {
        var parts = text.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count > 1, parts.last?.isEmpty == true { parts.removeLast() }
        guard (1...4).contains(parts.count) else { return nil }
        var numbers: [UInt64] = []
        for part in parts {
            guard let number = ipv4Number(part) else { return nil }
            numbers.append(number)
        }
        for number in numbers.dropLast() where number > 255 { return nil }
        let last = numbers.last!
        guard last < UInt64(1) << (8 * (5 - numbers.count)) else { return nil }
        var value = last
        for (i, number) in numbers.dropLast().enumerated() { value += number << (8 * (3 - i)) }
        return UInt32(value)
    }

    /// One part of an IPv4 address: decimal, octal with a leading 0, hex with 0x. Nil past 2^32.
    static func ipv4Number(_ part: Substring) -> UInt64? {
        guard !part.isEmpty else { return nil }
        var digits = part
        var radix: UInt64 = 10
        if part.count >= 2, part.first == "0", part.dropFirst().first == "x" || part.dropFirst().first == "X" {
            digits = part.dropFirst(2)
            radix = 16
        } else if part.count >= 2, part.first == "0" {
            digits = part.dropFirst()
            radix = 8
        }
        var value: UInt64 = 0
        for character in digits {
            guard character.isASCII, let digit = character.hexDigitValue, UInt64(digit) < radix else { return nil }
            value = value * radix + UInt64(digit)
            if value > UInt64(UInt32.max) { return nil }
        }
        return value
    }

    /// Parses IPv6 text (no brackets, no zone): up to eight groups of 1–4 hex digits, one `::`,
    /// and an optional dotted-decimal IPv4 address as the last 32 bits.
    public static func parseIPv6(_ text: Substring) -> UInt128? {
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        var head: [UInt16] = [], tail: [UInt16] = []
        var compressed = false
        var rest = text
        if rest.hasPrefix("::") {
            compressed = true
            rest = rest.dropFirst(2)
        } else if rest.hasPrefix(":") {
            return nil
        }
        while !rest.isEmpty {
            let group = rest.prefix { $0 != ":" }
            rest = rest.dropFirst(group.count)
            if group.contains(".") {
                // The embedded IPv4 address: last, strictly four decimal parts without leading zeros.
                guard rest.isEmpty, let v4 = strictDottedQuad(group) else { return nil }
                let pieces = [UInt16(v4 >> 16), UInt16(v4 & 0xFFFF)]
                if compressed { tail += pieces } else { head += pieces }
                break
            }
            guard (1...4).contains(group.count), group.allSatisfy({ $0.isASCII && $0.isHexDigit }), let piece = UInt16(group, radix: 16) else { return nil }
            if compressed { tail.append(piece) } else { head.append(piece) }
            if rest.hasPrefix("::") {
                guard !compressed else { return nil }
                compressed = true
                rest = rest.dropFirst(2)
            } else if rest.hasPrefix(":") {
                rest = rest.dropFirst()
                guard !rest.isEmpty else { return nil }  // a trailing single ":"
            }
        }
        let count = head.count + tail.count
        guard compressed ? count <= 7 : count == 8 else { return nil }
        let groups = head + Array(repeating: 0, count: 8 - count) + tail
        return groups.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }

    static func strictDottedQuad(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCIIDigit),
                  part.count == 1 || part.first != "0", let octet = UInt32(part), octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        return value
    }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

/// A webhook URL taken apart the way Kosh checks it: http or https, a host, an explicit or
/// default port, no user info. The same text is what the dispatcher hands to its HTTP client,
/// so the host here is the host connected to; anything two URL parsers might read two ways
/// (backslashes, `@`, `%` in the host, non-ASCII) is refused rather than guessed at.
public struct WebhookURL: Hashable, Sendable {
    public enum Host: Hashable, Sendable {
        /// An IP literal in any form a resolver would accept (`[::1]`, `127.1`, `0x7f000001`).
        case address(NetworkAddress)
        /// A DNS name, lower case, without a trailing dot.
        case name(String)
    }

    public let secure: Bool
    public let host: Host
    /// The host exactly as written (without IPv6 brackets): what an HTTP client looks up.
    public let hostText: String
    public let port: Int

    public static let maximumLength = 2048

    /// Why a URL is refused, in words a merchant can act on.
    public enum Problem: Error, Hashable, Sendable, CustomStringConvertible {
        case malformed
        case userInfo
        case badPort
        case privateAddress
        case privateName
        case unresolved
        public var description: String {
            switch self {
            case .malformed: "The url must be an http or https URL."
            case .userInfo: "The url may not contain a user name or password."
            case .badPort: "The url's port must be 1 to 65535."
            case .privateAddress: "The url must point to a public address; private, loopback and link-local destinations are refused."
            case .privateName: "The url's host is a local name; webhooks go to public hosts only."
            case .unresolved: "The url's host could not be resolved to a public address."
            }
        }
    }

    public static func parse(_ text: String) throws(Problem) -> WebhookURL {
        guard text.utf8.count <= maximumLength,
              text.unicodeScalars.allSatisfy({ $0.isASCII && $0.value >= 0x21 && $0.value != 0x7F && $0 != "\\" }) else {
            throw .malformed
        }
        let lower = text.lowercased()
        let secure: Bool
        let rest: Substring
        if lower.hasPrefix("https://") { secure = true; rest = text.dropFirst(8) } else if lower.hasPrefix("http://") {
            secure = false; rest = text.dropFirst(7)
        } else {
            throw .malformed
        }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if authority.contains("@") { throw .userInfo }
        let hostPart: Substring, portPart: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .malformed }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.isEmpty { portPart = nil } else if after.first == ":" { portPart = after.dropFirst() } else { throw .malformed }
            // A zone id (`fe80::1%eth0`) names an interface of Kosh's machine: never a merchant's.
            guard let value = NetworkAddress.parseIPv6(hostPart) else { throw hostPart.contains("%") ? .privateAddress : .malformed }
            return try WebhookURL(secure: secure, host: .address(.v6(value)), hostText: String(hostPart), port: port(portPart, secure: secure))
        }
        if let colon = authority.firstIndex(of: ":") {
            hostPart = authority[..<colon]
            portPart = authority[authority.index(after: colon)...]
        } else {
            hostPart = authority
            portPart = nil
        }
        guard !hostPart.isEmpty, hostPart.utf8.count <= 253,
              hostPart.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == "_") }) else {
            throw .malformed
        }
        let port = try port(portPart, secure: secure)
        // A host whose last label is a number is an IPv4 address (WHATWG "ends in a number"),
        // which resolvers read with inet_aton: parse it as they do, or refuse it.
        var labels = hostPart.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count > 1, labels.last?.isEmpty == true { labels.removeLast() }
        let last = labels.last ?? ""
        if !last.isEmpty && (last.allSatisfy(\.isASCIIDigit) || NetworkAddress.ipv4Number(last) != nil) {
            guard let value = NetworkAddress.parseIPv4(hostPart) else { throw .malformed }
            return WebhookURL(secure: secure, host: .address(.v4(value)), hostText: String(hostPart), port: port)
        }
        guard labels.allSatisfy({ (1...63).contains($0.count) }) else { throw .malformed }
        return WebhookURL(secure: secure, host: .name(labels.joined(separator: ".").lowercased()), hostText: String(hostPart), port: port)
    }

    static func port(_ text: Substring?, secure: Bool) throws(Problem) -> Int {
        guard let text else { return secure ? 443 : 80 }
        guard (1...5).contains(text.count), text.allSatisfy(\.isASCIIDigit), let value = Int(text), (1...65_535).contains(value) else {
            throw .badPort
        }
        return value
    }

    /// The refusal a host earns on its own, before any lookup: a non-public IP literal, or a
    /// name that only means something on the operator's network. Nil: a literal that is public
    /// (nothing to look up) or a name to resolve and check with `judge(resolved:)`.
    public var hostRefusal: Problem? {
        switch host {
        case .address(let address): address.isPublic ? nil : .privateAddress
        case .name(let name): Self.isLocalName(name) ? .privateName : nil
        }
    }

    /// `localhost` and its subdomains, `.local` (mDNS), `.internal`, `.home.arpa`, `.localdomain`,
    /// and single-label names (searched in the operator's resolver domains).
    public static func isLocalName(_ name: String) -> Bool {
        let labels = name.split(separator: ".")
        guard labels.count > 1 else { return true }
        let localSuffixes: Set<String> = ["localhost", "local", "internal", "localdomain"]
        if localSuffixes.contains(String(labels.last!)) { return true }
        return labels.suffix(2).joined(separator: ".") == "home.arpa"
    }

    /// What the resolver's answer for a name means: every address must be public (one private
    /// answer is enough for a rebinding attacker), and there must be at least one.
    public static func judge(resolved addresses: [NetworkAddress]) -> Problem? {
        if addresses.isEmpty { return .unresolved }
        return addresses.allSatisfy(\.isPublic) ? nil : .privateAddress
    }
}
