import CAuditCore
import Foundation

/// One reason an export bundle does not verify.
public struct ExportFinding: Sendable, Hashable, CustomStringConvertible {
    /// The kind of problem. An open set: match with `==` against the static members.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        /// A stable machine-readable name.
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A file is missing or not what the format says (bad JSON, a missing field).
        public static let bundleMalformed = Kind("bundle-malformed")
        /// The checkpoint's signature fails, or its key is not in the public key file.
        public static let checkpointInvalid = Kind("checkpoint-invalid")
        /// The manifest disagrees with the checkpoint or the entries (store id, seq, count).
        public static let manifestMismatch = Kind("manifest-mismatch")
        /// An entry's values (or a withheld field's commitment) do not hash to its leaf.
        public static let entryChanged = Kind("entry-changed")
        /// A shown value does not match its own commitment and nonce.
        public static let commitmentMismatch = Kind("commitment-mismatch")
        /// An entry's inclusion proof does not lead to the checkpoint's root.
        public static let proofInvalid = Kind("proof-invalid")
        /// A seq the manifest lists has no entry.
        public static let entryMissing = Kind("entry-missing")
        /// An entry whose seq the manifest does not list.
        public static let entryAdded = Kind("entry-added")
        /// An entry whose seq is below the one before it.
        public static let entryOutOfOrder = Kind("entry-out-of-order")
        /// A seq that appears twice.
        public static let entryDuplicate = Kind("entry-duplicate")
        /// `statement.json` is not a statement, or its signature or key fails.
        public static let statementInvalid = Kind("statement-invalid")
        /// The signed statement disagrees with the bundle (store, checkpoint, filter, redaction
        /// set, entry count or seqs): the message names what differs.
        public static let statementMismatch = Kind("statement-mismatch")
        /// The bundle has no `statement.json` and one was required.
        public static let statementMissing = Kind("statement-missing")
    }

    /// What is wrong.
    public let kind: Kind
    /// The entry's seq, if the finding is about one.
    public let seq: Int64?
    /// In words.
    public let message: String

    public var description: String { "\(kind)\(seq.map { " at seq \($0)" } ?? ""): \(message)" }
}

/// The result of verifying an export bundle.
public struct ExportVerification: Sendable, CustomStringConvertible {
    /// The bundle's checkpoint, if it could be read.
    public let checkpoint: Checkpoint?
    /// Entries that verified.
    public let entriesVerified: Int
    /// Everything wrong, in bundle order (at most 1,000 kept).
    public let findings: [ExportFinding]
    /// The bundle's export statement, if it has one whose signature verifies.
    public let statement: ExportStatement?
    /// The redaction set the manifest names (attested when ``isCompletenessAttested``).
    public let redacted: [WithholdableField]

    init(checkpoint: Checkpoint?, entriesVerified: Int = 0, findings: [ExportFinding], statement: ExportStatement? = nil,
         redacted: [WithholdableField] = [])
    {
        self.checkpoint = checkpoint
        self.entriesVerified = entriesVerified
        self.findings = findings
        self.statement = statement
        self.redacted = redacted
    }

    /// True when the checkpoint and every entry verify and the entries are the ones listed.
    public var isValid: Bool { findings.isEmpty }

    /// True when the bundle is valid and a signed export statement (FORMAT.md, section 17.3)
    /// attests that it holds every row up to the checkpoint that matches its filter. Without
    /// one, a valid bundle proves each entry but not that none was left out.
    public var isCompletenessAttested: Bool { isValid && statement != nil }

    public var description: String {
        guard isValid else { return "INVALID: \(findings.count) finding(s); first: \(findings[0])" }
        let head = "valid: \(entriesVerified) entries proven against checkpoint seq \(checkpoint?.seq ?? 0) of store \(checkpoint.map { $0.storeID.hex } ?? "?")"
        guard let statement else {
            return head + "\ncompleteness NOT attested: the bundle has no signed statement.json, so entries could have been left out together with their seqs"
        }
        let withheld = redacted.isEmpty ? "none" : redacted.map(\.rawValue).joined(separator: ", ")
        return head + "\ncompleteness attested: a statement signed with checkpoint key version \(statement.keyVersion) says these are all rows up to seq \(statement.checkpointSeq) that match the manifest's filter (withheld: \(withheld))"
    }
}

