import Foundation

/// Checks a store's anchored checkpoints against each other, with the consistency proofs kept
/// beside them and the public keys only — no row is read (FORMAT.md section 22.4).
public enum AnchorConsistency {
    /// The findings about `storeID`'s checkpoints at `anchorPaths`, checked pairwise.
    ///
    /// The valid checkpoints of the store (signature and key under `publicKeys`) are ordered by
    /// seq. Two that state different chain heads or roots for one seq are a
    /// ``Finding/Kind/checkpointFork``. For each consecutive pair, a proof file for exactly those
    /// two seqs must verify (else ``Finding/Kind/checkpointFork``: the later checkpoint's log does
    /// not extend the earlier one's); a proof file that cannot be read is
    /// ``Finding/Kind/checkpointInvalid``. A pair without a proof file (anchors written before
    /// section 22) gives no finding here; with the store at hand, ``AuditStore/verify(againstAnchors:publicKeys:)``
    /// still checks each checkpoint against the rows.
    ///
    /// - Parameters:
    ///   - anchorPaths: Anchor directories (or single files).
    ///   - storeID: The store whose checkpoints to check.
    ///   - publicKeys: The public checkpoint keys to trust.
    /// - Returns: The findings, in seq order.
    /// - Throws: ``AuditError`` `invalidInput` if an anchor path does not exist; storage errors.
    public static func findings(anchorPaths: [String], storeID: StoreID, publicKeys: CheckpointPublicKeys) throws(AuditError)
        -> [Finding]
    {
        var valid: [(file: String, checkpoint: Checkpoint)] = []
        for anchorPath in anchorPaths {
            for (file, result) in try DirectoryAnchor.read(anchorPath) {
                if case .success(let cp) = result, cp.storeID == storeID, cp.invalidity(under: publicKeys) == nil {
                    valid.append((file, cp))
                }
            }
        }
        return try findings(valid, anchorPaths: anchorPaths, storeID: storeID)
    }

    /// The same over checkpoints already read and checked (sorted here).
    ///
    /// `confirmedByLog`: the seqs at which every checkpoint agrees with the store's rows (section
    /// 16.6 found nothing against any of them), when the store is at hand. Two such checkpoints are
    /// consistent by the rows themselves, so a proof file between them that fails was altered or
    /// replaced: ``Finding/Kind/checkpointInvalid`` naming the file, not a fork.
    static func findings(_ checkpoints: [(file: String, checkpoint: Checkpoint)], anchorPaths: [String], storeID: StoreID,
                         confirmedByLog: Set<Int64> = []) throws(AuditError) -> [Finding]
    {
        var findings: [Finding] = []
        var proofs: [String: (file: String, proof: Result<ConsistencyProof, AuditError>)] = [:]
        for anchorPath in anchorPaths {
            for (file, result) in try readProofs(anchorPath, storeID: storeID) {
                let key = (try? result.get()).map { "\($0.fromSeq)-\($0.toSeq)" } ?? file
                proofs[key] = (file, result)
            }
        }
        for (file, result) in proofs.values.sorted(by: { $0.file < $1.file }) {
            if case .failure(let error) = result {
                findings.append(Finding(kind: .checkpointInvalid, seqs: nil,
                                        message: "anchor file \(file) is not a valid consistency proof: \(error.message)"))
            }
        }
        // The checkpoints of each seq; a second one with other contents is a fork.
        var bySeq: [[(file: String, checkpoint: Checkpoint)]] = []
        for entry in checkpoints.sorted(by: { ($0.checkpoint.seq, $0.file) < ($1.checkpoint.seq, $1.file) }) {
            guard let first = bySeq.last?.first, first.checkpoint.seq == entry.checkpoint.seq else {
                bySeq.append([entry])
                continue
            }
            if !bySeq[bySeq.count - 1].contains(where: { $0.checkpoint.chainHead == entry.checkpoint.chainHead && $0.checkpoint.merkleRoot == entry.checkpoint.merkleRoot }) {
                let seq = entry.checkpoint.seq
                findings.append(Finding(
                    kind: .checkpointFork, seqs: seq...seq,
                    message: "anchor files \(first.file) and \(entry.file) hold two different checkpoints of this store at seq \(seq): two different logs were signed (a fork)"))
            }
            bySeq[bySeq.count - 1].append(entry)
        }
        // Consecutive seqs: the proof must lead from one of the older checkpoints to one of the
        // newer (a fork at one of the two seqs is reported above, once).
        for (older, newer) in zip(bySeq, bySeq.dropFirst()) {
            let (a, b) = (older[0], newer[0])
            guard let (file, result) = proofs["\(a.checkpoint.seq)-\(b.checkpoint.seq)"], case .success(let proof) = result else { continue }
            let holds = older.contains { x in newer.contains { y in proof.invalidity(from: x.checkpoint, to: y.checkpoint, publicKeys: nil) == nil } }
            if !holds, let why = proof.invalidity(from: a.checkpoint, to: b.checkpoint, publicKeys: nil) {
                if confirmedByLog.contains(a.checkpoint.seq) && confirmedByLog.contains(b.checkpoint.seq) {
                    findings.append(Finding(
                        kind: .checkpointInvalid, seqs: nil,
                        message: "anchor file \(file) is not a valid consistency proof: it does not lead from the checkpoint at seq \(a.checkpoint.seq) to the one at seq \(b.checkpoint.seq) (\(why)), while the store's rows prove the two consistent (both agree with them): the proof file was altered or replaced, not the log. It is not signed: remove it; the two checkpoints stay anchored"))
                    continue
                }
                findings.append(Finding(
                    kind: .checkpointFork, seqs: a.checkpoint.seq...b.checkpoint.seq,
                    message: "the checkpoint at seq \(b.checkpoint.seq) (\(b.file)) does not extend the one at seq \(a.checkpoint.seq) (\(a.file)) by the proof in \(file): \(why)"))
            }
        }
        return findings
    }

    /// The consistency proof files of `storeID` at `path` (a directory; a single file holds none).
    static func readProofs(_ path: String, storeID: StoreID) throws(AuditError)
        -> [(file: String, proof: Result<ConsistencyProof, AuditError>)]
    {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return [] }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw AuditError(.storage, "cannot list the anchor directory \(path): \(error.localizedDescription)")
        }
        return names.filter { $0.hasPrefix(storeID.hex + "-") && $0.hasSuffix(DirectoryAnchor.proofSuffix) }.sorted().map { name in
            let file = path + "/" + name
            return (file, Result { () throws(AuditError) in
                let proof = try ConsistencyProof(json: Data(try FileBytes.read(file, what: "anchor file", limit: 1 << 16)))
                guard proof.storeID == storeID, DirectoryAnchor.fileName(of: proof) == name else {
                    throw AuditError(.invalidInput, "its contents do not match its file name (store \(proof.storeID), seqs \(proof.fromSeq) to \(proof.toSeq))")
                }
                return proof
            })
        }
    }
}
