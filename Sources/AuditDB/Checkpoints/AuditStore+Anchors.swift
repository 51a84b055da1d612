import Foundation
import GRDB

extension AuditStore {
    /// Verifies the store (as ``verify(progress:)`` does) and then against the checkpoints held by
    /// anchors outside the file, which MACs alone cannot do.
    ///
    /// For each checkpoint of this store found at the anchor paths:
    /// * its Ed25519 signature must verify under `publicKeys` (else ``Finding/Kind/checkpointInvalid``);
    /// * the store must still have row `seq`; if it ends before, ``Finding/Kind/truncated`` (the
    ///   store recorded the checkpoint itself, so rows were cut after it) or
    ///   ``Finding/Kind/rolledBack`` (the store does not know it: an older copy of the file);
    /// * row `seq`'s stored MAC must equal the signed chain head and the Merkle root recomputed
    ///   over rows 1...seq the signed root; else ``Finding/Kind/anchorMismatch`` (rewritten or
    ///   forked, including a consistent rewrite by someone holding the HMAC key).
    ///
    /// Every such finding names the checkpoint (seq, time, anchor file) it contradicts.
    ///
    /// - Parameters:
    ///   - anchorPaths: Anchor directories (or single checkpoint files).
    ///   - publicKeys: The public checkpoint keys to trust.
    /// - Returns: The report of ``verify(progress:)`` with the anchor findings added.
    /// - Throws: ``AuditError`` `invalidInput` if an anchor path does not exist or holds no
    ///   checkpoint at all; storage errors.
    /// - Complexity: O(n) in the rows up to the highest anchored seq.
    public func verify(againstAnchors anchorPaths: [String], publicKeys: CheckpointPublicKeys) async throws -> IntegrityReport {
        let base = try await verify()
        let findings = try await Self.anchorFindings(
            pool, storeID: storeID, keys: keys, anchorPaths: anchorPaths, publicKeys: publicKeys, path: path)
        return Self.merged(base, findings)
    }

    /// ``verify(againstAnchors:publicKeys:)`` of the store file at `path` without opening it
    /// for appends, so that a read-only or archived store (or an auditor with read access only)
    /// can be checked against its anchors.
    ///
    /// - Throws: As ``verify(storeAt:keys:configuration:progress:)``, and `invalidInput` if an anchor
    ///   path does not exist or holds no checkpoint.
    public static func verify(storeAt path: String, keys: KeyRing, configuration: Configuration = Configuration(),
                              againstAnchors anchorPaths: [String], publicKeys: CheckpointPublicKeys,
                              progress: (@Sendable (VerificationProgress) -> Void)? = nil) async throws
        -> IntegrityReport
    {
        let base = try await verify(storeAt: path, keys: keys, configuration: configuration, progress: progress)
        // Without a readable header there is no store id to match checkpoints with; the report
        // already says why.
        guard let storeID = base.storeID else { return base }
        let reader = try openForReading(path, configuration)
        do {
            let findings = try await anchorFindings(
                reader, storeID: storeID, keys: keys, anchorPaths: anchorPaths, publicKeys: publicKeys, path: path)
            try reader.close()
            return merged(base, findings)
        } catch {
            try? reader.close()  // cleanup; the original error is rethrown
            throw error
        }
    }

    static func merged(_ base: IntegrityReport, _ findings: [Finding]) -> IntegrityReport {
        // The store's own copy of an anchored checkpoint gives the same finding (same kind, same
        // seqs) as the anchor: report it once, as the anchor's (StoredCheckpointCheck).
        let anchored = Set(findings.map { "\($0.kind.name) \($0.seqs.map { "\($0.lowerBound)...\($0.upperBound)" } ?? "-")" })
        let kept = base.findings.filter { finding in
            !(finding.kind == .truncated || finding.kind == .anchorMismatch)
                || !anchored.contains("\(finding.kind.name) \(finding.seqs.map { "\($0.lowerBound)...\($0.upperBound)" } ?? "-")")
        }
        var all = kept + findings
        all.sort { ($0.seqs?.lowerBound ?? Int64.min, $0.kind.name) < ($1.seqs?.lowerBound ?? Int64.min, $1.kind.name) }
        return IntegrityReport(
            storeID: base.storeID, rowsChecked: base.rowsChecked, lastSeq: base.lastSeq,
            findings: Array(all.prefix(IntegrityReport.findingLimit)),
            totalFindings: base.totalFindings - (base.findings.count - kept.count) + findings.count,
            startedAt: base.startedAt, duration: base.duration)
    }

