import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// Verification step 10 (FORMAT.md section 21.4): every erased field is accounted for by a
/// verified erasure entry, and every field an erasure entry erased is still erased.
///
/// An erasure keeps the row's MAC valid by construction, so the MAC alone cannot tell an erasure
/// AuditDB made from one made by someone who only has the file (replacing a value and its nonce by
/// the commitment needs no key). The signed entries can: they name each erased seq and field.
enum ErasureCheck {
    /// The erasure entries (those after seq `after` only, if given), in seq order.
    static func entriesCondition(after: Int64?) -> String {
        " WHERE action = 'auditdb.erasure' AND action >= 'auditdb.' AND action < 'auditdb/' AND seq >= 1"
            + (after.map { " AND seq > \($0)" } ?? "") + " ORDER BY seq"
    }

    /// The rows from seq ?1 through ?2 with erased fields (a 97-byte seals value; its first byte is the mask).
    static let erasedRowsSQL = """
        SELECT seq, seals FROM audit_entries NOT INDEXED
        WHERE seq >= ?1 AND seq <= ?2 AND typeof(seals) = 'blob' AND length(seals) = 97 ORDER BY seq
        """

    /// The rows with erased fields that a pass's row scan read (all of `seqs`), so that rule 2
    /// need not read every row's `seals` again: only rows outside `seqs` are looked up.
    struct ScannedRows: Sendable {
        let seqs: ClosedRange<Int64>
        /// seq → the stored mask.
        var erased: [Int64: UInt8]
    }

