import Crypto
import Foundation
import Testing
@testable import KoshSandbox

/// The pure parts: signature, money conversion, VPAs, intent links (the random source: KoshRandomTests).
@Suite struct SandboxUnitTests {
    @Test func configurationDefaults() {
        #expect(SandboxConfiguration().secret == SandboxConfiguration.defaultSecret)
        #expect(SandboxConfiguration().port == 9090)
    }

    /// Golden vectors (computed independently with Python's hmac module), also in docs/SANDBOX.md.
    @Test func signatureVectors() {
        #expect(SandboxSignature.sign(secret: "kosh-sandbox-dev-secret", timestamp: 1_700_000_000_000, method: "POST",
                                      path: "/upi/v1/collect", body: #"{"a":1}"#)
            == "6fc01c0377f50623ef983d63902935313cfc148a3c561bee24e0cc8d85f89c7c")
        #expect(SandboxSignature.sign(secret: "kosh-sandbox-dev-secret", timestamp: 1_700_000_000_000, method: "GET",
                                      path: "/upi/v1/transactions/pay_1?x=1", body: "")
            == "7264e647d71861e5c9e2e464f06c510ef232935628550a8ac9c437eccbb6e628")
    }

    @Test func signatureVerification() {
        let now: Int64 = 1_700_000_000_000
        let signature = SandboxSignature.sign(secret: "s", timestamp: now, method: "POST", path: "/p", body: "{}")
        func verify(timestamp: String? = String(now), signature: String? = signature, body: String = "{}", at: Int64 = now) -> Bool {
            SandboxSignature.verify(secret: "s", timestampHeader: timestamp, signatureHeader: signature, method: "POST", path: "/p",
                                    body: Array(body.utf8), now: at)
        }
        #expect(verify())
        #expect(verify(signature: signature.uppercased()))
        #expect(verify(at: now + 300_000))
        #expect(!verify(at: now + 300_001))
        #expect(!verify(at: now - 300_001))
        #expect(!verify(body: "{ }"))
        #expect(!verify(timestamp: nil))
        #expect(!verify(signature: nil))
        #expect(!verify(timestamp: "+1700000000000"))
        #expect(!verify(signature: String(signature.dropLast())))
        #expect(!verify(signature: String(signature.dropLast()) + "g"))
        #expect(!verify(signature: ""))
    }

    @Test(arguments: [
        ("500.00", Int64?.some(50_000)), ("500", 50_000), ("500.5", 50_050), ("0.01", 1), ("0.5", 50), ("1234567890123.99", 123_456_789_012_399),
        ("500.001", nil), ("-5.00", nil), ("+5", nil), ("5e2", nil), ("", nil), (".50", nil), ("500.", nil), ("5 00", nil),
        ("1.2.3", nil), ("१००", nil), ("12345678901234", nil), (" 500", nil),
    ])
    func rupeeStrings(text: String, paise: Int64?) {
        #expect(Amounts.paise(fromRupees: text) == paise)
    }

    @Test func paiseToRupees() {
        #expect(Amounts.rupees(fromPaise: 50_000) == "500.00")
        #expect(Amounts.rupees(fromPaise: 5) == "0.05")
        #expect(Amounts.rupees(fromPaise: 10_050) == "100.50")
        #expect(Amounts.rupees(fromPaise: 0) == "0.00")
    }

    @Test func alphapayFeeRoundsHalfUp() {
        #expect(RailViews.alphapayFee(50_000) == 900)      // 1.8 % of ₹500
        #expect(RailViews.alphapayFee(25) == 0)            // 0.45 → 0
        #expect(RailViews.alphapayFee(28) == 1)            // 0.504 → 1
    }

    @Test func vpas() throws {
        let vpa = try #require(VPA("Success.Asha@YBL"))
        #expect(vpa.address == "success.asha@ybl")
        #expect(vpa.payerName == "Success Asha")
        #expect(vpa.bank == "Yes Bank (PhonePe)")
        #expect(vpa.behaviour == .approve)
        #expect(VPA("failure@oksbi")?.behaviour == .decline)
        #expect(VPA("timeout_1@paytm")?.behaviour == .ignore)
        #expect(VPA("late-ravi@okicici")?.behaviour == .approveLate)
        #expect(VPA("poor@okhdfcbank")?.behaviour == .approveWithoutFunds)
        #expect(VPA("ravi@okhdfcbank")?.behaviour == .approve)
        for invalid in ["a@ybl", "ravi@unknownbank", "ravi", "ravi@@ybl", "ra vi@ybl", "ravi@y", "ravi@ybl1", "@ybl", "ravi@", "rávi@ybl",
                        String(repeating: "a", count: 65) + "@ybl"] {
            #expect(VPA(invalid) == nil, "\(invalid)")
        }
    }

    @Test func intentLinkEncoding() {
        #expect(IntentLink.encode("kosh@okhdfcbank") == "kosh%40okhdfcbank")
        #expect(IntentLink.encode("Kosh Store & Co") == "Kosh%20Store%20%26%20Co")
        #expect(IntentLink.encode("a-b_c.d~") == "a-b_c.d~")
        #expect(IntentLink.encode("₹") == "%E2%82%B9")
    }

    /// The world without HTTP: limits and refunds debit and credit one account.
    @Test func worldLimitsAndRefunds() throws {
        var world = SandboxWorld(seed: 1)
        let payer = try #require(VPA("success@ybl"))
        func pay(_ id: String, _ amount: Int64) -> TxnKey {
            let key = TxnKey(rail: .upiSwitch, id: id)
            guard case .created(_, let effects) = world.create(NewTransaction(key: key, mode: .collect, amount: amount, payer: payer),
                                                               idempotency: .replayIfSame, now: 0) else {
                Issue.record("not created")
                return key
            }
            for case .timer(let event, _) in effects where event.action != .expire { _ = world.fire(event, now: 1_000) }
            return key
        }
        func code(_ key: TxnKey) -> ResponseCode? { world.transaction(key)?.responseCode }
        let overLimit = pay("a", 10_000_001)
        #expect(code(overLimit) == .perTransactionLimit)
        let first = pay("b", 6_000_000)
        #expect(code(first) == .success)
        let overDaily = pay("c", 4_000_001)
        #expect(code(overDaily) == .dailyLimit)
        let rest = pay("d", 4_000_000)
        #expect(code(rest) == .success)
        let refund = world.refund(RefundKey(rail: .upiSwitch, id: "r1"), of: TxnKey(rail: .upiSwitch, id: "b"), amount: 6_000_001)
        guard case .exceeds = refund else { Issue.record("expected exceeds, got \(refund)"); return }
        guard case .refunded = world.refund(RefundKey(rail: .upiSwitch, id: "r1"), of: TxnKey(rail: .upiSwitch, id: "b"), amount: 6_000_000)
        else { Issue.record("refund failed"); return }
        // A new day: the limit resets; the balance is ₹2,00,000 − ₹40,000 (the refund gave ₹60,000 back).
        let nextDay: Int64 = 86_400_000 * 2
        let key = TxnKey(rail: .upiSwitch, id: "e")
        guard case .created(_, let effects) = world.create(NewTransaction(key: key, mode: .collect, amount: 10_000_000, payer: payer),
                                                           idempotency: .replayIfSame, now: nextDay) else { Issue.record("not created"); return }
        for case .timer(let event, _) in effects where event.action != .expire { _ = world.fire(event, now: nextDay) }
        #expect(world.transaction(key)?.responseCode == .success)
    }
}
