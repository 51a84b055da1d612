import GRDB
import GRDBSQLite
import Synchronization

/// The log's time breaks (docs/FORMAT.md, section 24): the seqs whose `recorded_at` is lower than
/// the `recorded_at` of the seq before them. Between two breaks the log's times are non-decreasing
/// in seq order, which is what lets a time window be found by binary search (QueryExecution+TimeSegments.swift).
enum TimeBreaks {
    static let table = "audit_time_breaks"

    /// Every seq the writer must record as a break, noted while a transaction inserts its rows in
    /// seq order, starting from the head row's time (nil in an empty store: the first row has no
    /// predecessor).
    struct Writer {
        var previous: Int64?
        var breaks: [Int64] = []

        mutating func note(seq: Int64, recordedAt: Int64) {
            if let previous, recordedAt < previous { breaks.append(seq) }
            previous = recordedAt
        }
    }

    /// The breaks of the whole log computed from its rows and tombstones (the fill of migration
    /// 0009, and what `repair-indexes` writes back).
    static let computedSQL = """
        SELECT seq FROM (
            SELECT seq, recorded_at < lag(recorded_at) OVER (ORDER BY seq) AS backwards
            FROM (SELECT seq, recorded_at FROM audit_entries WHERE seq >= 1
                  UNION ALL SELECT seq, recorded_at FROM audit_expired x WHERE \(Tombstone.inLog))
        ) WHERE backwards
        """

    /// Replaces the stored breaks with the computed ones (inside the caller's write transaction,
    /// on an AuditDB connection, which runs without the append-only triggers).
    static func refill(_ db: Database) throws {
        guard try db.tableExists(table) else { return }
        try db.execute(sql: "DELETE FROM audit_time_breaks")
        try db.execute(sql: "INSERT INTO audit_time_breaks(seq) " + computedSQL)
    }
}

extension Appender {
    /// Records the breaks noted while inserting rows, in the same transaction as the rows (every
    /// insert path calls this after its loop: `insertRows`, `insertUnvalidated`).
    func insertTimeBreaks(_ noted: TimeBreaks.Writer, _ db: Database) throws {
        guard !noted.breaks.isEmpty else { return }
        let known = state.withLock { $0.recordsTimeBreaks }
        let records = try known ?? db.tableExists(TimeBreaks.table)
        if known == nil { state.withLock { $0.recordsTimeBreaks = records } }
        guard records else { return }
        let stmt = try db.cachedStatement(sql: "INSERT OR IGNORE INTO audit_time_breaks(seq) VALUES (?)").sqliteStatement
        for seq in noted.breaks {
            defer { SQLite.reset(stmt) }
            try SQLite.bind(stmt, 1, seq)
            guard try !SQLite.step(stmt, while: "record the time break at seq \(seq)") else {
                throw AuditError(.storage, "internal error: the insert of time break \(seq) returned a row")
            }
        }
    }
}

extension AuditStore {
    /// Test seam: shifts the clock that stamps `recorded_at` by `microseconds` (negative: back in
    /// time), for tests of time breaks. 0 restores the real clock.
    func setClockOffsetForTesting(_ microseconds: Int64) {
        appender.clockOffset.store(microseconds, ordering: .relaxed)
    }
}
