import KoshCore
import KoshFlows
import KoshTesting
import Testing

@Suite("Flows: submit to a rail, failover, and the rail's answers")
struct RailFlowTests {
    static let failure = PaymentFailure(code: "BAD_REQUEST_ERROR", description: "Declined by the bank", source: "bank",
                                        step: "payment_authorization", reason: "payment_declined")

    @Test("failover: an unavailable route is left for the next; an open breaker is skipped; the route's failure is recorded")
    func failover() async throws {
        let rig = Rig(mode: .live, routes: ["alpha", "beta", "gamma"])
        rig.liveRails[0].onInitiate(.answer(.unavailable(reason: "HTTP 503")))
        rig.routing.setBreaker("beta", open: true)
        let payment = try await rig.pay(try await rig.order().id)
        #expect(payment.state == .pending)
        #expect(payment.rail == "gamma")
        #expect(rig.attempts(payment.id).map(\.status) == [.unavailable, .skipped, .accepted])
        #expect(rig.attempts(payment.id).map(\.connector) == ["alpha", "beta", "gamma"])
        #expect(rig.routing.outcomes == ["alpha:failure"])
        #expect(rig.liveRails[1].calls.isEmpty)
    }

    @Test("no route left: the payment fails with no route; a rejection fails it at once without failover")
    func noRouteAndRejection() async throws {
        let rig = Rig(mode: .live, routes: ["alpha", "beta"])
        rig.liveRails[0].onInitiate(.answer(.unavailable(reason: "down")))
        rig.liveRails[1].onInitiate(.answer(.unavailable(reason: "down")))
        let none = try await rig.pay(try await rig.order().id)
        #expect(none.state == .failed && none.machine.failure == .noRoute)
        #expect(rig.published() == [.paymentFailed])

        rig.liveRails[0].onInitiate(.answer(.rejected(Self.failure)))
        let rejected = try await rig.pay(try await rig.order().id)
        #expect(rejected.state == .failed && rejected.machine.failure == Self.failure)
        #expect(rig.attempts(rejected.id).map(\.status) == [.rejected])
        #expect(!rig.liveRails[1].calls.contains("initiate \(rejected.id)"))
    }

    @Test("no answer from a route: the payment waits there (the payer may be charged), never fails over")
    func noAnswerWaits() async throws {
        let rig = Rig(mode: .live, routes: ["alpha", "beta"])
        rig.liveRails[0].onInitiate(.noAnswer)
        let payment = try await rig.pay(try await rig.order().id)
        #expect(payment.state == .pending && payment.rail == "alpha")
        #expect(rig.attempts(payment.id).map(\.status) == [.unknown])
        #expect(rig.liveRails[1].calls.isEmpty)
    }

    @Test("a lost initiation (the server stopped mid-call) is sent again to the same route after the resend delay")
    func resendLostInitiation() async throws {
        let rig = Rig(mode: .live, routes: ["alpha"])
        let order = try await rig.order()
        // The first transaction of submit committed (attempt initiated), then the process died.
        let (payment, _) = try await rig.store.transaction { tx in
            try await rig.flows.createPayment(tx, merchant: rig.merchant, rig.newPayment(order.id), inline: false)
        }
        rig.liveRails[0].onInitiate(.noAnswer)
        _ = try await rig.flows.submit(paymentID: payment.id)
        // Mark the attempt initiated again, as a crash during the call leaves it.
        try await rig.store.transaction { tx in
            var attempt = try await tx.attempts(paymentID: payment.id)[0]
            attempt.status = .initiated
            try await tx.updateAttempt(attempt)
        }
        #expect(try await rig.flows.check(paymentID: payment.id).state == .pending)
        #expect(rig.liveRails[0].calls.filter { $0.hasPrefix("initiate") }.count == 1)  // too early to resend
        rig.clock.advance(byMillis: 10_000)
        _ = try await rig.flows.check(paymentID: payment.id)
        #expect(rig.liveRails[0].calls.filter { $0.hasPrefix("initiate") }.count == 2)
        #expect(rig.attempts(payment.id).map(\.status) == [.accepted])
    }

    @Test("status checks follow the schedule: fast polls in the window, then slow ones, then a timeout and the late watch")
    func pendingScheduleAndTimeout() async throws {
        let settings = GatewaySettings(firstCheckAfterMillis: 0, checkIntervalMillis: 2_000, submitGraceMillis: 5_000, pollWindowMillis: 30_000,
                                       slowCheckIntervalMillis: 60_000, pendingTimeoutMillis: 900_000, lateWatchMillis: 86_400_000,
                                       lateCheckIntervalMillis: 300_000)
        let rig = Rig(mode: .live, routes: ["alpha"], settings: settings)
        let submittedAt = rig.clock.now
        let payment = try await rig.pay(try await rig.order().id)
        #expect(payment.nextCheckAt == submittedAt + 2_000)
        rig.clock.advance(byMillis: 40_000)
        #expect(try await rig.flows.check(paymentID: payment.id).nextCheckAt == submittedAt + 40_000 + 60_000)
        // A callback saying "pending" changes nothing.
        let before = try await rig.flows.payment(id: payment.id)
        #expect(try await rig.flows.railAnswered(paymentID: payment.id, .pending, from: .callback, connector: "alpha") == before)
        rig.clock.advance(byMillis: 900_000)
        let timedOut = try await rig.flows.check(paymentID: payment.id)
        #expect(timedOut.state == .failed && timedOut.machine.failure == .timedOut)
        #expect(timedOut.nextCheckAt == rig.clock.now + 300_000)  // watched for a late authorisation
        #expect(rig.attempts(payment.id).map(\.status) == [.unknown])
        // A payer who never answered says nothing about the route.
        #expect(rig.routing.outcomes.isEmpty)
        rig.clock.advance(byMillis: 86_400_000)
        #expect(try await rig.flows.check(paymentID: payment.id).nextCheckAt == nil)  // stopped watching
    }

