import KoshCore
import Testing

@Suite("Card routing: network and issuer rules, success rate, cost")
struct CardRoutingTests {
    static let routes = [
        CardRouteProfile(connector: "acquirer", networks: [.visa, .mastercard, .rupay, .amex, .diners], feeBasisPoints: 120,
                         networkFeeBasisPoints: [.rupay: 0, .amex: 250]),
        CardRouteProfile(connector: "alphapay_card", networks: [.visa, .mastercard, .amex], feeBasisPoints: 190,
                         networkFeeBasisPoints: [.amex: 290]),
    ]
    static let both: Set<String> = ["acquirer", "alphapay_card"]
    static let quiet = RoutingPolicy(explorationPercent: 0)

    static func card(_ network: CardNetwork, issuer: String? = "ICIC", type: CardType = .credit, international: Bool = false,
                     amount: Int64 = 100_000, preferred: [String] = []) -> CardRoutingRequest {
        CardRoutingRequest(network: network, issuer: issuer, type: type, international: international, amount: amount, preferred: preferred)
    }

    func window(_ successes: Int, of attempts: Int) -> SuccessWindow {
        var w = SuccessWindow(capacity: 100)
        for i in 0..<attempts { w.record(success: i < successes) }
        return w
    }

    @Test func theCheaperRouteWinsAtEqualRatesAndTheOtherIsTheFailover() {
        let plan = CardRoutePlanner.plan(Self.card(.visa), routes: Self.routes, rules: [], stats: [:], available: Self.both, policy: Self.quiet, draw: 0)
        #expect(plan.map(\.connector) == ["acquirer", "alphapay_card"])
        #expect(plan[0].reason.hasPrefix("best score") && plan[0].reason.contains("fee 1200 paise"))
        #expect(plan[1].reason.hasPrefix("failover") && plan[1].reason.contains("fee 1900 paise"))
    }

    @Test func aNetworkGoesOnlyWhereItIsTaken() {
        let rupay = CardRoutePlanner.plan(Self.card(.rupay, preferred: ["alphapay_card"]), routes: Self.routes, rules: [], stats: [:],
                                          available: Self.both, draw: 0)
        #expect(rupay.map(\.connector) == ["acquirer"], "alphapay takes no RuPay, whatever the merchant prefers")
        let jcb = CardRoutePlanner.plan(Self.card(.jcb), routes: Self.routes, rules: [], stats: [:], available: Self.both, draw: 0)
        #expect(jcb.isEmpty)
    }

    @Test func theFeeIsPerNetwork() {
        #expect(Self.routes[0].cost(amount: 100_000, network: .rupay) == 0)
        #expect(Self.routes[0].cost(amount: 100_000, network: .amex) == 2_500)
        #expect(Self.routes[1].cost(amount: 12_345, network: .visa) == 235, "1.90 % of ₹123.45 is 234.555 paise: half up")
    }

    @Test func successRateBeatsCost() {
        let stats = ["acquirer": window(70, of: 100), "alphapay_card": window(97, of: 100)]
        let plan = CardRoutePlanner.plan(Self.card(.mastercard), routes: Self.routes, rules: [], stats: stats, available: Self.both,
                                         policy: Self.quiet, draw: 0)
        #expect(plan.map(\.connector) == ["alphapay_card", "acquirer"])
    }

    @Test func anIssuerRuleComesFirstAndAnAvoidRuleRemovesARoute() {
        let onUs = CardRoutingRule(issuer: "HDFC", connector: "acquirer", action: .prefer)
        let stats = ["acquirer": window(50, of: 100), "alphapay_card": window(99, of: 100)]
        let hdfc = CardRoutePlanner.plan(Self.card(.visa, issuer: "HDFC"), routes: Self.routes, rules: [onUs], stats: stats,
                                         available: Self.both, policy: Self.quiet, draw: 0)
        #expect(hdfc.map(\.connector) == ["acquirer", "alphapay_card"])
        #expect(hdfc[0].reason == "rule: prefer acquirer for issuer HDFC")
        let icici = CardRoutePlanner.plan(Self.card(.visa, issuer: "ICIC"), routes: Self.routes, rules: [onUs], stats: stats,
                                          available: Self.both, policy: Self.quiet, draw: 0)
        #expect(icici.first?.connector == "alphapay_card", "the rule is the issuer's only")

        let noInternationalOnAggregator = CardRoutingRule(international: true, connector: "alphapay_card", action: .avoid)
        let abroad = CardRoutePlanner.plan(Self.card(.mastercard, issuer: "CHAS", international: true), routes: Self.routes,
                                           rules: [noInternationalOnAggregator], stats: stats, available: Self.both, draw: 0)
        #expect(abroad.map(\.connector) == ["acquirer"])
    }

