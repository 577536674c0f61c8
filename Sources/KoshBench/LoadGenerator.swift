import AsyncHTTPClient
import Foundation
import Histogram
import KoshCore
import KoshJSON
import NIOCore
import NIOHTTP1
import Synchronization

public struct LoadOptions: Sendable {
    public var url: String
    public var keyID: String
    public var keySecret: String
    /// Seconds of measured load, after `warmup` seconds that are not counted.
    public var duration: Int = 30
    public var warmup: Int = 3
    /// Closed loop: this many lifecycles in flight, each starting when the last one ends.
    public var concurrency: Int = 32
    /// Open loop: start this many lifecycles per second whatever happens (nil = closed loop).
    public var rate: Int?
    /// Per mille of lifecycles that end with a partial refund.
    public var refundPerMille: Int = 200
    public var amount: Int64 = 10_000
    /// The payer: `success@razorpay` for test keys; a sandbox payer such as
    /// `success.load{n}@okhdfcbank` for live keys (`{n}`: a number per lifecycle).
    public var vpa: String = "success@razorpay"
    /// Open loop: at most this many lifecycles in flight; further starts are counted as dropped.
    public var maximumInFlight: Int = 10_000
    /// The HTTP client: `lean` (ours, one keep-alive connection per worker, little CPU) or
    /// `ahc` (AsyncHTTPClient, as before).
    public var client: LoadClient = .lean
    /// What each lifecycle pays with: UPI (collect) or a card (create/json → otp_generate →
    /// otp/submit → capture).
    public var method: LoadMethod = .upi
    /// The bank of netbanking lifecycles (Razorpay's code).
    public var bank: String = "HDFC"
    /// The card number of card lifecycles (a success card of the test or sandbox issuers).
    public var cardNumber: String = "4100280000001007"
    /// The OTP of a card payment: test mode takes any 4–10 digits; live mode reads the OTP the
    /// sandbox ACS texted (`SandboxOTPReader`).
    public var otp: @Sendable (_ paymentID: String) async throws -> String = { _ in "123456" }
    /// QR and netbanking lifecycles in live mode: the sandbox playing the payer (MethodLifecycles.swift).
    public var sandbox: (any SandboxPlayer)?

    public init(url: String, keyID: String, keySecret: String) {
        self.url = url
        self.keyID = keyID
        self.keySecret = keySecret
    }
}

public enum LoadMethod: String, Sendable, CaseIterable {
    case upi, card
    /// Create a single-use QR code, the sandbox payer's app pays it, wait until it is captured.
    case qr
    /// create/json with method netbanking, the sandbox bank approves it, wait, capture.
    case netbanking
}

public enum LoadClient: String, Sendable, CaseIterable {
    case lean, ahc
}

/// Latencies in microseconds per endpoint and per lifecycle, and errors by kind.
final class Recorder: Sendable {
    struct State {
        var histograms: [String: Histogram<UInt64>] = [:]
        var errors: [String: Int] = [:]
        var lifecycles = 0
        var requests = 0
        var dropped = 0
        var recording = false
    }
    let state = Mutex(State())

    func record(_ name: String, micros: UInt64) {
        state.withLock { s in
            guard s.recording else { return }
            if name == "lifecycle" { s.lifecycles += 1 } else { s.requests += 1 }
            if s.histograms[name] == nil {
                s.histograms[name] = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
            }
            _ = s.histograms[name]!.record(max(1, micros))
        }
    }

    func error(_ kind: String) {
        state.withLock { s in if s.recording { s.errors[kind, default: 0] += 1 } }
    }

    func drop() { state.withLock { s in if s.recording { s.dropped += 1 } } }

    func setRecording(_ on: Bool) { state.withLock { $0.recording = on } }
}

struct RequestFailure: Error, CustomStringConvertible {
    let kind: String
    var description: String { kind }
}

