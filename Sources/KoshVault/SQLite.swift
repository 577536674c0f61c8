import CSQLite3
import Dispatch
import Foundation

/// A value bound to or read from the vault's SQLite file. Ciphertext is a blob, never text.
enum VaultSQLValue: Sendable, Hashable {
    case null
    case int(Int64)
    case text(String)
    case blob([UInt8])

    var int: Int64? { if case .int(let value) = self { value } else { nil } }
    var text: String? { if case .text(let value) = self { value } else { nil } }
    var blob: [UInt8]? { if case .blob(let value) = self { value } else { nil } }
}

struct VaultSQLError: Error, CustomStringConvertible {
    let code: Int32
    let message: String
    var description: String { "SQLite error \(code): \(message)" }
}

/// The vault's own SQLite file (WAL, full fsync, secure delete): one connection whose every use
/// runs on one serial queue, so statements never block Swift's cooperative threads and never
/// overlap. Small on purpose: the vault shares no code with Kosh's application database.
final class VaultDatabase: @unchecked Sendable {
    private let queue = DispatchQueue(label: "kosh.vault.sqlite")
    // Touched only on `queue`.
    private var db: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    /// Opens (creating, mode 0600) the file at `path`.
    init(path: String) throws {
        // Create the file ourselves so it is never readable by others, not even for an instant;
        // SQLite gives the -wal and -shm files the database file's permissions.
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw VaultSQLError(code: SQLITE_CANTOPEN, message: "cannot create \(path): errno \(errno)") }
        close(fd)
        let rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            sqlite3_close_v2(db)
            db = nil
            throw VaultSQLError(code: rc, message: "\(message) (\(path))")
        }
        try execute("PRAGMA busy_timeout = 10000")
        try execute("PRAGMA journal_mode = WAL")
        try execute("PRAGMA synchronous = FULL")
        try execute("PRAGMA foreign_keys = ON")
        // Deleted rows (purged cards, re-wrapped keys) are overwritten with zeros, not left in free pages.
        try execute("PRAGMA secure_delete = ON")
    }

    deinit { closeNow() }

    /// Runs `body` on the database's queue, outside any transaction (each statement is its own).
    func read<T: Sendable>(_ body: @escaping @Sendable (VaultDatabase) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            queue.async {
                continuation.resume(with: Result { try body(self) })
            }
        }
    }

    /// Runs `body` in one transaction (BEGIN IMMEDIATE … COMMIT; ROLLBACK when it throws).
    func write<T: Sendable>(_ body: @escaping @Sendable (VaultDatabase) throws -> T) async throws -> T {
        try await read { db in
            try db.execute("BEGIN IMMEDIATE")
            do {
                let value = try body(db)
                try db.execute("COMMIT")
                return value
            } catch {
                try? db.execute("ROLLBACK")
                throw error
            }
        }
    }

    func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.closeNow()
                continuation.resume()
            }
        }
    }

    private func closeNow() {
        for (_, statement) in statements { sqlite3_finalize(statement) }
        statements = [:]
        if let db { sqlite3_close_v2(db) }
        db = nil
    }

    // MARK: On the queue only

    func execute(_ sql: String) throws {
        guard let db else { throw VaultSQLError(code: SQLITE_MISUSE, message: "the vault database is closed") }
        let rc = sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    private func error(_ rc: Int32) -> VaultSQLError {
        VaultSQLError(code: rc, message: db.map { String(cString: sqlite3_errmsg($0)) } ?? "closed")
    }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// Runs one statement with `binds` and answers its rows.
    @discardableResult
    func query(_ sql: String, _ binds: [VaultSQLValue] = []) throws -> [[VaultSQLValue]] {
        guard let db else { throw VaultSQLError(code: SQLITE_MISUSE, message: "the vault database is closed") }
        let statement: OpaquePointer
        if let cached = statements[sql] {
            statement = cached
        } else {
            var prepared: OpaquePointer?
            let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &prepared, nil)
            guard rc == SQLITE_OK, let prepared else { throw error(rc) }
            statements[sql] = prepared
            statement = prepared
        }
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
                var text = value
                rc = text.withUTF8 { bytes in
                    sqlite3_bind_text(statement, position, UnsafeRawPointer(bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!)
                        .assumingMemoryBound(to: CChar.self), Int32(bytes.count), Self.transient)
                }
            case .blob(let bytes):
                rc = bytes.withUnsafeBytes { raw in
                    sqlite3_bind_blob(statement, position, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, Int32(raw.count), Self.transient)
                }
            }
            guard rc == SQLITE_OK else { throw error(rc) }
        }
        var rows: [[VaultSQLValue]] = []
        let count = sqlite3_column_count(statement)
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw error(rc) }
            var row: [VaultSQLValue] = []
            row.reserveCapacity(Int(count))
            for column in 0..<count {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_NULL: row.append(.null)
                case SQLITE_INTEGER: row.append(.int(sqlite3_column_int64(statement, column)))
                case SQLITE_BLOB:
                    let length = Int(sqlite3_column_bytes(statement, column))
                    if let pointer = sqlite3_column_blob(statement, column) {
                        row.append(.blob(Array(UnsafeRawBufferPointer(start: pointer, count: length))))
                    } else {
                        row.append(.blob([]))
                    }
                default:
                    let length = Int(sqlite3_column_bytes(statement, column))
                    if let text = sqlite3_column_text(statement, column) {
                        row.append(.text(String(decoding: UnsafeBufferPointer(start: text, count: length), as: UTF8.self)))
                    } else {
                        row.append(.text(""))
                    }
                }
            }
            rows.append(row)
        }
        return rows
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { db.map { Int(sqlite3_changes($0)) } ?? 0 }
}
