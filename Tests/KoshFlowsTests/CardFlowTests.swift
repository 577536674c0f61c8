import KoshCore
import KoshFlows
import KoshJSON
import KoshTesting
import Synchronization
import Testing

/// A vault in memory for the flows: the number stays here; the tests check it never leaves.
final class FlowTestVault: CardVault {
    struct Entry { var card: VaultCard; var cvv: String?; var retention: CardRetention }
    let entries = Mutex<[String: Entry]>([:])
    let counter = Mutex(0)

    func tokenize(_ card: VaultCard, cvv: String?, retention: CardRetention) async throws -> TokenizedCard {
        let token = "vt_flow\(counter.withLock { $0 += 1; return $0 })"
        entries.withLock { $0[token] = Entry(card: card, cvv: cvv, retention: retention) }
        return TokenizedCard(token: token, fingerprint: "fp_" + card.number.suffix(4), iin: String(card.number.prefix(6)), last4: String(card.number.suffix(4)))
    }
    func attachCVV(token: String, cvv: String) async throws { entries.withLock { $0[token]?.cvv = cvv } }
    func detokenize(token: String, takeCVV: Bool) async throws -> (card: VaultCard, cvv: String?) {
        try entries.withLock { all in
            guard let entry = all[token] else { throw CardVaultError.notFound }
            if takeCVV { all[token]?.cvv = nil }
            return (entry.card, takeCVV ? entry.cvv : nil)
        }
    }
    func setRetention(token: String, _ retention: CardRetention) async throws { entries.withLock { $0[token]?.retention = retention } }
    func purge(token: String) async throws { _ = entries.withLock { $0.removeValue(forKey: token) } }
}

/// A card connector whose answers the test scripts; it records what it was asked.
final class ScriptedCardConnector: CardConnector {
    let name = "scripted_card"
    struct State {
        var calls: [String] = []
        var begin: CardAuthenticationState = .challengeRequired(attemptsLeft: 3, resendsLeft: 3)
        var correctOTP = "123456"
        var attemptsLeft = 3
        var authorize: CardNetworkAnswer = .approved(authCode: "A1B2C3", rrn: "000000123456")
        var resolve: CardNetworkAnswer = .reversedAfterTimeout
        var task: CardNetworkAnswer = .approved(authCode: nil, rrn: "000000123456")
        var refund: CardNetworkAnswer = .approved(authCode: nil, rrn: "000000654321")
        var authenticated = false
        var cvvSeen: String?
    }
    let state = Mutex(State())
    let vault: any CardVault
    init(vault: any CardVault) { self.vault = vault }

    var calls: [String] { state.withLock { $0.calls } }
    func script(_ body: (inout State) -> Void) { state.withLock { body(&$0) } }

