import CAuditCore
import Foundation
import GRDB

/// Where expiry archives the rows it is about to expire: one verifiable export bundle per batch
/// (docs/FORMAT.md section 17), with a signed completeness statement, written, synced and verified
/// before any of its rows goes.
public struct RetentionArchive: Sendable {
    /// The directory the bundles go into: `expiry-FIRST-LAST` per batch.
    public let directory: String
    /// The checkpoint signing key: bundles are proven against a checkpoint and their statement is
    /// signed with it (a checkpoint is made first when none covers the batch).
    public let signer: CheckpointSigner
    /// Whether a missing ``directory`` is created (mode 0700, parents included). Without it, a
    /// missing directory is refused before anything expires (and by a dry run), as `auditdb
    /// retain --archive` does: give a directory *on* the archive volume, which is missing while
    /// the volume is not mounted, so that the empty mount point never takes the only copy of the
    /// expired rows.
    public let createsDirectory: Bool

    /// An archive in `directory`, signed by `signer`; `createsDirectory`: see ``createsDirectory``.
    public init(directory: String, signer: CheckpointSigner, createsDirectory: Bool = true) {
        self.directory = directory
        self.signer = signer
        self.createsDirectory = createsDirectory
    }

    /// Checks ``directory`` before a run: it must be a directory, or missing when
    /// ``createsDirectory`` is set (it is created with the first bundle).
    /// - Throws: ``AuditError`` `invalidInput` naming what is there instead, or that it is missing.
    func checkDirectory() throws(AuditError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            if createsDirectory { return }
            throw AuditError(.invalidInput, "the archive directory \(directory) does not exist (an unmounted volume?); rows are archived "
                                + "there before they expire, so none expires while it is missing. Mount it, or create it "
                                + "(mkdir -p -m 700 \(Self.shellQuoted(directory)))", field: "archive")
        }
        guard isDirectory.boolValue else {
            throw AuditError(.invalidInput, "the archive directory \(directory) is not a directory; rows are archived there before "
                                + "they expire, so none expires. Give a directory for the archive bundles", field: "archive")
        }
    }

    /// `path` in single quotes for a shell (a `'` inside as `'\''`).
    static func shellQuoted(_ path: String) -> String {
        "'" + path.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// The staging directories of bundles that an interrupted run (a SIGKILL) left in
    /// ``directory`` (`.expiry-FIRST-LAST.partial-XXXXXXXX`): each holds copies of that batch's
    /// rows, values erased since included, and nothing removes it. Delete them.
    public func interruptedStaging() -> [String] {
        AuditStore.interruptedStaging(in: directory) { name in
            let parts = name.split(separator: "-", omittingEmptySubsequences: false)
            return parts.count == 3 && parts[0] == "expiry" && parts.dropFirst().allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
        }
    }
}

/// What ``AuditStore/applyRetention(_:now:dryRun:batchSize:archive:progress:)`` did (or, in a dry run, would do).
public struct RetentionReport: Sendable, Hashable {
    /// The time the policy was applied at.
    public let now: AuditTimestamp
    /// The policy applied.
    public let policy: RetentionPolicy
    /// Whether nothing was written.
    public let dryRun: Bool
    /// Rows expired (would be, in a dry run).
    public let expired: Int
    /// Rows the policy would expire that a legal hold kept.
    public let held: Int
    /// Expired rows of one tenant.
    public struct TenantCount: Sendable, Hashable {
        /// The tenant, exactly as the rows held it ("" for rows without a tenant).
        public let tenant: String
        /// How many of its rows expired (would, in a dry run).
        public let count: Int

        public static func == (a: TenantCount, b: TenantCount) -> Bool {
            JSONObject.Key(a.tenant) == JSONObject.Key(b.tenant) && a.count == b.count
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(JSONObject.Key(tenant))
            hasher.combine(count)
        }
    }

    /// Expired rows per tenant, each tenant once byte for byte ("café" composed and decomposed
    /// are two tenants), in code point order.
    public let expiredPerTenant: [TenantCount]
    /// Expired rows per tenant ("" for rows without a tenant). Canonically equivalent tenants
    /// share one key of a Swift dictionary, so their counts are added up here; see
    /// ``expiredPerTenant``.
    public var expiredByTenant: [String: Int] {
        Dictionary(expiredPerTenant.map { ($0.tenant, $0.count) }, uniquingKeysWith: +)
    }
    /// Rows the policy would expire that were kept because a tombstone already holds their seq:
    /// one no expiry wrote (an expiry deletes the row in the same transaction), which `verify`
    /// reports as `foreign-row`. The other rows expire; see docs/retention.md for removing it.
    public let keptByForeignTombstones: [Int64]
    /// The seqs of the expiry entries written, one per batch (none in a dry run).
    public let expiryEntries: [Int64]
    /// The archive bundles written, one per batch (none without an archive, or in a dry run).
    public let archives: [String]
    /// What giving the freed pages back to the file system did (nil when nothing expired, in a
    /// dry run, or when the task was cancelled once the last batch was committed: the next run
    /// gives them back). See ``AuditStore/releaseFreeSpace(pagesPerStep:)``.
    public let space: SpaceReport?
}

