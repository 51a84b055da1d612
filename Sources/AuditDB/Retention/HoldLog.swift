import CAuditCore
import Foundation
import GRDB

/// Reads the legal holds back from the log, through verification.
///
/// The hold entries are found through the partial index on AuditDB's own entries
/// (`audit_entries_engine`, FORMAT.md appendix A.3): the cost grows with the number of hold
/// entries, not with the size of the log. Each is read with the query path's ``EntryReader``,
/// which checks its MAC and its link to the stored row before it. Anything wrong with a hold
/// entry throws: ignoring a changed *placement* would let held rows expire.
///
/// What this proves on its own (docs/retention.md, "What is proven"): every hold entry read is
/// authentic and in its place in the chain; none before the newest one read was removed,
/// changed or hidden from the index, since each names the one before it (`previousHoldEntry`).
/// The newest hold entry removed looks, to this reader, like a cut tail: `verify` reports it
/// (`missing-rows` when rows follow it; anchored checkpoints otherwise).
enum HoldLog {
    /// Every hold entry, oldest first, through the engine index (its WHERE terms repeated so
    /// that SQLite may use the partial index), or with `throughTable` by reading every row.
    /// The caller takes `throughTable` from ``mustReadTable(_:_:)``.
    static func entriesSQL(throughTable: Bool) -> String {
        """
        SELECT seq FROM audit_entries\(source(throughTable))
        WHERE action IN ('auditdb.hold.placed', 'auditdb.hold.released') AND action >= 'auditdb.' AND action < 'auditdb/' AND seq >= 1
        ORDER BY seq
        """
    }

    /// What follows `FROM audit_entries` in a statement that finds AuditDB's own entries:
    /// ` INDEXED BY audit_entries_engine`, or with `throughTable` ` NOT INDEXED`: every row is
    /// read, so an entry hidden from that index is found too. Verification's full pass reads them
    /// so when its index proof did not prove that index.
    ///
    /// Never the planner's choice: another index on `audit_entries` (one a client added, even
    /// under a reserved `sqlite_` name, with `sqlite_stat1` rigged to prefer it) could leave
    /// entries out, and a hold, masking rule or scan record left out changes what AuditDB does.
    static func source(_ throughTable: Bool) -> String {
        throughTable ? " NOT INDEXED" : " INDEXED BY audit_entries_engine"
    }

    /// Whether AuditDB's own entries must be found by reading every row: `forced` (a pass whose
    /// index proof did not prove the engine index), or `audit_entries_engine` is not in the file
    /// with exactly AuditDB's definition (dropped or changed: `verify` reports `schema-tampered`;
    /// reading the table is slower, never wrong).
    static func mustReadTable(_ db: Database, _ forced: Bool = false) throws -> Bool {
        try forced || !IndexProof.isExact(db, "audit_entries_engine")
    }

    /// The seq of the newest hold entry appended by AuditDB (origin 0), or 0: the
    /// `previousHoldEntry` of the next one.
    static func newestSQL(throughTable: Bool) -> String {
        """
        SELECT max(seq) FROM audit_entries\(source(throughTable))
        WHERE action IN ('auditdb.hold.placed', 'auditdb.hold.released') AND action >= 'auditdb.' AND action < 'auditdb/' AND seq >= 1
          AND origin = 0
        """
    }

    /// The holds, by id, and the seq of the newest hold entry (0 if none).
    struct State {
        var holds: [LegalHold] = []
        var newestEntry: Int64 = 0
    }

    /// What every integrity error of this reader ends with.
    static let refusal = "no holds are returned, since a hold that was removed or changed could let held rows expire. "
        + "Run `auditdb verify` for a full report, and restore the store from a backup"

