import CAuditCore
import CSodium
import Foundation
import GRDB
import GRDBSQLite

/// Proves that every index AuditDB reads through holds exactly the entries its rows imply: no
/// entry missing, extra or altered (docs/FORMAT.md, section 11 step 7). Queries, `status` and
/// adoption read through these indexes, so a b-tree edited by hand (a flipped byte in a key, an
/// index rebuilt without some rows) would otherwise hide rows from an answer that still looks
/// verified.
///
/// Each side folds its entries into an `adb_index_digest` keyed with a random key per pass: the
/// table side from the rows the verifier reads anyway (`adb_index_digest_add_parsed` in the C scan
/// loop, `adb_index_digest_add_row` for rows the Swift path reports), the index side from one
/// covering scan of each index folded inside SQLite by the `auditdb_index_digest` aggregate. A full
/// pass covers every entry. An incremental pass covers the entries of the rows it checks: every
/// such entry must be present and unaltered; an extra entry outside the keys and times of those
/// rows is left to the next full pass.
struct IndexProof: Sendable {
    struct Index: Sendable {
        let id: Int32
        let name: String
        /// The index's key columns as stored (for the digest's arguments).
        let keyColumns: String
        /// The partial-index condition that lets SQLite use the index (and implies its WHERE).
        let condition: String
        /// What the pass's seq bounds apply to: the rowid, or the index's own stored seq key where
        /// it has one (`seq >> 0`), so that an entry whose key was moved into the bounds is counted
        /// whatever row it points at.
        var seqBound = "seq"

        /// A covering scan of the index folded by `auditdb_index_digest`: `?1` = the pass key,
        /// `?2` = highest seq, then `extra` (which may use `?3`...`?6`).
        func sql(_ extra: String) -> String {
            "SELECT auditdb_index_digest(?1, \(id), \(keyColumns), seq) FROM audit_entries INDEXED BY \(name) WHERE \(condition) AND \(seqBound) <= ?2\(extra)"
        }
    }

    static let indexes: [Index] = [
        // Migrations 0003 and 0011: bucketed by seq >> 14, ordered (key, seq >> 0) within a bucket,
        // the filter columns after them; the covering scan reads both key expressions as stored.
        Index(id: Int32(ADB_INDEX_ACTOR), name: "audit_entries_actor",
              keyColumns: "seq >> 14, actor, seq >> 0, outcome, severity, action",
              condition: "actor IS NOT NULL", seqBound: QueryExecution.seqKey),
        Index(id: Int32(ADB_INDEX_RESOURCE), name: "audit_entries_resource",
              keyColumns: "seq >> 14, resource_id, seq >> 0, outcome, severity, action",
              condition: "resource_id IS NOT NULL", seqBound: QueryExecution.seqKey),
        Index(id: Int32(ADB_INDEX_TENANT_TIME), name: "audit_entries_tenant_time", keyColumns: "tenant, recorded_at",
              condition: "tenant IS NOT NULL"),
        Index(id: Int32(ADB_INDEX_RECORDED_AT), name: "audit_entries_recorded_at", keyColumns: "recorded_at", condition: "1"),
        Index(id: Int32(ADB_INDEX_ENGINE), name: "audit_entries_engine", keyColumns: "action",
              condition: "action >= 'auditdb.' AND action < 'auditdb/'"),
        Index(id: Int32(ADB_INDEX_ORIGIN_REF), name: "audit_entries_origin_ref", keyColumns: "origin_ref",
              condition: "origin_ref IS NOT NULL"),
        // Migrations 0008 and 0010: ordered (tenant, seq >> 0), the filter columns after them. The
        // covering scan reads the key `seq >> 0` as stored; the last argument, `seq`, is the rowid.
        Index(id: Int32(ADB_INDEX_TENANT_SEQ), name: "audit_entries_tenant_seq",
              keyColumns: "tenant, seq >> 0, outcome, severity, action",
              condition: "tenant IS NOT NULL", seqBound: QueryExecution.seqKey),
    ]