    /// The findings of step 10. `fromSeq`: an incremental pass's first seq; rule 2 (an erased
    /// field no entry accounts for) then looks only at the rows the pass covers, as step 7 does
    /// (`scanned`: the erased rows the pass's row scan read; only rows outside them are looked
    /// up), while rules 1 and 3 always run
    /// in full: they cost one lookup per erased row.
    /// With `throughTable`, the erasure entries are found by reading every row, not through
    /// `audit_entries_engine` (as ``ExpiryCheck/findings(_:storeID:keys:throughTable:)``).
    static func findings(_ db: Database, storeID: StoreID, keys: KeyRing, fromSeq: Int64? = nil,
                         scanned: ScannedRows? = nil, throughTable: Bool = false) throws -> [Finding] {
        guard try db.tableExists("audit_entries"), try RowLayout.hasSeals(db) else { return [] }
        var findings: [Finding] = []
        func tampered(_ seq: Int64, _ message: String) {
            findings.append(Finding(kind: .erasureTampered, seqs: seq...seq, message: message))
        }
        let (claimed, unreadable, _) = try claims(db, storeID: storeID, keys: keys, throughTable: throughTable)
        findings += unreadable
        // Every erased field must be claimed.
        var erased: [(Int64, UInt8)] = []
        func lookUp(_ from: Int64, _ through: Int64) throws {
            guard from <= through else { return }
            for row in try Row.fetchAll(db, sql: erasedRowsSQL, arguments: [from, through]) { erased.append((row[0], mask(row[1]))) }
        }
        let first = fromSeq ?? Int64.min
        if let scanned, scanned.seqs.lowerBound >= first {
            try lookUp(first, scanned.seqs.lowerBound - 1)
            erased += scanned.erased.filter { $0.value != 0 }.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 }
            if scanned.seqs.upperBound < Int64.max { try lookUp(scanned.seqs.upperBound + 1, Int64.max) }
        } else {
            try lookUp(first, Int64.max)
        }
        for (seq, stored) in erased {
            if let problem = unclaimed(seq: seq, mask: stored, claim: claimed[seq]) { tampered(seq, problem) }
        }
        // Every claimed field must still be erased (unless the row expired since, or is missing:
        // step 4 reports a missing row), and a partially erased details must be the residual its
        // latest erasure entry recorded (FORMAT.md 21.7).
        let rowAt = try db.cachedStatement(sql: "SELECT seals, details FROM audit_entries WHERE seq = ?")
        for (seq, claim) in claimed.sorted(by: { $0.key < $1.key }) {
            guard let row = try Row.fetchOne(rowAt, arguments: [seq]) else { continue }
            if let problem = mismatch(seq: seq, mask: mask(row[0]), details: row.stored(1, as: String.self), claim: claim) { tampered(seq, problem) }
        }
        return findings
    }

    /// What the verified erasure entries claim, per seq, and a finding for each signed erasure
    /// entry that cannot be read. The entries are read through verification (step 4's "verified",
    /// as for expiry entries): a row that fails its own check claims nothing.
    ///
    /// `after` and `into`: fold only the entries after seq `after` into the claims of the entries
    /// up to it (``ErasureClaimsCache``).
    static func claims(_ db: Database, storeID: StoreID, keys: KeyRing, after: Int64? = nil, into claims: [Int64: Claim] = [:],
                       throughTable: Bool = false) throws
        -> (claims: [Int64: Claim], findings: [Finding], entriesRead: Int)
    {
        var reader = try EntryReader(db, storeID: storeID, keys: keys, mode: .mark, checksErasures: false, judgesLinksAsAPass: true)
        var entries: [AuditEntry] = []
        let statement = try db.makeStatement(sql: try RowLayout.select(db) + HoldLog.source(try HoldLog.mustReadTable(db, throughTable)) + entriesCondition(after: after))
        try reader.read(statement, into: &entries)
        var claimed = claims
        var findings: [Finding] = []
        for entry in entries where entry.origin == .recorded && entry.isVerifiedAtItsSeq {
            let record: ErasureRecord
            do {
                record = try ErasureRecord(entry)
            } catch {
                findings.append(Finding(kind: .erasureTampered, seqs: entry.seq...entry.seq,
                                        message: "erasure entry \(entry.seq) is signed but cannot be read: \(error.reason)"))
                continue
            }
            for (index, seq) in record.seqs.enumerated() {
                var claim = claimed[seq] ?? Claim(entry: entry.seq)
                claim.add(record, at: index, entry: entry.seq)
                claimed[seq] = claim
            }
        }
        return (claimed, findings, entries.count)
    }

    /// Why one row is not what its verified erasure entries made it, or nil: rule 2 (an erased
    /// field no entry accounts for), then rule 4 (``mismatch(seq:mask:details:claim:)``).
    /// `mask` is the row's stored seals mask, `details` its column text. Queries and erasure
    /// check each erased row they read with it.
    static func problem(seq: Int64, mask: UInt8, details: String?, claim: Claim?) -> String? {
        if let problem = unclaimed(seq: seq, mask: mask, claim: claim) { return problem }
        guard let claim else { return nil }
        return mismatch(seq: seq, mask: mask, details: details, claim: claim)
    }

    /// Rules 2 and 4 for one row read for an answer, an export, a shipment or an expiry, after it
    /// passed its own check: a row with erased fields, or one a verified erasure entry names (a
    /// row restored whole from a copy made before its erasure has no erased field left; only the
    /// claim shows it). Nil when the row is what the entries made it.
    static func problem(_ view: RowView, claims: [Int64: Claim]) -> String? {
        let mask = view.erasedMask, claim = claims[view.seq]
        guard mask != 0 || claim != nil else { return nil }
        return problem(seq: view.seq, mask: mask, details: RowView.string(view.row.details), claim: claim)
    }

    /// Rule 2 for one row: erased fields that no verified erasure entry claims.
    static func unclaimed(seq: Int64, mask: UInt8, claim: Claim?) -> String? {
        let unclaimed = mask & ~(claim?.mask ?? 0)
        guard unclaimed != 0 else { return nil }
        return "row \(seq) has \(names(unclaimed)) erased, but no erasure entry that verifies erased it (erased without AuditDB, or its erasure entry was removed or changed)"
    }

    /// Rule 4 for one claimed row: every claimed field is still erased, and a partially erased
    /// details is the residual its latest erasure entry recorded (FORMAT.md 21.7).
    static func mismatch(seq: Int64, mask stored: UInt8, details: String?, claim: Claim) -> String? {
        let restored = claim.mask & ~stored
        if restored == 8 && stored & 4 != 0 {
            return "row \(seq) has details erased whole, but erasure entry \(claim.residualEntry) erased only \(claim.pathList) inside it (the rest of details was removed without an erasure entry)"
        }
        if restored != 0 {
            let what = names(restored, paths: claim.pathList), entry = restored & 8 != 0 && restored & 3 == 0 ? claim.residualEntry : claim.entry
            return "erasure entry \(entry) erased \(what) of row \(seq), but the row holds it again (restored from a copy made before the erasure?)"
        }
        guard claim.mask & 8 != 0, let recorded = claim.residual, let details, ErasedDetails.hash(seq: seq, text: details) != recorded else {
            return nil
        }
        let back = (try? ErasedDetails(reading: details))?.restoredPaths(claim.paths) ?? []
        return back.isEmpty
            ? "the rest of row \(seq)'s details is not what erasure entry \(claim.residualEntry) recorded (changed after the erasure)"
            : "erasure entry \(claim.residualEntry) erased \(back.map(\.description).joined(separator: ", ")) of row \(seq), but its details hold it again"
    }

    /// What the verified erasure entries erased in one row.
    struct Claim {
        /// Seals bits: 0 actor, 1 source, 2 details, 3 details partially.
        var mask: UInt8 = 0
        /// The first entry that erased something here.
        var entry: Int64
        /// The paths erased inside details, and the latest entry that recorded the residual's hash.
        var paths: Set<MaskPath> = []
        var residual: [UInt8]?
        var residualEntry: Int64 = 0

        init(entry: Int64) { self.entry = entry }

        /// Whether erasing `mask` (fields whole) and `paths` in a row whose stored mask is
        /// `stored` only erases again what a verified entry erased and a restored copy brought
        /// back (the way out of rule 3 that docs/erasure.md gives: run the erasure again). Nothing
        /// else: an erasure made without an entry, or a residual changed in the file, is never
        /// signed anew.
        func isRedone(stored: UInt8, by mask: UInt8, paths: [MaskPath]) -> Bool {
            guard stored & ~self.mask == 0 else { return false }
            let restored = self.mask & ~stored
            guard restored != 0, restored & 3 & ~mask == 0 else { return false }
            guard restored & 0x0C != 0 else { return true }
            if self.mask & 8 == 0 { return mask & 4 != 0 }  // details was erased whole
            // Paths were erased inside details and the copy brought details back whole: erase
            // details whole, or every one of those paths again.
            return stored & 0x0C == 0 && (mask & 4 != 0 || self.paths.isSubset(of: Set(paths)))
        }

        var pathList: String { paths.sorted().map(\.description).joined(separator: ", ") }

        mutating func add(_ record: ErasureRecord, at index: Int, entry: Int64) {
            if record.fields.contains(.details) {  // erased whole: supersedes any partial erasure
                mask = (mask | 4) & ~8
                residual = nil
            } else if let hash = record.residuals.indices.contains(index) ? record.residuals[index] : nil, mask & 0x0C != 4 {
                mask |= ErasureRecord.partialDetails
                paths.formUnion(record.paths)
                residual = hash
                residualEntry = entry
            }
            mask |= record.mask
        }
    }

    /// The same for the current row of a statement reading ``RowLayout``'s columns; nil when its
    /// `seals` is not a 97-byte blob.
    static func mask(_ stmt: OpaquePointer) -> UInt8? {
        guard SQLite.type(stmt, RowLayout.seals) == SQLITE_BLOB, let seals = SQLite.blob(stmt, RowLayout.seals),
              seals.count == Int(ADB_SEALS_ERASED_LEN)
        else { return nil }
        return seals[0] & 15
    }

    /// The erased fields a stored `seals` value names: its first byte (bits 0-3) if it is a 97-byte blob, else none.
    static func mask(_ value: DatabaseValue) -> UInt8 {
        guard case .blob(let data) = value.storage, data.count == Int(ADB_SEALS_ERASED_LEN) else { return 0 }
        return (data.first ?? 0) & 15
    }

    /// "actor, details" for a mask; with bit 3 (details partially erased), `paths` (or "paths
    /// inside details") instead of details.
    static func names(_ mask: UInt8, paths: String = "paths inside details") -> String {
        let whole = mask & 8 != 0 ? mask & 3 : mask
        return (WithholdableField.allCases.filter { whole & (1 << ($0.id - 1)) != 0 }.map(\.rawValue)
            + (mask & 8 != 0 ? [paths] : [])).joined(separator: ", ")
    }
}