    @Test func theMerchantsPreferenceComesAfterRulesAndBeforeScores() {
        let plan = CardRoutePlanner.plan(Self.card(.visa, preferred: ["alphapay_card", "nonexistent"]), routes: Self.routes, rules: [],
                                         stats: [:], available: Self.both, draw: 0)
        #expect(plan.map(\.connector) == ["alphapay_card", "acquirer"])
        #expect(plan[0].reason == "merchant preference")
        let ruled = CardRoutePlanner.plan(Self.card(.visa, issuer: "HDFC", preferred: ["alphapay_card"]), routes: Self.routes,
                                          rules: [CardRoutingRule(issuer: "HDFC", connector: "acquirer", action: .prefer)], stats: [:],
                                          available: Self.both, draw: 0)
        #expect(ruled.map(\.connector) == ["acquirer", "alphapay_card"])
    }

    @Test func aRouteWhoseBreakerIsOpenIsLeftOut() {
        let plan = CardRoutePlanner.plan(Self.card(.visa, issuer: "HDFC"), routes: Self.routes,
                                         rules: [CardRoutingRule(issuer: "HDFC", connector: "acquirer", action: .prefer)], stats: [:],
                                         available: ["alphapay_card"], draw: 0)
        #expect(plan.map(\.connector) == ["alphapay_card"])
        #expect(CardRoutePlanner.plan(Self.card(.rupay), routes: Self.routes, rules: [], stats: [:], available: ["alphapay_card"], draw: 0).isEmpty)
    }

    @Test func aShareOfPaymentsExploresTheOtherRoute() {
        let policy = RoutingPolicy(explorationPercent: 10)
        var explored = 0
        for draw in UInt64(0)..<1_000 {
            let plan = CardRoutePlanner.plan(Self.card(.visa), routes: Self.routes, rules: [], stats: [:], available: Self.both, policy: policy, draw: draw)
            if plan.first?.connector == "alphapay_card" {
                explored += 1
                #expect(plan[0].reason.hasPrefix("exploring"))
            }
            #expect(plan.count == 2)
        }
        #expect(explored == 100, "draw % 100 below 10: exactly a tenth of the draws")
        let ruled = CardRoutePlanner.plan(Self.card(.visa, issuer: "HDFC"), routes: Self.routes,
                                          rules: [CardRoutingRule(issuer: "HDFC", connector: "acquirer", action: .prefer)], stats: [:],
                                          available: Self.both, policy: policy, draw: 3)
        #expect(ruled.first?.connector == "acquirer", "a rule is never explored away")
    }

    @Test func aRuleMatchesOnEveryFieldItSets() {
        let rule = CardRoutingRule(network: .visa, issuer: "HDFC", type: .debit, international: false, connector: "acquirer", action: .prefer)
        #expect(rule.matches(Self.card(.visa, issuer: "HDFC", type: .debit)))
        #expect(!rule.matches(Self.card(.visa, issuer: "HDFC", type: .credit)))
        #expect(!rule.matches(Self.card(.mastercard, issuer: "HDFC", type: .debit)))
        #expect(!rule.matches(Self.card(.visa, issuer: "HDFC", type: .debit, international: true)))
        #expect(CardRoutingRule(connector: "x", action: .avoid).matches(Self.card(.jcb, issuer: nil)))
        #expect(rule.description == "prefer acquirer for network visa, issuer HDFC, type debit, domestic")
    }

    @Test func rulesAreReadAsAnOperatorWritesThem() throws {
        let rules = try CardRoutingRule.parse("prefer acquirer issuer=hdfc; avoid alphapay_card origin=international network=amex ;",
                                              connectors: Self.both)
        #expect(rules == [CardRoutingRule(issuer: "HDFC", connector: "acquirer", action: .prefer),
                          CardRoutingRule(network: .amex, international: true, connector: "alphapay_card", action: .avoid)])
        #expect(try CardRoutingRule.parse("  ", connectors: Self.both).isEmpty)
        for bad in ["prefer", "route acquirer", "prefer nowhere", "prefer acquirer colour=red", "prefer acquirer network=discover",
                    "avoid acquirer type=charge", "avoid acquirer origin=abroad", "prefer acquirer issuer=", "prefer acquirer issuer=HD FC"] {
            #expect(throws: CardRoutingRuleError.self, "\(bad)") { try CardRoutingRule.parse(bad, connectors: Self.both) }
        }
        #expect(throws: CardRoutingRuleError.self) {
            try CardRoutingRule.parse(Array(repeating: "prefer acquirer", count: 101).joined(separator: ";"), connectors: Self.both)
        }
    }
}
