import GRDB

extension Verifier {
    /// One pass. With `from`, an incremental pass: the schema and header as always, then only
    /// the rows after `from.seq`, chained from `from.mac` (and row `from.seq` must still have
    /// that MAC).
    ///
    /// The index side of the index proof and the rows are read in different read transactions
    /// (they run side by side). An erasure or an expiry (the only writes that change rows already
    /// in the log) committing between them makes the two sides disagree though nothing is wrong:
    /// when an `index-mismatch` coincides with an erasure or expiry entry appended after the
    /// pass's last seq, the pass is made again (at most ``passAttempts`` in all).
    func run(from position: Position? = nil) async throws -> IntegrityReport {
        var attempt = 1
        while true {
            let report = try await pass(from: position)
            guard attempt < Self.passAttempts, report.findings.contains(where: { $0.kind == .indexMismatch }),
                  try await rowsRewritten(after: report.lastSeq)
            else { return report }
            attempt += 1
        }
    }

    /// Whether an erasure or expiry entry was appended after `seq`: rows at or below it were
    /// rewritten after the pass that read up to `seq` began.
    /// A store too damaged to answer gets the report as it is (its findings stand).
    private func rowsRewritten(after seq: Int64) async throws -> Bool {
        do {
            return try await pool.read { db in
                try Bool.fetchOne(db, sql: """
                    SELECT EXISTS (SELECT 1 FROM audit_entries WHERE seq > ? AND action IN (?, ?) AND origin = 0)
                    """, arguments: [seq, ErasureRecord.action, ExpiryRecord.action]) ?? false
            }
        } catch is DatabaseError {
            return false
        }
    }
}
