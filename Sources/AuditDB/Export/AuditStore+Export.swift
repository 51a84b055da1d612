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

    /// The column's index in ``Verifier/selectColumns``.
    var column: Int32 {
        switch self {
        case .actor: 4
        case .source: 11
        case .details: 12
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

/// What ``AuditStore/export(to:filter:redact:signer:)`` wrote.
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
}

extension AuditStore {
    /// Writes an export bundle: the entries matching `filter` with an inclusion proof each,
    /// proven against the store's latest checkpoint, verifiable by anyone with the public
    /// checkpoint key and nothing else (``ExportBundle/verify(at:publicKeys:)``,
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
    /// - Throws: ``AuditError`` `invalidInput` (no checkpoint yet, the directory exists, a value
    ///   that is not UTF-8, a signer without the checkpoint's key), `integrityViolation` (the
    ///   store does not verify up to the checkpoint), storage errors.
    /// - Complexity: O(n) in the rows up to the checkpoint (the proofs need every leaf).
    @discardableResult
    public func export(to directory: String, filter: ExportFilter = ExportFilter(),
                       redact: Set<WithholdableField> = [], signer: CheckpointSigner? = nil) async throws -> ExportSummary
    {
        guard let stored = try await usableCheckpoint(trusting: signer?.publicKeys) else {
            if signer != nil, let other = try await usableCheckpoint(trusting: nil) {
                throw AuditError(.invalidInput, "the checkpoint signing key file does not hold the key that signed the store's latest checkpoint (version \(other.checkpoint.keyVersion)); pass the key file that `auditdb checkpoint` uses", field: "--signing-key")
            }
            throw AuditError(.invalidInput, "the store has no checkpoint; an export is proven against one. Run `auditdb checkpoint` first")
        }
        let cp = stored.checkpoint
        guard !FileManager.default.fileExists(atPath: directory) else {
            throw AuditError(.invalidInput, "\(directory) already exists; an export writes a new directory", field: "--out")
        }
        let storeID = self.storeID, keys = self.keys
        // Pass 1: verify every row up to the checkpoint, compute the tree, note the matching seqs.
        let scan: LeafScan.Leaves
        do {
            scan = try await LeafScan.leaves(pool, range: 1...cp.seq, prevMac: [UInt8](repeating: 0, count: 32),
                                             storeID: storeID, keys: keys, verify: true) { stmt, seq, _ in
                Self.matches(stmt, filter, seq: seq) ? "" : nil
            }
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
        let seqs = scan.collected.map(\.0)
        // A bundle that breaks a bound of FORMAT.md 17.4 would not verify: refuse it now.
        guard seqs.count <= ExportBundle.maximumEntries else {
            throw AuditError(.invalidInput, "the filter selects \(seqs.count) entries; a bundle holds at most \(ExportBundle.maximumEntries) (docs/FORMAT.md section 17.4). Narrow the filter, for example by seq range, and export in parts")
        }
        let seqList: String = seqs.map(String.init).joined(separator: ",")
        let redacted: String = WithholdableField.allCases.filter(redact.contains).map { "\"\($0.rawValue)\"" }.joined(separator: ",")
        var manifest = "{\"format\":\"\(ExportBundle.format)\",\"storeId\":\"\(storeID.hex)\",\"checkpointSeq\":\(cp.seq),"
        manifest += "\"entryCount\":\(seqs.count),\"seqs\":[\(seqList)],\"redacted\":[\(redacted)],"
        let createdAt = AuditTimestamp.now()
        manifest += "\"filter\":\(filter.json),\"createdAt\":\(createdAt.microsecondsSinceEpoch)}\n"
        // Signed only now: every row up to the checkpoint was verified and matched against the
        // filter above, so the statement's claim of completeness is true of the store.
        let statement = signer.map {
            ExportStatement.signed(checkpoint: cp, filter: filter, redact: redact, seqs: seqs, createdAt: createdAt, key: $0.signingKey)
        }
        // A bundle holds audit data like the store: directory 0700, files 0600, whatever the umask
        // (hand it to an auditor by copying it; docs/FORMAT.md section 17.1).
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        } catch {
            throw AuditError(.storage, "could not create the export bundle \(directory): \(error.localizedDescription)")
        }
        guard Platform.setMode(directory, ExportBundle.directoryMode) else {
            let code = Platform.errorCode
            try? FileManager.default.removeItem(atPath: directory)  // the empty directory just made; the error below says why
            throw AuditError(.storage, "could not set the mode of the export bundle \(directory): \(Platform.errorMessage(code))")
        }
        do {
            try SecretFile.write(Array(manifest.utf8), to: directory + "/" + ExportBundle.manifestFile,
                                 mode: ExportBundle.fileMode, replacing: false, what: "export file")
            try SecretFile.write(Array((cp.json + "\n").utf8), to: directory + "/" + ExportBundle.checkpointFile,
                                 mode: ExportBundle.fileMode, replacing: false, what: "export file")
            // Pass 2: read the matching rows again and stream them with their proofs; each row's
            // leaf must equal the one verified in pass 1, so nothing unverified is written.
            try await Self.writeEntries(pool, seqs: seqs, levels: levels, storeID: storeID, keys: keys, redact: redact,
                                        to: directory + "/" + ExportBundle.entriesFile)
            if let statement {
                try SecretFile.write(Array((statement.json + "\n").utf8), to: directory + "/" + ExportStatement.file,
                                     mode: ExportBundle.fileMode, replacing: false, what: "export file")
            }
        } catch {
            try? FileManager.default.removeItem(atPath: directory)  // no partial bundle is left; the error below says why
            throw AuditError.from(error, while: "write the export bundle \(directory)")
        }
        let after = try await lastSeq() - cp.seq
        return ExportSummary(path: directory, checkpoint: cp, entryCount: seqs.count, rowsAfterCheckpoint: after, statement: statement)
    }

    /// Streams the entry lines of `seqs` (ascending) to `path` in chunks of about 1 MiB.
    private static func writeEntries(_ reader: any DatabaseReader, seqs: [Int64], levels: MerkleTree.Levels, storeID: StoreID,
                                     keys: KeyRing, redact: Set<WithholdableField>, to path: String) async throws
    {
        let created = Platform.createEmpty(path, mode: ExportBundle.fileMode)
        guard created == 0 else {
            throw AuditError(.storage, "cannot create \(path): \(Platform.errorMessage(created))")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }  // close after a write error; that error is what is thrown
        guard let first = seqs.first, let last = seqs.last else { return }
        let wanted = Set(seqs)
        try await reader.read { db in
            var chunk = Data()
            var written = 0
            let scan = try LeafScan.scan(db, range: first...last, prevMac: [UInt8](repeating: 0, count: 32), storeID: storeID,
                                         keys: keys, verify: false) { stmt, seq, leaf in
                guard wanted.contains(seq) else { return }
                guard leaf == levels.leaf(Int(seq - 1)) else {
                    throw AuditError(.integrityViolation, "row \(seq) changed while it was being exported; nothing was exported. Run `auditdb verify`.")
                }
                var line = try entryJSON(stmt, seq: seq, storeID: storeID, keys: keys, redact: redact, leaf: leaf)
                line += ",\"proof\":[" + levels.proof(index: Int(seq - 1)).map { "\"\(Hex.encode($0))\"" }.joined(separator: ",") + "]}\n"
                // The bounds a verifier enforces (FORMAT.md 17.4): never write what would not verify.
                guard line.utf8.count - 1 <= ExportBundle.maximumEntryLineBytes else {
                    throw AuditError(.invalidInput, "row \(seq) is longer than \(ExportBundle.maximumEntryLineBytes) bytes as an entry line; nothing was exported")
                }
                written += line.utf8.count
                guard written <= ExportBundle.maximumEntriesFileBytes else {
                    throw AuditError(.invalidInput, "the entries would exceed \(ExportBundle.maximumEntriesFileBytes) bytes (docs/FORMAT.md section 17.4); nothing was exported. Narrow the filter and export in parts")
                }
                chunk.append(contentsOf: line.utf8)
                if chunk.count >= 1 << 20 {
                    try handle.write(contentsOf: chunk)
                    chunk.removeAll(keepingCapacity: true)
                }
            }
            guard scan.lastGood == last else {
                throw AuditError(.integrityViolation, "row \(scan.lastGood + 1) disappeared while it was being exported; nothing was exported")
            }
            try handle.write(contentsOf: chunk)
        }
        try handle.synchronize()
    }

    static func matches(_ stmt: OpaquePointer, _ filter: ExportFilter, seq: Int64) -> Bool {
        func text(_ i: Int32) -> [UInt8]? {
            let b = Verifier.text(stmt, i)
            guard b.len >= 0 else { return nil }
            return b.len == 0 ? [] : Array(UnsafeBufferPointer(start: b.ptr, count: Int(b.len)))
        }
        if let seqs = filter.seqs, !seqs.contains(seq) { return false }
        if let tenant = filter.tenant, text(3) != Array(tenant.utf8) { return false }
        if let actor = filter.actor, text(4) != Array(actor.utf8) { return false }
        if let action = filter.action, text(5) != Array(action.utf8) { return false }
        if let resourceType = filter.resourceType, text(6) != Array(resourceType.utf8) { return false }
        if let resourceId = filter.resourceId, text(7) != Array(resourceId.utf8) { return false }
        if let outcome = filter.outcome, sqlite3_column_int64(stmt, 8) != Int64(outcome.code) { return false }
        if let severity = filter.severity, sqlite3_column_int64(stmt, 9) != Int64(severity.code) { return false }
        if let correlationId = filter.correlationId, text(10) != Array(correlationId.utf8) { return false }
        if filter.occurredFrom != nil || filter.occurredBefore != nil {
            guard sqlite3_column_type(stmt, 2) != SQLITE_NULL else { return false }
            let occurred = sqlite3_column_int64(stmt, 2)
            if let from = filter.occurredFrom, occurred < from.microsecondsSinceEpoch { return false }
            if let before = filter.occurredBefore, occurred >= before.microsecondsSinceEpoch { return false }
        }
        let recorded = sqlite3_column_int64(stmt, 1)
        if let from = filter.recordedFrom, recorded < from.microsecondsSinceEpoch { return false }
        if let before = filter.recordedBefore, recorded >= before.microsecondsSinceEpoch { return false }
        return true
    }

    /// One entry as JSON, up to (not including) its proof and closing brace.
    private static func entryJSON(_ stmt: OpaquePointer, seq: Int64, storeID: StoreID, keys: KeyRing,
                                  redact: Set<WithholdableField>, leaf: [UInt8]) throws(AuditError) -> String
    {
        func text(_ i: Int32, _ name: String) throws(AuditError) -> String? {
            let b = Verifier.text(stmt, i)
            guard b.len >= 0 else { return nil }
            guard b.len > 0, let p = b.ptr else { return "" }
            guard let s = String(validating: UnsafeBufferPointer(start: p, count: Int(b.len)), as: UTF8.self) else {
                throw AuditError(.invalidInput, "row \(seq): \(name) is not valid UTF-8 and cannot be exported as JSON text")
            }
            return s
        }
        func q(_ s: String?) -> String { s.map(OutputEscaping.jsonQuoted) ?? "null" }
        func int(_ i: Int32) -> String { sqlite3_column_type(stmt, i) == SQLITE_NULL ? "null" : String(sqlite3_column_int64(stmt, i)) }
        let kv = UInt32(truncatingIfNeeded: sqlite3_column_int64(stmt, 16))
        guard let key = keys.key(version: kv) else {
            throw AuditError(.keyUnavailable, "row \(seq) is signed with key version \(kv), which the key ring lacks")
        }
        var out = "{\"seq\":\(seq),\"recordedAt\":\(int(1)),\"occurredAt\":\(int(2)),\"tenant\":\(q(try text(3, "tenant"))),"
            + "\"action\":\(q(try text(5, "action"))),\"resourceType\":\(q(try text(6, "resource_type"))),"
            + "\"resourceId\":\(q(try text(7, "resource_id"))),\"outcome\":\(int(8)),\"severity\":\(int(9)),"
            + "\"correlationId\":\(q(try text(10, "correlation_id"))),\"origin\":\(int(13)),\"originRef\":\(int(14)),"
            + "\"formatVersion\":\(int(15)),\"keyVersion\":\(kv)"
        for field in WithholdableField.allCases {
            let value = Verifier.text(stmt, field.column)
            var nonce = [UInt8](repeating: 0, count: 32)
            var commitment = [UInt8](repeating: 0, count: 32)
            adb_field_nonce(key.keyset, storeID.bytes, seq, field.id, &nonce)
            adb_commitment(nonce, field.id, value, &commitment)
            if redact.contains(field) {
                out += ",\"\(field.rawValue)\":{\"withheld\":true,\"commitment\":\"\(Hex.encode(commitment))\"}"
            } else if value.len < 0 {
                out += ",\"\(field.rawValue)\":{\"value\":null,\"commitment\":\"\(Hex.encode(commitment))\"}"
            } else {
                out += ",\"\(field.rawValue)\":{\"value\":\(q(try text(field.column, field.rawValue))),"
                    + "\"nonce\":\"\(Hex.encode(nonce))\",\"commitment\":\"\(Hex.encode(commitment))\"}"
            }
        }
        return out + ",\"leafHash\":\"\(Hex.encode(leaf))\""
    }
}
