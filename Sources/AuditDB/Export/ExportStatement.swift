import CAuditCore
public import Foundation

/// A signed statement that an export bundle is complete (FORMAT.md, section 17.3): "these are
/// all rows with seq ≤ ``checkpointSeq`` that match this filter, and these fields were
/// withheld". Signed with the checkpoint signing key; it binds the exact checkpoint (by the
/// hash of its signed bytes), the filter and redaction set (by the hash of their canonical
/// encoding), the number of entries and the hash of their seqs, and (v2, written since
/// 2026-12-05) the hash of the fields each entry shows as erased.
///
/// It is only as trustworthy as the signing key, and says nothing about rows after the
/// checkpoint.
public struct ExportStatement: Sendable, Hashable, CustomStringConvertible {
    /// The store the export is from.
    public let storeID: StoreID
    /// The seq of the checkpoint the export is proven against.
    public let checkpointSeq: Int64
    /// SHA-256 of that checkpoint's signed bytes (``Checkpoint/statement``), 32 bytes.
    public let checkpointHash: [UInt8]
    /// SHA-256 of ``ExportFilter/encoding(redact:)``, 32 bytes.
    public let filterHash: [UInt8]
    /// How many entries the export holds.
    public let entryCount: UInt64
    /// SHA-256 of the exported seqs, each as 8 bytes big-endian, increasing; 32 bytes.
    public let seqsHash: [UInt8]
    /// Statement v2 (FORMAT.md 17.3): SHA-256 of the exported entries' erased fields
    /// (``erasedHash(_:)``), 32 bytes, so that a field shown or withheld cannot be relabelled
    /// erased after signing. Nil in a v1 statement, which leaves erased labels unproven (21.5).
    public let erasedHash: [UInt8]?
    /// When the export was made.
    public let createdAt: AuditTimestamp
    /// The signing key version.
    public let keyVersion: UInt32
    /// The signing key's Ed25519 public key (32 bytes).
    public let publicKey: [UInt8]
    /// The Ed25519 signature of ``message`` (64 bytes).
    public let signature: [UInt8]

    static let magic = Array("ADB1EXPT".utf8)
    static let magicV2 = Array("ADB2EXPT".utf8)
    static let jsonFormat = "auditdb-export-statement v1"
    static let jsonFormatV2 = "auditdb-export-statement v2"
    /// The file name inside a bundle.
    static let file = "statement.json"

    /// Creates a statement from its parts (the signature is not checked here): v2 with an
    /// `erasedHash`, v1 without.
    public init(storeID: StoreID, checkpointSeq: Int64, checkpointHash: [UInt8], filterHash: [UInt8], entryCount: UInt64,
                seqsHash: [UInt8], erasedHash: [UInt8]? = nil, createdAt: AuditTimestamp, keyVersion: UInt32,
                publicKey: [UInt8], signature: [UInt8])
    {
        self.erasedHash = erasedHash
        self.storeID = storeID
        self.checkpointSeq = checkpointSeq
        self.checkpointHash = checkpointHash
        self.filterHash = filterHash
        self.entryCount = entryCount
        self.seqsHash = seqsHash
        self.createdAt = createdAt
        self.keyVersion = keyVersion
        self.publicKey = publicKey
        self.signature = signature
    }

    /// Signs the statement (v2) for an export of `seqs` (increasing) selected by `filter` and
    /// `redact` from the rows up to `checkpoint`, whose erased fields are `erased` (seq and
    /// mask, FORMAT.md 17.3), with `key`.
    static func signed(checkpoint: Checkpoint, filter: ExportFilter, redact: Set<WithholdableField>, seqs: [Int64],
                       erased: [(seq: Int64, mask: UInt8)], createdAt: AuditTimestamp, key: CheckpointSigningKey) -> ExportStatement
    {
        let unsigned = ExportStatement(
            storeID: checkpoint.storeID, checkpointSeq: checkpoint.seq, checkpointHash: sha256(checkpoint.statement),
            filterHash: sha256(filter.encoding(redact: redact)), entryCount: UInt64(seqs.count), seqsHash: seqsHash(seqs),
            erasedHash: erasedHash(erased), createdAt: createdAt, keyVersion: key.version, publicKey: key.publicKey.bytes,
            signature: [])
        return unsigned.with(signature: key.sign(unsigned.message))
    }

