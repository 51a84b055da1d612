import CAuditCore
import Foundation
import GRDB
import Logging
import Synchronization

/// What ``AuditStore/erase(_:fields:paths:reason:skippingLegacyRows:)`` did.
public struct ErasureReport: Sendable, Hashable {
    /// The fields erased whole.
    public let fields: Set<WithholdableField>
    /// The paths inside `details` erased (FORMAT.md 21.7), sorted.
    public let paths: [MaskPath]
    /// Those of ``paths`` that no matching row held (a misspelt path, or one an earlier erasure
    /// removed): the erasure entries name them all the same, and nothing was erased for them.
    public let pathsHeldByNoRow: [MaskPath]
    /// The rows whose fields were erased now, ascending.
    public let erased: [Int64]
    /// Matching rows with nothing left to erase: their chosen fields were erased already, and
    /// (for paths) their details holds none of the paths, is NULL or is erased whole.
    public let alreadyErased: Int
    /// Matching rows written before migration 0006 (row format 1) that were left as they are
    /// (only with `skippingLegacyRows`): a key holder could still confirm their values.
    public let legacyRowsSkipped: [Int64]
    /// Matching rows that are AuditDB's own entries (`auditdb.*`), which are never erased.
    public let engineEntriesSkipped: Int
    /// The seqs of the signed erasure entries written, one per batch of at most 2,000 rows.
    public let erasureEntries: [Int64]
    /// Whether the write-ahead log was checkpointed and truncated afterwards, so that the old
    /// values left the `-wal` file and the database file's pages. False when a reader held an
    /// old snapshot for the whole busy timeout (``AuditStore/Configuration/busyTimeout``), or the
    /// checkpoint failed (a full disk: logged at warning level); the next checkpoint that
    /// succeeds (at the latest a `close()` that can write) completes it.
    public let scrubbed: Bool
}

