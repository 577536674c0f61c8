import Foundation
import KoshJSON
import NIOCore

/// The sandbox writes its JSON with Kosh's one JSON stack (KoshJSON); these are the
/// sandbox's conveniences on it.
extension JSON {
    static func optional(_ value: String?) -> JSON { value.map(JSON.string) ?? .null }

    /// A fractional number (fault rates), written as Swift prints it.
    static func double(_ value: Double) -> JSON {
        precondition(value.isFinite, "non-finite number in JSON")
        return .number("\(value)")
    }

    /// An unsigned number (seeds) that may not fit in Int64.
    static func uint(_ value: UInt64) -> JSON { .number(String(value)) }

    /// An object with `extra` appended.
    func adding(_ extra: [(String, JSON)]) -> JSON {
        guard case .object(let pairs) = self else { preconditionFailure("adding keys to a non-object JSON value") }
        return .object(pairs + extra)
    }

    var bytes: [UInt8] { Array(serialized().utf8) }
}

/// An amount in paise as sent: nil when it was not an integer (1.5, "500", true), so the rail
/// can answer with its own amount error code rather than a generic one.
struct PaiseField: Decodable, Sendable, Equatable {
    let value: Int64?

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        value = try? container.decode(Int64.self)
    }
}

/// A rupee string ("500.00") as sent, converted to paise; nil when malformed or not a string.
struct RupeeField: Decodable, Sendable, Equatable {
    let paise: Int64?

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        paise = (try? container.decode(String.self)).flatMap(Amounts.paise(fromRupees:))
    }
}

/// Why a request body could not be read; rendered as a 400 in the rail's dialect.
struct MalformedRequest: Error, Sendable {
    let message: String
}

enum RequestDecoding {
    /// Decodes a JSON object body into `T`, explaining the first problem found.
    static func decode<T: Decodable>(_ type: T.Type, from body: ByteBuffer) throws(MalformedRequest) -> T {
        let data = Data(body.readableBytesView)
        guard !data.isEmpty else { throw MalformedRequest(message: "The request body must be a JSON object") }
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw MalformedRequest(message: describe(error))
        } catch let error as MalformedRequest {
            throw error
        } catch {
            throw MalformedRequest(message: "The request body is not valid JSON")
        }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "Missing field: \(path(context.codingPath + [key]))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            if context.codingPath.isEmpty { return "The request body must be a JSON object" }
            return "Field \(path(context.codingPath)) has the wrong type"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return "The request body is not valid JSON" }
            return "Field \(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "The request body could not be read"
        }
    }
}

/// Refuses keys a decoder does not know, so a typo in a fault config is an error, not a no-op.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension Decoder {
    func rejectUnknownKeys(allowed: Set<String>) throws {
        let container = try container(keyedBy: AnyKey.self)
        if let unknown = container.allKeys.map(\.stringValue).sorted().first(where: { !allowed.contains($0) }) {
            throw MalformedRequest(message: "Unknown field: \(unknown)")
        }
    }
}
