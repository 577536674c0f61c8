import KoshISO8583
import PropertyBased
import Testing

@Suite("ISO 8583 messages and frames")
struct CodecTests {
    static let authorization = ISO8583Message(mti: "0100", fields: [
        2: "4100280000001007", 3: "000000", 4: "000000050000", 7: "1129063512", 11: "000123",
        14: "3012", 22: "010", 41: "KOSHT001", 42: "KOSHMERCHANT001", 49: "356",
    ])

    @Test("an authorisation request: MTI, bitmap bits for its fields, then each field in its format")
    func authorizationLayout() throws {
        let bytes = try Self.authorization.encoded()
        #expect(Array(bytes.prefix(4)) == Array("0100".utf8))
        // Fields 2, 3, 4, 7 | 11, 14 | 22 | 41, 42 | 49 → 72 24 04 00 00 C0 80 00.
        #expect(Array(bytes[4..<12]) == [0x72, 0x24, 0x04, 0x00, 0x00, 0xC0, 0x80, 0x00])
        // Field 2 is LLVAR: "16" then the 16 digits.
        #expect(String(decoding: bytes[12..<30], as: UTF8.self) == "164100280000001007")
        #expect(try ISO8583Message(decoding: bytes) == Self.authorization)
        #expect(Self.authorization.responseMTI == "0110")
        #expect(ISO8583Message(mti: "0800").responseMTI == "0810")
        #expect(ISO8583Message(mti: "0110").responseMTI == nil)
        #expect(ISO8583Message(mti: "0420").responseMTI == "0430")
        #expect(ISO8583Message(mti: "0430").responseMTI == nil)
    }

    @Test("a field over 64 sets bit 1 and writes the secondary bitmap")
    func secondaryBitmap() throws {
        let reversal = ISO8583Message(mti: "0400", fields: [2: "4100280000001007", 11: "000124", 90: String(repeating: "0", count: 42)])
        let bytes = try reversal.encoded()
        #expect(bytes[4] & 0x80 != 0)
        #expect(bytes[4 + 11] == 0x40)  // field 90: bitmap byte 11 (the secondary's 4th), second bit
        #expect(try ISO8583Message(decoding: bytes) == reversal)
    }

    @Test("fixed fields are padded: numeric with zeros on the left, text with spaces on the right")
    func padding() throws {
        let message = ISO8583Message(mti: "0110", fields: [4: "500", 39: "00", 41: "T1"])
        let decoded = try ISO8583Message(decoding: try message.encoded())
        #expect(decoded[4] == "000000000500")
        #expect(decoded[41] == "T1      ")
    }

    @Test("bad values are refused with the field named", arguments: [
        (4, "12a", "field 4"), (4, "1234567890123", "12 characters at most"), (2, String(repeating: "4", count: 20), "19 characters at most"),
        (39, "0!", "letters, digits and spaces"), (41, "caf\u{E9}", "printable ASCII"),
    ])
    func refusedValues(field: Int, value: String, says: String) {
        var message = ISO8583Message(mti: "0100", fields: [11: "000001"])
        message[field] = value
        let error = #expect(throws: ISO8583Error.self) { try message.encoded() }
        #expect(error?.description.contains(says) == true, "\(String(describing: error))")
    }

    @Test("malformed messages are refused: short, unknown field, bad length, bytes left over, bad MTI")
    func malformedMessages() throws {
        let good = try Self.authorization.encoded()
        for cut in [0, 3, 11, 20, good.count - 1] {
            #expect(throws: ISO8583Error.self) { try ISO8583Message(decoding: good.prefix(cut)) }
        }
        #expect(throws: ISO8583Error.self) { try ISO8583Message(decoding: good + [0x30]) }
        var unknown = good
        unknown[4 + 1] |= 0x01  // bit 16: no format
        #expect(throws: ISO8583Error.self) { try ISO8583Message(decoding: unknown) }
        var badLength = good
        badLength[12] = UInt8(ascii: "9")  // field 2 announces 96 digits, over 19
        #expect(throws: ISO8583Error.self) { try ISO8583Message(decoding: badLength) }
        var badMTI = good
        badMTI[0] = UInt8(ascii: "X")
        #expect(throws: ISO8583Error.self) { try ISO8583Message(decoding: badMTI) }
        #expect(throws: ISO8583Error.self) { try ISO8583Message(mti: "100", fields: [11: "1"]).encoded() }
        #expect(throws: ISO8583Error.self) { try ISO8583Message(mti: "0100").encoded() }
    }

    @Test("frames: a 2-byte length; the reader joins split reads and splits joined ones; an oversized length is refused")
    func frames() throws {
        let a = try ISO8583Frame.frame(try Self.authorization.encoded())
        let b = try ISO8583Frame.frame(try ISO8583Message(mti: "0800", fields: [70: "301", 11: "000002"]).encoded())
        #expect(Int(a[0]) << 8 | Int(a[1]) == a.count - 2)
        var reader = ISO8583FrameReader()
        let stream = a + b
        var messages: [[UInt8]] = []
        for chunk in stride(from: 0, to: stream.count, by: 7) {
            messages += try reader.append(stream[chunk..<min(chunk + 7, stream.count)])
        }
        #expect(messages.count == 2 && reader.pendingCount == 0)
        #expect(try ISO8583Message(decoding: messages[0]) == Self.authorization)
        #expect(try ISO8583Message(decoding: messages[1]).mti == "0800")
        var hostile = ISO8583FrameReader()
        #expect(throws: ISO8583Error.self) { try hostile.append([0xFF, 0xFF]) }
    }

    @Test("any message of known fields survives encoding and decoding (replays from its seed)")
    func roundTrip() async {
        let numbers = Array(ISO8583FieldSpec.table.keys).sorted()
        await propertyCheck(count: 300, input: Gen.int(in: 0..<numbers.count).array(of: 1...12), Gen.int(in: 0...999_999).array(of: 12)) { picks, seeds in
            var message = ISO8583Message(mti: "0200")
            for (i, pick) in picks.enumerated() {
                let number = numbers[pick]
                let spec = ISO8583FieldSpec.table[number]!
                let length: Int = switch spec.length {
                case .fixed(let n): n
                case .llvar(let max), .lllvar(let max): min(max, seeds[i % seeds.count] % 30)
                }
                let digits = String(repeating: String(seeds[(i + 1) % seeds.count]), count: length + 1)
                message[number] = String((spec.content == .numeric ? digits : "A" + digits).prefix(length))
            }
            let decoded = try? ISO8583Message(decoding: try message.encoded())
            #expect(decoded == message)
        }
    }
}
