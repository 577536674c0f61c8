import CSQLite3
import Foundation
import Dispatch
import KoshCore
import Logging
import Synchronization

/// The one writer of an SQLite database: a FIFO lock over the connection plus group commit.
///
/// Transactions run one at a time, each inside its own SAVEPOINT of a shared batch
/// transaction, so each is atomic and fully isolated from the others. A transaction that
/// finishes while others are queued leaves the batch open for them and waits; the last one
/// (no one queued, or the batch is full) commits the batch — one fsync for all — and only
/// then does any member return. If the commit fails, every member fails: nobody was told
/// their transaction committed when it did not.
final class SQLiteWriter: Sendable {
    struct State {
        var locked = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var commitWaiters: [CheckedContinuation<Void, any Error>] = []
        var batchOpen = false
        var batchSize = 0
    }
    // A plain mutex, not an actor: taking a free lock costs no task switch.
    private let state = Mutex(State())

    func lock() async {
        if state.withLock({ s in
            if s.locked { return false }
            s.locked = true
            return true
        }) { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { s in
                if s.locked {
                    s.waiters.append(continuation)
                    return false
                }
                s.locked = true
                return true
            }
            if acquired { continuation.resume() }
        }
    }

    /// Hands the lock to the next waiter, if any.
    func unlock() {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if s.waiters.isEmpty {
                s.locked = false
                return nil
            }
            return s.waiters.removeFirst()
        }
        next?.resume()
    }

    var hasWaiters: Bool { state.withLock { !$0.waiters.isEmpty } }
    var batchOpen: Bool { state.withLock { $0.batchOpen } }
    var batchSize: Int { state.withLock { $0.batchSize } }

    func beganBatch() {
        state.withLock {
            $0.batchOpen = true
            $0.batchSize = 0
        }
    }

    func joined() { state.withLock { $0.batchSize += 1 } }

    /// Leaves the batch open for the next transaction, unlocks, and waits for the commit.
    func awaitCommit() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            state.withLock { $0.commitWaiters.append(continuation) }
            unlock()
        }
    }

    /// After COMMIT (error nil) or ROLLBACK of the whole batch: wakes every member.
    func finishBatch(error: (any Error)?) {
        let members = state.withLock { s in
            s.batchOpen = false
            let members = s.commitWaiters
            s.commitWaiters = []
            return members
        }
        for member in members {
            if let error { member.resume(throwing: error) } else { member.resume() }
        }
    }
}

/// SQLite in WAL mode with full fsync, through SQLite's C API with cached prepared
/// statements. One connection and one writer: transactions run one at a time and commit in
/// groups (see `SQLiteWriter`). Statements run on the calling task's thread (the writer lock
/// guarantees one user at a time). What may wait for the disk or for another process's lock
/// runs on a dedicated queue, so it never blocks Swift's cooperative threads: a COMMIT of a
/// batch that wrote (the fsync), a ROLLBACK, and a BEGIN IMMEDIATE that did not get the
/// write lock at once (another process holds it). The rest — a BEGIN that gets the lock at
/// once, the COMMIT of a batch that only read — cannot wait and runs in place: a read-only
/// transaction costs no thread switch, a write one switch (its commit).
public final class SQLiteDatabase: SQLDatabase, @unchecked Sendable {
    public let dialect = SQLDialect.sqlite
    let connection: SQLiteHandle
    let writer = SQLiteWriter()
    let blockingQueue = DispatchQueue(label: "kosh.sqlite.blocking")
    /// Most transactions one fsync may cover.
    public static let maximumBatch = 256

    /// Opens the database file at `path`; when `create` is false, a missing file is
    /// `StorageError.missingDatabase` rather than a new empty database.
    public static func open(path: String, logger: Logger, create: Bool = true) async throws -> SQLiteDatabase {
        let handle = try SQLiteHandle(path: path, create: create)
        try handle.execute("PRAGMA busy_timeout = \(SQLiteHandle.busyTimeoutMillis)")
        try handle.execute("PRAGMA journal_mode = WAL")
        try handle.execute("PRAGMA synchronous = FULL")
        try handle.execute("PRAGMA foreign_keys = ON")
        return SQLiteDatabase(connection: handle)
    }

    init(connection: SQLiteHandle) {
        self.connection = connection
    }

