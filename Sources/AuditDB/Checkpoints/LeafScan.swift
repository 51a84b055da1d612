import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// One pass over rows in seq order that checks each row with the verifier's own row check and
/// computes its Merkle leaf hash. Shared by checkpointing, anchor verification and export.
enum LeafScan {
    struct Result {
        var findings: [Finding] = []
        /// The last seq whose leaf was computed (rows from the start of the range up to it are
        /// present, gapless and passed the check).
        var lastGood: Int64
        /// The stored MAC of row `lastGood`.
        var lastMac: [UInt8]
    }

    /// Scans `range`. `prevMac` is the stored MAC of row `range.lowerBound − 1` (32 zero bytes
    /// before seq 1), trusted. Stops at the first row that is missing or fails its check.
    /// `onRow` gets each good row's statement (positioned on the row), seq and leaf hash.
    static func scan(_ db: Database, range: ClosedRange<Int64>, prevMac start: [UInt8], storeID: StoreID, keys: KeyRing,
                     verify: Bool = true, onRow: (OpaquePointer, Int64, [UInt8]) throws -> Void) throws -> Result
    {
        var result = Result(lastGood: range.lowerBound - 1, lastMac: start)
        let statement = try db.makeStatement(
            sql: "SELECT \(Verifier.selectColumns) FROM audit_entries WHERE seq >= ? AND seq <= ? ORDER BY seq")
        let stmt = statement.sqliteStatement
        sqlite3_bind_int64(stmt, 1, range.lowerBound)
        sqlite3_bind_int64(stmt, 2, range.upperBound)
        defer { sqlite3_reset(stmt) }
        let context = Verifier.RowContext(
            storeID: storeID.bytes, keys: keys, compromised: keys.compromisedVersions,
            attestations: try Verifier.loadAttestations(db, keys: keys))
        var prevMac = start
        var expected = range.lowerBound
        var leaf = [UInt8](repeating: 0, count: 32)
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else {
                throw DatabaseError(resultCode: ResultCode(rawValue: rc),
                                    message: String(cString: sqlite3_errmsg(db.sqliteConnection)), sql: "leaf scan")
            }
            let seq = sqlite3_column_int64(stmt, 0)
            guard seq == expected else {
                result.findings.append(Finding(kind: .missingRows, seqs: expected...(seq - 1),
                                               message: "\(seq - expected) row(s) missing before seq \(seq) (removed)"))
                return result
            }
            expected += 1
            if verify {
                var check = Verifier.RangeResult()
                var prevKnown = true
                Verifier.checkRow(stmt, seq: seq, prevMac: &prevMac, prevKnown: &prevKnown, context: context, result: &check)
                if !check.findings.isEmpty {
                    result.findings += check.findings
                    return result
                }
            } else {
                guard let mac = storedMac(stmt) else { return result }
                prevMac = mac
            }
            guard computeLeaf(stmt, seq: seq, storeID: storeID, keys: keys, into: &leaf) else { return result }
            try onRow(stmt, seq, leaf)
            result.lastGood = seq
            result.lastMac = prevMac
        }
        return result
    }

    static func storedMac(_ stmt: OpaquePointer) -> [UInt8]? {
        guard sqlite3_column_type(stmt, 17) == SQLITE_BLOB, sqlite3_column_bytes(stmt, 17) == 32,
              let p = sqlite3_column_blob(stmt, 17) else { return nil }
        return Array(UnsafeRawBufferPointer(start: p, count: 32))
    }

    /// The row as the C core reads it; nil if a column has an impossible type or value.
    /// Its text pointers are valid until the statement moves.
    static func row(_ stmt: OpaquePointer, seq: Int64) -> adb_row? {
        for i in Verifier.integerColumns where sqlite3_column_type(stmt, i) != SQLITE_INTEGER { return nil }
        for i in Verifier.optionalIntegerColumns {
            let t = sqlite3_column_type(stmt, i)
            if t != SQLITE_INTEGER && t != SQLITE_NULL { return nil }
        }
        for i in Verifier.textColumns {
            let t = sqlite3_column_type(stmt, i)
            if t != SQLITE_TEXT && t != SQLITE_NULL { return nil }
        }
        let outcome = sqlite3_column_int64(stmt, 8), severity = sqlite3_column_int64(stmt, 9)
        let origin = sqlite3_column_int64(stmt, 13), format = sqlite3_column_int64(stmt, 15)
        guard (0...3).contains(outcome), (0...3).contains(severity), (0...1).contains(origin), (0...255).contains(format),
              let kv = UInt32(exactly: sqlite3_column_int64(stmt, 16))
        else { return nil }
        var row = adb_row()
        row.seq = seq
        row.recorded_at = sqlite3_column_int64(stmt, 1)
        row.has_occurred_at = sqlite3_column_type(stmt, 2) == SQLITE_NULL ? 0 : 1
        row.occurred_at = sqlite3_column_int64(stmt, 2)
        row.tenant = Verifier.text(stmt, 3)
        row.actor = Verifier.text(stmt, 4)
        row.action = Verifier.text(stmt, 5)
        row.resource_type = Verifier.text(stmt, 6)
        row.resource_id = Verifier.text(stmt, 7)
        row.outcome = UInt8(outcome)
        row.severity = UInt8(severity)
        row.correlation_id = Verifier.text(stmt, 10)
        row.source = Verifier.text(stmt, 11)
        row.details = Verifier.text(stmt, 12)
        row.origin = UInt8(origin)
        row.has_origin_ref = sqlite3_column_type(stmt, 14) == SQLITE_NULL ? 0 : 1
        row.origin_ref = sqlite3_column_int64(stmt, 14)
        row.format_version = UInt8(format)
        row.key_version = kv
        return row
    }

    /// SHA256(0x00 || ENC_ROW) of the current row; false if the row is malformed or its key
    /// version is not in the ring.
    static func computeLeaf(_ stmt: OpaquePointer, seq: Int64, storeID: StoreID, keys: KeyRing, into leaf: inout [UInt8]) -> Bool {
        guard var row = row(stmt, seq: seq), let key = keys.key(version: row.key_version) else { return false }
        adb_leaf_hash(key.keyset, storeID.bytes, &row, &leaf)
        return true
    }
}

