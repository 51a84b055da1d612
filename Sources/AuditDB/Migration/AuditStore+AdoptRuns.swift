import Foundation
import GRDB

/// The earlier runs of an adoption, and what of them the log still holds (resuming,
/// docs/migrations.md "Interrupted runs").
extension AuditStore {
    /// Earlier run entries for this table (SQLite's names ignore ASCII case) and source file; nil
    /// for either: any.
    func runs(table: String?, source: String?) async throws -> [EarlierRun] {
        try await entriesWithAction(Self.adoptionAction).compactMap { entry -> EarlierRun? in
            guard entry.actor == "auditdb", table == nil || entry.resourceId?.lowercased() == table?.lowercased(),
                  let details = entry.detailsJSON,
                  let object = JSONText.members(details),  // details AuditDB itself wrote
                  case .string(let recordedSource)? = object["source"], source == nil || Self.sourceName(recordedSource) == source,
                  case .string(let digest)? = object["sourceDigest"]
            else { return nil }
            return EarlierRun(seq: entry.seq, digest: digest, details: object, source: recordedSource, table: entry.resourceId ?? "")
        }
    }

    /// AuditDB's own entries with `action`, found through its own index (``HoldLog/source(_:)``:
    /// never the planner's choice, so another client's index cannot hide a run entry and make a
    /// run import its rows twice), each verified as read.
    private func entriesWithAction(_ action: String) async throws -> [AuditEntry] {
        let seqs = try await pool.read { db in
            try Int64.fetchAll(db, sql: "SELECT seq FROM audit_entries" + HoldLog.source(try HoldLog.mustReadTable(db))
                                   + " WHERE action >= 'auditdb.' AND action < 'auditdb/' AND action = ? AND seq >= 1 ORDER BY seq",
                               arguments: [action])
        }
        var found: [AuditEntry] = []
        for seq in seqs { found += try await entries(EntryQuery(seqs: seq...seq)) }
        return found
    }

    /// The rows back-signed into run `runSeq` so far, counted from the rows after the run entry
    /// (~0.4 s for 1M rows): AuditDB sets origin_ref only on back-signed rows (origin 1), and
    /// each row's origin is under its MAC, which `verify` checks. Not through the origin_ref
    /// index (~40 ms), which nothing proves before an adoption: an index with one entry too many
    /// or too few would make a resumed run skip a legacy row or import one twice.
    func importedCount(run runSeq: Int64) async throws -> Int {
        try await pool.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_entries NOT INDEXED WHERE seq > ?1 AND origin_ref = ?1",
                             arguments: [runSeq]) ?? 0
        }
    }

    /// Takes the store's adoption lock (`<store>.adopt-lock`, mode 0600): one adoption at a time
    /// per store, across processes and within one. Two runs of the same table at once would each
    /// find no earlier run (or the same unfinished one) and import every row twice. The lock is a
    /// `flock` on a file of its own, never on the store file: closing any descriptor of the store
    /// would drop SQLite's POSIX locks on it. The file stays (removing it could let a third run
    /// lock a new file while the second holds the old one). Held elsewhere, it is waited for up to
    /// the store's busy timeout, as SQLite's own locks are (a child process forked at that moment
    /// holds it too, until it execs). Returns the descriptor to release.
    func takeAdoptionLock() async throws -> Int32 {
        let lockPath = URL(fileURLWithPath: path).resolvingSymlinksInPath().path + ".adopt-lock"
        let deadline = ContinuousClock.now + configuration.lockWait
        while true {
            let fd = Platform.lockExclusively(lockPath, mode: 0o600)
            if fd >= 0 { return fd }
            let code = Platform.errorCode
            guard code == Platform.wouldBlock else {
                throw AuditError(.storage, "cannot open the adoption lock \(lockPath): \(Platform.errorMessage(code))")
            }
            guard ContinuousClock.now < deadline else {
                throw AuditError(.busy, "another adoption into this store is running (it holds \(lockPath)); wait for it to end, then run "
                    + "this again: it finds that run and resumes it, or has nothing left to do")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Whether any row after `runSeq` has expired (a tombstone above it in `audit_expired`).
    func expiredSince(_ runSeq: Int64) async throws -> Bool {
        try await pool.read { db in
            guard try db.tableExists("audit_expired") else { return false }
            return try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM audit_expired WHERE seq > ?)", arguments: [runSeq]) ?? false
        }
    }
}
