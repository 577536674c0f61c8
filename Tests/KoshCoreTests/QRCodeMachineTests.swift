import KoshCore
import Testing

/// What a credit does to a QR code (`UPIQRCode.credit`), one line per case.
@Suite("QR codes: credits kept or refused, closing, expiry")
struct QRCodeMachineTests {
    static func code(_ usage: QRUsage, amount: Int64? = nil, closeBy: Int64? = nil) -> UPIQRCode {
        UPIQRCode(id: ID("qr_AAAAAAAAAAAAAA"), merchantID: ID("mer_AAAAAAAAAAAAAA"), name: nil, usage: usage, fixedAmount: amount != nil,
                  paymentAmount: amount, description: nil, customerID: nil, closeBy: closeBy.map { UnixSeconds($0) }, notes: Notes(),
                  imageURL: "http://kosh/qr/qr_AAAAAAAAAAAAAA/image.png", imageContent: "upi://pay?…", createdAt: 1_000)
    }

    @Test("a credit on each kind of code", arguments: [
        (QRUsage.multipleUse, nil as Int64?, 500 as Int64, QRCreditDecision.accept(closes: false)),
        (.multipleUse, 500, 500, .accept(closes: false)),
        (.multipleUse, 500, 499, .refund(.amountMismatch)),
        (.singleUse, 500, 500, .accept(closes: true)),
        (.singleUse, 500, 501, .refund(.amountMismatch)),
        (.multipleUse, nil, 99, .refund(.belowMinimum)),
        (.multipleUse, nil, 100, .accept(closes: false)),
    ])
    func credit(_ usage: QRUsage, _ fixed: Int64?, _ amount: Int64, _ expected: QRCreditDecision) {
        var qr = Self.code(usage, amount: fixed)
        #expect(qr.credit(amount: amount, now: 2_000) == expected)
        let kept = if case .accept = expected { true } else { false }
        #expect(qr.paymentsCountReceived == (kept ? 1 : 0) && qr.paymentsAmountReceived == (kept ? amount : 0))
        #expect(qr.status == (expected == .accept(closes: true) ? .closed : .active))
        #expect(qr.closeReason == (expected == .accept(closes: true) ? .paid : nil))
    }

    @Test func aUsedOrClosedCodeRefusesAndCloseIsOnce() throws {
        var single = Self.code(.singleUse, amount: 100)
        #expect(single.credit(amount: 100, now: 2_000) == .accept(closes: true))
        #expect(single.credit(amount: 100, now: 2_001) == .refund(.closed))
        #expect(single.paymentsCountReceived == 1 && single.closedAt == 2_000)
        #expect(throws: QRCodeTransitionError.self) { try single.close(now: 2_002) }

        var multi = Self.code(.multipleUse)
        try multi.close(now: 3_000)
        #expect(multi.status == .closed && multi.closeReason == .onDemand && multi.closedAt == 3_000)
        #expect(multi.credit(amount: 5, now: 3_001) == .refund(.closed))
        #expect(multi.paymentsAmountReceived == 0)
    }

    @Test func closeByPassed() {
        var qr = Self.code(.singleUse, amount: 100, closeBy: 5_000)
        #expect(!qr.isExpired(now: 4_999) && qr.isExpired(now: 5_000))
        qr.expire(now: 4_999)
        #expect(qr.status == .active, "not yet")
        #expect(qr.credit(amount: 100, now: 5_001) == .refund(.expired))
        #expect(qr.status == .closed && qr.closedAt == 5_000 && qr.closeReason == nil)

        var other = Self.code(.singleUse, amount: 100, closeBy: 5_000)
        other.expire(now: 6_000)
        #expect(other.status == .closed && other.closedAt == 5_000 && other.closeReason == nil)
    }

    @Test func closeByRange() {
        let range = QRCloseByRule.range(now: 1_000)
        #expect(range.lowerBound == 1_120 && range.upperBound == 1_000 + 45 * 86_400)
    }

    @Test func linkFieldsAreEncodedAndBounded() {
        let link = UPIQRLink.make(payeeVPA: "kosh.qr@kosh", payeeName: "Chai & Co", reference: "qr_AAAAAAAAAAAAAA", amount: 4_205, note: "2 × chai")
        #expect(link == "upi://pay?pa=kosh.qr%40kosh&pn=Chai%20%26%20Co&tr=qr_AAAAAAAAAAAAAA&am=42.05&cu=INR&tn=2%20%C3%97%20chai")
        #expect(UPIQRLink.rupees(5) == "0.05" && UPIQRLink.rupees(10_000_000) == "100000.00")
        let worst = UPIQRLink.make(payeeVPA: "kosh.qr@kosh", payeeName: String(repeating: "😀", count: 100), reference: "qr_AAAAAAAAAAAAAA",
                                   amount: 10_000_000, note: String(repeating: "€", count: 255))
        #expect(worst.utf8.count <= UPIQRLink.maximumBytes)
    }
}
