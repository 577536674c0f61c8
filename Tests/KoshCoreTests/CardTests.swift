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

@Suite("Card fees")
struct CardFeeTests {
    @Test("defaults: RuPay debit 0, Amex and Diners 3 %, international 3 %, other cards the default MDR; each step rounds half up")
    func defaults() {
        let schedule = FeeSchedule()
        #expect(schedule.cardRate(network: .rupay, type: .debit, international: false).basisPoints == 0)
        #expect(schedule.cardRate(network: .rupay, type: .credit, international: false).basisPoints == 200)
        #expect(schedule.cardRate(network: .amex, type: .credit, international: false).basisPoints == 300)
        #expect(schedule.cardRate(network: .diners, type: .credit, international: false).basisPoints == 300)
        #expect(schedule.cardRate(network: .visa, type: .credit, international: true) == (300, "card:international"))
        #expect(schedule.cardRate(network: .visa, type: .debit, international: false) == (200, nil))
        // 3 % of ₹1,000.50 (100050 paise) = 3001.5 → 3002; GST 18 % of 3002 = 540.36 → 540.
        let amex = Card(id: "card_AAAAAAAAAAAAAA", merchantID: "mer_AAAAAAAAAAAAAA", vaultToken: "vt_x", fingerprint: "f", iin: "378282",
                        last4: "0005", network: .amex, type: .credit, issuer: nil, international: false, subType: "consumer", name: nil,
                        expiryMonth: 12, expiryYear: 2030, createdAt: 0)
        #expect(schedule.resolving(card: amex).fee(amount: 100_050, method: .card) == FeeBreakdown(base: 3_002, tax: 540))
        #expect(schedule.resolving(card: nil).fee(amount: 100_050, method: .card) == FeeBreakdown(base: 2_001, tax: 360))
    }

    @Test("a merchant's own rate wins at its key; a more specific default still wins over a less specific merchant rate")
    func merchantRates() {
        let schedule = FeeSchedule(defaultMDR: 180, mdrBasisPoints: ["card:amex": 250, "card": 150, "card:rupay:debit": 10])
        #expect(schedule.cardRate(network: .amex, type: .credit, international: false) == (250, "card:amex"))
        #expect(schedule.cardRate(network: .visa, type: .credit, international: false) == (150, "card"))
        #expect(schedule.cardRate(network: .rupay, type: .debit, international: false) == (10, "card:rupay:debit"))
        #expect(schedule.cardRate(network: .visa, type: .credit, international: true) == (300, "card:international"))
        #expect(FeeSchedule.isRateKey("card:rupay:debit") && FeeSchedule.isRateKey("upi") && FeeSchedule.isRateKey("card:international"))
        #expect(!FeeSchedule.isRateKey("card:rupay:gold") && !FeeSchedule.isRateKey("cards") && !FeeSchedule.isRateKey("card:"))
    }
}
