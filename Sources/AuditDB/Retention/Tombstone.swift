import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// What stays of an expired row (FORMAT.md section 20.1): the MAC and Merkle leaf that keep the
/// chain and the tree whole, its recorded time, and keyed match tags (20.2) that let a verifier
/// check the expiry against its policy and the legal holds without any of the row's values.
struct Tombstone: Sendable, Hashable {
    var seq: Int64
    var keyVersion: UInt32
    var mac: [UInt8]
    var leaf: [UInt8]
    var recordedAt: Int64
    var tags: [UInt8]
    var expirySeq: Int64

    /// The match-tag fields, in their order in `tags` (FORMAT.md 20.2).
    enum Field: UInt8, CaseIterable {
        case tenant = 1, actor, resourceId, resource, correlationId
    }

    static let tagLength = 16

    /// SQL true for an `audit_expired` row aliased `x` that is a tombstone of the log (FORMAT.md
    /// 20.4): its seq is from 1 to the last row's, and `audit_entries` has no row there. Any other
    /// row of the table is foreign: nothing counts, walks, ships or reports it as expired.
    static let inLog = """
        x.seq >= 1 AND x.seq <= (SELECT coalesce(max(seq), 0) FROM audit_entries NOT INDEXED) \
        AND NOT EXISTS (SELECT 1 FROM audit_entries e WHERE e.seq = x.seq)
        """

    /// ENC_TOMB (20.1).
    var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(8 + 4 + 32 + 32 + 8 + tags.count)
        Self.append(UInt64(bitPattern: seq), to: &out)
        withUnsafeBytes(of: keyVersion.bigEndian) { out += $0 }
        out += mac
        out += leaf
        Self.append(UInt64(bitPattern: recordedAt), to: &out)
        out += tags
        return out
    }

    /// SHA256 of the ENC_TOMB of `tombstones`, in ascending seq (the expiry entry's `tombstones`).
    static func digest(_ tombstones: [Tombstone]) -> [UInt8] {
        var message: [UInt8] = []
        for tombstone in tombstones.sorted(by: { $0.seq < $1.seq }) { message += tombstone.encoded }
        var out = [UInt8](repeating: 0, count: 32)
        adb_sha256(message, message.count, &out)
        return out
    }

    /// TAG(f, x) = HMAC(K_mac, "ADB1TAG_" || store_id || u8(f) || x)[0..16).
    static func tag(_ field: Field, _ value: [UInt8], key: AuditKey, storeID: StoreID) -> [UInt8] {
        var message = Array("ADB1TAG_".utf8) + storeID.bytes
        message.append(field.rawValue)
        message += value
        var out = [UInt8](repeating: 0, count: 32)
        adb_hmac_mac_key(key.keyset, message, message.count, &out)
        return Array(out[0..<tagLength])
    }

    /// opt_str of FORMAT.md section 3.
    static func optString(_ value: String?) -> [UInt8] {
        guard let value else { return [0xFF, 0xFF, 0xFF, 0xFF] }
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt32(value.utf8.count).bigEndian) { out += $0 }
        return out + Array(value.utf8)
    }

    /// The five tags of a row's values.
    static func tags(tenant: String?, actor: String?, resourceType: String?, resourceId: String?, correlationId: String?,
                     key: AuditKey, storeID: StoreID) -> [UInt8]
    {
        tag(.tenant, optString(tenant), key: key, storeID: storeID)
            + tag(.actor, optString(actor), key: key, storeID: storeID)
            + tag(.resourceId, optString(resourceId), key: key, storeID: storeID)
            + tag(.resource, optString(resourceType) + optString(resourceId), key: key, storeID: storeID)
            + tag(.correlationId, optString(correlationId), key: key, storeID: storeID)
    }

    /// The tag of `field` in this tombstone.
    func tag(_ field: Field) -> ArraySlice<UInt8> {
        let start = Int(field.rawValue - 1) * Self.tagLength
        return tags[start..<start + Self.tagLength]
    }

    private static func append(_ value: UInt64, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.bigEndian) { out += $0 }
    }
}

/// Stored MACs by seq, of rows and of expired rows' tombstones: the chain's view of the log.
/// Whoever needs "the stored MAC of the row before" asks here, not `audit_entries` alone.
struct StoredMacs {
    private let row: Statement
    private let expired: Statement?

    init(_ db: Database) throws {
        row = try db.cachedStatement(sql: "SELECT mac FROM audit_entries WHERE seq = ?")
        expired = try db.tableExists("audit_expired")
            ? try db.cachedStatement(sql: "SELECT mac FROM audit_expired WHERE seq = ?") : nil
    }

    /// The stored MAC at `seq` (any length; empty when NULL), of the row or else of its tombstone;
    /// nil if neither exists.
    ///
    /// On the raw statements: a page read newest first, or through an index, asks once per row
    /// (the row before it is not the one read before it), and GRDB's generic fetch was half of
    /// such a page's time.
    func mac(at seq: Int64) throws(AuditError) -> [UInt8]? {
        if let stored = try Self.mac(row.sqliteStatement, seq: seq) { return stored }
        if let expired, let stored = try Self.mac(expired.sqliteStatement, seq: seq) { return stored }
        return nil
    }

