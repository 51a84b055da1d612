import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// Attestations (docs/FORMAT.md, section 10) and rows moved out of the tail (section 11, step 5)
/// for a verification pass.
extension Verifier {
    /// The attestations that count (FORMAT.md section 10): each one's declaration is a real
    /// `auditdb.key.compromised` entry that comes after the row it attests (seq 0 stands for the
    /// store header). Append `AND a.seq = ?` for one row's.
    static let attestationsSQL = """
        SELECT a.seq, a.key_version, a.declaration_seq, a.mac FROM audit_attestations a
        WHERE a.declaration_seq > a.seq
        AND EXISTS (SELECT 1 FROM audit_entries d WHERE d.seq = a.declaration_seq AND d.action = 'auditdb.key.compromised')
        """

    /// Rows of ``attestationsSQL`` by seq; rows with impossible types are left out (not counted).
    static func attestations(from rows: [Row]) -> [Int64: [Attestation]] {
        var attestations: [Int64: [Attestation]] = [:]
        for row in rows {
            guard let seq = row.stored(0, as: Int64.self), let kv = UInt32(exactly: row.stored(1, as: Int64.self) ?? -1),
                  let declaration = row.stored(2, as: Int64.self)
            else { continue }
            attestations[seq, default: []].append(
                Attestation(keyVersion: kv, declarationSeq: declaration, mac: Array(row.stored(3, as: Data.self) ?? Data())))
        }
        return attestations
    }

    /// Re-attestations, needed only when some key version is declared compromised.
    static func loadAttestations(_ db: Database, keys: KeyRing, always: Bool = false) throws -> [Int64: [Attestation]] {
        guard always || !keys.compromisedVersions.isEmpty, try db.tableExists("audit_attestations") else { return [:] }
        return attestations(from: try Row.fetchAll(db, sql: attestationsSQL))
    }


    /// Whether the row (or, at seq 0, the store header) whose MAC is `mac` has an attestation
    /// under a key version that is in the ring and not distrusted.
    static func hasValidAttestation(seq: Int64, keyVersion: UInt32, mac: UnsafePointer<UInt8>, storeID: [UInt8],
                                    keys: KeyRing, distrusted: Set<UInt32>, attestations: [Int64: [Attestation]]) -> Bool
    {
        attestations[seq, default: []].contains { att in
            guard !distrusted.contains(att.keyVersion), let key = keys.key(version: att.keyVersion), att.mac.count == 32
            else { return false }
            var expected = [UInt8](repeating: 0, count: 32)
            adb_attestation_mac(key.keyset, storeID, seq, keyVersion, mac, att.declarationSeq, &expected)
            return adb_ct_equal(expected, att.mac, 32) == 1
        }
    }


    /// For rows with seq below 1: if a row's tag verifies at one of the seqs just past the end
    /// of the log, it was moved out of that place (a cut tail); report that seq as missing.
    static func rowsMovedFromTheTail(_ db: Database, lastSeq: Int64, count: Int64, context: RowContext) throws -> [Finding] {
        let statement = try db.makeStatement(sql: try RowLayout.select(db) + " NOT INDEXED WHERE seq < 1 ORDER BY seq LIMIT 1000")
        let stmt = statement.sqliteStatement
        defer { SQLite.reset(stmt) }
        var findings: [Finding] = []
        // No seq exists past 2^63 − 1: a log whose last row was moved there has no candidates.
        guard lastSeq < .max, count > 0 else { return findings }
        let candidates = (lastSeq + 1)...(lastSeq > Int64.max - count ? Int64.max : lastSeq + count)
        while try SQLite.step(stmt, while: "read rows below seq 1") {
            let stored = SQLite.int64(stmt, RowLayout.seq)
            for candidate in candidates {
                var view = RowView(stmt)
                var chain = RowChain(prevKnown: false)
                let finding = view.check(seq: candidate, chain: &chain, context: context)
                let failing: Set<Finding.Kind> = [.macMismatch, .malformedRow, .unknownKeyVersion]
                let rowFailed = finding.map { failing.contains($0.kind) } ?? false
                if !rowFailed {
                    findings.append(Finding(
                        kind: .missingRows, seqs: candidate...candidate,
                        message: "the row of seq \(candidate) was moved out of the log to seq \(stored) (the tail was cut)"))
                    break
                }
            }
        }
        return findings
    }
}
