import Foundation
import GRDB

/// The first reads of a verification pass (Verifier.swift): steps 1–3, and the reads of step 6
/// (the side tables) and step 8 (the store's own checkpoints), in one read transaction.
extension Verifier {
    /// What the first reads of a pass found.
    struct Overview {
        /// Steps 1–3.
        var schemaFindings: [Finding] = []
        var header: HeaderResult
        /// The log's first and last seq ≥ 1 and the distance between them.
        var bounds: (Int64?, Int64?, Int64) = (nil, nil, 0)
        /// The rows below seq 1: lowest, highest, count.
        var lowRows: (Int64?, Int64?, Int64) = (nil, nil, 0)
        var attestations: [Int64: [Attestation]] = [:]
        /// Step 6's findings on the side tables, up to `sideDamage`.
        var sideFindings: [Finding] = []
        /// A damaged page step 6 met (reading the key-version cache or the attestations against
        /// the log and its tombstones). Step 6 comes after the rows (FORMAT.md section 11): the
        /// rows are still read and reported, then this ends the pass.
        var sideDamage: Finding?
        /// Step 8's findings on the store's own checkpoints.
        var checkpointFindings: [Finding] = []
        /// The damaged page step 8 met reading the log's rows (reported at the end of the pass
        /// unless another step reports damage without a seq).
        var checkpointDamage: Finding?
    }

    /// Steps 1–3, and the reads of steps 6 and 8, in one read transaction.
    func readOverview(full: Bool) async throws -> Overview {
        let keys = self.keys, checkpointKeys = self.checkpointKeys
        return try await pool.read { db in
            let applied = try StoreSchema.appliedMigrations(db)
            var overview = Overview(schemaFindings: try Self.checkSchema(db, applied: applied), header: try Self.readHeader(db))
            do {
                overview.sideFindings = try KeyVersionCache.findings(db)
            } catch where Self.isCorruption(error) {
                overview.sideDamage = Finding(kind: .corruption, seqs: nil, message: "SQLite cannot read the store: \(Self.corruptionMessage(error))")
            }
            // A wrong key is a configuration mistake, not damage: refuse it as such instead of
            // reporting every row it cannot verify as tampered (KeyProof). Verification looks at
            // every row of a version before it calls its key wrong, so that tampering cannot
            // pass for a wrong key and keep itself from being reported.
            if case .success(let h) = overview.header {
                try KeyProof.refuseWrongKeysExhaustively(db, header: h, keys: keys, path: "the store")
                // Step 8 reads the log's rows at the checkpoints' seqs: a damaged page there is the
                // log's damage, which the row scan (step 4) reports with its seqs, not the end of
                // the pass that damage in the schema, header or side tables is.
                do {
                    overview.checkpointFindings = try StoredCheckpointCheck.findings(db, storeID: h.storeID, trusted: checkpointKeys, full: full)
                } catch where Self.isCorruption(error) {
                    overview.checkpointDamage = Finding(kind: .corruption, seqs: nil, message: "SQLite cannot read the store: \(Self.corruptionMessage(error))")
                }
                if full, overview.sideDamage == nil {
                    do {
                        overview.sideFindings += try AttestationTable.foreignFindings(db, storeID: h.storeID.bytes, header: h, keys: keys)
                    } catch where Self.isCorruption(error) {
                        overview.sideDamage = Finding(kind: .corruption, seqs: nil, message: "SQLite cannot read the store: \(Self.corruptionMessage(error))")
                    }
                }
            }
            // A dropped audit_entries table is reported by the schema check; there are no rows to scan.
            guard try db.tableExists("audit_entries") else { return overview }
            let first = try Int64.fetchOne(db, sql: "SELECT seq FROM audit_entries WHERE seq >= 1 ORDER BY seq LIMIT 1")
            let last = try Int64.fetchOne(db, sql: "SELECT seq FROM audit_entries NOT INDEXED WHERE seq >= 1 ORDER BY seq DESC LIMIT 1")
            // A damaged last page can hide the last row from one read and not the first row from
            // the other: the log's extent is then unknown (SQLite gave no error to report).
            guard (first == nil) == (last == nil) else {
                throw AuditError(.corrupt, "the table audit_entries returns a first row (seq \(first ?? 0)) but no last one: a damaged page")
            }
            let low = try Row.fetchOne(db, sql: "SELECT min(seq), max(seq), count(*) FROM audit_entries NOT INDEXED WHERE seq < 1")
            overview.bounds = (first, last, first.map { last! - $0 + 1 } ?? 0)
            overview.lowRows = (low?.stored(0, as: Int64.self), low?.stored(1, as: Int64.self), low?.stored(2, as: Int64.self) ?? 0)
            overview.attestations = try Self.loadAttestations(db, keys: keys)
            return overview
        }
    }
}
