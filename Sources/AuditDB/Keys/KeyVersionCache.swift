import GRDB

/// The `audit_key_versions` table: which key versions have signed rows, and the first seq each
/// signed. It is a cache, and like every table it is attacker-controlled, so AuditDB trusts a row
/// of it only where the signed log confirms it (docs/FORMAT.md, section 11, step 6):
///
/// a row (`key_version` = v, `first_seq` = s) is **confirmed** when v is in 1..2^32−1, s ≥ 1, the
/// log row at seq s has `key_version` v, and s = 1 or the log row at seq s − 1 does not have
/// `key_version` v (a missing row counts as not having it).
///
/// Anything else is a **foreign** row: `open` ignores it (it neither names a missing key nor
/// blocks anything) and `verify` reports it as ``Finding/Kind/foreignRow``.
enum KeyVersionCache {
    /// At most this many foreign rows are named one by one; the rest are counted.
    static let namedLimit = 100

    /// The versions the log confirms, and the foreign rows (version or raw value, first seq).
    static func confirmed(_ db: Database) throws -> (versions: Set<UInt32>, foreign: [(String, String)]) {
        var versions: Set<UInt32> = []
        var foreign: [(String, String)] = []
        try scan(db) { version, firstSeq, isConfirmed in
            if isConfirmed, let version { versions.insert(version) } else { foreign.append((version.map(String.init) ?? "?", firstSeq)) }
        }
        return (versions, foreign)
    }

    /// The error for a process whose key ring is older than the store: the log confirms key
    /// versions the ring lacks (rotated since the ring was loaded), or nil. A row signed with a
    /// version the ring lacks is then no sign of tampering to this process, which must not report
    /// (or record) it as such: it cannot judge the row. `verify` in a process holding every key
    /// version judges it (and reports a version no key file has, with the cache row claiming it).
    ///
    /// Anyone with the file can make such a version look confirmed (a row claiming it, and a
    /// cache row naming that row): `firstSeq`, the lowest seq a missing version claims, bounds
    /// what the ambiguity can explain (the scanner still records damage to rows below it).
    static func staleRing(_ db: Database, keys: KeyRing, path: String) throws -> (error: AuditError, firstSeq: Int64)? {
        var missing: Set<UInt32> = []
        var firstSeq = Int64.max
        try scan(db) { version, first, isConfirmed in
            guard isConfirmed, let version, !keys.versions.contains(version) else { return }
            missing.insert(version)
            firstSeq = min(firstSeq, Int64(first) ?? 1)
        }
        guard !missing.isEmpty else { return nil }
        return (AuditError(
            .keyUnavailable,
            "rows of \(path) are signed with key version(s) \(missing.sorted().map(String.init).joined(separator: ", ")), which this process's key ring "
                + "lacks (it has \(keys.versions.map(String.init).joined(separator: ", "))): the keys were rotated after it loaded them. "
                + "Restart it with the current key file (if no key file has that version, run `auditdb verify`)"), firstSeq)
    }

    /// The `foreign-row` findings for the cache.
    static func findings(_ db: Database) throws -> [Finding] {
        var named: [Finding] = []
        var total = 0
        try scan(db) { version, firstSeq, isConfirmed in
            guard !isConfirmed else { return }
            total += 1
            if named.count < namedLimit {
                named.append(Finding(
                    kind: .foreignRow, seqs: nil,
                    message: "audit_key_versions row (key_version \(version.map(String.init) ?? "invalid"), first_seq \(firstSeq)) is not confirmed by the log: the row at that seq is not the first one signed with that version. AuditDB ignores it; it was inserted by another SQLite client"))
            }
        }
        if total > named.count {
            named.append(Finding(kind: .foreignRow, seqs: nil,
                                 message: "\(total - named.count) more unconfirmed audit_key_versions row(s)"))
        }
        return named
    }

    /// The log's rows and tombstones as `(seq, key_version)` (FORMAT.md section 20.4).
    private static func log(_ db: Database) throws -> String {
        try db.tableExists("audit_expired")
            ? "(SELECT seq, key_version FROM audit_entries UNION ALL SELECT seq, key_version FROM audit_expired x WHERE \(Tombstone.inLog))"
            : "audit_entries"
    }

    /// Replaces the cache with what the log says: for each version of `versions` that signed a
    /// row of seq ≥ 1, the first such seq (`repairIndexes()`; inside its write transaction, on
    /// an AuditDB connection, which runs without the append-only triggers). Versions the ring
    /// lacks are left out: verification reports their rows, and a cache row naming one would
    /// make `open` refuse the store.
    static func rebuild(_ db: Database, versions: [UInt32]) throws {
        guard try db.tableExists("audit_key_versions"), try db.tableExists("audit_entries") else { return }
        try db.execute(sql: "DELETE FROM audit_key_versions")
        for version in versions {
            try db.execute(sql: """
                INSERT INTO audit_key_versions(key_version, first_seq)
                SELECT ?1, min(seq) FROM \(try log(db)) WHERE seq >= 1 AND key_version = ?1 HAVING min(seq) IS NOT NULL
                """, arguments: [Int64(version)])
        }
    }

    private static func scan(_ db: Database, _ body: (UInt32?, String, Bool) throws -> Void) throws {
        guard try db.tableExists("audit_key_versions"), try db.tableExists("audit_entries") else { return }
        // The log's rows and, for expired rows, their tombstones (FORMAT.md section 20.4).
        let log = try log(db)
        let rows = try Row.fetchCursor(db, sql: """
            SELECT c.key_version, c.first_seq,
                   typeof(c.key_version) = 'integer' AND typeof(c.first_seq) = 'integer' AND c.first_seq >= 1
                   AND EXISTS (SELECT 1 FROM \(log) e WHERE e.seq = c.first_seq AND e.key_version IS c.key_version)
                   AND (c.first_seq = 1 OR NOT EXISTS (
                       SELECT 1 FROM \(log) p WHERE p.seq = c.first_seq - 1 AND p.key_version IS c.key_version))
            FROM audit_key_versions c
            """)
        while let row = try rows.next() {
            let version = row.stored(0, as: Int64.self).flatMap(UInt32.init(exactly:)).flatMap { $0 == 0 ? nil : $0 }
            let firstSeq = (row[1] as DatabaseValue).description
            try body(version, firstSeq, version != nil && (row.stored(2, as: Bool.self) ?? false))
        }
    }
}
