extension ShippedEntry {
    /// One row of the central table `auditdb_ship.entries` exactly as read (FORMAT.md 22.7), before
    /// any check: every column that can be NULL there is optional, integers are read as `Int64`
    /// whatever their SQL width, `bytea` as bytes, times as microseconds since the epoch.
    ///
    /// ``ShippedEntry/init(columns:)`` is the one reading of such a row, shared by the central
    /// verifier (`ShippedVerifier`, which fills it from PostgreSQL) and the test vectors
    /// (docs/test-vectors/shipping.json, which give it as JSON).
    public struct Columns: Sendable, Hashable {
        /// Column `seq`.
        public var seq: Int64
        /// Column `recorded_at`.
        public var recordedAt: Int64?
        /// Column `occurred_at`.
        public var occurredAt: Int64?
        /// Column `tenant`.
        public var tenant: String?
        /// Column `actor`.
        public var actor: String?
        /// Column `action`.
        public var action: String?
        /// Column `resource_type`.
        public var resourceType: String?
        /// Column `resource_id`.
        public var resourceId: String?
        /// Column `outcome`.
        public var outcome: Int64?
        /// Column `severity`.
        public var severity: Int64?
        /// Column `correlation_id`.
        public var correlationId: String?
        /// Column `source`.
        public var source: String?
        /// Column `details`.
        public var details: String?
        /// Column `origin`.
        public var origin: Int64?
        /// Column `origin_ref`.
        public var originRef: Int64?
        /// Column `format_version`.
        public var formatVersion: Int64?
        /// Column `key_version`.
        public var keyVersion: Int64?
        /// Column `actor_nonce`.
        public var actorNonce: [UInt8]?
        /// Column `source_nonce`.
        public var sourceNonce: [UInt8]?
        /// Column `details_nonce`.
        public var detailsNonce: [UInt8]?
        /// Column `actor_commitment`.
        public var actorCommitment: [UInt8]?
        /// Column `source_commitment`.
        public var sourceCommitment: [UInt8]?
        /// Column `details_commitment`.
        public var detailsCommitment: [UInt8]?
        /// Column `withheld`.
        public var withheld: Int64?
        /// Column `erased`.
        public var erased: Int64?
        /// Column `leaf`.
        public var leaf: [UInt8]?
        /// Column `tombstone`.
        public var tombstone: [UInt8]?
        /// Column `expiry_seq`.
        public var expirySeq: Int64?

        /// A row at `seq` with every other column NULL (set the ones read).
        public init(seq: Int64) { self.seq = seq }
    }

