import Foundation
import KoshStorage
import Logging
import Synchronization
import Testing

/// Closing an SQLite database while transactions are in flight (issue 12 §6.1: a `kosh serve`
/// that failed to bind its port hung for good when the database closed among the cancelled
/// services).
@Suite("SQLite close", .serialized, .timeLimit(.minutes(1)))
struct SQLiteCloseTests {
    final class Flag: Sendable {
        let value = Mutex(false)
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }

    static func path() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kosh-close-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent("k.sqlite").path
    }

    /// A transaction that ends while `close` waits for the writer lock hands its open batch to
    /// `close` and waits for the commit: `close` must commit it (before the fix it closed the
    /// connection and the transaction never returned).
    // Real time on purpose: the race is between the SQLite adapter's writer lock and close(),
    // which have no clock to step; the 300 ms hold lets close() queue, the 5 s wait bounds a hang.
    @Test("a transaction that finishes while close waits for the lock is committed and returns")
    func closeCommitsTheBatchItWasHanded() async throws {
        let path = try Self.path()
        let db = try await SQLiteDatabase.open(path: path, logger: Logger(label: "t"))
        try await db.transaction { conn in _ = try await conn.query("CREATE TABLE t (x INTEGER)", []) }
        let (started, entered) = AsyncStream<Void>.makeStream()
        let returned = Flag()
        let writer = Task {
            try await db.transaction { conn in
                entered.yield()
                try await Task.sleep(for: .milliseconds(300))  // close() queues for the lock meanwhile
                _ = try await conn.query("INSERT INTO t (x) VALUES (1)", [])
            }
            returned.set()
        }
        var iterator = started.makeAsyncIterator()
        await iterator.next()
        let closing = Task { try await db.close() }
        let deadline = ContinuousClock.now + .seconds(5)
        while !returned.isSet && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        #expect(returned.isSet, "the transaction never returned: close took its batch and did not commit it")
        guard returned.isSet else { return }
        try await writer.value
        try await closing.value

        let reopened = try await SQLiteDatabase.open(path: path, logger: Logger(label: "t"))
        let count = try await reopened.transaction { conn in try await conn.query("SELECT COUNT(*) AS n FROM t", []).first?.int("n") }
        #expect(count == 1)
        try await reopened.close()
    }

    /// A BEGIN is tried in place without waiting; when another connection (another process)
    /// holds the write lock it must wait for it (on the blocking queue), not fail. Real time,
    /// as above: the other connection holds its lock for 300 ms.
    @Test("a transaction waits for another connection's write lock, then commits; a read-only one after it too")
    func anotherConnectionsLockIsWaitedFor() async throws {
        let path = try Self.path()
        let first = try await SQLiteDatabase.open(path: path, logger: Logger(label: "t"))
        let second = try await SQLiteDatabase.open(path: path, logger: Logger(label: "t"))
        try await first.transaction { conn in _ = try await conn.query("CREATE TABLE t (x INTEGER)", []) }
        let (started, entered) = AsyncStream<Void>.makeStream()
        let holder = Task {
            try await first.transaction { conn in
                _ = try await conn.query("INSERT INTO t (x) VALUES (1)", [])
                entered.yield()
                try await Task.sleep(for: .milliseconds(300))
            }
        }
        var iterator = started.makeAsyncIterator()
        await iterator.next()
        try await second.transaction { conn in _ = try await conn.query("INSERT INTO t (x) VALUES (2)", []) }
        try await holder.value
        let count = try await second.transaction { conn in try await conn.query("SELECT COUNT(*) AS n FROM t", []).first?.int("n") }
        #expect(count == 2)
        let again = try await first.transaction { conn in try await conn.query("SELECT SUM(x) AS n FROM t", []).first?.int("n") }
        #expect(again == 3)
        try await first.close()
        try await second.close()
    }

    @Test("a transaction after close fails instead of waiting")
    func transactionAfterCloseFails() async throws {
        let db = try await SQLiteDatabase.open(path: try Self.path(), logger: Logger(label: "t"))
        try await db.close()
        await #expect(throws: (any Error).self) {
            try await db.transaction { conn in _ = try await conn.query("SELECT 1", []) }
        }
    }

    @Test("opening a missing file without create names it and creates nothing")
    func missingFileIsNotCreated() async throws {
        let path = try Self.path()
        await #expect {
            _ = try await Databases.open(.sqlite(path: path), logger: Logger(label: "t"), create: false)
        } throws: { error in
            "\(error)".contains("No database at \(path)")
        }
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
