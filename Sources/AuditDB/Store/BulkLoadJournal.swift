import GRDB
import Logging

/// A bulk load's transaction through SQLite's rollback journal instead of the WAL.
///
/// In WAL mode every page of a one-transaction import is written twice: to the WAL, then by the
/// commit's checkpoint into the database file. With the rollback journal, pages past the end of the
/// file as it was when the transaction began are written once, straight into the file; only the
/// pages that existed (the schema, the side tables, a small store's rows) are copied to the
/// journal first. For a 1M-row import that is ~400 MB written once instead of twice
/// (docs/performance.md, "Back-signing through the rollback journal").
///
/// The guarantees stay those of one transaction: a crash or kill leaves a hot journal that SQLite
/// plays back the next time anything opens the store (AuditDB's own open, or the `sqlite3` shell),
/// so nothing of the load remains; the commit is one fsync'd unit.
///
/// What changes is concurrency, which is why it is taken only when nothing else has the store open:
/// SQLite can leave WAL mode only when no other connection, in any process, has the store open
/// (each holds a shared lock on the file), and this does not wait for one. While the load runs,
/// another process's `AuditStore.open` fails with `busy` (GRDB's pool must set WAL mode, which
/// needs the lock) and reads wait or fail instead of reading the store as it was before the load,
/// as they would in WAL mode. The writer switches back to WAL before the write access ends,
/// committed or not. The load commits with `synchronous = EXTRA`, which also syncs the directory
/// after deleting the journal: a committed load cannot come back as a hot journal after a power cut.
struct BulkLoadJournal: Sendable {
    /// The writer's usual busy timeout, restored after the switch (which is tried without waiting).
    var busyTimeoutMilliseconds: Int32

    init(busyTimeout: Duration) {
        busyTimeoutMilliseconds = Int32(clamping: busyTimeout.wholeNanoseconds / 1_000_000)
    }

    /// Switches the writer to the rollback journal if no other connection has the store open;
    /// true if it did. Outside any transaction.
    func enter(_ db: Database) throws -> Bool {
        guard let connection = db.sqliteConnection else { throw AuditError(.closed, "the store's writer connection is closed") }
        SQLite.setBusyTimeout(connection, milliseconds: 0)
        defer { SQLite.setBusyTimeout(connection, milliseconds: busyTimeoutMilliseconds) }
        // Before the switch, so that a failure leaves nothing to undo but a stricter setting.
        try db.execute(sql: "PRAGMA synchronous = EXTRA")
        let switched: Bool
        do {
            switched = try String.fetchOne(db, sql: "PRAGMA journal_mode = DELETE") == "delete"
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            switched = false  // another connection has the store open: the load goes through the WAL
        }
        if !switched { try db.execute(sql: "PRAGMA synchronous = FULL") }  // what the appender set
        return switched
    }

    /// Switches the writer back to WAL after the committed load. A failure here leaves the load
    /// committed, so it says so.
    func leave(_ db: Database) throws {
        do {
            try switchBack(db)
        } catch {
            let cause = AuditError.from(error, while: "switch the store back to WAL mode")
            throw AuditError(
                cause.code,
                "the load committed, but the store could not be switched back to WAL mode (\(cause.message)); "
                    + "close the store and open it again: every open switches it back")
        }
    }

    /// Switches back after a load that failed (and rolled back); `error` is the load's error, the
    /// one reported, so a failure here is logged, not thrown.
    func leave(_ db: Database, after error: any Error, logger: Logger) {
        do {
            try switchBack(db)
        } catch let switchError {
            logger.error(
                "after a failed bulk load (rolled back) the store is still in rollback-journal mode; the next open switches it back to WAL",
                metadata: ["error": "\(switchError)", "load error": "\(error)"])
        }
    }

    private func switchBack(_ db: Database) throws {
        let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
        guard mode == "wal" else { throw AuditError(.storage, "SQLite answered journal mode \(mode ?? "none") instead of wal") }
        try db.execute(sql: "PRAGMA synchronous = FULL")  // what the appender set before enter()
    }
}
