import CAuditCore
import GRDB
import GRDBSQLite

/// Proves each key of a ring against what the store already holds under its version, so that a
/// wrong key (a mistyped `AUDITDB_KEYS`, another store's key file) is refused before it writes a
/// row that can never verify, and is reported as a wrong key rather than as tampering.
///
/// The evidence for version v is everything v is known to have signed: the store header (if v
/// signed it), and rows signed by v near the two places a version's rows are found without an
/// index — from the first seq the `audit_key_versions` cache names for v (the cache is not
/// trusted: only rows whose own `key_version` is v count), and among the newest rows of the log.
/// At most ``rowsPerPlace`` rows of each place are checked, so the proof costs O(1) in the size
/// of the store. Only the row tag is checked (it covers the row's values and key version; the
/// link to the previous row is the verifier's business).
///
/// A version is **proven** if any of its evidence verifies, **wrong** if there is evidence and
/// none of it verifies, and **unproven** if it has signed nothing yet (a version just rotated in).
/// A correct key is judged wrong only if the header and every checked row it signed were altered,
/// which `verify` then reports row by row.
enum KeyProof {
    enum Verdict: Sendable, Equatable {
        case proven
        case unproven
        /// No evidence verified; `checked` are the seqs tried (0 stands for the store header).
        case wrong(checked: [Int64])
    }

    /// Rows checked at each place (first seq from the cache, the newest rows) before giving up.
    static let rowsPerPlace = 64
    /// How far from each place rows are looked at (rows signed by other versions are skipped).
    static let window: Int64 = 4_096

    /// Judges every key of `keys` against the store in `db`.
    static func verdicts(_ db: Database, header: StoreHeader, keys: KeyRing) throws -> [UInt32: Verdict] {
        let cache = try cachedFirstSeqs(db)
        var verdicts: [UInt32: Verdict] = [:]
        for key in keys.keys.values {
            verdicts[key.version] = try verdict(for: key, db, header: header, cachedFirstSeq: cache[key.version])
        }
        return verdicts
    }

    /// Throws ``AuditError/Code/wrongKey`` naming every version of `keys` that does not match
    /// the store.
    static func refuseWrongKeys(_ db: Database, header: StoreHeader, keys: KeyRing, path: String) throws {
        let wrong = try verdicts(db, header: header, keys: keys).compactMap { version, verdict -> (UInt32, [Int64])? in
            if case .wrong(let checked) = verdict { return (version, checked) }
            return nil
        }.sorted { $0.0 < $1.0 }
        guard let first = wrong.first else { return }
        throw AuditError.wrongKey(versions: wrong.map(\.0), evidence: first.1, path: path)
    }

    /// Verification's form of ``refuseWrongKeys(_:header:keys:path:)``: a version the quick proof
    /// judges wrong is looked for in every row it signed, oldest first, until one verifies. The
    /// quick proof's places (the cache's first seq, the newest rows) are in an attacker's reach:
    /// rows appended with bad MACs and the cache pointed at them would make the right key look
    /// wrong and keep `verify` from ever reporting them. Only a version none of whose rows
    /// verifies is refused (O(n) then, as the pass itself).
    static func refuseWrongKeysExhaustively(_ db: Database, header: StoreHeader, keys: KeyRing, path: String) throws {
        var wrong: [(UInt32, [Int64])] = []
        for (version, verdict) in try verdicts(db, header: header, keys: keys).sorted(by: { $0.key < $1.key }) {
            guard case .wrong(let checked) = verdict, let key = keys.keys[version] else { continue }
            if try !anyRowVerifies(db, header: header, key: key) { wrong.append((version, checked)) }
        }
        guard let first = wrong.first else { return }
        throw AuditError.wrongKey(versions: wrong.map(\.0), evidence: first.1, path: path)
    }

