/// One thing wrong with a store, naming where it starts and what kind of damage it is.
public struct Finding: Sendable, Hashable, CustomStringConvertible {
    /// The kind of damage. An open set: match with `==` against the static members.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        /// A stable machine-readable name, e.g. `mac-mismatch`.
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A row's stored values (or its seq, store or key version) no longer match its MAC.
        public static let macMismatch = Kind("mac-mismatch")
        /// A row is intact but does not follow the row before it: rows were removed, inserted
        /// or reordered around it, or it comes from another copy of this store.
        public static let chainBreak = Kind("chain-break")
        /// Seqs are missing (rows removed).
        public static let missingRows = Kind("missing-rows")
        /// Rows that cannot belong to the log (seq below 1).
        public static let unexpectedRows = Kind("unexpected-rows")
        /// A row's columns have impossible types or values (wrong type, out-of-range code,
        /// a MAC that is not 32 bytes, an unknown format version).
        public static let malformedRow = Kind("malformed-row")
        /// A row claims a key version that is not in the key ring.
        public static let unknownKeyVersion = Kind("unknown-key-version")
        /// A row is signed by a key version declared compromised and has no valid re-attestation.
        public static let compromisedKey = Kind("compromised-key")
        /// A table, trigger, index or view of the store is missing, changed or unexpected.
        public static let schemaTampered = Kind("schema-tampered")
        /// The store header (`audit_store`) is missing, duplicated or fails its MAC.
        public static let headerTampered = Kind("header-tampered")
        /// The file is a different store than the one expected.
        public static let storeIdentityMismatch = Kind("store-identity-mismatch")
        /// SQLite reports damaged pages, or the file is not a database.
        public static let corruption = Kind("corruption")
        /// A row of a side table that the signed log does not account for (for example an
        /// `audit_key_versions` row that no log row confirms, or an `audit_attestations` row that
        /// does not verify): inserted by another SQLite client. AuditDB ignores it; it changes no
        /// answer and blocks no operation, but its presence means someone wrote to the file.
        /// A time break where `recorded_at` does not go backwards is one too (at its seq;
        /// FORMAT.md section 24).
        public static let foreignRow = Kind("foreign-row")
        /// The store records fewer schema migrations than this AuditDB knows: not migrated yet
        /// (run `auditdb migrate`), or its migration record and the later migrations' objects were
        /// removed. The rest of the store was checked against the schema it records.
        public static let schemaOutdated = Kind("schema-outdated")
        /// A query index (actor, resource, tenant and time, time, AuditDB's own entries, adoption
        /// runs) does not hold exactly the entries its rows imply: an entry is missing, extra or
        /// altered, so a query through it could miss rows. The rows are checked separately.
        /// Also, at one row: its `recorded_at` goes backwards but `audit_time_breaks` lacks it
        /// (FORMAT.md section 24). `repairIndexes()` rebuilds both.
        public static let indexMismatch = Kind("index-mismatch")
        /// The log ends before the seq of an anchored checkpoint that this store recorded itself:
        /// rows were cut from the tail after the checkpoint was made.
        public static let truncated = Kind("truncated")
        /// The log ends before the seq of an anchored checkpoint that the store does not know:
        /// the file was replaced by an older copy of itself (or its tail and checkpoints were cut).
        public static let rolledBack = Kind("rolled-back")
        /// The store has the anchored checkpoint's seq but other content up to it (another chain
        /// head or Merkle root): rewritten or forked, even if every MAC is valid. Also: the anchor
        /// holds checkpoints of another store only.
        public static let anchorMismatch = Kind("anchor-mismatch")
        /// An anchored checkpoint is itself invalid: not a checkpoint, a bad signature, or a key
        /// that is not in the public key file. It proves nothing; the anchor was tampered with.
        public static let checkpointInvalid = Kind("checkpoint-invalid")
        /// Two checkpoints of the store contradict each other: different contents for one seq,
        /// or a consistency proof that does not lead from the older to the newer (FORMAT.md
        /// section 22): two different logs were signed under the store's id and key.
        public static let checkpointFork = Kind("checkpoint-fork")
        /// A tombstone of an expired row, or an expiry entry, that the signed log does not
        /// account for (FORMAT.md section 20.4, step 9).
        public static let expiryTampered = Kind("expiry-tampered")
        /// A row was expired (by a key holder) against the policy its expiry entry states, or
        /// while a legal hold kept it.
        public static let retentionViolation = Kind("retention-violation")
        /// An erased field that no verified erasure entry accounts for, an erasure entry whose
        /// fields hold values again, or an erasure entry that cannot be read (FORMAT.md section 21.4).
        public static let erasureTampered = Kind("erasure-tampered")

