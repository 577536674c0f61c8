import KoshCore
import KoshJSON
import PropertyBased
import Testing

@Suite("Fees, ledger entries, JSON")
struct MoneyTests {
    @Test("fee = 2% MDR + 18% GST, each rounded half up", arguments: [
        (Int64(10_000), Int64(200), Int64(36)),     // ₹100: 200 + 36
        (Int64(50_000), Int64(1_000), Int64(180)),  // ₹500
        (Int64(10_025), Int64(201), Int64(36)),     // 200.5 → 201; 36.18 → 36
        (Int64(100), Int64(2), Int64(0)),           // 0.36 → 0
        (Int64(125), Int64(3), Int64(1)),           // 2.5 → 3; 0.54 → 1
        (Int64(50_000_000), Int64(1_000_000), Int64(180_000)),
    ])
    func fees(amount: Int64, base: Int64, tax: Int64) {
        let fee = FeeSchedule().fee(amount: amount, method: .upi)
        #expect(fee.base == base)
        #expect(fee.tax == tax)
        #expect(fee.total == base + tax)
    }

    @Test func perMethodOverride() {
        let schedule = FeeSchedule(defaultMDR: 200, mdrBasisPoints: ["upi": 0])
        #expect(schedule.fee(amount: 10_000, method: .upi) == .zero)
        #expect(schedule.fee(amount: 10_000, method: .card).base == 200)
    }