    /// A fresh digest with a random key (the same key must be used on both sides of one pass).
    static func emptyDigest(key: [UInt8]) -> adb_index_digest {
        var digest = adb_index_digest()
        adb_index_digest_init(&digest, key)
        return digest
    }

    static func randomKey() -> [UInt8] {
        var key = [UInt8](repeating: 0, count: 16)
        randombytes_buf(&key, key.count)
        return key
    }

    /// The indexes whose definition in the file is exactly AuditDB's (others are reported by the
    /// schema check and not scanned: a changed definition cannot be read as ours).
    static func provable(_ db: Database) throws -> [Index] {
        try indexes.filter { try isExact(db, $0.name) }
    }

    /// Whether the index `name` is in the file with exactly AuditDB's definition.
    static func isExact(_ db: Database, _ name: String) throws -> Bool {
        guard let expected = try StoreSchema.allKnownObjects.first(where: { $0.type == "index" && $0.name == name }),
              let row = try Row.fetchOne(db, sql: "SELECT tbl_name, sql FROM sqlite_schema WHERE type = 'index' AND name = ?",
                                         arguments: [name])
        else { return false }
        return row.stored("tbl_name", as: String.self) == expected.table && row.stored("sql", as: String.self) == expected.sql
    }

    /// Adds the entries of the rows below seq 1 (they are in the indexes too; full passes only).
    static func addRowsBelowOne(_ db: Database, into digest: inout adb_index_digest) throws {
        let statement = try db.makeStatement(sql: try RowLayout.select(db) + " NOT INDEXED WHERE seq < 1")
        let stmt = statement.sqliteStatement
        defer { SQLite.reset(stmt) }
        while try SQLite.step(stmt, while: "read rows below seq 1") {
            adb_index_digest_add_row(&digest, stmt)
        }
    }

    /// What a full pass found in an index besides its digest (``scanAll(_:index:key:upTo:last:into:)``).
    struct Extra: Sendable {
        /// Entries above `last`, the highest seq of the pass's snapshot.
        var beyond: Int64 = 0
        /// Entries of the b-tree that the covering scan did not read: its condition excludes them.
        var outside: Int64 = 0
    }

    /// A full pass over `index`: the digest of its entries up to `upTo`; how many entries it
    /// holds above `last`, the highest seq of this snapshot: no row implies those (an entry
    /// planted for a row yet to come, which a query would follow once that seq is written); and
    /// how many it holds that the scan does not read. Entries between `upTo` and `last` belong to
    /// rows appended since the pass began; the next pass checks them. One covering scan of the
    /// index serves the first two.
    ///
    /// The covering scan repeats the index's condition (SQLite uses a partial index only then),
    /// and SQLite turns a condition on the first key column into a seek: an entry outside it
    /// (an index rebuilt under a wider condition, then given its text back) is never read. So
    /// the b-tree's cells are counted too (`dbstat`: every cell of an index b-tree's pages,
    /// interior and leaf, is one entry), and any more than the scan read are `outside`.
    static func scanAll(_ db: Database, index: Index, key: [UInt8], upTo: Int64, last: Int64,
                        into digest: inout adb_index_digest) throws -> Extra
    {
        let sql = """
            SELECT auditdb_index_digest(?1, \(index.id), \(index.keyColumns), seq) FILTER (WHERE \(index.seqBound) <= ?2),
                   count(*) FILTER (WHERE \(index.seqBound) > ?3), count(*)
            FROM audit_entries INDEXED BY \(index.name) WHERE \(index.condition)
            """
        let counts = try fold(db, index: index, sql: sql, key: key, bindings: [upTo, last], into: &digest)
        let cells = try cellCount(db, index: index.name)
        return Extra(beyond: counts[0], outside: max(0, cells - counts[1]))
    }