    /// Reads one central row by the shape rules of FORMAT.md 22.7 (rule 0). A row that breaks
    /// them is still read as far as it can be, with the first broken rule in ``shapeProblem``, so
    /// that it is reported as `changed` and the rest of the store is still checked.
    ///
    /// A NULL `action` makes it an expired row: then `tombstone` (164 bytes) and `expiry_seq` must
    /// be set, `recorded_at` must be the tombstone's (bytes 76..<84), `withheld` and `erased` 0
    /// and every other value column NULL. Otherwise `tombstone` and `expiry_seq` must be NULL,
    /// `recorded_at`, `outcome`, `severity`, `origin`, `format_version`, `key_version`,
    /// `withheld` and `erased` set and within the range of their encoding (u8, u32, 0...7).
    public init(columns c: Columns) {
        var problem: String?
        func note(_ why: String) { if problem == nil { problem = why } }
        let leaf = c.leaf ?? []
        guard let action = c.action else {
            let tombstone = c.tombstone ?? []
            if c.tombstone == nil || c.expirySeq == nil { note("an expired row (no action) without its tombstone and expiry seq") }
            let valueColumns: [(String, Bool)] = [
                ("occurred_at", c.occurredAt != nil), ("tenant", c.tenant != nil), ("actor", c.actor != nil),
                ("resource_type", c.resourceType != nil), ("resource_id", c.resourceId != nil), ("outcome", c.outcome != nil),
                ("severity", c.severity != nil), ("correlation_id", c.correlationId != nil), ("source", c.source != nil),
                ("details", c.details != nil), ("origin", c.origin != nil), ("origin_ref", c.originRef != nil),
                ("format_version", c.formatVersion != nil), ("key_version", c.keyVersion != nil),
                ("actor_nonce", c.actorNonce != nil), ("source_nonce", c.sourceNonce != nil), ("details_nonce", c.detailsNonce != nil),
                ("actor_commitment", c.actorCommitment != nil), ("source_commitment", c.sourceCommitment != nil),
                ("details_commitment", c.detailsCommitment != nil),
            ]
            if let (name, _) = valueColumns.first(where: { $0.1 }) {
                note("an expired row (no action) holds a value in \(name): its values were expired")
            }
            if c.withheld != 0 || c.erased != 0 { note("an expired row (no action) has withheld or erased bits") }
            if tombstone.count == Expired.tombstoneLength,
               c.recordedAt != tombstone[76..<84].reduce(Int64(0), { $0 << 8 | Int64($1) })
            {
                note("an expired row's recorded_at is not the one its tombstone records")
            }
            self.init(seq: c.seq, leaf: leaf, values: nil, expired: Expired(tombstone: tombstone, expirySeq: c.expirySeq ?? 0),
                      shapeProblem: problem)
            return
        }
        if c.tombstone != nil || c.expirySeq != nil { note("a row with an action also holds a tombstone or expiry seq") }
        func small(_ v: Int64?, _ name: String) -> UInt8 {
            guard let v, let u = UInt8(exactly: v) else {
                note("\(name) is \(v.map(String.init) ?? "NULL"), not an integer 0...255")
                return 0
            }
            return u
        }
        let keyVersion: UInt32
        if let v = c.keyVersion, let u = UInt32(exactly: v) {
            keyVersion = u
        } else {
            note("key_version is \(c.keyVersion.map(String.init) ?? "NULL"), not an integer 0...4294967295")
            keyVersion = 0
        }
        func mask(_ v: Int64?, _ name: String) -> Int64 {
            guard let v, (0...7).contains(v) else {
                note("\(name) is \(v.map(String.init) ?? "NULL"), not an integer 0...7")
                return 0
            }
            return v
        }
        if c.recordedAt == nil { note("recorded_at is NULL") }
        let withheld = mask(c.withheld, "withheld"), erased = mask(c.erased, "erased")
        func field(_ value: String?, _ nonce: [UInt8]?, _ commitment: [UInt8]?, bit: Int64) -> Field {
            let state: Field.State = erased & bit != 0 ? .erased : (withheld & bit != 0 ? .withheld : .shown)
            return Field(value: value, nonce: nonce, commitment: commitment ?? [], state: state)
        }
        let values = Values(
            recordedAt: c.recordedAt ?? 0, occurredAt: c.occurredAt, tenant: c.tenant, action: action,
            resourceType: c.resourceType, resourceId: c.resourceId, outcome: small(c.outcome, "outcome"),
            severity: small(c.severity, "severity"), correlationId: c.correlationId, origin: small(c.origin, "origin"),
            originRef: c.originRef, formatVersion: small(c.formatVersion, "format_version"), keyVersion: keyVersion,
            actor: field(c.actor, c.actorNonce, c.actorCommitment, bit: 1),
            source: field(c.source, c.sourceNonce, c.sourceCommitment, bit: 2),
            details: field(c.details, c.detailsNonce, c.detailsCommitment, bit: 4))
        self.init(seq: c.seq, leaf: leaf, values: values, expired: nil, shapeProblem: problem)
    }
}

extension ShippedBatchRecord {
    /// A batch record as `auditdb_ship.batches` stores it: the proof's hashes concatenated. A proof
    /// whose length is not a multiple of 32 keeps its last, short piece, so that it fails
    /// verification (FORMAT.md 22.7 rule 3) instead of being cut to a prefix that might pass.
    public init(firstSeq: Int64, lastSeq: Int64, checkpointSeq: Int64, checkpointSignature: [UInt8], concatenatedProof bytes: [UInt8]) {
        let proof = stride(from: 0, to: bytes.count, by: 32).map { Array(bytes[$0..<min($0 + 32, bytes.count)]) }
        self.init(firstSeq: firstSeq, lastSeq: lastSeq, checkpointSeq: checkpointSeq, checkpointSignature: checkpointSignature, proof: proof)
    }
}