extension AuditStore {
    /// Expires the rows that `policy` no longer requires, with proof (docs/retention.md).
    ///
    /// A row expires when the policy's limit for its tenant allows it (`recordedAt < now − limit`),
    /// no active legal hold matches it, and it verifies (row tag and link). AuditDB never expires
    /// its own entries (actions `auditdb.*`: holds, key declarations, scan records, expiry
    /// entries), the newest row, or rows signed by a compromised key version. Rows go in batches
    /// of `batchSize`, each in one durable write transaction that inserts their tombstones, deletes
    /// them and appends a signed expiry entry (FORMAT.md section 20): a crash leaves whole batches
    /// only, and running again finishes the job. Appends wait at most one batch. Then the freed
    /// pages leave the file (``releaseFreeSpace(pagesPerStep:)``; see ``RetentionReport/space``).
    ///
    /// - Throws: ``AuditError`` `integrityViolation` (a candidate row or a hold entry does not
    ///   verify: nothing of that batch is written), `closed`, storage errors; `cancelled` when the
    ///   calling task is cancelled: the batch under way finishes, the ones after it are not begun, and
    ///   the message says how many rows expired (run again to finish). An error after some batches
    ///   were committed says how many rows those expired.
    /// With `archive` (its directory checked first: ``RetentionArchive/createsDirectory``), each batch's rows (the whole seq range of the batch, kept rows included) are
    /// first exported to a bundle in the archive directory, synced, read back and verified with the
    /// signer's public key, and only then expired; the expiry entry names the bundle and the SHA-256
    /// of its `manifest.json`. A run interrupted after a bundle was written finds it on the next run
    /// and uses it if it verifies.
    ///
    /// `progress`, if given, is told after each batch how many candidate rows (rows old enough
    /// for the loosest limit) are dealt with, of all candidates (``VerificationProgress``).
    public func applyRetention(_ policy: RetentionPolicy, now: AuditTimestamp = .now(), dryRun: Bool = false,
                               batchSize: Int = 10_000, archive: RetentionArchive? = nil,
                               progress: (@Sendable (VerificationProgress) -> Void)? = nil) async throws -> RetentionReport
    {
        guard batchSize >= 1 else { throw AuditError.invalid("batchSize", "must be at least 1") }
        // Also in a dry run: the check an operator runs first must fail as the real run would.
        try archive?.checkDirectory()
        let limits = [policy.defaultLimit] + policy.tenantOverrides.map(\.limit)
        let loosest = limits.compactMap { limit -> Int64? in
            guard case .maximumAge(let period) = limit else { return nil }
            let (cut, overflow) = now.microsecondsSinceEpoch.subtractingReportingOverflow(period.microseconds)
            return overflow ? nil : cut
        }.max()
        var report = Progress()
        guard let loosest else { return report.report(now: now, policy: policy, dryRun: dryRun) }
        var candidates: [Int64] = [], holdEntries: [Int64] = []
        do {
            (candidates, holdEntries) = try await pool.read { db in
                var rows: [Int64] = [], holds: [Int64] = []
                let cursor = try Row.fetchCursor(db, sql: Self.candidatesSQL, arguments: [loosest])
                while let row = try cursor.next() {
                    let seq: Int64 = row[0]
                    if row[1] as Bool { holds.append(seq) } else { rows.append(seq) }
                }
                return (rows, holds)
            }
        } catch let error where AuditError.isCancellation(error) {
            throw AuditError(.cancelled, "retention was stopped while it chose the rows; nothing expired. Run it again.")
        } catch {
            throw AuditError.from(error, while: "find the rows to expire")
        }
        var stopped = false, processed = 0
        for start in stride(from: 0, to: candidates.count, by: batchSize) {
            processed = start
            if start > 0 {
                progress?(VerificationProgress(rowsChecked: Int64(start), totalRows: Int64(candidates.count)))
                // Cancelled (the CLI on SIGTERM or SIGINT): stop between two batches and say how far it got.
                if Task.isCancelled {
                    stopped = true
                    break
                }
            }
            let chunk = Array(candidates[start..<min(candidates.count, start + batchSize)])
            // A batch once begun is not cancelled (an unstructured task): its archive is written
            // whole and its rows expire in one transaction, or it fails whole.
            let (batch, bundle): (Batch, String?)
            let began = ContinuousClock.now
            do {
                (batch, bundle) = try await Task {
                    try await self.retentionBatch(chunk, policy: policy, now: now, dryRun: dryRun, archive: archive, holdEntries: holdEntries)
                }.value
            } catch let error as AuditError where !dryRun && report.batch.expired > 0 {
                // The batches before this one are committed: say so, or a caller would take the
                // failure for "nothing expired".
                let next = error.code == .integrityViolation ? "" : "; run the same command again to finish"
                throw AuditError(error.code, error.message + " (the batches before it expired \(report.batch.expired) row(s), expiry entries "
                                    + "\(report.entries.map(String.init).joined(separator: ", "))\(next))",
                                 field: error.field, underlying: error.underlying)
            }
            if let bundle { report.archives.append(bundle) }
            report.add(batch)
            // Other processes' appends get the lock between two batches.
            if !dryRun, start + batchSize < candidates.count { await Self.pauseForOtherWriters(after: began) }
        }
        if stopped {
            let verb = dryRun ? "would expire" : "expired"
            let entries = report.entries.isEmpty ? "" : " (expiry entries \(report.entries.map(String.init).joined(separator: ", ")))"
            throw AuditError(
                .cancelled,
                "retention was stopped after \(processed) of \(candidates.count) candidate row(s): "
                    + "\(report.batch.expired) \(verb)\(entries), \(report.batch.held) kept by legal holds, "
                    + "\(processed - report.batch.expired - report.batch.held) kept by the policy (a tenant's own limit, or a row that never expires). "
                    + (dryRun ? "Run the dry run again for the whole answer." : "Run the same command again to finish."))
        }
        if !candidates.isEmpty { progress?(VerificationProgress(rowsChecked: Int64(candidates.count), totalRows: Int64(candidates.count))) }
        // Stopped during the last batch, the expiry itself is complete: the report says so, and the
        // freed pages are left to the next run (RetentionReport.space stays nil).
        if !dryRun && report.batch.expired > 0 && !Task.isCancelled {
            // The deleted rows' pages leave the file, a step at a time between appends.
            report.space = try await releaseFreeSpace()
        }
        return report.report(now: now, policy: policy, dryRun: dryRun)
    }

