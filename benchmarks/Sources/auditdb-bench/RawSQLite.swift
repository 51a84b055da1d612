import Foundation
import GRDBSQLite

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A bare SQLite connection through the C API: the baseline every AuditDB figure is compared with.
final class RawDB {
    let handle: OpaquePointer
    let path: String

    init(path: String, readOnly: Bool = false) throws {
        var db: OpaquePointer?
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            throw BenchError("sqlite3_open_v2(\(path)) failed: \(rc)")
        }
        handle = db
        self.path = path
    }

    deinit { sqlite3_close_v2(handle) }

    func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let message = err.map { String(cString: $0) } ?? "rc \(rc)"
            sqlite3_free(err)
            throw BenchError("\(message) in: \(sql.prefix(120))")
        }
    }

    func prepare(_ sql: String) throws -> OpaquePointer {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw BenchError("prepare failed (\(String(cString: sqlite3_errmsg(handle)))): \(sql.prefix(120))")
        }
        return stmt
    }

    func int(_ sql: String) throws -> Int64 {
        let stmt = try prepare(sql)
        defer { sqlite3_finalize(stmt) }
        guard sqlite3_step(stmt) == SQLITE_ROW else { throw BenchError("no row: \(sql)") }
        return sqlite3_column_int64(stmt, 0)
    }

    func text(_ sql: String) throws -> String {
        let stmt = try prepare(sql)
        defer { sqlite3_finalize(stmt) }
        guard sqlite3_step(stmt) == SQLITE_ROW, let text = sqlite3_column_text(stmt, 0) else { throw BenchError("no row: \(sql)") }
        return String(cString: text)
    }

    /// Runs a statement that takes no bindings (BEGIN, COMMIT) via a prepared handle.
    func step(_ stmt: OpaquePointer) throws {
        let rc = sqlite3_step(stmt)
        sqlite3_reset(stmt)
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else {
            throw BenchError("step failed: \(String(cString: sqlite3_errmsg(handle)))")
        }
    }
}

/// The DDL the baseline uses: taken verbatim from schema/audit.sql, so the table is the
/// store's table (columns, types, STRICT) and the triggers are the store's triggers.
struct SchemaText {
    let entriesTable: String
    let entriesTriggers: [String]
    /// Every `CREATE INDEX ... ON audit_entries` of the schema (the query indexes of migration
    /// 0003 and the partial origin_ref index), verbatim: what AuditDB's table carries.
    let entriesIndexes: [String]

    init(path: String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        // Statements end with ";" at end of line; strip comment lines first.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("--") }
        var statements: [String] = []
        var current = ""
        for line in lines {
            current += line + "\n"
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.hasSuffix(";") && (t.hasPrefix("BEGIN") || t.hasSuffix("END;") || !current.contains("BEGIN")) {
                statements.append(current.trimmingCharacters(in: .whitespacesAndNewlines))
                current = ""
            }
        }
        guard let table = statements.first(where: { $0.hasPrefix("CREATE TABLE audit_entries ") }) else {
            throw BenchError("no CREATE TABLE audit_entries in \(path)")
        }
        entriesTable = table
        entriesTriggers = statements.filter { $0.hasPrefix("CREATE TRIGGER") && $0.contains(" ON audit_entries") }
        entriesIndexes = statements.filter { $0.hasPrefix("CREATE INDEX") && $0.contains(" ON audit_entries(") }
        guard entriesIndexes.count >= 4 else {
            throw BenchError("expected the audit_entries indexes in \(path), found \(entriesIndexes.count)")
        }
        guard entriesTriggers.count == 3 else {
            throw BenchError("expected 3 audit_entries triggers in \(path), found \(entriesTriggers.count)")
        }
    }

    /// The store's indexes with actor and resource_id indexed plainly (unbucketed TEXT keys),
    /// everything else identical: shows what the `seq >> 14` bucketing buys on append.
    var plainIndexes: [String] {
        entriesIndexes.map {
            $0.replacingOccurrences(of: "((seq >> 14), actor, ", with: "(actor, ")
                .replacingOccurrences(of: "((seq >> 14), resource_id, ", with: "(resource_id, ")
        }
    }

    /// The store's indexes rewritten for `audit_entries_unsigned` (storage comparison).
    var unsignedIndexes: [String] {
        entriesIndexes.map {
            $0.replacingOccurrences(of: " ON audit_entries(", with: " ON audit_entries_unsigned(")
                .replacingOccurrences(of: "CREATE INDEX audit_entries_", with: "CREATE INDEX audit_entries_unsigned_")
        }
    }

