import KoshCore
import KoshISO8583
import Synchronization
import Testing
@testable import KoshRails

/// The card connector against the fake acquirer: the messages of docs/CARDS.md §2 field by
/// field, response codes, and the timeout reversals. Each test ends by checking that nothing
/// it logged holds card data (`Rig.with`).
@Suite("Card network connector", .timeLimit(.minutes(1)))
struct CardNetworkConnectorTests {
    static func tags(_ message: ISO8583Message?) -> [String: String] { message?[48].flatMap(TestTLV.decode) ?? [:] }

    /// Field 90 as the doc spells it: MTI, STAN, field 7, acquirer id in 11 zeros, 11 zeros.
    static func field90(stan: String, transmission: String) -> String {
        "0100" + stan + transmission + "00000400001" + "00000000000"
    }

    @Test func theAuthorisationCarriesEveryFieldOfTheDoc() async throws {
        try await Rig.with { rig in
            let payment = Rig.payment()
            let (answer, reference) = try await rig.connector.authorize(payment, authentication: Rig.authenticated)
            let request = try #require(rig.acquirer.received("0100").first?.message)
            #expect(Set(request.fields.keys) == [2, 3, 4, 7, 11, 12, 13, 14, 18, 22, 25, 32, 37, 41, 42, 43, 48, 49])
            #expect(request[2] == TestCard.number)
            #expect(request[3] == "000000")
            #expect(request[4] == "000000050000")
            #expect(request[7] == "0314184530", "UTC")
            #expect(request[12] == "001530", "IST, already the next day")
            #expect(request[13] == "0315")
            #expect(request[14] == "2912")
            #expect(request[18] == "5999")
            #expect(request[22] == "812")
            #expect(request[25] == "59")
            #expect(request[32] == "400001")
            let rrn = try #require(request[37])
            #expect(rrn.count == 12 && rrn.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) })
            #expect(rrn.hasPrefix("i66xm2f"), "derived from the payment id")
            #expect(request[41] == "KOSH0001")
            #expect(request[42] == "AbCdEfGhIjKlMnO", "the merchant id's last 15")
            #expect(request[43] == "Acme Corp" + String(repeating: " ", count: 31))
            #expect(request[49] == "356")
            #expect(TestTLV.tags(request[48]!) == ["PI", "CV", "AV", "EC", "AI"])
            #expect(Self.tags(request) == ["PI": "pay_29QQoUBi66xm2f", "CV": TestCard.cvv, "AV": TestCard.cavv, "EC": "05",
                                           "AI": "acs_9f8e7d6c5b4a"])
            let signOn = try #require(rig.acquirer.received("0800").first?.message)
            #expect(signOn[70] == "001")
            #expect(request[11] != nil && request[11] != signOn[11], "a STAN of its own")

