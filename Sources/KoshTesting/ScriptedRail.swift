import KoshCore
import Synchronization

/// A clock tests move by hand.
public final class ManualClock: KoshClock, Sendable {
    private let millis: Mutex<Int64>
    public init(millis: Int64 = 1_750_000_000_000) { self.millis = Mutex(millis) }
    public func nowMillis() -> Int64 { millis.withLock { $0 } }
    public func advance(byMillis delta: Int64) { millis.withLock { $0 += delta } }
    public func advance(bySeconds delta: Int64) { advance(byMillis: delta * 1000) }
}

/// The system clock, plus however far a test has stepped it forward: for a Kosh that talks to
/// something keeping real time (the sandbox over HTTP) while the test skips one of Kosh's own
/// waits (a breaker's open period) instead of sleeping through it.
public final class LeapClock: KoshClock, Sendable {
    private let leapt = Mutex<Int64>(0)
    public init() {}
    public func nowMillis() -> Int64 { SystemClock().nowMillis() + leapt.withLock { $0 } }
    public func advance(byMillis delta: Int64) {
        precondition(delta >= 0, "a clock never goes back")
        leapt.withLock { $0 += delta }
    }
}

/// A rail's answer in a script: the answer, or no answer at all (the call times out).
public enum Scripted<Answer: Sendable>: Sendable {
    case answer(Answer)
    case noAnswer
}

public struct ScriptedRailTimeout: Error, CustomStringConvertible {
    public let call: String
    public var description: String { "no answer to \(call) (scripted timeout)" }
}

/// A rail whose answers a test writes down beforehand: initiations and refunds are answered
/// from queues (then accepted / processed by default), status checks from the status set per
/// payment (pending by default). Every call is logged.
public final class ScriptedRail: PaymentRail, Sendable {
    public struct Script: Sendable {
        public var initiations: [Scripted<RailInitiation>] = []
        public var statuses: [ID<Payment>: Scripted<RailPaymentStatus>] = [:]
        public var refunds: [Scripted<RailRefundStatus>] = []
        /// Calls made, in order: "initiate pay_…", "status pay_…", "refund rfnd_…".
        public var calls: [String] = []
    }

    public let name: String
    public let answersInProcess: Bool
    let script = Mutex(Script())

    public init(name: String = "scripted", answersInProcess: Bool = false) {
        self.name = name
        self.answersInProcess = answersInProcess
    }

    /// Queues answers to the next initiations.
    public func onInitiate(_ answers: Scripted<RailInitiation>...) { script.withLock { $0.initiations += answers } }
    /// What status checks of this payment answer from now on.
    public func setStatus(_ paymentID: ID<Payment>, _ answer: Scripted<RailPaymentStatus>) { script.withLock { $0.statuses[paymentID] = answer } }
    /// Queues answers to the next refunds.
    public func onRefund(_ answers: Scripted<RailRefundStatus>...) { script.withLock { $0.refunds += answers } }
    public var calls: [String] { script.withLock { $0.calls } }

    public func validate(method: PaymentMethod, vpa: String?) -> KoshError? { nil }

    public func initiate(_ request: RailPaymentRequest) async throws -> RailInitiation {
        let answer: Scripted<RailInitiation> = script.withLock { script in
            script.calls.append("initiate \(request.paymentID)")
            return script.initiations.isEmpty ? .answer(.accepted(reference: "ref_\(request.paymentID)", link: nil))
                : script.initiations.removeFirst()
        }
        guard case .answer(let initiation) = answer else { throw ScriptedRailTimeout(call: "initiate \(request.paymentID)") }
        return initiation
    }

    public func status(_ request: RailPaymentRequest) async throws -> RailPaymentStatus {
        let answer: Scripted<RailPaymentStatus> = script.withLock { script in
            script.calls.append("status \(request.paymentID)")
            return script.statuses[request.paymentID] ?? .answer(.pending)
        }
        guard case .answer(let status) = answer else { throw ScriptedRailTimeout(call: "status \(request.paymentID)") }
        return status
    }

    public func refund(_ request: RailRefundRequest) async throws -> RailRefundStatus {
        let answer: Scripted<RailRefundStatus> = script.withLock { script in
            script.calls.append("refund \(request.refundID)")
            return script.refunds.isEmpty ? .answer(.processed(reference: "ref_\(request.refundID)")) : script.refunds.removeFirst()
        }
        guard case .answer(let status) = answer else { throw ScriptedRailTimeout(call: "refund \(request.refundID)") }
        return status
    }

    public func lookup(vpa: String) async throws -> VPALookup { VPALookup(vpa: vpa, valid: true, customerName: "Scripted Payer") }
}

/// Live mode's routing over scripted rails: routes in the given order, breakers a test opens
/// by hand, route outcomes logged.
public final class ScriptedRouting: LiveRouting, Sendable {
    public let rails: [ScriptedRail]
    let state = Mutex<(open: Set<String>, outcomes: [String])>(([], []))

    public init(_ rails: [ScriptedRail]) { self.rails = rails }

    /// Opens (or closes) a connector's breaker.
    public func setBreaker(_ connector: String, open: Bool) {
        state.withLock { if open { $0.open.insert(connector) } else { $0.open.remove(connector) } }
    }

    /// "connector:success" / "connector:failure", in order.
    public var outcomes: [String] { state.withLock { $0.outcomes } }

    public func plan(_ request: RoutingRequest) -> [RouteChoice] { rails.map { RouteChoice(connector: $0.name, reason: "scripted order") } }
    public func connector(named name: String) -> (any PaymentRail)? { rails.first(where: { $0.name == name }) }
    public var connectorNames: [String] { rails.map(\.name) }
    public func acquire(_ connector: String) -> Bool { state.withLock { !$0.open.contains(connector) } }
    public func recordOutcome(_ connector: String, success: Bool) {
        state.withLock { $0.outcomes.append("\(connector):\(success ? "success" : "failure")") }
    }
    public func downtimes() -> [Downtime] { [] }
    public func lookup(vpa: String) async throws -> VPALookup { VPALookup(vpa: vpa, valid: true, customerName: "Scripted Payer") }
}
