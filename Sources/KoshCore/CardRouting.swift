/// Card routing (issue 13): which card connector — the acquirer Kosh speaks ISO 8583 to, or an
/// aggregator that takes cards — a card payment goes to, by the card's network and issuer,
/// each route's recent success rate and what it costs. Pure: the caller passes the statistics,
/// the connectors the breakers let through, and a random draw. The order is a `RoutePlan`'s:
/// a payment moves to the next route only when nothing can have reached the issuer (the
/// connector could not start the 3-D Secure authentication).

/// A card connector and what it takes and costs.
public struct CardRouteProfile: Sendable, Hashable {
    public let connector: String
    /// Networks it takes.
    public let networks: Set<CardNetwork>
    /// Amount band it takes (paise, inclusive).
    public let amountRange: ClosedRange<Int64>
    /// What it charges Kosh: basis points of the amount (per network where it differs) plus a fixed fee (paise).
    public let feeBasisPoints: Int64
    public let networkFeeBasisPoints: [CardNetwork: Int64]
    public let fixedFee: Int64

    public init(connector: String, networks: Set<CardNetwork>, amountRange: ClosedRange<Int64> = 100...AmountLimits.maximum,
                feeBasisPoints: Int64, networkFeeBasisPoints: [CardNetwork: Int64] = [:], fixedFee: Int64 = 0) {
        self.connector = connector
        self.networks = networks
        self.amountRange = amountRange
        self.feeBasisPoints = feeBasisPoints
        self.networkFeeBasisPoints = networkFeeBasisPoints
        self.fixedFee = fixedFee
    }

    /// Its fee on `amount` for a card of `network`, rounded half up (paise).
    public func cost(amount: Int64, network: CardNetwork) -> Int64 {
        (amount * (networkFeeBasisPoints[network] ?? feeBasisPoints) + 5_000) / 10_000 + fixedFee
    }
}

/// An operator's rule: cards that match go to `connector` first (`prefer`), or never (`avoid`).
/// Unset fields match any card. E.g. an issuer's own cards on the acquirer it banks with ("on
/// us": cheaper and approved more often), or a network an aggregator handles badly kept off it.
public struct CardRoutingRule: Sendable, Hashable, CustomStringConvertible {
    public enum Action: String, Sendable, Hashable {
        case prefer, avoid
    }

    public let network: CardNetwork?
    /// The BIN table's issuer code (`HDFC`, `ICIC`, `SBIN`, …).
    public let issuer: String?
    public let type: CardType?
    public let international: Bool?
    public let connector: String
    public let action: Action

    public init(network: CardNetwork? = nil, issuer: String? = nil, type: CardType? = nil, international: Bool? = nil, connector: String,
                action: Action) {
        self.network = network
        self.issuer = issuer
        self.type = type
        self.international = international
        self.connector = connector
        self.action = action
    }

    public func matches(_ card: CardRoutingRequest) -> Bool {
        (network == nil || network == card.network) && (issuer == nil || issuer == card.issuer) && (type == nil || type == card.type)
            && (international == nil || international == card.international)
    }

    public var description: String {
        var what: [String] = []
        if let network { what.append("network \(network.rawValue)") }
        if let issuer { what.append("issuer \(issuer)") }
        if let type { what.append("type \(type.rawValue)") }
        if let international { what.append(international ? "international" : "domestic") }
        return "\(action.rawValue) \(connector) for \(what.isEmpty ? "every card" : what.joined(separator: ", "))"
    }
}

/// What the router knows of one card payment.
public struct CardRoutingRequest: Sendable, Hashable {
    public var network: CardNetwork
    public var issuer: String?
    public var type: CardType
    public var international: Bool
    public var amount: Int64
    /// Connectors the merchant prefers, best first (`kosh merchant … --prefer`).
    public var preferred: [String]

    public init(network: CardNetwork, issuer: String?, type: CardType, international: Bool, amount: Int64, preferred: [String] = []) {
        self.network = network
        self.issuer = issuer
        self.type = type
        self.international = international
        self.amount = amount
        self.preferred = preferred
    }

    public init(card: Card, amount: Int64, preferred: [String] = []) {
        self.init(network: card.network, issuer: card.issuer, type: card.type, international: card.international, amount: amount,
                  preferred: preferred)
    }
}

public enum CardRoutePlanner {
    /// The order in which a card payment tries its connectors, each with why it is there:
    /// 1. only connectors that take the card's network and amount, that no `avoid` rule keeps
    ///    it from, and whose breaker lets calls through;
    /// 2. first the operator's `prefer` rules that match (in the order given), then the
    ///    merchant's preference;
    /// 3. then by score (`RoutePlanner.score`: the success rate times what is left after the
    ///    connector's fee), except that `explorationPercent` of the payments with neither a rule
    ///    nor a preference go first to another route, so every route's success rate stays known.
    public static func plan(_ request: CardRoutingRequest, routes: [CardRouteProfile], rules: [CardRoutingRule],
                            stats: [String: SuccessWindow], available: Set<String>, policy: RoutingPolicy = RoutingPolicy(),
                            draw: UInt64) -> [RouteChoice] {
        let matching = rules.filter { $0.matches(request) }
        let avoided = Set(matching.filter { $0.action == .avoid }.map(\.connector))
        let up = routes.filter {
            $0.networks.contains(request.network) && $0.amountRange.contains(request.amount) && !avoided.contains($0.connector)
                && available.contains($0.connector)
        }
        guard !up.isEmpty else { return [] }

        func rate(_ route: CardRouteProfile) -> Int64 { (stats[route.connector] ?? SuccessWindow()).rateBasisPoints }
        func cost(_ route: CardRouteProfile) -> Int64 { route.cost(amount: request.amount, network: request.network) }
        func score(_ route: CardRouteProfile) -> Int64 {
            let costBasisPoints = min(10_000, cost(route) * 10_000 / max(request.amount, 1))
            return rate(route) * (10_000 - costBasisPoints) / 10_000
        }
        let scored = up.map { ($0, score($0)) }.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0.connector < $1.0.connector }