extension AuditStore {
    /// Erases `fields` of every entry matching `subject`, for good, and keeps the log provable
    /// (FORMAT.md section 21, docs/erasure.md).
    ///
    /// Each erased field's value is set to NULL and its nonce replaced by its commitment, so the
    /// row's MAC, the chain, every checkpoint and every inclusion proof still verify, while
    /// nothing is left from which the value could be recovered or confirmed — not even by someone
    /// holding every key and guessing (the nonces of format-2 rows are random, not derived from a
    /// key). The erasure is recorded in signed `auditdb.erasure` entries naming the seqs, the
    /// fields and `reason`, never a value; verification reports an erased field that no such
    /// entry accounts for, and an erased field that holds a value again. SQLite's
    /// `secure_delete` is on while the fields are overwritten, and the write-ahead log is then
    /// checkpointed and truncated, so the old bytes leave the file, its `-wal`, freed pages and
    /// the free space inside pages. Stale copies SQLite may keep in the unused space of pages it
    /// rebalanced (after an expiry, for instance) are left: ``compact()`` afterwards removes them
    /// (docs/erasure.md, "Stale copies"). Copies made before (backups, earlier exports) keep them.
    ///
    /// ```swift
    /// let report = try await store.erase(.actor("user:42"), fields: [.actor, .details], reason: "GDPR-2026-17")
    /// ```
    ///
    /// Rows go in batches of at most 2,000, each in one durable write transaction with its
    /// erasure entry; appends wait at most one batch. Every row is verified before it is erased.
    ///
    /// - Parameters:
    ///   - subject: the entries (an actor, tenant, resource or explicit seqs).
    ///   - fields: which of `actor`, `source`, `details` to erase whole (a NULL field is marked erased too).
    ///   - paths: members inside `details` to erase (`details.email`, at most 16; FORMAT.md 21.7): each is
    ///     removed from the rows that hold it and the rest of details stays readable, authenticated by a
    ///     hash in the erasure entry; the details nonce is destroyed as for a whole-field erasure. Not
    ///     together with `details` in `fields`. Entries with paths hold at most 500 rows each.
    ///   - reason: why, e.g. a ticket reference (1...1,024 bytes, no control characters); it is
    ///     signed into the log, so it must not contain the personal data being erased.
    ///   - skippingLegacyRows: rows written before migration 0006 (format 1) cannot be erased
    ///     unrecoverably (their nonces derive from the HMAC key). By default any such row among
    ///     the matches makes the call fail with nothing erased; with `true` they are left as they
    ///     are and listed in the report.
    /// - Returns: what was erased.
    /// - Throws: ``AuditError`` `invalidInput` (no fields, a bad reason, a seq that is not in the
    ///   log or is one of AuditDB's own entries, format-1 rows without `skippingLegacyRows`),
    ///   `integrityViolation` (a matching row does not verify: nothing of that batch is erased),
    ///   `closed`, storage errors.
    public func erase(_ subject: ErasureSubject, fields: Set<WithholdableField>, paths: [MaskPath] = [], reason: String,
                      skippingLegacyRows: Bool = false) async throws -> ErasureReport
    {
        guard !fields.isEmpty || !paths.isEmpty else {
            throw AuditError.invalid("fields", "name at least one of actor, source, details, details.KEY")
        }
        try Self.checkReason(reason)
        let paths = try Self.checkPaths(paths, fields: fields)
        let mask = ErasureRecord.mask(fields)
        let plan: ErasurePlan
        do {
            plan = try await planErasure(subject, mask: paths.isEmpty ? mask : mask | ErasureRecord.partialDetails)
        } catch let error where AuditError.isCancellation(error) {
            throw AuditError(.cancelled, "the erasure was stopped while it chose the rows; nothing was erased. Run it again.")
        }
        if !plan.legacy.isEmpty && !skippingLegacyRows {
            throw AuditError(
                .invalidInput,
                "\(plan.legacy.count) matching row(s) (first seq \(plan.legacy[0])) were written before migration 0006 (row format 1): "
                    + "their field nonces derive from the HMAC key, so anyone holding it could still confirm an erased value. "
                    + "Nothing was erased. Pass skippingLegacyRows (CLI: --skip-legacy-rows) to erase the other rows and leave "
                    + "these as they are (docs/erasure.md).",
                field: "subject")
        }
        var erased: [Int64] = [], entries: [Int64] = [], already = plan.alreadyErased, pathsFound = Set<MaskPath>()
        let storeID = self.storeID, keys = self.keys, claimsCache = erasureClaims
        let batch = paths.isEmpty ? ErasureRecord.maximumSeqs : ErasureRecord.maximumSeqsWithPaths
        var stopped = false
        for start in stride(from: 0, to: plan.rows.count, by: batch) {
            if start > 0 {
                // Cancelled (the CLI on SIGTERM or SIGINT): stop between two batches, so that what
                // is committed is scrubbed below and reported.
                if Task.isCancelled {
                    stopped = true
                    break
                }
                // The batches so far leave the database file itself (their pages copied over the
                // old ones, where no reader holds them back): a process killed before the final
                // scrub leaves fewer old values there. The -wal keeps them until the scrub.
                do {
                    try await Task { try await self.pool.writeWithoutTransaction { db in _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(PASSIVE)") } }.value
                } catch {
                    logger.warning("could not copy an erasure batch into the store file", metadata: ["store": "\(path)", "error": "\(error)"])
                }
            }
            let chunk = Array(plan.rows[start..<min(plan.rows.count, start + batch)])
            // A batch once begun is not cancelled (an unstructured task): it commits or fails whole.
            let (done, skipped, entry, foundHere): ([Int64], Int, Int64?, Set<MaskPath>)
            let began = ContinuousClock.now
            do {
                (done, skipped, entry, foundHere) = try await Task {
                    try await self.holdTransaction("erase fields") { db, _, append in
                        // On the writer, as the scrub that clears it: no clear can pass this batch.
                        self.walScrubPending.withLock { $0 = true }
                        return try Self.eraseBatch(chunk, db, mask: mask, paths: paths, storeID: storeID, keys: keys, claimsCache: claimsCache) {
                            seqs, residuals in
                            ErasureRecord(reason: reason, subject: subject.kind, fields: fields, paths: paths, residuals: residuals, seqs: seqs)
                        } append: { try append($0) }
                    }
                }.value
            } catch let error as AuditError where !erased.isEmpty {
                // The batches before this one are committed: say so, or a caller would take the
                // failure for "nothing was erased".
                let next = error.code == .integrityViolation ? "" : "; run the same erasure again to finish it"
                throw AuditError(error.code, error.message + " (the batches before it erased \(erased.count) of the \(plan.rows.count) matching row(s), "
                                    + "erasure entries \(entries.map(String.init).joined(separator: ", "))\(next))",
                                 field: error.field, underlying: error.underlying)
            }
            erased += done
            already += skipped
            pathsFound.formUnion(foundHere)
            if let entry { entries.append(entry) }
            // Other processes' appends get the lock between two batches.
            if start + batch < plan.rows.count { await Self.pauseForOtherWriters(after: began) }
        }
        // The erasure is committed: a scrub that fails (a full disk) must not turn it into an
        // error the caller would retry. It says so through `scrubbed`; the next checkpoint that
        // succeeds (at the latest, a close that can write) completes it.
        // Always, also when nothing was left to erase: running an erasure again after a process was
        // killed before its scrub is how its values leave the file (its rows may match no longer).
        var scrubbed = true
        do {
            // Not cancelled with this call: a stopped erasure still scrubs what it committed.
            scrubbed = try await Task { try await self.scrubWriteAheadLog() }.value
        } catch {
            logger.warning("the write-ahead log could not be emptied after an erasure", metadata: ["store": "\(path)", "error": "\(error)"])
            scrubbed = false
        }
        if stopped {
            // The rows the finished batches dealt with: those they erased, and those in them that
            // had nothing left to erase; the sums add up to the matching rows.
            let skippedInBatches = already - plan.alreadyErased
            let dealt = erased.count + skippedInBatches
            throw AuditError(
                .cancelled,
                "the erasure was stopped after \(dealt) of \(plan.rows.count) matching row(s): \(erased.count) erased, "
                    + "\(skippedInBatches) had nothing left to erase (erasure entries \(entries.map(String.init).joined(separator: ", "))); "
                    + (scrubbed ? "the erased values are gone from the file. " : "the erased values leave the file at the next checkpoint that succeeds (run the erasure again). ")
                    + "The other \(plan.rows.count - dealt) row(s) were not reached: run the same erasure again to finish it.")
        }
        return ErasureReport(fields: fields, paths: paths, pathsHeldByNoRow: paths.filter { !pathsFound.contains($0) },
                             erased: erased, alreadyErased: already, legacyRowsSkipped: plan.legacy,
                             engineEntriesSkipped: plan.engineEntries, erasureEntries: entries, scrubbed: scrubbed)
    }

    /// The paths of a path erasure, sorted: `details.KEY…` only, at most 16, none inside another,
    /// and not together with `details` whole (FORMAT.md 21.7).
    static func checkPaths(_ paths: [MaskPath], fields: Set<WithholdableField>) throws(AuditError) -> [MaskPath] {
        let sorted = Set(paths).sorted()
        guard !sorted.isEmpty else { return [] }
        for path in sorted {
            guard path.field == .details, !path.members.isEmpty, path.description.utf8.count <= ErasedDetails.maximumPathBytes else {
                throw AuditError.invalid("fields", "\(path) is not a path inside details (details.KEY[.KEY…], at most \(ErasedDetails.maximumPathBytes) bytes)")
            }
            if let outer = sorted.first(where: { $0 != path && $0.covers(path) }) {
                throw AuditError.invalid("fields", "\(path) lies inside \(outer), which is erased too; name one of them")
            }
        }
        guard !fields.contains(.details) else {
            throw AuditError.invalid("fields", "details is erased whole, which erases \(sorted[0]) too; name one of them")
        }
        guard sorted.count <= ErasedDetails.maximumPathsPerErasure else {
            throw AuditError.invalid("fields", "at most \(ErasedDetails.maximumPathsPerErasure) paths per erasure (got \(sorted.count)); run it again for the others")
        }
        return sorted
    }

    static func checkReason(_ reason: String) throws(AuditError) {
        let count = reason.utf8.count
        guard count >= 1 else { throw AuditError.invalid("reason", "must not be empty: say why (e.g. a ticket reference)") }
        guard count <= ErasureRecord.maximumReasonBytes else {
            throw AuditError.invalid("reason", "is \(count) bytes; the limit is \(ErasureRecord.maximumReasonBytes)")
        }
        var copy = reason
        if copy.withUTF8({ EncodedEvent.firstControlCharacter($0) }) != nil {
            throw AuditError.invalid("reason", "contains a control character")
        }
    }

    /// The rows a subject selects, read through the verifying query path (a row that fails
    /// verification stops the erasure before anything is written).
    struct ErasurePlan: Sendable {
        var rows: [Int64] = []
        var legacy: [Int64] = []
        var alreadyErased = 0
        var engineEntries = 0
    }

    private func planErasure(_ subject: ErasureSubject, mask: UInt8) async throws -> ErasurePlan {
        var plan = ErasurePlan()
        let whole: UInt8 = mask & 8 != 0 ? mask & 3 : mask & 7  // the fields erased whole
        var found: [Int64] = []  // in seq order, as the stream returns them
        func consider(_ entry: AuditEntry) throws {
            found.append(entry.seq)
            if let finding = entry.finding {
                // A row that is not what its erasure entries made it goes to the batch, which
                // erases it again where that is the way out (a value restored from a copy made
                // before its erasure: ErasureCheck.Claim.isRedone) and refuses it otherwise.
                guard finding.kind == .erasureTampered else { throw EntryReader.refusal(seq: entry.seq, finding) }
                plan.rows.append(entry.seq)
            } else if Self.isReserved(entry.action) {
                plan.engineEntries += 1
            } else if entry.formatVersion == Int(ADB_FORMAT_KEYED_NONCES) {
                plan.legacy.append(entry.seq)
            } else if ErasureRecord.mask(entry.erasedFields) & whole == whole
                        && (mask & 8 == 0 || entry.isErased(.details) || entry.detailsJSON == nil) {
                plan.alreadyErased += 1  // (paths: the batch skips a row that holds none of them)
            } else {
                plan.rows.append(entry.seq)
            }
        }
        var query = EntryQuery()
        query.unverifiedRows = .mark
        switch subject {
        case .actor(let actor): query.actor = actor
        case .tenant(let tenant): query.tenant = tenant
        case .resource(let type, let id):
            query.resourceType = type
            query.resourceId = id
        case .seqs(let seqs):
            // Every seq that is not in the log, named at once: a request whose rows partly
            // expired is trimmed in one go, not one refusal at a time.
            var missing: [Int64] = [], found: [AuditEntry] = []
            for seq in Set(seqs).sorted() {
                var one = EntryQuery(limit: 1)
                one.seqs = seq...seq
                one.unverifiedRows = .mark
                if let entry = try await entries(one).first { found.append(entry) } else { missing.append(seq) }
            }
            if !missing.isEmpty { throw ErasureSubject.notInTheLog(missing) }
            for entry in found {
                let seq = entry.seq
                if let finding = entry.finding, finding.kind != .erasureTampered { throw EntryReader.refusal(seq: seq, finding) }
                guard !Self.isReserved(entry.action) else {
                    throw AuditError(.invalidInput, "seq \(seq) is one of AuditDB's own entries (\(entry.action)), which are never erased",
                                     field: "seqs")
                }
                try consider(entry)
            }
            return plan
        }
        // Rows appended while the stream reads are not its business (nor the check's below).
        let bound = try await lastSeq()
        for try await entry in stream(query) { try consider(entry) }
        try await refuseRowsMissedByTheIndex(subject, found: found, upTo: bound)
        return plan
    }

    /// Erases the fields of `mask` and the members at `paths` inside details (FORMAT.md 21.7) in
    /// each row of `seqs` (inside the caller's transaction) and appends the erasure entry naming
    /// the rows erased. Returns them, the number that had nothing left to erase, the entry's seq,
    /// and the paths that a row held (and this batch removed).
    static func eraseBatch(_ seqs: [Int64], _ db: Database, mask: UInt8, paths: [MaskPath] = [], storeID: StoreID, keys: KeyRing,
                           claimsCache: ErasureClaimsCache? = nil, record: ([Int64], [[UInt8]?]) -> ErasureRecord,
                           append: ([EncodedEvent]) throws -> ClosedRange<Int64>) throws -> ([Int64], Int, Int64?, Set<MaskPath>)
    {
        // Freed space inside pages and freed pages are zeroed while the values are overwritten. Set
        // back once the rows are written; if this transaction fails first, the setting stays on for
        // the writer connection, which only makes later deletes scrub too.
        let wasSecure = try Int.fetchOne(db, sql: "PRAGMA secure_delete") ?? 0
        try db.execute(sql: "PRAGMA secure_delete = ON")
        let macs = try StoredMacs(db)
        let read = try db.makeStatement(sql: RowLayout.select + " WHERE seq = ?")
        let stmt = read.sqliteStatement
        // ?3: the row's new mask; ?4: the new erased-details text of a path erasure, else NULL.
        let update = try db.makeStatement(sql: """
            UPDATE audit_entries SET seals = ?1,
                actor = CASE WHEN ?3 & 1 THEN NULL ELSE actor END,
                source = CASE WHEN ?3 & 2 THEN NULL ELSE source END,
                details = CASE WHEN ?4 IS NOT NULL THEN ?4 WHEN ?3 & 8 THEN details WHEN ?3 & 4 THEN NULL ELSE details END
            WHERE seq = ?2
            """)
        let context = RowContext(storeID: storeID.bytes, keys: keys, attestations: [:])
        // A row signed by a compromised key version verifies by its re-attestation (as verify and
        // queries read it).
        let attestations = try AttestationLookup(db, keys: keys)
        var done: [Int64] = [], residuals: [[UInt8]?] = [], skipped = 0, found = Set<MaskPath>()
        var claims: [Int64: ErasureCheck.Claim]?
        for seq in seqs {
            try SQLite.bind(stmt, 1, seq)
            defer { SQLite.reset(stmt) }
            guard try SQLite.step(stmt, while: "read row \(seq)") else { continue }  // expired meanwhile
            var view = RowView(stmt)
            var chain = RowChain()
            if seq > 1 {
                if let stored = try macs.mac(at: seq - 1), stored.count == 32 { chain.prevMac = stored } else { chain.prevKnown = false }
            }
            if let finding = view.check(seq: seq, chain: &chain, context: try context.forRow(view, seq: seq, lookup: attestations)) {
                throw AuditError(.integrityViolation, "row \(seq) does not verify (\(finding)); nothing of this batch was erased. Run `auditdb verify`.")
            }
            guard view.row.format_version == UInt8(ADB_FORMAT_SEALED) else { continue }
            var row = view.row
            let current = adb_row_erased_mask(&row)
            // The row must be what the verified erasure entries made it: a residual changed in the
            // file, or a row restored from a copy made before an erasure, would otherwise be signed
            // anew by this batch's entry.
            if claims == nil {
                claims = try claimsCache?.claims(db, storeID: storeID, keys: keys) ?? ErasureCheck.claims(db, storeID: storeID, keys: keys).claims
            }
            if let claims, let problem = ErasureCheck.problem(view, claims: claims),
               claims[seq]?.isRedone(stored: current, by: mask, paths: paths) != true
            {
                throw AuditError(.integrityViolation, "\(problem); nothing of this batch was erased. Run `auditdb verify`.")
            }
            let erasing = paths.isEmpty ? nil : try Self.erasingPaths(paths, row: row, mask: current, seq: seq)
            let residual = erasing?.details
            let newFields: UInt8 = mask & 3 & ~current
            let wholeDetails: Bool = mask & 4 != 0 && (current & 4 == 0 || current & 8 != 0)
            guard newFields != 0 || wholeDetails || residual != nil else {
                skipped += 1
                continue
            }
            var seals = [UInt8](repeating: 0, count: Int(ADB_SEALS_ERASED_LEN))
            let rowMask = mask | (residual != nil ? ErasureRecord.partialDetails : 0)
            guard adb_seals_erase(&row, rowMask, &seals) == 1, let key = keys.key(version: row.key_version), let mac = view.mac else {
                throw AuditError(.storage, "internal error: the seals of row \(seq) could not be erased")
            }
            // The erased row must verify as the stored one does before a byte is written.
            let all = seals[0]
            if all & 1 != 0 { row.actor = adb_bytes(ptr: nil, len: -1) }
            if all & 2 != 0 { row.source = adb_bytes(ptr: nil, len: -1) }
            if all & 4 != 0 { row.details = adb_bytes(ptr: nil, len: -1) }
            let verdict = seals.withUnsafeBufferPointer { s -> Int32 in
                row.seals = s.baseAddress
                row.seals_len = Int64(s.count)
                return adb_row_check_leaf(key.keyset, storeID.bytes, &row, nil, mac, 32, nil)
            }
            guard verdict == Int32(ADB_OK) else {
                throw AuditError(.storage, "internal error: row \(seq) would not verify once erased; nothing of this batch was erased")
            }
            let text = residual?.text
            try update.execute(arguments: [Data(seals), seq, Int64(all), text])
            done.append(seq)
            if let removed = erasing?.removed { found.formUnion(removed) }
            residuals.append(text.map { ErasedDetails.hash(seq: seq, text: $0) })
        }
        try db.execute(sql: "PRAGMA secure_delete = \(wasSecure)")
        guard !done.isEmpty else { return ([], skipped, nil, []) }
        let entry = try append([try EncodedEvent(validating: record(done, paths.isEmpty ? [] : residuals).event)]).lowerBound
        return (done, skipped, entry, found)
    }

    /// The row's details with the members at `paths` removed (FORMAT.md 21.7), or nil when it
    /// holds none of them (or no details, or details erased whole).
    private static func erasingPaths(_ paths: [MaskPath], row: adb_row, mask: UInt8, seq: Int64) throws(AuditError) -> (details: ErasedDetails, removed: [MaskPath])? {
        guard mask & 4 == 0 || mask & 8 != 0, let text = RowView.string(row.details) else { return nil }
        var before: ErasedDetails?
        if mask & 8 != 0 {
            do {
                before = try ErasedDetails(reading: text)
            } catch {
                throw AuditError(.integrityViolation, "row \(seq): \(error); nothing of this batch was erased. Run `auditdb verify`.")
            }
        }
        return try ErasedDetails.erasing(paths, from: text, before: before)
    }

    /// Checkpoints the write-ahead log into the database file and truncates it (`PRAGMA
    /// wal_checkpoint(TRUNCATE)`), retrying while readers hold older snapshots, for up to the
    /// store's ``AuditStore/Configuration/busyTimeout``. True when it completed: the WAL is empty
    /// and the database file holds only the erased pages.
    ///
    /// A pending TRUNCATE checkpoint holds off every writer while it waits for the readers, so
    /// each attempt waits at most ``scrubAttemptWait`` for them and the writer is free between
    /// attempts: a long read (a scan, a verify, an export) does not stall appends, it only makes
    /// the scrub wait for its end or give up (`false`; the next checkpoint completes it).
    ///
    /// `attempts` bounds the tries (one: a single checkpoint waiting at most ``scrubAttemptWait``).
    /// Success clears ``walScrubPending``.
    func scrubWriteAheadLog(attempts: Int = .max) async throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + configuration.lockWait
        let restored = configuration.lockWait  // as the connection was set up
        var tried = 0
        while true {
            let done: Bool
            do {
                done = try await pool.writeWithoutTransaction { db in
                    let done = try SQLite.truncateWriteAheadLog(db, waitingAtMost: Self.scrubAttemptWait, restore: restored)
                    if done { walScrubPending.withLock { $0 = false } }
                    return done
                }
            } catch {
                throw AuditError.from(error, while: "checkpoint the write-ahead log")
            }
            tried += 1
            if done { return true }
            guard tried < attempts, clock.now + Self.scrubPause < deadline else { return false }
            try await Task.sleep(for: Self.scrubPause)
        }
    }

    /// How long one scrub attempt waits for readers on older snapshots (holding off writers).
    static let scrubAttemptWait: Duration = .milliseconds(25)
    /// The pause between scrub attempts, the writer free.
    static let scrubPause: Duration = .milliseconds(200)
}
