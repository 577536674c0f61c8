import KoshCore

/// The two SQL dialects Kosh speaks. Every difference between them is decided here.
public enum SQLDialect: String, Sendable {
    case sqlite, postgres

    /// Row lock for a read in a transaction. SQLite serialises writers with `BEGIN IMMEDIATE`
    /// (one writer at a time), so it needs none.
    var forUpdate: String { self == .postgres ? " FOR UPDATE" : "" }
    /// The database's own clock in unix milliseconds, as an SQL expression (for what several
    /// nodes must judge by one clock).
    var nowMillis: String {
        self == .postgres ? "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
            : "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
    }

    /// Row lock that passes over rows other transactions hold (work queues across nodes).
    /// SQLite's single writer makes a claim atomic without it.
    var forUpdateSkipLocked: String { self == .postgres ? " FOR UPDATE SKIP LOCKED" : "" }

    /// Byte-order comparison of text (PostgreSQL otherwise sorts by the database's locale).
    var byteOrder: String { self == .postgres ? " COLLATE \"C\"" : "" }
}

public enum SQLValue: Sendable, Hashable {
    case null
    case int(Int64)
    case text(String)

    init(_ value: String?) { self = value.map { .text($0) } ?? .null }
    init(_ value: Int64?) { self = value.map { .int($0) } ?? .null }
}

/// The column names of one statement's results, shared by all its rows.
public final class SQLColumns: Sendable {
    let names: [String]
    let positions: [String: Int]

    init(_ names: [String]) {
        self.names = names
        var positions: [String: Int] = [:]
        for (i, name) in names.enumerated() { positions[name] = i }  // a repeated name: the last one wins
        self.positions = positions
    }
}

/// One result row: its values by position, found by name through the statement's columns
/// (no dictionary per row).
public struct SQLRow: Sendable {
    let layout: SQLColumns
    let values: [SQLValue]

    init(layout: SQLColumns, values: [SQLValue]) {
        precondition(layout.names.count == values.count, "Invalid state: a row of \(values.count) values for \(layout.names.count) columns")
        self.layout = layout
        self.values = values
    }

    subscript(_ name: String) -> SQLValue? { layout.positions[name].map { values[$0] } }

    public func int(_ name: String) -> Int64? {
        switch self[name] {
        case .int(let value): value
        case .text(let text): Int64(text)
        default: nil
        }
    }

    public func text(_ name: String) -> String? {
        switch self[name] {
        case .text(let value): value
        case .int(let value): String(value)
        default: nil
        }
    }

    func requireInt(_ name: String) throws -> Int64 {
        guard let value = int(name) else { throw StorageError.corrupt("column \(name) is not an integer") }
        return value
    }

    func requireText(_ name: String) throws -> String {
        guard let value = text(name) else { throw StorageError.corrupt("column \(name) is null") }
        return value
    }
}

public enum StorageError: Error, Sendable, CustomStringConvertible {
    case badURL(String)
    case corrupt(String)
    case uniqueViolation(String)
    case concurrentUpdate(String)
    case masterKeyMismatch(String)
    /// No SQLite database at this path, for a command that must not create one.
    case missingDatabase(String)

    public var description: String {
        switch self {
        case .badURL(let s): "Invalid database URL: \(s)"
        case .corrupt(let s): "Stored data is not as expected: \(s)"
        case .uniqueViolation(let s): "Unique constraint violated: \(s)"
        case .concurrentUpdate(let s): "Row changed concurrently: \(s)"
        case .masterKeyMismatch(let s): s
        case .missingDatabase(let path):
            "No database at \(path); create it with kosh migrate (or kosh serve) with the same --database, or point --database at an existing one"
        }
    }
}

/// A connection inside a transaction. SQL uses `?` placeholders; adapters translate them.
public protocol SQLConnection {
    var dialect: SQLDialect { get }
    @discardableResult
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow]
}

public protocol SQLDatabase: Sendable {
    var dialect: SQLDialect { get }
    /// Runs `body` in one transaction: committed if it returns, rolled back if it throws.
    func transaction<T: Sendable>(_ body: (any SQLConnection) async throws -> T) async throws -> T
    func close() async throws
}

