import GRDB
import Logging

extension AuditStore {
    /// Rebuilds every query index from the rows (SQLite `REINDEX`), the time breaks
    /// (`audit_time_breaks`, FORMAT.md section 24) from the rows and tombstones, and the key
    /// version cache (`audit_key_versions`: the first seq of each version of the key ring that
    /// signed the log), after ``verify(progress:)`` reported ``Finding/Kind/indexMismatch`` (or a
    /// `foreign-row` time break or cache row): all three hold derived data only, so rebuilding
    /// them changes no row and no MAC. Keep a copy of the damaged file first if it is evidence.
    ///
    /// - Returns: The report of a full verification pass run afterwards.
    /// - Throws: ``AuditError`` storage errors; `integrityViolation` if an index still does not
    ///   match its rows afterwards (its definition in the schema was changed: see the
    ///   `schema-tampered` findings).
    public func repairIndexes() async throws -> IntegrityReport {
        let versions = keys.versions
        do {
            try await appender.exclusiveTransaction { db, _ in
                for index in IndexProof.indexes
                where try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?)",
                                        arguments: [index.name]) == true
                {
                    try db.execute(sql: "REINDEX \(index.name)")
                }
                try TimeBreaks.refill(db)
                try KeyVersionCache.rebuild(db, versions: versions)
            }
        } catch {
            throw AuditError.from(error, while: "rebuild the indexes of \(path)")
        }
        logger.notice("query indexes rebuilt", metadata: ["store": "\(path)"])
        let report = try await verify()
        if report.findings.contains(where: { $0.kind == .indexMismatch }) {
            throw AuditError(.integrityViolation,
                             "an index still does not match its rows after REINDEX (\(report)); its definition was changed. Run `auditdb verify`.")
        }
        return report
    }
}