    /// Whether any well-formed row signed by `key`'s version verifies under it (its row tag).
    private static func anyRowVerifies(_ db: Database, header: StoreHeader, key: AuditKey) throws -> Bool {
        guard try db.tableExists("audit_entries") else { return false }
        let statement = try db.makeStatement(sql: try RowLayout.select(db) + " NOT INDEXED WHERE seq >= 1 AND key_version = ?1 ORDER BY seq")
        let stmt = statement.sqliteStatement
        try SQLite.bind(stmt, 1, Int64(key.version))
        defer { SQLite.reset(stmt) }
        while try SQLite.step(stmt, while: "key proof") {
            var view = RowView(stmt)
            guard view.isWellFormed, let stored = view.mac else { continue }
            if adb_row_check_leaf(key.keyset, header.storeID.bytes, &view.row, nil, stored, 32, nil) == Int32(ADB_OK) { return true }
        }
        return false
    }

    /// The `audit_key_versions` cache as stored (untrusted); empty if the table is gone.
    static func cachedFirstSeqs(_ db: Database) throws -> [UInt32: Int64] {
        guard try db.tableExists("audit_key_versions") else { return [:] }
        var cache: [UInt32: Int64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT key_version, first_seq FROM audit_key_versions") {
            guard let version = row.stored(0, as: Int64.self).flatMap(UInt32.init(exactly:)), let first = row.stored(1, as: Int64.self) else {
                continue
            }
            cache[version] = first
        }
        return cache
    }

    private static func verdict(for key: AuditKey, _ db: Database, header: StoreHeader, cachedFirstSeq: Int64?)
        throws -> Verdict
    {
        var checked: [Int64] = []
        if header.keyVersion == key.version, header.formatVersion == Int64(StoreFormat.formatVersion) {
            var mac = [UInt8](repeating: 0, count: 32)
            adb_header_mac(key.keyset, header.storeID.bytes, header.createdAt, UInt8(header.formatVersion),
                           header.keyVersion, &mac)
            if header.mac.count == 32 && adb_ct_equal(mac, header.mac, 32) == 1 { return .proven }
            checked.append(0)
        }
        guard try db.tableExists("audit_entries") else { return checked.isEmpty ? .unproven : .wrong(checked: checked) }
        var places: [(sql: String, argument: Int64)] = []
        if let first = cachedFirstSeq, first >= 1 {
            places.append((
                try RowLayout.select(db) + " NOT INDEXED WHERE seq >= ?1 AND seq < ?1 + \(window) AND key_version = ?2 ORDER BY seq LIMIT \(rowsPerPlace)",
                first))
        }
        let last = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries") ?? 0
        if last >= 1 {
            places.append((
                try RowLayout.select(db) + " NOT INDEXED WHERE seq > ?1 - \(window) AND seq <= ?1 AND seq >= 1 AND key_version = ?2 ORDER BY seq DESC LIMIT \(rowsPerPlace)",
                last))
        }
        for place in places {
            let statement = try db.makeStatement(sql: place.sql)
            let stmt = statement.sqliteStatement
            try SQLite.bind(stmt, 1, place.argument)
            try SQLite.bind(stmt, 2, Int64(key.version))
            defer { SQLite.reset(stmt) }
            while try SQLite.step(stmt, while: "key proof") {
                var view = RowView(stmt)
                guard view.isWellFormed, let stored = view.mac else { continue }  // a malformed row is no evidence either way
                if checked.contains(view.seq) { continue }
                if adb_row_check_leaf(key.keyset, header.storeID.bytes, &view.row, nil, stored, 32, nil) == Int32(ADB_OK) {
                    return .proven
                }
                checked.append(view.seq)
            }
        }
        return checked.isEmpty ? .unproven : .wrong(checked: checked)
    }
}

extension AuditError {
    /// A key of the ring does not match what the store holds under its version.
    static func wrongKey(versions: [UInt32], evidence: [Int64], path: String) -> AuditError {
        let names = versions.map(String.init).joined(separator: ", ")
        let what = evidence.prefix(3).map { $0 == 0 ? "the store header" : "row \($0)" }
        let more = evidence.count > 3 ? " and \(evidence.count - 3) more row(s) it signed" : ""
        return AuditError(
            .wrongKey,
            "wrong key for version \(names): the key supplied for version \(versions[0]) verifies none of what that version signed in \(path) (\(what.joined(separator: ", "))\(more)). "
                + "Nothing was written. Load the right key file (or fix AUDITDB_KEYS); if you are sure the key is right, the store was tampered with: run `auditdb verify`.")
    }
}
