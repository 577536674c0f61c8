import KoshJSON
/// The upstreams the sandbox plays: three UPI rails, the card acquirer (ISO 8583 over TCP),
/// the 3-D Secure ACS, and the redirect methods' banks and wallet providers (Redirect/).
enum Rail: String, CaseIterable, Sendable, Hashable {
    case upiSwitch = "upi_switch"
    case alphapay
    case betapay
    case acquirer
    case acs
    case netbanking
    case wallets
}

/// The rails the sandbox plays, as `kosh sandbox fault --help` lists them (from `Rail`, so a
/// new rail is listed without touching the command).
public enum SandboxRails {
    public static var names: [String] { Rail.allCases.map(\.rawValue) }

    public static var described: String {
        Rail.allCases.map { rail in
            switch rail {
            case .upiSwitch: "upi_switch (UPI: collect, intent, payer-initiated QR)"
            case .alphapay: "alphapay (UPI and card aggregator)"
            case .betapay: "betapay (UPI aggregator)"
            case .acquirer: "acquirer (cards, ISO 8583)"
            case .acs: "acs (3-D Secure)"
            case .netbanking: "netbanking (18 banks)"
            case .wallets: "wallets (7 providers)"
            }
        }.joined(separator: ", ")
    }
}

/// A rail's fault injection settings (`PUT /sandbox/v1/faults/{rail}`).
struct FaultConfig: Sendable, Equatable {
    struct Window: Sendable, Equatable, Decodable {
        var from: Int64
        var until: Int64
        func contains(_ now: Int64) -> Bool { from <= now && now < until }
    }

    var latencyMinMs: Int64 = 0
    var latencyMaxMs: Int64 = 0
    var errorRate: Double = 0
    var timeoutRate: Double = 0
    var hangMs: Int64 = 30_000
    var down = false
    var downtime: Window?
    var declineRate: Double = 0
    var dropCallbackRate: Double = 0
    var duplicateCallbackRate: Double = 0
    var callbackDelayMs: Int64 = 0
    /// The acquirer only: share of messages processed whose answer is never sent.
    var dropResponseRate: Double = 0

    static let maximumLatencyMs: Int64 = 60_000
    static let maximumHangMs: Int64 = 600_000
    static let maximumCallbackDelayMs: Int64 = 600_000

    var json: JSON {
        .object([
            ("latency_ms", .object([("min", .int(latencyMinMs)), ("max", .int(latencyMaxMs))])),
            ("error_rate", .double(errorRate)),
            ("timeout_rate", .double(timeoutRate)),
            ("hang_ms", .int(hangMs)),
            ("down", .bool(down)),
            ("downtime", downtime.map { .object([("from", .int($0.from)), ("until", .int($0.until))]) } ?? .null),
            ("decline_rate", .double(declineRate)),
            ("drop_callback_rate", .double(dropCallbackRate)),
            ("duplicate_callback_rate", .double(duplicateCallbackRate)),
            ("callback_delay_ms", .int(callbackDelayMs)),
            ("drop_response_rate", .double(dropResponseRate)),
        ])
    }

    /// Applies the fields present in `patch`, or explains why the result would be invalid
    /// (and changes nothing).
    func applying(_ patch: FaultPatch) throws(MalformedRequest) -> FaultConfig {
        var next = self
        if let latency = patch.latency {
            next.latencyMinMs = latency.min
            next.latencyMaxMs = latency.max
        }
        if let v = patch.errorRate { next.errorRate = v }
        if let v = patch.timeoutRate { next.timeoutRate = v }
        if let v = patch.hangMs { next.hangMs = v }
        if let v = patch.down { next.down = v }
        if let v = patch.downtime { next.downtime = v }
        if let v = patch.declineRate { next.declineRate = v }
        if let v = patch.dropCallbackRate { next.dropCallbackRate = v }
        if let v = patch.duplicateCallbackRate { next.duplicateCallbackRate = v }
        if let v = patch.callbackDelayMs { next.callbackDelayMs = v }
        if let v = patch.dropResponseRate { next.dropResponseRate = v }
        try next.validate()
        return next
    }

    func validate() throws(MalformedRequest) {
        let rates = [("error_rate", errorRate), ("timeout_rate", timeoutRate), ("decline_rate", declineRate),
                     ("drop_callback_rate", dropCallbackRate), ("duplicate_callback_rate", duplicateCallbackRate),
                     ("drop_response_rate", dropResponseRate)]
        for (name, rate) in rates where !(rate >= 0 && rate <= 1) {
            throw MalformedRequest(message: "\(name) must be between 0 and 1")
        }
        guard latencyMinMs >= 0, latencyMinMs <= latencyMaxMs, latencyMaxMs <= Self.maximumLatencyMs else {
            throw MalformedRequest(message: "latency_ms needs 0 <= min <= max <= \(Self.maximumLatencyMs)")
        }
        guard (0...Self.maximumHangMs).contains(hangMs) else {
            throw MalformedRequest(message: "hang_ms must be between 0 and \(Self.maximumHangMs)")
        }
        guard (0...Self.maximumCallbackDelayMs).contains(callbackDelayMs) else {
            throw MalformedRequest(message: "callback_delay_ms must be between 0 and \(Self.maximumCallbackDelayMs)")
        }
        if let downtime, downtime.from > downtime.until {
            throw MalformedRequest(message: "downtime.from must not be after downtime.until")
        }
    }
}

