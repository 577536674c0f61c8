import KoshCore
import PropertyBased
import Testing

@Suite("Card numbers, expiry and BIN data")
struct CardTests {
    @Test("Razorpay's Indian test cards pass Luhn and resolve to their network", arguments: [
        ("4100280000001007", CardNetwork.visa), ("5500670000001002", .mastercard), ("6527658900001005", .rupay),
        ("36082800091007", .diners), ("340256000401007", .amex),
    ])
    func testCards(number: String, network: CardNetwork) throws {
        let card = try CardNumber(number)
        #expect(BINTable.sandbox.lookup(card).network == network)
        #expect(BINTable.network(ofNumber: number) == network)
        #expect(card.iin == String(number.prefix(6)) && card.last4 == String(number.suffix(4)))
        #expect(!card.description.contains(number.dropFirst(6).dropLast(4)), "the middle digits never show")
    }

    @Test("bad numbers are refused for the right reason")
    func refusals() {
        #expect(throws: CardInputProblem.numberChecksum) { try CardNumber("4111111111111112") }
        #expect(throws: CardInputProblem.numberNotDigits) { try CardNumber("4100 2800 0000 1007") }
        #expect(throws: CardInputProblem.numberNotDigits) { try CardNumber("") }
        #expect(throws: CardInputProblem.numberLength) { try CardNumber("41002800007") }
        #expect(throws: CardInputProblem.numberLength) { try CardNumber(String(repeating: "0", count: 20)) }
    }

    @Test("a single changed digit always breaks the Luhn check (replays from its seed)")
    func luhnCatchesOneDigit() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...15), Gen.int(in: 1...9)) { position, delta in
            var digits = Array("4100280000001007".utf8)
            digits[position] = UInt8(ascii: "0") + UInt8((Int(digits[position] - UInt8(ascii: "0")) + delta) % 10)
            #expect(!CardNumber.luhnValid(digits))
        }
    }

    @Test("expiry: two- or four-digit years; a card is good through the end of its month (UTC)")
    func expiry() throws {
        // 2026-11-29T08:00:00Z
        let now: UnixMillis = 1_795_910_400_000 + 8 * 3_600_000
        #expect(try CardExpiry(month: 11, year: 26).isExpired(at: now) == false)
        #expect(try CardExpiry(month: 10, year: 2026).isExpired(at: now) == true)
        #expect(try CardExpiry(month: 1, year: 30).year == 2030)
        // The first millisecond of December 2026 ends November's cards.
        #expect(try CardExpiry(month: 11, year: 26).isExpired(at: 1_796_083_200_000) == true)
        #expect(try CardExpiry(month: 11, year: 26).isExpired(at: 1_796_083_199_999) == false)
        #expect(throws: CardInputProblem.expiryMonth) { try CardExpiry(month: 13, year: 30) }
        #expect(throws: CardInputProblem.expiryYear) { try CardExpiry(month: 1, year: 1999) }
    }

    @Test("BIN lookup: the longest prefix wins; unknown BINs fall back to the network ranges")
    func binLookup() throws {
        let table = BINTable([BINRecord(prefix: "4", network: .visa, issuer: "any", type: .debit),
                              BINRecord(prefix: "410028", network: .visa, issuer: "HDFC", type: .credit)])
        #expect(table.lookup(try CardNumber("4100280000001007")).issuer == "HDFC")
        #expect(table.lookup(try CardNumber("4012888888881881")).issuer == "any")
        let unknown = BINTable.sandbox.lookup(try CardNumber("5200828282828210"))
        #expect(unknown.network == .mastercard && unknown.issuer == nil && unknown.type == .unknown)
        #expect(BINTable.network(ofNumber: "2221000000000009") == .mastercard)
        #expect(BINTable.network(ofNumber: "3530111333300000") == .jcb)
        #expect(BINTable.network(ofNumber: "9999999999999995") == .unknown)
    }
}
