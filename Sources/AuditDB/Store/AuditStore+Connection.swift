import Foundation
import GRDB

/// The GRDB configuration of every connection AuditDB opens on a store: defensive mode, no
/// triggers for AuditDB's own statements, durability, the file-size cap and the readers' page cache.
extension GRDB.Configuration {
    static func grdb(_ store: AuditStore.Configuration, readOnly: Bool) -> GRDB.Configuration {
        var config = GRDB.Configuration()
        config.readonly = readOnly
        config.busyMode = .timeout(TimeInterval(store.lockWait.components.seconds)
            + TimeInterval(store.lockWait.components.attoseconds) / 1e18)
        config.maximumReaderCount = 4
        let synchronous = store.durability == .synchronous ? "FULL" : "NORMAL"
        let maximumSize = store.maximumSizeBytes
        let readerCacheKiB = max(1, store.readerCacheBytes / 1024)
        config.prepareDatabase { db in
            guard let connection = db.sqliteConnection else { throw AuditError(.closed, "the connection is closed") }
            // No connection of AuditDB's may corrupt the schema through writable_schema & co.
            try SQLite.setDefensive(connection)
            // The append-only triggers stop every *other* client. AuditDB's own connections only
            // run AuditDB's statements, which always insert the next seq, so they skip the
            // triggers: the INSERT trigger's seq check alone cost ~28% of append throughput
            // (docs/performance.md). Verification never relies on triggers.
            try SQLite.disableTriggers(connection)
            // GRDB's pool sets synchronous = NORMAL after this when it enables WAL mode; the
            // appender sets the mode it needs before its first commit (see Appender.setSynchronous).
            if !readOnly {
                try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
                // Before the pool turns WAL on: a new store then gives the pages that expiry and
                // erasure free back to the file system (releaseFreeSpace). On an existing store it
                // only takes effect at the next VACUUM (compact()). Writer only: the pool's
                // readers are read-only connections.
                //
                // On a store that has it already, SQLite runs the pragma as a write of page 1. It
                // is run then only when the -wal is empty or missing: the pool's WAL setup
                // (GRDB) would otherwise create and drop a table to make the -wal non-empty, a
                // schema change that makes every other connection prepare its statements again.
                // A read-only open (`Configuration.readOnly`) runs none of this.
                if !db.configuration.readonly {
                    let file = try String.fetchOne(db, sql: "SELECT file FROM pragma_database_list WHERE name = 'main'") ?? ""
                    let wal = (try? FileManager.default.attributesOfItem(atPath: file + "-wal")[.size] as? Int) ?? 0
                    if try wal == 0 || Int.fetchOne(db, sql: "PRAGMA auto_vacuum") != 2 {
                        try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
                    }
                }
            }
            if db.configuration.readonly {
                try db.execute(sql: "PRAGMA cache_size = -\(readerCacheKiB)")
            }
            if let maximumSize {
                let pageSize = try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
                _ = try Int.fetchOne(db, sql: "PRAGMA max_page_count = \(max(1, maximumSize / pageSize))")
            }
        }
        return config
    }
}

extension AuditStore {
    /// The pause between two write transactions of a long batched job (expiry, erasure), begun
    /// at `began`: as long as the batch took, from 10 to 100 ms. Another process's writer waits
    /// for the lock in SQLite's busy handler, which sleeps up to 100 ms between tries; a next
    /// batch begun at once would take most of the gaps, and that writer would wait many batches
    /// (seconds) instead of about one. This process's own appends queue between batches anyway.
    /// Returns early if the task is cancelled (the job's check between batches then stops it).
    static func pauseForOtherWriters(after began: ContinuousClock.Instant) async {
        let pause = min(max(ContinuousClock.now - began, .milliseconds(10)), .milliseconds(100))
        do {
            try await Task.sleep(for: pause)
        } catch {
            // Cancelled: the caller's check before its next batch stops the job.
        }
    }
}