    private func with(signature: [UInt8]) -> ExportStatement {
        ExportStatement(storeID: storeID, checkpointSeq: checkpointSeq, checkpointHash: checkpointHash, filterHash: filterHash,
                        entryCount: entryCount, seqsHash: seqsHash, erasedHash: erasedHash, createdAt: createdAt,
                        keyVersion: keyVersion, publicKey: publicKey, signature: signature)
    }

    /// The signed bytes (EXPT_MSG): v1, 180 bytes,
    /// `"ADB1EXPT" || store_id || i64(checkpoint_seq) || checkpoint_hash || filter_hash ||
    /// u64(entry_count) || seqs_hash || i64(created_at) || u32(key_version) || public_key`;
    /// v2, 212 bytes, `"ADB2EXPT"` and the same fields, then `erased_hash`.
    public var message: [UInt8] {
        var out = erasedHash == nil ? Self.magic : Self.magicV2
        out.reserveCapacity(212)
        out += storeID.bytes
        out += Self.bigEndian(UInt64(bitPattern: checkpointSeq), 8)
        out += checkpointHash
        out += filterHash
        out += Self.bigEndian(entryCount, 8)
        out += seqsHash
        out += Self.bigEndian(UInt64(bitPattern: createdAt.microsecondsSinceEpoch), 8)
        out += Self.bigEndian(UInt64(keyVersion), 4)
        out += publicKey
        if let erasedHash { out += erasedHash }
        return out
    }

    /// SHA-256 of ERASED_ENC (FORMAT.md 17.3): for each entry with a field erased in the store,
    /// by increasing seq, `i64(seq) || u8(mask)` (bit 0 actor, bit 1 source, bit 2 details);
    /// entries without one add nothing.
    static func erasedHash(_ erased: [(seq: Int64, mask: UInt8)]) -> [UInt8] {
        var bytes = [UInt8]()
        for entry in erased.filter({ $0.mask != 0 }).sorted(by: { $0.seq < $1.seq }) {
            bytes += bigEndian(UInt64(bitPattern: entry.seq), 8)
            bytes.append(entry.mask)
        }
        return sha256(bytes)
    }