/// Export bundles (FORMAT.md, section 17): a directory with `manifest.json`, `checkpoint.json`,
/// `entries.jsonl` and, when signed, `statement.json`. Written by
/// ``AuditStore/export(to:filter:redact:signer:)``; verified here with
/// only the public checkpoint key: no store, no HMAC key.
public enum ExportBundle {
    static let format = "auditdb-export v1"
    /// Modes of what an export writes: the bundle directory 0700, its files 0600.
    static let directoryMode: Platform.FileMode = 0o700
    static let fileMode: Platform.FileMode = 0o600
    static let manifestFile = "manifest.json"
    static let checkpointFile = "checkpoint.json"
    static let entriesFile = "entries.jsonl"

    /// Verifies the bundle at `path`: the checkpoint's signature under `publicKeys`; then every
    /// entry: its order (strictly increasing seqs), that the manifest lists it, each shown
    /// withholdable value against its commitment, its ENC_ROW and leaf hash, and its inclusion
    /// proof to the checkpoint's root; finally that every listed seq has an entry.
    ///
    /// ```swift
    /// let keys = try CheckpointPublicKeys.load(path: "checkpoint.pub")
    /// let result = try await ExportBundle.verify(at: "export-2026-11", publicKeys: keys)
    /// print(result.isValid ? "valid" : result.findings[0].message)
    /// ```
    ///
    /// Reads the files with blocking I/O, streaming `entries.jsonl`, so memory stays small
    /// whatever the bundle's size.
    ///
    /// - Throws: ``AuditError`` `invalidInput` only if `path` is not a directory; anything wrong
    ///   inside the bundle is a finding.
    ///
    /// If the bundle has a `statement.json` (FORMAT.md, section 17.3), its signature must verify
    /// under `publicKeys` and it must bind the bundle's checkpoint, the manifest's filter and
    /// redaction set, entry count and seqs, and every entry must withhold exactly the attested
    /// fields; then ``ExportVerification/isCompletenessAttested`` is true for a valid bundle.
    /// Without one the entries still verify, but completeness is not attested; with
    /// `requireStatement` a missing statement is a `statement-missing` finding.
    public static func verify(at path: String, publicKeys: CheckpointPublicKeys,
                              requireStatement: Bool = false) async throws(AuditError) -> ExportVerification
    {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw AuditError(.invalidInput, "no export bundle (directory) at \(path)", field: "BUNDLE")
        }
        var findings: [ExportFinding] = []
        func add(_ kind: ExportFinding.Kind, _ seq: Int64?, _ message: String) {
            if findings.count < 1_000 { findings.append(ExportFinding(kind: kind, seq: seq, message: message)) }
        }
        // The checkpoint.
        let checkpoint: Checkpoint
        switch read(path + "/" + checkpointFile).flatMap({ data in Result { () throws(AuditError) in try Checkpoint(json: data) } }) {
        case .failure(let error):
            add(.checkpointInvalid, nil, "\(checkpointFile): \(error.message)")
            return ExportVerification(checkpoint: nil, entriesVerified: 0, findings: findings)
        case .success(let cp):
            checkpoint = cp
        }
        if let why = checkpoint.invalidity(under: publicKeys) {
            add(.checkpointInvalid, nil, "the checkpoint at seq \(checkpoint.seq) is invalid: \(why)")
            return ExportVerification(checkpoint: checkpoint, entriesVerified: 0, findings: findings)
        }
        // The manifest.
        let manifest: [String: Any]
        switch read(path + "/" + manifestFile).flatMap(jsonObject) {
        case .failure(let error):
            add(.bundleMalformed, nil, "\(manifestFile): \(error.message)")
            return ExportVerification(checkpoint: checkpoint, entriesVerified: 0, findings: findings)
        case .success(let object):
            manifest = object
        }
        guard manifest["format"] as? String == format, let listedSeqs = manifest["seqs"] as? [Int64],
              let count = manifest["entryCount"] as? Int64
        else {
            add(.bundleMalformed, nil, "\(manifestFile) is not an `\(format)` manifest with seqs and entryCount")
            return ExportVerification(checkpoint: checkpoint, entriesVerified: 0, findings: findings)
        }
        if manifest["storeId"] as? String != checkpoint.storeID.hex || manifest["checkpointSeq"] as? Int64 != checkpoint.seq {
            add(.manifestMismatch, nil, "the manifest names another store or checkpoint than checkpoint.json (store \(checkpoint.storeID), seq \(checkpoint.seq))")
        }
        if count != Int64(listedSeqs.count) {
            add(.manifestMismatch, nil, "the manifest states \(count) entries but lists \(listedSeqs.count) seqs")
        }
        if let unknown = manifest.keys.sorted().first(where: { !manifestKeys.contains($0) }) {
            add(.bundleMalformed, nil, "\(manifestFile) has an unknown field \(OutputEscaping.jsonQuoted(unknown))")
        }
        // The manifest's redaction set: every entry must withhold exactly these fields (signed
        // when there is a statement).
        var redacted: [WithholdableField]? = []
        if let names = manifest["redacted"] as? [String] {
            for name in names {
                guard let field = WithholdableField(rawValue: name), redacted?.contains(field) == false else { redacted = nil; break }
                redacted?.append(field)
            }
        } else {
            redacted = nil
        }
        if redacted == nil {
            add(.bundleMalformed, nil, "\(manifestFile): redacted must list distinct field names among actor, source, details")
        }
        // The export statement.
        var statement: ExportStatement?
        var attestedWithheld: Set<WithholdableField>?
        let statementPath = path + "/" + ExportStatement.file
        if FileManager.default.fileExists(atPath: statementPath) {
            switch read(statementPath).flatMap({ data in Result { () throws(AuditError) in try ExportStatement(json: data) } }) {
            case .failure(let error):
                add(.statementInvalid, nil, "\(ExportStatement.file): \(error.message)")
            case .success(let st):
                if let why = st.invalidity(under: publicKeys) {
                    add(.statementInvalid, nil, "the export statement is invalid: \(why)")
                } else {
                    statement = st
                    let compared = compare(st, checkpoint: checkpoint, manifest: manifest, count: count, seqs: listedSeqs, redacted: redacted)
                    for why in compared.mismatches { add(.statementMismatch, nil, why) }
                    attestedWithheld = compared.signedRedaction
                }
            }
        } else if requireStatement {
            add(.statementMissing, nil, "the bundle has no \(ExportStatement.file), and a signed statement was required: nothing attests that the export is complete. Export it again with the checkpoint signing key (`auditdb export --signing-key FILE`)")
        }
        // The entries, streamed line by line (a bundle may be larger than memory).
        let entriesPath = path + "/" + entriesFile
        guard let handle = FileHandle(forReadingAtPath: entriesPath) else {
            add(.bundleMalformed, nil, "\(entriesFile) is missing or unreadable")
            return ExportVerification(checkpoint: checkpoint, entriesVerified: 0, findings: findings)
        }
        defer { try? handle.close() }  // read-only handle; nothing to lose
        let listed = Set(listedSeqs)
        var seen = Set<Int64>()
        var previous: Int64 = 0
        var verified = 0
        var lineNumber = 0
        func process(_ line: ArraySlice<UInt8>) {
            lineNumber += 1
            if line.isEmpty { return }
            guard case .success(let object) = jsonObject(Data(line)), let seq = object["seq"] as? Int64 else {
                add(.bundleMalformed, nil, "\(entriesFile) line \(lineNumber) is not an entry (JSON object with a seq)")
                return
            }
            if seen.contains(seq) {
                add(.entryDuplicate, seq, "seq \(seq) appears more than once (line \(lineNumber))")
                return
            }
            seen.insert(seq)
            if seq < previous {
                add(.entryOutOfOrder, seq, "entry seq \(seq) (line \(lineNumber)) comes after seq \(previous): the entries were reordered")
            }
            previous = max(previous, seq)
            if !listed.contains(seq) {
                add(.entryAdded, seq, "entry seq \(seq) (line \(lineNumber)) is not listed in the manifest: it was added")
                return
            }
            if let finding = check(entry: object, seq: seq, checkpoint: checkpoint) {
                add(finding.kind, seq, finding.message)
            } else if let attested = attestedWithheld,
                      case let withheld = Set(WithholdableField.allCases.filter { (object[$0.rawValue] as? [String: Any])?["withheld"] as? Bool == true }),
                      withheld != attested
            {
                let names = { (set: Set<WithholdableField>) in set.isEmpty ? "none" : WithholdableField.allCases.filter(set.contains).map(\.rawValue).joined(separator: ", ") }
                add(.statementMismatch, seq, "entry seq \(seq) withholds \(names(withheld)), but the statement attests that \(names(attested)) was withheld")
            } else if attestedWithheld == nil, let manifestSet = redacted.map(Set.init),
                      case let withheld = Set(WithholdableField.allCases.filter { (object[$0.rawValue] as? [String: Any])?["withheld"] as? Bool == true }),
                      withheld != manifestSet
            {
                let names = { (set: Set<WithholdableField>) in set.isEmpty ? "none" : WithholdableField.allCases.filter(set.contains).map(\.rawValue).joined(separator: ", ") }
                add(.manifestMismatch, seq, "entry seq \(seq) withholds \(names(withheld)), but the manifest says \(names(manifestSet)) was withheld")
            } else {
                verified += 1
            }
        }
        var pending: [UInt8] = []
        while true {
            let chunk: Data
            do {
                chunk = try handle.read(upToCount: 4 << 20) ?? Data()
            } catch {
                add(.bundleMalformed, nil, "\(entriesFile) could not be read: \(error.localizedDescription)")
                break
            }
            if chunk.isEmpty { break }
            pending += chunk
            var start = 0
            while let newline = pending[start...].firstIndex(of: 0x0A) {
                process(pending[start..<newline])
                start = newline + 1
            }
            pending.removeFirst(start)
        }
        if !pending.isEmpty { process(pending[...]) }
        for seq in listedSeqs where !seen.contains(seq) {
            add(.entryMissing, seq, "the manifest lists seq \(seq) but the bundle has no entry for it: it was removed")
        }
        return ExportVerification(checkpoint: checkpoint, entriesVerified: verified, findings: findings, statement: statement,
                                  redacted: redacted ?? [])
    }

    /// What in the bundle differs from what `st` signs, each in words (FORMAT.md 17.3), and the
    /// redaction set the statement signs if the manifest's filter is the signed one.
    static func compare(_ st: ExportStatement, checkpoint: Checkpoint, manifest: [String: Any], count: Int64, seqs: [Int64],
                        redacted: [WithholdableField]?) -> (mismatches: [String], signedRedaction: Set<WithholdableField>?)
    {
        var signedRedaction: Set<WithholdableField>?
        var out: [String] = []
        func names(_ set: some Sequence<WithholdableField>) -> String {
            let set = Set(set)
            return set.isEmpty ? "none" : WithholdableField.allCases.filter(set.contains).map(\.rawValue).joined(separator: ", ")
        }
        if st.storeID != checkpoint.storeID {
            out.append("store: the statement is about store \(st.storeID), checkpoint.json about store \(checkpoint.storeID)")
        }
        if st.checkpointSeq != checkpoint.seq || st.checkpointHash != ExportStatement.sha256(checkpoint.statement) {
            out.append("checkpoint: the statement binds another checkpoint (seq \(st.checkpointSeq)) than checkpoint.json (seq \(checkpoint.seq)): it belongs to another export, or the checkpoint was replaced")
        }
        switch ExportFilter.fromManifest(manifest["filter"]) {
        case .failure(let error):
            out.append("filter: the manifest's filter cannot be read: \(error.message)")
        case .success(let filter):
            let signed = WithholdableField.allCases.reduce(into: [[WithholdableField]]([[]])) { sets, field in sets += sets.map { $0 + [field] } }
                .first { ExportStatement.sha256(filter.encoding(redact: Set($0))) == st.filterHash }
            signedRedaction = signed.map(Set.init)
            if let redacted, signed.map(Set.init) == Set(redacted) {
                break
            } else if let signed {
                out.append("redaction set: the manifest names \(redacted.map(names) ?? "an unreadable set") as withheld, the statement signs \(names(signed))")
            } else {
                out.append("filter: the manifest's filter differs from the one the statement signs (the selection was changed)")
            }
        }
        if st.entryCount != UInt64(clamping: count) || count < 0 {
            out.append("entryCount: the statement signs \(st.entryCount) entries, the manifest states \(count)")
        }
        if manifest["createdAt"] as? Int64 != st.createdAt.microsecondsSinceEpoch {
            out.append("createdAt: the statement signs \(st.createdAt.microsecondsSinceEpoch), the manifest states \(manifest["createdAt"].map { "\($0)" } ?? "nothing")")
        }
        if ExportStatement.seqsHash(seqs) != st.seqsHash {
            out.append("seqs: the manifest's seqs differ from the ones the statement signs (an entry was removed or added together with its seq)")
        }
        return (out, signedRedaction)
    }

    private static func read(_ path: String) -> Result<Data, AuditError> {
        Result { () throws(AuditError) in Data(try FileBytes.read(path, what: "bundle file", limit: 1 << 34)) }
    }

    private static func jsonObject(_ data: Data) -> Result<[String: Any], AuditError> {
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {  // the failure is reported as the result
            return .failure(AuditError(.invalidInput, "not a JSON object"))
        }
        return .success(object)
    }

    /// Checks one entry; nil if it verifies.
    static let entryKeys: Set<String> = [
        "seq", "recordedAt", "occurredAt", "originRef", "tenant", "action", "resourceType", "resourceId", "correlationId",
        "outcome", "severity", "origin", "formatVersion", "keyVersion", "actor", "source", "details", "leafHash", "proof",
    ]
    static let manifestKeys: Set<String> = ["format", "storeId", "checkpointSeq", "entryCount", "seqs", "redacted", "filter", "createdAt"]

    static func check(entry e: [String: Any], seq: Int64, checkpoint: Checkpoint) -> (kind: ExportFinding.Kind, message: String)? {
        func malformed(_ what: String) -> (kind: ExportFinding.Kind, message: String) {
            (.bundleMalformed, "entry seq \(seq): \(what)")
        }
        func int(_ name: String) -> Int64? { e[name] as? Int64 }
        func optionalInt(_ name: String) -> Int64?? {
            if e[name] is NSNull { return .some(nil) }
            return (e[name] as? Int64).map { .some($0) }
        }
        func optionalText(_ name: String) -> String?? {
            if e[name] is NSNull { return .some(nil) }
            return (e[name] as? String).map { .some($0) }
        }
        // Every key is proven or (leafHash) recomputed: nothing unproven may sit in an entry.
        if let unknown = e.keys.sorted().first(where: { !entryKeys.contains($0) }) {
            return malformed("unknown field \(OutputEscaping.jsonQuoted(unknown)); an entry holds only its proven fields")
        }
        for field in WithholdableField.allCases {
            guard let object = e[field.rawValue] as? [String: Any] else { continue }
            let keys = Set(object.keys)
            let allowed: Set<String> = object["withheld"] as? Bool == true ? ["withheld", "commitment"] : ["value", "nonce", "commitment"]
            if let extra = keys.subtracting(allowed).sorted().first {
                return malformed("field \(field.rawValue) has an unexpected key \(OutputEscaping.jsonQuoted(extra))")
            }
        }
        guard seq >= 1, seq <= checkpoint.seq else {
            return (.proofInvalid, "entry seq \(seq) is outside the checkpoint (seqs 1...\(checkpoint.seq))")
        }
        guard let recordedAt = int("recordedAt"), let occurredAt = optionalInt("occurredAt"),
              let tenant = optionalText("tenant"), let action = e["action"] as? String,
              let resourceType = optionalText("resourceType"), let resourceId = optionalText("resourceId"),
              let outcome = int("outcome"), let severity = int("severity"), let correlationId = optionalText("correlationId"),
              let origin = int("origin"), let originRef = optionalInt("originRef"), let format = int("formatVersion"),
              let keyVersion = int("keyVersion"),
              [outcome, severity, origin, format].allSatisfy({ (0...255).contains($0) }), let kv = UInt32(exactly: keyVersion)
        else { return malformed("a value is missing or of the wrong type") }
        var commitments: [UInt8] = []
        for field in WithholdableField.allCases {
            guard let f = e[field.rawValue] as? [String: Any], let c = (f["commitment"] as? String).flatMap(Hex.decode), c.count == 32 else {
                return malformed("\(field.rawValue) has no 32-byte commitment")
            }
            if f["withheld"] as? Bool == true {
                commitments += c
                continue
            }
            var expected = [UInt8](repeating: 0, count: 32)
            if f["value"] is NSNull {
                // NULL commits to 32 zero bytes.
            } else if let value = f["value"] as? String, let nonce = (f["nonce"] as? String).flatMap(Hex.decode), nonce.count == 32 {
                var bytes = Array(value.utf8)
                bytes.withUnsafeMutableBufferPointer { b in
                    adb_commitment(nonce, field.id, adb_bytes(ptr: b.baseAddress, len: Int64(b.count)), &expected)
                }
            } else {
                return malformed("\(field.rawValue) needs a value and a 32-byte nonce, or withheld: true")
            }
            guard expected == c else {
                return (.commitmentMismatch, "entry seq \(seq): the shown \(field.rawValue) does not match its commitment (the value or its nonce was changed)")
            }
            commitments += c
        }
        var enc = Array("ADB1ROW_".utf8) + checkpoint.storeID.bytes
        func i64(_ v: Int64) { enc += (0..<8).map { UInt8(truncatingIfNeeded: UInt64(bitPattern: v) >> (8 * (7 - UInt64($0)))) } }
        func u32(_ v: UInt32) { enc += (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * (3 - UInt32($0)))) } }
        func optI64(_ v: Int64?) { if let v { enc.append(1); i64(v) } else { enc.append(0) } }
        func optStr(_ s: String?) { if let s { u32(UInt32(s.utf8.count)); enc += Array(s.utf8) } else { u32(0xFFFF_FFFF) } }
        i64(seq); enc.append(UInt8(format)); u32(kv); i64(recordedAt); optI64(occurredAt)
        optStr(tenant); optStr(action); optStr(resourceType); optStr(resourceId)
        enc.append(UInt8(outcome)); enc.append(UInt8(severity)); optStr(correlationId)
        enc.append(UInt8(origin)); optI64(originRef)
        enc += commitments
        let message = [UInt8(0)] + enc
        var leaf = [UInt8](repeating: 0, count: 32)
        adb_sha256(message, message.count, &leaf)
        let withheld = WithholdableField.allCases.filter { (e[$0.rawValue] as? [String: Any])?["withheld"] as? Bool == true }
        guard let stated = (e["leafHash"] as? String).flatMap(Hex.decode), stated == leaf else {
            return (.entryChanged, "entry seq \(seq): its values do not hash to its leaf hash: a value"
                + (withheld.isEmpty ? "" : " or the commitment of a withheld field (\(withheld.map(\.rawValue).joined(separator: ", ")))")
                + " was changed")
        }
        guard let proofTexts = e["proof"] as? [String] else { return malformed("no proof") }
        let proof = proofTexts.compactMap(Hex.decode)
        let expectedLength = MerkleTree.proofLength(index: seq - 1, size: checkpoint.seq)
        guard proof.count == proofTexts.count, proof.count == expectedLength else {
            return (.proofInvalid, "entry seq \(seq): its inclusion proof has \(proofTexts.count) hashes; leaf \(seq - 1) of a tree of \(checkpoint.seq) needs \(expectedLength)")
        }
        guard MerkleTree.verifyInclusion(leaf: leaf, index: seq - 1, size: checkpoint.seq, proof: proof, root: checkpoint.merkleRoot) else {
            return (.proofInvalid, "entry seq \(seq): its inclusion proof does not lead to the Merkle root of the checkpoint at seq \(checkpoint.seq) (the proof was changed)")
        }
        return nil
    }
}
