import Foundation
import KoshJSON
import Testing

/// The request parser against hostile documents: duplicate keys, invalid UTF-8, and the
/// worst shapes at the body limit, each of which must parse (or be refused) in time linear
/// in its size.
@Suite("JSON parser limits")
struct JSONLimitsTests {
    @Test("a duplicate key is refused, whichever the position", arguments: [
        #"{"amount":100,"amount":50000}"#,
        #"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"a":11}"#,
        #"{"notes":{"k":"1","k":"2"}}"#,
        #"{"a\u0062":1,"ab":2}"#,
    ])
    func duplicateKeys(_ text: String) {
        #expect(throws: JSON.ParseError.self) { try JSON.parse(text) }
        do {
            _ = try JSON.parse(text)
        } catch {
            #expect(error.message.hasPrefix("Duplicate key"))
        }
    }

    @Test("invalid UTF-8 inside a string is refused, valid multi-byte text kept")
    func invalidUTF8() throws {
        for bad: [UInt8] in [[0x22, 0xC3, 0x28, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xFF, 0x22], [0x22, 0xE2, 0x82, 0x22]] {
            #expect(throws: JSON.ParseError.self) { try JSON.parse(bad) }
        }
        #expect(try JSON.parse(Array("\"₹ नमस्ते 😀\"".utf8)) == .string("₹ नमस्ते 😀"))
    }

    @Test("members, items and values are capped")
    func caps() throws {
        let members = (0..<(JSON.maximumMembers + 1)).map { "\"k\($0)\":1" }.joined(separator: ",")
        #expect(throws: JSON.ParseError.self) { try JSON.parse("{\(members)}") }
        let fewer = (0..<JSON.maximumMembers).map { "\"k\($0)\":1" }.joined(separator: ",")
        #expect(throws: Never.self) { try JSON.parse("{\(fewer)}") }
        let items = Array(repeating: "1", count: JSON.maximumArrayItems + 1).joined(separator: ",")
        #expect(throws: JSON.ParseError.self) { try JSON.parse("[\(items)]") }
        let nested = Array(repeating: "[" + Array(repeating: "1", count: 500).joined(separator: ",") + "]", count: 60).joined(separator: ",")
        #expect(throws: JSON.ParseError.self) { try JSON.parse("[\(nested)]") }  // 30,061 values
    }

    @Test("numbers with leading zeros are refused; zero, fractions and exponents are not")
    func leadingZeros() throws {
        for bad in ["01", "-01", "[00]", "{\"a\":0123}"] {
            #expect(throws: JSON.ParseError.self) { try JSON.parse(bad) }
        }
        #expect(try JSON.parse("0") == .int(0))
        #expect(try JSON.parse("-0") == .int(0))
        #expect(try JSON.parse("0.5") == .number("0.5"))
        #expect(try JSON.parse("[0,10]") == .array([.int(0), .int(10)]))
    }

    @Test("an error quoting input is bounded")
    func boundedMessage() {
        let key = String(repeating: "x", count: 10_000)
        do {
            _ = try JSON.parse("{\"\(key)\":1,\"\(key)\":2}")
            Issue.record("duplicate accepted")
        } catch {
            #expect(error.description.count < 120)
        }
    }

    /// Each shape fills the 1 MiB body limit. A parser with a quadratic step (the old
    /// duplicate-key scan took 8.2 s of CPU in a release build on 70,000 keys) blows far past
    /// the bound; a linear one takes milliseconds. The bound is generous so a loaded machine
    /// does not fail it.
    @Test("the worst shapes at the body limit parse in linear time", arguments: WorstShape.allCases)
    func worstShapes(_ shape: WorstShape) {
        let body = shape.document(bytes: 1 << 20)
        #expect(body.count >= (1 << 20) - 64)
        let started = ContinuousClock.now
        _ = try? JSON.parse(body)
        let elapsed = started.duration(to: .now)
        #expect(elapsed < .seconds(5), "\(shape): \(elapsed)")
    }

    enum WorstShape: String, CaseIterable, CustomStringConvertible {
        case manyKeys, manyKeysNested, longEscapedString, manySmallStrings, deepNesting, whitespace, longNumbers, surrogatePairs
        var description: String { rawValue }

        func document(bytes: Int) -> [UInt8] {
            var out: [UInt8] = []
            out.reserveCapacity(bytes + 64)
            func fill(_ prefix: String, _ unit: (Int) -> String, _ suffix: String) {
                out += Array(prefix.utf8)
                var i = 0
                while out.count + suffix.utf8.count < bytes {
                    out += Array(unit(i).utf8)
                    i += 1
                }
                out += Array(suffix.utf8)
            }
            switch self {
            case .manyKeys: fill("{\"notes\":{", { "\"k\($0)\":\"v\"," }, "\"z\":1}}")
            case .manyKeysNested: fill("[", { "{\"a\($0)\":1,\"b\":2,\"c\":3}," }, "1]")
            case .longEscapedString: fill("\"", { _ in "\\u0041\\n" }, "\"")
            case .manySmallStrings: fill("[", { _ in "\"a\"," }, "\"b\"]")
            case .deepNesting: fill("", { _ in "[" }, "")
            case .whitespace: fill("{", { _ in " " }, "}")
            case .longNumbers: fill("[", { _ in "12345678901234567890123456789012345678901," }, "1]")
            case .surrogatePairs: fill("\"", { _ in "\\ud83d\\ude00" }, "\"")
            }
            return out
        }
    }
}