    @Test("a bank's decline counts against the route; a customer's does not")
    func failureSourcesAndRouteOutcomes() async throws {
        let rig = Rig(mode: .live, routes: ["alpha"])
        let a = try await rig.pay(try await rig.order().id)
        _ = try await rig.flows.railAnswered(paymentID: a.id, .failed(Self.failure), from: .callback, connector: "alpha")
        let b = try await rig.pay(try await rig.order().id)
        var customer = Self.failure
        customer.source = FailureSource.customer.rawValue
        _ = try await rig.flows.railAnswered(paymentID: b.id, .failed(customer), from: .callback, connector: "alpha")
        #expect(rig.routing.outcomes == ["alpha:failure"])
        #expect(rig.attempts(a.id).map(\.status) == [.failed])
    }

    @Test("a callback from a route the payment is not on is refused (409); an amount that differs is refused; a repeat changes nothing")
    func callbackChecks() async throws {
        let rig = Rig(mode: .live, routes: ["alpha", "beta"])
        let payment = try await rig.pay(try await rig.order().id)
        let authorized = RailPaymentStatus.authorized(reference: "utr1", payerVPA: "real@payer")
        #expect(await refusal { try await rig.flows.railAnswered(paymentID: payment.id, authorized, from: .callback, connector: "beta") }?
            .code == .conflict)
        #expect(await refusal { try await rig.flows.railAnswered(paymentID: payment.id, authorized, from: .callback, amount: 1, connector: "alpha") }?
            .field == "amount")
        let first = try await rig.flows.railAnswered(paymentID: payment.id, authorized, from: .callback, amount: 10_000, connector: "alpha")
        #expect(first.state == .authorized && first.railReference == "ref_\(payment.id)" && first.vpa == "payer@okbank")
        let again = try await rig.flows.railAnswered(paymentID: payment.id, authorized, from: .callback, connector: "alpha")
        #expect(again == first)
        #expect(rig.published() == [.paymentAuthorized])
        rig.expectLedgerConsistent()
    }

    @Test("a late authorisation is given back in full when the merchant's policy is refund; the ledger shows both legs")
    func lateAuthorizationGivenBack() async throws {
        let rig = Rig(mode: .live, routes: ["alpha"], settings: GatewaySettings(firstCheckAfterMillis: 0, pendingTimeoutMillis: 1_000))
        let payment = try await rig.pay(try await rig.order().id)
        rig.clock.advance(byMillis: 1_000)
        #expect(try await rig.flows.check(paymentID: payment.id).state == .failed)
        rig.liveRails[0].setStatus(payment.id, .answer(.authorized(reference: "late-utr")))
        rig.clock.advance(byMillis: 300_000)
        let late = try await rig.flows.check(paymentID: payment.id)
        #expect(late.state == .refunded && late.autoRefunded && late.railReference == "late-utr")
        let refund = try #require(rig.store.snapshot.refunds.values.first)
        #expect(refund.machine.state == .processed && refund.amount == 10_000)
        #expect(rig.liveRails[0].calls.last == "refund \(refund.id)")
        #expect(rig.merchantBalance() == 0)
        #expect(rig.published() == [.paymentFailed, .paymentAuthorized, .refundCreated, .refundProcessed])
        rig.expectLedgerConsistent()
    }

    @Test("a late authorisation is captured when the merchant wants that and the order is still unpaid")
    func lateAuthorizationCaptured() async throws {
        let rig = Rig(mode: .live, routes: ["alpha"], lateAuthorization: .capture,
                      settings: GatewaySettings(firstCheckAfterMillis: 0, pendingTimeoutMillis: 1_000))
        let payment = try await rig.pay(try await rig.order().id)
        rig.clock.advance(byMillis: 1_000)
        _ = try await rig.flows.check(paymentID: payment.id)
        let late = try await rig.flows.railAnswered(paymentID: payment.id, .authorized(reference: "late"), from: .callback, connector: "alpha")
        #expect(late.state == .captured && !late.autoRefunded)
        #expect(rig.store.snapshot.orders[late.orderID]?.machine.state == .paid)
        #expect(rig.merchantBalance() == 10_000 - 236)
        rig.expectLedgerConsistent()
    }

    @Test("the janitor postpones a payment whose rail this server does not have, and keeps going")
    func janitorPostpones() async throws {
        let rig = Rig(mode: .live, routes: ["alpha"])
        let payment = try await rig.pay(try await rig.order().id)
        // Move the payment to a rail the registry does not know.
        try await rig.store.transaction { tx in
            var stored = try #require(try await tx.payment(id: payment.id, merchantID: nil, forUpdate: true))
            stored.rail = "retired"
            stored.version += 1
            try await tx.updatePayment(stored)
        }
        rig.clock.advance(byMillis: 2_000)
        #expect(try await rig.flows.runDueChecks() == 1)
        #expect(try await rig.flows.payment(id: payment.id).nextCheckAt == rig.clock.now + GatewaySettings().slowCheckIntervalMillis)
    }
}
