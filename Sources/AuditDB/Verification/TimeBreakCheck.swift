import GRDB
import GRDBSQLite

/// Verification step 11 (docs/FORMAT.md, section 24): `audit_time_breaks` holds exactly the seqs
/// at which `recorded_at` goes backwards, over the rows and the tombstones of expired rows in seq
/// order. Queries trust the breaks to bound a time window by binary search, so a missing break
/// could hide rows from an answer: it is `index-mismatch` at the row that needs it. A break where
/// time does not go backwards, or at a seq with no row, is `foreign-row` at that seq.
///
/// Rows that the row scan reported as forged or unreadable, tombstones of an expiry entry that step 9
/// reported (`expiry-tampered`: their `recorded_at` is authenticated only by that entry), and the
/// elements right after either (whose step is measured from them) are not judged here: a forged
/// `recorded_at` is reported once, as what it is. Nor is an element after a gap in the seqs (rows
/// removed: `missing-rows`).
///
/// A damaged page met here is thrown, as in every step after the row scan (FORMAT.md section 11).
enum TimeBreakCheck {
    /// The kinds of row findings after which a row's `recorded_at` cannot be trusted.
    static let untrustedKinds: Set<Finding.Kind> = [.macMismatch, .malformedRow, .unknownKeyVersion, .chainBreak]

    /// The log's elements: rows, and tombstones at seqs without a row, merged in seq order (both
    /// are read in rowid order; a tombstone costs one rowid lookup in audit_entries).
    static let logTimesSQL = """
        SELECT seq, recorded_at FROM audit_entries WHERE seq >= ?1 AND seq <= ?2
        UNION ALL SELECT seq, recorded_at FROM audit_expired x WHERE seq >= ?1 AND seq <= ?2
            AND NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.seq = x.seq)
        ORDER BY seq
        """

