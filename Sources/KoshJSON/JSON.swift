/// A JSON value with object keys kept in document order, with its own parser and a
/// deterministic serializer (so stored responses replay byte for byte).
public enum JSON: Sendable, Hashable {
    case null
    case bool(Bool)
    /// Integers are kept exactly; numbers with a fraction or exponent are `.number`.
    case int(Int64)
    case number(String)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.int(let x), .int(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(serialized())
    }

    public subscript(key: String) -> JSON? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first(where: { $0.0 == key })?.1
    }

    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int, .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    // MARK: Serialising

    public func serialized() -> String {
        var out = ""
        out.reserveCapacity(512)
        write(to: &out)
        return out
    }

    public func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .number(let n): out += n
        case .string(let s): JSON.writeString(s, to: &out)
        case .array(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let pairs):
            out += "{"
            for (index, pair) in pairs.enumerated() {
                if index > 0 { out += "," }
                JSON.writeString(pair.0, to: &out)
                out += ":"
                pair.1.write(to: &out)
            }
            out += "}"
        }
    }

    static func writeString(_ s: String, to out: inout String) {
        out += "\""
        // Most strings (ids, statuses, amounts' currencies, emails) need no escaping: one append.
        if s.utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") && $0 != UInt8(ascii: "/") }) {
            out += s
            out += "\""
            return
        }
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "/": out += "\\/"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    // MARK: Parsing

    /// At most 40 characters of `text`, for messages that quote input.
    public static func excerpt(_ text: String, limit: Int = 40) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(limit) {
            out.unicodeScalars.append(scalar.value < 0x20 || scalar.value == 0x7F ? "?" : scalar)
        }
        return text.unicodeScalars.count > limit ? out + "…" : out
    }

    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public let offset: Int
        public let message: String
        public var description: String { "\(message) at byte \(offset)" }
    }

    /// Maximum nesting depth accepted, so hostile input cannot exhaust the stack.
    public static let maximumDepth = 32
    /// Members in one object: far above any Kosh request (notes hold at most 15), far below
    /// what would make a body expensive to hold.
    public static let maximumMembers = 256
    /// Items in one array.
    public static let maximumArrayItems = 1_000
    /// Values (objects, arrays, strings, numbers, literals) in one document.
    public static let maximumValues = 20_000
    /// Objects with more members than this check duplicate keys through a hash set; smaller
    /// ones (nearly all) compare the few keys they have.
    static let linearKeyCheckLimit = 8

    /// Parses one JSON document in time linear in its size. Refuses, with a `ParseError`:
    /// duplicate keys in an object (a proxy that keeps the first and Kosh the last would read
    /// two different requests), invalid UTF-8, and documents over the limits above.
    public static func parse(_ bytes: some Collection<UInt8>) throws(ParseError) -> JSON {
        var parser = Parser(bytes: Array(bytes))
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == parser.bytes.count else { throw parser.error("Unexpected trailing characters") }
        return value
    }

    public static func parse(_ string: String) throws(ParseError) -> JSON {
        try parse(Array(string.utf8))
    }

    struct Parser {
        let bytes: [UInt8]
        var index = 0
        var values = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func error(_ message: String) -> ParseError { ParseError(offset: index, message: message) }

        mutating func skipWhitespace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 {
                index += 1
            }
        }

        mutating func expect(_ literal: String) throws(ParseError) {
            for byte in literal.utf8 {
                guard index < bytes.count, bytes[index] == byte else { throw error("Invalid literal") }
                index += 1
            }
        }

        mutating func value(depth: Int) throws(ParseError) -> JSON {
            guard depth <= JSON.maximumDepth else { throw error("Nesting too deep") }
            guard index < bytes.count else { throw error("Unexpected end of input") }
            values += 1
            guard values <= JSON.maximumValues else { throw error("Too many values (at most \(JSON.maximumValues))") }
            switch bytes[index] {
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "["):
                index += 1
                var items: [JSON] = []
                skipWhitespace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                while true {
                    skipWhitespace()
                    guard items.count < JSON.maximumArrayItems else { throw error("Too many array items (at most \(JSON.maximumArrayItems))") }
                    items.append(try value(depth: depth + 1))
                    skipWhitespace()
                    guard index < bytes.count else { throw error("Unexpected end of input") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "]") { index += 1; return .array(items) }
                    throw error("Expected , or ]")
                }
            case UInt8(ascii: "{"):
                index += 1
                var pairs: [(String, JSON)] = []
                var keys: Set<String> = []
                skipWhitespace()
                if index < bytes.count, bytes[index] == UInt8(ascii: "}") { index += 1; return .object(pairs) }
                while true {
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("Expected a string key") }
                    guard pairs.count < JSON.maximumMembers else { throw error("Too many members in an object (at most \(JSON.maximumMembers))") }
                    let keyOffset = index
                    let key = try string()
                    let duplicate: Bool
                    if pairs.count < JSON.linearKeyCheckLimit {
                        duplicate = pairs.contains(where: { $0.0 == key })
                    } else {
                        if keys.isEmpty { keys = Set(pairs.map(\.0)) }
                        duplicate = !keys.insert(key).inserted
                    }
                    if duplicate {
                        throw ParseError(offset: keyOffset, message: "Duplicate key \"\(JSON.excerpt(key))\"")
                    }
                    skipWhitespace()
                    guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("Expected :") }
                    index += 1
                    skipWhitespace()
                    pairs.append((key, try value(depth: depth + 1)))
                    skipWhitespace()
                    guard index < bytes.count else { throw error("Unexpected end of input") }
                    if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                    if bytes[index] == UInt8(ascii: "}") { index += 1; return .object(pairs) }
                    throw error("Expected , or }")
                }
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return try number()
            default:
                throw error("Unexpected character")
            }
        }

        mutating func number() throws(ParseError) -> JSON {
            let start = index
            var isInteger = true
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) else { throw error("Invalid number") }
            // RFC 8259: no leading zeros (`01` is not a number; some parsers read it as octal).
            if bytes[index] == UInt8(ascii: "0"), index + 1 < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index + 1]) {
                throw error("Leading zeros in a number")
            }
            while index < bytes.count {
                let byte = bytes[index]
                if (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                    index += 1
                } else if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E")
                            || byte == UInt8(ascii: "+") || (byte == UInt8(ascii: "-") && index > start) {
                    isInteger = false
                    index += 1
                } else {
                    break
                }
            }
            let text = String(decoding: bytes[start..<index], as: UTF8.self)
            guard index - start <= 40 else { throw error("Number too long") }
            if isInteger {
                if let value = Int64(text) { return .int(value) }
                return .number(text)  // out of range: callers reject it as a non-integer
            }
            guard Double(text) != nil else { throw error("Invalid number") }
            return .number(text)
        }

        mutating func string() throws(ParseError) -> String {
            index += 1  // opening quote
            var scalars = String.UnicodeScalarView()
            var runStart = index
            var out = ""
            while true {
                guard index < bytes.count else { throw error("Unterminated string") }
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    try appendRun(runStart, to: &out)
                    index += 1
                    out.unicodeScalars.append(contentsOf: scalars)
                    return out
                }
                if byte < 0x20 { throw error("Control character in string") }
                if byte == UInt8(ascii: "\\") {
                    try appendRun(runStart, to: &out)
                    index += 1
                    guard index < bytes.count else { throw error("Unterminated escape") }
                    let escaped = bytes[index]
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "\""): out += "\""
                    case UInt8(ascii: "\\"): out += "\\"
                    case UInt8(ascii: "/"): out += "/"
                    case UInt8(ascii: "b"): out += "\u{08}"
                    case UInt8(ascii: "f"): out += "\u{0C}"
                    case UInt8(ascii: "n"): out += "\n"
                    case UInt8(ascii: "r"): out += "\r"
                    case UInt8(ascii: "t"): out += "\t"
                    case UInt8(ascii: "u"):
                        var code = try hex4()
                        if (0xD800...0xDBFF).contains(code) {
                            try expect("\\u")
                            let low = try hex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw error("Invalid surrogate pair") }
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let scalar = Unicode.Scalar(code) else { throw error("Invalid unicode escape") }
                        out.unicodeScalars.append(scalar)
                    default: throw error("Invalid escape")
                    }
                    runStart = index
                    continue
                }
                index += 1
            }
        }

        /// Appends the bytes from `start` to the current index, which must be valid UTF-8.
        func appendRun(_ start: Int, to out: inout String) throws(ParseError) {
            guard start < index else { return }
            guard let text = String(validating: bytes[start..<index], as: UTF8.self) else {
                throw ParseError(offset: start, message: "Invalid UTF-8 in string")
            }
            out += text
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            guard index + 4 <= bytes.count else { throw error("Invalid unicode escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw error("Invalid unicode escape")
                }
                value = value * 16 + digit
                index += 1
            }
            return value
        }
    }
}
