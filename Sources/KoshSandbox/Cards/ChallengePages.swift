import Foundation
import Hummingbird
import NIOCore

/// The ACS's browser pages (docs/CARDS.md §3): `GET /acs/challenge/{id}` shows the OTP form
/// (texting the OTP on the first view), `POST` takes `otp=…`, `resend=1` or `cancel=1`. A result
/// answers a page that POSTs `authentication_id`, `status` (and `reason` when failed) to the
/// merchant's `return_url` by itself. Not signed (a cardholder's browser has no key) and not
/// subject to the ACS's faults.
struct ChallengePages: Sendable {
    let runtime: SandboxRuntime
    let notifications: NotificationProviders

    static let pathPrefix = "/acs/challenge/"

    /// Whether `path` is a challenge page, which the signature middleware lets through: exactly
    /// `/acs/challenge/` and an id of letters, digits, `_` and `-`.
    static func isBrowserPage(_ path: String) -> Bool {
        guard path.hasPrefix(pathPrefix) else { return false }
        let id = path.utf8.dropFirst(pathPrefix.utf8.count)
        return (1...64).contains(id.count) && id.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }

    func register(on router: Router<SandboxRequestContext>) {
        router.get("acs/challenge/:id") { _, context in
            let id = try context.parameters.require("id")
            guard var authentication = runtime.withWorld({ $0.authentication(id) }) else { return Self.notFound() }
            var notice: String?
            if authentication.status == .challengeRequired && authentication.otp == nil {
                (authentication, notice) = sendOTP(id)
            }
            return page(authentication, notice: notice)
        }
        router.post("acs/challenge/:id") { request, context in
            let id = try context.parameters.require("id")
            var request = request
            let form = FormBody.parse(try await request.collectBody(upTo: context.maxUploadSize))
            let now = runtime.now()
            guard let current = runtime.withWorld({ $0.authentication(id) }) else { return Self.notFound() }
            if form["cancel"] != nil {
                guard let cancelled = runtime.withWorld({ $0.cancelAuthentication(id) }) else { return Self.notFound() }
                return page(cancelled, notice: nil)
            }
            if form["resend"] != nil || (current.status == .challengeRequired && current.otp == nil) {
                let (authentication, notice) = sendOTP(id)
                return page(authentication, notice: notice)
            }
            switch runtime.withWorld({ $0.verifyOTP(id, otp: form["otp"] ?? "", now: now) }) {
            case .answered(let authentication): return page(authentication, notice: nil)
            case .otpNotSent(let authentication): return page(authentication, notice: nil)
            case .notFound: return Self.notFound()
            }
        }
    }

    /// Sends or resends the OTP; answers the authentication and what to tell the cardholder.
    private func sendOTP(_ id: String) -> (ACSAuthentication, String?) {
        let now = runtime.now()
        let outcome = runtime.withWorld { $0.sendOTP(id, now: now) }
        let current = runtime.withWorld { $0.authentication(id) }
        do {
            let authentication = try ACSAPI.send(outcome, notifications)
            return (authentication, "We have sent a one-time password to your phone ending \(Self.phoneEnding(authentication)).")
        } catch let error as SandboxHTTPError where error.code == "resend_limit" {
            return (current ?? Self.placeholder(id), "No more codes can be sent. Enter the last code you received.")
        } catch {
            return (current ?? Self.placeholder(id), "The code could not be sent. Try sending it again.")
        }
    }

    private func page(_ authentication: ACSAuthentication, notice: String?) -> Response {
        if authentication.status == .challengeRequired {
            return Self.html(ChallengeHTML.form(authentication, notice: notice))
        }
        return Self.html(ChallengeHTML.result(authentication))
    }

    static func phoneEnding(_ authentication: ACSAuthentication) -> String { String(authentication.card?.phone.suffix(4) ?? "") }

    /// Only reached when the authentication vanished in between (a reset): shown as not found.
    static func placeholder(_ id: String) -> ACSAuthentication {
        ACSAuthentication(id: id, request: NewAuthentication(paymentID: "", cardNumber: "", expiry: "", amount: 0, merchantName: "",
                                                             returnURL: ""),
                          card: nil, status: .failed, reason: "not_found")
    }

    static func notFound() -> Response {
        html(ChallengeHTML.message(title: "Not found", text: "This payment verification page does not exist or has expired."),
             status: .notFound)
    }

    static func html(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status,
                 headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                           .contentSecurityPolicy: "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                               + "form-action 'self' http: https:; base-uri 'none'"],
                 body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}

/// `application/x-www-form-urlencoded`, first value of each name; at most 16 fields.
enum FormBody {
    static func parse(_ body: ByteBuffer) -> [String: String] {
        let text = String(decoding: body.readableBytesView, as: UTF8.self)
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&").prefix(16) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]), fields[name] == nil else { continue }
            fields[name] = parts.count == 2 ? decode(parts[1]) ?? "" : ""
        }
        return fields
    }

    static func decode(_ text: Substring) -> String? {
        String(text.replacingOccurrences(of: "+", with: " ")).removingPercentEncoding
    }
}
