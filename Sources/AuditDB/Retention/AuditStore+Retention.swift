import CAuditCore
import Foundation
import GRDB

/// What ``AuditStore/applyRetention(_:now:dryRun:batchSize:)`` did (or, in a dry run, would do).
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
    /// Expired rows per tenant ("" for rows without a tenant).
    public let expiredByTenant: [String: Int]
    /// The seqs of the expiry entries written, one per batch (none in a dry run).
    public let expiryEntries: [Int64]
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
    /// only, and running again finishes the job. Appends wait at most one batch.
    ///
    /// - Throws: ``AuditError`` `integrityViolation` (a candidate row or a hold entry does not
    ///   verify: nothing of that batch is written), `closed`, storage errors.
    public func applyRetention(_ policy: RetentionPolicy, now: AuditTimestamp = .now(), dryRun: Bool = false,
                               batchSize: Int = 10_000) async throws -> RetentionReport
    {
        guard batchSize >= 1 else { throw AuditError.invalid("batchSize", "must be at least 1") }
        let limits = [policy.defaultLimit] + Array(policy.tenantLimits.values)
        let loosest = limits.compactMap { limit -> Int64? in
            guard case .maximumAge(let period) = limit else { return nil }
            let (cut, overflow) = now.microsecondsSinceEpoch.subtractingReportingOverflow(period.microseconds)
            return overflow ? nil : cut
        }.max()
        var report = Progress()
        guard let loosest else { return report.report(now: now, policy: policy, dryRun: dryRun) }
        let candidates: [Int64]
        do {
            candidates = try await pool.read { db in try Int64.fetchAll(db, sql: Self.candidatesSQL, arguments: [loosest]) }
        } catch {
            throw AuditError.from(error, while: "find the rows to expire")
        }
        let storeID = self.storeID, keys = self.keys
        for start in stride(from: 0, to: candidates.count, by: batchSize) {
            let chunk = Array(candidates[start..<min(candidates.count, start + batchSize)])
            let batch: Batch
            if dryRun {
                do {
                    batch = try await pool.read { db in try Self.expire(chunk, db, policy: policy, now: now, storeID: storeID, keys: keys, write: false) { _ in
                        throw AuditError(.storage, "internal error: a dry run tried to write")
                    } }
                } catch let error as AuditError {
                    throw error
                } catch {
                    throw AuditError.from(error, while: "plan the expiry")
                }
            } else {
                batch = try await holdTransaction("expire rows") { db, _, append in
                    try Self.expire(chunk, db, policy: policy, now: now, storeID: storeID, keys: keys, write: true, append: append)
                }
            }
            report.add(batch)
        }
        return report.report(now: now, policy: policy, dryRun: dryRun)
    }

    /// Rows old enough for the loosest limit, excluding AuditDB's own entries and the newest row.
    static let candidatesSQL = """
        SELECT seq FROM audit_entries
        WHERE recorded_at < ?1 AND seq >= 1 AND seq < (SELECT max(seq) FROM audit_entries)
          AND NOT (action >= 'auditdb.' AND action < 'auditdb/')
        ORDER BY seq
        """

    struct Batch: Sendable {
        var expired = 0
        var held = 0
        var byTenant: [String: Int] = [:]
        var entry: Int64?
    }

    struct Progress {
        var batch = Batch()
        var entries: [Int64] = []

        mutating func add(_ b: Batch) {
            batch.expired += b.expired
            batch.held += b.held
            batch.byTenant.merge(b.byTenant, uniquingKeysWith: +)
            if let entry = b.entry { entries.append(entry) }
        }

        func report(now: AuditTimestamp, policy: RetentionPolicy, dryRun: Bool) -> RetentionReport {
            RetentionReport(now: now, policy: policy, dryRun: dryRun, expired: batch.expired, held: batch.held,
                            expiredByTenant: batch.byTenant, expiryEntries: entries)
        }
    }

    /// Decides, row by row, which of `seqs` expire, and (with `append`) expires them: tombstones
    /// in, rows out, one expiry entry. Inside the caller's transaction.
    /// `stated` and `ignoringHolds` exist for tests that play a key holder who breaks the rules
    /// (the verifier must report it): the record then states another policy than the one applied.
    static func expire(_ seqs: [Int64], _ db: Database, policy: RetentionPolicy, now: AuditTimestamp, storeID: StoreID,
                       keys: KeyRing, write: Bool, stated: RetentionPolicy? = nil, ignoringHolds: Bool = false,
                       append: ([EncodedEvent]) throws -> ClosedRange<Int64>) throws -> Batch
    {
        let holds = ignoringHolds ? [] : try HoldLog.read(db, storeID: storeID, keys: keys).holds.filter(\.isActive)
        let macs = try StoredMacs(db)
        let statement = try db.makeStatement(sql: RowLayout.select + " WHERE seq = ?")
        let stmt = statement.sqliteStatement
        let context = RowContext(storeID: storeID.bytes, keys: keys, attestations: [:])
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
            var leaf = [UInt8](repeating: 0, count: 32)
            let finding = leaf.withUnsafeMutableBufferPointer { out in
                view.check(seq: seq, chain: &chain, context: context, leaf: out.baseAddress)
            }
            if let finding {
                throw AuditError(.integrityViolation, "row \(seq) does not verify (\(finding)); nothing of this batch was expired. Run `auditdb verify`.")
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
            let mac = view.storedMac
            last = (seq, mac)
            tombstones.append(Tombstone(
                seq: seq, keyVersion: row.key_version, mac: mac, leaf: leaf, recordedAt: row.recorded_at,
                tags: Tombstone.tags(tenant: tenant, actor: actor, resourceType: resourceType, resourceId: resourceId,
                                     correlationId: correlationId, key: signing, storeID: storeID),
                expirySeq: 0))
            batch.byTenant[tenant ?? "", default: 0] += 1
        }
        batch.expired = tombstones.count
        guard write, let first = tombstones.first, let lastTombstone = tombstones.last else { return batch }
        let (head, _) = try Appender.readHead(db)
        let expirySeq = head + 1
        let record = ExpiryRecord(policy: stated ?? policy, now: now, first: first.seq, last: lastTombstone.seq,
                                  count: Int64(tombstones.count), digest: Tombstone.digest(tombstones))
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
