import KoshCore
import Logging
import PostgresNIO

/// PostgreSQL through a PostgresNIO connection pool. Transactions run at READ COMMITTED;
/// money changes lock their rows with `SELECT … FOR UPDATE`.
public final class PostgresDatabase: SQLDatabase, @unchecked Sendable {
    public let dialect = SQLDialect.postgres
    let client: PostgresClient
    let runTask: Task<Void, Never>
    let logger: Logger

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
        let db = PostgresDatabase(client: client, runTask: task, logger: logger)
        // Fail fast with a clear error when the server is unreachable.
        do {
            _ = try await db.transaction { conn in try await conn.query("SELECT 1 AS one", []) }
        } catch {
            task.cancel()
            throw error
        }
        return db
    }

    init(client: PostgresClient, runTask: Task<Void, Never>, logger: Logger) {
        self.client = client
        self.runTask = runTask
        self.logger = logger
    }

    public func transaction<T: Sendable>(_ body: (any SQLConnection) async throws -> T) async throws -> T {
        try await client.withConnection { connection in
            let wrapped = PostgresTransactionConnection(connection: connection, logger: logger)
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

struct PostgresTransactionConnection: SQLConnection {
    let connection: PostgresConnection
    let logger: Logger
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
        var bindings = PostgresBindings(capacity: binds.count)
        for bind in binds {
            switch bind {
            case .null: bindings.appendNull()
            case .int(let value): bindings.append(value)
            case .text(let value): bindings.append(value)
            }
        }
        let query = PostgresQuery(unsafeSQL: Self.translate(sql), binds: bindings)
        var out: [SQLRow] = []
        do {
            let rows = try await connection.query(query, logger: logger)
            var layout: SQLColumns?
            for try await row in rows {
                let columns = layout ?? SQLColumns(row.map(\.columnName))
                layout = columns
                var values: [SQLValue] = []
                values.reserveCapacity(columns.names.count)
                for cell in row {
                    guard cell.bytes != nil else {
                        values.append(.null)
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
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StorageError.uniqueViolation(error.serverInfo?[.message] ?? "unique violation")
        }
        return out
    }
}