    /// One batch of ``applyRetention(_:now:dryRun:batchSize:archive:progress:)``: planned (a dry
    /// run stops there), archived when asked, then expired in one durable write transaction.
    /// Returns what it did and the path of its archive bundle, if any. `holdEntries`: the hold
    /// entries the candidates' read found in the table (``HoldLog/read(_:storeID:keys:strict:throughTable:listedToo:)``).
    func retentionBatch(_ chunk: [Int64], policy: RetentionPolicy, now: AuditTimestamp, dryRun: Bool,
                        archive: RetentionArchive?, holdEntries: [Int64] = []) async throws -> (Batch, String?)
    {
        let storeID = self.storeID, keys = self.keys, erasures = erasureClaims
        if dryRun {
            do {
                return (try await pool.read { db in try Self.expire(chunk, db, policy: policy, now: now, storeID: storeID, keys: keys, erasures: erasures, write: false, holdEntries: holdEntries) { _ in
                    throw AuditError(.storage, "internal error: a dry run tried to write")
                } }, nil)
            } catch let error as AuditError {
                throw error
            } catch {
                throw AuditError.from(error, while: "plan the expiry")
            }
        }
        var seqs = chunk
        var reference: ExpiryRecord.Archive?
        var heldInPlan: Int?
        var foreignInPlan: [Int64] = []
        var bundle: String?
        if let archive {
            // Plan the batch, archive exactly its range, then expire only what was planned.
            let plan = try await pool.read { db in
                try Self.expire(chunk, db, policy: policy, now: now, storeID: storeID, keys: keys, erasures: erasures, write: false, holdEntries: holdEntries) { _ in
                    throw AuditError(.storage, "internal error: planning tried to write")
                }
            }
            guard let first = plan.seqs.first, let last = plan.seqs.last else { return (plan, nil) }
            seqs = plan.seqs
            heldInPlan = plan.held  // the held rows are not among the seqs expired below
            foreignInPlan = plan.foreignTombstones  // nor these
            let written = try await archiveRows(first...last, expiring: plan.seqs, to: archive)
            reference = written
            bundle = archive.directory + "/" + written.bundle
        }
        let chosen = seqs, archived = reference
        var batch = try await holdTransaction("expire rows") { db, _, append in
            try Self.expire(chosen, db, policy: policy, now: now, storeID: storeID, keys: keys, erasures: erasures, write: true,
                            holdEntries: holdEntries, archive: archived, append: append)
        }
        if let heldInPlan { batch.held += heldInPlan }
        batch.foreignTombstones += foreignInPlan
        return (batch, bundle)
    }

