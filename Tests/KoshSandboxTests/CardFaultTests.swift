import Foundation
import KoshISO8583
import KoshRandom
import Testing
@testable import KoshSandbox

/// The acquirer's faults (`PUT /sandbox/v1/faults/acquirer`) and the card control routes.
@Suite(.timeLimit(.minutes(1))) struct CardFaultTests {
    static let card = "4012888888881881"   // international: no OTP needed

    func stats(_ sandbox: CardSandbox) async throws -> [String: Int] {
        let reply = try await sandbox.http.get("/sandbox/v1/stats")
        let acquirer = try #require(reply["acquirer"] as? [String: Any])
        return acquirer.compactMapValues { ($0 as? NSNumber)?.intValue }
    }

    @Test func aDroppedAnswerLeavesTheAuthorisationOnTheBooksUntilReversed() async throws {
        try await withCardSandbox { sandbox in
            let config = try await sandbox.http.put("/sandbox/v1/faults/acquirer", ["drop_response_rate": 1])
            #expect(config.status == 200 && config["drop_response_rate"] as? Double == 1)
            let connection = try await sandbox.connect()
            try await connection.send(ISO.authorisation(Self.card, amount: 40_000, paymentID: "pay_drop", stan: "000001"))
            // Waiting for an answer that must not come takes real time.
            #expect(try await connection.silent(stan: "000001", for: .milliseconds(300)))
            let books = try await sandbox.eventually { try await sandbox.transaction("pay_drop") }
            #expect(books.string("status") == "approved", "processed, only the answer was lost")
            #expect(try await sandbox.card(Self.card).int("held") == 40_000)
            #expect(try await stats(sandbox)["responses_dropped"] == 1)
            _ = try await sandbox.http.put("/sandbox/v1/faults/acquirer", ["drop_response_rate": 0])
            let reversal = try await connection.exchange(ISO.reversal(Self.card, amount: 40_000, paymentID: "pay_drop", stan: "000002",
                                                                      of: "000001"))
            #expect(reversal[39] == "00")
            #expect(try await sandbox.transaction("pay_drop").string("status") == "reversed")
            #expect(try await sandbox.card(Self.card).int("held") == 0)
            await connection.close()
        }
    }

    @Test func aTimeoutIsNeitherAnsweredNorProcessed() async throws {
        try await withCardSandbox { sandbox in
            _ = try await sandbox.http.put("/sandbox/v1/faults/acquirer", ["timeout_rate": 1])
            let connection = try await sandbox.connect()
            try await connection.send(ISO.authorisation(Self.card, paymentID: "pay_to", stan: "000001"))
            // Real time again: an answer that never comes.
            #expect(try await connection.silent(stan: "000001", for: .milliseconds(300)))
            #expect(try await sandbox.transaction("pay_to").status == 404)
            #expect(try await stats(sandbox)["timeouts_injected"] == 1)
            _ = try await sandbox.http.put("/sandbox/v1/faults/acquirer", ["timeout_rate": 0])
            let reversal = try await connection.exchange(ISO.reversal(Self.card, paymentID: "pay_to", stan: "000002", of: "000001"))
            #expect(reversal[39] == "25", "nothing to reverse: nothing was charged")
            await connection.close()
        }
    }

    @Test func anInjectedErrorAnswers96AndTouchesNothing() async throws {
        try await withCardSandbox { sandbox in
            _ = try await sandbox.http.put("/sandbox/v1/faults/acquirer", ["error_rate": 1, "latency_ms": ["min": 20, "max": 20]])
            let connection = try await sandbox.connect()
            let started = ContinuousClock.now
            let answer = try await connection.exchange(ISO.authorisation(Self.card, paymentID: "pay_err", stan: "000001"))
            #expect(answer[39] == "96" && answer[38] == nil)
            #expect(ContinuousClock.now - started >= .milliseconds(20), "the latency holds the answer")
            #expect(try await sandbox.transaction("pay_err").status == 404)
            #expect(try await sandbox.card(Self.card).int("held") == 0)
            let counts = try await stats(sandbox)
            #expect(counts["calls"] == 1 && counts["errors_injected"] == 1)
            await connection.close()
        }
    }

    @Test func downClosesConnectionsUntilItIsUp() async throws {
        try await withCardSandbox { sandbox in
            let open = try await sandbox.connect()
            #expect(try await open.exchange(ISO.echo(stan: "000001"))[39] == "00")
            _ = try await sandbox.http.put("/sandbox/v1/faults/acquirer", ["down": true])
            #expect(try await open.closedByPeer(within: .seconds(5)), "an open connection is closed")
            let refused = try await sandbox.connect()
            #expect(try await refused.closedByPeer(within: .seconds(5)), "a new one is closed at once")
            _ = try await sandbox.http.put("/sandbox/v1/faults/acquirer", ["down": false])
            let again = try await sandbox.connect()
            #expect(try await again.exchange(ISO.echo(stan: "000002"))[39] == "00")
            await again.close()
        }
    }

    @Test func cardControlRoutes() async throws {
        try await withCardSandbox { sandbox in
            let list = try await sandbox.http.get("/sandbox/v1/cards")
            #expect(list.int("count") == TestCards.all.count)
            let items = list["items"] as? [[String: Any]] ?? []
            #expect(items.allSatisfy { ($0["number"] as? String)?.contains("****") == true })
            #expect(!list.raw.contains("4100280000001007"), "numbers are masked")
            let first = try #require(items.first)
            #expect(first["network"] as? String == "Visa" && first["issuer"] as? String == "HDFC Bank" && first["type"] as? String == "credit")
            #expect(first["balance"] as? Int == 50_000_000 && first["phone"] as? String == "+919810000001")
            #expect(try await sandbox.http.send(.GET, "/sandbox/v1/cards", signing: .none).status == 401)

            let config = try await sandbox.http.get("/sandbox/v1/cards/config")
            #expect(config.int("late_answer_ms") == 20_000 && config.int("issuer_timeout_ms") == 10_000)
            #expect(try await sandbox.http.put("/sandbox/v1/cards/config", ["late_answer_ms": -1]).status == 400)
            #expect(try await sandbox.http.put("/sandbox/v1/cards/config", ["issuer_timeout_ms": 600_001]).status == 400)
            #expect(try await sandbox.http.put("/sandbox/v1/cards/config", ["late": 1]).status == 400)

            let limited = try await sandbox.http.put("/sandbox/v1/cards/\(Self.card)/account", ["transaction_limit": 10_000, "balance": 15_000])
            #expect(limited.status == 200 && limited.int("transaction_limit") == 10_000)
            let connection = try await sandbox.connect()
            #expect(try await connection.exchange(ISO.authorisation(Self.card, amount: 10_001, paymentID: "pay_l1", stan: "000001"))[39] == "61")
            #expect(try await connection.exchange(ISO.authorisation(Self.card, amount: 10_000, paymentID: "pay_l2", stan: "000002"))[39] == "00")
            #expect(try await connection.exchange(ISO.authorisation(Self.card, amount: 5_001, paymentID: "pay_l3", stan: "000003"))[39] == "51")
            let refused = try await sandbox.http.put("/sandbox/v1/cards/\(Self.card)/account", ["balance": 9_999])
            #expect(refused.status == 400, "the balance must cover the holds")
            #expect(try await sandbox.http.put("/sandbox/v1/cards/4111111111111111/account", ["balance": 1]).status == 404)

            let card = try await sandbox.card(Self.card)
            #expect(card.int("held") == 10_000 && card.int("available") == 5_000)
            let holds = card["holds"] as? [[String: Any]] ?? []
            #expect(holds.count == 1 && holds.first?["payment_id"] as? String == "pay_l2")
            let transactions = card["transactions"] as? [[String: Any]] ?? []
            #expect(transactions.compactMap { $0["response_code"] as? String } == ["61", "00", "51"])
            let books = try await sandbox.transaction("pay_l2")
            #expect(books.string("auth_code")?.count == 6 && books.string("card") == "401288******1881")
            #expect((books["response_codes"] as? [String]) == ["0110:00"])
            #expect(try await sandbox.transaction("pay_none").status == 404)
            await connection.close()
        }
    }
}

