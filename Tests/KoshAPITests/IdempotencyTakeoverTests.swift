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
        // Heartbeats and claims are judged by the database's own clock (wall time), not by the
        // test's manual clock, which starts at the wall time but falls behind on a loaded run.
        let now = SystemClock().nowMillis()
        let hash = requestHash(body: body)
        try await kosh.services.db.transaction { conn in
            if let heartbeatAt {
                try await conn.query("INSERT INTO nodes (id, started_at, heartbeat_at) VALUES (?, ?, ?)",
                                     [.text(owner), .int(heartbeatAt - 60_000), .int(heartbeatAt)])
            }
            try await conn.query("""
                INSERT INTO idempotency_keys (merchant_id, key, request_hash, status, created_at, locked_at, owner)
                VALUES (?, ?, ?, 'started', ?, ?, ?)
                """, [.text(kosh.merchant.merchant.id.rawValue), .text(key), .text(hash), .int(now - 1_000), .int(now - 1_000), .text(owner)])
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
            let now = SystemClock().nowMillis()  // the database's clock judges heartbeats
            try await Self.plantClaim(kosh, key: "crashed-1", owner: "node-dead", heartbeatAt: now - 60_000, body: body)
            let reply = try await kosh.call(.post, "/v1/orders", body, idempotencyKey: "crashed-1")
            #expect(reply.status == 200, "\(reply.body)")
            #expect(try await kosh.call(.post, "/v1/orders", body, idempotencyKey: "crashed-1").body == reply.body)
        }
    }

    @Test("a claim of a live process answers 409 with Retry-After", arguments: TestDatabases.all)
    func liveOwner(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let body = #"{"amount":2500,"currency":"INR"}"#
            let now = SystemClock().nowMillis()  // the database's clock judges heartbeats
            try await Self.plantClaim(kosh, key: "busy-1", owner: "node-alive", heartbeatAt: now, body: body)
            let reply = try await kosh.call(.post, "/v1/orders", body, idempotencyKey: "busy-1")
            #expect(reply.status == 409, "\(reply.body)")
            #expect(reply.headers[.retryAfter] == "1")
            #expect(reply.json["error"]?["reason"] == .string("idempotency_key_in_use"))
        }
    }

    @Test("a claim taken over cannot record its response, on another node or on the same one: its effect rolls back",
          arguments: TestDatabases.all)
    func takenOver(_ kind: String) async throws {
        try await Kosh.run(kind) { kosh in
            let store = IdempotencyStore(db: kosh.services.db, leaseMillis: 60_000)
            let merchant = kosh.merchant.merchant.id.rawValue
            let now = SystemClock().nowMillis()  // the database's clock judges heartbeats
            guard case .claimed(let first) = try await store.claim(merchantID: merchant, key: "k", requestHash: "h", now: now) else {
                Issue.record("not claimed"); return
            }
            // The first request runs past its lease (a refund stuck behind a lock); its client
            // retries on this same node and the retry takes the key over.
            guard case .claimed(let second) = try await store.claim(merchantID: merchant, key: "k", requestHash: "h", now: now + 60_001) else {
                Issue.record("the retry did not take over an expired claim"); return
            }
            #expect(first != second)
            // The first request now tries to commit its effect with its response: refused, and
            // the effect (a marker row written in the same transaction) is rolled back.
            await #expect(throws: KoshError.self) {
                try await kosh.services.db.transaction { conn in
                    try await conn.query("INSERT INTO nodes (id, started_at, heartbeat_at) VALUES ('effect-marker', 0, 0)", [])
                    try await IdempotencyStore.complete(conn, merchantID: merchant, key: "k", token: first, status: 200, body: "{}")
                }
            }
            let marker = try await kosh.services.db.transaction { conn in
                try await conn.query("SELECT id FROM nodes WHERE id = 'effect-marker'", [])
            }
            #expect(marker.isEmpty)
            // The retry records its response; the key then replays it.
            try await store.complete(merchantID: merchant, key: "k", token: second, status: 200, body: "{\"ok\":true}")
            #expect(try await store.claim(merchantID: merchant, key: "k", requestHash: "h", now: now + 60_002) == .replay(status: 200, body: "{\"ok\":true}"))
        }
    }
}
