import Foundation
import GRDB
import Synchronization

/// What ``AuditStore/releaseFreeSpace(pagesPerStep:)`` or ``AuditStore/compact()`` did to the
/// store file.
public struct SpaceReport: Sendable, Hashable {
    /// The database file's size before, in bytes (the `-wal` file not included).
    public let fileBytesBefore: Int64
    /// The database file's size after, in bytes. Pages given back inside the WAL leave the file
    /// at the next complete WAL checkpoint, so this can lag until then.
    public let fileBytesAfter: Int64
    /// Free pages given back to the file system (moved to the end of the file and cut off).
    public let pagesReleased: Int
    /// Free pages left inside the file (0 unless the store cannot release space online; see
    /// ``incrementalVacuum``).
    public let freePagesLeft: Int
    /// Whether the store releases space online (`auto_vacuum = INCREMENTAL`). Stores created
    /// before AuditDB set it need one ``AuditStore/compact()``.
    public let incrementalVacuum: Bool
}

extension AuditStore {
    /// Gives the file's free pages (left by expiry, or erasure) back to the file system while the
    /// store stays open: `PRAGMA incremental_vacuum` in steps of `pagesPerStep` pages, each its own
    /// write transaction, so an append waits at most one step (docs/retention.md, "Disk space").
    ///
    /// Stores that ``create(at:keys:configuration:)`` makes release space online
    /// (`auto_vacuum = INCREMENTAL`). A store created before AuditDB set that does nothing here
    /// (its free pages are reused by later appends) until one ``compact()``.
    ///
    /// - Throws: ``AuditError`` `closed`, storage errors.
    @discardableResult
    public func releaseFreeSpace(pagesPerStep: Int = 2048) async throws -> SpaceReport {
        guard pagesPerStep >= 1 else { throw AuditError.invalid("pagesPerStep", "must be at least 1") }
        try refuseIfClosed("release free space")
        let before = try fileBytes()
        var released = 0
        var state = try await spaceState()
        if state.incremental {
            // Each step is one write; appends and other writers run between steps.
            while state.free > 0 {
                let step = min(pagesPerStep, state.free)
                do {
                    state = try await pool.writeWithoutTransaction { db in
                        walScrubPending.withLock { $0 = true }  // the pages cut off leave the file when the WAL is emptied
                        _ = try Row.fetchAll(db, sql: "PRAGMA incremental_vacuum(\(step))")
                        return try Self.spaceState(db)
                    }
                } catch {
                    throw AuditError.from(error, while: "release free pages")
                }
                released += step
            }
            try await checkpointWAL()
        }
        return SpaceReport(fileBytesBefore: before, fileBytesAfter: try fileBytes(), pagesReleased: released,
                           freePagesLeft: state.free, incrementalVacuum: state.incremental)
    }

    /// Rewrites the whole file (`VACUUM`): gives every free page back and, for a store created
    /// before AuditDB released space online, switches it to `auto_vacuum = INCREMENTAL` so that
    /// ``releaseFreeSpace(pagesPerStep:)`` works from then on.
    ///
    /// Writers wait for the whole rewrite (readers go on), and it needs free disk space as large
    /// as the store: run it once, in a quiet hour. Rows, MACs and seqs are unchanged, so every
    /// checkpoint, anchor and export stays valid.
    ///
    /// - Throws: ``AuditError`` `closed`, `diskFull`, storage errors.
    @discardableResult
    public func compact() async throws -> SpaceReport {
        try refuseIfClosed("compact the store")
        let before = try fileBytes()
        let start = try await spaceState()
        let state: (incremental: Bool, free: Int)
        do {
            state = try await pool.writeWithoutTransaction { db in
                walScrubPending.withLock { $0 = true }  // the WAL holds a copy of the whole store
                // The pool's connections ask for INCREMENTAL (makePool); VACUUM applies it.
                try db.execute(sql: "VACUUM")
                return try Self.spaceState(db)
            }
        } catch {
            throw AuditError.from(error, while: "compact the store (VACUUM)")
        }
        try await checkpointWAL()
        return SpaceReport(fileBytesBefore: before, fileBytesAfter: try fileBytes(), pagesReleased: start.free - state.free,
                           freePagesLeft: state.free, incrementalVacuum: state.incremental)
    }

    /// Whether the store releases space online, and its free pages now.
    func spaceState() async throws -> (incremental: Bool, free: Int) {
        do {
            return try await pool.read { db in try Self.spaceState(db) }
        } catch {
            throw AuditError.from(error, while: "read the free-page count")
        }
    }

    static func spaceState(_ db: Database) throws -> (incremental: Bool, free: Int) {
        let mode = try Int.fetchOne(db, sql: "PRAGMA auto_vacuum") ?? 0
        let free = try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
        return (mode == 2, free)
    }

    /// A passive WAL checkpoint: the pages cut off leave the file once the WAL is copied back.
    /// Passive never waits for readers or blocks writers; a later checkpoint finishes the job.
    private func checkpointWAL() async throws {
        do {
            try await pool.writeWithoutTransaction { db in _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(PASSIVE)") }
        } catch {
            throw AuditError.from(error, while: "checkpoint the WAL")
        }
    }

    private func refuseIfClosed(_ action: String) throws(AuditError) {
        if appender.state.withLock({ $0.closed }) {
            throw AuditError(.closed, "the store is closed; open it again to \(action)")
        }
    }

    private func fileBytes() throws(AuditError) -> Int64 {
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            return Int64((attributes[.size] as? NSNumber)?.int64Value ?? 0)
        } catch {
            throw AuditError(.storage, "cannot read the size of \(path): \(error)")
        }
    }
}
