extension ISO8583Message {
    /// The message's bytes (without the frame's length prefix). A fixed numeric field shorter
    /// than its length is zero-padded on the left, a fixed text field space-padded on the right;
    /// anything longer, a character outside the field's content, an unknown field or an MTI
    /// that is not 4 digits is refused.
    public func encoded(specs: [Int: ISO8583FieldSpec] = ISO8583FieldSpec.table) throws(ISO8583Error) -> [UInt8] {
        guard mti.utf8.count == 4, mti.utf8.allSatisfy(isDigit) else { throw ISO8583Error("MTI \(mti.prefix(8)) is not 4 digits") }
        let numbers = fields.keys.sorted()
        guard let highest = numbers.last else { throw ISO8583Error("a message needs at least one field") }
        guard numbers.first! >= 2, highest <= 128 else { throw ISO8583Error("field numbers are 2…128") }
        var bitmap = [UInt8](repeating: 0, count: highest > 64 ? 16 : 8)
        if highest > 64 { bitmap[0] |= 0x80 }  // bit 1: a secondary bitmap follows
        for number in numbers { bitmap[(number - 1) / 8] |= 0x80 >> UInt8((number - 1) % 8) }
        var out = Array(mti.utf8) + bitmap
        for number in numbers {
            guard let spec = specs[number] else { throw ISO8583Error("field \(number) has no format") }
            out += try Self.encode(fields[number]!, spec, number)
        }
        return out
    }

    static func encode(_ value: String, _ spec: ISO8583FieldSpec, _ number: Int) throws(ISO8583Error) -> [UInt8] {
        let bytes = Array(value.utf8)
        guard bytes.allSatisfy({ spec.content.allows($0) }) else {
            throw ISO8583Error("field \(number) (\(spec.name)) takes \(spec.content.wording) only")
        }
        switch spec.length {
        case .fixed(let length):
            guard bytes.count <= length else { throw ISO8583Error("field \(number) (\(spec.name)) is \(length) characters at most") }
            let pad = [UInt8](repeating: spec.content == .numeric ? UInt8(ascii: "0") : UInt8(ascii: " "), count: length - bytes.count)
            return spec.content == .numeric ? pad + bytes : bytes + pad
        case .llvar(let max), .lllvar(let max):
            guard bytes.count <= max else { throw ISO8583Error("field \(number) (\(spec.name)) is \(max) characters at most") }
            let digits = spec.length.prefixDigits
            let prefix = String(bytes.count)
            return Array((String(repeating: "0", count: digits - prefix.count) + prefix).utf8) + bytes
        }
    }

    /// Reads one message (without the frame's length prefix). Refuses a bitmap naming a field
    /// with no known format, a length or character outside a field's format, and a message
    /// that ends early or has bytes left over.
    public init(decoding bytes: some Collection<UInt8>, specs: [Int: ISO8583FieldSpec] = ISO8583FieldSpec.table) throws(ISO8583Error) {
        var reader = Reader(bytes: Array(bytes))
        let mti = try reader.take(4, "the MTI")
        guard mti.allSatisfy(isDigit) else { throw ISO8583Error("the MTI is not 4 digits") }
        var bitmap = try reader.take(8, "the primary bitmap")
        if bitmap[0] & 0x80 != 0 { bitmap += try reader.take(8, "the secondary bitmap") }
        var fields: [Int: String] = [:]
        for number in 2...(bitmap.count * 8) where bitmap[(number - 1) / 8] & (0x80 >> UInt8((number - 1) % 8)) != 0 {
            guard let spec = specs[number] else { throw ISO8583Error("the bitmap names field \(number), which has no format") }
            let length: Int
            switch spec.length {
            case .fixed(let fixed): length = fixed
            case .llvar(let max), .lllvar(let max):
                let digits = try reader.take(spec.length.prefixDigits, "the length of field \(number)")
                guard digits.allSatisfy(isDigit), let given = Int(String(decoding: digits, as: UTF8.self)), given <= max else {
                    throw ISO8583Error("field \(number) (\(spec.name)) has a bad length")
                }
                length = given
            }
            let value = try reader.take(length, "field \(number)")
            guard value.allSatisfy({ spec.content.allows($0) }) else {
                throw ISO8583Error("field \(number) (\(spec.name)) holds characters outside \(spec.content.wording)")
            }
            fields[number] = String(decoding: value, as: UTF8.self)
        }
        guard reader.isAtEnd else { throw ISO8583Error("\(reader.remaining) bytes follow the last field") }
        guard !fields.isEmpty else { throw ISO8583Error("the message has no field") }
        self.init(mti: String(decoding: mti, as: UTF8.self), fields: fields)
    }
}

struct Reader {
    let bytes: [UInt8]
    var position = 0

    var isAtEnd: Bool { position == bytes.count }
    var remaining: Int { bytes.count - position }

    mutating func take(_ count: Int, _ what: String) throws(ISO8583Error) -> [UInt8] {
        guard count <= remaining else { throw ISO8583Error("the message ends inside \(what)") }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }
}

func isDigit(_ byte: UInt8) -> Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }

extension ISO8583FieldSpec.Content {
    func allows(_ byte: UInt8) -> Bool {
        switch self {
        case .numeric: isDigit(byte)
        case .alphanumeric: isDigit(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || byte == UInt8(ascii: " ")
        case .text: (0x20...0x7E).contains(byte)
        }
    }

    var wording: String {
        switch self {
        case .numeric: "digits"
        case .alphanumeric: "letters, digits and spaces"
        case .text: "printable ASCII"
        }
    }
}

extension ISO8583FieldSpec.Length {
    var prefixDigits: Int {
        switch self {
        case .fixed: 0
        case .llvar: 2
        case .lllvar: 3
        }
    }
}

/// The frame around each message on the TCP stream: a 2-byte big-endian length, then the
/// message. `FrameReader` takes bytes as they arrive and hands out whole messages.
public enum ISO8583Frame {
    /// The largest message a frame carries (the 2-byte prefix allows 65,535).
    public static let maximumLength = 8_192

    public static func frame(_ message: [UInt8]) throws(ISO8583Error) -> [UInt8] {
        guard message.count <= maximumLength else { throw ISO8583Error("a message of \(message.count) bytes is over \(maximumLength)") }
        return [UInt8(message.count >> 8), UInt8(message.count & 0xFF)] + message
    }
}

public struct ISO8583FrameReader: Sendable {
    var buffer: [UInt8] = []

    public init() {}

    /// Adds bytes read from the stream; returns every message they complete, in order. A
    /// length over `ISO8583Frame.maximumLength` is refused (the connection should be closed).
    public mutating func append(_ bytes: some Sequence<UInt8>) throws(ISO8583Error) -> [[UInt8]] {
        buffer += bytes
        var messages: [[UInt8]] = []
        while buffer.count >= 2 {
            let length = Int(buffer[0]) << 8 | Int(buffer[1])
            guard length <= ISO8583Frame.maximumLength else { throw ISO8583Error("a frame announces \(length) bytes, over \(ISO8583Frame.maximumLength)") }
            guard buffer.count >= 2 + length else { break }
            messages.append(Array(buffer[2..<(2 + length)]))
            buffer.removeFirst(2 + length)
        }
        return messages
    }

    /// Bytes of an unfinished frame held back.
    public var pendingCount: Int { buffer.count }
}
