import Hummingbird
import KoshCore
import KoshJSON

/// A request's JSON body with field-by-field validation that answers in Razorpay's words.
struct RequestBody {
    let fields: [(String, JSON)]
    private(set) var used: Set<String> = []

    static func parse(_ request: Request, context: some RequestContext, allowEmpty: Bool = false) async throws -> (RequestBody, String) {
        let mediaType = try MediaType(request.headers[.contentType])
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        let bytes = Array(buffer.readableBytesView)
        if mediaType == .form, let first = bytes.first(where: { !isJSONWhitespace($0) }), first != UInt8(ascii: "{") {
            return try parseForm(bytes: bytes)
        }
        return try parse(bytes: bytes, allowEmpty: allowEmpty)
    }

    /// What a body may be: JSON (also when no type is given), or a form as Razorpay's curl
    /// examples send. A form whose text is a JSON object (`curl -d '{…}'` without a
    /// Content-Type header, which curl labels as a form) is read as JSON. Anything else is 415.
    enum MediaType {
        case json, form

        init(_ header: String?) throws {
            guard let header else { self = .json; return }
            let essence = header.split(separator: ";", maxSplits: 1).first.map { String($0).trimmingCharacters(in: " \t").lowercased() } ?? ""
            switch essence {
            case "", "application/json", "text/json": self = .json
            case "application/x-www-form-urlencoded": self = .form
            default:
                if essence.hasPrefix("application/"), essence.hasSuffix("+json") { self = .json; return }
                throw KoshError(.unsupportedMediaType, "The request body must be application/json or application/x-www-form-urlencoded.",
                                field: "Content-Type", source: "NA", step: "NA", reason: "unsupported_media_type")
            }
        }
    }

    static func parseForm(bytes: [UInt8]) throws -> (RequestBody, String) {
        let parsed: Result<JSON, FormEncoding.Error> = Result { () throws(FormEncoding.Error) -> JSON in try FormEncoding.parse(bytes) }
        switch parsed {
        case .success(.object(let fields)): return (RequestBody(fields: fields), String(decoding: bytes, as: UTF8.self))
        case .success: throw KoshError.badRequest("The request body must be a form or a JSON object")
        case .failure(let error): throw KoshError.badRequest("The request body is not a valid form: \(error.description)")
        }
    }

    static func parse(bytes: [UInt8], allowEmpty: Bool) throws -> (RequestBody, String) {
        let raw = String(decoding: bytes, as: UTF8.self)
        if bytes.allSatisfy(isJSONWhitespace) {
            guard allowEmpty else { throw KoshError.badRequest("The request body must be a JSON object") }
            return (RequestBody(fields: []), raw)
        }
        let parsed: Result<JSON, JSON.ParseError> = Result { () throws(JSON.ParseError) -> JSON in try JSON.parse(bytes) }
        let json: JSON
        switch parsed {
        case .success(let value): json = value
        case .failure(let error): throw KoshError.badRequest("The request body is not valid JSON: \(error.description)")
        }
        guard case .object(let fields) = json else {
            throw KoshError.badRequest("The request body must be a JSON object")
        }
        return (RequestBody(fields: fields), raw)
    }

    subscript(_ name: String) -> JSON? {
        guard let value = fields.first(where: { $0.0 == name })?.1 else { return nil }
        if case .null = value { return nil }
        return value
    }

    mutating func int(_ name: String, required: Bool, range: ClosedRange<Int64>? = nil, label: String? = nil) throws -> Int64? {
        used.insert(name)
        guard let value = self[name] else {
            if required { throw KoshError.badRequest("The \(label ?? name) field is required.", field: name) }
            return nil
        }
        let number: Int64
        switch value {
        case .int(let v): number = v
        case .string(let s) where !s.isEmpty && s.utf8.allSatisfy({ (48...57).contains($0) }) && s.utf8.count <= 18: number = Int64(s)!
        default: throw KoshError.badRequest("The \(label ?? name) must be an integer.", field: name)
        }
        if let range, !range.contains(number) {
            if name == "amount" && number < range.lowerBound {
                throw KoshError.badRequest("The amount must be at least INR \(range.lowerBound / 100).00.", field: name)
            }
            throw KoshError.badRequest("The \(label ?? name) must be between \(range.lowerBound) and \(range.upperBound).", field: name)
        }
        return number
    }

    mutating func string(_ name: String, required: Bool = false, maxLength: Int, allowLineBreaks: Bool = false) throws -> String? {
        used.insert(name)
        guard let value = self[name] else {
            if required { throw KoshError.badRequest("The \(name) field is required.", field: name) }
            return nil
        }
        guard case .string(let s) = value else { throw KoshError.badRequest("The \(name) must be a string.", field: name) }
        if required && s.isEmpty { throw KoshError.badRequest("The \(name) field is required.", field: name) }
        // Lengths count Unicode scalars (code points), as JSON Schema's maxLength does.
        guard s.unicodeScalars.count <= maxLength else {
            throw KoshError.badRequest("The \(name) may not be greater than \(maxLength) characters.", field: name)
        }
        try Self.refuseControlCharacters(s, field: name, allowLineBreaks: allowLineBreaks)
        return s
    }

