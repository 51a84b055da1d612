/// `manifest.json` (FORMAT.md sections 17.1 and 17.2 step 2), and the comparison of a bundle
/// with the statement that signs it (17.3).
extension ExportBundle {
    static let manifestKeys: Set<String> = ["format", "storeId", "checkpointSeq", "entryCount", "seqs", "redacted", "filter", "createdAt"]

    /// A manifest read strictly.
    struct Manifest {
        let object: JSONObject
        /// The bundle's layout.
        let format: Format
        /// The listed seqs, strictly increasing.
        let seqs: [Int64]
        let entryCount: Int64
        /// The redaction set; nil when `redacted` is not a list of distinct field names.
        let redacted: [WithholdableField]?
        /// What is wrong in a manifest that can still be used (`manifest-mismatch`, `bundle-malformed`).
        let findings: [(ExportFinding.Kind, String)]

        /// Reads `bytes` as the manifest of a bundle proven against `checkpoint`: on failure, the
        /// message of the `bundle-malformed` finding that stops verification.
        static func read(_ bytes: [UInt8], checkpoint: Checkpoint) -> Result<Manifest, Problem> {
            let object: JSONObject
            do {
                object = try JSONReader.readObject(bytes, limits: .manifest).members
            } catch {
                return .failure(Problem(message: "\(manifestFile): \(error)"))
            }
            // seqs: an array of integer tokens only (read compactly, see JSON.integers).
            guard let format = object["format"]?.text.flatMap({ name in Format.allCases.first { $0.rawValue.utf8.elementsEqual(name.utf8) } }),
                  let seqs = object["seqs"]?.integerElements, let count = object["entryCount"]?.integer
            else {
                return .failure(Problem(message: "\(manifestFile) is not an `auditdb-export v1` or `auditdb-export v2` manifest with seqs and entryCount"))
            }
            guard seqs.count <= maximumEntries else {
                return .failure(Problem(message: "\(manifestFile) lists \(seqs.count) seqs; a bundle holds at most \(maximumEntries)"))
            }
            // One order, one occurrence: the statement signs the seqs in this order, and a reader
            // must not have to guess which of two equal seqs an entry answers.
            for (previous, seq) in zip(seqs, seqs.dropFirst()) where seq <= previous {
                return .failure(Problem(message: "\(manifestFile): seqs must be strictly increasing, but \(seq) follows \(previous)"))
            }
            var findings: [(ExportFinding.Kind, String)] = []
            // Hex is lowercase in the documents AuditDB verifies: one store id has one spelling.
            if object["storeId"]?.text != checkpoint.storeID.hex || object["checkpointSeq"]?.integer != checkpoint.seq {
                findings.append((.manifestMismatch, "the manifest names another store or checkpoint than checkpoint.json (store \(checkpoint.storeID), seq \(checkpoint.seq))"))
            }
            if count != Int64(seqs.count) {
                findings.append((.manifestMismatch, "the manifest states \(count) entries but lists \(seqs.count) seqs"))
            }
            if let unknown = object.firstKey(notIn: manifestKeys) {
                findings.append((.bundleMalformed, "\(manifestFile) has an unknown field \(OutputEscaping.jsonQuoted(unknown))"))
            }
            // The redaction set: every entry must withhold exactly these fields (signed when there
            // is a statement).
            var redacted: [WithholdableField]? = []
            if let names = object["redacted"]?.elements {
                for name in names {
                    guard let text = name.text, let field = WithholdableField.allCases.first(where: { $0.rawValue.utf8.elementsEqual(text.utf8) }),
                          redacted?.contains(field) == false
                    else { redacted = nil; break }
                    redacted?.append(field)
                }
            } else {
                redacted = nil
            }
            if redacted == nil {
                findings.append((.bundleMalformed, "\(manifestFile): redacted must list distinct field names among actor, source, details"))
            }
            var kept = object
            kept.storage[JSONObject.Key("seqs")] = nil  // read into `seqs`; the tree of a million values is not kept
            return .success(Manifest(object: kept, format: format, seqs: seqs, entryCount: count, redacted: redacted, findings: findings))
        }
    }

    /// What in the bundle differs from what `st` signs, each in words (FORMAT.md 17.3), and the
    /// redaction set the statement signs and the manifest's filter if it is the signed one.
    static func compare(_ st: ExportStatement, checkpoint: Checkpoint, manifest: Manifest)
        -> (mismatches: [String], signedRedaction: Set<WithholdableField>?, signedFilter: ExportFilter?)
    {
        var signedRedaction: Set<WithholdableField>?
        var signedFilter: ExportFilter?
        var out: [String] = []
        if st.storeID != checkpoint.storeID {
            out.append("store: the statement is about store \(st.storeID), checkpoint.json about store \(checkpoint.storeID)")
        }
        if st.checkpointSeq != checkpoint.seq || st.checkpointHash != ExportStatement.sha256(checkpoint.statement) {
            out.append("checkpoint: the statement binds another checkpoint (seq \(st.checkpointSeq)) than checkpoint.json (seq \(checkpoint.seq)): it belongs to another export, or the checkpoint was replaced")
        }
        switch ExportFilter.fromManifest(manifest.object["filter"]) {
        case .failure(let error):
            out.append("filter: the manifest's filter cannot be read: \(error.message)")
        case .success(let filter):
            let signed = WithholdableField.allCases.reduce(into: [[WithholdableField]]([[]])) { sets, field in sets += sets.map { $0 + [field] } }
                .first { ExportStatement.sha256(filter.encoding(redact: Set($0))) == st.filterHash }
            signedRedaction = signed.map(Set.init)
            if signed != nil { signedFilter = filter }
            if let redacted = manifest.redacted, signed.map(Set.init) == Set(redacted) {
                break
            } else if let signed {
                out.append("redaction set: the manifest names \(manifest.redacted.map { names(Set($0)) } ?? "an unreadable set") as withheld, the statement signs \(names(Set(signed)))")
            } else {
                out.append("filter: the manifest's filter differs from the one the statement signs (the selection was changed)")
            }
        }
        let count = manifest.entryCount
        if st.entryCount != UInt64(clamping: count) || count < 0 {
            out.append("entryCount: the statement signs \(st.entryCount) entries, the manifest states \(count)")
        }
        let createdAt = manifest.object["createdAt"]
        if createdAt?.integer != st.createdAt.microsecondsSinceEpoch {
            let stated = createdAt.map { $0.integer.map(String.init) ?? "a value that is not an integer" } ?? "nothing"
            out.append("createdAt: the statement signs \(st.createdAt.microsecondsSinceEpoch), the manifest states \(stated)")
        }
        if ExportStatement.seqsHash(manifest.seqs) != st.seqsHash {
            out.append("seqs: the manifest's seqs differ from the ones the statement signs (an entry was removed or added together with its seq)")
        }
        return (out, signedRedaction, signedFilter)
    }
}