        /// Whether a finding of this kind is a verdict that rests on AuditDB's own signed entries
        /// (erasure, expiry, hold, key declaration) or attestations, which a key version the key
        /// ring lacks may have signed: such a finding can be the shadow of a missing key rather
        /// than damage, whatever seq it names.
        var restsOnSignedEntries: Bool {
            self == .erasureTampered || self == .expiryTampered || self == .retentionViolation || self == .compromisedKey
        }
    }

    /// What kind of damage.
    public let kind: Kind
    /// The seqs affected (the first bad one is `seqs.lowerBound`), when the finding is about rows.
    public let seqs: ClosedRange<Int64>?
    /// What is wrong, in words, for an operator.
    public let message: String

    /// Creates a finding.
    public init(kind: Kind, seqs: ClosedRange<Int64>?, message: String) {
        self.kind = kind
        self.seqs = seqs
        self.message = message
    }

    /// The first affected seq, if the finding concerns rows.
    public var firstSeq: Int64? { seqs?.lowerBound }

    public var description: String {
        let at: String
        switch seqs {
        case nil: at = ""
        case let r? where r.lowerBound == r.upperBound: at = " at seq \(r.lowerBound)"
        case let r?: at = " at seqs \(r.lowerBound)...\(r.upperBound)"
        }
        return "\(kind)\(at): \(message)"
    }
}

/// The result of a verification pass.
public struct IntegrityReport: Sendable, CustomStringConvertible {
    /// The store that was checked (nil if its header could not be read).
    public let storeID: StoreID?
    /// How many rows were read and checked.
    public let rowsChecked: Int
    /// The highest seq seen.
    public let lastSeq: Int64
    /// Findings ordered by seq (store-wide findings first), at most ``IntegrityReport/findingLimit``.
    public let findings: [Finding]
    /// How many findings there were in all (may exceed `findings.count`).
    public let totalFindings: Int
    /// When the pass started.
    public let startedAt: AuditTimestamp
    /// How long it took.
    public let duration: Duration
    /// The first seq whose row was checked (1 for a full pass; after the verified position
    /// for an incremental one).
    public internal(set) var firstCheckedSeq: Int64 = 1
    /// The last row proven and its MAC, when the pass found nothing wrong.
    var verifiedHead: Verifier.Position?

    /// At most this many findings are kept in a report.
    public static let findingLimit = 1_000

    /// True when nothing is wrong.
    public var isIntact: Bool { totalFindings == 0 }

    /// True when the log, the header and the schema are intact and the only findings are
    /// ``Finding/Kind/foreignRow`` (side-table rows written by another client, which AuditDB
    /// ignores) or ``Finding/Kind/schemaOutdated`` (a schema that `migrate` brings up to date). Operations that need a sound log (checkpoints, re-attestation, migrations)
    /// proceed on such a store, so that a foreign row can never block them.
    public var isLogIntact: Bool {
        totalFindings == findings.count && findings.allSatisfy { $0.kind == .foreignRow || $0.kind == .schemaOutdated }
    }

    /// The first finding: the earliest damage.
    public var firstFinding: Finding? { findings.first }

    /// This report with `finding` first (a finding an earlier pass made that this one cannot
    /// make from the file: IntegrityScanner's lost rows); no head is verified then.
    func prepending(_ finding: Finding) -> IntegrityReport {
        var report = IntegrityReport(
            storeID: storeID, rowsChecked: rowsChecked, lastSeq: lastSeq,
            findings: Array(([finding] + findings).prefix(Self.findingLimit)), totalFindings: totalFindings + 1,
            startedAt: startedAt, duration: duration)
        report.firstCheckedSeq = firstCheckedSeq
        return report
    }

    public var description: String {
        if isIntact { return "intact: \(rowsChecked) rows verified (seq 1...\(lastSeq))" }
        return "NOT intact: \(totalFindings) finding(s); first: \(findings.first.map(String.init(describing:)) ?? "?")"
    }
}
