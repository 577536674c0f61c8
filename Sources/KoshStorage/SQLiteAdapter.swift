import KoshCore
import Logging
import NIOCore
import SQLiteNIO

/// The one writer of an SQLite database: a FIFO lock over the connection plus group commit.
///
/// Transactions run one at a time, each inside its own SAVEPOINT of a shared batch
/// transaction, so each is atomic and fully isolated from the others. A transaction that
/// finishes while others are queued leaves the batch open for them and waits; the last one
/// (no one queued, or the batch is full) commits the batch — one fsync for all — and only
/// then does any member return. If the commit fails, every member fails: nobody was told
/// their transaction committed when it did not.
actor SQLiteWriter {
    private var locked = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var commitWaiters: [CheckedContinuation<Void, any Error>] = []
    var batchOpen = false
    var batchSize = 0

    func lock() async {
        if !locked {
            locked = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    /// Hands the lock to the next waiter, if any.
    func unlock() {
        if waiters.isEmpty {
            locked = false
        } else {
            waiters.removeFirst().resume()
        }
    }

    var hasWaiters: Bool { !waiters.isEmpty }

    func beganBatch() {
        batchOpen = true
        batchSize = 0
    }

    func joined() { batchSize += 1 }

    /// Leaves the batch open for the next transaction, unlocks, and waits for the commit.
    func awaitCommit() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            commitWaiters.append(continuation)
            unlock()
        }
    }

    /// After COMMIT (error nil) or ROLLBACK of the whole batch: wakes every member.
    func finishBatch(error: (any Error)?) {
        batchOpen = false
        let members = commitWaiters
        commitWaiters = []
        for member in members {
            if let error { member.resume(throwing: error) } else { member.resume() }
        }
    }
}

/// SQLite in WAL mode with full fsync. One connection and one writer: transactions run one
/// at a time (`BEGIN IMMEDIATE`, so another process's writer waits up to `busy_timeout`)
/// and commit in groups (see `SQLiteWriter`).
public final class SQLiteDatabase: SQLDatabase, @unchecked Sendable {
    public let dialect = SQLDialect.sqlite
    let connection: SQLiteConnection
    let writer = SQLiteWriter()
    /// Most transactions one fsync may cover.
    public static let maximumBatch = 256

    public static func open(path: String, logger: Logger) async throws -> SQLiteDatabase {
        let connection = try await SQLiteConnection.open(storage: path == ":memory:" ? .memory : .file(path: path), logger: logger)
        _ = try await connection.query("PRAGMA busy_timeout = 10000", [])
        _ = try await connection.query("PRAGMA journal_mode = WAL", [])
        _ = try await connection.query("PRAGMA synchronous = FULL", [])
        _ = try await connection.query("PRAGMA foreign_keys = ON", [])
        return SQLiteDatabase(connection: connection)
    }

    init(connection: SQLiteConnection) {
        self.connection = connection
    }

    public func transaction<T: Sendable>(_ body: (any SQLConnection) async throws -> T) async throws -> T {
        await writer.lock()
        if await !writer.batchOpen {
            do {
                _ = try await connection.query("BEGIN IMMEDIATE", [])
            } catch {
                await writer.unlock()
                throw error
            }
            await writer.beganBatch()
        }
        await writer.joined()
        let outcome: Result<T, any Error>
        do {
            _ = try await connection.query("SAVEPOINT kosh_tx", [])
            do {
                let value = try await body(SQLiteTransactionConnection(connection: connection))
                _ = try await connection.query("RELEASE kosh_tx", [])
                outcome = .success(value)
            } catch {
                _ = try await connection.query("ROLLBACK TO kosh_tx", [])
                _ = try await connection.query("RELEASE kosh_tx", [])
                outcome = .failure(error)
            }
        } catch {
            // The savepoint machinery itself failed: give up the whole batch.
            _ = try? await connection.query("ROLLBACK", [])
            await writer.finishBatch(error: error)
            await writer.unlock()
            throw error
        }
        if case .failure(let error) = outcome {
            // Nothing of this transaction remains in the batch; it can answer at once,
            // unless it is the one that must close the batch.
            if await writer.hasWaiters {
                await writer.unlock()
            } else {
                try await commitBatch()
            }
            throw error
        }
        if await writer.hasWaiters, await writer.batchSize < Self.maximumBatch {
            try await writer.awaitCommit()
        } else {
            try await commitBatch()
        }
        return try outcome.get()
    }

    /// Commits the open batch (the caller holds the lock) and releases the lock.
    private func commitBatch() async throws {
        do {
            _ = try await connection.query("COMMIT", [])
        } catch {
            _ = try? await connection.query("ROLLBACK", [])
            await writer.finishBatch(error: error)
            await writer.unlock()
            throw error
        }
        await writer.finishBatch(error: nil)
        await writer.unlock()
    }

    public func close() async throws {
        try await connection.close()
    }
}

struct SQLiteTransactionConnection: SQLConnection {
    let connection: SQLiteConnection
    var dialect: SQLDialect { .sqlite }

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        let data: [SQLiteData] = binds.map {
            switch $0 {
            case .null: .null
            case .int(let value): .integer(SQLiteInt64(value))
            case .text(let value): .text(value)
            }
        }
        let rows: [SQLiteRow]
        do {
            rows = try await connection.query(sql, data)
        } catch let error as SQLiteError where error.reason == .constraintUniqueFailed || error.reason == .constraintPrimaryKeyFailed {
            throw StorageError.uniqueViolation(error.message)
        }
        return rows.map { row in
            var columns: [String: SQLValue] = [:]
            for column in row.columns {
                switch column.data {
                case .integer(let value): columns[column.name] = .int(Int64(value))
                case .text(let value): columns[column.name] = .text(value)
                case .float(let value): columns[column.name] = .int(Int64(value))
                case .blob(let buffer): columns[column.name] = .text(String(buffer: buffer))
                case .null: columns[column.name] = .null
                }
            }
            return SQLRow(columns: columns)
        }
    }
}
