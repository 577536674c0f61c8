import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization

/// The shell around `SandboxWorld`: holds it behind a mutex (never across an await), carries
/// out its effects (timers, signed callbacks) in tracked tasks, and owns the HTTP client.
final class SandboxRuntime: Sendable {
    static let callbackAttempts = 4            // the first try and 3 retries
    static let callbackRetryDelay: Duration = .seconds(1)
    static let callbackTimeout: TimeAmount = .seconds(5)
    static let maximumCallbackResponseBytes = 64 * 1024

    let secret: String
    let configuredSeed: UInt64?
    let logger: Logger
    private let world: Mutex<SandboxWorld>
    /// Timers and callback deliveries: cancelled by a reset and at shutdown.
    private let background = TaskRegistry()
    /// Injected latency and hangs inside requests: cut short at shutdown.
    private let pauses = TaskRegistry()
    private let client = Mutex<ClientState>(.idle)

    private enum ClientState {
        case idle
        case running(HTTPClient)
        case shutDown
    }

    init(secret: String, seed: UInt64?, logger: Logger) {
        self.secret = secret
        self.configuredSeed = seed
        self.logger = logger
        self.world = Mutex(SandboxWorld(seed: seed ?? UInt64.random(in: .min ... .max)))
    }

    func now() -> Int64 { SandboxSignature.now() }

    /// Runs `body` on the world under the lock; `body` must not block.
    func withWorld<T: Sendable>(_ body: (inout SandboxWorld) -> T) -> T {
        world.withLock { body(&$0) }
    }

    /// Applies `body` to the world and starts the effects it returned.
    func perform<T: Sendable>(_ body: (inout SandboxWorld) -> (T, [Effect])) -> T {
        let (result, effects) = world.withLock { body(&$0) }
        start(effects)
        return result
    }

    func reset(seed: UInt64?) -> UInt64 {
        let seed = seed ?? configuredSeed ?? UInt64.random(in: .min ... .max)
        world.withLock { world in
            world.reset(seed: seed)
            // Under the world's lock, so no timer of the new epoch can be cancelled by mistake.
            background.cancelAll()
        }
        return seed
    }

    /// Sleeps `milliseconds` unless the server is shutting down.
    func pause(milliseconds: Int64) async {
        guard milliseconds > 0 else { return }
        guard let task = pauses.spawn({ try? await Task.sleep(for: .milliseconds(milliseconds)) }) else { return }
        await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() }
    }

    // MARK: Effects

    private func start(_ effects: [Effect]) {
        for effect in effects {
            switch effect {
            case .timer(let event, let delay):
                background.spawn {
                    try? await Task.sleep(for: .milliseconds(delay))
                    guard !Task.isCancelled else { return }
                    self.fire(event)
                }
            case .callback(let job):
                background.spawn { await self.deliver(job) }
            }
        }
    }

    private func fire(_ event: TimerEvent) {
        let effects = world.withLock { $0.fire(event, now: now()) }
        start(effects)
    }

    private func deliver(_ job: CallbackJob) async {
        if job.delayMs > 0 {
            try? await Task.sleep(for: .milliseconds(job.delayMs))
        }
        for copy in 1...job.copies {
            for attempt in 1...Self.callbackAttempts {
                guard !Task.isCancelled else { return }
                if await send(job, copy: copy, attempt: attempt) { break }
                if attempt < Self.callbackAttempts { try? await Task.sleep(for: Self.callbackRetryDelay) }
            }
        }
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
