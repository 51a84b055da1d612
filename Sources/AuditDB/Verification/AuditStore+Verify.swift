import Foundation
import GRDB
import Logging

extension AuditStore {
    /// Verifies the whole store: schema and triggers, the store header, and every row's MAC,
    /// chain link, seq continuity and key version.
    ///
    /// Runs on reader connections; appends continue meanwhile (rows appended during the pass
    /// are checked by the next one).
    ///
    /// - Returns: A report that is intact, or whose findings name the first affected seq and
    ///   the kind of damage.
    /// - Throws: ``AuditError`` only when the pass could not be completed (I/O error); damage,
    ///   including corrupt pages, is reported as findings.
    /// - Complexity: O(n) in the rows; uses two reader connections for large stores.
    public func verify() async throws -> IntegrityReport {
        do {
            let report = try await Verifier(
                pool: pool, keys: keys, expectedStoreID: configuration.expectedStoreID
            ).run()
            if !report.isIntact {
                logger.error(
                    "audit store verification failed",
                    metadata: ["store": "\(path)", "findings": "\(report.totalFindings)",
                               "first": "\(report.firstFinding.map(String.init(describing:)) ?? "")"])
            }
            return report
        } catch {
            throw AuditError.from(error, while: "verify \(path)")
        }
    }

    /// Verifies the store file at `path` without opening it for appends. A file that is not
    /// a readable database is reported as ``Finding/Kind/corruption``, not thrown.
    ///
    /// - Throws: ``AuditError`` `storeNotFound` if there is no file; `readOnly`/`storage` if
    ///   it cannot be opened at all.
    public static func verify(storeAt path: String, keys: KeyRing, configuration: Configuration = Configuration())
        async throws -> IntegrityReport
    {
        guard FileManager.default.fileExists(atPath: path) else {
            throw AuditError(.storeNotFound, "no store at \(path)")
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw AuditError(.readOnly, "cannot read \(path): permission denied")
        }
        let started = ContinuousClock.now
        var pool: DatabasePool?
        do {
            let opened = try makePool(path: path, configuration: configuration, readOnly: false)
            pool = opened
            let report = try await Verifier(
                pool: opened, keys: keys, expectedStoreID: configuration.expectedStoreID
            ).run()
            try opened.close()
            return report
        } catch {
            try? pool?.close()  // cleanup; the verification error is what the caller needs
            let auditError = AuditError.from(error, while: "verify \(path)")
            guard auditError.code == .corrupt else { throw auditError }
            return unreadableReport(auditError, started: started)
        }
    }

    private static func unreadableReport(_ error: AuditError, started: ContinuousClock.Instant) -> IntegrityReport {
        IntegrityReport(
            storeID: nil, rowsChecked: 0, lastSeq: 0,
            findings: [Finding(kind: .corruption, seqs: nil, message: "the file cannot be read as a database: \(error.message)")],
            totalFindings: 1, startedAt: .now(), duration: ContinuousClock.now - started)
    }
}
