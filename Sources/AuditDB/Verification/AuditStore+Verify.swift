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
        let journal = (try? FileManager.default.attributesOfItem(atPath: path + "-journal")[.size] as? Int) ?? 0
        if journal == 0 {
            do {
                return try makePool(path: path, configuration: configuration, readOnly: true)
            } catch {
                guard error.code == .readOnly else { throw error }
            }
        }
        do {
            return try makePool(path: path, configuration: configuration, readOnly: false)
        } catch {
            guard error.code == .readOnly else { throw error }
        }
        // A WAL database in a directory we cannot write opens only as immutable. That is safe
        // only if no WAL content could be missed: no -wal file, or an empty one.
        let wal = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
        guard wal == 0 else {
            throw AuditError(
                .readOnly,
                "\(path) is read-only and its -wal file holds changes that cannot be read without write access to the directory; verify a copy, or run as a user who can write there")
        }
        // Nor a hot rollback journal (a bulk load killed before its commit, BulkLoadJournal): the
        // file then holds part of an uncommitted transaction, which only playing the journal back undoes.
        guard journal == 0 else {
            throw AuditError(
                .readOnly,
                "\(path) is read-only and its -journal file holds an interrupted transaction that only a writable open rolls back; open the store once as a user who can write there (that undoes it), or verify a copy of both files")
        }
        var config = GRDB.Configuration()
        config.readonly = true
        do {
            let encoded = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path
            return try DatabaseQueue(path: "file:\(encoded)?immutable=1", configuration: config)
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