    /// Reads and checks every hold entry (inside the caller's read or write transaction).
    /// - Throws: ``AuditError`` `integrityViolation` naming the first bad hold entry; storage errors.
    ///
    /// With `strict: false` (verification's step 9, FORMAT.md section 20.4), a hold entry that
    /// fails verification, cannot be read, or releases a hold it cannot is skipped instead: its
    /// damage is reported at its row, and the holds are what the verified entries say.
    ///
    /// With `throughTable`, the hold entries are found by reading every row (``source(_:)``).
    ///
    /// `listedToo`: seqs of hold entries the caller found by reading the table itself (expiry, as
    /// it chooses the rows old enough to go). With `strict`, one of them that the index does not
    /// list and that verifies as a hold entry AuditDB wrote throws: the index was edited to hide
    /// it. (Without it, the newest hold entry hidden that way would free the rows it holds.)
    static func read(_ db: Database, storeID: StoreID, keys: KeyRing, strict: Bool = true, throughTable: Bool = false,
                     listedToo: [Int64] = []) throws -> State
    {
        if strict && !throughTable { try checkEngineIndexOrder(db) }
        let seqs = try Int64.fetchAll(db, sql: entriesSQL(throughTable: try mustReadTable(db, throughTable)))
        var reader = try EntryReader(db, storeID: storeID, keys: keys, mode: .mark, judgesLinksAsAPass: true)
        let rowStatement = try db.cachedStatement(sql: try RowLayout.select(db) + " WHERE seq = ?")  // verification reads stores before migration 0006 too
        func row(_ seq: Int64) throws -> AuditEntry? {
            var entries: [AuditEntry] = []
            try rowStatement.setArguments([seq])
            reader.lastSeq = nil  // link to the stored row before it, whatever was read last
            try reader.read(rowStatement, into: &entries)
            return entries.first
        }
        if strict, !listedToo.isEmpty {
            let listed = Set(seqs)
            for seq in listedToo where !listed.contains(seq) {
                guard let entry = try row(seq) else { continue }  // cannot happen inside one transaction
                if let finding = entry.finding {
                    throw violation("legal hold entry \(seq) failed verification (\(finding))")
                }
                guard entry.origin == .recorded else { continue }  // back-signed legacy data, not a hold
                throw violation("legal hold entry \(seq) is not listed by the index audit_entries_engine (the index was edited: `auditdb verify` reports index-mismatch; `auditdb repair-indexes` rebuilds it)")
            }
        }
        var state = State()
        var index: [Int64: Int] = [:]
        for seq in seqs {
            guard let entry = try row(seq) else { continue }  // cannot happen inside one transaction
            if let finding = entry.finding, strict || !entry.isVerifiedAtItsSeq {
                guard strict else { continue }
                if finding.kind == .unknownKeyVersion, let stale = try KeyVersionCache.staleRing(db, keys: keys, path: "the store")?.error {
                    throw stale  // keys rotated after this process loaded them: not damage
                }
                throw violation("legal hold entry \(seq) failed verification (\(finding))")
            }
            // A verified row that a migration run back-signed is legacy data that happened to use
            // this action (its origin is covered by its MAC): it is not a hold.
            guard entry.origin == .recorded else { continue }
            let hold: HoldEntry
            do {
                hold = try HoldEntry(entry)
            } catch {
                guard strict else { continue }
                throw violation("legal hold entry \(seq) is signed but cannot be read as a hold entry: \(error.reason)")
            }
            if strict, hold.previous != state.newestEntry {
                throw try brokenChain(at: seq, names: hold.previous, newest: state.newestEntry, row: row)
            }
            state.newestEntry = seq
            switch hold {
            case .placed(let matcher, let reason, _):
                index[seq] = state.holds.count
                state.holds.append(LegalHold(id: seq, matcher: matcher, reason: reason, placedBy: entry.actor,
                                             placedAt: entry.recordedAt, release: nil))
            case .released(let holdID, let reason, _):
                guard let position = index[holdID] else {
                    guard strict else { continue }
                    throw violation("legal hold entry \(seq) releases hold \(holdID), which was never placed")
                }
                let held = state.holds[position]
                if let earlier = held.release {
                    guard strict else { continue }
                    throw violation("legal hold entry \(seq) releases hold \(holdID), which entry \(earlier.seq) released already")
                }
                state.holds[position] = LegalHold(
                    id: held.id, matcher: held.matcher, reason: held.reason, placedBy: held.placedBy, placedAt: held.placedAt,
                    release: LegalHold.Release(seq: seq, releasedAt: entry.recordedAt, releasedBy: entry.actor, reason: reason))
            }
        }
        return state
    }

    /// The error for a hold entry at `seq` whose `previousHoldEntry` is not the newest hold
    /// entry read before it, naming what happened to the one it names.
    private static func brokenChain(at seq: Int64, names previous: Int64, newest: Int64,
                                    row: (Int64) throws -> AuditEntry?) throws -> AuditError
    {
        guard previous > newest else {
            // It names an older entry than the one read before it: that one is not in its chain.
            return violation("legal hold entries \(newest) and \(seq) both name hold entry \(previous) as the one before them; the chain of hold entries forks, which AuditDB never writes")
        }
        let what: String
        if let named = try row(previous) {
            if let finding = named.finding {
                what = "which failed verification (\(finding))"
            } else if named.action != HoldEntry.placedAction && named.action != HoldEntry.releasedAction || named.origin != .recorded {
                what = "which is not a hold entry"
            } else {
                what = "which the index audit_entries_engine does not list (the index was edited: `auditdb verify` reports index-mismatch; `auditdb repair-indexes` rebuilds it)"
            }
        } else {
            what = "which is missing from the store (deleted)"
        }
        return violation("legal hold entry \(seq) follows hold entry \(previous), \(what)")
    }

    /// The hold entries are found by seeks in `audit_entries_engine`; a b-tree rebuilt in another
    /// order holds every entry yet answers those seeks with none (or with other rows). One covering
    /// scan of the index (AuditDB's own entries only: O(engine entries), not O(log)) checks its key
    /// order as verification does (FORMAT.md section 11, step 7).
    static func checkEngineIndexOrder(_ db: Database) throws {
        guard try IndexProof.provable(db).contains(where: { $0.id == Int32(ADB_INDEX_ENGINE) }) else {
            throw violation("the index audit_entries_engine, through which the hold entries are found, is missing or differs from its definition (`auditdb verify` reports schema-tampered)")
        }
        guard let connection = db.sqliteConnection else { throw AuditError(.closed, "the connection is closed") }
        try SQLite.registerIndexDigest(connection)
        let result = try Data.fetchOne(db, sql: """
            SELECT auditdb_index_digest(zeroblob(16), \(ADB_INDEX_ENGINE), action, seq) FROM audit_entries INDEXED BY audit_entries_engine
            WHERE action >= 'auditdb.' AND action < 'auditdb/'
            """)
        guard let result, result.count == Int(ADB_INDEX_DIGEST_RESULT) else {
            throw AuditError(.storage, "scanning index audit_entries_engine gave an unexpected result")
        }
        if result[result.startIndex + 16] != 0 {
            throw violation("the index audit_entries_engine, through which the hold entries are found, is not in key order (rebuilt in another order: `auditdb verify` reports index-mismatch; `auditdb repair-indexes` rebuilds it)")
        }
    }

    private static func violation(_ what: String) -> AuditError {
        AuditError(.integrityViolation, "\(what); \(refusal).")
    }
}
