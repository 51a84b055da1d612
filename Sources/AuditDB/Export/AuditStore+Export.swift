import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// A field whose value an export can withhold: it enters ENC_ROW only as a commitment
/// (FORMAT.md, section 7), so the row still verifies without it.
public enum WithholdableField: String, Sendable, Hashable, CaseIterable {
    case actor, source, details

    /// The field id of FORMAT.md section 7.
    var id: UInt8 {
        switch self {
        case .actor: 1
        case .source: 2
        case .details: 3
        }
    }

    /// The field's value in a row.
    func value(of row: adb_row) -> adb_bytes {
        switch self {
        case .actor: row.actor
        case .source: row.source
        case .details: row.details
        }
    }
}

/// Which entries an export holds: the filters of ``EntryQuery``. Every condition given must match.
public struct ExportFilter: Sendable, Hashable {
    public var tenant: String?
    public var actor: String?
    public var action: String?
    public var resourceType: String?
    public var resourceId: String?
    public var outcome: AuditOutcome?
    public var severity: AuditSeverity?
    public var correlationId: String?
    /// Only these seqs.
    public var seqs: ClosedRange<Int64>?
    /// Only entries recorded at or after this time.
    public var recordedFrom: AuditTimestamp?
    /// Only entries recorded before this time.
    public var recordedBefore: AuditTimestamp?
    /// Only entries that occurred at or after this time (entries without `occurredAt` never match).
    public var occurredFrom: AuditTimestamp?
    /// Only entries that occurred before this time (entries without `occurredAt` never match).
    public var occurredBefore: AuditTimestamp?

    /// Every entry; set the properties to narrow it.
    public init(tenant: String? = nil, actor: String? = nil, action: String? = nil, seqs: ClosedRange<Int64>? = nil,
                recordedFrom: AuditTimestamp? = nil, recordedBefore: AuditTimestamp? = nil)
    {
        self.tenant = tenant
        self.actor = actor
        self.action = action
        self.seqs = seqs
        self.recordedFrom = recordedFrom
        self.recordedBefore = recordedBefore
    }

    /// The rows a statement over `seqs` attests, in words: "from seq A to seq B" within the
    /// checkpoint at `checkpoint`, or that there are none when the range starts above it.
    package static func describe(seqs: ClosedRange<Int64>, checkpoint: Int64) -> String {
        let last = min(seqs.upperBound, checkpoint)
        guard seqs.lowerBound <= last else {
            return "from seq \(seqs.lowerBound) on (none: the checkpoint is at seq \(checkpoint))"
        }
        return "from seq \(seqs.lowerBound) to seq \(last)"
    }

    var json: String {
        func q(_ s: String?) -> String { s.map(OutputEscaping.jsonQuoted) ?? "null" }
        func t(_ t: AuditTimestamp?) -> String { t.map { String($0.microsecondsSinceEpoch) } ?? "null" }
        var out = "{\"tenant\":\(q(tenant)),\"actor\":\(q(actor)),\"action\":\(q(action)),"
        out += "\"resourceType\":\(q(resourceType)),\"resourceId\":\(q(resourceId)),\"outcome\":\(q(outcome?.rawValue)),"
        out += "\"severity\":\(q(severity?.rawValue)),\"correlationId\":\(q(correlationId)),"
        out += "\"fromSeq\":\(seqs.map { String($0.lowerBound) } ?? "null"),\"toSeq\":\(seqs.map { String($0.upperBound) } ?? "null"),"
        out += "\"recordedFrom\":\(t(recordedFrom)),\"recordedBefore\":\(t(recordedBefore)),"
        out += "\"occurredFrom\":\(t(occurredFrom)),\"occurredBefore\":\(t(occurredBefore))}"
        return out
    }
}

