// The store's open/create/close life cycle; its configuration is in AuditStore+Configuration.swift,
// everything else in extensions by concern.
import Logging
import CoreMetrics
import CAuditCore
import CSodium
import Foundation
import GRDB
import Metrics
import Synchronization

/// An append-only, signed, chained audit log in one SQLite file.
///
/// Every appended event becomes a row with a gapless `seq`, an HMAC-SHA256 under the ring's
/// signing key version, and a link to the previous row. Triggers reject UPDATE, DELETE and
/// overwrites from any SQLite client; ``verify(progress:)`` proves the store intact or names the first
/// bad row.
///
/// ```swift
/// let keys = try KeyFile(path: "audit.keys").load()
/// let store = try await AuditStore.open(at: "audit.db", keys: keys)
/// let seq = try await store.append(AuditEvent(actor: "user:42", action: "login"))
/// let report = try await store.verify()
/// try await store.close()
/// ```
///
/// `AuditStore` is safe to use from any number of tasks. Concurrent appends are coalesced
/// into one transaction and one fsync (group commit); reads and verification run on WAL
/// reader connections and never block appends. An append that finds the store idle is written
/// on the calling task's thread, which then waits for the fsync itself (no thread hand-off: the
/// lowest latency for a lone caller).
public final class AuditStore: Sendable {
    /// When an append is acknowledged.
    public enum Durability: Sendable, Hashable {
        /// `append` returns after the row is committed and fsync'd (`synchronous=FULL`). Default.
        case synchronous
        /// For bulk loads: commits are not fsync'd one by one (`synchronous=NORMAL`); a crash
        /// may lose the last acknowledged appends, never corrupt the store. `critical` events
        /// are still fsync'd before `append` returns, and ``close()`` flushes everything.
        case relaxed
    }

    /// The store file.
    public let path: String
    /// The store's identity.
    public let storeID: StoreID
    /// The key ring in use.
    public let keys: KeyRing
    /// The configuration it was opened with.
    public let configuration: Configuration

    let pool: DatabasePool
    let logger: Logger
    let appender: Appender
    /// The file at ``path`` when the store was opened (see ``checkStillAtPath()``).
    let fileIdentity: Platform.FileIdentity?
    let closing = CloseOnce()
    /// What the verified erasure entries claim, for queries and erasures (read once, then extended).
    let erasureClaims = ErasureClaimsCache()
    /// Whether the write-ahead log may hold bytes that must leave it — an erasure's old values
    /// (its scrub did not finish), a compact's copy of the store, pages cut off by a release of
    /// free space — so that ``close()`` keeps trying to empty it for up to the busy timeout.
    let walScrubPending = Mutex(false)

    private init(path: String, storeID: StoreID, keys: KeyRing, configuration: Configuration, pool: DatabasePool,
                 knownKeyVersions: Set<UInt32>, rowFormat: UInt8 = UInt8(StoreFormat.rowFormat))
    {
        self.path = path
        self.storeID = storeID
        self.keys = keys
        self.configuration = configuration
        self.pool = pool
        self.fileIdentity = Platform.identity(of: path)
        let logger = configuration.logger ?? Logger(label: "auditdb", factory: { _ in SwiftLogNoOpLogHandler() })
        self.logger = logger
        self.appender = Appender(
            pool: pool, storeID: storeID, keys: keys, configuration: configuration, logger: logger,
            knownKeyVersions: knownKeyVersions, rowFormat: rowFormat)
    }

    // MARK: Creating and opening

    /// Creates a new, empty store at `path`.
    ///
    /// - Parameters:
    ///   - path: The SQLite file to create. Its directory must exist.
    ///   - keys: The key ring; its signing key signs the store header and every row.
    ///   - configuration: Behaviour settings.
    /// - Returns: The open store.
    /// - Throws: ``AuditError`` `storeExists` if a file is already there; storage errors.
    public static func create(at path: String, keys: KeyRing, configuration: Configuration = Configuration())
        async throws -> AuditStore
    {
        try await create(at: path, keys: keys, configuration: configuration, schemaUpTo: nil)
    }

    /// The mode of a store file, its -wal and -shm (SQLite copies it) and its backups: 0600.
    static let storeFileMode: Platform.FileMode = 0o600

