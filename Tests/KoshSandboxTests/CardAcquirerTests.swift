import Foundation
import KoshISO8583
import Testing
@testable import KoshSandbox

/// The acquirer over a real TCP connection (docs/CARDS.md §2): every test card, 3-D Secure,
/// idempotency, capture, refund and reversal.
@Suite(.timeLimit(.minutes(1))) struct CardAcquirerTests {
    static let fiveLakh = Int(TestCards.fiveLakh)

    /// Razorpay's numbers exactly as published, and the sandbox's two: all Luhn-valid and in the table.
    static let published = [
        "4100280000001007", "5500670000001002", "6527658900001005", "378282246310005", "30569309025904",
        "5555555555554444", "4012888888881881", "5104060000000008", "5105105105105100",
        "4100280000090000", "4100280000080001", "4100280000070002", "4100280000060003", "4100280000050004",
        "4100280000040005", "4100280000030006", "4100280000010008", "4100280000020007", "4100280000000009",
        "5305620000001004", "5241810000001008",
    ]

    @Test func testCardsAreLuhnValidAndComplete() {
        #expect(TestCards.all.map(\.number) == Self.published)
        for number in Self.published {
            #expect(CardMask.isLuhnValid(number), "\(number)")
            #expect(TestCards.card(number) != nil)
        }
        #expect(!CardMask.isLuhnValid("4100280000001008"))
        #expect(!CardMask.isLuhnValid("41002800000"))
        #expect(CardMask.mask("4100280000001007") == "410028******1007")
        #expect(TestCards.all.allSatisfy { $0.phone.hasPrefix("+91") && $0.transactionLimit > 0 })
    }

    /// What a ₹500 payment on each card gets, after the ACS flow Kosh runs (a domestic card's
    /// 0100 carries the authentication value only when the ACS authenticated it).
    static let expected: [(String, String)] = [
        ("4100280000001007", "00"), ("5500670000001002", "00"), ("6527658900001005", "00"), ("378282246310005", "00"),
        ("30569309025904", "00"), ("5555555555554444", "00"), ("4012888888881881", "00"), ("5104060000000008", "00"),
        ("5105105105105100", "00"), ("4100280000090000", "91"), ("4100280000080001", "51"), ("4100280000070002", "63"),
        ("4100280000060003", "05"), ("4100280000050004", "05"), ("4100280000040005", "05"), ("4100280000030006", "57"),
        ("4100280000010008", "14"), ("4100280000020007", "96"), ("4100280000000009", "63"), ("5305620000001004", "54"),
        ("5241810000001008", "00"), ("4111111111111111", "14"),
    ]

    @Test func everyTestCardAnswersItsCode() async throws {
        try await withCardSandbox { sandbox in
            // The slow issuers answer on real time: kept short so the test waits little.
            try await sandbox.cardTiming(lateAnswerMs: 50, issuerTimeoutMs: 50)
            let connection = try await sandbox.connect()
            for (index, (pan, code)) in Self.expected.enumerated() {
                let paymentID = "pay_card\(index)"
                let authentication = TestCards.card(pan) == nil ? nil : try await sandbox.authenticate(pan, paymentID: paymentID)
                let vouched = authentication?.string("status") == "authenticated" ? authentication : nil
                let stan = String(format: "%06d", index + 1)
                let answer = try await connection.exchange(ISO.authorisation(pan, paymentID: paymentID, stan: stan, authentication: vouched))
                #expect(answer.mti == "0110")
                #expect(answer[39] == code, "\(pan): \(answer)")
                #expect(answer[37] == "RRN\(stan)ABC", "field 37 echoes the request's RRN")
                #expect(answer[48] == ISO.field48([("PI", paymentID)]))
                if code == "00" {
                    let authCode = try #require(answer[38])
                    #expect(authCode.count == 6 && authCode.allSatisfy { $0.isLetter || $0.isNumber })
                } else {
                    #expect(answer[38] == nil)
                }
            }
            await connection.close()
            let cancelled = try await sandbox.authenticate("4100280000070002", paymentID: "pay_cancel")
            #expect(cancelled.string("status") == "failed" && cancelled.string("reason") == "payment_cancelled")
            let refused = try await sandbox.createAuthentication("4100280000000009", paymentID: "pay_refused")
            #expect(refused.string("status") == "failed" && refused.string("reason") == "authentication_failed")
            let frictionless = try await sandbox.createAuthentication("5555555555554444", paymentID: "pay_intl")
            #expect(frictionless.string("status") == "authenticated" && frictionless.string("eci") == "05")
            #expect(frictionless.string("cavv")?.count == 28)
        }
    }

    @Test func domesticCardsNeedTheACSsAuthenticationValue() async throws {
        try await withCardSandbox { sandbox in
            let connection = try await sandbox.connect()
            let card = "5500670000001002"
            let bare = try await connection.exchange(ISO.authorisation(card, paymentID: "pay_bare", stan: "000001"))
            #expect(bare[39] == "63", "no 3-D Secure → security violation")
            // A value issued for another amount does not do.
            let other = try await sandbox.authenticate(card, amount: 10_000, paymentID: "pay_other")
            #expect(other.string("status") == "authenticated")
            let wrongAmount = try await connection.exchange(ISO.authorisation(card, paymentID: "pay_wrong", stan: "000002", authentication: other))
            #expect(wrongAmount[39] == "63")
            let authentication = try await sandbox.authenticate(card, paymentID: "pay_good")
            let approved = try await connection.exchange(ISO.authorisation(card, paymentID: "pay_good", stan: "000003",
                                                                           authentication: authentication))
            #expect(approved[39] == "00")
            // A wrong expiry is refused by the issuer.
            let auth2 = try await sandbox.authenticate(card, paymentID: "pay_expiry")
            let wrongExpiry = try await connection.exchange(ISO.authorisation(card, paymentID: "pay_expiry", stan: "000004", expiry: "2912",
                                                                              authentication: auth2))
            #expect(wrongExpiry[39] == "54")
            await connection.close()
        }
    }

    @Test func aRepeatedAuthorisationGetsTheFirstAnswerAndOneHold() async throws {
        try await withCardSandbox { sandbox in
            let connection = try await sandbox.connect()
            let card = "4012888888881881"   // international: no OTP needed
            let first = try await connection.exchange(ISO.authorisation(card, amount: 70_000, paymentID: "pay_rep", stan: "000001"))
            let again = try await connection.exchange(ISO.authorisation(card, amount: 70_000, paymentID: "pay_rep", stan: "000002"))
            #expect(first[39] == "00" && again[39] == "00")
            #expect(first[38] == again[38])
            #expect(again[11] == "000002", "the answer carries the repeat's STAN")
            let state = try await sandbox.card(card)
            #expect(state.int("held") == 70_000)
            #expect(state.int("available") == Self.fiveLakh - 70_000)
            #expect((state["holds"] as? [[String: Any]])?.count == 1)
            // A capture naming the repeat's STAN finds the same authorisation.
            let capture = try await connection.exchange(ISO.capture(card, amount: 70_000, paymentID: "pay_rep", stan: "000003", of: "000002"))
            #expect(capture[39] == "00")
            await connection.close()
        }
    }

    @Test func captureIsAtMostTheAuthorisedAmount() async throws {
        try await withCardSandbox { sandbox in
            let connection = try await sandbox.connect()
            let card = "5104060000000008"
            _ = try await connection.exchange(ISO.authorisation(card, amount: 50_000, paymentID: "pay_cap", stan: "000001"))
            let over = try await connection.exchange(ISO.capture(card, amount: 50_001, paymentID: "pay_cap", stan: "000002", of: "000001"))
            #expect(over.mti == "0210" && over[39] == "12")
            let unknown = try await connection.exchange(ISO.capture(card, amount: 100, paymentID: "pay_none", stan: "000003", of: "000001"))
            #expect(unknown[39] == "25")
            let wrongOriginal = try await connection.exchange(ISO.capture(card, amount: 100, paymentID: "pay_cap", stan: "000004", of: "999999"))
            #expect(wrongOriginal[39] == "25")
            let partial = try await connection.exchange(ISO.capture(card, amount: 40_000, paymentID: "pay_cap", stan: "000005", of: "000001"))
            #expect(partial[39] == "00" && partial[38]?.count == 6)
            let repeated = try await connection.exchange(ISO.capture(card, amount: 40_000, paymentID: "pay_cap", stan: "000006", of: "000001"))
            #expect(repeated[39] == "00" && repeated[38] == partial[38])
            let state = try await sandbox.card(card)
            #expect(state.int("held") == 0, "the capture released the rest of the hold")
            #expect(state.int("balance") == Self.fiveLakh - 40_000)
            let books = try await sandbox.transaction("pay_cap")
            #expect(books.string("status") == "approved")
            #expect(books.int("authorised_amount") == 50_000 && books.int("captured_amount") == 40_000)
            #expect(books.string("rrn") == "RRN000001ABC")
            await connection.close()
        }
    }

    @Test func refundsCreditTheCardUpToTheCapture() async throws {
        try await withCardSandbox { sandbox in
            let connection = try await sandbox.connect()
            let card = "4012888888881881"
            _ = try await connection.exchange(ISO.authorisation(card, amount: 30_000, paymentID: "pay_rf", stan: "000001"))
            let early = try await connection.exchange(ISO.refund(card, amount: 100, paymentID: "pay_rf", refundID: "rfnd_0", stan: "000002", of: "000001"))
            #expect(early[39] == "12", "nothing captured yet")
            _ = try await connection.exchange(ISO.capture(card, amount: 30_000, paymentID: "pay_rf", stan: "000003", of: "000001"))
            let first = try await connection.exchange(ISO.refund(card, amount: 10_000, paymentID: "pay_rf", refundID: "rfnd_1", stan: "000004", of: "000001"))
            #expect(first.mti == "0210" && first[39] == "00")
            #expect(first[48] == ISO.field48([("PI", "pay_rf"), ("RI", "rfnd_1")]))
            let replay = try await connection.exchange(ISO.refund(card, amount: 10_000, paymentID: "pay_rf", refundID: "rfnd_1", stan: "000005", of: "000001"))
            #expect(replay[39] == "00" && replay[38] == first[38])
            let over = try await connection.exchange(ISO.refund(card, amount: 20_001, paymentID: "pay_rf", refundID: "rfnd_2", stan: "000006", of: "000001"))
            #expect(over[39] == "12")
            let rest = try await connection.exchange(ISO.refund(card, amount: 20_000, paymentID: "pay_rf", refundID: "rfnd_3", stan: "000007", of: "000001"))
            #expect(rest[39] == "00")
            let noRI = try await connection.exchange(ISO.refund(card, amount: 1, paymentID: "pay_rf", refundID: "", stan: "000008", of: "000001"))
            #expect(noRI[39] == "30")
            #expect(try await sandbox.card(card).int("balance") == Self.fiveLakh)
            let books = try await sandbox.transaction("pay_rf")
            #expect(books.int("refunded_amount") == 30_000)
            #expect((books["refunds"] as? [Any])?.count == 2)
            await connection.close()
        }
    }

    @Test func aReversalReleasesTheHold() async throws {
        try await withCardSandbox { sandbox in
            let connection = try await sandbox.connect()
            let card = "5555555555554444"
            _ = try await connection.exchange(ISO.authorisation(card, amount: 25_000, paymentID: "pay_rev", stan: "000001"))
            #expect(try await sandbox.card(card).int("held") == 25_000)
            let wrongAmount = try await connection.exchange(ISO.reversal(card, amount: 1, paymentID: "pay_rev", stan: "000002", of: "000001"))
            #expect(wrongAmount[39] == "12")
            let reversed = try await connection.exchange(ISO.reversal(card, amount: 25_000, paymentID: "pay_rev", stan: "000003", of: "000001"))
            #expect(reversed.mti == "0410" && reversed[39] == "00" && reversed[37] == "REV000003ABC")
            #expect(reversed[48] == ISO.field48([("PI", "pay_rev")]))
            let advice = try await connection.exchange(ISO.reversal(card, amount: 25_000, paymentID: "pay_rev", stan: "000004", of: "000001",
                                                                    mti: "0420"))
            #expect(advice.mti == "0430" && advice[39] == "00", "a repeated reversal is answered again")
            let state = try await sandbox.card(card)
            #expect(state.int("held") == 0 && state.int("balance") == Self.fiveLakh)
            let books = try await sandbox.transaction("pay_rev")
            #expect(books.string("status") == "reversed" && books.int("reversed_amount") == 25_000)
            let capture = try await connection.exchange(ISO.capture(card, amount: 25_000, paymentID: "pay_rev", stan: "000005", of: "000001"))
            #expect(capture[39] == "12", "a reversed authorisation cannot be captured")
            let unknown = try await connection.exchange(ISO.reversal(card, paymentID: "pay_never", stan: "000006", of: "000001"))
            #expect(unknown[39] == "25")
            await connection.close()
        }
    }

    @Test func aReversalBeforeTheLateIssuerAnswersReleasesItsApproval() async throws {
        try await withCardSandbox { sandbox in
            // The late issuer answers on real time; 1 s leaves the reversal ample room to come first.
            try await sandbox.cardTiming(lateAnswerMs: 1_000)
            let card = "5241810000001008"
            let authentication = try await sandbox.authenticate(card, paymentID: "pay_late")
            let connection = try await sandbox.connect()
            try await connection.send(ISO.authorisation(card, paymentID: "pay_late", stan: "000001", authentication: authentication))
            let reversal = try await connection.exchange(ISO.reversal(card, paymentID: "pay_late", stan: "000002", of: "000001"))
            #expect(reversal[39] == "00")
            #expect(try await sandbox.transaction("pay_late").string("status") == "pending")
            let late = try await connection.answer(stan: "000001")
            #expect(late[39] == "00", "the issuer's answer still comes")
            let books = try await sandbox.transaction("pay_late")
            #expect(books.string("status") == "late_reversed")
            #expect(books.int("reversed_amount") == 50_000)
            let state = try await sandbox.card(card)
            #expect(state.int("held") == 0 && state.int("balance") == Self.fiveLakh)
            #expect(connection.arrivalOrder == ["000002", "000001"])
            await connection.close()
        }
    }

    @Test func networkManagementAndBadMessages() async throws {
        try await withCardSandbox { sandbox in
            let connection = try await sandbox.connect()
            let signOn = try await connection.exchange(ISO.echo(stan: "000001", code: "001"))
            #expect(signOn.mti == "0810" && signOn[39] == "00" && signOn[70] == "001" && signOn[7] == ISO.time)
            let echo = try await connection.exchange(ISO.echo(stan: "000002"))
            #expect(echo[39] == "00")
            var noPI = ISO.authorisation("4012888888881881", paymentID: "pay_x", stan: "000003")
            noPI[48] = "XX003abc"
            #expect(try await connection.exchange(noPI)[39] == "30")
            var badTLV = ISO.authorisation("4012888888881881", paymentID: "pay_x", stan: "000004")
            badTLV[48] = "PI099pay"
            #expect(try await connection.exchange(badTLV)[39] == "30")
            var dollars = ISO.authorisation("4012888888881881", paymentID: "pay_x", stan: "000005")
            dollars[49] = "840"
            #expect(try await connection.exchange(dollars)[39] == "30")
            // The format errors were not recorded: the corrected request goes through.
            #expect(try await connection.exchange(ISO.authorisation("4012888888881881", paymentID: "pay_x", stan: "000006"))[39] == "00")
            // An unreadable frame closes the connection.
            try await connection.sendRaw([0x00, 0x05, 0x30, 0x31, 0x30, 0x30, 0xFF])
            #expect(try await connection.closedByPeer(within: .seconds(5)))
            let oversized = try await sandbox.connect()
            try await oversized.sendRaw([0xFF, 0xFF, 0x00])
            #expect(try await oversized.closedByPeer(within: .seconds(5)))
        }
    }

    @Test func manyMessagesInFlightOnOneConnection() async throws {
        try await withCardSandbox { sandbox in
            // The late card's answer takes 1 s of real time, so the others overtake it.
            try await sandbox.cardTiming(lateAnswerMs: 1_000)
            let late = "5241810000001008"
            let authentication = try await sandbox.authenticate(late, paymentID: "pay_slow")
            var messages = [ISO.authorisation(late, paymentID: "pay_slow", stan: "000001", authentication: authentication)]
            for index in 2...60 {
                let stan = String(format: "%06d", index)
                messages.append(index % 2 == 0 ? ISO.echo(stan: stan)
                                : ISO.authorisation("5105105105105100", amount: 100, paymentID: "pay_m\(index)", stan: stan))
            }
            // The same STAN while the first is still in flight: a duplicate transmission.
            messages.append(ISO.echo(stan: "000001"))
            // All in one write: many frames in one read.
            let connection = try await sandbox.connect()
            try await connection.sendRaw(try messages.flatMap { try ISO8583Frame.frame(try $0.encoded()) })
            let duplicate = try await connection.answer(stan: "000001")
            #expect(duplicate[39] == "94")
            for index in 2...60 {
                let answer = try await connection.answer(stan: String(format: "%06d", index))
                #expect(answer[39] == "00")
                #expect(answer.mti == (index % 2 == 0 ? "0810" : "0110"))
            }
            let slow = try await connection.answer(stan: "000001")
            #expect(slow.mti == "0110" && slow[39] == "00")
            #expect(connection.arrivalOrder.last == "000001", "the slow answer came last")
            #expect(try await sandbox.card("5105105105105100").int("held") == 29 * 100)
            await connection.close()
        }
    }

    @Test func aResetClearsTheBooks() async throws {
        try await withCardSandbox { sandbox in
            let connection = try await sandbox.connect()
            _ = try await connection.exchange(ISO.authorisation("4012888888881881", amount: 1_000, paymentID: "pay_reset", stan: "000001"))
            #expect(try await sandbox.transaction("pay_reset").status == 200)
            #expect(try await sandbox.http.post("/sandbox/v1/reset", [:]).status == 200)
            #expect(try await sandbox.transaction("pay_reset").status == 404)
            #expect(try await sandbox.card("4012888888881881").int("held") == 0)
            let again = try await connection.exchange(ISO.authorisation("4012888888881881", amount: 1_000, paymentID: "pay_reset", stan: "000002"))
            #expect(again[39] == "00", "the connection survives a reset")
            await connection.close()
        }
    }
}
