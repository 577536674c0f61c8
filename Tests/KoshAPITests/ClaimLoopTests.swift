@testable import KoshApp
import Logging
import Synchronization
import Testing

@Suite("Claim loop", .timeLimit(.minutes(1)))
struct ClaimLoopTests {
    final class Queue: Sendable {
        struct State {
            var due: [Int]
            var handled: [Int] = []
            var inFlight = 0
            var mostInFlight = 0
            var claims = 0
        }
        let state: Mutex<State>
        let total: Int
        /// Yields once, when the last item is handled.
        let (finished, finish) = AsyncStream<Void>.makeStream()
        init(_ count: Int) {
            total = count
            state = Mutex(State(due: Array(0..<count)))
        }

        func claim(_ limit: Int) -> [Int] {
            state.withLock { s in
                s.claims += 1
                let taken = Array(s.due.prefix(limit))
                s.due.removeFirst(taken.count)
                return taken
            }
        }

        func handle(_ item: Int) async {
            state.withLock { s in
                s.inFlight += 1
                s.mostInFlight = max(s.mostInFlight, s.inFlight)
            }
            // Real time on purpose: each item takes a moment, as a delivery does, so items finish
            // while the loop claims (the loop under test has no clock; it waits on slots).
            try? await Task.sleep(for: .milliseconds(1))
            let done = state.withLock { s in
                s.inFlight -= 1
                s.handled.append(item)
                return s.handled.count == total
            }
            if done { finish.yield() }
        }
    }

    @Test("a backlog drains as items complete, not `concurrency` per poll interval, half the slots or more per claim, never over the concurrency")
    func backlogDrainsWithoutPolling() async throws {
        let queue = Queue(200)
        // A poll interval of a minute: a loop that slept after every claim would handle 4
        // items a minute and blow the suite's time limit.
        let loop = Task {
            await ClaimLoop.run(concurrency: 4, pollIntervalMillis: 60_000, logger: Logger(label: "claim-loop"), what: "test",
                                claim: { queue.claim($0) }, handle: { await queue.handle($0) })
        }
        for await _ in queue.finished { break }
        loop.cancel()
        await loop.value
        let state = queue.state.withLock { $0 }
        #expect(state.handled.sorted() == Array(0..<200))
        #expect(state.mostInFlight <= 4)
        #expect(state.claims >= 50)  // at most 4 per claim
        #expect(state.claims <= 101)  // at least 2 (half the slots) per claim after the first, not one at a time
    }

    @Test("a loop waiting for a free slot ends when its task is cancelled")
    func cancelWhileAllSlotsBusy() async throws {
        let started = Mutex(0)
        let (starts, start) = AsyncStream<Void>.makeStream()
        let loop = Task {
            await ClaimLoop.run(concurrency: 2, pollIntervalMillis: 60_000, logger: Logger(label: "claim-loop"), what: "test",
                                claim: { limit in Array(0..<limit) },
                                handle: { _ in
                                    started.withLock { $0 += 1 }
                                    start.yield()
                                    await untilCancelled()
                                })
        }
        var seen = 0
        for await _ in starts {
            seen += 1
            if seen == 2 { break }
        }
        loop.cancel()
        await loop.value
        #expect(started.withLock { $0 } == 2)
    }

    @Test("a signal sent before the wait is not lost; a wait ends on cancellation")
    func wakeup() async throws {
        let wakeup = Wakeup()
        wakeup.signal()
        await wakeup.wait()  // returns at once: the signal was kept
        let waiter = Task { await wakeup.wait() }
        // Real time on purpose: lets the waiter park before the cancellation (nothing to observe
        // that by); if it has not yet, the already-cancelled path is what ends it, and the test still holds.
        try await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        await waiter.value
    }

    @Test("results that finish during a write go together in the next; a bad item in a batch fails only itself")
    func batchWriter() async throws {
        let batches = Mutex<[[Int]]>([])
        let writer = BatchWriter<Int, Int>(maximumBatch: 50) { items in
            batches.withLock { $0.append(items) }
            // Real time on purpose: a write that takes a while (a database's), so submissions
            // arrive during it and ride in the next batch; nothing here reads a clock.
            try await Task.sleep(for: .milliseconds(20))
            if items.contains(13) { throw CancellationError() }
            return items.map { $0 * 2 }
        }
        let results = await withTaskGroup(of: (Int, Int?).self) { group in
            for i in 0..<100 { group.addTask { (i, try? await writer.submit(i)) } }
            var results: [Int: Int?] = [:]
            for await (i, r) in group { results[i] = r }
            return results
        }
        #expect(results.count == 100)
        for i in 0..<100 { #expect(results[i]! == (i == 13 ? nil : i * 2)) }
        let written = batches.withLock { $0 }
        #expect(written.count < 100)  // batched
        #expect(written.allSatisfy { $0.count <= 50 })
        // Every item written exactly once, except the batch with 13, written whole then one by one.
        let withThirteen = try #require(written.first { $0.count > 1 && $0.contains(13) })
        #expect(written.flatMap { $0 }.count == 100 + withThirteen.count)
    }
}

/// Suspends until the calling task is cancelled: a handler that never finishes on its own.
func untilCancelled() async {
    let (stream, continuation) = AsyncStream<Void>.makeStream()
    for await _ in stream {}  // ends when the task is cancelled
    continuation.finish()  // (and holds the continuation until then)
}
