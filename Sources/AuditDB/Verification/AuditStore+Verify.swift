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
    /// - Parameter progress: Told how many rows are checked as the pass goes (see
    ///   ``VerificationProgress``: from reader threads, keep it quick).
    /// - Complexity: O(n) in the rows; uses two reader connections for large stores.
    public func verify(progress: (@Sendable (VerificationProgress) -> Void)? = nil) async throws -> IntegrityReport {
        do {
            let report = try await Verifier(
                pool: pool, keys: keys, expectedStoreID: configuration.expectedStoreID,
                checkpointKeys: configuration.checkpointPublicKeys, progress: progress
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
    public static func verify(storeAt path: String, keys: KeyRing, configuration: Configuration = Configuration(),
                              progress: (@Sendable (VerificationProgress) -> Void)? = nil) async throws -> IntegrityReport
    {
        guard FileManager.default.fileExists(atPath: path) else {
            throw AuditError(.storeNotFound, "no store at \(path)")
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw AuditError(.readOnly, "cannot read \(path): permission denied")
        }
        let started = ContinuousClock.now
        var pool: (any DatabaseReader)?
        do {
            let opened = try openForReading(path, configuration)
            pool = opened
            let report = try await Verifier(
                pool: opened, keys: keys, expectedStoreID: configuration.expectedStoreID,
                checkpointKeys: configuration.checkpointPublicKeys, progress: progress
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

    /// Opens for verification: read-write when allowed, else read-only, so that an archived,
    /// read-only store (or an auditor with read access only) can still be verified.
    static func openForReading(_ path: String, _ configuration: Configuration) throws(AuditError)
        -> any DatabaseReader
    {
        // Read-only first: a read-write open writes (GRDB sets WAL mode up with a write
        // transaction when the -wal is empty), so it would wait for another process's writer and
        // fail on a full disk. Only a hot rollback journal (a bulk load killed before its commit)
        // needs a writable open, which plays it back.
        try StoreFile.refuseNonStore(path)
        let journal = StoreFile.companionSize(path, "-journal")
        if journal == 0 {
            do {
                return try makePool(path: path, configuration: configuration, readOnly: true)
            } catch {
                guard StoreFile.isSharedMemoryRefusal(error, path: path) else { throw error }
            }
        }
        do {
            return try makePool(path: path, configuration: configuration, readOnly: false)
        } catch {
            guard StoreFile.isSharedMemoryRefusal(error, path: path) else { throw error }
        }
        // A WAL database in a directory we cannot write opens only as immutable, when nothing
        // could be missed so (StoreFile.immutableURI).
        let uri = try StoreFile.immutableURI(path)
        var config = GRDB.Configuration()
        config.readonly = true
        do {
            return try DatabaseQueue(path: uri, configuration: config)
        } catch {
            throw AuditError.from(error, while: "open \(path) read-only")
        }
    }

    /// The report on a file that cannot be read as a database (`error`'s code is `corrupt`): one
    /// ``Finding/Kind/corruption`` finding, as verification and a scan of it both report.
    static func unreadableReport(_ error: AuditError, started: ContinuousClock.Instant) -> IntegrityReport {
        IntegrityReport(
            storeID: nil, rowsChecked: 0, lastSeq: 0,
            findings: [Finding(kind: .corruption, seqs: nil, message: "the file cannot be read as a database: \(SQLite.adviceInVerification(error.message))")],
            totalFindings: 1, startedAt: .now(), duration: ContinuousClock.now - started)
    }
}
