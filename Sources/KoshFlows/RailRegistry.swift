import KoshCore

/// The rails payments can take: the in-process test rail for test-mode merchants, and the
/// routed connectors of live mode.
public struct RailRegistry: Sendable {
    public var test: any PaymentRail
    public var live: (any LiveRouting)?
    public init(test: any PaymentRail, live: (any LiveRouting)? = nil) {
        self.test = test
        self.live = live
    }

    /// The rail name of a live payment not yet routed.
    public static var unrouted: String { "unrouted" }

    public func requireLive() throws -> any LiveRouting {
        guard let live else {
            throw KoshError(.badRequest, "Live mode payments are not enabled on this server", source: "business",
                            step: "payment_initiation", reason: "live_mode_not_enabled")
        }
        return live
    }

    /// Checks the instrument before a payment is created.
    public func validate(mode: Mode, method: PaymentMethod, vpa: String?, flow: UPIFlow) throws {
        switch mode {
        case .test:
            guard flow == .collect else {
                throw KoshError.badRequest("Test mode supports the collect flow only; the intent flow needs live keys", field: "upi.flow")
            }
            if let problem = test.validate(method: method, vpa: vpa) { throw problem }
        case .live:
            _ = try requireLive()
            switch method {
            case .upi: if flow == .collect && vpa == nil { throw KoshError.badRequest("The vpa field is required.", field: "vpa") }
            case .netbanking, .wallet: break  // the bank or wallet was checked with the input
            default: throw KoshError.badRequest("The method \(method.rawValue) is not supported here", field: "method")
            }
        }
    }

    /// The routes to try, in order, with the router's reasons.
    public func plan(mode: Mode, _ request: RoutingRequest) throws -> [RouteChoice] {
        switch mode {
        case .test: [RouteChoice(connector: test.name, reason: "test mode")]
        case .live: try requireLive().plan(request)
        }
    }

    public func rail(named name: String) -> (any PaymentRail)? {
        if test.name == name { return test }
        return live?.connector(named: name)
    }

    public func acquire(_ connector: String) -> Bool {
        connector == test.name ? true : (live?.acquire(connector) ?? false)
    }

    public func recordOutcome(_ connector: String, success: Bool) {
        if connector != test.name { live?.recordOutcome(connector, success: success) }
    }

    public func lookup(mode: Mode, vpa: String) async throws -> VPALookup {
        switch mode {
        case .test: try await test.lookup(vpa: vpa)
        case .live: try await requireLive().lookup(vpa: vpa)
        }
    }

    public func downtimes() -> [Downtime] { live?.downtimes() ?? [] }
}

