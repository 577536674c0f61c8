import KoshCore
import Logging
import PostgresNIO
import Synchronization

/// PostgreSQL through a PostgresNIO connection pool. Transactions run at READ COMMITTED;
/// money changes lock their rows with `SELECT … FOR UPDATE`.
public final class PostgresDatabase: SQLDatabase, @unchecked Sendable {
    public let dialect = SQLDialect.postgres
    let client: PostgresClient
    let runTask: Task<Void, Never>
    let logger: Logger
    let statements: PreparedStatements

    public static func connect(host: String, port: Int, user: String, password: String?, database: String, tls: Bool,
                               logger: Logger, maximumConnections: Int = 20) async throws -> PostgresDatabase {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database,
            tls: tls ? .require(.makeClientConfiguration()) : .disable)
        configuration.options.maximumConnections = maximumConnections
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let task = Task { await client.run() }
        // Let the pool's run loop start before the first lease.
        try? await Task.sleep(for: .milliseconds(20))
        let db = PostgresDatabase(client: client, runTask: task, logger: logger,
                                  statements: PreparedStatements(connectionsKept: 2 * maximumConnections))
        // Fail fast with a clear error when the server is unreachable.
        do {
            _ = try await db.transaction { conn in try await conn.query("SELECT 1 AS one", []) }
        } catch {
            task.cancel()
            throw error
        }
        return db
    }

    init(client: PostgresClient, runTask: Task<Void, Never>, logger: Logger, statements: PreparedStatements) {
        self.client = client
        self.runTask = runTask
        self.logger = logger
        self.statements = statements
    }

    public func transaction<T: Sendable>(_ body: (any SQLConnection) async throws -> T) async throws -> T {
        try await client.withConnection { connection in
            let wrapped = PostgresTransactionConnection(connection: connection, logger: logger, statements: statements)
            _ = try await wrapped.query("BEGIN", [])
            do {
                let result = try await body(wrapped)
                _ = try await wrapped.query("COMMIT", [])
                return result
            } catch {
                _ = try? await wrapped.query("ROLLBACK", [])
                throw error
            }
        }
    }

    public func close() async throws {
        runTask.cancel()
    }
}

/// Named prepared statements per connection: PostgreSQL parses, analyses and plans a
/// statement once per connection instead of on every call (that was a third of its CPU under
/// load). Only plain DML is prepared; BEGIN/COMMIT and DDL (migrations) go unnamed. Entries of
/// connections the pool has closed are dropped once more than `connectionsKept` are known
/// (connection IDs only grow), and a connection keeps at most `maximumPerConnection`.
final class PreparedStatements: Sendable {
    static let maximumPerConnection = 512
    let connectionsKept: Int
    private let cache = Mutex<[PostgresConnection.ID: [String: PreparedQuery]]>([:])

    init(connectionsKept: Int) {
        self.connectionsKept = max(1, connectionsKept)
    }

    static func preparable(_ sql: String) -> Bool {
        let head = sql.utf8.prefix(6).map { $0 | 0x20 }  // lower-case ASCII
        return head.starts(with: Array("select".utf8)) || head.starts(with: Array("insert".utf8))
            || head.starts(with: Array("update".utf8)) || head.starts(with: Array("delete".utf8))
    }

    func statement(_ sql: String, on connection: PostgresConnection) async throws -> PreparedQuery {
        if let cached = cache.withLock({ $0[connection.id]?[sql] }) { return cached }
        let prepared = try await connection.prepare(query: sql).get()
        let evicted = cache.withLock { cache -> [PreparedQuery] in
            if cache[connection.id] == nil, cache.count >= connectionsKept, let oldest = cache.keys.min() {
                cache[oldest] = nil  // a connection the pool closed: the server freed its statements
            }
            var evicted: [PreparedQuery] = []
            if cache[connection.id, default: [:]].count >= Self.maximumPerConnection {
                evicted = Array(cache[connection.id, default: [:]].values)
                cache[connection.id] = [:]
            }
            cache[connection.id, default: [:]][sql] = prepared
            return evicted
        }
        for statement in evicted { try await statement.deallocate().get() }
        return prepared
    }
}