extension LeafScan {
    /// The outcome of ``leaves(_:range:prevMac:storeID:keys:verify:collect:)``.
    struct Leaves: Sendable {
        var findings: [Finding] = []
        /// The last seq whose leaf is in `flat` (rows from the range's start up to it are
        /// present, gapless and passed the check).
        var lastGood: Int64
        var lastMac: [UInt8]
        /// The leaves, 32 bytes each, in seq order.
        var flat: [UInt8] = []
        /// What `collect` returned for the rows it chose, in seq order.
        var collected: [(Int64, String)] = []
    }

    /// Scans `range` like ``scan(_:range:prevMac:storeID:keys:verify:onRow:)`` and returns the
    /// leaves; large ranges are split in two halves scanned on two reader connections (the
    /// second half chained from the stored MAC of the row before it, as the verifier does).
    static func leaves(_ reader: any DatabaseReader, range: ClosedRange<Int64>, prevMac: [UInt8], storeID: StoreID,
                       keys: KeyRing, verify: Bool,
                       collect: (@Sendable (OpaquePointer, Int64, [UInt8]) throws -> String?)? = nil) async throws -> Leaves
    {
        let parts = Verifier.split(range, rows: Int64(range.count))
        @Sendable func part(_ db: Database, _ r: ClosedRange<Int64>, _ start: [UInt8]?) throws -> Leaves {
            var prev = start ?? [UInt8](repeating: 0, count: 32)
            if start == nil {
                guard let stored = try Data.fetchOne(db, sql: "SELECT mac FROM audit_entries WHERE seq = ?", arguments: [r.lowerBound - 1]),
                      stored.count == 32
                else { return Leaves(lastGood: r.lowerBound - 1, lastMac: prev) }
                prev = Array(stored)
            }
            var flat: [UInt8] = []
            flat.reserveCapacity(r.count * 32)
            var collected: [(Int64, String)] = []
            let scan = try LeafScan.scan(db, range: r, prevMac: prev, storeID: storeID, keys: keys, verify: verify) { stmt, seq, leaf in
                flat += leaf
                if let collect, let text = try collect(stmt, seq, leaf) { collected.append((seq, text)) }
            }
            return Leaves(findings: scan.findings, lastGood: scan.lastGood, lastMac: scan.lastMac, flat: flat, collected: collected)
        }
        guard parts.count == 2 else {
            return try await reader.read { db in try part(db, range, prevMac) }
        }
        async let second = reader.read { db in try part(db, parts[1], nil) }
        var first = try await reader.read { db in try part(db, parts[0], prevMac) }
        let rest = try await second
        guard first.lastGood == parts[0].upperBound, first.findings.isEmpty else { return first }
        // The second half assumed the stored MAC of the first half's last row; it is the same
        // row, so the chain is unbroken if both halves passed.
        first.findings = rest.findings
        first.lastGood = rest.lastGood
        first.lastMac = rest.lastMac
        first.flat += rest.flat
        first.collected += rest.collected
        return first
    }
}