    /// Runs a statement that may block (disk sync, lock wait) off the cooperative pool.
    func blocking(_ sql: String) async throws {
        let connection = self.connection
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            blockingQueue.async {
                do {
                    try connection.execute(sql)
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    public func transaction<T: Sendable>(_ body: (any SQLConnection) async throws -> T) async throws -> T {
        await writer.lock()
        if !writer.batchOpen {
            do {
                if try !connection.beginImmediateIfFree() { try await blocking("BEGIN IMMEDIATE") }
                connection.wrote = false
            } catch {
                writer.unlock()
                throw error
            }
            writer.beganBatch()
        }
        writer.joined()
        let outcome: Result<T, any Error>
        do {
            // Savepoint statements through the prepared-statement cache (sqlite3_exec compiles each time).
            _ = try connection.query("SAVEPOINT kosh_tx", [])
            do {
                let value = try await body(SQLiteTransactionConnection(connection: connection))
                _ = try connection.query("RELEASE kosh_tx", [])
                outcome = .success(value)
            } catch {
                _ = try connection.query("ROLLBACK TO kosh_tx", [])
                _ = try connection.query("RELEASE kosh_tx", [])
                outcome = .failure(error)
            }
        } catch {
            // The savepoint machinery itself failed: give up the whole batch.
            try? await blocking("ROLLBACK")
            writer.finishBatch(error: error)
            writer.unlock()
            throw error
        }
        if case .failure(let error) = outcome {
            // Nothing of this transaction remains in the batch; it can answer at once,
            // unless it is the one that must close the batch.
            if writer.hasWaiters {
                writer.unlock()
            } else {
                try await commitBatch()
            }
            throw error
        }
        if writer.hasWaiters, writer.batchSize < Self.maximumBatch {
            try await writer.awaitCommit()
        } else {
            try await commitBatch()
        }
        return try outcome.get()
    }

    /// Commits the open batch (the caller holds the lock) and releases the lock. A batch that
    /// wrote nothing has nothing to sync: its COMMIT only releases SQLite's locks, in place.
    private func commitBatch() async throws {
        do {
            if connection.wrote { try await blocking("COMMIT") } else { try connection.execute("COMMIT") }
        } catch {
            try? await blocking("ROLLBACK")
            writer.finishBatch(error: error)
            writer.unlock()
            throw error
        }
        writer.finishBatch(error: nil)
        writer.unlock()
    }

    /// Closes the connection once the transactions before it are done. A transaction that
    /// finished while `close` waited for the lock left its batch open for the next holder (here,
    /// `close`) and waits for the commit: `close` commits that batch first, or it would wait forever.
    /// Transactions after `close` fail ("database is closed").
    public func close() async throws {
        await writer.lock()
        if writer.batchOpen {
            do {
                try await blocking("COMMIT")
                writer.finishBatch(error: nil)
            } catch {
                try? await blocking("ROLLBACK")
                writer.finishBatch(error: error)
            }
        }
        connection.close()
        writer.unlock()
    }
}

public struct SQLiteError: Error, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public var description: String { "SQLite error \(code): \(message)" }
}

/// An `sqlite3*` with a cache of prepared statements. Not thread-safe by itself: callers
/// serialise access (the writer lock).
final class SQLiteHandle: @unchecked Sendable {
    private var db: OpaquePointer?
    private var statements: [String: (statement: OpaquePointer, columns: SQLColumns)] = [:]
    static let maximumCachedStatements = 512
    /// The busy timeout set at open (`PRAGMA busy_timeout`), restored after a BEGIN tried without waiting.
    static let busyTimeoutMillis: Int32 = 10_000
    /// Whether a statement that may write (any but SELECT and transaction control, as
    /// `sqlite3_stmt_readonly` says) ran since the caller last set it false (at BEGIN).
    var wrote = false

    init(path: String, create: Bool) throws {
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK else {
            if rc == SQLITE_CANTOPEN && !create && !FileManager.default.fileExists(atPath: path) {
                sqlite3_close_v2(db)
                db = nil
                throw StorageError.missingDatabase(path)
            }
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close_v2(db)
            db = nil
            throw SQLiteError(code: rc, message: "\(message) (\(path))")
        }
        sqlite3_extended_result_codes(db, 1)
    }

    deinit { close() }

    func close() {
        for (_, cached) in statements { sqlite3_finalize(cached.statement) }
        statements = [:]
        if let db { sqlite3_close_v2(db) }
        db = nil
    }

    func error(_ rc: Int32) -> any Error {
        let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "closed"
        switch rc {
        case 2067, 1555:  // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY (macros Swift cannot import)
            return StorageError.uniqueViolation(message)
        default:
            return SQLiteError(code: rc, message: message)
        }
    }

    /// BEGIN IMMEDIATE without waiting: true when begun; false when another connection holds
    /// the write lock (nothing begun; the caller waits for it elsewhere).
    func beginImmediateIfFree() throws -> Bool {
        guard let db else { throw SQLiteError(code: SQLITE_MISUSE, message: "database is closed") }
        sqlite3_busy_timeout(db, 0)
        defer { sqlite3_busy_timeout(db, Self.busyTimeoutMillis) }
        let rc = sqlite3_exec(db, "BEGIN IMMEDIATE", nil, nil, nil)
        if rc == SQLITE_OK { return true }
        if rc & 0xFF == SQLITE_BUSY { return false }
        throw error(rc)
    }

    /// Runs SQL without results (transaction control, pragmas).
    func execute(_ sql: String) throws {
        guard let db else { throw SQLiteError(code: SQLITE_MISUSE, message: "database is closed") }
        let rc = sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    private func prepared(_ sql: String) throws -> (statement: OpaquePointer, columns: SQLColumns) {
        if let cached = statements[sql] { return cached }
        guard let db else { throw SQLiteError(code: SQLITE_MISUSE, message: "database is closed") }
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw error(rc) }
        let columns = SQLColumns((0..<sqlite3_column_count(statement)).map { String(cString: sqlite3_column_name(statement, $0)) })
        if statements.count >= Self.maximumCachedStatements {
            for (_, cached) in statements { sqlite3_finalize(cached.statement) }
            statements = [:]
        }
        statements[sql] = (statement, columns)
        return (statement, columns)
    }

    static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
    /// A valid pointer for binding the empty text (SQLite needs a non-NULL pointer for a text).
    nonisolated(unsafe) static let emptyText: UnsafePointer<CChar> = {
        let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        pointer.initialize(to: 0)
        return UnsafePointer(pointer)
    }()

    func query(_ sql: String, _ binds: [SQLValue]) throws -> [SQLRow] {
        let (statement, columns) = try prepared(sql)
        if !wrote && sqlite3_stmt_readonly(statement) == 0 { wrote = true }
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, bind) in binds.enumerated() {
            let position = Int32(index + 1)
            let rc: Int32
            switch bind {
            case .null: rc = sqlite3_bind_null(statement, position)
            case .int(let value): rc = sqlite3_bind_int64(statement, position, value)
            case .text(let value):
                // Bound by its byte length, so a text is stored whole (a length of -1 would cut it at a NUL).
                var text = value
                rc = text.withUTF8 { bytes in
                    bytes.withMemoryRebound(to: CChar.self) { chars in
                        sqlite3_bind_text(statement, position, chars.baseAddress ?? Self.emptyText, Int32(chars.count), Self.transient)
                    }
                }
            }
            guard rc == SQLITE_OK else { throw error(rc) }
        }
        var rows: [SQLRow] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error(rc) }
            let count = columns.names.count
            var values: [SQLValue] = []
            values.reserveCapacity(count)
            for i in 0..<count {
                let column = Int32(i)
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: values.append(.int(sqlite3_column_int64(statement, column)))
                case SQLITE_NULL: values.append(.null)
                case SQLITE_FLOAT: values.append(.int(Int64(sqlite3_column_double(statement, column))))
                default:
                    if let text = sqlite3_column_text(statement, column) {
                        let length = Int(sqlite3_column_bytes(statement, column))
                        values.append(.text(String(decoding: UnsafeBufferPointer(start: text, count: length), as: UTF8.self)))
                    } else {
                        values.append(.null)
                    }
                }
            }
            rows.append(SQLRow(layout: columns, values: values))
        }
        return rows
    }
}

struct SQLiteTransactionConnection: SQLConnection {
    let connection: SQLiteHandle
    var dialect: SQLDialect { .sqlite }

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        try connection.query(sql, binds)
    }
}
