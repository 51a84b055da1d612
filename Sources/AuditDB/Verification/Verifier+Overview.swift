import Foundation
import GRDB

/// The first reads of a verification pass (Verifier.swift): steps 1–3, and step 8's reading of
/// the store's own checkpoints, in one read transaction.
extension Verifier {
    /// Steps 1–3, and step 8's reading of the checkpoints; the last element is the damaged page
    /// step 8 met reading the log's rows (reported at the end of the pass unless another step
    /// reports damage without a seq).
    func readOverview(full: Bool) async throws -> (
        [Finding], HeaderResult, (Int64?, Int64?, Int64), (Int64?, Int64?, Int64), [Int64: [Attestation]], Finding?
    ) {
        let keys = self.keys, checkpointKeys = self.checkpointKeys
        return try await pool.read { db in
            var checkpointDamage: Finding?
            let applied = try StoreSchema.appliedMigrations(db)
            var schemaFindings = try Self.checkSchema(db, applied: applied) + KeyVersionCache.findings(db)
            let header = try Self.readHeader(db)
            // A wrong key is a configuration mistake, not damage: refuse it as such instead of
            // reporting every row it cannot verify as tampered (KeyProof). Verification looks at
            // every row of a version before it calls its key wrong, so that tampering cannot
            // pass for a wrong key and keep itself from being reported.
            if case .success(let h) = header {
                try KeyProof.refuseWrongKeysExhaustively(db, header: h, keys: keys, path: "the store")
                // Step 8 reads the log's rows at the checkpoints' seqs: a damaged page there is the
                // log's damage, which the row scan (step 4) reports with its seqs, not the end of
                // the pass that damage in the schema, header or side tables is.
                do {
                    schemaFindings += try StoredCheckpointCheck.findings(db, storeID: h.storeID, trusted: checkpointKeys, full: full)
                } catch where Self.isCorruption(error) {
                    checkpointDamage = Finding(kind: .corruption, seqs: nil, message: "SQLite cannot read the store: \(Self.corruptionMessage(error))")
                }
                if full {
                    schemaFindings += try AttestationTable.foreignFindings(db, storeID: h.storeID.bytes, header: h, keys: keys)
                }
            }
            // A dropped audit_entries table is reported by the schema check; there are no rows to scan.
            guard try db.tableExists("audit_entries") else {
                return (schemaFindings, header, (nil, nil, 0), (nil, nil, 0), [:], checkpointDamage)
            }
            let first = try Int64.fetchOne(db, sql: "SELECT seq FROM audit_entries WHERE seq >= 1 ORDER BY seq LIMIT 1")
            let last = try Int64.fetchOne(db, sql: "SELECT seq FROM audit_entries NOT INDEXED WHERE seq >= 1 ORDER BY seq DESC LIMIT 1")
            // A damaged last page can hide the last row from one read and not the first row from
            // the other: the log's extent is then unknown (SQLite gave no error to report).
            guard (first == nil) == (last == nil) else {
                throw AuditError(.corrupt, "the table audit_entries returns a first row (seq \(first ?? 0)) but no last one: a damaged page")
            }
            let low = try Row.fetchOne(db, sql: "SELECT min(seq), max(seq), count(*) FROM audit_entries NOT INDEXED WHERE seq < 1")
            let attestations = try Self.loadAttestations(db, keys: keys)
            return (
                schemaFindings, header,
                (first, last, first.map { last! - $0 + 1 } ?? 0),
                (low?.stored(0, as: Int64.self), low?.stored(1, as: Int64.self), low?.stored(2, as: Int64.self) ?? 0),
                attestations, checkpointDamage
            )
        }
    }
}