    /// Rows old enough for the loosest limit, excluding AuditDB's own entries and the newest row
    /// (second column 0); and, from the same read of the table, the hold entries among them
    /// (second column 1). The holds themselves are found through the engine index
    /// (``HoldLog``); an entry this read finds that the index does not list was hidden from it,
    /// and expiry refuses rather than let the rows it holds go.
    static let candidatesSQL = """
        SELECT seq, action >= 'auditdb.' AND action < 'auditdb/' FROM audit_entries
        WHERE recorded_at < ?1 AND seq >= 1 AND seq < (SELECT max(seq) FROM audit_entries NOT INDEXED)
          AND (NOT (action >= 'auditdb.' AND action < 'auditdb/') OR action IN ('\(HoldEntry.placedAction)', '\(HoldEntry.releasedAction)'))
        ORDER BY seq
        """

    struct Batch: Sendable {
        var seqs: [Int64] = []
        var expired = 0
        var held = 0
        var byTenant: [JSONObject.Key: Int] = [:]  // byte for byte, as the rows hold them
        var foreignTombstones: [Int64] = []
        var entry: Int64?
    }

    struct Progress {
        var batch = Batch()
        var entries: [Int64] = []
        var archives: [String] = []
        var space: SpaceReport?

        mutating func add(_ b: Batch) {
            batch.expired += b.expired
            batch.held += b.held
            batch.foreignTombstones += b.foreignTombstones
            batch.byTenant.merge(b.byTenant, uniquingKeysWith: +)
            if let entry = b.entry { entries.append(entry) }
        }

        func report(now: AuditTimestamp, policy: RetentionPolicy, dryRun: Bool) -> RetentionReport {
            let perTenant = batch.byTenant.map { RetentionReport.TenantCount(tenant: $0.key.string, count: $0.value) }
                .sorted { $0.tenant.unicodeScalars.lexicographicallyPrecedes($1.tenant.unicodeScalars) }
            return RetentionReport(now: now, policy: policy, dryRun: dryRun, expired: batch.expired, held: batch.held,
                                   expiredPerTenant: perTenant, keptByForeignTombstones: batch.foreignTombstones,
                                   expiryEntries: entries, archives: archives, space: space)
        }
    }

