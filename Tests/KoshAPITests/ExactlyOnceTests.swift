import Foundation
import KoshCore
import KoshStorage
import KoshTesting
import PropertyBased
import Testing

@Suite("Exactly-once: idempotency keys, concurrent refunds, one payment per order", .serialized, .timeLimit(.minutes(10)))
struct ExactlyOnceTests {
    @Test("same key + same body replays byte for byte; another body is a 400", arguments: TestDatabases.all)
    func idempotencyKeys(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let body = #"{"amount": 12345, "currency": "INR", "receipt": "idem"}"#
            let first = try await kosh.call(.post, "/v1/orders", body, idempotencyKey: "order-1")
            let second = try await kosh.call(.post, "/v1/orders", body, idempotencyKey: "order-1")
            #expect(first.status == 200)
            #expect(second.status == 200)
            #expect(second.body == first.body)
            #expect(second.headers[.init("Idempotent-Replayed")!] == "true")
            #expect(try await kosh.call(.get, "/v1/orders").int("count") == 1)

            let different = try await kosh.call(.post, "/v1/orders", #"{"amount": 500}"#, idempotencyKey: "order-1")
            #expect(different.status == 400)
            #expect(different.json["error"]?["reason"] == .string("idempotency_key_reused"))

            // A refused request is recorded too and replays the same refusal.
            let refused = try await kosh.call(.post, "/v1/orders", #"{"amount": 5}"#, idempotencyKey: "bad-1")
            #expect(refused.status == 400)
            #expect(try await kosh.call(.post, "/v1/orders", #"{"amount": 5}"#, idempotencyKey: "bad-1").body == refused.body)

            // Keys are per merchant.
            let other = try await kosh.services.merchants.create(name: "Other")
            #expect(try await kosh.call(.post, "/v1/orders", body, as: other, idempotencyKey: "order-1").string("id") != first.string("id"))

            // Refund replay: the replay is the final (processed) response, not a second refund.
            let payment = try await kosh.capturedPayment(amount: 10_000)
            let refund = try await kosh.call(.post, "/v1/payments/\(payment)/refund", #"{"amount": 1000}"#, idempotencyKey: "refund-1")
            let replay = try await kosh.call(.post, "/v1/payments/\(payment)/refund", #"{"amount": 1000}"#, idempotencyKey: "refund-1")
            #expect(refund.string("status") == "processed")
            #expect(replay.body == refund.body)
            #expect(try await kosh.call(.get, "/v1/payments/\(payment)").int("amount_refunded") == 1_000)

            // Keys expire after 24 h.
            let idempotency = IdempotencyStore(db: kosh.services.db)
            let later = kosh.services.clock.nowMillis() + IdempotencyStore.lifetimeMillis + 1
            guard case .claimed = try await idempotency.claim(merchantID: kosh.merchant.merchant.id.rawValue, key: "order-1", requestHash: "x", now: later) else {
                Issue.record("an expired key was not claimed anew")
                return
            }
            #expect(try await idempotency.purgeExpired(now: later + IdempotencyStore.lifetimeMillis + 1) >= 1)
        }
    }

    @Test("of concurrent duplicates exactly one takes effect", arguments: TestDatabases.all)
    func concurrentDuplicates(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let body = #"{"amount": 2500, "currency": "INR"}"#
            let replies = try await withThrowingTaskGroup(of: Kosh.Reply.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await kosh.call(.post, "/v1/orders", body, idempotencyKey: "dup-key") }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let succeeded = replies.filter { $0.status == 200 }
            #expect(replies.allSatisfy { $0.status == 200 || $0.status == 409 }, "\(replies.map(\.status))")
            #expect(Set(succeeded.map(\.body)).count == 1, "every success is the same order")
            #expect(try await kosh.call(.get, "/v1/orders").int("count") == 1)
        }
    }

    @Test("30 parallel refunds never exceed the captured amount, and every refund that fits succeeds", arguments: TestDatabases.all)
    func parallelRefunds(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let payment = try await kosh.capturedPayment(amount: 25_000)
            let replies = try await withThrowingTaskGroup(of: Kosh.Reply.self) { group in
                for _ in 0..<30 {
                    group.addTask { try await kosh.call(.post, "/v1/payments/\(payment)/refund", #"{"amount": 1000}"#) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(replies.filter { $0.status == 200 }.count == 25)
            #expect(replies.filter { $0.status == 400 }.count == 5, "\(replies.filter { $0.status != 200 }.map(\.body))")
            let final = try await kosh.call(.get, "/v1/payments/\(payment)")
            #expect(final.int("amount_refunded") == 25_000)
            #expect(final.string("status") == "refunded")
            #expect(try await kosh.call(.get, "/v1/payments/\(payment)/refunds?count=100").int("count") == 25)
            try await kosh.expectLedgerConsistent()
        }
    }

    /// Captures, refunds and authorisations of different payments all touch the shared
    /// platform accounts; run concurrently they must neither deadlock nor fail (PostgreSQL).
    @Test("concurrent money movements on many payments never fail or deadlock", arguments: TestDatabases.all)
    func concurrentAcrossPayments(db: String) async throws {
        try await Kosh.run(db) { kosh in
            var authorized: [String] = []
            var captured: [String] = []
            for _ in 0..<8 { authorized.append(try await kosh.authorizedPayment(amount: 4_000)) }
            for _ in 0..<8 { captured.append(try await kosh.capturedPayment(amount: 4_000)) }
            let authorizedIDs = authorized, capturedIDs = captured
            let replies = try await withThrowingTaskGroup(of: Kosh.Reply.self) { group in
                for id in authorizedIDs {
                    group.addTask { try await kosh.call(.post, "/v1/payments/\(id)/capture", #"{"amount": 4000, "currency": "INR"}"#) }
                }
                for id in capturedIDs {
                    for _ in 0..<3 {
                        group.addTask { try await kosh.call(.post, "/v1/payments/\(id)/refund", #"{"amount": 1000}"#) }
                    }
                }
                for _ in 0..<8 {
                    group.addTask {
                        let order = try await kosh.createOrder(amount: 1_500)
                        return try await kosh.createPayment(order: order, amount: 1_500)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(replies.allSatisfy { $0.status == 200 }, "\(replies.filter { $0.status != 200 }.map(\.body))")
            try await kosh.expectLedgerConsistent()
        }
    }

    @Test("an order is paid at most once, even under concurrent payment attempts", arguments: TestDatabases.all)
    func orderPaidOnce(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let order = try await kosh.createOrder(amount: 3_000)
            let replies = try await withThrowingTaskGroup(of: Kosh.Reply.self) { group in
                for _ in 0..<10 {
                    group.addTask { try await kosh.createPayment(order: order, amount: 3_000) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let created = replies.filter { $0.status == 200 }
            #expect(created.count == 1, "\(replies.map(\.body))")
            let id = try #require(created.first?.string("razorpay_payment_id"))
            #expect(try await kosh.settle(id).state == .authorized)
            #expect(try await kosh.call(.post, "/v1/payments/\(id)/capture", #"{"amount": 3000, "currency": "INR"}"#).status == 200)
            let again = try await kosh.createPayment(order: order, amount: 3_000)
            #expect(again.status == 400)
            #expect(again.json["error"]?["reason"] == .string("order_already_paid"))
        }
    }

    /// Random sequences of API operations — including failing payments, invalid requests and
    /// concurrent duplicate refunds and captures — always leave the ledger balanced, with each
    /// payment's captured minus refunded equal to what the ledger holds for it. Every choice
    /// (operation, amount, which payment) comes from the generator, so a failure replays from
    /// its seed.
    @Test("random operation sequences keep the ledger consistent", arguments: TestDatabases.all)
    func randomSequences(db: String) async throws {
        try await Kosh.run(db) { kosh in
            let step = zip(Gen.int(in: 0...7), Gen.int(in: 0...1_000), Gen.int(in: 0...19_900))
            await propertyCheck(count: 8, input: step.array(of: 4...14)) { steps in
                do {
                    var payments: [String] = []
                    for (step, pick, draw) in steps {
                        let chosen: String? = payments.isEmpty ? nil : payments[pick % payments.count]
                        switch step {
                        case 0, 1:
                            let amount = Int64(100 + draw)
                            let order = try await kosh.createOrder(amount: amount)
                            let vpa = step == 0 ? "success@razorpay" : "failure@razorpay"
                            if let id = try await kosh.createPayment(order: order, amount: amount, vpa: vpa).string("razorpay_payment_id") {
                                _ = try await kosh.settle(id)
                                payments.append(id)
                            }
                        case 2, 3:
                            guard let id = chosen else { continue }
                            let amount = try await kosh.call(.get, "/v1/payments/\(id)").int("amount") ?? 0
                            // Concurrent duplicate captures: at most one can win.
                            async let a = kosh.call(.post, "/v1/payments/\(id)/capture", #"{"amount": \#(amount), "currency": "INR"}"#)
                            async let b = kosh.call(.post, "/v1/payments/\(id)/capture", #"{"amount": \#(amount), "currency": "INR"}"#)
                            let (ra, rb) = try await (a, b)
                            #expect(!(ra.status == 200 && rb.status == 200))
                        case 4:
                            guard let id = chosen else { continue }
                            _ = try await kosh.call(.post, "/v1/payments/\(id)/cancel")
                        case 5, 6:
                            guard let id = chosen else { continue }
                            let amount = Int64(1 + draw % 8_000)
                            async let a = kosh.call(.post, "/v1/payments/\(id)/refund", #"{"amount": \#(amount)}"#)
                            async let b = kosh.call(.post, "/v1/payments/\(id)/refund", #"{"amount": \#(amount)}"#, idempotencyKey: "k-\(id)-\(amount)")
                            async let c = kosh.call(.post, "/v1/payments/\(id)/refund", #"{"amount": \#(amount)}"#, idempotencyKey: "k-\(id)-\(amount)")
                            _ = try await (a, b, c)
                        default:
                            guard let id = chosen else { continue }
                            _ = try await kosh.call(.post, "/v1/payments/\(id)/refund", "{}")
                        }
                    }
                    try await kosh.expectLedgerConsistent()
                    for id in payments {
                        let p = try await kosh.services.flows.payment(id: ID(id))
                        #expect(p.machine.amountRefunded <= (p.machine.isCaptured ? p.amount : 0))
                    }
                } catch {
                    Issue.record("unexpected error: \(error)")
                }
            }
        }
    }
}
