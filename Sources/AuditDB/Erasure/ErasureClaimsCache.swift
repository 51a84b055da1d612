import GRDB
import GRDBSQLite
import Synchronization

/// What the verified erasure entries claim (``ErasureCheck/claims(_:storeID:keys:after:into:)``),
/// kept per open store so that a query meeting an erased row does not read and verify every
/// erasure entry of the store again: only the entries appended since it last looked.
///
/// Erasure entries are only ever appended, and a claim set folds them in seq order, so the claims
/// of the entries up to seq S, extended by the entries after S, are the claims of all of them.
/// The cached set is used only for a snapshot whose newest erasure entry is the one it was built
/// through (one index seek to find out). Inside a write transaction it is read and extended but
/// never stored: that transaction may append an erasure entry and roll back.
final class ErasureClaimsCache: Sendable {
    private struct State: Sendable {
        /// The seq of the newest erasure entry folded in (0: none).
        var through: Int64
        var claims: [Int64: ErasureCheck.Claim]
    }

    private let state = Mutex<State?>(nil)
    /// How many erasure entries were read and verified to build claims (for tests).
    private let read = Mutex(0)

    var entriesRead: Int { read.withLock { $0 } }

    static func newestEntrySQL(throughTable: Bool) -> String {
        """
        SELECT seq FROM audit_entries\(HoldLog.source(throughTable))
        WHERE action = 'auditdb.erasure' AND action >= 'auditdb.' AND action < 'auditdb/' AND seq >= 1 ORDER BY seq DESC LIMIT 1
        """
    }

    /// The claims of every verified erasure entry in `db`'s snapshot.
    func claims(_ db: Database, storeID: StoreID, keys: KeyRing) throws -> [Int64: ErasureCheck.Claim] {
        let newest = try Int64.fetchOne(db.cachedStatement(sql: Self.newestEntrySQL(throughTable: HoldLog.mustReadTable(db)))) ?? 0
        let cached = state.withLock { $0 }
        if let cached, cached.through == newest { return cached.claims }
        var claims: [Int64: ErasureCheck.Claim] = [:]
        var after: Int64?
        if let cached, cached.through < newest {
            claims = cached.claims
            after = cached.through
        }
        let folded = try ErasureCheck.claims(db, storeID: storeID, keys: keys, after: after, into: claims)
        claims = folded.claims
        read.withLock { $0 += folded.entriesRead }
        if sqlite3_txn_state(db.sqliteConnection, "main") != SQLITE_TXN_WRITE {
            state.withLock { current in
                if (current?.through ?? -1) < newest { current = State(through: newest, claims: claims) }
            }
        }
        return claims
    }
}
