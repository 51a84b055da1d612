import CAuditCore

/// One log position as it is shipped to a central database (docs/fleet.md, "Shipping"): the
/// row's values with the commitments of its withholdable fields, or, for an expired row, its
/// tombstone; and its Merkle leaf hash (FORMAT.md 16.2). Anyone can recompute the leaf from the
/// values without a key, so a central verifier proves each shipped row against a signed
/// checkpoint with public keys only (``ShippedLogVerifier``).
public struct ShippedEntry: Sendable, Hashable {
    /// The seq.
    public var seq: Int64
    /// LEAF = SHA256(00 || ENC_ROW), as the store computed it (32 bytes).
    public var leaf: [UInt8]
    /// The values, or nil for an expired row.
    public var values: Values?
    /// The tombstone of an expired row (FORMAT.md section 20), or nil.
    public var expired: Expired?
    /// Why the central row this entry was read from breaks the shape rules of FORMAT.md 22.7
    /// (a NULL or out-of-range column, a column an expired row must not hold), or nil. Set by
    /// ``init(columns:)``; ``problem(storeID:)`` reports it first.
    public var shapeProblem: String?

    /// A row, or an expired row.
    public init(seq: Int64, leaf: [UInt8], values: Values?, expired: Expired?, shapeProblem: String? = nil) {
        self.seq = seq
        self.leaf = leaf
        self.values = values
        self.expired = expired
        self.shapeProblem = shapeProblem
    }

    /// One of `actor`, `source`, `details`: shown (value and nonce), NULL, or only its commitment.
    public struct Field: Sendable, Hashable {
        /// How the field is shipped.
        public enum State: Sendable, Hashable {
            /// The value (or NULL, when ``Field/value`` is nil) with its nonce.
            case shown
            /// Withheld by the shipper: only the commitment.
            case withheld
            /// Erased in the store (FORMAT.md section 21): only the commitment exists.
            case erased
        }

        /// The value when shown; nil for NULL, withheld or erased.
        public var value: String?
        /// The nonce of a shown non-NULL value (32 bytes), else nil.
        public var nonce: [UInt8]?
        /// C(seq, f, value) (FORMAT.md section 7 / 21.1), 32 bytes; zeros for NULL.
        public var commitment: [UInt8]
        /// How it is shipped.
        public var state: State

        /// A field.
        public init(value: String?, nonce: [UInt8]?, commitment: [UInt8], state: State) {
            self.value = value
            self.nonce = nonce
            self.commitment = commitment
            self.state = state
        }
    }

    /// The signed values of a row (the columns of FORMAT.md section 5).
    public struct Values: Sendable, Hashable {
        public var recordedAt: Int64
        public var occurredAt: Int64?
        public var tenant: String?
        public var action: String
        public var resourceType: String?
        public var resourceId: String?
        public var outcome: UInt8
        public var severity: UInt8
        public var correlationId: String?
        public var origin: UInt8
        public var originRef: Int64?
        public var formatVersion: UInt8
        public var keyVersion: UInt32
        public var actor: Field
        public var source: Field
        public var details: Field

        /// The values (times in µs since the epoch).
        public init(recordedAt: Int64, occurredAt: Int64?, tenant: String?, action: String, resourceType: String?,
                    resourceId: String?, outcome: UInt8, severity: UInt8, correlationId: String?, origin: UInt8,
                    originRef: Int64?, formatVersion: UInt8, keyVersion: UInt32, actor: Field, source: Field, details: Field)
        {
            self.recordedAt = recordedAt
            self.occurredAt = occurredAt
            self.tenant = tenant
            self.action = action
            self.resourceType = resourceType
            self.resourceId = resourceId
            self.outcome = outcome
            self.severity = severity
            self.correlationId = correlationId
            self.origin = origin
            self.originRef = originRef
            self.formatVersion = formatVersion
            self.keyVersion = keyVersion
            self.actor = actor
            self.source = source
            self.details = details
        }

        /// Whether these are the values of an expiry entry (FORMAT.md 20.3): the action
        /// `auditdb.retention.expired`, recorded by the engine (origin 0).
        public var isExpiryEntry: Bool { action == ExpiryRecord.action && origin == 0 }

        /// The expiry record an expiry entry's shown details hold; nil when the details are not
        /// shown. Throws when they do not read as FORMAT.md 20.3 says.
        func expiryRecord(seq: Int64) throws(ExpiryRecord.Unreadable) -> ExpiryRecord? {
            guard details.state == .shown, let text = details.value else { return nil }
            return try ExpiryRecord(AuditEntry(
                seq: seq, recordedAt: AuditTimestamp(microsecondsSinceEpoch: recordedAt), occurredAt: nil, tenant: tenant,
                actor: nil, action: action, resourceType: resourceType, resourceId: resourceId, outcome: .success,
                severity: .notice, correlationId: nil, source: nil, detailsJSON: text, origin: .recorded, formatVersion: Int(formatVersion),
                keyVersion: keyVersion, mac: [], finding: nil, erasedFields: []))
        }

        /// The field by name.
        public func field(_ f: WithholdableField) -> Field {
            switch f {
            case .actor: actor
            case .source: source
            case .details: details
            }
        }
    }

    /// What stays of an expired row: ENC_TOMB (FORMAT.md 20.1) and the seq of the expiry entry
    /// whose `tombstones` digest covers it.
    public struct Expired: Sendable, Hashable {
        /// ENC_TOMB: u64(seq) || u32(key_version) || mac || leaf || i64(recorded_at) || tags (164 bytes).
        public var tombstone: [UInt8]
        /// The expiry entry's seq.
        public var expirySeq: Int64

