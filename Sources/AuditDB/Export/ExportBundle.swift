import CAuditCore
import Foundation

/// Export bundles (FORMAT.md, section 17): a directory with `manifest.json`, `checkpoint.json`,
/// `entries.jsonl` and, when signed, `statement.json`. Written by
/// ``AuditStore/export(to:filter:redact:signer:limit:progress:)``; verified here with
/// only the public checkpoint key: no store, no HMAC key.
public enum ExportBundle {
    /// The bundle layouts (FORMAT.md 17.1 and 17.5): `verify` reads both; `export` writes v2
    /// unless ``formatWritten`` says otherwise.
    @_spi(Testing) public enum Format: String, Sendable, CaseIterable {
        /// `auditdb-export v1`: an object per entry with its own inclusion proof (about 2 KB an entry).
        case v1 = "auditdb-export v1"
        /// `auditdb-export v2`: an array per entry and one multiproof for all of them.
        case v2 = "auditdb-export v2"
    }

    /// The format ``AuditStore/export(to:filter:redact:signer:limit:progress:)`` writes in this
    /// task: v2, or v1 for tests, test vectors and benchmarks that need the old layout
    /// (`ExportBundle.formatWritten.withValue(.v1) { … }`).
    @_spi(Testing) public static let formatWritten = TaskLocal<Format>(wrappedValue: .v2)
    /// The format ``AuditStore/export(to:filter:redact:signer:limit:progress:)`` writes now.
    static var writtenFormat: Format { formatWritten.get() }
    /// Modes of what an export writes: the bundle directory 0700, its files 0600.
    static let directoryMode: Platform.FileMode = 0o700
    static let fileMode: Platform.FileMode = 0o600
    static let manifestFile = "manifest.json"
    static let checkpointFile = "checkpoint.json"
    static let entriesFile = "entries.jsonl"
    static let multiproofFile = "multiproof.bin"

    // The bounds of a bundle (docs/FORMAT.md section 17.4), enforced while reading so that a
    // hostile bundle costs little memory (well under 100 MB) and is refused promptly. An export
    // that would exceed one is refused when it is written.
    /// The most entries (manifest seqs, and lines of `entries.jsonl`) one bundle holds.
    static let maximumEntries = 1_000_000
    /// The longest line of `entries.jsonl`, without its LF.
    static let maximumEntryLineBytes = 1 << 20
    /// The largest `entries.jsonl`.
    static let maximumEntriesFileBytes = 16 << 30
    /// The largest `manifest.json` (a million seqs of 20 digits and a sign fit).
    static let maximumManifestBytes = 24 << 20
    /// The largest `multiproof.bin` (v2): 2 GiB. A multiproof of at most a million leaves has at
    /// most 63 hashes a leaf (a tree is at most 63 levels deep), 2,016,000,000 bytes, so a bundle
    /// within the other bounds never passes this one.
    static let maximumMultiproofBytes = 1 << 31
    /// The largest `checkpoint.json` and `statement.json`.
    static let maximumSignedFileBytes = 65_536
    /// Verification stops at this many findings.
    public static let findingLimit = 1_000