    /// The number of entries in the b-tree of index `name`: the cells of all its pages.
    static func cellCount(_ db: Database, index name: String) throws -> Int64 {
        do {
            return try Int64.fetchOne(db, sql: "SELECT coalesce(sum(ncell), 0) FROM dbstat WHERE name = ?", arguments: [name]) ?? 0
        } catch let error as DatabaseError where error.message?.hasPrefix("no such table") == true {
            throw AuditError(.storage, "this SQLite library has no dbstat virtual table (SQLITE_ENABLE_DBSTAT_VTAB), which a full verification needs to count the entries of index \(name): build AuditDB against a SQLite library that has it (the system library of Debian, Ubuntu and macOS does)")
        }
    }

    /// Scans `index` for the entries of rows `from...upTo` (an incremental pass).
    static func scan(_ db: Database, index: Index, key: [UInt8], from: Int64, upTo: Int64,
                     into digest: inout adb_index_digest) throws
    {
        let range = " AND seq >= ?3"
        switch index.id {
        case Int32(ADB_INDEX_ACTOR), Int32(ADB_INDEX_RESOURCE):
            // Bucketed by seq >> 14: only the buckets of the new rows, and in them the range of the
            // stored key seq >> 0 (as for the tenant index below).
            try fold(db, index: index,
                     sql: index.sql(" AND (seq >> 14) >= (?3 >> 14) AND (seq >> 14) <= (?2 >> 14) AND \(index.seqBound) >= ?3"),
                     key: key, bindings: [upTo, from], into: &digest)
        case Int32(ADB_INDEX_RECORDED_AT):
            guard let (lo, hi) = try window(db, column: "recorded_at", from: from, upTo: upTo) else { return }
            try fold(db, index: index, sql: index.sql(" AND recorded_at >= ?4 AND recorded_at <= ?5" + range),
                     key: key, bindings: [upTo, from, lo, hi], into: &digest)
        case Int32(ADB_INDEX_ORIGIN_REF):
            guard let (lo, hi) = try window(db, column: "origin_ref", from: from, upTo: upTo) else { return }
            try fold(db, index: index, sql: index.sql(" AND origin_ref >= ?4 AND origin_ref <= ?5" + range),
                     key: key, bindings: [upTo, from, lo, hi], into: &digest)
        case Int32(ADB_INDEX_TENANT_TIME):
            // One seek per tenant of the new rows, within their recorded_at window.
            guard let (lo, hi) = try window(db, column: "recorded_at", from: from, upTo: upTo) else { return }
            for tenant in try tenants(db, from: from, upTo: upTo) {
                try fold(db, index: index, sql: index.sql(" AND tenant = ?6 AND recorded_at >= ?4 AND recorded_at <= ?5" + range),
                         key: key, bindings: [upTo, from, lo, hi], text: tenant, into: &digest)
            }
        case Int32(ADB_INDEX_TENANT_SEQ):
            // One seek per tenant of the new rows: their part of the index is the range of the
            // stored key seq >> 0, whatever rows its entries point at (an entry of theirs whose key
            // was moved out of it is missing; another row's entry moved into it is extra).
            for tenant in try tenants(db, from: from, upTo: upTo) {
                try fold(db, index: index, sql: index.sql(" AND tenant = ?6 AND \(index.seqBound) >= ?3"),
                         key: key, bindings: [upTo, from], text: tenant, into: &digest)
            }
        default:
            try fold(db, index: index, sql: index.sql(range), key: key, bindings: [upTo, from], into: &digest)
        }
    }

    /// The distinct TEXT tenants of rows `from...upTo`, as their stored bytes (a NUL inside one is
    /// kept: a Swift string read back from SQLite would end there, and seek another tenant).
    private static func tenants(_ db: Database, from: Int64, upTo: Int64) throws -> [[UInt8]] {
        try Data.fetchAll(
            db, sql: "SELECT DISTINCT CAST(tenant AS BLOB) FROM audit_entries WHERE seq >= ? AND seq <= ? AND typeof(tenant) = 'text'",
            arguments: [from, upTo]).map { Array($0) }
    }

