import CAuditCore
import Foundation
import GRDB

/// The `audit_attestations` table seen as attacker-controlled input (docs/FORMAT.md, sections 10
/// and 11 step 6): which of its rows the signed log does not account for.
///
/// A row is **foreign** when its columns have impossible types (`seq`, `key_version`,
/// `declaration_seq` not INTEGER, `key_version` not in 0..2^32−1, `mac` not a 32-byte BLOB); when
/// it does not count (section 10: its declaration is not an `auditdb.key.compromised` entry after
/// the row it attests); when what it attests does not exist (no log row at its seq, or seq 0 with
/// no header); or when its key version is in the ring and its MAC does not verify over the attested
/// row (or header) as stored. A row under a key version the ring lacks cannot be checked and is not
/// reported. Verification ignores foreign rows for attestation purposes anyway (a row that does not
/// verify attests nothing); reporting them says that someone wrote to the table.
enum AttestationTable {
    /// At most this many foreign rows are named one by one; the rest are counted.
    static let namedLimit = 100

    static func foreignFindings(_ db: Database, storeID: [UInt8], header: StoreHeader?, keys: KeyRing) throws -> [Finding] {
        guard try db.tableExists("audit_attestations"), try db.tableExists("audit_entries") else { return [] }
        // An expired row is attested through its tombstone (FORMAT.md section 20.4). One lookup
        // by seq per attestation in each table (a join with the union of both made SQLite
        // materialise every row of the log first).
        let expired = try db.tableExists("audit_expired")
        let rows = try Row.fetchCursor(db, sql: """
            SELECT a.seq, a.key_version, a.declaration_seq, a.mac,
                   typeof(a.seq) = 'integer' AND typeof(a.key_version) = 'integer' AND typeof(a.declaration_seq) = 'integer'
                       AND typeof(a.mac) = 'blob' AND length(a.mac) = 32,
                   a.declaration_seq > a.seq AND EXISTS (SELECT 1 FROM audit_entries d
                       WHERE d.seq = a.declaration_seq AND d.action = 'auditdb.key.compromised'),
                   CASE WHEN l.seq IS NOT NULL THEN l.key_version ELSE \(expired ? "x.key_version" : "NULL") END,
                   CASE WHEN l.seq IS NOT NULL THEN l.mac ELSE \(expired ? "x.mac" : "NULL") END
            FROM audit_attestations a LEFT JOIN audit_entries l ON l.seq = a.seq AND a.seq >= 1
            \(expired ? "LEFT JOIN audit_expired x ON x.seq = a.seq AND a.seq >= 1" : "")
            """)
        var named: [Finding] = []
        var total = 0
        while let row = try rows.next() {
            let seqText = (row[0] as DatabaseValue).description, kvText = (row[1] as DatabaseValue).description
            var why: String?
            if row.stored(4, as: Bool.self) != true || UInt32(exactly: row.stored(1, as: Int64.self) ?? -1) == nil {
                why = "its columns have impossible types or values"
            } else if row.stored(5, as: Bool.self) != true {
                why = "its declaration_seq does not name an auditdb.key.compromised entry after the row it attests"
            } else if let seq = row.stored(0, as: Int64.self), let kv = UInt32(exactly: row.stored(1, as: Int64.self) ?? -1),
                      let declaration = row.stored(2, as: Int64.self), let mac = row.stored(3, as: Data.self)
            {
                let target: (UInt32, [UInt8])?
                if seq == 0 {
                    target = header.map { ($0.keyVersion, $0.mac) }
                } else if let tkv = row.stored(6, as: Int64.self).flatMap(UInt32.init(exactly:)), let tmac = row.stored(7, as: Data.self), tmac.count == 32 {
                    target = (tkv, Array(tmac))
                } else {
                    target = nil
                }
                if let target, target.1.count == 32 {
                    if let key = keys.key(version: kv) {
                        var expected = [UInt8](repeating: 0, count: 32)
                        adb_attestation_mac(key.keyset, storeID, seq, target.0, target.1, declaration, &expected)
                        if adb_ct_equal(expected, Array(mac), 32) != 1 {
                            why = "its MAC does not verify over the row it attests (forged, or that row was changed)"
                        }
                    }
                } else {
                    why = seq == 0 ? "it attests the store header, which is missing or invalid" : "it attests seq \(seq), which is not in the log"
                }
            }
            guard let why else { continue }
            total += 1
            if named.count < namedLimit {
                named.append(Finding(
                    kind: .foreignRow, seqs: nil,
                    message: "audit_attestations row (seq \(seqText), key_version \(kvText)) is not an attestation AuditDB wrote: \(why). It attests nothing; another SQLite client inserted it"))
            }
        }
        if total > named.count {
            named.append(Finding(kind: .foreignRow, seqs: nil, message: "\(total - named.count) more foreign audit_attestations row(s)"))
        }
        return named
    }
}
