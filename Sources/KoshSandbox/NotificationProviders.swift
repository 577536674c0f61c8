import KoshJSON
import Hummingbird
import Synchronization

/// Fake SMS and push providers (issue 4 notifications): they accept messages, record them and
/// list them back, so tests and `kosh serve` users can see what Kosh sent. Signed like every
/// sandbox call. `PUT …/outage {"failures": n}` makes the next n sends fail with 503.
final class NotificationProviders: Sendable {
    struct Provider: Sendable {
        var messages: [JSON] = []
        var failuresLeft = 0
    }

    /// At most this many messages are kept per provider (oldest dropped).
    static let capacity = 10_000
    let state = Mutex<[String: Provider]>(["sms": Provider(), "push": Provider()])

    struct SMSBody: Decodable {
        let to: String
        let text: String
        let reference: String?
        enum CodingKeys: String, CodingKey { case to, text, reference }
        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: ["to", "text", "reference"])
            let c = try decoder.container(keyedBy: CodingKeys.self)
            to = try c.decode(String.self, forKey: .to)
            text = try c.decode(String.self, forKey: .text)
            reference = try c.decodeIfPresent(String.self, forKey: .reference)
        }
    }

    struct PushBody: Decodable {
        let user: String
        let title: String
        let body: String
        let reference: String?
        enum CodingKeys: String, CodingKey { case user, title, body, reference }
        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: ["user", "title", "body", "reference"])
            let c = try decoder.container(keyedBy: CodingKeys.self)
            user = try c.decode(String.self, forKey: .user)
            title = try c.decode(String.self, forKey: .title)
            body = try c.decode(String.self, forKey: .body)
            reference = try c.decodeIfPresent(String.self, forKey: .reference)
        }
    }

    struct OutageBody: Decodable {
        let failures: Int
        enum CodingKeys: String, CodingKey { case failures }
        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(allowed: ["failures"])
            failures = try decoder.container(keyedBy: CodingKeys.self).decode(Int.self, forKey: .failures)
        }
    }

    /// Records `message` unless an outage is on; nil when it failed.
    func accept(_ provider: String, _ fields: [(String, JSON)]) -> JSON? {
        state.withLock { all in
            if all[provider, default: Provider()].failuresLeft > 0 {
                all[provider]!.failuresLeft -= 1
                return nil
            }
            let message = JSON.object([("id", .string("\(provider)_\(all[provider, default: Provider()].messages.count + 1)"))] + fields
                                            + [("status", .string("accepted"))])
            all[provider, default: Provider()].messages.append(message)
            if all[provider]!.messages.count > Self.capacity { all[provider]!.messages.removeFirst() }
            return message
        }
    }

    func register(on router: Router<SandboxRequestContext>) {
        for (provider, path) in [("sms", "sms/v1/messages"), ("push", "push/v1/notifications")] {
            router.post(RouterPath(path)) { request, context in
                var request = request
                let fields: [(String, JSON)]
                if provider == "sms" {
                    let body = try await request.decode(SMSBody.self, context: context)
                    guard !body.to.isEmpty, body.to.count <= 32, !body.text.isEmpty, body.text.utf8.count <= 1_600 else {
                        throw SandboxHTTPError.badRequest("to must be 1…32 characters and text 1…1600 bytes")
                    }
                    fields = [("to", .string(body.to)), ("text", .string(body.text)), ("reference", .optional(body.reference))]
                } else {
                    let body = try await request.decode(PushBody.self, context: context)
                    guard !body.user.isEmpty, body.user.count <= 256, body.title.utf8.count <= 256, body.body.utf8.count <= 4_096 else {
                        throw SandboxHTTPError.badRequest("user must be 1…256 characters, title ≤ 256 and body ≤ 4096 bytes")
                    }
                    fields = [("user", .string(body.user)), ("title", .string(body.title)), ("body", .string(body.body)),
                              ("reference", .optional(body.reference))]
                }
                guard let message = self.accept(provider, fields) else {
                    throw SandboxHTTPError(status: .serviceUnavailable, code: "PROVIDER_DOWN", message: "The \(provider) provider is down")
                }
                return jsonResponse(message, status: .created)
            }
            router.get(RouterPath(path)) { _, _ in
                let items = self.state.withLock { $0[provider]?.messages ?? [] }
                return jsonResponse(.object([("count", .int(Int64(items.count))), ("items", .array(items))]))
            }
            let outage = provider == "sms" ? "sms/v1/outage" : "push/v1/outage"
            router.put(RouterPath(outage)) { request, context in
                var request = request
                let body = try await request.decode(OutageBody.self, context: context)
                guard (0...1_000).contains(body.failures) else { throw SandboxHTTPError.badRequest("failures must be 0…1000") }
                self.state.withLock { $0[provider, default: Provider()].failuresLeft = body.failures }
                return jsonResponse(.object([("failures", .int(Int64(body.failures)))]))
            }
        }
    }
}