    /// NUL and the other control characters (C0, DEL, C1) never reach storage: SQLite would
    /// cut a text at a NUL and PostgreSQL refuses it. Free text (descriptions, notes values)
    /// may hold tabs and line breaks.
    /// The customer's `email` and `contact` of a payment, both required, as Razorpay checks them.
    mutating func emailAndContact() throws -> (email: String, contact: String) {
        let email = try string("email", required: true, maxLength: APILimits.maximumEmailLength)!
        guard email.unicodeScalars.contains("@") else { throw KoshError.badRequest("The email must be a valid email address.", field: "email") }
        let contact = try string("contact", required: true, maxLength: APILimits.maximumContactLength)!
        guard contact.utf8.count >= 8, contact.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "+")
                                                                || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: " ") }) else {
            throw KoshError.badRequest("The contact must be a valid phone number.", field: "contact")
        }
        return (email, contact)
    }

    static func refuseControlCharacters(_ text: String, field: String, allowLineBreaks: Bool) throws {
        for scalar in text.unicodeScalars {
            let v = scalar.value
            guard v < 0x20 || (0x7F...0x9F).contains(v) else { continue }
            if allowLineBreaks && (v == 0x09 || v == 0x0A || v == 0x0D) { continue }
            throw KoshError.badRequest("The \(field) must not contain control characters.", field: field)
        }
    }

    mutating func currency() throws -> Currency {
        guard let code = try string("currency", required: false, maxLength: 3) else { return .inr }
        guard let currency = Currency(code: code) else {
            throw KoshError.badRequest("The currency \(code) is not supported; use INR.", field: "currency")
        }
        return currency
    }

    mutating func notes() throws -> Notes {
        used.insert("notes")
        guard let value = self["notes"] else { return Notes() }
        var pairs: [(key: String, value: String)] = []
        switch value {
        case .array(let items) where items.isEmpty:
            return Notes()
        case .object(let object):
            guard object.count <= Notes.maximumCount else {
                throw KoshError.badRequest("Number of fields in notes should be less than or equal to \(Notes.maximumCount)", field: "notes")
            }
            for (key, item) in object {
                guard !key.isEmpty, key.unicodeScalars.count <= Notes.maximumKeyLength else {
                    throw KoshError.badRequest("notes keys must be 1 to \(Notes.maximumKeyLength) characters", field: "notes")
                }
                let text: String
                switch item {
                case .string(let s): text = s
                case .int(let i): text = String(i)
                case .number(let n): text = n
                case .bool(let b): text = b ? "true" : "false"
                case .null: text = ""
                default: throw KoshError.badRequest("notes values must be strings or numbers", field: "notes")
                }
                guard text.unicodeScalars.count <= Notes.maximumValueLength else {
                    throw KoshError.badRequest("notes values may not be greater than \(Notes.maximumValueLength) characters", field: "notes")
                }
                try Self.refuseControlCharacters(key, field: "notes", allowLineBreaks: false)
                try Self.refuseControlCharacters(text, field: "notes", allowLineBreaks: true)
                pairs.append((key: key, value: text))
            }
        default:
            throw KoshError.badRequest("The notes field should be an object of key-value pairs", field: "notes")
        }
        return Notes(pairs)
    }

    mutating func object(_ name: String) throws -> [(String, JSON)]? {
        used.insert(name)
        guard let value = self[name] else { return nil }
        guard case .object(let object) = value else { throw KoshError.badRequest("The \(name) field must be an object.", field: name) }
        return object
    }

    /// Razorpay refuses fields it does not know.
    func rejectUnknown(ignoring: Set<String> = []) throws {
        let extra = fields.lazy.map(\.0).filter { !used.contains($0) && !ignoring.contains($0) }
        guard let first = extra.first else { return }
        // The message names a few of them, each cut short, so it cannot grow with the input.
        let shown = extra.prefix(5).map { JSON.excerpt($0) }
        let more = extra.count - shown.count
        let names = shown.joined(separator: ", ") + (more > 0 ? " and \(more) more" : "")
        throw KoshError.badRequest("\(names) is/are not required and should not be sent", field: JSON.excerpt(first),
                                   reason: "input_validation_failed")
    }
}

/// Razorpay's collection query: `count` 1…100 (default 10), `skip` ≥ 0, `from`/`to` unix seconds.
func page(from request: Request) throws -> Page {
    let query = request.uri.queryParameters
    var page = Page()
    func int(_ name: String, _ range: ClosedRange<Int64>) throws -> Int64? {
        let values = query[values: name[...]]
        guard let text = values.first else { return nil }
        guard values.count == 1 else { throw KoshError.badRequest("The \(name) parameter may be given once.", field: name) }
        // Plain digits only: no sign, no spaces, at most 18 of them.
        guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
              let value = Int64(text), range.contains(value) else {
            throw KoshError.badRequest("The \(name) must be an integer between \(range.lowerBound) and \(range.upperBound).", field: name)
        }
        return value
    }
    if let count = try int("count", 1...Int64(Page.maximumCount)) { page.count = Int(count) }
    if let skip = try int("skip", 0...1_000_000) { page.skip = Int(skip) }
    page.from = try int("from", 0...4_102_444_800)
    page.to = try int("to", 0...4_102_444_800)
    return page
}

func validateID(_ id: String, _ prefix: IDPrefix, field: String = "id") throws {
    guard Identifiers.isWellFormed(id, prefix) else {
        throw KoshError.badRequest("\(id.prefix(64)) is not a valid id", field: field)
    }
}

func isJSONWhitespace(_ byte: UInt8) -> Bool {
    byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
}