    /// The smallest and largest integer value of `column` among rows `from...upTo`.
    private static func window(_ db: Database, column: String, from: Int64, upTo: Int64) throws -> (Int64, Int64)? {
        let row = try Row.fetchOne(
            db, sql: "SELECT min(\(column)), max(\(column)) FROM audit_entries WHERE seq >= ? AND seq <= ? AND typeof(\(column)) = 'integer'",
            arguments: [from, upTo])
        guard let lo = row?.stored(0, as: Int64.self), let hi = row?.stored(1, as: Int64.self) else { return nil }
        return (lo, hi)
    }

    /// Runs one digest query (`?1` = key, then `bindings` from `?2`, `text` as `?6`) and adds its
    /// result; returns its other columns (integers), if it has any.
    @discardableResult
    private static func fold(_ db: Database, index: Index, sql: String, key: [UInt8], bindings: [Int64], text: [UInt8]? = nil,
                             into digest: inout adb_index_digest) throws -> [Int64]
    {
        let statement = try db.makeStatement(sql: sql)
        let stmt = statement.sqliteStatement
        defer { SQLite.reset(stmt) }
        try SQLite.bind(stmt, 1, blob: key)
        for (offset, value) in bindings.enumerated() { try SQLite.bind(stmt, Int32(offset + 2), value) }
        if let text { try SQLite.bind(stmt, 6, textBytes: text) }
        guard try SQLite.step(stmt, while: "scan index \(index.name)") else {
            throw AuditError(.storage, "scanning index \(index.name) gave no digest")
        }
        guard let result = SQLite.blob(stmt, 0), result.count == Int(ADB_INDEX_DIGEST_RESULT) else {
            throw AuditError(.storage, "scanning index \(index.name) gave an unexpected digest")
        }
        adb_index_digest_absorb(&digest, index.id, result)
        return (1..<max(1, sqlite3_column_count(stmt))).map { SQLite.int64(stmt, $0) }
    }

    /// The index side of one pass: the digest of every provable index's entries for rows
    /// `from...upTo` (`from` nil: all), or the corruption that stopped a scan.
    struct Side: Sendable {
        var proved: [Index] = []
        var digest: adb_index_digest
        var corruption: Finding?
        /// Per index of a full pass that holds entries above the last row of its snapshot: how
        /// many, and that last seq (``scanAll(_:index:key:upTo:last:into:)``).
        var beyond: [Int32: (count: Int64, last: Int64)] = [:]
        /// Per index of a full pass whose b-tree holds entries its condition excludes: how many.
        var outside: [Int32: Int64] = [:]

        /// Both parts of an index side in one.
        func merged(with other: Side) -> Side {
            var out = self
            var theirs = other.digest
            adb_index_digest_merge(&out.digest, &theirs)
            out.proved += other.proved
            out.corruption = corruption ?? other.corruption
            out.beyond.merge(other.beyond) { a, _ in a }
            out.outside.merge(other.outside) { a, _ in a }
            return out
        }

        /// The findings of comparing with the table side of the same pass.
        func findings(table: adb_index_digest) -> [Finding] {
            if let corruption { return [corruption] }
            return IndexProof.findings(table: table, index: digest, proved: proved, beyond: beyond, outside: outside)
        }

        /// Whether this pass proved index `id`: it was provable, read without corruption, in key
        /// order, and its entries are exactly the table side's.
        func proves(_ id: Int32, table: adb_index_digest) -> Bool {
            guard corruption == nil, let index = proved.first(where: { $0.id == id }) else { return false }
            return IndexProof.findings(table: table, index: digest, proved: [index], beyond: beyond, outside: outside).isEmpty
        }
    }

