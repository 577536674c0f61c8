/// One row to write, each column named next to its value, so a column list and its values
/// cannot drift apart: every INSERT and the wide UPDATEs are built from one.
///
///     let record: SQLRecord = ["id": .text(event.id), "created_at": .int(event.createdAt)]
///     try await conn.query(record.insertSQL(into: "events"), record.binds)
///
/// A statement's text depends only on the table and the column names, never on the values:
/// both adapters cache prepared statements by their text, so a call site keeps one column list
/// (a `nil` is bound as `.null`, never left out).
struct SQLRecord: ExpressibleByDictionaryLiteral {
    /// The column names, in statement order.
    private(set) var columns: [String] = []
    /// Per column, what the statement writes: `?` for a bound value, or an SQL expression.
    private(set) var placeholders: [String] = []
    /// The bound values, in the order of the `?`s.
    private(set) var binds: [SQLValue] = []

    init(dictionaryLiteral elements: (String, SQLValue)...) {
        columns.reserveCapacity(elements.count)
        placeholders.reserveCapacity(elements.count)
        binds.reserveCapacity(elements.count)
        for (column, value) in elements { append(column, value) }
    }

    /// Adds a column with a bound value.
    mutating func append(_ column: String, _ value: SQLValue) {
        appendColumn(column, placeholder: "?")
        binds.append(value)
    }

    /// Adds a column set by an SQL expression the database evaluates (its clock), not bound.
    mutating func append(_ column: String, sql expression: String) {
        precondition(!expression.contains("?"), "Invalid state: an SQL expression with a placeholder for column \(column)")
        appendColumn(column, placeholder: expression)
    }

    private mutating func appendColumn(_ column: String, placeholder: String) {
        assert(!columns.contains(column), "column \(column) named twice")
        columns.append(column)
        placeholders.append(placeholder)
    }

    /// Both records' columns, `lhs`'s first (the columns fixed at creation, then those an update writes).
    static func + (lhs: SQLRecord, rhs: SQLRecord) -> SQLRecord {
        var record = lhs
        for (column, placeholder) in zip(rhs.columns, rhs.placeholders) { record.appendColumn(column, placeholder: placeholder) }
        record.binds += rhs.binds
        return record
    }

    /// `INSERT INTO table (a, b) VALUES (?, ?)`; bind `binds`.
    func insertSQL(into table: String) -> String {
        "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES \(valuesTuple)"
    }

    /// `UPDATE table SET a = ?, b = ?`: the caller adds its WHERE clause and binds its values after `binds`.
    func updateSQL(_ table: String) -> String {
        "UPDATE \(table) SET " + zip(columns, placeholders).map { "\($0) = \($1)" }.joined(separator: ", ")
    }

    /// `(?, ?)`: this record's VALUES tuple.
    var valuesTuple: String { "(" + placeholders.joined(separator: ", ") + ")" }

    /// One multi-row INSERT, `INSERT INTO table (a, b) VALUES (?, ?), (?, ?)`, and its binds.
    /// Every record names the same columns in the same order.
    static func insert(into table: String, _ records: some Collection<SQLRecord>) -> (sql: String, binds: [SQLValue]) {
        guard let first = records.first else { preconditionFailure("Invalid state: an INSERT of no rows into \(table)") }
        var binds: [SQLValue] = []
        binds.reserveCapacity(records.count * first.binds.count)
        for record in records {
            precondition(record.columns == first.columns && record.placeholders == first.placeholders,
                         "Invalid state: rows of one INSERT into \(table) name different columns")
            binds += record.binds
        }
        let tuple = first.valuesTuple
        let sql = "INSERT INTO \(table) (\(first.columns.joined(separator: ", "))) VALUES "
            + Array(repeating: tuple, count: records.count).joined(separator: ", ")
        return (sql, binds)
    }
}