    /// Reads the anchors and checks this store against every valid checkpoint of it.
    static func anchorFindings(_ reader: any DatabaseReader, storeID: StoreID, keys: KeyRing, anchorPaths: [String],
                               publicKeys: CheckpointPublicKeys, path: String) async throws -> [Finding]
    {
        var anchored: [(file: String, checkpoint: Result<Checkpoint, AuditError>)] = []
        for anchorPath in anchorPaths { anchored += try DirectoryAnchor.read(anchorPath) }
        guard !anchored.isEmpty else {
            throw AuditError(.invalidInput, "no checkpoint files at \(anchorPaths.joined(separator: ", ")); pass the anchor that `auditdb checkpoint --anchor` wrote to", field: "--anchor")
        }
        var findings: [Finding] = []
        var mine: [(file: String, checkpoint: Checkpoint)] = []
        var others = Set<StoreID>()
        for (file, result) in anchored {
            switch result {
            case .failure(let error):
                findings.append(Finding(kind: .checkpointInvalid, seqs: nil,
                                        message: "anchor file \(file) is not a valid checkpoint: \(error.message)"))
            case .success(let cp) where cp.storeID != storeID:
                others.insert(cp.storeID)
            case .success(let cp):
                if let why = cp.invalidity(under: publicKeys) {
                    findings.append(Finding(kind: .checkpointInvalid, seqs: nil,
                                            message: "the checkpoint at seq \(cp.seq) in anchor file \(file) is invalid: \(why)"))
                } else {
                    mine.append((file, cp))
                }
            }
        }
        if mine.isEmpty && !others.isEmpty {
            findings.append(Finding(
                kind: .anchorMismatch, seqs: nil,
                message: "the anchors hold checkpoints of store(s) \(others.map(\.hex).sorted().joined(separator: ", ")) but none of this store \(storeID): the file was replaced by another store's"))
        }
        mine.sort { $0.checkpoint.seq < $1.checkpoint.seq }
        let checks = mine
        let against: (findings: [Finding], disagreeing: Set<Int64>)
        do {
            against = try await Self.compare(reader, with: checks, storeID: storeID, keys: keys)
        } catch {
            throw AuditError.from(error, while: "verify \(path) against anchors")
        }
        // Checkpoint against checkpoint, by the proofs beside them (section 22.4); the rows tell
        // an altered proof file from a fork where both checkpoints agree with them.
        let confirmed = Set(mine.map(\.checkpoint.seq)).subtracting(against.disagreeing)
        findings += try AnchorConsistency.findings(mine, anchorPaths: anchorPaths, storeID: storeID, confirmedByLog: confirmed)
        findings += against.findings
        return findings
    }

    /// One pass over rows 1...(highest anchored seq) comparing chain heads and roots: the
    /// findings, and the seqs of the checkpoints that got one.
    static func compare(_ reader: any DatabaseReader, with anchored: [(file: String, checkpoint: Checkpoint)],
                        storeID: StoreID, keys: KeyRing) async throws -> (findings: [Finding], disagreeing: Set<Int64>)
    {
        guard let highest = anchored.last?.checkpoint.seq else { return ([], []) }
        let lastSeq = try await reader.read { db in try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries NOT INDEXED WHERE seq >= 1") ?? 0 }
        var roots: [Int64: [UInt8]] = [:]
        let wanted = Set(anchored.map(\.checkpoint.seq))
        var computedUpTo: Int64 = 0
        if lastSeq >= 1 {
            // The MACs were checked by verify(); here only the leaves matter, so a damaged row
            // stops the root computation (reported below) rather than the pass.
            let scan = try await LeafScan.leaves(reader, range: 1...min(lastSeq, highest), prevMac: [UInt8](repeating: 0, count: 32),
                                                 storeID: storeID, keys: keys, verify: false)
            var frontier = MerkleTree.Frontier()
            for offset in stride(from: 0, to: scan.flat.count, by: 32) {
                frontier.append(leaf: Array(scan.flat[offset..<offset + 32]))
                if wanted.contains(frontier.size) { roots[frontier.size] = frontier.root }
            }
            computedUpTo = scan.lastGood
        }
        let (known, macs) = try await reader.read { db in
            (try db.tableExists("audit_checkpoints")
                ? Set(try Data.fetchAll(db, sql: "SELECT signature FROM audit_checkpoints").map { Array($0) }) : [],
             try Dictionary(anchored.map { a in
                 (a.checkpoint.seq, try StoredMacs(db).mac(at: a.checkpoint.seq))
             }, uniquingKeysWith: { a, _ in a }))
        }
        var findings: [Finding] = []
        var disagreeing = Set<Int64>()
        for (file, cp) in anchored {
            let before = findings.count
            defer { if findings.count > before { disagreeing.insert(cp.seq) } }
            let named = "the checkpoint at seq \(cp.seq) made \(cp.time.iso8601) (anchor file \(file))"
            if lastSeq < cp.seq {
                let firstMissing = lastSeq + 1
                if known.contains(cp.signature) {
                    findings.append(Finding(
                        kind: .truncated, seqs: firstMissing...cp.seq,
                        message: "the log ends at seq \(lastSeq) but \(named) covers \(cp.seq) rows: rows \(firstMissing)...\(cp.seq) were cut from the tail after it was made (the store recorded that checkpoint itself)"))
                } else {
                    findings.append(Finding(
                        kind: .rolledBack, seqs: firstMissing...cp.seq,
                        message: "the log ends at seq \(lastSeq) but \(named) covers \(cp.seq) rows, and the store does not know that checkpoint: the file was rolled back to an older copy (rows \(firstMissing)...\(cp.seq) are gone)"))
                }
                continue
            }
            if macs[cp.seq] ?? nil != cp.chainHead {
                findings.append(Finding(
                    kind: .anchorMismatch, seqs: cp.seq...cp.seq,
                    message: "row \(cp.seq) does not have the chain head signed by \(named): the log up to it was rewritten or forked (even if every MAC verifies)"))
            } else if computedUpTo < cp.seq {
                findings.append(Finding(
                    kind: .anchorMismatch, seqs: (computedUpTo + 1)...cp.seq,
                    message: "the Merkle root signed by \(named) cannot be recomputed: row \(computedUpTo + 1) is missing or unreadable"))
            } else if roots[cp.seq] != cp.merkleRoot {
                findings.append(Finding(
                    kind: .anchorMismatch, seqs: 1...cp.seq,
                    message: "rows 1...\(cp.seq) do not hash to the Merkle root signed by \(named): the log up to it was rewritten (the chain head was kept)"))
            }
        }
        return (findings, disagreeing)
    }
}