    /// `create`, optionally stopping at an older migration (tests of upgrades use it).
    static func create(at path: String, keys: KeyRing, configuration: Configuration, schemaUpTo: String?)
        async throws -> AuditStore
    {
        // The file is created here, mode 0600 whatever the umask, never over an existing one;
        // SQLite gives the -wal and -shm files the mode of the database file.
        switch Platform.createEmpty(path, mode: storeFileMode) {
        case 0: break
        case Platform.fileExists:
            throw AuditError(.storeExists, "\(path) already exists; open it instead, or choose a new path")
        case let code:
            throw AuditError(.storage, "cannot create \(path): \(Platform.errorMessage(code)); check that its directory exists and is writable")
        }
        let pool = try makePool(path: path, configuration: configuration, readOnly: false)
        do {
            if let schemaUpTo {
                try StoreSchema.migrator.migrate(pool, upTo: schemaUpTo)
            } else {
                try StoreSchema.migrator.migrate(pool)
            }
            var id = [UInt8](repeating: 0, count: StoreFormat.storeIDLength)
            randombytes_buf(&id, id.count)
            let storeID = StoreID(bytes: id)
            let signer = keys.signingKey
            let created = AuditTimestamp.now().microsecondsSinceEpoch
            var mac = [UInt8](repeating: 0, count: StoreFormat.macLength)
            adb_header_mac(signer.keyset, id, created, UInt8(StoreFormat.formatVersion), signer.version, &mac)
            let headerArguments: StatementArguments = [
                Data(id), created, StoreFormat.formatVersion, Int64(signer.version), Data(mac),
            ]
            try await pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO audit_store(singleton, store_id, created_at, format_version, key_version, mac)
                        VALUES (1, ?, ?, ?, ?, ?)
                        """,
                    arguments: headerArguments)
            }
            // Only a store created without migration 0006 (schemaUpTo, for tests of older stores)
            // writes format-1 rows, as the releases before it did.
            // On the writer: a reader closing last at close() would leave -wal and -shm behind.
            let sealed = try await pool.writeWithoutTransaction { db in try RowLayout.hasSeals(db) }
            return AuditStore(
                path: path, storeID: storeID, keys: keys, configuration: configuration, pool: pool, knownKeyVersions: [],
                rowFormat: sealed ? UInt8(StoreFormat.rowFormat) : UInt8(ADB_FORMAT_KEYED_NONCES))
        } catch {
            throw AuditError.from(error, while: "create store \(path)")
        }
    }

    /// Opens an existing store with keys from `keyProvider` (a key file, the environment, or
    /// your own vault).
    public static func open(at path: String, keyProvider: some AuditKeyProvider,
                            configuration: Configuration = Configuration()) async throws -> AuditStore
    {
        try await open(at: path, keys: try await keyProvider.keyRing(), configuration: configuration)
    }

    /// Opens an existing store.
    ///
    /// Checks that the store's schema is one this binary knows, that the key ring has every
    /// key version the store has used, and (if configured) the store id. It does not verify
    /// the rows; call ``verify(progress:)`` for that.
    ///
    /// - Throws: ``AuditError`` `storeNotFound`, `notAStore`, `schemaTooNew`,
    ///   `migrationRequired`, `keyUnavailable` (naming the missing versions),
    ///   `storeIdentityMismatch`, or a storage error.
    public static func open(at path: String, keys: KeyRing, configuration: Configuration = Configuration())
        async throws -> AuditStore
    {
        guard FileManager.default.fileExists(atPath: path) else {
            throw AuditError(.storeNotFound, "no store at \(path); create one with `auditdb init`")
        }
        try StoreFile.refuseNonStore(path)
        if configuration.migratesOnOpen {
            guard !configuration.readOnly else {
                throw AuditError.invalid("configuration", "readOnly and migratesOnOpen cannot both be set: a read-only open cannot migrate")
            }
            _ = try await migrate(at: path, keys: keys, configuration: configuration)
        }
        // A hot rollback journal (a bulk load killed before its commit) is played back only by a
        // writable open: a read-only one would fail at its first read.
        let journal = StoreFile.companionSize(path, "-journal")
        let pool = configuration.readOnly && journal == 0
            ? try await readOnlyPool(path: path, configuration: configuration)
            : try makePool(path: path, configuration: configuration, readOnly: false)
        do {
            let (header, usedVersions, foreign) = try await pool.read { db in
                let header = try StoreHeader.read(db, path: path)
                try KeyProof.refuseWrongKeys(db, header: header, keys: keys, path: path)
                let (used, foreign) = try KeyVersionCache.confirmed(db)
                return (header, used, foreign)
            }
            let logger = configuration.logger ?? Logger(label: "auditdb", factory: { _ in SwiftLogNoOpLogHandler() })
            for (version, firstSeq) in foreign {
                logger.warning("ignoring a foreign audit_key_versions row that the log does not confirm; `auditdb verify` reports it",
                               metadata: ["store": "\(path)", "keyVersion": "\(version)", "firstSeq": "\(firstSeq)"])
            }
            let missing = (usedVersions.union([header.keyVersion])).subtracting(keys.versions).sorted()
            guard missing.isEmpty else {
                throw AuditError(
                    .keyUnavailable,
                    "the store has rows signed with key version(s) \(missing.map(String.init).joined(separator: ", ")) "
                        + "that the key ring lacks (it has \(keys.versions.map(String.init).joined(separator: ", "))); "
                        + "load the key file that holds them (if no key file has them, the store header or the rows "
                        + "were changed: run `auditdb verify`)")
            }
            if let expected = configuration.expectedStoreID, expected != header.storeID {
                throw AuditError(
                    .storeIdentityMismatch,
                    "\(path) is store \(header.storeID), not the expected store \(expected); the file may have been replaced")
            }
            return AuditStore(
                path: path, storeID: header.storeID, keys: keys, configuration: configuration, pool: pool,
                knownKeyVersions: usedVersions)
        } catch {
            // The open's error is the one to throw; a failure to close on the way out is logged.
            do {
                try pool.close()
            } catch let closeError {
                configuration.logger?.warning("could not close the store after a failed open",
                                              metadata: ["store": "\(path)", "error": "\(closeError)"])
            }
            throw AuditError.from(error, while: "open store \(path)")
        }
    }

    /// A read-only pool on `path`; in a directory this process cannot write (no `-shm` can be
    /// made there), an immutable one when nothing could be missed so (StoreFile.immutableURI).
    static func readOnlyPool(path: String, configuration: Configuration) async throws(AuditError) -> DatabasePool {
        do throws(AuditError) {
            let pool = try makePool(path: path, configuration: configuration, readOnly: true)
            do {
                _ = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") }
                return pool
            } catch {
                try? pool.close()  // cleanup: the failure, or the immutable open below, is what counts
                throw AuditError.from(error, while: "open \(path)")
            }
        } catch {
            guard StoreFile.isSharedMemoryRefusal(error, path: path) else { throw error }
        }
        return try makePool(path: try StoreFile.immutableURI(path), configuration: configuration, readOnly: true)
    }

    static func makePool(path: String, configuration: Configuration, readOnly: Bool) throws(AuditError) -> DatabasePool {
        var config = GRDB.Configuration.grdb(configuration, readOnly: readOnly)
        config.label = "auditdb"
        do {
            return try DatabasePool(path: path, configuration: config)
        } catch {
            throw AuditError.from(error, while: "open \(path)")
        }
    }

    /// Waits for pending appends, flushes the WAL to the database file, and closes every
    /// connection. Later calls on the store throw ``AuditError/Code/closed``; calling `close()`
    /// again (or concurrently, as ``run()`` does at shutdown) waits for the first close and
    /// returns.
    ///
    /// The write-ahead log is emptied by a TRUNCATE checkpoint that waits at most 25 ms for
    /// readers of older snapshots. If this handle erased values whose scrub did not finish,
    /// compacted the store or released free space, the close keeps trying as the erasure scrub
    /// does (every 200 ms, the writer free between attempts, for up to the busy timeout), so that
    /// those bytes leave the WAL; if a reader outlasts that, the WAL stays (logged at notice
    /// level) and the next checkpoint folds it in. Otherwise one attempt is made: a close after
    /// appends never waits for another process's long `verify` or scan (the WAL it leaves is
    /// folded in by the next checkpoint, and holds nothing that must leave the file). A
    /// checkpoint that fails (a full disk, a read-only file) is logged at warning level and does
    /// not fail the close: everything committed is durable in the WAL already, and a caller told
    /// "failed" after a commit would retry it.
    public func close() async throws {
        try await closing.run { () async throws(AuditError) in
            await appender.shutDown()
            do {
                do {
                    // A writable handle empties the WAL (it may hold an erasure's old bytes, or a
                    // compact's whole copy of the store, which SQLite's change count does not
                    // see); a read-only one writes nothing, so it neither waits for another
                    // process's writer nor fails on a full or read-only disk.
                    if !configuration.readOnly {
                        try await pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
                    }
                    if !configuration.readOnly {
                        if walScrubPending.withLock({ $0 }) {
                            if try await !scrubWriteAheadLog() {
                                logger.notice("the write-ahead log could not be emptied at close: a reader held an older snapshot for the whole busy timeout",
                                              metadata: ["store": "\(path)"])
                            }
                        } else if try await !scrubWriteAheadLog(attempts: 1) {
                            logger.debug("the write-ahead log was left for the next checkpoint at close: a reader holds an older snapshot",
                                         metadata: ["store": "\(path)"])
                        }
                    }
                } catch {
                    logger.warning("the write-ahead log could not be emptied at close; what was committed is durable in it, and the next checkpoint that succeeds folds it into the store file",
                                   metadata: ["store": "\(path)", "error": "\(AuditError.from(error, while: "checkpoint the write-ahead log").message)"])
                }
                try pool.close()
            } catch {
                throw AuditError.from(error, while: "close store \(path)")
            }
        }
    }

    // MARK: Appending

    /// Appends one event and returns its `seq` once it is committed (fsync'd, unless the
    /// store is ``Durability/relaxed`` and the event is not `critical`).
    ///
    /// - Throws: ``AuditError`` `invalidInput` naming the field for an event that breaks a
    ///   rule (nothing is written); storage errors such as `diskFull` or `busy` (nothing is
    ///   half-written; the next append works once the fault is gone).
    @discardableResult
    public func append(_ event: AuditEvent) async throws -> Int64 {
        try await append(contentsOf: [event]).lowerBound
    }

    /// Appends a batch in one transaction: all of it or none of it.
    ///
    /// - Returns: The seqs assigned, in order.
    /// - Throws: ``AuditError`` `invalidInput` naming the index and field of the first bad
    ///   event (nothing from the batch is written); storage errors; `cancelled` when the calling
    ///   task was cancelled and nothing was written. A cancelled task's batch is still written
    ///   whole if it was handed to the writer (a batch of fewer than 4,096 events always is; a
    ///   larger one on an idle store may stop before its transaction): either way, the seqs
    ///   returned or the error thrown say which.
    /// - Complexity: O(n) in the batch size; one fsync for the whole batch.
    @discardableResult
    public func append(contentsOf events: [AuditEvent]) async throws -> ClosedRange<Int64> {
        guard !events.isEmpty else {
            throw AuditError(.invalidInput, "append(contentsOf:) needs at least one event", field: "events")
        }
        // A large batch on an idle store is validated while it is written (on the MAC
        // pipeline's thread, ahead of the writer), not before: benchmarks/results/history.md, "1. Batched append".
        if events.count >= Self.overlappedValidationMinimum, ProcessInfo.processInfo.activeProcessorCount > 1,
           let range = try await appender.submitUnvalidated(events)
        {
            return range
        }
        let encoded: [EncodedEvent]
        do {
            encoded = try await Self.encode(events)
        } catch {
            appender.metrics.failures.increment()
            throw error
        }
        return try await appender.submit(encoded)
    }

    /// Batches at least this large are validated while they are written when the store is idle.
    static let overlappedValidationMinimum = 4_096

    /// Validates and lays out `events` for the writer: on the caller's task, and for large
    /// batches on two tasks at once (the writer is idle until the batch is ready).
    static func encode(_ events: [AuditEvent]) async throws(AuditError) -> [EncodedEvent] {
        @Sendable func encodeRange(_ range: Range<Int>) -> Result<[EncodedEvent], AuditError> {
            var out: [EncodedEvent] = []
            out.reserveCapacity(range.count)
            for index in range {
                do {
                    out.append(try encodeForAppend(events[index]))
                } catch {
                    if events.count == 1 { return .failure(error) }
                    return .failure(AuditError(
                        error.code, "event \(index): \(error.message)", field: error.field.map { "[\(index)].\($0)" }))
                }
            }
            return .success(out)
        }
        guard events.count >= 4_096, ProcessInfo.processInfo.activeProcessorCount > 1 else {
            return try encodeRange(0..<events.count).get()
        }
        let half = events.count / 2
        async let first = encodeRange(0..<half)
        let second = encodeRange(half..<events.count)
        // The first range's error (the lower index) wins, so the report names the first bad event.
        return try await first.get() + second.get()
    }

    /// Checks `event` against the rules ``append(_:)`` enforces, without writing anything.
    /// - Throws: ``AuditError`` `invalidInput` naming the field and the rule.
    public static func validate(_ event: AuditEvent) throws(AuditError) {
        _ = try encodeForAppend(event)
    }

    /// The highest seq in the store (0 when empty).
    public func lastSeq() async throws -> Int64 {
        do {
            return try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries NOT INDEXED") ?? 0 }
        } catch {
            throw AuditError.from(error, while: "read the last seq")
        }
    }
}

/// The `audit_store` row.
struct StoreHeader: Sendable {
    var storeID: StoreID
    var createdAt: Int64
    var formatVersion: Int64
    var keyVersion: UInt32
    var mac: [UInt8]
    /// Set by verification when `singleton` is not the INTEGER 1 (its CHECK switched off by
    /// another client): how it was found. The rest of the header is still read (FORMAT.md
    /// section 11, step 2.1): the header MAC binds the store id, not the singleton.
    var singletonProblem: String? = nil

    static func read(_ db: Database, path: String) throws -> StoreHeader {
        let applied = try StoreSchema.appliedMigrations(db)
        guard try db.tableExists("audit_store"), !applied.isEmpty else {
            if try db.tableExists("audit_store") || db.tableExists("audit_entries") {
                throw AuditError(
                    .corrupt,
                    "\(path) has AuditDB's tables but no record of its schema migrations (grdb_migrations is missing, empty or without its identifier column): another SQLite client removed it. Run `auditdb verify`, and restore the store from a backup")
            }
            throw AuditError(.notAStore, "\(path) is not an AuditDB store (no AuditDB tables); check the path")
        }
        let unknown = Set(applied).subtracting(StoreSchema.knownMigrations)
        guard unknown.isEmpty else { throw StoreSchema.tooNew(path, unknown: Array(unknown)) }
        let pending = StoreSchema.knownMigrations.filter { !applied.contains($0) }
        guard pending.isEmpty else {
            throw AuditError(
                .migrationRequired,
                "\(path) needs schema migrations \(pending.joined(separator: ", ")); run `auditdb migrate` (after a backup)")
        }
        let rows = try Row.fetchAll(
            db, sql: "SELECT store_id, created_at, format_version, key_version, mac FROM audit_store")
        guard rows.count == 1, let id = rows[0].stored("store_id", as: Data.self), id.count == StoreFormat.storeIDLength,
              let kv = rows[0].stored("key_version", as: Int64.self), let kv32 = UInt32(exactly: kv),
              let createdAt = rows[0].stored("created_at", as: Int64.self),
              let formatVersion = rows[0].stored("format_version", as: Int64.self)
        else {
            let what = rows.count == 1
                ? "its header row has a column of the wrong type or size" : "audit_store holds \(rows.count) row(s), not 1"
            throw AuditError(
                .corrupt,
                "\(path) has no valid store header (\(what)); creation did not finish or the file was tampered with. Run `auditdb verify`.")
        }
        return StoreHeader(
            storeID: StoreID(bytes: Array(id)), createdAt: createdAt,
            formatVersion: formatVersion, keyVersion: kv32,
            mac: Array(rows[0].stored("mac", as: Data.self) ?? Data()))
    }
}