    /// The same table without mac, key_version and format_version: what the rows cost unsigned.
    var unsignedTable: String {
        entriesTable
            .replacingOccurrences(of: "CREATE TABLE audit_entries ", with: "CREATE TABLE audit_entries_unsigned ")
            .split(separator: "\n")
            .filter { line in
                let t = line.trimmingCharacters(in: .whitespaces)
                return !(t.hasPrefix("format_version") || t.hasPrefix("key_version") || t.hasPrefix("mac "))
            }
            .joined(separator: "\n")
            .replacingOccurrences(of: "origin_ref     INTEGER,\n)", with: "origin_ref     INTEGER\n)")
    }
}

let rawInsertSQL = """
    INSERT INTO audit_entries(seq, recorded_at, occurred_at, tenant, actor, action, resource_type, resource_id,
        outcome, severity, correlation_id, source, details, origin, origin_ref, format_version, key_version, mac)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
    """

/// Binds and steps row `i` of `rows` as `seq` (texts SQLITE_STATIC from the arena).
@inline(__always)
func rawInsert(
    _ stmt: OpaquePointer, _ rows: RawRows, _ i: Int, seq: Int64,
    arena: UnsafePointer<UInt8>, spans: UnsafePointer<Int>, macs: UnsafePointer<UInt8>
) -> Int32 {
    let s = spans + i * RawRows.textColumns * 2
    @inline(__always) func text(_ index: Int32, _ k: Int) -> Int32 {
        let offset = s[2 * k], length = Int32(s[2 * k + 1])
        return sqlite3_bind_text(stmt, index, UnsafeRawPointer(arena + offset).assumingMemoryBound(to: CChar.self), length, nil)
    }
    var rc = sqlite3_bind_int64(stmt, 1, seq)
    rc |= sqlite3_bind_int64(stmt, 2, rows.recordedAt[i])
    rc |= sqlite3_bind_int64(stmt, 3, rows.occurredAt[i])
    rc |= text(4, 0)
    rc |= text(5, 1)
    rc |= text(6, 2)
    rc |= text(7, 3)
    rc |= text(8, 4)
    rc |= sqlite3_bind_int64(stmt, 9, Int64(rows.outcome[i]))
    rc |= sqlite3_bind_int64(stmt, 10, Int64(rows.severity[i]))
    rc |= sqlite3_bind_null(stmt, 11)
    rc |= sqlite3_bind_null(stmt, 12)
    rc |= text(13, 5)
    rc |= sqlite3_bind_int64(stmt, 14, 0)
    rc |= sqlite3_bind_null(stmt, 15)
    rc |= sqlite3_bind_int64(stmt, 16, 1)
    rc |= sqlite3_bind_int64(stmt, 17, 1)
    rc |= sqlite3_bind_blob(stmt, 18, macs + i * 32, 32, nil)
    let step = rc == SQLITE_OK ? sqlite3_step(stmt) : rc
    sqlite3_reset(stmt)
    return step
}

/// Which secondary indexes a raw baseline table gets.
enum RawIndexes: String {
    /// None: the bare table (the baseline before migration 0003).
    case none
    /// Exactly the store's (schema/audit.sql, verbatim): like for like with AuditDB.
    case same
    /// The store's, but actor and resource_id as plain unbucketed TEXT indexes.
    case plain
}

/// Opens a fresh baseline database with the store's table (and optionally its triggers and indexes).
func makeRawStore(path: String, schema: SchemaText, synchronous: String, triggers: Bool,
                  indexes: RawIndexes = .none) throws -> RawDB {
    removeDatabase(path)
    let db = try RawDB(path: path)
    try db.exec("PRAGMA journal_mode=WAL")
    try db.exec("PRAGMA synchronous=\(synchronous)")
    try db.exec(schema.entriesTable)
    if triggers {
        for t in schema.entriesTriggers { try db.exec(t) }
    }
    switch indexes {
    case .none: break
    case .same: for i in schema.entriesIndexes { try db.exec(i) }
    case .plain:
        let plain = schema.plainIndexes
        guard plain != schema.entriesIndexes else { throw BenchError("could not unbucket the actor/resource indexes") }
        for i in plain { try db.exec(i) }
    }
    return db
}

func removeDatabase(_ path: String) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        try? FileManager.default.removeItem(atPath: path + suffix)
    }
}
