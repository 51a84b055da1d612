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
        /// An entry's values (or a withheld field's commitment) do not hash to its leaf (v1 only:
        /// a v2 entry carries no leaf hash, and a changed value shows as `proof-invalid`).
        public static let entryChanged = Kind("entry-changed")
        /// A shown value does not match its own commitment and nonce.
        public static let commitmentMismatch = Kind("commitment-mismatch")
        /// An entry's inclusion proof (v1), or the bundle's multiproof with its entries (v2), does
        /// not lead to the checkpoint's root; also an entry seq beyond the checkpoint.
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
    /// The seqs of the verified entries that show a field as erased when no v2 export statement
    /// attests the erased fields (FORMAT.md sections 17.3 and 21.5): without one, whoever holds
    /// the bundle can relabel a shown or withheld field as erased and every hash still holds.
    /// Check these against the store's erasure entries before relying on what they hide. Empty
    /// when a valid v2 statement attests them.
    public let entriesShowingErased: [Int64]
    /// The seq range of the filter the statement signs (`--from-seq`/`--to-seq`, or the range a
    /// `--limit` export reached); nil when it signs every seq up to the checkpoint, or there is
    /// no valid statement.
    public let attestedSeqs: ClosedRange<Int64>?

    init(checkpoint: Checkpoint?, entriesVerified: Int = 0, findings: [ExportFinding], statement: ExportStatement? = nil,
         redacted: [WithholdableField] = [], entriesShowingErased: [Int64] = [], attestedSeqs: ClosedRange<Int64>? = nil)
    {
        self.attestedSeqs = attestedSeqs
        self.checkpoint = checkpoint
        self.entriesVerified = entriesVerified
        self.findings = findings
        self.statement = statement
        self.redacted = redacted
        self.entriesShowingErased = entriesShowingErased
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
        var erased = ""
        if let first = entriesShowingErased.first {
            erased = "\nerased fields NOT proven: \(entriesShowingErased.count) entr\(entriesShowingErased.count == 1 ? "y shows" : "ies show") "
                + "fields as erased (first: seq \(first)); without a v2 statement a bundle cannot prove a field erased rather "
                + "than shown or withheld (docs/FORMAT.md 21.5): check these seqs against the store's erasure entries"
        }
        guard let statement else {
            return head + "\ncompleteness NOT attested: the bundle has no signed statement.json, so entries could have been left out together with their seqs" + erased
        }
        let withheld = redacted.isEmpty ? "none" : redacted.map(\.rawValue).joined(separator: ", ")
        let rows = attestedSeqs.map { ExportFilter.describe(seqs: $0, checkpoint: statement.checkpointSeq) } ?? "up to seq \(statement.checkpointSeq)"
        return head + "\ncompleteness attested: a statement signed with checkpoint key version \(statement.keyVersion) says these are all rows \(rows) that match the manifest's filter (withheld: \(withheld))" + erased
    }
}