            #expect(answer == .approved(authCode: "A1B2C3", rrn: rrn))
            #expect(reference == CardAuthorizationReference(stan: request[11]!, transmission: "0314184530", rrn: rrn, authCode: "A1B2C3"))
            // The CVV was taken from the vault once, for this 0100, and is gone from it.
            #expect(rig.vault.detokenizations == [.init(token: TestCard.token, takeCVV: true, gotCVV: true)])
            #expect(rig.vault.cards.withLock { $0[TestCard.token]?.cvv } == nil)
            #expect(!rig.logs.containing("card authorisation answered").isEmpty)
        }
    }

    @Test func withoutACVVInTheVaultThe0100HasNoCV() async throws {
        try await Rig.with { rig in
            rig.vault.cards.withLock { $0[TestCard.token]!.cvv = nil }
            _ = try await rig.connector.authorize(Rig.payment(), authentication: Rig.authenticated)
            let request = try #require(rig.acquirer.received("0100").first?.message)
            #expect(Self.tags(request)["CV"] == nil)
            #expect(Self.tags(request)["AV"] == TestCard.cavv)
        }
    }

    @Test(arguments: ["05", "14", "51", "54", "57", "61", "63", "91", "96"])
    func declinesMapToRazorpayErrors(code: String) async throws {
        try await Rig.with { rig in
            rig.acquirer.play { request, _ in request.mti == "0100" ? .answer(FakeAcquirer.answer(to: request, code: code)) : nil }
            let (answer, reference) = try await rig.connector.authorize(Rig.payment(), authentication: Rig.authenticated)
            #expect(answer == .declined(responseCode: code, CardResponseCodes.failure(responseCode: code)))
            #expect(reference?.authCode == nil)
            #expect(rig.acquirer.received("0400").isEmpty, "a decline is an answer: nothing to reverse")
        }
    }

    @Test func aTimedOutAuthorisationIsReversedAtOnce() async throws {
        try await Rig.with { rig in
            rig.acquirer.play { request, _ in request.mti == "0100" ? .never : nil }
            let (answer, reference) = try await rig.connector.authorize(Rig.payment(), authentication: Rig.authenticated)
            #expect(answer == .reversedAfterTimeout)
            let original = try #require(rig.acquirer.received("0100").first?.message)
            let reversal = try #require(rig.acquirer.received("0400").first?.message)
            #expect(Set(reversal.fields.keys) == [3, 4, 7, 11, 32, 37, 41, 42, 48, 49, 90], "no card: field 90 and PI name the 0100")
            #expect(reversal[4] == "000000050000" && reversal[3] == "000000")
            #expect(reversal[90] == Self.field90(stan: original[11]!, transmission: original[7]!))
            #expect(reversal[11] != original[11] && reversal[37] != original[37], "a new STAN and RRN")
            #expect(Self.tags(reversal) == ["PI": "pay_29QQoUBi66xm2f"], "no CVV or CAVV outside the 0100")
            #expect(reference?.stan == original[11] && reference?.transmission == original[7])
            #expect(rig.vault.detokenizations.map(\.takeCVV) == [true], "the reversal does not read the vault")
            #expect(rig.acquirer.received("0420").isEmpty)
        }
    }

    @Test func aDroppedConnectionAfterThe0100IsReversedToo() async throws {
        try await Rig.with { rig in
            rig.acquirer.play { request, _ in request.mti == "0100" ? .drop : nil }
            let (answer, _) = try await rig.connector.authorize(Rig.payment(), authentication: Rig.authenticated)
            #expect(answer == .reversedAfterTimeout)
            #expect(rig.acquirer.received("0400").first?.connection == 2)
        }
    }

    @Test func anUnansweredReversalGoesOnAsAdvicesUntilResolved() async throws {
        try await Rig.with { rig in
            let advices = Mutex(0)
            rig.acquirer.play { request, _ in
                switch request.mti {
                case "0100", "0400": return .never
                case "0420":
                    // The first advice is lost too; the second is answered.
                    let count = advices.withLock { count in
                        count += 1
                        return count
                    }
                    return count == 1 ? .never : nil
                default: return nil
                }
            }
            let payment = Rig.payment()
            let (answer, reference) = try await rig.connector.authorize(payment, authentication: Rig.authenticated)
            #expect(answer == .unknown)
            let kept = try #require(reference)
            try await eventually { rig.acquirer.received("0420").count >= 2 }
            try await eventually { rig.connector.reversals.withLock { $0.answered(payment.paymentID) } }
            let sent = rig.acquirer.received("0420").count
            let answer1 = try await rig.connector.resolveTimeout(payment, reference: kept)
            #expect(answer1 == .reversedAfterTimeout)
            #expect(rig.acquirer.received("0420").count == sent, "answered already: no advice needed")
            let original = try #require(rig.acquirer.received("0100").first?.message)
            for advice in rig.acquirer.received("0420").map(\.message) + rig.acquirer.received("0400").map(\.message) {
                #expect(advice[90] == Self.field90(stan: original[11]!, transmission: original[7]!))
                #expect(advice[4] == "000000050000")
                #expect(Self.tags(advice) == ["PI": "pay_29QQoUBi66xm2f"])
            }
            #expect(rig.vault.detokenizations.filter(\.takeCVV).count == 1, "the CVV is taken for the 0100 only")
        }
    }

    @Test func resolveTimeoutSendsAnAdviceWhenNothingIsKnownInMemory() async throws {
        // As after a restart: a connector that never saw the payment, with the stored reference.
        try await Rig.with { rig in
            rig.acquirer.play { request, _ in request.mti == "0420" ? .never : nil }
            let payment = Rig.payment()
            let reference = CardAuthorizationReference(stan: "004711", transmission: "0314184000", rrn: "i66xm2f00001", authCode: nil)
            let answer2 = try await rig.connector.resolveTimeout(payment, reference: reference)
            #expect(answer2 == .unknown)
            rig.acquirer.play { request, _ in
                request.mti == "0420" ? .answer(FakeAcquirer.answer(to: request, code: "25")) : nil
            }
            let answer3 = try await rig.connector.resolveTimeout(payment, reference: reference)
            #expect(answer3 == .reversedAfterTimeout, "25: nothing to reverse")
            let withoutReference = try await rig.connector.resolveTimeout(payment, reference: nil)
            #expect(withoutReference == .unknown, "nothing can name the 0100: no guessed field 90")
            let advices = rig.acquirer.received("0420").map(\.message)
            #expect(advices.count == 2)
            #expect(advices.allSatisfy { $0[90] == Self.field90(stan: "004711", transmission: "0314184000") })
        }
    }

    @Test func aLate0110AfterTheReversalIsLoggedAndIgnored() async throws {
        try await Rig.with { rig in
            rig.acquirer.play { request, _ in
                request.mti == "0100" ? .answerAfter(.milliseconds(1_000), FakeAcquirer.answer(to: request)) : nil
            }
            let (answer, _) = try await rig.connector.authorize(Rig.payment(), authentication: Rig.authenticated)
            #expect(answer == .reversedAfterTimeout)
            let stan = try #require(rig.acquirer.received("0100").first?.message[11])
            try await eventually { !rig.logs.containing("late or unmatched").isEmpty }
            let line = try #require(rig.logs.containing("late or unmatched").first)
            #expect(line.contains("iso8583.stan=\(stan)") && line.contains("iso8583.mti=0110"))
            // The connection carries on.
            rig.acquirer.play { _, _ in nil }
            let (again, _) = try await rig.connector.authorize(Rig.payment("pay_second0000001"), authentication: Rig.authenticated)
            #expect(again == .approved(authCode: "A1B2C3", rrn: rig.acquirer.received("0100").last!.message[37]!))
        }
    }

    @Test func captureRefundAndVoidReferToTheAuthorisation() async throws {
        try await Rig.with { rig in
            let payment = Rig.payment()
            let reference = CardAuthorizationReference(stan: "000042", transmission: "0314184530", rrn: "i66xm2f00001", authCode: "A1B2C3")
            let captured = try await rig.connector.capture(payment, amount: 30_000, reference: reference)
            let refunded = try await rig.connector.refund(payment, refundID: ID("rfnd_FP8QHiV938haTz"), amount: 10_000, reference: reference)
            let voided = try await rig.connector.reverse(payment, reference: reference)

            let financial = rig.acquirer.received("0200").map(\.message)
            try #require(financial.count == 2)
            for message in financial {
                #expect(Set(message.fields.keys) == [3, 4, 7, 11, 32, 37, 41, 42, 48, 49, 90], "no card (2) or expiry (14)")
                #expect(message[90] == Self.field90(stan: "000042", transmission: "0314184530"))
                #expect(message[7] == "0314184530")
            }
            #expect(financial[0][3] == "000000" && financial[0][4] == "000000030000")
            #expect(Self.tags(financial[0]) == ["PI": "pay_29QQoUBi66xm2f"])
            #expect(financial[1][3] == "200000" && financial[1][4] == "000000010000")
            #expect(Self.tags(financial[1]) == ["PI": "pay_29QQoUBi66xm2f", "RI": "rfnd_FP8QHiV938haTz"])
            let void = try #require(rig.acquirer.received("0400").first?.message)
            #expect(Set(void.fields.keys) == [3, 4, 7, 11, 32, 37, 41, 42, 48, 49, 90])
            #expect(void[4] == "000000050000", "the original amount")
            #expect(void[90] == Self.field90(stan: "000042", transmission: "0314184530"))

            #expect(captured == .approved(authCode: "A1B2C3", rrn: financial[0][37]!))
            #expect(refunded == .approved(authCode: "A1B2C3", rrn: financial[1][37]!))
            #expect(voided == .approved(authCode: nil, rrn: void[37]!))
            #expect(rig.vault.detokenizations.isEmpty, "captures, refunds and voids never read the vault")
            let rrns = (financial + [void]).compactMap { $0[37] }
            #expect(Set(rrns).count == 3, "an RRN per request")
        }
    }

    @Test func captureRefundAndVoidGoOutWhateverTheVaultHolds() async throws {
        try await Rig.with { rig in
            // The card is gone from the vault (purged after its retention): nothing else changes.
            try await rig.vault.purge(token: TestCard.token)
            let payment = Rig.payment()
            let reference = CardAuthorizationReference(stan: "000042", transmission: "0314184530", rrn: "i66xm2f00001", authCode: "A1B2C3")
            let captured = try await rig.connector.capture(payment, amount: 50_000, reference: reference)
            let refunded = try await rig.connector.refund(payment, refundID: ID("rfnd_FP8QHiV938haTz"), amount: 10_000, reference: reference)
            let voided = try await rig.connector.reverse(payment, reference: reference)
            #expect(captured == .approved(authCode: "A1B2C3", rrn: try #require(rig.acquirer.received("0200").first?.message[37])))
            #expect(refunded == .approved(authCode: "A1B2C3", rrn: try #require(rig.acquirer.received("0200").last?.message[37])))
            #expect(voided == .approved(authCode: nil, rrn: try #require(rig.acquirer.received("0400").first?.message[37])))
            #expect(rig.vault.detokenizations.isEmpty)
        }
    }

    @Test func captureRefundAndVoidWithoutAnswerAreUnknown() async throws {
        try await Rig.with { rig in
            rig.acquirer.play { request, _ in request.mti == "0200" || request.mti == "0400" ? .never : nil }
            let payment = Rig.payment()
            let reference = CardAuthorizationReference(stan: "000042", transmission: "0314184530", rrn: "i66xm2f00001", authCode: "A1B2C3")
            let answer4 = try await rig.connector.capture(payment, amount: 50_000, reference: reference)
            #expect(answer4 == .unknown)
            let answer5 = try await rig.connector.refund(payment, refundID: ID("rfnd_1"), amount: 100, reference: reference)
            #expect(answer5 == .unknown)
            let answer6 = try await rig.connector.reverse(payment, reference: reference)
            #expect(answer6 == .unknown)
            rig.acquirer.play { request, _ in request.mti == "0200" ? .answer(FakeAcquirer.answer(to: request, code: "12")) : nil }
            let declined = try await rig.connector.capture(payment, amount: 60_000, reference: reference)
            #expect(declined == .declined(responseCode: "12", CardResponseCodes.failure(responseCode: "12")))
        }
    }

    @Test func anAcquirerThatCannotBeReachedIsRetriable() async throws {
        try await Rig.with { rig in
            await rig.acquirer.stop()
            // The listening socket is gone; the next connection attempt is refused.
            do {
                _ = try await rig.connector.authorize(Rig.payment(), authentication: Rig.authenticated)
                Issue.record("authorised without an acquirer")
            } catch is CardNetworkUnavailable {
            }
            #expect(rig.vault.cards.withLock { $0[TestCard.token]?.cvv } == TestCard.cvv, "never sent: the CVV is back in the vault")
        }
    }
}