/// What ``AuditStore/export(to:filter:redact:signer:limit:progress:)`` wrote.
public struct ExportSummary: Sendable {
    /// The bundle directory.
    public let path: String
    /// The checkpoint the entries are proven against.
    public let checkpoint: Checkpoint
    /// How many entries the bundle holds.
    public let entryCount: Int
    /// Rows appended after the checkpoint: not in the bundle whatever the filter (make a
    /// checkpoint first to include them).
    public let rowsAfterCheckpoint: Int64
    /// The signed completeness statement written as `statement.json`, when a signer was given.
    public let statement: ExportStatement?
    /// The filter the bundle holds every match of, as written in its manifest and statement:
    /// the filter given, with its seq range ending at the last exported seq when `limit` cut
    /// the export short.
    public let filter: ExportFilter
    /// True when `limit` cut the export short: more rows up to the checkpoint match the filter
    /// given; export them with a seq range starting after ``filter``'s.
    public let isLimited: Bool
    /// The seq of the access entry that records the export in the log (FORMAT.md section 23.4);
    /// nil only for a retention archive, which its expiry entry records.
    public let accessSeq: Int64?
    /// Newer checkpoints recorded in the store that could not be used (newest first): a row whose
    /// signature, frontier or chain head does not match the log, or whose key is not one of the
    /// export's signing key file. The bundle is proven against an older ``checkpoint``, so the
    /// rows after it are not exported. The store's copy of a checkpoint is a convenience, not
    /// evidence (FORMAT.md 16.3); a checkpoint made once rows follow the skipped one is used again.
    public let skippedCheckpoints: [Int64]
}

extension AuditStore {
    /// Writes an export bundle: the entries matching `filter`, proven against the store's latest
    /// checkpoint by one multiproof (format v2, FORMAT.md section 17.5), verifiable by anyone with the public
    /// checkpoint key and nothing else (``ExportBundle/verify(at:publicKeys:requireStatement:progress:)``,
    /// `auditdb verify-export`). Layout: FORMAT.md, section 17.
    ///
    /// Every row up to the checkpoint is verified (MAC and chain) while it is read, and the
    /// checkpoint must match the store (chain head and Merkle root), so a bundle never carries
    /// a row the store does not vouch for.
    ///
    /// - Parameters:
    ///   - directory: Where to create the bundle; must not exist.
    ///   - filter: Which entries.
    ///   - redact: Fields to withhold: the bundle carries only their commitments.
    ///   - signer: The checkpoint signing key. When given, the bundle also gets a signed
    ///     `statement.json` (FORMAT.md, section 17.3) attesting that it holds every row up to
    ///     the checkpoint that matches `filter`, with `redact` withheld; without it a verifier
    ///     can check each entry but not that none was left out. It must hold the key version
    ///     that signed the checkpoint.
    ///   - limit: At most this many entries: the first `limit` matches in seq order. The seq
    ///     range of the filter written to the manifest (and signed in the statement) then ends
    ///     at the last exported seq, so the statement attests exactly what the bundle covers:
    ///     every match in that narrower range. ``ExportSummary/isLimited`` says whether more match.
    ///   - progress: Told how many rows up to the checkpoint are verified (``VerificationProgress``).
    ///   - accessBy: Who takes the export: the actor of the access entry it leaves in the log
    ///     (`"auditdb"` if nil; checked before anything is read). The entry names the filter's
    ///     conditions and hashes, never its values (``ExportSummary/accessSeq``); if it cannot be
    ///     written, the bundle is removed.
    /// - Throws: ``AuditError`` `invalidInput` (no checkpoint yet, the directory exists, a value
    ///   that is not UTF-8, a signer without the checkpoint's key), `integrityViolation` (the
    ///   store does not verify up to the checkpoint), storage errors.
    /// - Complexity: O(n) in the rows up to the checkpoint (the proofs need every leaf).
    @discardableResult
    public func export(to directory: String, filter: ExportFilter = ExportFilter(),
                       redact: Set<WithholdableField> = [], signer: CheckpointSigner? = nil, limit: Int? = nil,
                       progress: (@Sendable (VerificationProgress) -> Void)? = nil, accessBy: String? = nil,
                       masking: MaskingPolicy = .none) async throws -> ExportSummary
    {
        try await export(to: directory, filter: filter, redact: redact, signer: signer, limit: limit, progress: progress,
                         accessBy: accessBy, masking: masking, recordingAccess: true)
    }

    /// ``export(to:filter:redact:signer:limit:progress:accessBy:masking:)``; without an access
    /// entry only for a retention archive, which its signed expiry entry records (FORMAT.md 20.3).
    ///
    /// An erasure or an expiry that changes a matching row between the pass that verifies and
    /// matches the rows and the pass that writes them (each reads its own snapshot) would leave a
    /// bundle that contradicts its manifest or statement: the export notices it and starts again,
    /// up to ``exportAttempts`` times.
    func export(to directory: String, filter: ExportFilter, redact: Set<WithholdableField>, signer: CheckpointSigner?, limit: Int?,
                progress: (@Sendable (VerificationProgress) -> Void)?, accessBy: String?, masking: MaskingPolicy,
                recordingAccess: Bool) async throws -> ExportSummary
    {
        var attempt = 1
        while true {
            do {
                return try await exportOnce(to: directory, filter: filter, redact: redact, signer: signer, limit: limit, progress: progress,
                                            accessBy: accessBy, masking: masking, recordingAccess: recordingAccess)
            } catch let changed as RowChangedDuringExport {
                guard attempt < Self.exportAttempts else {
                    throw AuditError(.busy, "row \(changed.seq) was \(changed.what) while the export read it, \(attempt) times in a row; nothing was exported. Run the export again once the erasures or expiries have finished")
                }
                attempt += 1
            }
        }
    }

