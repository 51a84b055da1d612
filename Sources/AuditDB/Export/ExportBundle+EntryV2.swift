import CAuditCore

/// The entries of an `auditdb-export v2` bundle (FORMAT.md section 17.5): one JSON array per
/// line, the values of ENC_ROW in its order, and for each withholdable field only what the
/// verifier cannot recompute (the value and its nonce, or the commitment of a withheld or erased
/// field). No leaf hash and no proof per entry: one multiproof (`multiproof.bin`) proves them all.
extension ExportBundle {
    /// The element names of a v2 entry, in order (index 0 is the seq).
    static let entryElementsV2 = ["seq", "formatVersion", "keyVersion", "recordedAt", "occurredAt", "tenant", "action",
                                  "resourceType", "resourceId", "outcome", "severity", "correlationId", "origin", "originRef",
                                  "actor", "source", "details"]

    /// A withholdable field as an export shows it; the commitment is C(seq, f, value) of section 7.
    struct ExportedField {
        enum Shape {
            case shown(String, nonce: [UInt8])
            case null
            case withheld
            case erased
        }

        let shape: Shape
        let commitment: [UInt8]
        /// For a masked field (withheld): `,"masked":{…}`, its unproven rendering (FORMAT.md 17.6);
        /// written by format v1 only, so an export that masks is written as v1.
        var maskedJSON = ""
    }

    /// The values of ENC_ROW (FORMAT.md section 8) an entry carries besides the commitments.
    struct EntryValues {
        var seq: Int64, formatVersion: UInt8, keyVersion: UInt32, recordedAt: Int64, occurredAt: Int64?
        var tenant: String?, action: String, resourceType: String?, resourceId: String?
        var outcome: UInt8, severity: UInt8, correlationId: String?, origin: UInt8, originRef: Int64?

        /// LEAF = SHA256(00 || ENC_ROW) with `commitments` (96 bytes: actor, source, details).
        func leaf(storeID: StoreID, commitments: [UInt8]) -> [UInt8] {
            var enc: [UInt8] = [0]
            enc.reserveCapacity(256)
            enc += "ADB1ROW_".utf8
            enc += storeID.bytes
            func i64(_ v: Int64) { withUnsafeBytes(of: UInt64(bitPattern: v).bigEndian) { enc += $0 } }
            func u32(_ v: UInt32) { withUnsafeBytes(of: v.bigEndian) { enc += $0 } }
            func optI64(_ v: Int64?) { if let v { enc.append(1); i64(v) } else { enc.append(0) } }
            func optStr(_ s: String?) { if let s { u32(UInt32(s.utf8.count)); enc += s.utf8 } else { u32(0xFFFF_FFFF) } }
            i64(seq); enc.append(formatVersion); u32(keyVersion); i64(recordedAt); optI64(occurredAt)
            optStr(tenant); optStr(action); optStr(resourceType); optStr(resourceId)
            enc.append(outcome); enc.append(severity); optStr(correlationId)
            enc.append(origin); optI64(originRef)
            enc += commitments
            var leaf = [UInt8](repeating: 0, count: 32)
            adb_sha256(enc, enc.count, &leaf)
            return leaf
        }
    }

    /// What an entry shows of a withholdable field.
    enum FieldShown: Equatable {
        case value(String)
        case null
        case withheld
        case erased
        /// Not a field object (only in an entry that does not verify).
        case unknown
    }

    /// An entry whose own checks passed: its leaf, its values, what it shows of the actor (which
    /// the signed filter may name), and which fields it withholds and shows erased.
    struct CheckedEntry {
        let leaf: [UInt8]
        let values: EntryValues
        let actor: FieldShown
        let withheld: Set<WithholdableField>
        let erased: Set<WithholdableField>
    }

    /// One line of a v2 `entries.jsonl`, LF included.
    static func entryLineV2(_ values: EntryValues, fields: [ExportedField]) -> String {
        func q(_ s: String?) -> String { s.map(OutputEscaping.jsonQuoted) ?? "null" }
        func n(_ v: Int64?) -> String { v.map(String.init) ?? "null" }
        var out = "[\(values.seq),\(values.formatVersion),\(values.keyVersion),\(values.recordedAt),\(n(values.occurredAt)),"
            + "\(q(values.tenant)),\(q(values.action)),\(q(values.resourceType)),\(q(values.resourceId)),"
            + "\(values.outcome),\(values.severity),\(q(values.correlationId)),\(values.origin),\(n(values.originRef))"
        for field in fields {
            switch field.shape {
            case .shown(let text, let nonce): out += ",[\(q(text)),\"\(Hex.encode(nonce))\"]"
            case .null: out += ",null"
            case .withheld: out += ",{\"withheld\":\"\(Hex.encode(field.commitment))\"}"
            case .erased: out += ",{\"erased\":\"\(Hex.encode(field.commitment))\"}"
            }
        }
        return out + "]\n"
    }

