import Logging
import ServiceLifecycle
import Synchronization

/// The dispatchers' shared loop: claims due work (with a lease, in the store) for the free
/// slots and runs up to `concurrency` items at once, until shutdown.
///
/// When a claim fills every free slot there may be more due work, so the loop does not sleep:
/// it waits until half the slots are free again and claims at once. Only a claim that comes
/// back short (everything due is taken) sleeps `pollIntervalMillis` before the next. So a
/// backlog drains as fast as the items complete, not `concurrency` per poll interval, and each
/// claim (a write transaction) takes at least half the slots' worth, not one item at a time.
enum ClaimLoop {
    final class Counter: Sendable {
        let value = Mutex(0)
    }

    static func run<Item: Sendable>(concurrency: Int, pollIntervalMillis: Int64, logger: Logger, what: String,
                                    claim: @escaping @Sendable (Int) async throws -> [Item],
                                    handle: @escaping @Sendable (Item) async -> Void) async {
        precondition(concurrency > 0)
        let inFlight = Counter()
        let slotsFreed = Wakeup()
        let lowWater = concurrency / 2
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                let free = concurrency - inFlight.value.withLock { $0 }
                var claimed = 0
                if free > 0 {
                    do {
                        let items = try await claim(free)
                        claimed = items.count
                        for item in items {
                            inFlight.value.withLock { $0 += 1 }
                            group.addTask {
                                await handle(item)
                                let left = inFlight.value.withLock { count in
                                    count -= 1
                                    return count
                                }
                                if left <= lowWater { slotsFreed.signal() }
                            }
                        }
                    } catch {
                        logger.error("\(what) claim failed", metadata: ["error": "\(error)"])
                    }
                }
                if free > 0 && claimed < free {
                    // Caught up (or the claim failed): poll again later.
                    try? await Task.sleep(for: .milliseconds(pollIntervalMillis))
                } else {
                    // Every slot busy, and maybe more due: claim again when half are free.
                    await slotsFreed.wait()
                }
            }
        }
    }
}

/// A one-slot signal: `signal()` wakes the waiter, or is kept for the next `wait()` if nobody
/// waits. Cancelling the waiting task ends the wait.
final class Wakeup: Sendable {
    private struct State {
        var signalled = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let waiter = s.waiter else {
                s.signalled = true
                return nil
            }
            s.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { s -> Bool in
                    if s.signalled || Task.isCancelled {
                        s.signalled = false
                        return true
                    }
                    s.waiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume()
        }
    }
}

/// Group commit for the dispatchers' results: outcomes that finish while a write is under way
/// go together in the next one, one database transaction for many items instead of one each.
/// `submit` returns when its item is written. If a batch fails, its items are written one by
/// one, so one bad item (or a deadlock between two nodes' batches) fails only itself.
final class BatchWriter<Item: Sendable, Output: Sendable>: Sendable {
    typealias Write = @Sendable ([Item]) async throws -> [Output]
    private struct Waiting {
        let item: Item
        let continuation: CheckedContinuation<Output, any Error>
    }
    private struct State {
        var waiting: [Waiting] = []
        var writing = false
    }

    private let write: Write
    private let maximumBatch: Int
    private let state = Mutex(State())

    init(maximumBatch: Int = 256, write: @escaping Write) {
        precondition(maximumBatch > 0)
        self.maximumBatch = maximumBatch
        self.write = write
    }

    func submit(_ item: Item) async throws -> Output {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Output, any Error>) in
            let lead = state.withLock { s -> Bool in
                s.waiting.append(Waiting(item: item, continuation: continuation))
                if s.writing { return false }
                s.writing = true
                return true
            }
            // The first to arrive writes until nobody waits; later ones ride along.
            if lead { Task { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { s -> [Waiting] in
                let batch = Array(s.waiting.prefix(maximumBatch))
                s.waiting.removeFirst(batch.count)
                if batch.isEmpty { s.writing = false }
                return batch
            }
            if batch.isEmpty { return }
            do {
                let outputs = try await write(batch.map(\.item))
                precondition(outputs.count == batch.count)
                for (waiting, output) in zip(batch, outputs) { waiting.continuation.resume(returning: output) }
            } catch {
                if batch.count == 1 {
                    batch[0].continuation.resume(throwing: error)
                    continue
                }
                for waiting in batch {
                    do {
                        waiting.continuation.resume(returning: try await write([waiting.item])[0])
                    } catch {
                        waiting.continuation.resume(throwing: error)
                    }
                }
            }
        }
    }
}