public struct LoadReport: Sendable {
    public struct Latency: Sendable {
        public let name: String
        public let count: UInt64
        public let p50, p90, p99, p999, max: Double  // milliseconds
    }
    public let mode: String
    public let seconds: Double
    public let lifecycles: Int
    public let requests: Int
    public let dropped: Int
    public let errors: [String: Int]
    public let latencies: [Latency]

    public var lifecyclesPerSecond: Double { Double(lifecycles) / seconds }
    public var requestsPerSecond: Double { Double(requests) / seconds }

    public func text() -> String {
        var out = "mode: \(mode)  measured: \(String(format: "%.1f", seconds)) s\n"
        out += "lifecycles: \(lifecycles)  (\(String(format: "%.1f", lifecyclesPerSecond))/s)\n"
        out += "requests:   \(requests)  (\(String(format: "%.1f", requestsPerSecond))/s)\n"
        out += "errors:     \(errors.values.reduce(0, +))" + (errors.isEmpty ? "" : "  " + errors.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" }.joined(separator: ", ")) + "\n"
        if dropped > 0 { out += "dropped starts (in-flight cap): \(dropped)\n" }
        out += "latency ms         count      p50      p90      p99    p99.9      max\n"
        for l in latencies {
            out += l.name.padding(toLength: 16, withPad: " ", startingAt: 0)
            out += String(format: " %8llu %8.2f %8.2f %8.2f %8.2f %8.2f\n", l.count, l.p50, l.p90, l.p99, l.p999, l.max)
        }
        return out
    }

    public func json() -> JSON {
        func ms(_ v: Double) -> JSON { .number(String(format: "%.3f", v)) }
        return .object([
            ("mode", .string(mode)),
            ("seconds", .number(String(format: "%.3f", seconds))),
            ("lifecycles", .int(Int64(lifecycles))),
            ("lifecycles_per_second", .number(String(format: "%.1f", lifecyclesPerSecond))),
            ("requests", .int(Int64(requests))),
            ("requests_per_second", .number(String(format: "%.1f", requestsPerSecond))),
            ("dropped", .int(Int64(dropped))),
            ("errors", .object(errors.sorted(by: { $0.key < $1.key }).map { ($0.key, .int(Int64($0.value))) })),
            ("latency_ms", .object(latencies.map { l in
                (l.name, .object([("count", .int(Int64(l.count))), ("p50", ms(l.p50)), ("p90", ms(l.p90)), ("p99", ms(l.p99)),
                                  ("p99_9", ms(l.p999)), ("max", ms(l.max))]))
            })),
        ])
    }
}

/// Drives full payment lifecycles through the HTTP API: create order → create UPI payment →
/// (wait for authorisation) → capture → a share of partial refunds.
public struct LoadGenerator: Sendable {
    let options: LoadOptions
    let client: HTTPClient
    let recorder = Recorder()
    let payers = InFlight()
    let authorization: String

    public init(options: LoadOptions) {
        self.options = options
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(8, min(options.concurrency, 512)))
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.authorization = "Basic " + Data("\(options.keyID):\(options.keySecret)".utf8).base64EncodedString()
    }

    public func shutdown() async throws {
        try await client.shutdown()
    }

    /// One API call, through `connection` (the lean client) or AsyncHTTPClient; records its
    /// latency and turns a non-200 answer into a `RequestFailure` naming Razorpay's reason.
    func call(_ name: String, _ method: HTTPMethod, _ path: String, _ body: String? = nil, via connection: LeanConnection?) async throws -> JSON {
        let start = ContinuousClock.now
        let status: Int
        let bytes: ByteBuffer
        do {
            if let connection {
                (status, bytes) = try await connection.send(method: method.rawValue, path: path, body: body)
            } else {
                var request = HTTPClientRequest(url: options.url + path)
                request.method = method
                request.headers.add(name: "Authorization", value: authorization)
                if let body {
                    request.headers.add(name: "Content-Type", value: "application/json")
                    request.body = .bytes(ByteBuffer(string: body))
                }
                let response = try await client.execute(request, timeout: .seconds(30))
                status = Int(response.status.code)
                bytes = try await response.body.collect(upTo: 1 << 20)
            }
        } catch {
            recorder.error("transport")
            throw RequestFailure(kind: "transport: \(error)")
        }
        recorder.record(name, micros: UInt64((ContinuousClock.now - start) / .microseconds(1)))
        let json = (try? JSON.parse(bytes.readableBytesView)) ?? .null
        guard status == 200 else {
            var reason = "?"
            if case .string(let r)? = json["error"]?["reason"] { reason = r }
            throw RequestFailure(kind: "\(name) \(status) \(reason)")
        }
        return json
    }

