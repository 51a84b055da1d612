import Foundation
import GRDB

extension AuditStore {
    /// Which schema migrations a store has and lacks.
    public struct MigrationPlan: Sendable, Hashable {
        /// Migrations already applied, in order.
        public let applied: [String]
        /// Migrations this binary would apply, in order.
        public let pending: [String]
        /// True when nothing needs to be done.
        public var isUpToDate: Bool { pending.isEmpty }
    }

    /// What a migration run is doing, for progress reporting.
    public enum MigrationProgress: Sendable, Hashable {
        /// Checking the store before changing anything.
        case verifying
        /// Writing a consistent copy of the store to this path (`VACUUM INTO`).
        case backingUp(path: String)
        /// Applying migration `name`, number `index` (from 1) of `count`.
        case applying(name: String, index: Int, count: Int)
        /// Checking the store after migration `name`.
        case verifyingAfter(name: String)
    }

    /// Where the backup copy goes.
    public enum BackupPolicy: Sendable, Hashable {
        /// Next to the store: `<store>.backup-<UTC time>`. The default.
        case automatic
        /// At this path (which must not exist).
        case at(String)
        /// No backup. Only for callers that made their own.
        case none
    }

    /// What ``migrate(at:keys:backup:configuration:progress:)`` did.
    public struct MigrationReport: Sendable {
        /// The migrations applied by this run (empty when the store was up to date).
        public let applied: [String]
        /// The backup written before the first change, if any.
        public let backupPath: String?
        /// The verification after the last migration (or of the up-to-date store).
        public let verification: IntegrityReport
    }

    /// The migrations the store at `path` has and would get, without changing anything
    /// (a read-only look; `auditdb migrate --dry-run`).
    /// - Throws: ``AuditError`` `storeNotFound`, `notAStore`, or `schemaTooNew` for a store
    ///   written by a newer AuditDB.
    /// `configuration`: its busy timeout bounds the wait for a lock.
    public static func migrationPlan(at path: String, configuration: Configuration = Configuration()) async throws -> MigrationPlan {
        guard FileManager.default.fileExists(atPath: path) else {
            throw AuditError(.storeNotFound, "no store at \(path)")
        }
        let pool = try openForReading(path, configuration)  // read-only first: writes nothing, waits for no writer
        defer { try? pool.close() }  // read-only use; nothing to flush
        do {
            let applied = try await pool.read { try StoreSchema.appliedMigrations($0) }
            return try plan(applied: applied, path: path)
        } catch {
            throw AuditError.from(error, while: "read the schema version of \(path)")
        }
    }

    static func plan(applied: [String], path: String) throws(AuditError) -> MigrationPlan {
        guard !applied.isEmpty else {
            throw AuditError(.notAStore, "\(path) is not an AuditDB store (no AuditDB migrations recorded)")
        }
        let unknown = applied.filter { !StoreSchema.knownMigrations.contains($0) }
        guard unknown.isEmpty else { throw StoreSchema.tooNew(path, unknown: unknown) }
        return MigrationPlan(applied: applied, pending: StoreSchema.knownMigrations.filter { !applied.contains($0) })
    }