    /// Verifies the bundle at `path`: the checkpoint's signature under `publicKeys`; then every
    /// entry: its order (strictly increasing seqs), that the manifest lists it, its values and
    /// ENC_ROW; that every listed seq has an entry; and that the entries lead to the checkpoint's
    /// root: each through its own inclusion proof (format v1), or all of them through the
    /// bundle's one multiproof (format v2, FORMAT.md 17.5; the manifest says which).
    ///
    /// ```swift
    /// let keys = try CheckpointPublicKeys.load(path: "checkpoint.pub")
    /// let result = try await ExportBundle.verify(at: "export-2026-11", publicKeys: keys)
    /// print(result.isValid ? "valid" : result.findings[0].message)
    /// ```
    ///
    /// Every file is read by the strict JSON rules (FORMAT.md section 18) and within the bounds
    /// of section 17.4: only regular files (a FIFO or device is a finding at once, never waited
    /// on), `entries.jsonl` streamed line by line, so memory stays small (well under 100 MB)
    /// whatever the bundle holds. Verification stops at the 1,000th finding.
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
    ///
    /// `progress`, if given, is told how many entry lines are read of the manifest's entry count
    /// (never more than that count: an added entry is a finding), about every 4,096 entries.
    public static func verify(at path: String, publicKeys: CheckpointPublicKeys, requireStatement: Bool = false,
                              progress: (@Sendable (VerificationProgress) -> Void)? = nil) async throws(AuditError)
        -> ExportVerification
    {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw AuditError(.invalidInput, "no export bundle (directory) at \(path)", field: "BUNDLE")
        }
        var findings: [ExportFinding] = []
        func add(_ kind: ExportFinding.Kind, _ seq: Int64?, _ message: String) {
            if findings.count < findingLimit { findings.append(ExportFinding(kind: kind, seq: seq, message: message)) }
        }
        // 1. The checkpoint.
        let checkpoint: Checkpoint
        switch readFile(path, checkpointFile, limit: maximumSignedFileBytes) {
        case .failure(let why):
            add(.checkpointInvalid, nil, why.message)
            return ExportVerification(checkpoint: nil, entriesVerified: 0, findings: findings)
        case .success(let bytes):
            do throws(AuditError) {
                checkpoint = try Checkpoint(json: Data(bytes))
            } catch {
                add(.checkpointInvalid, nil, "\(checkpointFile): \(error.message)")
                return ExportVerification(checkpoint: nil, entriesVerified: 0, findings: findings)
            }
        }
        if let why = checkpoint.invalidity(under: publicKeys) {
            add(.checkpointInvalid, nil, "the checkpoint at seq \(checkpoint.seq) is invalid: \(why)")
            return ExportVerification(checkpoint: checkpoint, entriesVerified: 0, findings: findings)
        }
        // 2. The manifest.
        let manifest: Manifest
        switch readFile(path, manifestFile, limit: maximumManifestBytes).flatMap({ Manifest.read($0, checkpoint: checkpoint) }) {
        case .failure(let why):
            add(.bundleMalformed, nil, why.message)
            return ExportVerification(checkpoint: checkpoint, entriesVerified: 0, findings: findings)
        case .success(let read):
            manifest = read
            for (kind, message) in read.findings { add(kind, nil, message) }
        }
        // 3. The export statement.
        var statement: ExportStatement?
        var attestedWithheld: Set<WithholdableField>?
        var attestedSeqs: ClosedRange<Int64>?
        var signedFilter: ExportFilter?
        switch readFile(path, ExportStatement.file, limit: maximumSignedFileBytes) {
        case .failure(let why) where why.message == describe(.missing, ExportStatement.file, limit: 0):
            if requireStatement {
                add(.statementMissing, nil, "the bundle has no \(ExportStatement.file), and a signed statement was required: nothing attests that the export is complete. Export it again with the checkpoint signing key (`auditdb export --signing-key FILE`)")
            }
        case .failure(let why):
            add(.statementInvalid, nil, why.message)
        case .success(let bytes):
            do throws(AuditError) {
                let st = try ExportStatement(json: Data(bytes))
                if let why = st.invalidity(under: publicKeys) {
                    add(.statementInvalid, nil, "the export statement is invalid: \(why)")
                } else {
                    statement = st
                    let compared = compare(st, checkpoint: checkpoint, manifest: manifest)
                    for why in compared.mismatches { add(.statementMismatch, nil, why) }
                    attestedWithheld = compared.signedRedaction
                    signedFilter = compared.signedFilter
                    attestedSeqs = compared.signedFilter?.seqs
                }
            } catch {
                add(.statementInvalid, nil, "\(ExportStatement.file): \(error.message)")
            }
        }
        // 4. The entries, streamed line by line within the bounds of section 17.4.
        let lines: FileLines
        switch FileLines.open(path + "/" + entriesFile, maxLineBytes: maximumEntryLineBytes, maxLines: maximumEntries,
                              maxFileBytes: maximumEntriesFileBytes)
        {
        case .failure(let failure):
            add(.bundleMalformed, nil, describe(failure, entriesFile, limit: maximumEntriesFileBytes))
            return ExportVerification(checkpoint: checkpoint, entriesVerified: 0, findings: findings, statement: statement,
                                      redacted: manifest.redacted ?? [])
        case .success(let opened):
            lines = opened
        }
        var seen = EntriesSeen(listed: manifest.seqs)
        var previous: Int64 = 0
        var verified = 0
        var leaves: [UInt8] = []  // v2: the leaf of each listed entry whose own checks passed
        var reordered = false
        var erasedShown: [(seq: Int64, mask: UInt8)] = []  // of the entries whose own checks passed (17.2 step 5)
        // Progress counts entry lines, at most the manifest's count: an added entry is a finding,
        // not progress past 100%.
        var entryLines: Int64 = 0
        let listed = Int64(manifest.seqs.count)
        while findings.count < findingLimit {
            let line: ArraySlice<UInt8>
            do {
                guard let next = try lines.next() else { break }
                line = next
            } catch {
                // The file itself breaks a bound: nothing after this point is read, and no
                // `entry-missing` is reported (the entries were not all read).
                add(.bundleMalformed, nil, describe(error))
                return ExportVerification(checkpoint: checkpoint, entriesVerified: verified, findings: findings,
                                          statement: statement, redacted: manifest.redacted ?? [])
            }
            let lineNumber = lines.lineNumber
            if line.isEmpty { continue }
            entryLines += 1
            if let progress, entryLines % 4_096 == 0 {
                progress(VerificationProgress(rowsChecked: min(entryLines, listed), totalRows: listed))
            }
            let entry: ParsedLine
            switch parseLine(line, format: manifest.format) {
            case .failure(let error):
                add(.bundleMalformed, nil, "\(entriesFile) line \(lineNumber): \(error)")
                continue
            case .success(let parsed):
                entry = parsed
            }
            guard let seq = entry.seq else {
                add(.bundleMalformed, nil, "\(entriesFile) line \(lineNumber) is not an entry: it has no integer seq")
                continue
            }
            guard seen.insert(seq) else {
                add(.entryDuplicate, seq, "seq \(seq) appears more than once (line \(lineNumber))")
                continue
            }
            if seq < previous {
                add(.entryOutOfOrder, seq, "entry seq \(seq) (line \(lineNumber)) comes after seq \(previous): the entries were reordered")
                reordered = true
            }
            previous = max(previous, seq)
            if !seen.isListed(seq) {
                add(.entryAdded, seq, "entry seq \(seq) (line \(lineNumber)) is not listed in the manifest: it was added")
                continue
            }
            let checked: Result<CheckedEntry, EntryProblem>
            switch entry {
            case .v1(let object):
                checked = Self.checked(entry: object, seq: seq, checkpoint: checkpoint)
            case .v2(let elements):
                checked = checkV2(entry: elements, seq: seq, checkpoint: checkpoint)
                // In the manifest's order while no entry came out of order (step 6).
                if case .success(let entry) = checked { leaves += entry.leaf }
            }
            switch checked {
            case .failure(let problem):
                add(problem.kind, seq, problem.message)
            case .success(let entry):
                // An erased field (FORMAT.md section 21) is shown as erased whatever the redaction set.
                let (withheld, erased) = (entry.withheld, entry.erased)
                if !erased.isEmpty { erasedShown.append((seq, ErasureRecord.mask(erased))) }
                if let attested = attestedWithheld, withheld != attested.subtracting(erased) {
                    add(.statementMismatch, seq, "entry seq \(seq) withholds \(names(withheld)), but the statement attests that \(names(attested)) was withheld")
                } else if attestedWithheld == nil, let manifestSet = manifest.redacted.map(Set.init),
                          withheld != manifestSet.subtracting(erased)
                {
                    add(.manifestMismatch, seq, "entry seq \(seq) withholds \(names(withheld)), but the manifest says \(names(manifestSet)) was withheld")
                } else if let why = signedFilter?.mismatch(entry.values, actor: entry.actor) {
                    add(.statementMismatch, seq, "filter: entry seq \(seq) does not match the filter the statement signs: \(why)")
                } else {
                    verified += 1
                }
            }
        }
        progress?(VerificationProgress(rowsChecked: min(entryLines, listed), totalRows: listed))
        for seq in manifest.seqs where findings.count < findingLimit && !seen.contains(seq) {
            add(.entryMissing, seq, "the manifest lists seq \(seq) but the bundle has no entry for it: it was removed")
        }
        // 5. A v2 statement attests the erased fields (FORMAT.md 17.2 step 5): a shown or withheld
        // field relabelled erased, or the reverse, changes ERASED_ENC.
        if let attested = statement?.erasedHash, ExportStatement.erasedHash(erasedShown) != attested {
            add(.statementMismatch, nil, "erased: the fields the entries show as erased differ from the ones the statement signs (a shown or withheld field was relabelled erased, or an erased one relabelled)")
        }
        if manifest.format == .v2 {
            // 6. The multiproof (FORMAT.md 17.5): checked when every listed entry gave its leaf, in order; only then
            // is any entry proven.
            var proven = false
            if findings.count < findingLimit, !reordered, leaves.count == manifest.seqs.count * 32 {
                if let problem = checkMultiproof(path, seqs: manifest.seqs, leaves: leaves, checkpoint: checkpoint) {
                    add(problem.kind, nil, problem.message)
                } else {
                    proven = true
                }
            }
            if !proven { verified = 0 }
        }
        // Erased labels are named as unproven only when no v2 statement attests them, and only when
        // entries verified (in a valid bundle, every entry whose own checks passed is verified).
        let unproven = statement?.erasedHash != nil || verified == 0 ? [] : erasedShown.map(\.seq).sorted()
        return ExportVerification(checkpoint: checkpoint, entriesVerified: verified, findings: findings, statement: statement,
                                  redacted: manifest.redacted ?? [], entriesShowingErased: unproven, attestedSeqs: attestedSeqs)
    }

    /// The names of a set of fields in the order actor, source, details, or "none".
    static func names(_ set: Set<WithholdableField>) -> String {
        set.isEmpty ? "none" : WithholdableField.allCases.filter(set.contains).map(\.rawValue).joined(separator: ", ")
    }

    /// The message of a finding about a bundle file that cannot be used.
    struct Problem: Error, Equatable {
        let message: String
    }

    /// Reads one file of the bundle within `limit` bytes; on failure, the finding's message.
    static func readFile(_ directory: String, _ name: String, limit: Int) -> Result<[UInt8], Problem> {
        FileBytes.readBounded(directory + "/" + name, limit: limit).mapError { Problem(message: describe($0, name, limit: limit)) }
    }

    static func describe(_ failure: FileBytes.InputFailure, _ name: String, limit: Int) -> String {
        failure.describe(name, limit: limit)
    }

    static func describe(_ failure: FileLines.Failure) -> String {
        switch failure {
        case .lineTooLong(let line): "\(entriesFile) line \(line) is longer than \(maximumEntryLineBytes) bytes"
        case .tooManyLines: "\(entriesFile) has more than \(maximumEntries) lines"
        case .tooLarge: "\(entriesFile) is larger than \(maximumEntriesFileBytes) bytes"
        case .unreadable: "\(entriesFile) could not be read"
        }
    }

    /// The seqs of the entries read so far: a bit per seq the manifest lists (in order, so found by
    /// binary search), a set for the others (at most one per line).
    struct EntriesSeen {
        let listed: [Int64]
        private var seenListed: [Bool]
        private var seenOther = Set<Int64>()

        init(listed: [Int64]) {
            self.listed = listed
            seenListed = [Bool](repeating: false, count: listed.count)
        }

        private func position(_ seq: Int64) -> Int? {
            var low = 0, high = listed.count
            while low < high {
                let mid = (low + high) / 2
                if listed[mid] < seq { low = mid + 1 } else { high = mid }
            }
            return low < listed.count && listed[low] == seq ? low : nil
        }

        func isListed(_ seq: Int64) -> Bool { position(seq) != nil }

        func contains(_ seq: Int64) -> Bool {
            if let i = position(seq) { return seenListed[i] }
            return seenOther.contains(seq)
        }

        /// Records `seq`; false if it was seen already.
        mutating func insert(_ seq: Int64) -> Bool {
            if let i = position(seq) {
                defer { seenListed[i] = true }
                return !seenListed[i]
            }
            return seenOther.insert(seq).inserted
        }
    }
}