    static func bigEndian(_ value: UInt64, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64(count - 1 - $0))) }
    }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        adb_sha256(bytes, bytes.count, &out)
        return out
    }

    /// SHA-256 of the seqs, each as i64 big-endian, in the order given (increasing in a bundle).
    static func seqsHash(_ seqs: [Int64]) -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(seqs.count * 8)
        for seq in seqs { bytes += bigEndian(UInt64(bitPattern: seq), 8) }
        return sha256(bytes)
    }

    /// Why the statement is not valid under `keys`, or nil if it is: the key version must be in
    /// `keys` with the same public key, the field sizes right, and the signature valid.
    public func invalidity(under keys: CheckpointPublicKeys) -> String? {
        guard let key = keys.key(version: keyVersion) else {
            return "it is signed with checkpoint key version \(keyVersion), which the public key file lacks"
        }
        guard key.bytes == publicKey else {
            return "it names a different public key for version \(keyVersion) than the public key file (signed by another key)"
        }
        guard checkpointHash.count == 32, filterHash.count == 32, seqsHash.count == 32, publicKey.count == 32, signature.count == 64,
              (erasedHash?.count ?? 32) == 32
        else {
            return "a field has the wrong length"
        }
        guard key.isValidSignature(signature, of: message) else {
            return "its Ed25519 signature does not verify (the statement was changed or forged)"
        }
        return nil
    }

    /// The statement as one line of JSON (keys in a fixed order; byte strings lowercase hex).
    public var json: String {
        "{\"format\":\"\(erasedHash == nil ? Self.jsonFormat : Self.jsonFormatV2)\",\"storeId\":\"\(storeID.hex)\",\"checkpointSeq\":\(checkpointSeq),"
            + "\"checkpointHash\":\"\(Hex.encode(checkpointHash))\",\"filterHash\":\"\(Hex.encode(filterHash))\","
            + "\"entryCount\":\(entryCount),\"seqsHash\":\"\(Hex.encode(seqsHash))\","
            + (erasedHash.map { "\"erasedHash\":\"\(Hex.encode($0))\"," } ?? "")
            + "\"createdAt\":\(createdAt.microsecondsSinceEpoch),\"keyVersion\":\(keyVersion),"
            + "\"publicKey\":\"\(Hex.encode(publicKey))\",\"signature\":\"\(Hex.encode(signature))\"}"
    }

    /// Parses the JSON form, strictly (docs/FORMAT.md sections 17.3 and 18).
    /// - Throws: ``AuditError`` `invalidInput` naming what is wrong (and the field, if one).
    public init(json data: Data) throws(AuditError) {
        let v1Keys: Set<String> = ["format", "storeId", "checkpointSeq", "checkpointHash", "filterHash", "entryCount", "seqsHash",
                                   "createdAt", "keyVersion", "publicKey", "signature"]
        let json = try StrictJSONObject(
            Array(data), what: "export statement", article: "an", formats: [Self.jsonFormatV2, Self.jsonFormat],
            known: { $0 == Self.jsonFormatV2 ? v1Keys.union(["erasedHash"]) : v1Keys },
            unknownNote: "it holds only its signed fields")
        let isV2 = json.object["format"]?.text == Self.jsonFormatV2
        let storeID = try json.storeID, keyVersion = try json.keyVersion
        guard let count = UInt64(exactly: try json.integer("entryCount")) else {
            throw AuditError(.invalidInput, "export statement field entryCount must not be negative", field: "entryCount")
        }
        self.init(storeID: storeID, checkpointSeq: try json.integer("checkpointSeq"),
                  checkpointHash: try json.bytes("checkpointHash", 32), filterHash: try json.bytes("filterHash", 32),
                  entryCount: count, seqsHash: try json.bytes("seqsHash", 32),
                  erasedHash: isV2 ? try json.bytes("erasedHash", 32) : nil,
                  createdAt: AuditTimestamp(microsecondsSinceEpoch: try json.integer("createdAt")), keyVersion: keyVersion,
                  publicKey: try json.bytes("publicKey", 32), signature: try json.bytes("signature", 64))
    }

    public var description: String {
        "export statement of store \(storeID): \(entryCount) entries up to checkpoint seq \(checkpointSeq) (key version \(keyVersion))"
    }
}

extension ExportFilter {
    /// FILTER_ENC (FORMAT.md, section 17.3): every filter an export accepts, in a fixed order,
    /// then the redaction set. Absent filters encode as `00` (`ff ff ff ff` for text); a seq
    /// range as `01 || i64(low) || i64(high)`, both inclusive.
    public func encoding(redact: Set<WithholdableField>) -> [UInt8] {
        var out = [UInt8]()
        func str(_ s: String?) {
            if let s { out += ExportStatement.bigEndian(UInt64(s.utf8.count), 4); out += Array(s.utf8) } else { out += [0xFF, 0xFF, 0xFF, 0xFF] }
        }
        func i64(_ v: Int64) { out += ExportStatement.bigEndian(UInt64(bitPattern: v), 8) }
        func optI64(_ v: Int64?) { if let v { out.append(1); i64(v) } else { out.append(0) } }
        func optU8(_ v: UInt8?) { if let v { out += [1, v] } else { out.append(0) } }
        str(tenant); str(actor); str(action); str(resourceType); str(resourceId)
        optU8(outcome?.code); optU8(severity?.code); str(correlationId)
        if let seqs { out.append(1); i64(seqs.lowerBound); i64(seqs.upperBound) } else { out.append(0) }
        optI64(recordedFrom?.microsecondsSinceEpoch); optI64(recordedBefore?.microsecondsSinceEpoch)
        optI64(occurredFrom?.microsecondsSinceEpoch); optI64(occurredBefore?.microsecondsSinceEpoch)
        out.append(WithholdableField.allCases.reduce(UInt8(0)) { redact.contains($1) ? $0 | (1 << ($1.id - 1)) : $0 })
        return out
    }