    /// Where a bundle for `directory` is written before it is renamed there: a hidden sibling,
    /// so that the rename stays in one file system.
    static func stagingPath(for directory: String) -> String {
        let url = URL(fileURLWithPath: directory)
        // Random, not the PID: in a container every run may be PID 1, and a killed run's staging
        // directory must not stop the next.
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(UUID().uuidString.prefix(8))").path
    }

    /// Staging directories that interrupted writes left in `parent` (``stagingPath(for:)``: a
    /// bundle killed before its rename, an export or a retention archive) whose bundle name
    /// `matches`: each holds copies of rows, values erased since included, and nothing removes
    /// it. Sorted paths; an unreadable `parent` has none.
    package static func interruptedStaging(in parent: String, matching matches: (String) -> Bool) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return [] }  // missing: nothing left there
        return names.compactMap { name -> String? in
            guard name.hasPrefix("."), let mark = name.range(of: ".partial-", options: .backwards) else { return nil }
            let suffix = name[mark.upperBound...]
            guard suffix.count == 8, suffix.allSatisfy(\.isHexDigit), matches(String(name[name.index(after: name.startIndex)..<mark.lowerBound]))
            else { return nil }
            return URL(fileURLWithPath: parent).appendingPathComponent(name).path
        }.sorted()
    }

    /// How many times an export starts again when rows change under it.
    static let exportAttempts = 3

    /// A matching row erased or expired between the export's two passes (the bundle being
    /// written was removed).
    struct RowChangedDuringExport: Error {
        let seq: Int64
        /// "erased" or "expired".
        let what: String
    }

    private func exportOnce(to directory: String, filter: ExportFilter, redact: Set<WithholdableField>, signer: CheckpointSigner?,
                            limit: Int?, progress: (@Sendable (VerificationProgress) -> Void)?, accessBy: String?,
                            masking: MaskingPolicy, recordingAccess: Bool) async throws -> ExportSummary
    {
        // A masked field is withheld, its rendering carried unproven (17.6); none for a field
        // the caller asked to withhold whole, which --redact promises to show nothing of.
        let displayed = masking.removing(redact)
        let redact = redact.union(masking.fields)
        if let accessBy { try Self.checkRequester(accessBy, field: "accessBy") }
        try QueryExecution.checkFilters(tenant: filter.tenant, actor: filter.actor, action: filter.action,
                                        resourceType: filter.resourceType, resourceId: filter.resourceId,
                                        correlationId: filter.correlationId)
        if let limit, limit < 1 {
            throw AuditError(.invalidInput, "the limit must be at least 1 (got \(limit))", field: "limit")
        }
        // As a query refuses them: a range that ends before it starts matches no entry, and the
        // statement would attest an export of nothing.
        for (from, before, field) in [(filter.recordedFrom, filter.recordedBefore, "recordedBefore"),
                                      (filter.occurredFrom, filter.occurredBefore, "occurredBefore")]
        {
            if let from, let before, before < from { throw AuditError.invalid(field, "the time range ends before it starts") }
        }
        let (found, skippedCheckpoints) = try await usableCheckpointAndSkipped(trusting: signer?.publicKeys)
        guard let stored = found else {
            if signer != nil, let other = try await usableCheckpoint(trusting: nil) {
                throw AuditError(.invalidInput, "the checkpoint signing key file does not hold the key that signed the store's latest checkpoint (version \(other.checkpoint.keyVersion)); pass the key file that `auditdb checkpoint` uses", field: "--signing-key")
            }
            throw AuditError(.invalidInput, "the store has no checkpoint; an export is proven against one. Run `auditdb checkpoint` first")
        }
        let cp = stored.checkpoint
        // lstat, not fileExists: a symbolic link that points nowhere is in the way too (the
        // bundle's final rename would fail after its access entry was recorded).
        var existing = stat()
        guard lstat(directory, &existing) != 0 else {
            let link = existing.st_mode & S_IFMT == S_IFLNK ? " (a symbolic link)" : ""
            throw AuditError(.invalidInput, "\(directory) already exists\(link); an export writes a new directory", field: "--out")
        }
        // Where the bundle goes is checked before anything is read or recorded: an access entry
        // for an export that then cannot be written would record one that never existed.
        let parent = directory.isEmpty ? "" : (URL(fileURLWithPath: directory).deletingLastPathComponent().path)
        var isDirectory: ObjCBool = false
        guard !directory.isEmpty, FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue,
              access(parent, W_OK) == 0
        else {
            throw AuditError(.invalidInput, directory.isEmpty ? "the export directory is empty; name a new directory"
                                 : "\(directory) cannot be created: its parent \(parent) is not a writable directory", field: "--out")
        }
        let storeID = self.storeID, keys = self.keys
        // The masked rendering exists in format v1 only (FORMAT.md 17.6): an export that shows one is v1.
        let format = displayed.isEmpty ? ExportBundle.writtenFormat : .v1
        // Pass 1: verify every row up to the checkpoint, compute the tree, note the matching seqs.
        let scan: LeafScan.Leaves
        do {
            scan = try await LeafScan.leaves(pool, range: 1...cp.seq, prevMac: [UInt8](repeating: 0, count: 32),
                                             storeID: storeID, keys: keys, verify: true, erasures: erasureClaims, collect: { view, _ in
                // The fields erased in the store, as the entry will show them (bits 0-2), for the statement.
                Self.matches(view, filter) ? view.erasedMask & 7 : nil
            }, progress: progress.map { RowsProgress(total: cp.seq, report: $0) })
        } catch {
            throw AuditError.from(error, while: "export from \(path)")
        }
        guard scan.findings.isEmpty, scan.lastGood == cp.seq else {
            let first = scan.findings.first.map(String.init(describing:)) ?? "row \(scan.lastGood + 1) cannot be read"
            throw AuditError(.integrityViolation, "the store does not verify up to its checkpoint (\(first)); nothing was exported. Run `auditdb verify`.")
        }
        let levels = MerkleTree.Levels(flatLeaves: scan.flat)
        guard scan.lastMac == cp.chainHead, levels.root == cp.merkleRoot else {
            throw AuditError(.integrityViolation, "the store no longer matches its checkpoint at seq \(cp.seq) (chain head or Merkle root); nothing was exported. Run `auditdb verify --anchor`.")
        }
        var seqs = scan.collected.map(\.0)
        // A limit narrows the filter to the seqs it keeps, so the manifest and the statement
        // claim completeness for exactly that range (FORMAT.md 17.3), never for rows left out.
        var filter = filter
        let isLimited = limit.map { seqs.count > $0 } ?? false
        if let limit, isLimited {
            seqs.removeLast(seqs.count - limit)
            filter.seqs = (filter.seqs?.lowerBound ?? 1)...seqs[limit - 1]
        }
        // A bundle that breaks a bound of FORMAT.md 17.4 would not verify: refuse it now.
        guard seqs.count <= ExportBundle.maximumEntries else {
            throw AuditError(.invalidInput, "the filter selects \(seqs.count) entries; a bundle holds at most \(ExportBundle.maximumEntries) (docs/FORMAT.md section 17.4). Narrow the filter, for example by seq range, and export in parts")
        }
        let seqList: String = seqs.map(String.init).joined(separator: ",")
        let redacted: String = WithholdableField.allCases.filter(redact.contains).map { "\"\($0.rawValue)\"" }.joined(separator: ",")
        var manifest = "{\"format\":\"\(format.rawValue)\",\"storeId\":\"\(storeID.hex)\",\"checkpointSeq\":\(cp.seq),"
        manifest += "\"entryCount\":\(seqs.count),\"seqs\":[\(seqList)],\"redacted\":[\(redacted)],"
        let createdAt = AuditTimestamp.now()
        manifest += "\"filter\":\(filter.json),\"createdAt\":\(createdAt.microsecondsSinceEpoch)}\n"
        // Signed only now: every row up to the checkpoint was verified and matched against the
        // filter above, so the statement's claim of completeness is true of the store.
        let erased = scan.collected.prefix(seqs.count).map { (seq: $0.0, mask: $0.1) }
        let statement = signer.map {
            ExportStatement.signed(checkpoint: cp, filter: filter, redact: redact, seqs: seqs, erased: erased,
                                   createdAt: createdAt, key: $0.signingKey)
        }
        // A bundle holds audit data like the store: directory 0700, files 0600, whatever the umask
        // (hand it to an auditor by copying it; docs/FORMAT.md section 17.1). It is written under
        // a staging name beside `directory` and renamed to it last, after its access entry: a
        // bundle at `directory` is always whole and recorded, and a killed export leaves only the
        // staging directory (`.NAME.partial-XXXXXXXX`, random), which never stops a new export to `directory`.
        let target = directory
        let directory = Self.stagingPath(for: target)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        } catch {
            throw AuditError(.storage, "could not create the export bundle \(target) (staged as \(directory)): \(error.localizedDescription)")
        }
        guard Platform.setMode(directory, ExportBundle.directoryMode) else {
            let code = Platform.errorCode
            try? FileManager.default.removeItem(atPath: directory)  // the empty directory just made; the error below says why
            throw AuditError(.storage, "could not set the mode of the export bundle \(target): \(Platform.errorMessage(code))")
        }
        do {
            try SecretFile.write(Array(manifest.utf8), to: directory + "/" + ExportBundle.manifestFile,
                                 mode: ExportBundle.fileMode, replacing: false, what: "export file")
            try SecretFile.write(Array((cp.json + "\n").utf8), to: directory + "/" + ExportBundle.checkpointFile,
                                 mode: ExportBundle.fileMode, replacing: false, what: "export file")
            // Pass 2: read the matching rows again and stream them with their proofs; each row's
            // leaf must equal the one verified in pass 1, so nothing unverified is written.
            try await Self.writeEntries(pool, masks: erased, levels: levels, storeID: storeID, keys: keys, redact: redact,
                                        format: format, masking: displayed, to: directory + "/" + ExportBundle.entriesFile)
            if format == .v2 {
                // One multiproof for every entry (FORMAT.md 17.5), in place of v1's proof per entry.
                try SecretFile.write(levels.multiproof(indices: seqs.map { $0 - 1 }), to: directory + "/" + ExportBundle.multiproofFile,
                                     mode: ExportBundle.fileMode, replacing: false, what: "export file")
            }
            if let statement {
                try SecretFile.write(Array((statement.json + "\n").utf8), to: directory + "/" + ExportStatement.file,
                                     mode: ExportBundle.fileMode, replacing: false, what: "export file")
            }
        } catch let changed as RowChangedDuringExport {
            try? FileManager.default.removeItem(atPath: directory)  // no partial bundle is left; the export starts again
            throw changed
        } catch {
            try? FileManager.default.removeItem(atPath: directory)  // no partial bundle is left; the error below says why
            throw AuditError.from(error, while: "write the export bundle \(target)")
        }
        let after: Int64
        do {
            after = try await lastSeq() - cp.seq
        } catch {
            try? FileManager.default.removeItem(atPath: directory)  // the staged bundle; the error says why (a stop, say)
            throw error
        }
        var details = Self.accessDetails(filter: filter, redact: redact, masking: masking, entries: seqs.count)
        details["checkpointSeq"] = .int(cp.seq)
        // The manifest holds the filter, and its other members are known or guessable: its hash,
        // like the filter's, would confirm a guessed name (FORMAT.md 23.4).
        if !Self.namesAPerson(filter) {
            details["manifestSha256"] = .string(Hex.encode(ExportStatement.sha256(Array(manifest.utf8))))
        }
        details["statement"] = .bool(statement != nil)
        var access: Int64?
        do {
            if recordingAccess { access = try await recordAccess(kind: "export", by: accessBy, details: details) }
        } catch {
            try? FileManager.default.removeItem(atPath: directory)  // no export without its access entry; the error says why
            throw error
        }
        guard !FileManager.default.fileExists(atPath: target), Platform.rename(directory, to: target) else {
            let code = Platform.errorCode
            try? FileManager.default.removeItem(atPath: directory)  // the staged bundle; the error below says why
            throw AuditError(.storage, "could not move the finished export bundle to \(target): "
                + (FileManager.default.fileExists(atPath: target) ? "it exists now (created meanwhile)" : Platform.errorMessage(code))
                + (access.map { "; its access entry (seq \($0)) stays in the log" } ?? ""))
        }
        Platform.syncDirectory(of: target)
        return ExportSummary(path: target, checkpoint: cp, entryCount: seqs.count, rowsAfterCheckpoint: after, statement: statement,
                             filter: filter, isLimited: isLimited, accessSeq: access, skippedCheckpoints: skippedCheckpoints)
    }
}