    /// The payer's VPA; `{n}` in it becomes a number unique to the run, so that live-mode
    /// payers (sandbox bank accounts with per-day limits) are not all one account.
    func payer() -> String {
        guard options.vpa.contains("{n}") else { return options.vpa }
        return options.vpa.replacingOccurrences(of: "{n}", with: String(payers.value.add(1, ordering: .relaxed).newValue))
    }

    func string(_ json: JSON, _ key: String) throws -> String {
        guard case .string(let s)? = json[key] else { throw RequestFailure(kind: "missing \(key)") }
        return s
    }

    /// One lifecycle; `start` is when it should have started (open loop measures from there).
    func lifecycle(start: ContinuousClock.Instant, via connection: LeanConnection? = nil) async {
        func call(_ name: String, _ method: HTTPMethod, _ path: String, _ body: String? = nil) async throws -> JSON {
            try await self.call(name, method, path, body, via: connection)
        }
        do {
            let amount = options.amount
            if options.method == .qr {
                try await qrLifecycle(call)
                recorder.record("lifecycle", micros: UInt64((ContinuousClock.now - start) / .microseconds(1)))
                return
            }
            let order = try string(try await call("order.create", .POST, "/v1/orders", #"{"amount":\#(amount),"currency":"INR"}"#), "id")
            let payment: String
            switch options.method {
            case .qr:
                preconditionFailure("QR lifecycles have no order of their own")
            case .netbanking:
                payment = try await netbankingPayment(order: order, call)
            case .upi:
                payment = try string(try await call("payment.create", .POST, "/v1/payments/create/upi", """
                    {"order_id":"\(order)","amount":\(amount),"currency":"INR","method":"upi","vpa":"\(payer())","email":"load@example.com","contact":"9123456789"}
                    """), "razorpay_payment_id")
            case .card:
                payment = try string(try await call("payment.create_json", .POST, "/v1/payments/create/json", """
                    {"order_id":"\(order)","amount":\(amount),"currency":"INR","method":"card","email":"load@example.com","contact":"9123456789",\
                    "card":{"number":"\(options.cardNumber)","expiry_month":"12","expiry_year":"30","cvv":"123","name":"Load Test"}}
                    """), "razorpay_payment_id")
                _ = try await call("payment.otp_generate", .POST, "/v1/payments/\(payment)/otp_generate", "{}")
                let otp = try await options.otp(payment)
                let submitted = try await call("payment.otp_submit", .POST, "/v1/payments/\(payment)/otp/submit", #"{"otp":"\#(otp)"}"#)
                _ = try string(submitted, "razorpay_signature")
            }
            let captureBody = #"{"amount":\#(amount),"currency":"INR"}"#
            do {
                _ = try await call("payment.capture", .POST, "/v1/payments/\(payment)/capture", captureBody)
            } catch let failure as RequestFailure where failure.kind.hasSuffix("payment_not_authorized") {
                // The payer has not approved yet: wait for authorisation, then capture.
                let deadline = ContinuousClock.now + .seconds(30)
                while true {
                    let p = try await call("payment.fetch", .GET, "/v1/payments/\(payment)")
                    let status = try string(p, "status")
                    if status == "authorized" { break }
                    if status != "created" || ContinuousClock.now > deadline { throw RequestFailure(kind: "payment \(status)") }
                    try await Task.sleep(for: .milliseconds(20))
                }
                _ = try await call("payment.capture", .POST, "/v1/payments/\(payment)/capture", captureBody)
            }
            if Int.random(in: 0..<1000) < options.refundPerMille {
                _ = try await call("refund.create", .POST, "/v1/payments/\(payment)/refund", #"{"amount":\#(amount / 2)}"#)
            }
            recorder.record("lifecycle", micros: UInt64((ContinuousClock.now - start) / .microseconds(1)))
        } catch let failure as RequestFailure {
            recorder.error(failure.kind.hasPrefix("transport") ? "transport" : failure.kind)
        } catch {
            recorder.error("other")
        }
    }

    /// Runs `load` until the returned end instant, recording only between warm-up and end.
    func measured(_ load: (_ end: ContinuousClock.Instant) async -> Void) async {
        let measureStart = ContinuousClock.now + .seconds(options.warmup)
        let end = measureStart + .seconds(options.duration)
        let recorder = self.recorder
        let starter = Task {
            try? await Task.sleep(until: measureStart)
            recorder.setRecording(true)
            try? await Task.sleep(until: end)
            recorder.setRecording(false)
        }
        await load(end)
        _ = await starter.result
    }

    /// A lean-client worker: runs the starts `next` hands out, one connection at a time
    /// (a new one after the server closed or broke the last).
    func leanWorker(_ target: LeanTarget, next: () async -> ContinuousClock.Instant?, body: (ContinuousClock.Instant, LeanConnection) async -> Void) async {
        var start = await next()
        while let first = start {
            do {
                try await LeanConnection.with(target) { connection in
                    var current: ContinuousClock.Instant? = first
                    while let now = current {
                        await body(now, connection)
                        current = await next()
                        if connection.broken { break }
                    }
                    start = current
                }
            } catch {
                // Could not connect: this start fails; try again with the next one.
                recorder.error("transport")
                try? await Task.sleep(for: .milliseconds(20))
                start = await next()
            }
        }
    }

    func runLean(_ target: LeanTarget, end: ContinuousClock.Instant) async {
        if let rate = options.rate {
            let inFlight = InFlight()
            let queue = StartQueue()
            let maximumWorkers = min(options.maximumInFlight, 1_024)
            await withDiscardingTaskGroup { group in
                var workers = 0
                await forEachStart(rate: rate, until: end, inFlight: inFlight) { scheduled in
                    if queue.push(scheduled) && workers < maximumWorkers {
                        workers += 1
                        group.addTask {
                            await self.leanWorker(target, next: { await queue.next() }) { start, connection in
                                await self.lifecycle(start: start, via: connection)
                                inFlight.value.subtract(1, ordering: .relaxed)
                            }
                        }
                    }
                }
                queue.finish()
            }
        } else {
            await withDiscardingTaskGroup { group in
                for _ in 0..<options.concurrency {
                    group.addTask {
                        await self.leanWorker(target, next: { ContinuousClock.now < end ? ContinuousClock.now : nil }) { start, connection in
                            await self.lifecycle(start: start, via: connection)
                        }
                    }
                }
            }
        }
    }

    /// The open loop's clock: calls `start` for each start scheduled at `rate` per second until
    /// `end` — catching up on every start that is due, so a stalled server still sees the full
    /// rate — except starts over the in-flight cap, which are counted as dropped. `start`'s
    /// lifecycle must subtract itself from `inFlight` when it ends.
    func forEachStart(rate: Int, until end: ContinuousClock.Instant, inFlight: InFlight,
                      _ start: (ContinuousClock.Instant) -> Void) async {
        let interval = Duration.nanoseconds(1_000_000_000 / max(1, rate))
        var next = ContinuousClock.now
        while next < end {
            if ContinuousClock.now < next { try? await Task.sleep(until: next) }
            while next <= ContinuousClock.now && next < end {
                let scheduled = next
                next += interval
                if inFlight.value.load(ordering: .relaxed) >= options.maximumInFlight {
                    recorder.drop()
                    continue
                }
                inFlight.value.add(1, ordering: .relaxed)
                start(scheduled)
            }
        }
    }

    public func run() async throws -> LoadReport {
        if options.client == .lean {
            let target = try LeanTarget(url: options.url, authorization: authorization)  // a bad URL fails before the run
            await measured { end in await runLean(target, end: end) }
            return report(mode: (options.rate.map { "open loop, \($0) lifecycles/s" } ?? "closed loop, \(options.concurrency) concurrent") + ", lean client")
        }
        await measured { end in
        if let rate = options.rate {
            let inFlight = InFlight()
            // Discarding: finished lifecycles are freed at once (a plain task group keeps every
            // child's result until it is awaited, which grows without bound in an open loop).
            await withDiscardingTaskGroup { group in
                await forEachStart(rate: rate, until: end, inFlight: inFlight) { scheduled in
                    group.addTask {
                        await self.lifecycle(start: scheduled)
                        inFlight.value.subtract(1, ordering: .relaxed)
                    }
                }
            }
        } else {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<options.concurrency {
                    group.addTask {
                        while ContinuousClock.now < end {
                            await self.lifecycle(start: ContinuousClock.now)
                        }
                    }
                }
                await group.waitForAll()
            }
        }
        }
        return report(mode: options.rate.map { "open loop, \($0) lifecycles/s" } ?? "closed loop, \(options.concurrency) concurrent")
    }

    func report(mode: String) -> LoadReport {
        recorder.state.withLock { s in
            let order = ["lifecycle", "order.create", "payment.create", "payment.capture", "payment.fetch", "refund.create", "bare"]
            let latencies = s.histograms.sorted { (order.firstIndex(of: $0.key) ?? 99, $0.key) < (order.firstIndex(of: $1.key) ?? 99, $1.key) }.map { name, h in
                LoadReport.Latency(name: name, count: h.totalCount, p50: Double(h.valueAtPercentile(50)) / 1000, p90: Double(h.valueAtPercentile(90)) / 1000,
                                   p99: Double(h.valueAtPercentile(99)) / 1000, p999: Double(h.valueAtPercentile(99.9)) / 1000, max: Double(h.max) / 1000)
            }
            return LoadReport(mode: mode, seconds: Double(options.duration), lifecycles: s.lifecycles, requests: s.requests,
                              dropped: s.dropped, errors: s.errors, latencies: latencies)
        }
    }

    /// The ceiling: the same client against a route that does nothing (`GET path`).
    public func runBare(path: String) async throws -> LoadReport {
        let recorder = self.recorder
        if options.client == .lean {
            let target = try LeanTarget(url: options.url, authorization: nil)
            await measured { end in
                await withDiscardingTaskGroup { group in
                    for _ in 0..<options.concurrency {
                        group.addTask {
                            await self.leanWorker(target, next: { ContinuousClock.now < end ? ContinuousClock.now : nil }) { _, connection in
                                let start = ContinuousClock.now
                                do {
                                    let (status, _) = try await connection.send(method: "GET", path: path, body: nil)
                                    if status == 200 {
                                        recorder.record("bare", micros: UInt64((ContinuousClock.now - start) / .microseconds(1)))
                                    } else {
                                        recorder.error("bare \(status)")
                                    }
                                } catch {
                                    recorder.error("transport")
                                }
                            }
                        }
                    }
                }
            }
            return report(mode: "bare GET \(path), closed loop, \(options.concurrency) concurrent, lean client")
        }
        await measured { end in
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<options.concurrency {
                group.addTask {
                    while ContinuousClock.now < end {
                        var request = HTTPClientRequest(url: options.url + path)
                        request.method = .GET
                        let start = ContinuousClock.now
                        do {
                            let response = try await client.execute(request, timeout: .seconds(30))
                            _ = try await response.body.collect(upTo: 1 << 16)
                            recorder.record("bare", micros: UInt64((ContinuousClock.now - start) / .microseconds(1)))
                        } catch {
                            recorder.error("transport")
                        }
                    }
                }
            }
            await group.waitForAll()
        }
        }
        return report(mode: "bare GET \(path), closed loop, \(options.concurrency) concurrent")
    }
}

final class InFlight: Sendable {
    let value = Atomic<Int>(0)
}
