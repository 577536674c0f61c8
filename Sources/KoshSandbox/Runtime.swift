import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization

/// The shell around `SandboxWorld`: holds it and the agenda of work due later behind one mutex
/// (never across an await), runs that work in a pass (`runDueWork`) when the clock says it is
/// due, sends signed callbacks in tracked tasks, and owns the HTTP client.
///
/// On a clock that moves by itself each new due time gets a tracked task that sleeps until then
/// and runs the pass; on a manual clock nothing sleeps, and the test runs the pass after it steps
/// the clock.
final class SandboxRuntime: Sendable {
    static let callbackAttempts = 4            // the first try and 3 retries
    static let callbackRetryDelayMs: Int64 = 1_000
    static let callbackTimeout: TimeAmount = .seconds(5)
    static let maximumCallbackResponseBytes = 64 * 1024

    let secret: String
    let configuredSeed: UInt64?
    let clock: any SandboxClock
    let logger: Logger
    private let state: Mutex<State>
    /// Wake-ups and callback sends: cancelled by a reset and at shutdown.
    private let background = TaskRegistry()
    /// Injected latency and hangs inside requests: cut short at shutdown.
    private let pauses = TaskRegistry()
    private let client = Mutex<ClientState>(.idle)

    private struct State {
        var world: SandboxWorld
        var agenda = Agenda()

        /// Puts the effects on the agenda; answers their due times.
        mutating func schedule(_ effects: [Effect]) -> [Int64] {
            effects.map { effect in
                switch effect {
                case .timer(let event, let due):
                    agenda.add(.timer(event), due: due)
                    return due
                case .callback(let job):
                    agenda.add(.callback(CallbackAttempt(job: job, epoch: world.epoch, copy: 1, attempt: 1)), due: job.notBefore)
                    return job.notBefore
                }
            }
        }

        /// Fires every timer due at `now`, each at its own due time, and takes the callback
        /// attempts due by then (including those the timers just made); answers them and the due
        /// times of later work the timers made.
        mutating func takeDue(now: Int64) -> (attempts: [CallbackAttempt], later: [Int64]) {
            var attempts: [CallbackAttempt] = []
            var later: [Int64] = []
            while let next = agenda.takeNext(dueBy: now) {
                switch next.work {
                case .timer(let event):
                    later += schedule(world.fire(event, now: next.due)).filter { $0 > now }
                case .callback(let attempt):
                    attempts.append(attempt)
                }
            }
            return (attempts, later)
        }
    }

    private enum ClientState {
        case idle
        case running(HTTPClient)
        case shutDown
    }

    init(secret: String, seed: UInt64?, clock: any SandboxClock, logger: Logger) {
        self.secret = secret
        self.configuredSeed = seed
        self.clock = clock
        self.logger = logger
        self.state = Mutex(State(world: SandboxWorld(seed: seed ?? UInt64.random(in: .min ... .max))))
    }

    func now() -> Int64 { clock.now() }

    /// Runs `body` on the world under the lock; `body` must not block.
    func withWorld<T: Sendable>(_ body: (inout SandboxWorld) -> T) -> T {
        state.withLock { body(&$0.world) }
    }

    /// Applies `body` to the world and puts the effects it returned on the agenda.
    func perform<T: Sendable>(_ body: (inout SandboxWorld) -> (T, [Effect])) -> T {
        let (result, dues) = state.withLock { state in
            let (result, effects) = body(&state.world)
            return (result, state.schedule(effects))
        }
        wake(at: dues)
        return result
    }

    func reset(seed: UInt64?) -> UInt64 {
        let seed = seed ?? configuredSeed ?? UInt64.random(in: .min ... .max)
        state.withLock { state in
            state.world.reset(seed: seed)
            state.agenda = Agenda()
            // Under the lock, so no wake-up or send of the new epoch can be cancelled by mistake.
            background.cancelAll()
        }
        return seed
    }

    /// Sleeps `milliseconds` of real time unless the server is shutting down.
    func pause(milliseconds: Int64) async {
        guard milliseconds > 0 else { return }
        guard let task = pauses.spawn({ try? await Task.sleep(for: .milliseconds(milliseconds)) }) else { return }
        await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
    }

    // MARK: The pass

    /// Runs everything due by the clock's time, in due order: payer decisions and expiries on the
    /// world, then the callback attempts, sent concurrently. A second copy falls due as soon as
    /// the first is done and goes out in the same pass; a retry waits its second. Returns once
    /// every attempt it started has been answered (or has failed).
    func runDueWork() async {
        while true {
            let now = clock.now()
            let (attempts, later) = state.withLock { $0.takeDue(now: now) }
            wake(at: later)
            guard !attempts.isEmpty else { return }
            let sends = attempts.compactMap { attempt in background.spawn { await self.deliver(attempt) } }
            for send in sends { await send.value }
        }
    }

    /// On a clock that moves by itself, a tracked task per due time sleeps until then and runs
    /// the pass. A manual clock answers false at once and the task ends.
    private func wake(at dues: [Int64]) {
        for due in Set(dues) {
            background.spawn { [clock] in
                guard (try? await clock.sleep(until: due)) == true, !Task.isCancelled else { return }
                await self.runDueWork()
            }
        }
    }