    /// The manifest's `filter` keys, in the order the reference writes them.
    static let manifestKeys = ["tenant", "actor", "action", "resourceType", "resourceId", "outcome", "severity", "correlationId",
                               "fromSeq", "toSeq", "recordedFrom", "recordedBefore", "occurredFrom", "occurredBefore"]

    /// Reads the manifest's `filter` object back (FORMAT.md, section 17.3): every key must be
    /// present (null for an absent filter), none other may be, and each value of its type (an
    /// integer token for the seq and time bounds).
    /// - Returns: The filter, or why it cannot be read.
    static func fromManifest(_ value: JSON?) -> Result<ExportFilter, AuditError> {
        func fail(_ why: String) -> Result<ExportFilter, AuditError> { .failure(AuditError(.invalidInput, why)) }
        guard let object = value?.object else { return fail("it is not a JSON object") }
        if let unknown = object.firstKey(notIn: Set(manifestKeys)) {
            return fail("it has a key `\(unknown)` that no export filter has")
        }
        if let missing = manifestKeys.first(where: { object[$0] == nil }) {
            return fail("it lacks the key `\(missing)` (null when that filter is not used)")
        }
        let integerKeys: Set = ["fromSeq", "toSeq", "recordedFrom", "recordedBefore", "occurredFrom", "occurredBefore"]
        for key in manifestKeys where object[key]?.isNull == false {
            guard integerKeys.contains(key) ? object[key]?.integer != nil : object[key]?.text != nil else {
                return fail("its `\(key)` has the wrong type")
            }
        }
        func text(_ key: String) -> String? { object[key]?.text }
        func int(_ key: String) -> Int64? { object[key]?.integer }
        var filter = ExportFilter(tenant: text("tenant"), actor: text("actor"), action: text("action"))
        filter.resourceType = text("resourceType")
        filter.resourceId = text("resourceId")
        filter.correlationId = text("correlationId")
        if let o = text("outcome") {
            guard let outcome = AuditOutcome.allCases.first(where: { $0.rawValue.utf8.elementsEqual(o.utf8) }) else {
                return fail("its outcome `\(o)` is not success, failure, denied or error")
            }
            filter.outcome = outcome
        }
        if let s = text("severity") {
            guard let severity = AuditSeverity.allCases.first(where: { $0.rawValue.utf8.elementsEqual(s.utf8) }) else {
                return fail("its severity `\(s)` is not info, notice, warning or critical")
            }
            filter.severity = severity
        }
        switch (int("fromSeq"), int("toSeq")) {
        case (nil, nil): break
        case (let low?, let high?) where low <= high: filter.seqs = low...high
        default: return fail("fromSeq and toSeq must both be null, or integers with fromSeq ≤ toSeq")
        }
        filter.recordedFrom = int("recordedFrom").map(AuditTimestamp.init(microsecondsSinceEpoch:))
        filter.recordedBefore = int("recordedBefore").map(AuditTimestamp.init(microsecondsSinceEpoch:))
        filter.occurredFrom = int("occurredFrom").map(AuditTimestamp.init(microsecondsSinceEpoch:))
        filter.occurredBefore = int("occurredBefore").map(AuditTimestamp.init(microsecondsSinceEpoch:))
        return .success(filter)
    }
}