    /// Brings the store at `path` to this binary's schema: verifies it, writes a consistent
    /// backup, then applies each pending migration in its own transaction (triggers are only
    /// ever changed inside that transaction, so no committed row is unprotected at any point)
    /// and verifies the store after each one. Running it again is a no-op.
    ///
    /// ```swift
    /// let report = try await AuditStore.migrate(at: path, keys: keys) { print($0) }
    /// ```
    ///
    /// `configuration`: its busy timeout bounds every wait for a lock (the default, 30 s).
    ///
    /// - Throws: ``AuditError`` `schemaTooNew` (never downgrades), `integrityViolation` if the
    ///   store does not verify before or after a migration (restore the backup), storage errors.
    public static func migrate(at path: String, keys: KeyRing, backup: BackupPolicy = .automatic,
                               configuration: Configuration = Configuration(),
                               progress: (@Sendable (MigrationProgress) -> Void)? = nil) async throws -> MigrationReport
    {
        let current = try await migrationPlan(at: path, configuration: configuration)
        // A chosen backup path that is taken is refused before the full verification, which can
        // take minutes on a large store (and again below, just before the copy).
        if !current.isUpToDate, case .at(let chosen) = backup, FileManager.default.fileExists(atPath: chosen) {
            throw backupPathTaken(chosen)
        }
        progress?(.verifying)
        let before = try await verify(storeAt: path, keys: keys, configuration: configuration)
        guard before.isLogIntact else {
            throw AuditError(
                .integrityViolation,
                "\(path) does not verify intact before migrating (\(Self.damage(before))); nothing was changed. Investigate with `auditdb verify`; if it names the migration record (`grdb_migrations`), see docs/migrations.md, \"The migration record changed by another client\".")
        }
        guard !current.isUpToDate else {
            return MigrationReport(applied: [], backupPath: nil, verification: before)
        }
        let pool = try makePool(path: path, configuration: configuration, readOnly: false)
        do {
            var backupPath: String?
            switch backup {
            case .none: break
            case .automatic: backupPath = "\(path).backup-\(AuditTimestamp.now().iso8601.replacingOccurrences(of: ":", with: ""))"
            case .at(let chosen): backupPath = chosen
            }
            if let backupPath {
                if FileManager.default.fileExists(atPath: backupPath) { throw backupPathTaken(backupPath) }
                progress?(.backingUp(path: backupPath))
                try await writeBackup(of: pool, to: backupPath)
            }
            let migrator = StoreSchema.migrator
            var applied: [String] = []
            var last = before
            for (index, name) in current.pending.enumerated() {
                progress?(.applying(name: name, index: index + 1, count: current.pending.count))
                do {
                    try migrator.migrate(pool, upTo: name)
                } catch {
                    // Two `migrate` runs at once: the other one recorded this migration first.
                    let recorded = try? await pool.read { db in  // only to name the cause; the error stays
                        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM grdb_migrations NOT INDEXED WHERE identifier = ?)", arguments: [name])
                    }
                    if recorded == true {
                        throw AuditError(.busy, "another process applied migration \(name) of \(path) while this one ran; nothing of it was "
                            + "applied twice. Run `auditdb migrate` again once the other run has ended: it applies what is left, or has nothing to do")
                    }
                    throw error
                }
                applied.append(name)
                progress?(.verifyingAfter(name: name))
                last = try await Verifier(pool: pool, keys: keys, expectedStoreID: nil).run()
                guard last.isLogIntact else {
                    throw AuditError(
                        .integrityViolation,
                        "\(path) does not verify after migration \(name) (\(last)); restore the backup \(backupPath ?? "(none taken)")")
                }
            }
            try pool.close()
            return MigrationReport(applied: applied, backupPath: backupPath, verification: last)
        } catch {
            try? pool.close()  // cleanup; the migration error is what the caller needs
            throw AuditError.from(error, while: "migrate \(path)")
        }
    }

    private static func backupPathTaken(_ path: String) -> AuditError {
        AuditError(.invalidInput, "the backup path \(path) already exists; choose another", field: "backup")
    }

    /// `VACUUM INTO` a new file named `<backupPath>.partial-<pid>` (created first with the store's
    /// mode, 0600), synced (SQLite does not sync what VACUUM INTO writes), then linked to
    /// `backupPath` (the caller checked that it does not exist): a run killed while copying leaves
    /// a file named partial, never a truncated one under the backup's name.
    static func writeBackup(of pool: DatabasePool, to backupPath: String) async throws {
        // Our own pid: a file with that name is left by a killed run whose pid was reused.
        let partial = "\(backupPath).partial-\(Platform.processID)"
        Platform.unlink(partial)
        Platform.unlink(partial + "-journal")
        switch Platform.createEmpty(partial, mode: storeFileMode) {
        case 0: break
        case let code:
            throw AuditError(.storage, "cannot create the backup \(partial): \(Platform.errorMessage(code))", field: "backup")
        }
        defer { Platform.unlink(partial) }
        try await pool.writeWithoutTransaction { db in
            try db.execute(sql: "VACUUM INTO ?", arguments: [partial])
        }
        let fd = Platform.openForReading(partial)
        let synced = fd >= 0 && Platform.sync(fd)
        let syncCode = Platform.errorCode
        if fd >= 0 { Platform.close(fd) }
        guard synced else {
            throw AuditError(.storage, "cannot sync the backup \(partial): \(Platform.errorMessage(syncCode))", field: "backup")
        }
        // link() never replaces a file; a file system without hard links (SMB, exFAT, some FUSE)
        // refuses it, and there a rename after a last check is the best it offers.
        var named = Platform.link(partial, to: backupPath)
        var code = Platform.errorCode
        if !named, code != Platform.fileExists, !FileManager.default.fileExists(atPath: backupPath) {
            named = Platform.rename(partial, to: backupPath)
            code = Platform.errorCode
        }
        guard named else {
            let exists = code == Platform.fileExists || FileManager.default.fileExists(atPath: backupPath)
            throw AuditError(exists ? .invalidInput : .storage,
                             "cannot name the backup \(backupPath): \(exists ? "it exists now (created meanwhile); choose another" : Platform.errorMessage(code))",
                             field: "backup")
        }
        Platform.syncDirectory(of: backupPath)
    }

    /// The report's damage: its findings other than the ones a store awaiting migration has
    /// anyway (`schema-outdated`, `foreign-row`), which would hide the first real one.
    static func damage(_ report: IntegrityReport) -> String {
        let damage = report.findings.filter { $0.kind != .schemaOutdated && $0.kind != .foreignRow }
        guard let first = damage.first else { return String(describing: report) }
        return "\(report.totalFindings) finding(s); first damage: \(first)"
    }
}
