import CAuditCore
import Foundation
import GRDB

/// Verification step 10 (FORMAT.md section 21.4): every erased field is accounted for by a
/// verified erasure entry, and every field an erasure entry erased is still erased.
///
/// An erasure keeps the row's MAC valid by construction, so the MAC alone cannot tell an erasure
/// AuditDB made from one made by someone who only has the file (replacing a value and its nonce by
/// the commitment needs no key). The signed entries can: they name each erased seq and field.
enum ErasureCheck {
    static let entriesCondition = """
         WHERE action = 'auditdb.erasure' AND action >= 'auditdb.' AND action < 'auditdb/' ORDER BY seq
        """

    /// The rows from seq ?1 on with erased fields (a 97-byte seals value; its first byte is the mask).
    static let erasedRowsSQL = """
        SELECT seq, seals FROM audit_entries
        WHERE seq >= ?1 AND typeof(seals) = 'blob' AND length(seals) = 97 ORDER BY seq
        """

    /// The findings of step 10. `fromSeq`: an incremental pass's first seq; rule 2 (an erased
    /// field no entry accounts for) then looks only at the rows the pass covers, as step 7 does
    /// (a full pass reads every row: about 0.5 s per million rows), while rules 1 and 3 always run
    /// in full: they cost one lookup per erased row.
    static func findings(_ db: Database, storeID: StoreID, keys: KeyRing, fromSeq: Int64? = nil) throws -> [Finding] {
        guard try db.tableExists("audit_entries"), try RowLayout.hasSeals(db) else { return [] }
        var findings: [Finding] = []
        func tampered(_ seq: Int64, _ message: String) {
            findings.append(Finding(kind: .erasureTampered, seqs: seq...seq, message: message))
        }
        // The erasure entries, read through verification ("verified" as step 4 has it, as for expiry entries).
        var reader = try EntryReader(db, storeID: storeID, keys: keys, mode: .mark)
        var entries: [AuditEntry] = []
        try reader.read(try db.makeStatement(sql: try RowLayout.select(db) + entriesCondition), into: &entries)
        // seq → the fields erasure entries erased there, and the first entry that did.
        var claimed: [Int64: (mask: UInt8, entry: Int64)] = [:]
        for entry in entries where entry.origin == .recorded && (entry.finding == nil || entry.finding?.kind == .missingRows) {
            let record: ErasureRecord
            do {
                record = try ErasureRecord(entry)
            } catch {
                tampered(entry.seq, "erasure entry \(entry.seq) is signed but cannot be read: \(error.reason)")
                continue
            }
            for seq in record.seqs {
                let before = claimed[seq]
                claimed[seq] = ((before?.mask ?? 0) | record.mask, before?.entry ?? entry.seq)
            }
        }
        // Every erased field must be claimed.
        let rows = try Row.fetchAll(db, sql: erasedRowsSQL, arguments: [fromSeq ?? Int64.min])
        for row in rows {
            let seq: Int64 = row[0]
            let unclaimed = mask(row[1]) & ~(claimed[seq]?.mask ?? 0)
            if unclaimed != 0 {
                tampered(seq, "row \(seq) has \(names(unclaimed)) erased, but no erasure entry that verifies erased it (erased without AuditDB, or its erasure entry was removed or changed)")
            }
        }
        // Every claimed field must still be erased (unless the row expired since, or is missing:
        // step 4 reports a missing row).
        let sealsAt = try db.cachedStatement(sql: "SELECT seals FROM audit_entries WHERE seq = ?")
        for (seq, claim) in claimed.sorted(by: { $0.key < $1.key }) {
            guard let row = try Row.fetchOne(sealsAt, arguments: [seq]) else { continue }
            let restored = claim.mask & ~mask(row[0])
            guard restored != 0 else { continue }
            tampered(seq, "erasure entry \(claim.entry) erased \(names(restored)) of row \(seq), but the row holds it again (restored from a copy made before the erasure?)")
        }
        return findings
    }

    /// The erased fields a stored `seals` value names: its first byte if it is a 97-byte blob, else none.
    static func mask(_ value: DatabaseValue) -> UInt8 {
        guard case .blob(let data) = value.storage, data.count == Int(ADB_SEALS_ERASED_LEN) else { return 0 }
        return (data.first ?? 0) & 7
    }

    /// "actor, details" for a mask.
    static func names(_ mask: UInt8) -> String {
        WithholdableField.allCases.filter { mask & (1 << ($0.id - 1)) != 0 }.map(\.rawValue).joined(separator: ", ")
    }
}