    /// The findings for the rows from `from` (nil: a full pass, from seq 1) to `last`, and for
    /// breaks outside the log. An incremental pass also checks the step from the row before `from`.
    static func findings(_ db: Database, from: Int64?, upTo last: Int64, earlier: [Finding]) throws -> [Finding] {
        guard try db.tableExists(TimeBreaks.table), try db.tableExists("audit_entries"), try db.tableExists("audit_expired")
        else { return [] }
        let start = max(1, from ?? 1)
        var findings: [Finding] = []
        let untrusted = earlier.filter { untrustedKinds.contains($0.kind) }.compactMap(\.seqs).sorted { $0.lowerBound < $1.lowerBound }
        let tamperedEntries = Set(earlier.filter { $0.kind == .expiryTampered }.compactMap(\.firstSeq))
        var untrustedTombstones = Set<Int64>()
        for entry in tamperedEntries {
            untrustedTombstones.formUnion(try Int64.fetchAll(db, sql: "SELECT seq FROM audit_expired WHERE expiry_seq = ?", arguments: [entry]))
        }
        var untrustedIndex = 0
        func isUntrusted(_ seq: Int64) -> Bool {
            if untrustedTombstones.contains(seq) { return true }
            while untrustedIndex < untrusted.count, untrusted[untrustedIndex].upperBound < seq { untrustedIndex += 1 }
            var index = untrustedIndex
            while index < untrusted.count, untrusted[index].lowerBound <= seq {
                if untrusted[index].contains(seq) { return true }
                index += 1
            }
            return false
        }
        func foreign(_ seq: Int64, _ why: String, or cause: String = "") {
            findings.append(Finding(kind: .foreignRow, seqs: seq...seq,
                                    message: "audit_time_breaks holds seq \(seq), \(why): inserted by another SQLite client\(cause)"))
        }
        // A damaged page (of audit_time_breaks, or one of the log the row scan met already) is
        // thrown, never swallowed: the row scan never reads audit_time_breaks, so nothing else
        // would report damage there.
        // Breaks outside the log. The log's end is read again in this snapshot: rows appended
        // since the pass read it (`last`) may have breaks of their own, judged by the next pass.
        let end = max(last, try Int64.fetchOne(db, sql: "SELECT ifnull(max(seq), 0) FROM audit_entries NOT INDEXED") ?? 0)
        for seq in try Int64.fetchAll(db, sql: "SELECT seq FROM audit_time_breaks WHERE seq < 1 OR seq > ? ORDER BY seq LIMIT 1000",
                                      arguments: [end]) {
            foreign(seq, "which is outside the log (seq 1...\(end))",
                    or: seq > end ? ", or left behind when the rows up to it were cut from the log's end" : "")
        }
        guard start <= last else { return findings }
        let breaks = try Int64.fetchAll(db, sql: "SELECT seq FROM audit_time_breaks WHERE seq >= ? AND seq <= ? ORDER BY seq",
                                        arguments: [start, last])
        var nextBreak = 0
        let before = try predecessor(db, of: start)
        var previous = before?.time
        var previousSeq = before?.seq
        // isUntrusted only moves forward: asked once per element, in seq order.
        var previousUntrusted = previousSeq.map(isUntrusted) ?? false
        // Cached: the cache keeps the statement alive (and unfinalized) while it is stepped here.
        let stmt = try db.cachedStatement(sql: logTimesSQL).sqliteStatement
        defer { SQLite.reset(stmt) }
        try SQLite.bind(stmt, 1, start)
        try SQLite.bind(stmt, 2, last)
        while try SQLite.step(stmt, while: "read the log's recorded times") {
            let seq = SQLite.int64(stmt, 0), time = SQLite.int64(stmt, 1)
            while nextBreak < breaks.count, breaks[nextBreak] < seq {
                foreign(breaks[nextBreak], "where the log has no row")
                nextBreak += 1
            }
            let recorded = nextBreak < breaks.count && breaks[nextBreak] == seq
            if recorded { nextBreak += 1 }
            let backwards = previous.map { time < $0 } ?? false
            // After a gap (missing-rows, step 4) the step is not the writer's: not judged either.
            let adjacent = previousSeq.map { $0 == seq - 1 } ?? true
            let untrustedHere = isUntrusted(seq)
            let judged = adjacent && !untrustedHere && !previousUntrusted
            if judged && backwards && !recorded {
                findings.append(Finding(
                    kind: .indexMismatch, seqs: seq...seq,
                    message: "row \(seq) was recorded before row \(previousSeq ?? seq - 1) (recorded_at goes backwards) but audit_time_breaks lacks it: a query by recorded time could miss rows. Run `auditdb repair-indexes`"))
            } else if judged && recorded && !backwards {
                foreign(seq, "where recorded_at does not go backwards")
            }
            previous = time
            previousSeq = seq
            previousUntrusted = untrustedHere
        }
        for seq in breaks[nextBreak...] { foreign(seq, "where the log has no row") }
        return findings
    }

    /// The seq and recorded time of the last row or tombstone before `seq` (nil if there is none).
    private static func predecessor(_ db: Database, of seq: Int64) throws -> (seq: Int64, time: Int64)? {
        guard seq > 1 else { return nil }
        // recorded_at as the scan below reads it (sqlite3_column_int64: NULL and text that is not
        // a number are 0), so that a tampered type is an integer here too, never a decoding trap.
        return try Row.fetchOne(db, sql: """
            SELECT seq, coalesce(CAST(recorded_at AS INTEGER), 0) FROM (
                SELECT * FROM (SELECT seq, recorded_at FROM audit_entries NOT INDEXED WHERE seq >= 1 AND seq < ?1 ORDER BY seq DESC LIMIT 1)
                UNION ALL
                SELECT * FROM (SELECT seq, recorded_at FROM audit_expired x WHERE seq >= 1 AND seq < ?1
                               AND NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.seq = x.seq) ORDER BY seq DESC LIMIT 1)
            ) ORDER BY seq DESC LIMIT 1
            """, arguments: [seq]).map { ($0[0], $0[1]) }
    }
}