    /// The index side for the indexes whose number is `part` modulo `parts` (two connections
    /// scan in parallel: part 0 holds actor, tenant + time and tenant + seq, part 1 resource and time).
    static func indexSide(_ db: Database, key: [UInt8], from: Int64?, upTo: Int64, part: Int32 = 0, parts: Int32 = 1) throws -> Side {
        var side = Side(digest: emptyDigest(key: key))
        side.proved = try provable(db).filter { $0.id % parts == part }
        guard let connection = db.sqliteConnection else { throw AuditError(.closed, "the connection is closed") }
        try SQLite.registerIndexDigest(connection)
        // A full pass also looks above the last row of this snapshot (scanAll).
        let last = from == nil ? max(upTo, try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries NOT INDEXED") ?? 0) : upTo
        for index in side.proved {
            do {
                if let from {
                    try scan(db, index: index, key: key, from: from, upTo: upTo, into: &side.digest)
                } else {
                    let extra = try scanAll(db, index: index, key: key, upTo: upTo, last: last, into: &side.digest)
                    if extra.beyond > 0 { side.beyond[index.id] = (extra.beyond, last) }
                    if extra.outside > 0 { side.outside[index.id] = extra.outside }
                }
            } catch let error as DatabaseError where SQLite.isDamage(error) {
                side.corruption = Finding(kind: .corruption, seqs: nil,
                                          message: "SQLite cannot read index \(index.name): \(error.message ?? "corrupt")")
                return side
            } catch let error as AuditError where error.code == .corrupt {
                side.corruption = Finding(kind: .corruption, seqs: nil,
                                          message: "SQLite cannot read index \(index.name): \(error.message)")
                return side
            }
        }
        return side
    }

    /// One `index-mismatch` finding per index whose two sides differ, or whose entries the index
    /// side met out of key order.
    static func findings(table: adb_index_digest, index: adb_index_digest, proved: [Index],
                         beyond: [Int32: (count: Int64, last: Int64)] = [:], outside: [Int32: Int64] = [:]) -> [Finding] {
        var table = table, index = index
        return proved.compactMap { entry in
            let disordered = withUnsafeBytes(of: index.disordered) { $0[Int(entry.id)] } != 0
            if disordered {
                let rowid = withUnsafeBytes(of: index.disorder_at) { $0.load(fromByteOffset: Int(entry.id) * 8, as: Int64.self) }
                return Finding(
                    kind: .indexMismatch, seqs: nil,
                    message: "index \(entry.name) is not in key order (its entry for rowid \(rowid) does not sort after the entry before it): the b-tree was rebuilt in another order, so seeks through it miss rows that are there. The rows themselves are checked separately; rebuild the index with `auditdb repair-indexes` once you have kept a copy of the file as evidence")
            }
            guard adb_index_digest_equal(&table, &index, entry.id) != 1 else {
                // Entries above the last row first: queries follow them once that seq is written.
                guard let (count, last) = beyond[entry.id] else {
                    guard let count = outside[entry.id] else { return nil }
                    return Finding(
                        kind: .indexMismatch, seqs: nil,
                        message: "index \(entry.name) holds \(count) entr\(count == 1 ? "y" : "ies") that its own condition (WHERE \(entry.condition)) excludes, which no row implies: the index was rebuilt under another definition, then given its text back. Queries do not reach them, but the file was written by another SQLite client. Rebuild the index with `auditdb repair-indexes` once you have kept a copy of the file as evidence")
                }
                return Finding(
                    kind: .indexMismatch, seqs: nil,
                    message: "index \(entry.name) holds \(count) entr\(count == 1 ? "y" : "ies") for seqs above the last row (seq \(last)), which no row implies (planted for a row yet to come?): a query through it would return that row under keys it does not have once the seq is written. Rebuild the index with `auditdb repair-indexes` once you have kept a copy of the file as evidence")
            }
            let expected = withUnsafeBytes(of: table.count) { $0.load(fromByteOffset: Int(entry.id) * 8, as: UInt64.self) }
            let found = withUnsafeBytes(of: index.count) { $0.load(fromByteOffset: Int(entry.id) * 8, as: UInt64.self) }
            let counts = expected == found
                ? "\(found) entries, as many as the rows imply, but some are altered"
                : "\(found) entries where the rows imply \(expected)"
            return Finding(
                kind: .indexMismatch, seqs: nil,
                message: "index \(entry.name) does not hold exactly the entries of the log's rows (\(counts)): queries through it could miss rows or return wrong ones. The rows themselves are checked separately; rebuild the index with `auditdb repair-indexes` once you have kept a copy of the file as evidence")
        }
    }
}