struct PostgresTransactionConnection: SQLConnection {
    let connection: PostgresConnection
    let logger: Logger
    let statements: PreparedStatements
    var dialect: SQLDialect { .postgres }

    /// `?` placeholders become `$1, $2, …`. Kosh's SQL never has a `?` inside a literal.
    static func translate(_ sql: String) -> String {
        guard sql.contains("?") else { return sql }
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var n = 0
        for ch in sql {
            if ch == "?" {
                n += 1
                out += "$\(n)"
            } else {
                out.append(ch)
            }
        }
        return out
    }

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        let translated = Self.translate(sql)
        do {
            if PreparedStatements.preparable(translated) {
                let prepared = try await statements.statement(translated, on: connection)
                let data: [PostgresData] = binds.map { bind in
                    switch bind {
                    case .null: .null
                    case .int(let value): PostgresData(int64: value)
                    case .text(let value): PostgresData(string: value)
                    }
                }
                // PostgresNIO labels these cells with the Describe's format (text) though the
                // values come in binary: read them as binary.
                return try Self.rows(try await prepared.execute(data).get(), binary: true)
            }
            var bindings = PostgresBindings(capacity: binds.count)
            for bind in binds {
                switch bind {
                case .null: bindings.appendNull()
                case .int(let value): bindings.append(value)
                case .text(let value): bindings.append(value)
                }
            }
            var rows: [PostgresRow] = []
            for try await row in try await connection.query(PostgresQuery(unsafeSQL: translated, binds: bindings), logger: logger) {
                rows.append(row)
            }
            return try Self.rows(rows, binary: false)
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StorageError.uniqueViolation(error.serverInfo?[.message] ?? "unique violation")
        } catch let error as PostgresError where error.code == .uniqueViolation {
            throw StorageError.uniqueViolation("\(error)")
        }
    }

    static func rows(_ rows: [PostgresRow], binary: Bool) throws -> [SQLRow] {
        var out: [SQLRow] = []
        out.reserveCapacity(rows.count)
        var layout: SQLColumns?
        for row in rows {
            let columns = layout ?? SQLColumns(row.map(\.columnName))
            layout = columns
            var values: [SQLValue] = []
            values.reserveCapacity(columns.names.count)
            for cell in row {
                guard var bytes = cell.bytes else {
                    values.append(.null)
                    continue
                }
                if binary {
                    values.append(try Self.binaryValue(&bytes, type: cell.dataType, column: cell.columnName))
                    continue
                }
                switch cell.dataType {
                case .int8: values.append(.int(try cell.decode(Int64.self)))
                case .int4: values.append(.int(Int64(try cell.decode(Int32.self))))
                case .int2: values.append(.int(Int64(try cell.decode(Int16.self))))
                case .bool: values.append(.int(try cell.decode(Bool.self) ? 1 : 0))
                default: values.append(.text(try cell.decode(String.self)))
                }
            }
            out.append(SQLRow(layout: columns, values: values))
        }
        return out
    }

    /// A value in PostgreSQL's binary format. Kosh's columns are BIGINT, INTEGER, SMALLINT,
    /// BOOLEAN and TEXT (whose binary form is its UTF-8 bytes).
    static func binaryValue(_ bytes: inout ByteBuffer, type: PostgresDataType, column: String) throws -> SQLValue {
        switch type {
        case .int8:
            guard bytes.readableBytes == 8, let v = bytes.readInteger(as: Int64.self) else { break }
            return .int(v)
        case .int4:
            guard bytes.readableBytes == 4, let v = bytes.readInteger(as: Int32.self) else { break }
            return .int(Int64(v))
        case .int2:
            guard bytes.readableBytes == 2, let v = bytes.readInteger(as: Int16.self) else { break }
            return .int(Int64(v))
        case .bool:
            guard bytes.readableBytes == 1, let v = bytes.readInteger(as: UInt8.self) else { break }
            return .int(v == 0 ? 0 : 1)
        case .text, .varchar, .name, .bpchar:
            return .text(String(buffer: bytes))
        case .void:  // pg_advisory_lock()
            return .null
        default:
            break
        }
        throw StorageError.corrupt("column \(column): unexpected PostgreSQL type \(type) in binary")
    }
}
