/// A route a payment can take: one connector and what it accepts and costs.
public struct RouteProfile: Sendable, Hashable {
    public let connector: String
    /// Payment methods it carries.
    public let methods: Set<PaymentMethod>
    /// UPI flows it supports.
    public let flows: Set<UPIFlow>
    /// Amount band it takes (paise, inclusive).
    public let amountRange: ClosedRange<Int64>
    /// What the upstream charges Kosh: basis points of the amount plus a fixed fee (paise).
    public let feeBasisPoints: Int64
    public let fixedFee: Int64

    public init(connector: String, methods: Set<PaymentMethod>, flows: Set<UPIFlow>, amountRange: ClosedRange<Int64>,
                feeBasisPoints: Int64, fixedFee: Int64) {
        self.connector = connector
        self.methods = methods
        self.flows = flows
        self.amountRange = amountRange
        self.feeBasisPoints = feeBasisPoints
        self.fixedFee = fixedFee
    }

    /// The upstream's fee on `amount`, rounded half up (paise).
    public func cost(amount: Int64) -> Int64 {
        (amount * feeBasisPoints + 5_000) / 10_000 + fixedFee
    }
}

/// Recent outcomes of one connector: the last `capacity` attempts as a ring.
public struct SuccessWindow: Sendable, Hashable {
    public let capacity: Int
    private var outcomes: [Bool] = []
    private var next = 0
    public private(set) var successes = 0

    public init(capacity: Int = 200) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    public var attempts: Int { outcomes.count }

    public mutating func record(success: Bool) {
        if outcomes.count < capacity {
            outcomes.append(success)
        } else {
            if outcomes[next] { successes -= 1 }
            outcomes[next] = success
            next = (next + 1) % capacity
        }
        if success { successes += 1 }
    }

    /// Success rate in basis points with a Laplace prior (one success, one failure), so an
    /// untried connector starts at 50 % and is neither shunned nor favoured.
    public var rateBasisPoints: Int64 { Int64(successes + 1) * 10_000 / Int64(attempts + 2) }
}

public struct RoutingRequest: Sendable, Hashable {
    public var method: PaymentMethod
    public var flow: UPIFlow
    public var amount: Int64
    /// Connectors the merchant prefers, best first (merchant rule).
    public var preferred: [String]

    public init(method: PaymentMethod, flow: UPIFlow, amount: Int64, preferred: [String] = []) {
        self.method = method
        self.flow = flow
        self.amount = amount
        self.preferred = preferred
    }
}

public struct RouteChoice: Sendable, Hashable {
    public let connector: String
    /// Why the router put it here, recorded on the payment attempt.
    public let reason: String

    public init(connector: String, reason: String) {
        self.connector = connector
        self.reason = reason
    }
}

public struct RoutingPolicy: Sendable, Hashable {
    /// Share of payments (percent) sent first to a route other than the best, so the
    /// success rate of every route stays known.
    public var explorationPercent: Int

    public init(explorationPercent: Int = 10) {
        precondition((0...100).contains(explorationPercent))
        self.explorationPercent = explorationPercent
    }
}

/// Chooses the order in which a payment tries its routes. Pure: the caller passes the
/// statistics, which connectors the breakers let through, and a random draw.
public enum RoutePlanner {
    /// Expected value of sending the payment to `route`, in basis points of the amount:
    /// the chance it succeeds times what is left after the upstream's fee.
    public static func score(_ route: RouteProfile, amount: Int64, successRateBasisPoints: Int64) -> Int64 {
        let costBasisPoints = min(10_000, route.cost(amount: amount) * 10_000 / max(amount, 1))
        return successRateBasisPoints * (10_000 - costBasisPoints) / 10_000
    }

    public static func plan(_ request: RoutingRequest, routes: [RouteProfile], stats: [String: SuccessWindow],
                            available: Set<String>, policy: RoutingPolicy = RoutingPolicy(), draw: UInt64) -> [RouteChoice] {
        let eligible = routes.filter {
            $0.methods.contains(request.method) && $0.flows.contains(request.flow) && $0.amountRange.contains(request.amount)
        }
        let up = eligible.filter { available.contains($0.connector) }
        guard !up.isEmpty else { return [] }

        func rate(_ route: RouteProfile) -> Int64 { (stats[route.connector] ?? SuccessWindow()).rateBasisPoints }
        let scored = up.map { ($0, score($0, amount: request.amount, successRateBasisPoints: rate($0))) }
            .sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0.connector < $1.0.connector }

        var plan: [RouteChoice] = []
        var used = Set<String>()
        for name in request.preferred {
            guard up.contains(where: { $0.connector == name }), !used.contains(name) else { continue }
            plan.append(RouteChoice(connector: name, reason: "merchant preference"))
            used.insert(name)
        }
        if plan.isEmpty && scored.count > 1 && Int(draw % 100) < policy.explorationPercent {
            let pick = scored[1 + Int((draw / 100) % UInt64(scored.count - 1))].0
            plan.append(RouteChoice(connector: pick.connector, reason: "exploring: success rate \(percent(rate(pick))) known from \(stats[pick.connector]?.attempts ?? 0) attempts"))
            used.insert(pick.connector)
        }
        for (index, (route, value)) in scored.enumerated() where !used.contains(route.connector) {
            let why = plan.isEmpty && index == 0 ? "best score" : "failover"
            plan.append(RouteChoice(connector: route.connector,
                                    reason: "\(why): success rate \(percent(rate(route))), fee \(route.cost(amount: request.amount)) paise, score \(value)"))
            used.insert(route.connector)
        }
        return plan
    }

    static func percent(_ basisPoints: Int64) -> String {
        "\(basisPoints / 100).\(String(repeating: "0", count: basisPoints % 100 < 10 ? 1 : 0))\(basisPoints % 100)%"
    }
}
