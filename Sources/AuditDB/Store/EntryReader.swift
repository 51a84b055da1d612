import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// Reads rows into ``AuditEntry`` values, checking each with the verifier's own row check
/// (MAC, and the link to the row before it: the previous row read, or the stored one).
struct EntryReader {
    let context: Verifier.RowContext
    let previousMac: Statement
    /// When some key version is compromised: the attestations of one row (looked up per row,
    /// so a page does not load every attestation of the store).
    let attestationsOfRow: Statement?
    let mode: EntryQuery.UnverifiedRows
    var lastSeq: Int64?
    var lastMac = [UInt8](repeating: 0, count: 32)

    init(_ db: Database, storeID: StoreID, keys: KeyRing, mode: EntryQuery.UnverifiedRows) throws {
        context = Verifier.RowContext(
            storeID: storeID.bytes, keys: keys, compromised: keys.compromisedVersions, attestations: [:])
        previousMac = try db.cachedStatement(sql: "SELECT mac FROM audit_entries WHERE seq = ?")
        // Only rows signed by a compromised version need theirs (looked up per row below).
        if !keys.compromisedVersions.isEmpty, try db.tableExists("audit_attestations") {
            attestationsOfRow = try db.cachedStatement(sql: Verifier.attestationsSQL + " AND a.seq = ?")
        } else {
            attestationsOfRow = nil
        }
        self.mode = mode
    }

    /// Steps `statement` (arguments already set) to the end, appending its rows to `entries`.
    mutating func read(_ statement: Statement, into entries: inout [AuditEntry]) throws {
        let stmt = statement.sqliteStatement
        defer { sqlite3_reset(stmt) }
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else {
                throw DatabaseError(resultCode: ResultCode(rawValue: rc),
                                    message: String(cString: sqlite3_errmsg(sqlite3_db_handle(stmt))), sql: statement.sql)
            }
            let seq = sqlite3_column_int64(stmt, 0)
            var prevMac = [UInt8](repeating: 0, count: 32)
            var prevKnown = true
            if seq > 1 {
                if lastSeq == seq - 1 {
                    prevMac = lastMac
                } else if let stored = try Data.fetchOne(previousMac, arguments: [seq - 1]), stored.count == 32 {
                    prevMac = Array(stored)
                } else {
                    prevKnown = false
                }
            }
            var result = Verifier.RangeResult()
            let linkCheckable = prevKnown
            var rowContext = context
            if let attestationsOfRow, let kv = UInt32(exactly: sqlite3_column_int64(stmt, 16)), context.compromised.contains(kv) {
                rowContext = try Self.context(context, withAttestationsOf: seq, from: attestationsOfRow)
            }
            Verifier.checkRow(stmt, seq: seq, prevMac: &prevMac, prevKnown: &prevKnown, context: rowContext, result: &result)
            if !linkCheckable && result.findings.isEmpty {
                result.add(Finding(kind: .missingRows, seqs: (seq - 1)...(seq - 1), message: "the row before seq \(seq) is missing"))
            }
            let finding = result.findings.first
            if let finding, mode == .throw {
                throw AuditError(
                    .integrityViolation,
                    "entry \(seq) failed verification (\(finding)); it is not returned. Run `auditdb verify` for a full report.")
            }
            entries.append(Self.entry(stmt, seq: seq, finding: finding))
            if finding == nil {
                lastSeq = seq
                lastMac = prevMac
            } else {
                lastSeq = nil
            }
        }
    }

    private static func context(_ base: Verifier.RowContext, withAttestationsOf seq: Int64, from statement: Statement)
        throws -> Verifier.RowContext
    {
        Verifier.RowContext(storeID: base.storeID, keys: base.keys, compromised: base.compromised,
                            attestations: Verifier.attestations(from: try Row.fetchAll(statement, arguments: [seq])))
    }

    private static func string(_ stmt: OpaquePointer, _ i: Int32) -> String? {
        let b = Verifier.text(stmt, i)
        guard b.len >= 0 else { return nil }
        guard b.len > 0, let p = b.ptr else { return "" }
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(b.len)), as: UTF8.self)
    }

    private static func entry(_ stmt: OpaquePointer, seq: Int64, finding: Finding?) -> AuditEntry {
        func int(_ i: Int32) -> Int64 { sqlite3_column_int64(stmt, i) }
        func optionalInt(_ i: Int32) -> Int64? { sqlite3_column_type(stmt, i) == SQLITE_NULL ? nil : int(i) }
        let macBytes = sqlite3_column_bytes(stmt, 17)
        let mac = macBytes > 0 ? Array(UnsafeRawBufferPointer(start: sqlite3_column_blob(stmt, 17), count: Int(macBytes))) : []
        return AuditEntry(
            seq: seq,
            recordedAt: AuditTimestamp(microsecondsSinceEpoch: int(1)),
            occurredAt: optionalInt(2).map(AuditTimestamp.init(microsecondsSinceEpoch:)),
            tenant: string(stmt, 3), actor: string(stmt, 4), action: string(stmt, 5) ?? "",
            resourceType: string(stmt, 6), resourceId: string(stmt, 7),
            outcome: AuditOutcome(code: int(8)) ?? .error, severity: AuditSeverity(code: int(9)) ?? .critical,
            correlationId: string(stmt, 10), source: string(stmt, 11), detailsJSON: string(stmt, 12),
            origin: int(13) == 0 ? .recorded : .backSigned(run: optionalInt(14)),
            formatVersion: Int(int(15)), keyVersion: UInt32(truncatingIfNeeded: int(16)), mac: mac, finding: finding)
    }
}