        /// A tombstone.
        public init(tombstone: [UInt8], expirySeq: Int64) {
            self.tombstone = tombstone
            self.expirySeq = expirySeq
        }

        /// ENC_TOMB's length.
        public static let tombstoneLength = 8 + 4 + 32 + 32 + 8 + 80

        /// The seq ENC_TOMB names (its bytes 0..8), or nil when it is not ``tombstoneLength`` bytes.
        var namedSeq: Int64? {
            tombstone.count == Self.tombstoneLength ? tombstone[0..<8].reduce(Int64(0)) { $0 << 8 | Int64($1) } : nil
        }
    }

    /// Why this entry does not prove itself, or nil: a shown field that does not match its
    /// commitment, values that do not hash to ``leaf``, or a malformed entry. Needs no key.
    /// (Whether ``leaf`` is in a signed tree is ``ShippedLogVerifier``'s business.)
    public func problem(storeID: StoreID) -> String? {
        guard seq >= 1, leaf.count == 32 else { return "seq \(seq): no 32-byte leaf hash" }
        if let shapeProblem { return "seq \(seq): \(shapeProblem)" }
        if let expired {
            let t = expired.tombstone
            guard values == nil, let tombSeq = expired.namedSeq else {
                return "seq \(seq): an expired row holds values, or its tombstone is not \(Expired.tombstoneLength) bytes"
            }
            guard tombSeq == seq, Array(t[44..<76]) == leaf else {
                return "seq \(seq): its tombstone names seq \(tombSeq) or another leaf hash"
            }
            return nil
        }
        guard let v = values else { return "seq \(seq): neither values nor a tombstone" }
        for f in WithholdableField.allCases {
            let field = v.field(f)
            guard field.commitment.count == 32 else { return "seq \(seq): the \(f.rawValue) commitment is not 32 bytes" }
            switch field.state {
            case .withheld, .erased:
                guard field.value == nil, field.nonce == nil else { return "seq \(seq): a withheld \(f.rawValue) holds a value or nonce" }
            case .shown:
                guard let value = field.value else {
                    guard field.nonce == nil, field.commitment.allSatisfy({ $0 == 0 }) else {
                        return "seq \(seq): the \(f.rawValue) is NULL but its commitment is not the one of NULL (32 zero bytes)"
                    }
                    continue
                }
                guard let nonce = field.nonce, nonce.count == 32 else { return "seq \(seq): the shown \(f.rawValue) has no 32-byte nonce" }
                guard Self.commitment(nonce: nonce, field: f, value: value) == field.commitment else {
                    return "seq \(seq): the \(f.rawValue) does not match its commitment: the value (or its nonce) was changed after it was signed"
                }
            }
        }
        guard Self.leaf(storeID: storeID, seq: seq, values: v) == leaf else {
            return "seq \(seq): its values do not hash to its leaf hash: a value (or a withheld field's commitment) was changed after it was signed"
        }
        return nil
    }

    /// C = SHA256(nonce || u8(f) || value) (FORMAT.md section 7).
    static func commitment(nonce: [UInt8], field: WithholdableField, value: String) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var bytes = Array(value.utf8)
        bytes.withUnsafeMutableBufferPointer { b in
            adb_commitment(nonce, field.id, adb_bytes(ptr: b.baseAddress, len: Int64(b.count)), &out)
        }
        return out
    }

    /// LEAF = SHA256(00 || ENC_ROW) from values and commitments (FORMAT.md sections 8 and 16.2):
    /// the one encoder of ENC_ROW outside the C core, shared with export verification.
    static func leaf(storeID: StoreID, seq: Int64, values v: Values) -> [UInt8] {
        leaf(storeID: storeID, seq: seq, formatVersion: v.formatVersion, keyVersion: v.keyVersion, recordedAt: v.recordedAt,
             occurredAt: v.occurredAt, tenant: v.tenant, action: v.action, resourceType: v.resourceType, resourceId: v.resourceId,
             outcome: v.outcome, severity: v.severity, correlationId: v.correlationId, origin: v.origin, originRef: v.originRef,
             commitments: v.actor.commitment + v.source.commitment + v.details.commitment)
    }

    static func leaf(storeID: StoreID, seq: Int64, formatVersion: UInt8, keyVersion: UInt32, recordedAt: Int64, occurredAt: Int64?,
                     tenant: String?, action: String?, resourceType: String?, resourceId: String?, outcome: UInt8, severity: UInt8,
                     correlationId: String?, origin: UInt8, originRef: Int64?, commitments: [UInt8]) -> [UInt8]
    {
        // One home for LEAF (FORMAT.md 16.2): the export's entry values. A NULL action (AuditDB never
        // stores one; the column is NOT NULL and an action is never empty) hashes as the empty text,
        // which matches no signed leaf either way.
        ExportBundle.EntryValues(
            seq: seq, formatVersion: formatVersion, keyVersion: keyVersion, recordedAt: recordedAt, occurredAt: occurredAt,
            tenant: tenant, action: action ?? "", resourceType: resourceType, resourceId: resourceId, outcome: outcome,
            severity: severity, correlationId: correlationId, origin: origin, originRef: originRef
        ).leaf(storeID: storeID, commitments: commitments)
    }
}