    /// The `mac` column of `stmt`'s row at `seq`: nil without a row, empty when it is NULL.
    private static func mac(_ stmt: OpaquePointer, seq: Int64) throws(AuditError) -> [UInt8]? {
        defer { SQLite.reset(stmt) }
        try SQLite.bind(stmt, 1, seq)
        guard try SQLite.step(stmt, while: "read the stored MAC at seq \(seq)") else { return nil }
        return SQLite.blob(stmt, 0) ?? []
    }
}

/// Tombstones of a seq range, for walking the chain through expired rows (FORMAT.md 20.4).
struct TombstoneReader {
    private let statement: Statement?

    init(_ db: Database) throws {
        statement = try db.tableExists("audit_expired")
            ? try db.cachedStatement(sql: """
                SELECT seq, key_version, mac, leaf FROM audit_expired WHERE seq >= ? AND seq <= ? ORDER BY seq
                """)
            : nil
    }

    /// One tombstone's chain fields: nil values where the stored value has the wrong type.
    struct Link {
        var seq: Int64
        var keyVersion: UInt32?
        var mac: [UInt8]?
        var leaf: [UInt8]?
    }

    /// Calls `body` with each tombstone of `range`, in seq order, until it returns false; read
    /// straight from the statement (this is the verifier's walk through expired rows).
    func forEach(_ range: ClosedRange<Int64>, _ body: (Link) throws -> Bool) throws {
        guard let statement else { return }
        let stmt = statement.sqliteStatement
        try SQLite.bind(stmt, 1, range.lowerBound)
        try SQLite.bind(stmt, 2, range.upperBound)
        defer { SQLite.reset(stmt) }
        while try SQLite.step(stmt, while: "read tombstones") {
            func blob32(_ column: Int32) -> [UInt8]? {
                guard SQLite.type(stmt, column) == SQLITE_BLOB, let bytes = SQLite.blob(stmt, column), bytes.count == 32 else { return nil }
                return bytes
            }
            let kv = SQLite.type(stmt, 1) == SQLITE_INTEGER ? UInt32(exactly: SQLite.int64(stmt, 1)) : nil
            let link = Link(seq: SQLite.int64(stmt, 0), keyVersion: kv, mac: blob32(2), leaf: blob32(3))
            guard try body(link) else { return }
        }
    }

    /// A damaged page met by ``walk(_:keyEntries:storeID:chain:_:)``: step 4 meets it, so it
    /// ends the reading of rows at the seq the walk expected next (FORMAT.md section 11, step 5).
    struct Damage: Error {
        /// The seq after the last tombstone walked.
        var expected: Int64
        /// SQLite's message.
        var message: String
    }

    /// The verifier's walk through the tombstones of `range` (FORMAT.md 20.4): runs of tombstones
    /// that follow the chain are checked in C (`adb_walk_tombstones`, while the row before is
    /// known); every other one goes to `body` with the seq the walk expected next. Returns the
    /// seq after the last tombstone walked (`range.lowerBound` if none); a damaged page throws
    /// ``Damage``.
    func walk(_ range: ClosedRange<Int64>, keyEntries: [adb_key_entry], storeID: [UInt8], chain: inout RowChain,
              _ body: (Link, Int64, inout RowChain) throws -> Void) throws -> Int64
    {
        var expected = range.lowerBound
        guard let statement else { return expected }
        let stmt = statement.sqliteStatement
        try SQLite.bind(stmt, 1, range.lowerBound)
        try SQLite.bind(stmt, 2, range.upperBound)
        defer { SQLite.reset(stmt) }
        while true {
            let rc: Int32
            if chain.prevKnown && chain.prevMac.count == 32 && !keyEntries.isEmpty && storeID.count == 16 {
                var walked: Int64 = 0
                rc = keyEntries.withUnsafeBufferPointer { keys in
                    chain.prevMac.withUnsafeMutableBufferPointer { prev in
                        adb_walk_tombstones(stmt, keys.baseAddress, Int32(keys.count), storeID, &expected, prev.baseAddress, &walked)
                    }
                }
            } else {
                rc = SQLite.rawStep(stmt)
            }
            switch SQLite.stepResult(rc, stmt, while: "read tombstones") {
            case .success(true): break
            case .success(false): return expected
            case .failure(let error) where error.code == .corrupt:
                // Every seq of the range walked: the damage is on the page after it, which SQLite
                // read only to find where the range ends (the rows after it decide what comes next).
                if expected > range.upperBound { return expected }
                throw Damage(expected: expected, message: SQLite.message(stmt))
            case .failure(let error): throw error
            }
            let kv = SQLite.type(stmt, 1) == SQLITE_INTEGER ? UInt32(exactly: SQLite.int64(stmt, 1)) : nil
            let mac = SQLite.type(stmt, 2) == SQLITE_BLOB ? SQLite.blob(stmt, 2).flatMap { $0.count == 32 ? $0 : nil } : nil
            let link = Link(seq: SQLite.int64(stmt, 0), keyVersion: kv, mac: mac, leaf: nil)
            try body(link, expected, &chain)
            expected = link.seq == .max ? .max : link.seq + 1  // (a tombstone there is foreign)
        }
    }
}
