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
        init(_ count: Int) { state = Mutex(State(due: Array(0..<count))) }

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
            try? await Task.sleep(for: .milliseconds(1))
            state.withLock { s in
                s.inFlight -= 1
                s.handled.append(item)
            }
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
        for _ in 0..<2_000 {
            if queue.state.withLock({ $0.handled.count }) == 200 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
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
        let loop = Task {
            await ClaimLoop.run(concurrency: 2, pollIntervalMillis: 60_000, logger: Logger(label: "claim-loop"), what: "test",
                                claim: { limit in Array(0..<limit) },
                                handle: { _ in
                                    started.withLock { $0 += 1 }
                                    try? await Task.sleep(for: .seconds(3_600))  // ends on cancellation
                                })
        }
        while started.withLock({ $0 }) < 2 { try await Task.sleep(for: .milliseconds(5)) }
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
        try await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        await waiter.value
    }

    @Test("results that finish during a write go together in the next; a bad item in a batch fails only itself")
    func batchWriter() async throws {
        let batches = Mutex<[[Int]]>([])
        let writer = BatchWriter<Int, Int>(maximumBatch: 50) { items in
            batches.withLock { $0.append(items) }
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
