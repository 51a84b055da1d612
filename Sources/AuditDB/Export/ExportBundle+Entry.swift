import CAuditCore

/// One line of `entries.jsonl` (FORMAT.md sections 17.1 and 17.2 step 4).
extension ExportBundle {
    static let entryKeys: Set<String> = [
        "seq", "recordedAt", "occurredAt", "originRef", "tenant", "action", "resourceType", "resourceId", "correlationId",
        "outcome", "severity", "origin", "formatVersion", "keyVersion", "actor", "source", "details", "leafHash", "proof",
    ]

    /// Checks one entry: nil if it verifies. Every key must be present (`null` where a value is
    /// absent), every integer an integer token within its range, every byte string lowercase hex.
    static func check(entry e: JSONObject, seq: Int64, checkpoint: Checkpoint) -> (kind: ExportFinding.Kind, message: String)? {
        switch checked(entry: e, seq: seq, checkpoint: checkpoint) {
        case .success: nil
        case .failure(let problem): (problem.kind, problem.message)
        }
    }

    /// ``check(entry:seq:checkpoint:)`` with what an entry that verifies shows.
    static func checked(entry e: JSONObject, seq: Int64, checkpoint: Checkpoint) -> Result<CheckedEntry, EntryProblem> {
        switch problem(entry: e, seq: seq, checkpoint: checkpoint) {
        case .failure(let problem): return .failure(problem)
        case .success(let (leaf, values)):
            func shape(_ field: WithholdableField) -> FieldShown {
                guard let object = e[field.rawValue]?.object else { return .unknown }
                if object["withheld"]?.isTrue == true { return .withheld }
                if object["erased"]?.isTrue == true { return .erased }
                return object["value"]?.text.map(FieldShown.value) ?? .null
            }
            return .success(CheckedEntry(leaf: leaf, values: values, actor: shape(.actor),
                                         withheld: Set(WithholdableField.allCases.filter { shape($0) == .withheld }),
                                         erased: Set(WithholdableField.allCases.filter { shape($0) == .erased })))
        }
    }

