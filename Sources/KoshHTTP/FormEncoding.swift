import KoshCore
import KoshJSON

/// `application/x-www-form-urlencoded` bodies, as Razorpay's own curl examples send them
/// (`-d amount=50000 -d currency=INR -d 'notes[sku]=tee'`), read into the same JSON object a
/// JSON body gives: every value a string (fields that take integers accept digit strings),
/// `name[key]=value` an object member of `name`. The same limits as JSON: duplicate names
/// refused, at most `JSON.maximumMembers` fields, text valid UTF-8.
enum FormEncoding {
    struct Error: Swift.Error, CustomStringConvertible {
        let description: String
    }

    static func parse(_ bytes: [UInt8]) throws(Error) -> JSON {
        var top: [(String, JSON)] = []
        var topIndex: [String: Int] = [:]
        var fields = 0
        for pair in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            fields += 1
            guard fields <= JSON.maximumMembers else { throw Error(description: "Too many fields (at most \(JSON.maximumMembers))") }
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let name = try decode(parts[0])
            let value = parts.count > 1 ? try decode(parts[1]) : ""
            guard !name.isEmpty else { throw Error(description: "A field has no name") }
            if let open = name.firstIndex(of: "["), name.hasSuffix("]") {
                let outer = String(name[..<open])
                let inner = String(name[name.index(after: open)..<name.index(before: name.endIndex)])
                guard !outer.isEmpty, !inner.isEmpty, !inner.contains("["), !inner.contains("]") else {
                    throw Error(description: "Field \"\(JSON.excerpt(name))\" is not name or name[key]")
                }
                if let index = topIndex[outer] {
                    guard case .object(var members) = top[index].1 else { throw Error(description: "Duplicate field \"\(JSON.excerpt(outer))\"") }
                    guard !members.contains(where: { $0.0 == inner }) else { throw Error(description: "Duplicate field \"\(JSON.excerpt(name))\"") }
                    members.append((inner, .string(value)))
                    top[index].1 = .object(members)
                } else {
                    topIndex[outer] = top.count
                    top.append((outer, .object([(inner, .string(value))])))
                }
            } else {
                guard !name.contains("["), !name.contains("]") else { throw Error(description: "Field \"\(JSON.excerpt(name))\" is not name or name[key]") }
                guard topIndex[name] == nil else { throw Error(description: "Duplicate field \"\(JSON.excerpt(name))\"") }
                topIndex[name] = top.count
                top.append((name, .string(value)))
            }
        }
        return .object(top)
    }

    /// Percent-decoding, `+` as a space; the result must be valid UTF-8.
    static func decode(_ bytes: ArraySlice<UInt8>) throws(Error) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "+") {
                out.append(0x20)
            } else if byte == UInt8(ascii: "%") {
                guard index + 2 < bytes.endIndex,
                      let high = Hex.nibble(bytes[index + 1]), let low = Hex.nibble(bytes[index + 2]) else {
                    throw Error(description: "Invalid percent-encoding")
                }
                out.append(high << 4 | low)
                index += 2
            } else {
                out.append(byte)
            }
            index += 1
        }
        guard let text = String(validating: out, as: UTF8.self) else { throw Error(description: "Invalid UTF-8") }
        return text
    }
}