/// Random, mostly malformed traffic: the acquirer answers or closes, and keeps serving.
@Suite(.timeLimit(.minutes(1))) struct CardRobustnessTests {
    @Test func randomMessagesNeverStopTheAcquirer() async throws {
        try await withCardSandbox { sandbox in
            var random = SplitMix64(seed: 13)
            let values: [Int: [String]] = [
                2: ["4012888888881881", "4100280000001007", "1234", "4111111111111111"],
                3: ["000000", "200000", "999999"], 4: ["000000050000", "000000000000", "999999999999"],
                11: ["000001", "000002", "000003"], 14: ["3012", "0000", "9913"], 37: ["RRN000001ABC"],
                48: [ISO.field48([("PI", "pay_r")]), ISO.field48([("PI", "pay_r"), ("RI", "rf")]), "PI999x", "", "AV003abc"],
                49: ["356", "840"], 70: ["001", "999"], 90: [ISO.original(stan: "000001"), String(repeating: "9", count: 42)],
            ]
            let mtis = ["0100", "0200", "0400", "0420", "0800", "0110", "0300", "9999"]
            for round in 0..<20 {
                let connection = try await sandbox.connect()
                var frames: [UInt8] = []
                for _ in 0..<25 {
                    var message = ISO8583Message(mti: mtis[Int(random.next() % UInt64(mtis.count))])
                    for (field, options) in values where random.next() % 3 != 0 {
                        message[field] = options[Int(random.next() % UInt64(options.count))]
                    }
                    message[7] = ISO.time
                    frames += try ISO8583Frame.frame(try message.encoded())
                }
                if round % 5 == 4 { frames += [0x00, 0x04, 0x41, 0x42, 0x43, 0x44] }   // unreadable: closes
                try await connection.sendRaw(frames)
                try await Task.sleep(for: .milliseconds(20))
                await connection.close()
            }
            let healthy = try await sandbox.connect()
            #expect(try await healthy.exchange(ISO.echo(stan: "123456"))[39] == "00")
            await healthy.close()
        }
    }
}