        var plan: [RouteChoice] = []
        var used = Set<String>()
        for rule in matching where rule.action == .prefer && !used.contains(rule.connector) && up.contains(where: { $0.connector == rule.connector }) {
            plan.append(RouteChoice(connector: rule.connector, reason: "rule: \(rule)"))
            used.insert(rule.connector)
        }
        for name in request.preferred where !used.contains(name) && up.contains(where: { $0.connector == name }) {
            plan.append(RouteChoice(connector: name, reason: "merchant preference"))
            used.insert(name)
        }
        if plan.isEmpty && scored.count > 1 && Int(draw % 100) < policy.explorationPercent {
            let pick = scored[1 + Int((draw / 100) % UInt64(scored.count - 1))].0
            plan.append(RouteChoice(connector: pick.connector, reason: "exploring: success rate \(RoutePlanner.percent(rate(pick))) known from \(stats[pick.connector]?.attempts ?? 0) attempts"))
            used.insert(pick.connector)
        }
        for (index, (route, value)) in scored.enumerated() where !used.contains(route.connector) {
            let why = plan.isEmpty && index == 0 ? "best score" : "failover"
            plan.append(RouteChoice(connector: route.connector,
                                    reason: "\(why): success rate \(RoutePlanner.percent(rate(route))), fee \(cost(route)) paise, score \(value)"))
            used.insert(route.connector)
        }
        return plan
    }
}

/// Live mode's card routing, as the flows see it (KoshRails' `CardRouter`).
public protocol CardRouting: Sendable {
    /// The connectors a payment tries, in order; empty when none can take the card now.
    func plan(_ request: CardRoutingRequest) -> [RouteChoice]
    func connector(named name: String) -> (any CardConnector)?
    /// Whether some connector takes the card's network and amount at all (breakers and rules aside).
    func takes(_ request: CardRoutingRequest) -> Bool
    /// Every connector's name.
    var connectorNames: [String] { get }
}

/// A card connector the router would not call now (its breaker is open): nothing was sent.
public struct CardRouteUnavailable: Error, Sendable, Hashable, CustomStringConvertible {
    public let connector: String
    public let reason: String
    public init(connector: String, reason: String) {
        self.connector = connector
        self.reason = reason
    }
    public var description: String { "\(connector) not called: \(reason)" }
}

extension CardRoutingRule {
    /// Rules as an operator writes them (`KOSH_CARD_ROUTING_RULES`): `;`-separated, each
    /// `prefer|avoid CONNECTOR [network=N] [issuer=CODE] [type=T] [origin=domestic|international]`,
    /// e.g. `prefer acquirer issuer=HDFC; avoid alphapay_card origin=international`. At most 100.
    public static func parse(_ text: String, connectors: Set<String>) throws -> [CardRoutingRule] {
        let items = text.split(separator: ";").map { String($0.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()) }
            .filter { !$0.isEmpty }
        guard items.count <= 100 else { throw CardRoutingRuleError("at most 100 rules") }
        return try items.map { item in
            let words = item.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard words.count >= 2, let action = Action(rawValue: words[0]) else {
                throw CardRoutingRuleError("\"\(item)\": a rule is prefer|avoid CONNECTOR [field=value …]")
            }
            guard connectors.contains(words[1]) else {
                throw CardRoutingRuleError("\"\(item)\": unknown connector \(words[1]); known: \(connectors.sorted().joined(separator: ", "))")
            }
            var network: CardNetwork?, issuer: String?, type: CardType?, international: Bool?
            for pair in words.dropFirst(2) {
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[1].isEmpty else { throw CardRoutingRuleError("\"\(item)\": \(pair) is not field=value") }
                switch parts[0] {
                case "network":
                    guard let value = CardNetwork(rawValue: parts[1]), value != .unknown else {
                        throw CardRoutingRuleError("\"\(item)\": network is one of visa, mastercard, rupay, amex, diners, maestro, jcb")
                    }
                    network = value
                case "issuer":
                    guard parts[1].count <= 16, parts[1].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
                        throw CardRoutingRuleError("\"\(item)\": issuer is a bank code such as HDFC")
                    }
                    issuer = parts[1].uppercased()
                case "type":
                    guard let value = CardType(rawValue: parts[1]), value != .unknown else {
                        throw CardRoutingRuleError("\"\(item)\": type is credit, debit or prepaid")
                    }
                    type = value
                case "origin":
                    guard parts[1] == "domestic" || parts[1] == "international" else {
                        throw CardRoutingRuleError("\"\(item)\": origin is domestic or international")
                    }
                    international = parts[1] == "international"
                default:
                    throw CardRoutingRuleError("\"\(item)\": unknown field \(parts[0]) (network, issuer, type, origin)")
                }
            }
            return CardRoutingRule(network: network, issuer: issuer, type: type, international: international, connector: words[1], action: action)
        }
    }
}

public struct CardRoutingRuleError: Error, Sendable, Hashable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