/// The body of `PUT /sandbox/v1/faults/{rail}`: every field optional; `"downtime": null` clears the window.
struct FaultPatch: Decodable, Sendable {
    struct Latency: Decodable, Sendable {
        var min: Int64
        var max: Int64
    }

    var latency: Latency?
    var errorRate: Double?
    var timeoutRate: Double?
    var hangMs: Int64?
    var down: Bool?
    /// `.some(nil)` clears the window.
    var downtime: FaultConfig.Window??
    var declineRate: Double?
    var dropCallbackRate: Double?
    var duplicateCallbackRate: Double?
    var callbackDelayMs: Int64?
    var dropResponseRate: Double?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case latency = "latency_ms", errorRate = "error_rate", timeoutRate = "timeout_rate", hangMs = "hang_ms", down,
             downtime, declineRate = "decline_rate", dropCallbackRate = "drop_callback_rate",
             duplicateCallbackRate = "duplicate_callback_rate", callbackDelayMs = "callback_delay_ms",
             dropResponseRate = "drop_response_rate"
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: Set(CodingKeys.allCases.map(\.rawValue)))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        latency = try c.decodeIfPresent(Latency.self, forKey: .latency)
        errorRate = try c.decodeIfPresent(Double.self, forKey: .errorRate)
        timeoutRate = try c.decodeIfPresent(Double.self, forKey: .timeoutRate)
        hangMs = try c.decodeIfPresent(Int64.self, forKey: .hangMs)
        down = try c.decodeIfPresent(Bool.self, forKey: .down)
        if c.contains(.downtime) {
            downtime = .some(try c.decodeNil(forKey: .downtime) ? nil : try c.decode(FaultConfig.Window.self, forKey: .downtime))
        }
        declineRate = try c.decodeIfPresent(Double.self, forKey: .declineRate)
        dropCallbackRate = try c.decodeIfPresent(Double.self, forKey: .dropCallbackRate)
        duplicateCallbackRate = try c.decodeIfPresent(Double.self, forKey: .duplicateCallbackRate)
        callbackDelayMs = try c.decodeIfPresent(Int64.self, forKey: .callbackDelayMs)
        dropResponseRate = try c.decodeIfPresent(Double.self, forKey: .dropResponseRate)
    }
}

/// How long payers take and when collect requests expire (`PUT /sandbox/v1/config`).
struct PayerTiming: Sendable, Equatable {
    var payerDelayMs: Int64 = 300
    var lateDelayMs: Int64 = 45_000
    var collectExpiryMs: Int64 = 300_000

    static let maximumMs: Int64 = 86_400_000

    var json: JSON {
        .object([("payer_delay_ms", .int(payerDelayMs)), ("late_delay_ms", .int(lateDelayMs)),
                 ("collect_expiry_ms", .int(collectExpiryMs))])
    }

    func applying(_ patch: TimingPatch) throws(MalformedRequest) -> PayerTiming {
        var next = self
        if let v = patch.payerDelayMs { next.payerDelayMs = v }
        if let v = patch.lateDelayMs { next.lateDelayMs = v }
        if let v = patch.collectExpiryMs { next.collectExpiryMs = v }
        guard (0...Self.maximumMs).contains(next.payerDelayMs), (0...Self.maximumMs).contains(next.lateDelayMs),
              (1...Self.maximumMs).contains(next.collectExpiryMs) else {
            throw MalformedRequest(message: "payer_delay_ms and late_delay_ms must be 0…\(Self.maximumMs), collect_expiry_ms 1…\(Self.maximumMs)")
        }
        return next
    }
}

struct TimingPatch: Decodable, Sendable {
    var payerDelayMs: Int64?
    var lateDelayMs: Int64?
    var collectExpiryMs: Int64?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case payerDelayMs = "payer_delay_ms", lateDelayMs = "late_delay_ms", collectExpiryMs = "collect_expiry_ms"
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(allowed: Set(CodingKeys.allCases.map(\.rawValue)))
        let c = try decoder.container(keyedBy: CodingKeys.self)
        payerDelayMs = try c.decodeIfPresent(Int64.self, forKey: .payerDelayMs)
        lateDelayMs = try c.decodeIfPresent(Int64.self, forKey: .lateDelayMs)
        collectExpiryMs = try c.decodeIfPresent(Int64.self, forKey: .collectExpiryMs)
    }
}

/// Per-rail counters (`GET /sandbox/v1/stats`).
struct RailStats: Sendable, Equatable {
    var calls: Int64 = 0
    var errorsInjected: Int64 = 0
    var timeoutsInjected: Int64 = 0
    var callbacksSent: Int64 = 0
    var callbacksDropped: Int64 = 0
    var callbacksDuplicated: Int64 = 0
    /// The acquirer's answers dropped by `drop_response_rate`.
    var responsesDropped: Int64 = 0

    var json: JSON {
        .object([("calls", .int(calls)), ("errors_injected", .int(errorsInjected)), ("timeouts_injected", .int(timeoutsInjected)),
                 ("callbacks_sent", .int(callbacksSent)), ("callbacks_dropped", .int(callbacksDropped)),
                 ("callbacks_duplicated", .int(callbacksDuplicated)), ("responses_dropped", .int(responsesDropped))])
    }
}