    /// Decides, row by row, which of `seqs` expire, and (with `append`) expires them: tombstones
    /// in, rows out, one expiry entry. Inside the caller's transaction.
    /// `stated` and `ignoringHolds` exist for tests that play a key holder who breaks the rules
    /// (the verifier must report it): the record then states another policy than the one applied.
    static func expire(_ seqs: [Int64], _ db: Database, policy: RetentionPolicy, now: AuditTimestamp, storeID: StoreID,
                       keys: KeyRing, erasures: ErasureClaimsCache, write: Bool, stated: RetentionPolicy? = nil, ignoringHolds: Bool = false,
                       holdEntries: [Int64] = [], archive: ExpiryRecord.Archive? = nil,
                       append: ([EncodedEvent]) throws -> ClosedRange<Int64>) throws -> Batch
    {
        let holds = ignoringHolds ? [] : try HoldLog.read(db, storeID: storeID, keys: keys, listedToo: holdEntries).holds.filter(\.isActive)
        // A row must also be what the verified erasure entries made it: a value put back after
        // its erasure would otherwise be archived, and its evidence expire with the row.
        let claims = try erasures.claims(db, storeID: storeID, keys: keys)
        let macs = try StoredMacs(db)
        let statement = try db.makeStatement(sql: RowLayout.select + " WHERE seq = ?")
        let stmt = statement.sqliteStatement
        // A tombstone already at a row's seq was not written by an expiry (that deletes the row in
        // the same transaction): a foreign row, which verify reports. It must not block the others.
        let tombstoneAt = try db.makeStatement(sql: "SELECT EXISTS (SELECT 1 FROM audit_expired WHERE seq = ?)")
        let context = RowContext(storeID: storeID.bytes, keys: keys, attestations: [:])
        // A row signed by a compromised key version verifies by its re-attestation (as verify and
        // queries read it); it is then kept, never expired.
        let attestations = try AttestationLookup(db, keys: keys)
        let signing = keys.signingKey
        var batch = Batch()
        var tombstones: [Tombstone] = []
        var last: (seq: Int64, mac: [UInt8])?
        for seq in seqs {
            try SQLite.bind(stmt, 1, seq)
            defer { SQLite.reset(stmt) }
            guard try SQLite.step(stmt, while: "read row \(seq)") else { continue }  // expired meanwhile
            var view = RowView(stmt)
            var chain = RowChain()
            if seq > 1 {
                if let last, last.seq == seq - 1 {
                    chain.prevMac = last.mac
                } else if let stored = try macs.mac(at: seq - 1), stored.count == 32 {
                    chain.prevMac = stored
                } else {
                    chain.prevKnown = false
                }
            }
            let rowContext = try context.forRow(view, seq: seq, lookup: attestations)
            var leaf = [UInt8](repeating: 0, count: 32)
            let finding = leaf.withUnsafeMutableBufferPointer { out in
                view.check(seq: seq, chain: &chain, context: rowContext, leaf: out.baseAddress)
            }
            if let finding {
                throw AuditError(.integrityViolation, "row \(seq) does not verify (\(finding)); nothing of this batch was expired. Run `auditdb verify`.")
            }
            if let problem = ErasureCheck.problem(view, claims: claims) {
                throw AuditError(.integrityViolation, "row \(seq) does not verify (erasure-tampered at seq \(seq): \(problem)); nothing of this batch was expired. Run `auditdb verify`.")
            }
            guard chain.prevKnown || seq == 1 else {
                throw AuditError(.integrityViolation, "the row before seq \(seq) is missing; nothing of this batch was expired. Run `auditdb verify`.")
            }
            let row = view.row
            let tenant = RowView.string(row.tenant), actor = RowView.string(row.actor)
            let resourceType = RowView.string(row.resource_type), resourceId = RowView.string(row.resource_id)
            let correlationId = RowView.string(row.correlation_id)
            guard !context.compromised.contains(row.key_version),
                  policy.allowsExpiry(tenant: tenant, recordedAt: AuditTimestamp(microsecondsSinceEpoch: row.recorded_at), now: now)
            else { continue }
            if holds.contains(where: { $0.matches(tenant: tenant, actor: actor, resourceType: resourceType, resourceId: resourceId,
                                                  correlationId: correlationId) })
            {
                batch.held += 1
                continue
            }
            if try Bool.fetchOne(tombstoneAt, arguments: [seq]) == true {
                batch.foreignTombstones.append(seq)
                continue
            }
            let mac = view.storedMac
            last = (seq, mac)
            tombstones.append(Tombstone(
                seq: seq, keyVersion: row.key_version, mac: mac, leaf: leaf, recordedAt: row.recorded_at,
                tags: Tombstone.tags(tenant: tenant, actor: actor, resourceType: resourceType, resourceId: resourceId,
                                     correlationId: correlationId, key: signing, storeID: storeID),
                expirySeq: 0))
            batch.byTenant[JSONObject.Key(tenant ?? ""), default: 0] += 1
        }
        batch.expired = tombstones.count
        batch.seqs = tombstones.map(\.seq)
        guard write, let first = tombstones.first, let lastTombstone = tombstones.last else { return batch }
        let head = try Appender.readHead(db).seq
        let expirySeq = head + 1
        let record = ExpiryRecord(policy: stated ?? policy, now: now, first: first.seq, last: lastTombstone.seq,
                                  count: Int64(tombstones.count), digest: Tombstone.digest(tombstones), archive: archive)
        let insert = try db.makeStatement(sql: """
            INSERT INTO audit_expired(seq, key_version, mac, leaf, recorded_at, tags, expiry_seq) VALUES (?, ?, ?, ?, ?, ?, ?)
            """)
        let delete = try db.makeStatement(sql: "DELETE FROM audit_entries WHERE seq = ?")
        // Rows out first, so that a store at its size cap has the freed pages for the tombstones.
        for t in tombstones {
            try delete.execute(arguments: [t.seq])
            guard db.changesCount == 1 else {
                throw AuditError(.storage, "row \(t.seq) could not be deleted; nothing of this batch was expired")
            }
        }
        for t in tombstones {
            try insert.execute(arguments: [t.seq, Int64(t.keyVersion), Data(t.mac), Data(t.leaf), t.recordedAt, Data(t.tags), expirySeq])
        }
        let written = try append([try EncodedEvent(validating: record.event)])
        guard written.lowerBound == expirySeq else {
            throw AuditError(.storage, "the expiry entry was written at seq \(written.lowerBound), not \(expirySeq); nothing of this batch was expired")
        }
        batch.entry = expirySeq
        return batch
    }
}
