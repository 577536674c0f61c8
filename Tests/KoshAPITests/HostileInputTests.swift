import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KoshCore
import KoshJSON
import KoshTesting
import Testing

/// Input no honest client sends, through the production router on each database: every case
/// gets a 4xx in Razorpay's error shape (never a 5xx), and the same answer on SQLite and
/// PostgreSQL.
@Suite("Hostile input", .serialized, .timeLimit(.minutes(3)))
struct HostileInputTests {
    /// Sends raw bytes as the body.
    static func send(_ kosh: Kosh, _ method: HTTPRequest.Method = .post, path: String, bytes: [UInt8],
                     headers extra: HTTPFields = [:]) async throws -> Kosh.Reply {
        var headers: HTTPFields = [.contentType: "application/json", .authorization: kosh.authorization()]
        for field in extra { headers[field.name] = field.value }
        return try await kosh.client.execute(uri: path, method: method, headers: headers, body: ByteBuffer(bytes: bytes)) { response in
            Kosh.Reply(status: Int(response.status.code), body: String(buffer: response.body), headers: response.headers)
        }
    }

    static func expectRazorpayError(_ reply: Kosh.Reply, status: Int, field: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(reply.status == status, "\(reply.body)", sourceLocation: sourceLocation)
        #expect(reply.json["error"]?["code"] == .string("BAD_REQUEST_ERROR"), "\(reply.body)", sourceLocation: sourceLocation)
        if let field { #expect(reply.json["error"]?["field"] == .string(field), "\(reply.body)", sourceLocation: sourceLocation) }
    }

    @Test("duplicate keys are refused: the order is never created with either amount", arguments: TestDatabases.all)
    func duplicateKeys(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let reply = try await kosh.call(.post, "/v1/orders", #"{"amount":100,"amount":50000,"currency":"INR"}"#)
            Self.expectRazorpayError(reply, status: 400)
            #expect(reply.errorDescription?.contains("Duplicate key \"amount\"") == true, "\(reply.body)")
            let list = try await kosh.call(.get, "/v1/orders")
            #expect(list.json["count"] == .int(0))
        }
    }

    @Test("NUL and other control characters are refused naming the field, the same on each database",
          arguments: TestDatabases.all)
    func controlCharacters(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            for (body, field) in [
                (#"{"amount":5000,"currency":"INR","receipt":"r\u0000x"}"#, "receipt"),
                (#"{"amount":5000,"currency":"INR","receipt":"r\u007fx"}"#, "receipt"),
                (#"{"amount":5000,"currency":"INR","receipt":"r\u0085x"}"#, "receipt"),
                (#"{"amount":5000,"currency":"INR","notes":{"k":"a\u0000b"}}"#, "notes"),
                (#"{"amount":5000,"currency":"INR","notes":{"k\u0001":"v"}}"#, "notes"),
            ] {
                let reply = try await kosh.call(.post, "/v1/orders", body)
                Self.expectRazorpayError(reply, status: 400, field: field)
            }
            let order = try await kosh.createOrder()
            for (body, field) in [
                (#"{"order_id":"ORDER","amount":50000,"currency":"INR","method":"upi","vpa":"success@razorpay","email":"a\u0000@example.com","contact":"9123456789"}"#, "email"),
                (#"{"order_id":"ORDER","amount":50000,"currency":"INR","method":"upi","vpa":"success@razorpay","email":"a@example.com","contact":"9123456789","description":"x\u0000y"}"#, "description"),
            ] {
                let reply = try await kosh.call(.post, "/v1/payments/create/upi", body.replacingOccurrences(of: "ORDER", with: order))
                Self.expectRazorpayError(reply, status: 400, field: field)
            }
            // Free text keeps its line breaks and tabs, whole, on both databases.
            let kept = try await kosh.call(.post, "/v1/orders", #"{"amount":5000,"currency":"INR","notes":{"address":"line 1\nline 2\tend"}}"#)
            #expect(kept.status == 200, "\(kept.body)")
            let id = try #require(kept.string("id"))
            let read = try await kosh.call(.get, "/v1/orders/\(id)")
            #expect(read.json["notes"]?["address"] == .string("line 1\nline 2\tend"))
        }
    }

    @Test("invalid UTF-8 is refused, not stored as U+FFFD", arguments: TestDatabases.all)
    func invalidUTF8(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let bytes = Array(#"{"amount":5000,"currency":"INR","receipt":"r"#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
            let reply = try await Self.send(kosh, path: "/v1/orders", bytes: bytes)
            Self.expectRazorpayError(reply, status: 400)
            #expect(reply.errorDescription?.contains("UTF-8") == true, "\(reply.body)")
        }
    }

    @Test("the unknown-fields error names a few fields, however many were sent")
    func unknownFieldsBounded() async throws {
        try await Kosh.run("sqlite") { kosh in
            let extra = (0..<200).map { "\"\(String(repeating: "u", count: 300))\($0)\":1" }.joined(separator: ",")
            let reply = try await kosh.call(.post, "/v1/orders", #"{"amount":5000,"currency":"INR",\#(extra)}"#)
            Self.expectRazorpayError(reply, status: 400)
            #expect(reply.body.utf8.count < 1_000, "\(reply.body.utf8.count) bytes")
            #expect(reply.errorDescription?.contains("and 195 more") == true, "\(reply.body.prefix(300))")
        }
    }

    @Test("numbers: fractions, exponents, out of range, negative, huge", arguments: [
        "5000.5", "5e3", "99999999999999999999", "-5000", "1e400", "0x10", "\"5 000\"", "true", "[]", "{}",
        String(repeating: "9", count: 41),
    ])
    func numbers(_ amount: String) async throws {
        try await Kosh.run("sqlite") { kosh in
            let reply = try await kosh.call(.post, "/v1/orders", #"{"amount":\#(amount),"currency":"INR"}"#)
            Self.expectRazorpayError(reply, status: 400)
        }
    }

    @Test("bodies that are not JSON objects", arguments: ["", "null", "[]", "\"x\"", "{", "{}}", "{\"a\":1}garbage", String(repeating: "[", count: 40)])
    func notObjects(_ body: String) async throws {
        try await Kosh.run("sqlite") { kosh in
            let reply = try await Self.send(kosh, path: "/v1/orders", bytes: Array(body.utf8))
            Self.expectRazorpayError(reply, status: 400)
        }
    }

    @Test("authorization header oddities are 401", arguments: [
        "", "Basic", "Basic ", "Basic ====", "Basic %%%", "Bearer abc", "Basic " + String(repeating: "A", count: 2_000),
        "Basic " + Data("nocolon".utf8).base64EncodedString(), "Basic " + Data(":".utf8).base64EncodedString(),
        "Basic " + Data([0xFF, 0x3A, 0xFE]).base64EncodedString(),
    ])
    func authOddities(_ header: String) async throws {
        try await Kosh.run("sqlite") { kosh in
            let reply = try await kosh.call(.get, "/v1/orders", auth: header)
            #expect(reply.status == 401, "\(reply.body)")
            #expect(reply.json["error"]?["code"] == .string("BAD_REQUEST_ERROR"))
        }
    }

    @Test("Idempotency-Key over 255 characters is refused")
    func longIdempotencyKey() async throws {
        try await Kosh.run("sqlite") { kosh in
            let reply = try await kosh.call(.post, "/v1/orders", #"{"amount":5000,"currency":"INR"}"#,
                                            idempotencyKey: String(repeating: "k", count: 256))
            Self.expectRazorpayError(reply, status: 400, field: "Idempotency-Key")
        }
    }

    @Test("ids in paths: traversal, overlong, wrong prefix", arguments: [
        "/v1/orders/..%2F..%2Fetc", "/v1/orders/" + String(repeating: "a", count: 5_000), "/v1/orders/pay_AAAAAAAAAAAAAA",
        "/v1/payments/%00", "/v1/refunds/rfnd_%FF%FE",
    ])
    func pathIDs(_ path: String) async throws {
        try await Kosh.run("sqlite") { kosh in
            let reply = try await kosh.call(.get, path)
            #expect((400...404).contains(reply.status), "\(reply.status) \(reply.body)")
        }
    }

    @Test("query parameters out of range, signed or repeated", arguments: [
        "count=0", "count=101", "count=abc", "skip=-1", "from=99999999999999999999", "count=1%00", "count=%2B5", "skip=-0",
        "count=10&count=20", "skip=9&skip=&skip=abc", "from=", "count= 5",
    ])
    func queryParameters(_ query: String) async throws {
        try await Kosh.run("sqlite") { kosh in
            let reply = try await kosh.call(.get, "/v1/orders?\(query)")
            Self.expectRazorpayError(reply, status: 400)
        }
    }

    @Test("media types: JSON, a form as Razorpay's curl sends, JSON labelled as a form; anything else 415", arguments: TestDatabases.all)
    func mediaTypes(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let form = try await Self.send(kosh, path: "/v1/orders", bytes: Array("amount=50000&currency=INR&receipt=rcpt%2011&notes[sku]=tee+42".utf8),
                                           headers: [.contentType: "application/x-www-form-urlencoded"])
            #expect(form.status == 200, "\(form.body)")
            #expect(form.json["amount"] == .int(50_000))
            #expect(form.json["receipt"] == .string("rcpt 11"))
            #expect(form.json["notes"]?["sku"] == .string("tee 42"))
            let curlDefault = try await Self.send(kosh, path: "/v1/orders", bytes: Array(#"{"amount":5000,"currency":"INR"}"#.utf8),
                                                  headers: [.contentType: "application/x-www-form-urlencoded"])
            #expect(curlDefault.status == 200, "\(curlDefault.body)")
            for bad in ["amount=5000&amount=6000", "amount=5000&receipt=%ZZ", "amount=5000&receipt=%C3%28", "notes[a][b]=1&amount=5000",
                        "amount=5000&notes=x&notes[k]=v", "amount=5000&receipt=a%00b"] {
                let reply = try await Self.send(kosh, path: "/v1/orders", bytes: Array(bad.utf8), headers: [.contentType: "application/x-www-form-urlencoded"])
                Self.expectRazorpayError(reply, status: 400)
            }
            for type in ["text/xml", "multipart/form-data; boundary=x", "text/plain"] {
                let reply = try await Self.send(kosh, path: "/v1/orders", bytes: Array(#"{"amount":5000}"#.utf8), headers: [.contentType: type])
                #expect(reply.status == 415, "\(type): \(reply.body)")
                #expect(reply.json["error"]?["reason"] == .string("unsupported_media_type"))
            }
            let charset = try await Self.send(kosh, path: "/v1/orders", bytes: Array(#"{"amount":5000}"#.utf8),
                                              headers: [.contentType: "Application/JSON; charset=utf-8"])
            #expect(charset.status == 200, "\(charset.body)")
        }
    }

    @Test("lengths count code points (as JSON Schema does), not grapheme clusters; contact is ASCII digits")
    func lengthsAndContact() async throws {
        try await Kosh.run("sqlite") { kosh in
            // 40 "é" written as e + U+0301: 40 graphemes, 80 code points, over the receipt's 40.
            let combining = String(repeating: "e\u{301}", count: 40)
            let long = try await kosh.call(.post, "/v1/orders", #"{"amount":5000,"currency":"INR","receipt":"\#(combining)"}"#)
            Self.expectRazorpayError(long, status: 400, field: "receipt")
            let order = try await kosh.createOrder()
            let contact = try await kosh.call(.post, "/v1/payments/create/upi", #"""
                {"order_id":"\#(order)","amount":50000,"currency":"INR","method":"upi","vpa":"success@razorpay","email":"a@b.co","contact":"½²³٣٣٣٣٣"}
                """#)
            Self.expectRazorpayError(contact, status: 400, field: "contact")
            let nestedVPA = try await kosh.call(.post, "/v1/payments/create/upi", #"""
                {"order_id":"\#(order)","amount":50000,"currency":"INR","method":"upi","upi":{"vpa":"succ\u0000ess@razorpay"},"email":"a@b.co","contact":"9123456789"}
                """#)
            Self.expectRazorpayError(nestedVPA, status: 400, field: "upi.vpa")
            // An "@" joined to a modifier (one character, two code points) is still an "@".
            let joined = try await kosh.call(.post, "/v1/payments/create/upi", #"""
                {"order_id":"\#(order)","amount":50000,"currency":"INR","method":"upi","vpa":"success@razorpay","email":"asha@\ud83c\udffbexample.com","contact":"9123456789"}
                """#)
            #expect(joined.status == 200, "\(joined.body)")
        }
    }
}