    @Test func unbalancedEntryIsRefused() {
        #expect(throws: LedgerError.unbalanced(currency: .inr, difference: 1)) {
            try JournalEntry(id: "j", kind: .fee, phase: .posted, paymentID: nil, postings: [
                Posting(.feeRevenue, 11, .inr), Posting(.gstPayable, -10, .inr),
            ], createdAt: 0)
        }
        #expect(throws: LedgerError.pendingReference) {
            try JournalEntry(id: "j", kind: .capture, phase: .postPending, paymentID: nil, postings: [
                Posting(.feeRevenue, 10, .inr), Posting(.gstPayable, -10, .inr),
            ], createdAt: 0)
        }
    }

    @Test func twoPhaseBalances() throws {
        let auth = try PostingRules.authorization(id: "a", paymentID: "p", merchantID: "m", rail: "r", amount: 1_000, currency: .inr, at: 0)
        var balances = LedgerBalances()
        balances.apply(auth)
        let merchant = LedgerBalances.Key(account: "merchant:m:balance", currency: .inr)
        #expect(balances.balances[merchant] == .init(posted: 0, pending: -1_000))
        balances.apply(try PostingRules.capture(id: "c", authorization: auth, at: 0))
        #expect(balances.balances[merchant] == .init(posted: -1_000, pending: 0))
        balances.apply(try PostingRules.fee(id: "f", paymentID: "p", merchantID: "m", fee: FeeBreakdown(base: 20, tax: 4), currency: .inr, at: 0))
        #expect(balances.balances[merchant] == .init(posted: -976, pending: 0))
        var voided = LedgerBalances()
        voided.apply(auth)
        voided.apply(try PostingRules.void(id: "v", authorization: auth, at: 0))
        #expect(voided.balances.values.allSatisfy { $0 == .init() })
    }

    @Test func jsonRoundTripKeepsOrderAndEscapes() throws {
        let text = #"{"b":1,"a":[true,null,"x\"\\\n\u00e9\ud83d\ude00"],"c":{"d":-12,"e":1.5}}"#
        let json = try JSON.parse(text)
        #expect(json.serialized() == #"{"b":1,"a":[true,null,"x\"\\\né😀"],"c":{"d":-12,"e":1.5}}"#)
        #expect(try JSON.parse(json.serialized()) == json)
        for bad in ["", "{", "[1,]", "{\"a\"}", "tru", "\"\u{01}\"", "01x", "{\"a\":1}}", String(repeating: "[", count: 100)] {
            #expect(throws: JSON.ParseError.self) { try JSON.parse(bad) }
        }
    }

    @Test func identifiers() {
        let id = Identifiers.make(.payment)
        #expect(id.hasPrefix("pay_") && id.count == 18)
        #expect(Identifiers.isWellFormed(id, .payment))
        #expect(!Identifiers.isWellFormed(id, .order))
        #expect(!Identifiers.isWellFormed("pay_../../etc", .payment))
        // IDs sort (bytewise) by creation time.
        let times: [Int64] = [0, 61, 62, 1_795_000_000_000, 1_795_000_000_001, 1_795_000_060_000]
        let ids = times.map { Identifiers.make(.refund, millis: $0) }
        #expect(ids == ids.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }))
    }

    /// Random sequences of inputs to the pure machines, with the posting rules applied to an
    /// in-memory ledger: entries always balance, nothing is over-refunded, and what the ledger
    /// holds for the merchant equals captured − refunded − fees.
    @Test func randomSequencesKeepTheLedgerBalanced() async {
        await propertyCheck(count: 300, input: Gen.int(in: 0...11).array(of: 1...40), Gen.int(in: 100...100_000)) { steps, amount in
            var machine = PaymentMachine(amount: Int64(amount))
            var balances = LedgerBalances()
            var authorization: JournalEntry?
            var feesCharged: Int64 = 0
            var n = 0
            func nextID() -> String { n += 1; return "e\(n)" }
            for step in steps {
                let event: PaymentEvent = switch step {
                case 0: .submit
                case 1: .authorize(railReference: "r")
                case 2: .fail(TestRail_declined)
                case 3: .capture(amount: Int64(amount), fees: FeeSchedule(), method: .upi)
                case 4: .capture(amount: Int64(amount) - 1, fees: FeeSchedule(), method: .upi)
                case 5: .void
                case 6: .refund(amount: Int64(amount) / 3 + 1)
                case 7: .refund(amount: Int64(amount))
                case 8: .refundFailed(amount: Int64(amount) / 3 + 1)
                case 10: .lateAuthorize(railReference: "late")
                case 11: .autoRefund
                default: .refund(amount: 1)
                }
                guard let actions = try? machine.apply(event) else { continue }
                for action in actions {
                    let entry: JournalEntry? = switch action {
                    case .postAuthorization(let a):
                        try! PostingRules.authorization(id: nextID(), paymentID: "p", merchantID: "m", rail: "r", amount: a, currency: .inr, at: 0)
                    case .postCapture: try! PostingRules.capture(id: nextID(), authorization: authorization!, at: 0)
                    case .voidAuthorization: try! PostingRules.void(id: nextID(), authorization: authorization!, at: 0)
                    case .postFee(let fee):
                        try! PostingRules.fee(id: nextID(), paymentID: "p", merchantID: "m", fee: fee, currency: .inr, at: 0)
                    case .postRefund(let a):
                        try! PostingRules.refund(id: nextID(), paymentID: "p", refundID: "x", merchantID: "m", rail: "r", amount: a, currency: .inr, at: 0)
                    case .reverseRefund(let a):
                        try! PostingRules.refundReversal(id: nextID(), paymentID: "p", refundID: "x", merchantID: "m", rail: "r", amount: a, currency: .inr, at: 0)
                    default: nil
                    }
                    if let entry {
                        if entry.kind == .authorization { authorization = entry }
                        if entry.kind == .fee { feesCharged += entry.postings[0].amount }
                        balances.apply(entry)
                    }
                }
                #expect(machine.amountRefunded >= 0 && machine.amountRefunded <= machine.amount)
            }
            var totals = LedgerBalances.Balance()
            for value in balances.balances.values {
                totals.posted += value.posted
                totals.pending += value.pending
            }
            #expect(totals == LedgerBalances.Balance(), "the whole ledger sums to zero")
            let merchant = balances.balances[LedgerBalances.Key(account: "merchant:m:balance", currency: .inr)] ?? .init()
            let captured: Int64 = machine.isCaptured ? machine.amount : 0
            #expect(-merchant.posted == captured - machine.amountRefunded - feesCharged)
            #expect(merchant.pending == (machine.state == .authorized ? -machine.amount : 0))
        }
    }
}

let TestRail_declined = PaymentFailure(code: "BAD_REQUEST_ERROR", description: "declined", source: "customer",
                                       step: "payment_authorization", reason: "payment_declined")
