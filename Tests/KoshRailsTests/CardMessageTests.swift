import KoshCore
import KoshISO8583
import Testing
@testable import KoshRails

/// The pure pieces of the messages: times, names, ids and tagged data.
@Suite("Card messages")
struct CardMessageTests {
    @Test(arguments: [
        (Int64(1_741_977_930_000), "0314184530", "001530", "0315"),  // IST is already the next day
        (1_735_689_599_000, "1231235959", "052959", "0101"),  // and the next year
        (1_709_236_800_000, "0229200000", "013000", "0301"),  // a leap day
        (0, "0101000000", "053000", "0101"),
    ])
    func transmissionInUTCAndLocalTimeInIST(millis: Int64, transmission: String, localTime: String, localDate: String) {
        let time = CardMessageTime(UnixMillis(millis))
        #expect(time.transmission == transmission)
        #expect(time.localTime == localTime)
        #expect(time.localDate == localDate)
    }

    @Test func theMerchantNameIsFortyPrintableASCIICharacters() {
        #expect(CardMessageBuilder.cardAcceptorName("Acme") == "Acme" + String(repeating: " ", count: 36))
        #expect(CardMessageBuilder.cardAcceptorName("Café Müller") == "Cafe Muller" + String(repeating: " ", count: 29))
        #expect(CardMessageBuilder.cardAcceptorName("दुकान Shop") == " Shop" + String(repeating: " ", count: 35))
        let long = String(repeating: "Long Merchant Name ", count: 4)
        #expect(CardMessageBuilder.cardAcceptorName(long) == String(long.prefix(40)))
    }

    @Test func theCardAcceptorIsTheMerchantIdsLastFifteen() {
        #expect(CardMessageBuilder.cardAcceptorID(ID("acc_1AbCdEfGhIjKlMnO")) == "AbCdEfGhIjKlMnO")
        #expect(CardMessageBuilder.cardAcceptorID(ID("acc_short")) == "acc_short")
    }

    @Test func rrnsAreTwelveAlphanumericsAndNewEachTime() {
        let rrns = RRNGenerator()
        let first = rrns.next(for: ID("pay_29QQoUBi66xm2f"))
        let second = rrns.next(for: ID("pay_29QQoUBi66xm2f"))
        #expect(first == "i66xm2f00001" && second == "i66xm2f00002")
        #expect(rrns.next(for: ID("p_1")) == "00000p100003")
        let wrapped = RRNGenerator(start: 99_999)
        #expect(wrapped.next(for: ID("pay_ABCDEFGHIJ")) == "DEFGHIJ00000")
    }

    @Test func taggedDataRoundTrips() throws {
        let text = try CardTLV.encode([("PI", "pay_1"), ("RI", "rfnd_22")])
        #expect(text == "PI005pay_1RI007rfnd_22")
        #expect(CardTLV.decode(text) == ["PI": "pay_1", "RI": "rfnd_22"])
        #expect(CardTLV.decode("PI009pay_1") == nil)
        #expect(throws: ISO8583Error.self) { try CardTLV.encode([("AV", String(repeating: "A", count: 1_000))]) }
    }

    @Test func aFullReversalBookLetsGoOfAnsweredReversalsFirst() {
        var book = ReversalBook()
        let reference = CardAuthorizationReference(stan: "000001", transmission: "0314184530", rrn: "000000100001", authCode: nil)
        func payment(_ n: Int) -> CardPaymentContext {
            CardPaymentContext(paymentID: ID("pay_\(n)"), merchantID: ID("acc_1"), merchantName: "M", vaultToken: "vt_1", amount: 1, currency: .inr)
        }
        let first = book.follow(payment(1), original: reference, limit: 2)
        let second = book.follow(payment(2), original: reference, limit: 2)
        let third = book.follow(payment(3), original: reference, limit: 2)
        #expect(first && second && !third, "full at two")
        _ = book.markAnswered(ID("pay_1"))
        let thirdAgain = book.follow(payment(3), original: reference, limit: 2)
        #expect(thirdAgain)
        #expect(Set(book.entries.keys) == [ID("pay_2"), ID("pay_3")])
        _ = book.shutDown()
        let afterShutdown = book.follow(payment(4), original: reference, limit: 2)
        #expect(!afterShutdown)
    }

    @Test func amountsAreTwelveDigits() throws {
        #expect(try CardMessageBuilder.amount(50_000) == "000000050000")
        #expect(throws: KoshError.self) { try CardMessageBuilder.amount(1_000_000_000_000) }
    }
}