    private static func problem(entry e: JSONObject, seq: Int64, checkpoint: Checkpoint) -> Result<([UInt8], EntryValues), EntryProblem> {
        func malformed(_ what: String) -> Result<([UInt8], EntryValues), EntryProblem> {
            .failure(EntryProblem(.bundleMalformed, "entry seq \(seq): \(what)"))
        }
        func optionalInt(_ name: String) -> Int64?? {
            guard let value = e[name] else { return nil }
            if value.isNull { return .some(nil) }
            return value.integer.map { .some($0) }
        }
        func optionalText(_ name: String) -> String?? {
            guard let value = e[name] else { return nil }
            if value.isNull { return .some(nil) }
            return value.text.map { .some($0) }
        }
        // Every key is proven or (leafHash) recomputed: nothing unproven may sit in an entry.
        if let unknown = e.firstKey(notIn: entryKeys) {
            return malformed("unknown field \(OutputEscaping.jsonQuoted(unknown)); an entry holds only its proven fields")
        }
        for field in WithholdableField.allCases {
            guard let object = e[field.rawValue]?.object else { continue }
            let allowed: Set<String> = object["withheld"]?.isTrue == true ? ["withheld", "commitment", "masked"]
                : object["erased"]?.isTrue == true ? ["erased", "commitment"]
                : object["value"]?.isNull == true ? ["value", "commitment"]  // a NULL has no nonce to show
                : ["value", "nonce", "commitment"]
            if let extra = object.firstKey(notIn: allowed) {
                return malformed("field \(field.rawValue) has an unexpected key \(OutputEscaping.jsonQuoted(extra))")
            }
            if let masked = object["masked"], let problem = maskedProblem(masked, field: field) { return malformed(problem) }  // 17.6
        }
        guard seq >= 1, seq <= checkpoint.seq else {
            return .failure(EntryProblem(.proofInvalid, "entry seq \(seq) is outside the checkpoint (seqs 1...\(checkpoint.seq))"))
        }
        guard let recordedAt = e["recordedAt"]?.integer, let occurredAt = optionalInt("occurredAt"),
              let tenant = optionalText("tenant"), let action = e["action"]?.text,
              let resourceType = optionalText("resourceType"), let resourceId = optionalText("resourceId"),
              let outcome = e["outcome"]?.integer, let severity = e["severity"]?.integer,
              let correlationId = optionalText("correlationId"), let origin = e["origin"]?.integer,
              let originRef = optionalInt("originRef"), let format = e["formatVersion"]?.integer,
              let keyVersion = e["keyVersion"]?.integer,
              [outcome, severity, origin, format].allSatisfy({ (0...255).contains($0) }), let kv = UInt32(exactly: keyVersion)
        else { return malformed("a value is missing or of the wrong type") }
        var commitments: [UInt8] = []
        for field in WithholdableField.allCases {
            guard let f = e[field.rawValue]?.object, let c = hex32(f["commitment"]) else {
                return malformed("\(field.rawValue) has no 32-byte commitment")
            }
            if f["withheld"]?.isTrue == true || f["erased"]?.isTrue == true {
                // Withheld by the exporter, or erased in the store (FORMAT.md section 21): only the commitment.
                commitments += c
                continue
            }
            var expected = [UInt8](repeating: 0, count: 32)
            if f["value"]?.isNull == true {
                // NULL commits to 32 zero bytes.
            } else if let value = f["value"]?.text, let nonce = hex32(f["nonce"]) {
                var bytes = Array(value.utf8)
                bytes.withUnsafeMutableBufferPointer { b in
                    adb_commitment(nonce, field.id, adb_bytes(ptr: b.baseAddress, len: Int64(b.count)), &expected)
                }
            } else {
                return malformed("\(field.rawValue) needs a value and a 32-byte nonce, or withheld: true, or erased: true")
            }
            guard expected == c else {
                return .failure(EntryProblem(.commitmentMismatch, "entry seq \(seq): the shown \(field.rawValue) does not match its commitment (the value or its nonce was changed)"))
            }
            commitments += c
        }
        let values = EntryValues(seq: seq, formatVersion: UInt8(format), keyVersion: kv, recordedAt: recordedAt, occurredAt: occurredAt,
                                 tenant: tenant, action: action, resourceType: resourceType, resourceId: resourceId,
                                 outcome: UInt8(outcome), severity: UInt8(severity), correlationId: correlationId,
                                 origin: UInt8(origin), originRef: originRef)
        let leaf = values.leaf(storeID: checkpoint.storeID, commitments: commitments)
        let withheld = WithholdableField.allCases.filter { e[$0.rawValue]?.object?["withheld"]?.isTrue == true }
        guard let stated = hex32(e["leafHash"]), stated == leaf else {
            return .failure(EntryProblem(.entryChanged, "entry seq \(seq): its values do not hash to its leaf hash: a value"
                + (withheld.isEmpty ? "" : " or the commitment of a withheld field (\(withheld.map(\.rawValue).joined(separator: ", ")))")
                + " was changed"))
        }
        guard let proofValues = e["proof"]?.elements, proofValues.allSatisfy({ $0.text != nil }) else { return malformed("no proof") }
        let proof = proofValues.compactMap(hex32)
        guard proof.count == proofValues.count else {
            return .failure(EntryProblem(.proofInvalid, "entry seq \(seq): its inclusion proof holds a value that is not a 32-byte hash (64 lowercase hex digits)"))
        }
        let expectedLength = MerkleTree.proofLength(index: seq - 1, size: checkpoint.seq)
        guard proof.count == expectedLength else {
            return .failure(EntryProblem(.proofInvalid, "entry seq \(seq): its inclusion proof has \(proof.count) hashes; leaf \(seq - 1) of a tree of \(checkpoint.seq) needs \(expectedLength)"))
        }
        guard MerkleTree.verifyInclusion(leaf: leaf, index: seq - 1, size: checkpoint.seq, proof: proof, root: checkpoint.merkleRoot) else {
            return .failure(EntryProblem(.proofInvalid, "entry seq \(seq): its inclusion proof does not lead to the Merkle root of the checkpoint at seq \(checkpoint.seq) (the proof was changed)"))
        }
        return .success((leaf, values))
    }
}
