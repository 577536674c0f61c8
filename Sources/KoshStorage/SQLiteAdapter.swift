import KoshCore
import Logging
import NIOCore
import SQLiteNIO

/// A FIFO async mutex: transactions on the one SQLite connection run one at a time.
actor AsyncMutex {
    private var locked = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func lock() async {
        if !locked {
            locked = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func unlock() {
        if waiters.isEmpty {
            locked = false
        } else {
            waiters.removeFirst().resume()
        }
    }
}

/// SQLite in WAL mode with full fsync. One connection, one transaction at a time
/// (`BEGIN IMMEDIATE`, so a transaction that reads before it writes cannot be overtaken by
/// another process's write); other processes wait up to `busy_timeout`.
public final class SQLiteDatabase: SQLDatabase, @unchecked Sendable {
    public let dialect = SQLDialect.sqlite
    let connection: SQLiteConnection
    let mutex = AsyncMutex()

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
        await mutex.lock()
        do {
            let result = try await run(body)
            await mutex.unlock()
            return result
        } catch {
            await mutex.unlock()
            throw error
        }
    }

    private func run<T: Sendable>(_ body: (any SQLConnection) async throws -> T) async throws -> T {
        _ = try await connection.query("BEGIN IMMEDIATE", [])
        let wrapped = SQLiteTransactionConnection(connection: connection)
        do {
            let result = try await body(wrapped)
            _ = try await connection.query("COMMIT", [])
            return result
        } catch {
            _ = try? await connection.query("ROLLBACK", [])
            throw error
        }
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