    /// Checks one v2 entry (FORMAT.md 17.5, step 4): the first problem is the entry's only finding.
    static func checkV2(entry e: [JSON], seq: Int64, checkpoint: Checkpoint)
        -> Result<CheckedEntry, EntryProblem>
    {
        let names = entryElementsV2
        guard e.count == names.count else {
            return .failure(EntryProblem(.bundleMalformed, "entry seq \(seq) has \(e.count) elements; an entry has \(names.count)"))
        }
        guard seq >= 1, seq <= checkpoint.seq else {
            return .failure(EntryProblem(.proofInvalid, "entry seq \(seq) is outside the checkpoint (seqs 1...\(checkpoint.seq))"))
        }
        func wrong(_ i: Int, _ expected: String) -> Result<CheckedEntry, EntryProblem> {
            .failure(EntryProblem(.bundleMalformed, "entry seq \(seq): element \(i) (\(names[i])) is not \(expected)"))
        }
        func byte(_ i: Int) -> UInt8? { e[i].integer.flatMap(UInt8.init(exactly:)) }
        func optInt(_ i: Int) -> Int64?? { e[i].isNull ? .some(nil) : e[i].integer.map { .some($0) } }
        func optText(_ i: Int) -> String?? { e[i].isNull ? .some(nil) : e[i].text.map { .some($0) } }
        guard let format = byte(1) else { return wrong(1, "an integer in 0...255") }
        guard let kv = e[2].integer.flatMap(UInt32.init(exactly:)) else { return wrong(2, "an integer in 0...4294967295") }
        guard let recordedAt = e[3].integer else { return wrong(3, "an integer") }
        guard let occurredAt = optInt(4) else { return wrong(4, "an integer or null") }
        guard let tenant = optText(5) else { return wrong(5, "a string or null") }
        guard let action = e[6].text else { return wrong(6, "a string") }
        guard let resourceType = optText(7) else { return wrong(7, "a string or null") }
        guard let resourceId = optText(8) else { return wrong(8, "a string or null") }
        guard let outcome = byte(9) else { return wrong(9, "an integer in 0...255") }
        guard let severity = byte(10) else { return wrong(10, "an integer in 0...255") }
        guard let correlationId = optText(11) else { return wrong(11, "a string or null") }
        guard let origin = byte(12) else { return wrong(12, "an integer in 0...255") }
        guard let originRef = optInt(13) else { return wrong(13, "an integer or null") }
        var commitments: [UInt8] = []
        commitments.reserveCapacity(96)
        var withheld = Set<WithholdableField>(), erased = Set<WithholdableField>()
        var actor = FieldShown.unknown
        for (offset, field) in WithholdableField.allCases.enumerated() {
            guard let (shape, c) = fieldCommitment(e[14 + offset], field) else {
                return wrong(14 + offset, "null, [value, nonce], {\"withheld\":commitment} or {\"erased\":commitment} (nonce and commitment 64 lowercase hex digits)")
            }
            let shown: FieldShown
            switch shape {
            case .shown(let text, _): shown = .value(text)
            case .null: shown = .null
            case .withheld: shown = .withheld
            case .erased: shown = .erased  // erased in the store (section 21.5)
            }
            if shown == .withheld { withheld.insert(field) }
            if shown == .erased { erased.insert(field) }
            if field == .actor { actor = shown }
            commitments += c
        }
        let values = EntryValues(seq: seq, formatVersion: format, keyVersion: kv, recordedAt: recordedAt, occurredAt: occurredAt,
                                 tenant: tenant, action: action, resourceType: resourceType, resourceId: resourceId,
                                 outcome: outcome, severity: severity, correlationId: correlationId, origin: origin,
                                 originRef: originRef)
        return .success(CheckedEntry(leaf: values.leaf(storeID: checkpoint.storeID, commitments: commitments),
                                     values: values, actor: actor, withheld: withheld, erased: erased))
    }

    /// The commitment a v2 field element stands for, and its shape; nil if it has none of the four shapes.
    private static func fieldCommitment(_ element: JSON, _ field: WithholdableField) -> (ExportedField.Shape, [UInt8])? {
        switch element {
        case .null:
            return (.null, [UInt8](repeating: 0, count: 32))  // NULL commits to 32 zero bytes (section 7)
        case .array(let pair):
            guard pair.count == 2, let value = pair[0].text, let nonce = hex32(pair[1]) else { return nil }
            var c = [UInt8](repeating: 0, count: 32)
            var bytes = Array(value.utf8)
            bytes.withUnsafeMutableBufferPointer { b in
                adb_commitment(nonce, field.id, adb_bytes(ptr: b.baseAddress, len: Int64(b.count)), &c)
            }
            return (.shown(value, nonce: nonce), c)
        case .object(let object):
            guard object.storage.count == 1 else { return nil }
            if let c = hex32(object["withheld"]) { return (.withheld, c) }
            if let c = hex32(object["erased"]) { return (.erased, c) }
            return nil
        default:
            return nil
        }
    }

    static func hex32(_ value: JSON?) -> [UInt8]? {
        guard let bytes = value?.text.flatMap(Hex.decodeLowercase), bytes.count == 32 else { return nil }
        return bytes
    }

    /// A finding about one entry (its seq is the entry's).
    struct EntryProblem: Error {
        let kind: ExportFinding.Kind
        let message: String
        init(_ kind: ExportFinding.Kind, _ message: String) {
            self.kind = kind
            self.message = message
        }
    }
}