    func beginAuthentication(_ payment: CardPaymentContext, returnURL: String) async throws -> CardAuthentication {
        let begin = state.withLock { $0.calls.append("begin"); return $0.begin }
        return CardAuthentication(id: "acs_\(payment.paymentID.rawValue)", challengeURL: "http://acs.test/challenge", state: begin)
    }
    func sendOTP(authenticationID: String) async throws -> CardAuthentication {
        state.withLock { $0.calls.append("otp") }
        return CardAuthentication(id: authenticationID, challengeURL: nil, state: .challengeRequired(attemptsLeft: 3, resendsLeft: 2))
    }
    func verifyOTP(authenticationID: String, otp: String) async throws -> CardAuthentication {
        let result: CardAuthenticationState = state.withLock { s in
            s.calls.append("verify")
            if otp == s.correctOTP { s.authenticated = true; return .authenticated(eci: "05", cavv: "cavv") }
            s.attemptsLeft -= 1
            return s.attemptsLeft > 0 ? .challengeRequired(attemptsLeft: s.attemptsLeft, resendsLeft: 3) : .failed(reason: "too_many_attempts")
        }
        return CardAuthentication(id: authenticationID, challengeURL: nil, state: result)
    }
    func authentication(id: String) async throws -> CardAuthentication {
        let done = state.withLock { $0.calls.append("status"); return $0.authenticated }
        return CardAuthentication(id: id, challengeURL: nil, state: done ? .authenticated(eci: "05", cavv: "cavv") : .challengeRequired(attemptsLeft: 3, resendsLeft: 3))
    }
    func authorize(_ payment: CardPaymentContext, authentication: CardAuthentication) async throws -> (answer: CardNetworkAnswer, reference: CardAuthorizationReference?) {
        let (_, cvv) = try await vault.detokenize(token: payment.vaultToken, takeCVV: true)
        let answer = state.withLock { $0.calls.append("0100"); $0.cvvSeen = cvv; return $0.authorize }
        if case .approved(let code, let rrn) = answer { return (answer, CardAuthorizationReference(stan: "000001", transmission: "1129101500", rrn: rrn, authCode: code)) }
        // Sent and not answered: the reference the janitor must hand back to resolveTimeout.
        if answer == .unknown { return (answer, CardAuthorizationReference(stan: "000007", transmission: "1129101500", rrn: "000000000007", authCode: nil)) }
        return (answer, nil)
    }
    func resolveTimeout(_ payment: CardPaymentContext, reference: CardAuthorizationReference?) async throws -> CardNetworkAnswer {
        state.withLock { $0.calls.append("resolve \(reference?.stan ?? "none")"); return $0.resolve }
    }
    func capture(_ payment: CardPaymentContext, amount: Int64, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer {
        state.withLock { $0.calls.append("0200 capture \(amount) \(reference.stan)"); return $0.task }
    }
    func reverse(_ payment: CardPaymentContext, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer {
        state.withLock { $0.calls.append("0400 \(reference.stan)"); return $0.task }
    }
    func refund(_ payment: CardPaymentContext, refundID: ID<Refund>, amount: Int64, reference: CardAuthorizationReference) async throws -> CardNetworkAnswer {
        state.withLock { $0.calls.append("0200 refund \(amount)"); return $0.refund }
    }
}

struct FlowTestSigner: PaymentSigner {
    func signature(merchantID: ID<Merchant>, orderID: ID<Order>, paymentID: ID<Payment>) async throws -> String { "sig(\(orderID.rawValue)|\(paymentID.rawValue))" }
}

/// The flows with cards: an in-memory store, the scripted connector as test mode's, a manual clock.
struct CardRig {
    let rig: Rig
    let vault = FlowTestVault()
    let connector: ScriptedCardConnector
    let flows: PaymentFlows<InMemoryStore>
    static let visa = "4100280000001007"

    init() {
        rig = Rig()
        connector = ScriptedCardConnector(vault: vault)
        let cards = CardRails(vault: vault, test: connector, live: nil, bins: .sandbox, signer: FlowTestSigner(), publicBaseURL: "http://kosh.test")
        flows = PaymentFlows(store: rig.store, rails: rig.flows.rails, clock: rig.clock, settings: rig.flows.settings,
                             renderer: rig.flows.renderer, idempotency: rig.store, cards: cards)
    }

    func create(number: String = visa, amount: Int64 = 50_000) async throws -> ID<Payment> {
        let order = try await rig.order(amount: amount)
        let card = CardDetails(number: try CardNumber(number), expiry: try CardExpiry(month: 12, year: 30), cvv: "123", name: "Gaurav Kumar")
        let payment = NewPayment(orderID: order.id, amount: amount, currency: .inr, method: .card, vpa: nil, email: "g@example.com",
                                 contact: "+919900000001", description: nil, notes: Notes())
        let reply = try body(try await flows.createCardPayment(merchant: rig.merchant, NewCardPayment(payment: payment, card: card, callbackURL: nil)))
        return ID(try #require(reply["razorpay_payment_id"]?.stringValue))
    }

    func authorized(amount: Int64 = 50_000) async throws -> Payment {
        let id = try await create(amount: amount)
        _ = try await flows.generateCardOTP(merchantID: rig.merchant.id, paymentID: id)
        let reply = try await flows.submitCardOTP(merchantID: rig.merchant.id, paymentID: id, otp: "123456")
        #expect(reply.status == 200)
        return try await flows.payment(id: id)
    }

    func cardPayment(_ id: ID<Payment>) -> CardPayment? { rig.store.snapshot.cardPayments[id] }
}

@Suite("Flows: card payments")
struct CardFlowTests {
    @Test("create/json answers the redirect and otp_generate actions; the payment is created with its card; no number or CVV in the store")
    func createAnswersNextActions() async throws {
        let rig = CardRig()
        let order = try await rig.rig.order(amount: 50_000)
        let card = CardDetails(number: try CardNumber(CardRig.visa), expiry: try CardExpiry(month: 12, year: 30), cvv: "987", name: "Gaurav Kumar")
        let payment = NewPayment(orderID: order.id, amount: 50_000, currency: .inr, method: .card, vpa: nil, email: "g@example.com",
                                 contact: "+919900000001", description: nil, notes: Notes())
        let reply = try body(try await rig.flows.createCardPayment(merchant: rig.rig.merchant, NewCardPayment(payment: payment, card: card, callbackURL: "https://shop.test/cb")))
        let id = try #require(reply["razorpay_payment_id"]?.stringValue)
        let next = try #require(reply["next"]?.arrayValue)
        #expect(next.map { $0["action"]?.stringValue } == ["redirect", "otp_generate"])
        #expect(next.first?["url"]?.stringValue == "http://kosh.test/v1/payments/\(id)/authenticate")
        let stored = try await rig.flows.payment(id: ID(id))
        #expect(stored.state == .created && stored.method == .card)
        #expect(stored.card?.last4 == "1007" && stored.card?.network == .visa && stored.card?.issuer == "HDFC" && stored.card?.type == .credit)
        #expect(rig.cardPayment(ID(id))?.stage == .authenticating)
        #expect(rig.cardPayment(ID(id))?.callbackURL == "https://shop.test/cb")
        let everything = String(describing: rig.rig.store.snapshot)
        #expect(!everything.contains(CardRig.visa))
        #expect(!everything.contains("987"))
    }

    @Test("an expired card is refused before the vault sees it, naming the field")
    func expiredCardRefused() async throws {
        let rig = CardRig()
        let order = try await rig.rig.order(amount: 50_000)
        let card = CardDetails(number: try CardNumber(CardRig.visa), expiry: try CardExpiry(month: 1, year: 20), cvv: "123", name: nil)
        let payment = NewPayment(orderID: order.id, amount: 50_000, currency: .inr, method: .card, vpa: nil, email: "g@example.com",
                                 contact: "+919900000001", description: nil, notes: Notes())
        let error = await refusal { try await rig.flows.createCardPayment(merchant: rig.rig.merchant, NewCardPayment(payment: payment, card: card, callbackURL: nil)) }
        #expect(error?.field == "card[expiry_year]" && error?.reason == "card_expired")
        #expect(rig.vault.entries.withLock { $0.isEmpty })
        #expect(rig.rig.store.snapshot.payments.isEmpty)
    }

    @Test("OTP wrong then right: 400 with the attempts left, then authorised with the signature, the CVV taken by the 0100, the ledger holding the authorisation")
    func otpWrongThenRight() async throws {
        let rig = CardRig()
        let id = try await rig.create()
        let generated = try await rig.flows.generateCardOTP(merchantID: rig.rig.merchant.id, paymentID: id)
        #expect(generated.status == 200)
        #expect(generated.body["next"]?.arrayValue?.map { $0["action"]?.stringValue } == ["otp_submit", "otp_resend"])
        #expect(generated.body["metadata"]?["last4"]?.stringValue == "1007")
        let wrong = try await rig.flows.submitCardOTP(merchantID: rig.rig.merchant.id, paymentID: id, otp: "000000")
        #expect(wrong.status == 400)
        #expect(wrong.body["error"]?["reason"]?.stringValue == "incorrect_otp")
        #expect(wrong.body["error"]?["metadata"]?["attempts_left"]?.intValue == 2)
        #expect(try await rig.flows.payment(id: id).state == .created)
        let right = try await rig.flows.submitCardOTP(merchantID: rig.rig.merchant.id, paymentID: id, otp: "123456")
        #expect(right.status == 200)
        let payment = try await rig.flows.payment(id: id)
        #expect(right.body["razorpay_signature"]?.stringValue == "sig(\(payment.orderID.rawValue)|\(id.rawValue))")
        #expect(payment.state == .authorized && payment.railReference == "000000123456" && payment.authCode == "A1B2C3")
        #expect(rig.connector.state.withLock { $0.cvvSeen } == "123")
        #expect(rig.vault.entries.withLock { $0.values.allSatisfy { $0.cvv == nil } })
        #expect(rig.connector.calls == ["begin", "otp", "verify", "verify", "0100"])
        #expect(rig.rig.published() == [.paymentAuthorized])
        // Submitting again answers the same signed result and sends nothing.
        let again = try await rig.flows.submitCardOTP(merchantID: rig.rig.merchant.id, paymentID: id, otp: "123456")
        #expect(again == right)
        #expect(rig.connector.calls.count == 5)
        rig.rig.expectLedgerConsistent()
    }

    @Test("wrong OTP until the ACS gives up: the payment fails with Razorpay's authentication error")
    func otpLocked() async throws {
        let rig = CardRig()
        let id = try await rig.create()
        _ = try await rig.flows.generateCardOTP(merchantID: rig.rig.merchant.id, paymentID: id)
        for _ in 0..<2 { #expect(try await rig.flows.submitCardOTP(merchantID: rig.rig.merchant.id, paymentID: id, otp: "111111").status == 400) }
        let last = try await rig.flows.submitCardOTP(merchantID: rig.rig.merchant.id, paymentID: id, otp: "111111")
        #expect(last.status == 400 && last.body["error"]?["reason"]?.stringValue == "authentication_failed")
        let payment = try await rig.flows.payment(id: id)
        #expect(payment.state == .failed && payment.machine.failure?.step == "payment_authentication")
        #expect(!rig.connector.calls.contains("0100"))
        #expect(rig.rig.published() == [.paymentFailed])
    }

    @Test("a decline (51) fails the payment with insufficient_funds and posts nothing")
    func declined() async throws {
        let rig = CardRig()
        rig.connector.script { $0.authorize = .declined(responseCode: "51", CardResponseCodes.failure(responseCode: "51")) }
        let id = try await rig.create()
        _ = try await rig.flows.generateCardOTP(merchantID: rig.rig.merchant.id, paymentID: id)
        let reply = try await rig.flows.submitCardOTP(merchantID: rig.rig.merchant.id, paymentID: id, otp: "123456")
        #expect(reply.status == 400 && reply.body["error"]?["reason"]?.stringValue == "insufficient_funds")
        #expect(try await rig.flows.payment(id: id).state == .failed)
        #expect(rig.rig.store.snapshot.entries.isEmpty)
    }

    @Test("an authorisation with no answer stays pending (unknown), never failed, until the reversal is acknowledged; then it fails and nothing was posted")
    func timeoutReversal() async throws {
        let rig = CardRig()
        rig.connector.script { $0.authorize = .unknown; $0.resolve = .unknown }
        let id = try await rig.create()
        _ = try await rig.flows.generateCardOTP(merchantID: rig.rig.merchant.id, paymentID: id)
        let reply = try await rig.flows.submitCardOTP(merchantID: rig.rig.merchant.id, paymentID: id, otp: "123456")
        #expect(reply.status == 200 && reply.body["next"]?.arrayValue?.first?["action"]?.stringValue == "poll")
        #expect(try await rig.flows.payment(id: id).state == .pending)
        #expect(rig.cardPayment(id)?.stage == .reversing)
        let settings = CardSettings()
        rig.rig.clock.advance(byMillis: settings.reversalCheckMillis)
        #expect(try await rig.flows.runDueChecks() == 1)
        #expect(try await rig.flows.payment(id: id).state == .pending)
        rig.connector.script { $0.resolve = .reversedAfterTimeout }
        rig.rig.clock.advance(byMillis: settings.reversalCheckMillis)
        #expect(try await rig.flows.runDueChecks() == 1)
        let payment = try await rig.flows.payment(id: id)
        #expect(payment.state == .failed && payment.machine.failure?.reason == "payment_timed_out" && payment.nextCheckAt == nil)
        #expect(rig.connector.calls.filter { $0.hasPrefix("resolve") } == ["resolve 000007", "resolve 000007"], "with the kept reference")
        #expect(rig.rig.store.snapshot.entries.isEmpty)
    }

    @Test("a 3-D Secure never finished fails when its window passes; one the ACS says was finished goes on to authorise")
    func abandonedAuthentication() async throws {
        let rig = CardRig()
        let abandoned = try await rig.create()
        _ = try await rig.flows.generateCardOTP(merchantID: rig.rig.merchant.id, paymentID: abandoned)
        rig.rig.clock.advance(byMillis: CardSettings().authenticationWindowMillis)
        #expect(try await rig.flows.runDueChecks() == 1)
        let failed = try await rig.flows.payment(id: abandoned)
        #expect(failed.state == .failed && failed.machine.failure?.reason == "payment_timed_out")

        let finished = try await rig.create()
        _ = try await rig.flows.generateCardOTP(merchantID: rig.rig.merchant.id, paymentID: finished)
        rig.connector.script { $0.authenticated = true }
        let result = try await rig.flows.cardAuthenticationReturned(paymentID: finished)
        #expect(result.succeeded && result.fields["razorpay_payment_id"] == finished.rawValue)
        #expect(try await rig.flows.payment(id: finished).state == .authorized)
    }

    @Test("capture sends 0200 after commit; a capture the network does not acknowledge is sent again by the janitor")
    func captureTask() async throws {
        let rig = CardRig()
        let payment = try await rig.authorized()
        rig.connector.script { $0.task = .unknown }
        _ = try await rig.flows.capture(merchant: rig.rig.merchant, paymentID: payment.id, amount: payment.amount, currency: .inr)
        #expect(try await rig.flows.payment(id: payment.id).state == .captured)
        #expect(rig.cardPayment(payment.id)?.task == .capture)
        #expect(rig.cardPayment(payment.id)?.taskAttempts == 1)
        rig.connector.script { $0.task = .approved(authCode: nil, rrn: "000000123456") }
        #expect(try await rig.flows.sendDueCardTasks() == 0)  // not due yet
        rig.rig.clock.advance(byMillis: 2_000)
        #expect(try await rig.flows.sendDueCardTasks() == 1)
        #expect(rig.cardPayment(payment.id)?.task == nil)
        #expect(rig.connector.calls.filter { $0.hasPrefix("0200 capture") } == ["0200 capture 50000 000001", "0200 capture 50000 000001"])
        rig.rig.expectLedgerConsistent()
    }

    @Test("void reverses the authorisation over the network (0400); a refund goes as 0200 refund and settles")
    func voidAndRefund() async throws {
        let rig = CardRig()
        let voided = try await rig.authorized()
        _ = try await rig.flows.void(merchant: rig.rig.merchant, paymentID: voided.id)
        #expect(try await rig.flows.payment(id: voided.id).state == .voided)
        #expect(rig.connector.calls.contains("0400 000001"))
        #expect(rig.cardPayment(voided.id)?.task == nil)

        let captured = try await rig.authorized(amount: 30_000)
        _ = try await rig.flows.capture(merchant: rig.rig.merchant, paymentID: captured.id, amount: 30_000, currency: .inr)
        let refundBody = try body(try await rig.flows.refund(merchant: rig.rig.merchant, paymentID: captured.id,
                                                             NewRefund(amount: 10_000, speed: .normal, receipt: nil, notes: Notes())))
        #expect(refundBody["status"]?.stringValue == "processed")
        #expect(rig.connector.calls.contains("0200 refund 10000"))
        rig.rig.expectLedgerConsistent()
    }
}

extension JSON {
    var arrayValue: [JSON]? { if case .array(let a) = self { a } else { nil } }
}

@Suite("Flows: customers and saved cards")
struct CustomerFlowTests {
    @Test("fail_existing refuses a second customer with the same email and contact; without it the first is answered")
    func uniqueCustomers() async throws {
        let rig = CardRig()
        let input = NewCustomer(name: "Gaurav Kumar", email: "g@example.com", contact: "+919900000001", gstin: nil, notes: Notes(), failExisting: true)
        let first = try await rig.flows.createCustomer(merchant: rig.rig.merchant, input)
        let error = await refusal { try await rig.flows.createCustomer(merchant: rig.rig.merchant, input) }
        #expect(error?.reason == "customer_already_exists")
        var lenient = input
        lenient.failExisting = false
        #expect(try await rig.flows.createCustomer(merchant: rig.rig.merchant, lenient).id == first.id)
        let edited = try await rig.flows.editCustomer(id: first.id, merchantID: rig.rig.merchant.id, name: "G. Kumar", email: nil, contact: nil,
                                                      gstin: nil, notes: nil)
        #expect(edited.name == "G. Kumar" && edited.email == "g@example.com")
    }

    @Test("save: 1 keeps the card on file once authorised and makes a token; paying with the token takes a new CVV into the vault and needs 3-D Secure; deleting it ends the card-on-file")
    func saveAndPayAgain() async throws {
        let rig = CardRig()
        let customer = try await rig.flows.createCustomer(merchant: rig.rig.merchant, NewCustomer(
            name: "Gaurav Kumar", email: "g@example.com", contact: "+919900000001", gstin: nil, notes: Notes(), failExisting: true))
        let order = try await rig.rig.order(amount: 50_000)
        let card = CardDetails(number: try CardNumber(CardRig.visa), expiry: try CardExpiry(month: 12, year: 30), cvv: "123", name: "Gaurav Kumar")
        let payment = NewPayment(orderID: order.id, amount: 50_000, currency: .inr, method: .card, vpa: nil, email: "g@example.com",
                                 contact: "+919900000001", description: nil, notes: Notes())
        let reply = try body(try await rig.flows.createCardPayment(merchant: rig.rig.merchant,
                                                                   NewCardPayment(payment: payment, card: card, callbackURL: nil, saveFor: customer.id)))
        let id: ID<Payment> = ID(try #require(reply["razorpay_payment_id"]?.stringValue))
        #expect(try await rig.flows.tokens(customerID: customer.id, merchantID: rig.rig.merchant.id).isEmpty)
        _ = try await rig.flows.generateCardOTP(merchantID: rig.rig.merchant.id, paymentID: id)
        _ = try await rig.flows.submitCardOTP(merchantID: rig.rig.merchant.id, paymentID: id, otp: "123456")
        let tokens = try await rig.flows.tokens(customerID: customer.id, merchantID: rig.rig.merchant.id)
        #expect(tokens.count == 1 && tokens.first?.card.last4 == "1007")
        let token = try #require(tokens.first)
        #expect(rig.vault.entries.withLock { $0[token.card.vaultToken]?.retention } == .cardOnFile)

        let second = try await rig.rig.order(amount: 20_000)
        let again = try body(try await rig.flows.createTokenPayment(merchant: rig.rig.merchant, NewTokenPayment(
            payment: NewPayment(orderID: second.id, amount: 20_000, currency: .inr, method: .card, vpa: nil, email: "g@example.com",
                                contact: "+919900000001", description: nil, notes: Notes()),
            customerID: customer.id, tokenID: token.id, cvv: "456", callbackURL: nil)))
        let againID: ID<Payment> = ID(try #require(again["razorpay_payment_id"]?.stringValue))
        #expect(rig.vault.entries.withLock { $0[token.card.vaultToken]?.cvv } == "456")
        _ = try await rig.flows.generateCardOTP(merchantID: rig.rig.merchant.id, paymentID: againID)
        let done = try await rig.flows.submitCardOTP(merchantID: rig.rig.merchant.id, paymentID: againID, otp: "123456")
        #expect(done.status == 200)
        let paid = try await rig.flows.payment(id: againID)
        #expect(paid.state == .authorized && paid.card?.id == token.card.id)
        #expect(rig.connector.state.withLock { $0.cvvSeen } == "456")

        try await rig.flows.deleteToken(id: token.id, customerID: customer.id, merchantID: rig.rig.merchant.id)
        #expect(try await rig.flows.tokens(customerID: customer.id, merchantID: rig.rig.merchant.id).isEmpty)
        if case .until = rig.vault.entries.withLock({ $0[token.card.vaultToken]?.retention }) {} else { Issue.record("retention not restored") }
        let third = try await rig.rig.order(amount: 20_000)
        let refused = await refusal { try await rig.flows.createTokenPayment(merchant: rig.rig.merchant, NewTokenPayment(
            payment: NewPayment(orderID: third.id, amount: 20_000, currency: .inr, method: .card, vpa: nil, email: "g@example.com",
                                contact: "+919900000001", description: nil, notes: Notes()),
            customerID: customer.id, tokenID: token.id, cvv: nil, callbackURL: nil)) }
        #expect(refused?.reason == "token_not_found")
        rig.rig.expectLedgerConsistent()
    }
}
