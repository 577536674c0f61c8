import Foundation
import KoshCore
import KoshHTTP
import KoshStorage
import KoshTesting
import Testing

/// An `Idempotency-Key` whose request was in flight when its process died (kill -9) is free
/// again within seconds, not after the minute-long lease; one held by a live process answers
/// 409 with `Retry-After`; and a process whose claim was taken over cannot commit its effect.
@Suite("Idempotency claims of dead processes", .serialized)
struct IdempotencyTakeoverTests {
    /// A claim row as a process that has since died left it.
    static func plantClaim(_ kosh: Kosh, key: String, owner: String, heartbeatAt: Int64?, body: String) async throws {
        let now = kosh.services.clock.nowMillis()
        let hash = requestHash(body: body)
        try await kosh.services.db.transaction { conn in
            if let heartbeatAt {
                try await conn.query("INSERT INTO nodes (id, started_at, heartbeat_at) VALUES (?, ?, ?)",
                                     [.text(owner), .int(heartbeatAt - 60_000), .int(heartbeatAt)])
            }
            try await conn.query("""
                INSERT INTO idempotency_keys (merchant_id, key, request_hash, status, created_at, locked_at, owner)
                VALUES (?, ?, ?, 'started', ?, ?, ?)
                """, [.text(kosh.merchant.merchant.id), .text(key), .text(hash), .int(now - 1_000), .int(now - 1_000), .text(owner)])
        }
    }

    /// The hash the API computes for POST /v1/orders with `body` (the replay check compares it).
    static func requestHash(body: String) -> String {
        MerchantRequestHash.compute(method: "POST", path: "/v1/orders", body: body)
    }

    @Test("a claim whose process stopped beating is taken over at once", arguments: TestDatabases.all)
    func deadOwner(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let body = #"{"amount":2500,"currency":"INR"}"#
            let now = kosh.services.clock.nowMillis()
            try await Self.plantClaim(kosh, key: "crashed-1", owner: "node-dead", heartbeatAt: now - 10_000, body: body)
            let reply = try await kosh.call(.post, "/v1/orders", body, idempotencyKey: "crashed-1")
            #expect(reply.status == 200, "\(reply.body)")
            #expect(try await kosh.call(.post, "/v1/orders", body, idempotencyKey: "crashed-1").body == reply.body)
        }
    }

    @Test("a claim of a live process answers 409 with Retry-After", arguments: TestDatabases.all)
    func liveOwner(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let body = #"{"amount":2500,"currency":"INR"}"#
            let now = kosh.services.clock.nowMillis()
            try await Self.plantClaim(kosh, key: "busy-1", owner: "node-alive", heartbeatAt: now, body: body)
            let reply = try await kosh.call(.post, "/v1/orders", body, idempotencyKey: "busy-1")
            #expect(reply.status == 409, "\(reply.body)")
            #expect(reply.headers[.retryAfter] == "1")
            #expect(reply.json["error"]?["reason"] == .string("idempotency_key_in_use"))
        }
    }

    @Test("a process whose claim was taken over cannot record its response: its effect rolls back", arguments: TestDatabases.all)
    func takenOver(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let store = IdempotencyStore(db: kosh.services.db)
            let merchant = kosh.merchant.merchant.id
            let now = kosh.services.clock.nowMillis()
            #expect(try await store.claim(merchantID: merchant, key: "k", requestHash: "h", now: now) == .claimed)
            // Another node judged this one dead and took the key.
            try await kosh.services.db.transaction { conn in
                try await conn.query("UPDATE idempotency_keys SET owner = 'node-other' WHERE key = 'k'", [])
            }
            await #expect(throws: KoshError.self) {
                try await kosh.services.db.transaction { conn in
                    try await IdempotencyStore.complete(conn, merchantID: merchant, key: "k", status: 200, body: "{}")
                }
            }
        }
    }
}