/// Where the database lives: `sqlite://PATH` or `postgres://user:pass@host:port/db`.
public enum DatabaseURL: Sendable, Hashable {
    case sqlite(path: String)
    case postgres(host: String, port: Int, user: String, password: String?, database: String, tls: Bool)

    public static let `default` = DatabaseURL.sqlite(path: "./kosh.sqlite")

    public init(_ text: String) throws {
        if text.hasPrefix("sqlite://") {
            let path = String(text.dropFirst("sqlite://".count))
            guard !path.isEmpty else { throw StorageError.badURL("sqlite:// needs a path, e.g. sqlite://./kosh.sqlite") }
            self = .sqlite(path: path)
            return
        }
        for scheme in ["postgres://", "postgresql://"] where text.hasPrefix(scheme) {
            var rest = Substring(text.dropFirst(scheme.count))
            var tls = false
            if let q = rest.firstIndex(of: "?") {
                let query = rest[rest.index(after: q)...]
                tls = query.contains("sslmode=require")
                rest = rest[..<q]
            }
            guard let at = rest.lastIndex(of: "@") else { throw StorageError.badURL("postgres URL needs user@host") }
            let credentials = rest[..<at]
            let hostPart = rest[rest.index(after: at)...]
            let user: String
            var password: String?
            if let colon = credentials.firstIndex(of: ":") {
                user = percentDecode(String(credentials[..<colon]))
                password = percentDecode(String(credentials[credentials.index(after: colon)...]))
            } else {
                user = percentDecode(String(credentials))
            }
            guard let slash = hostPart.firstIndex(of: "/") else { throw StorageError.badURL("postgres URL needs /database") }
            let database = String(hostPart[hostPart.index(after: slash)...])
            let hostPort = hostPart[..<slash]
            var host = String(hostPort)
            var port = 5432
            if let colon = hostPort.lastIndex(of: ":") {
                host = String(hostPort[..<colon])
                guard let p = Int(hostPort[hostPort.index(after: colon)...]) else { throw StorageError.badURL("bad port") }
                port = p
            }
            guard !user.isEmpty, !host.isEmpty, !database.isEmpty else { throw StorageError.badURL("postgres URL needs user, host and database") }
            self = .postgres(host: host, port: port, user: user, password: password, database: database, tls: tls)
            return
        }
        throw StorageError.badURL("expected sqlite://PATH or postgres://user:pass@host:port/db")
    }

    /// The URL with the password hidden, for logs.
    public var redacted: String {
        switch self {
        case .sqlite(let path): "sqlite://\(path)"
        case .postgres(let host, let port, let user, _, let database, _): "postgres://\(user):***@\(host):\(port)/\(database)"
        }
    }
}

func percentDecode(_ s: String) -> String {
    guard s.contains("%") else { return s }
    var bytes: [UInt8] = []
    var iterator = Array(s.utf8).makeIterator()
    while let byte = iterator.next() {
        if byte == UInt8(ascii: "%"), let h = iterator.next(), let l = iterator.next(),
           let value = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) {
            bytes.append(value)
        } else {
            bytes.append(byte)
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

extension StorageError: ConcurrentModificationError {
    public var isConcurrentModification: Bool {
        switch self {
        case .uniqueViolation, .concurrentUpdate: true
        default: false
        }
    }
}

extension SQLValue {
    /// A typed identifier, stored as its text.
    init<Entity>(_ id: ID<Entity>) { self = .text(id.rawValue) }
    init<Entity>(_ id: ID<Entity>?) { self = id.map { .text($0.rawValue) } ?? .null }
}

extension SQLValue {
    /// A moment, stored as its integer (seconds or milliseconds, as the column says).
    init(_ moment: UnixSeconds?) { self = moment.map { .int($0.value) } ?? .null }
    init(_ moment: UnixMillis?) { self = moment.map { .int($0.value) } ?? .null }
}

extension SQLRow {
    func seconds(_ column: String) -> UnixSeconds? { int(column).map { UnixSeconds($0) } }
    func millis(_ column: String) -> UnixMillis? { int(column).map { UnixMillis($0) } }
    func requireSeconds(_ column: String) throws -> UnixSeconds { UnixSeconds(try requireInt(column)) }
    func requireMillis(_ column: String) throws -> UnixMillis { UnixMillis(try requireInt(column)) }
}