    /// Sends one attempt, then puts the next one on the agenda: the retry a second later after a
    /// failure, else the next copy at once; nothing after a reset.
    private func deliver(_ attempt: CallbackAttempt) async {
        let delivered = await send(attempt.job, copy: attempt.copy, attempt: attempt.attempt)
        guard !Task.isCancelled else { return }
        let now = clock.now()
        let next: (CallbackAttempt, due: Int64)
        if !delivered && attempt.attempt < Self.callbackAttempts {
            next = (CallbackAttempt(job: attempt.job, epoch: attempt.epoch, copy: attempt.copy, attempt: attempt.attempt + 1),
                    now + Self.callbackRetryDelayMs)
        } else if attempt.copy < attempt.job.copies {
            next = (CallbackAttempt(job: attempt.job, epoch: attempt.epoch, copy: attempt.copy + 1, attempt: 1), now)
        } else {
            return
        }
        let scheduled = state.withLock { state in
            guard state.world.epoch == attempt.epoch else { return false }
            state.agenda.add(.callback(next.0), due: next.due)
            return true
        }
        if scheduled { wake(at: [next.due]) }
    }

    /// One attempt; true on a 2xx answer.
    private func send(_ job: CallbackJob, copy: Int, attempt: Int) async -> Bool {
        guard let client = httpClient() else { return false }
        let timestamp = now()
        var request = HTTPClientRequest(url: job.target.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: SandboxSignature.timestampHeader, value: String(timestamp))
        request.headers.add(name: SandboxSignature.signatureHeader,
                            value: SandboxSignature.sign(secret: secret, timestamp: timestamp, method: "POST",
                                                         path: job.target.signedPath, body: job.body))
        request.body = .bytes(ByteBuffer(bytes: job.body))
        var metadata: Logger.Metadata = ["sandbox.rail": "\(job.rail.rawValue)", "callback.url": "\(job.target.url)",
                                         "callback.copy": "\(copy)", "callback.attempt": "\(attempt)"]
        do {
            let response = try await client.execute(request, timeout: Self.callbackTimeout)
            _ = try? await response.body.collect(upTo: Self.maximumCallbackResponseBytes)
            metadata["http.status"] = "\(response.status.code)"
            if (200..<300).contains(response.status.code) {
                logger.debug("callback delivered", metadata: metadata)
                return true
            }
            logger.notice("callback refused", metadata: metadata)
        } catch {
            metadata["error"] = "\(error)"
            logger.notice("callback failed", metadata: metadata)
        }
        return false
    }

    private func httpClient() -> HTTPClient? {
        client.withLock { state in
            switch state {
            case .running(let client): return client
            case .shutDown: return nil
            case .idle:
                var configuration = HTTPClient.Configuration()
                configuration.redirectConfiguration = .disallow
                configuration.timeout = .init(connect: .seconds(2), read: Self.callbackTimeout)
                let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration,
                                        backgroundActivityLogger: logger)
                state = .running(client)
                return client
            }
        }
    }

    // MARK: Shutdown

    /// Stops new work and cancels timers, callbacks and pauses; safe to call more than once.
    func beginShutdown() {
        background.close()
        pauses.close()
    }

    /// Cancels everything, waits for it to finish, then shuts the HTTP client down.
    func shutdown() async {
        for task in background.close() + pauses.close() { await task.value }
        let running: HTTPClient? = client.withLock { state in
            defer { state = .shutDown }
            if case .running(let client) = state { return client }
            return nil
        }
        do {
            try await running?.shutdown()
        } catch {
            logger.error("HTTP client shutdown failed", metadata: ["error": "\(error)"])
        }
    }
}

/// Unstructured tasks that are tracked so they can be cancelled together.
final class TaskRegistry: Sendable {
    private struct State {
        var nextID: UInt64 = 0
        var tasks: [UInt64: Task<Void, Never>] = [:]
        var closed = false
    }

    private let state = Mutex(State())

    /// Starts `operation` unless the registry is closed.
    @discardableResult
    func spawn(_ operation: @escaping @Sendable () async -> Void) -> Task<Void, Never>? {
        state.withLock { state in
            guard !state.closed else { return nil }
            let id = state.nextID
            state.nextID += 1
            // Created under the lock, so the task cannot remove itself before it is recorded.
            let task = Task {
                await operation()
                self.remove(id)
            }
            state.tasks[id] = task
            return task
        }
    }

    /// Cancels every task running now (each removes itself when it ends).
    func cancelAll() {
        let tasks = state.withLock { Array($0.tasks.values) }
        for task in tasks { task.cancel() }
    }

    /// Refuses new tasks and cancels the running ones; returns them so they can be awaited.
    @discardableResult
    func close() -> [Task<Void, Never>] {
        let tasks = state.withLock { state in
            state.closed = true
            return Array(state.tasks.values)
        }
        for task in tasks { task.cancel() }
        return tasks
    }

    private func remove(_ id: UInt64) {
        _ = state.withLock { $0.tasks.removeValue(forKey: id) }
    }
}
