import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// Consistency proofs made by a store, kept by directory anchors and checked by `verify --anchor`
/// without the rows (FORMAT.md section 22).
@Suite("Consistency proofs: stores and anchors")
struct ConsistencyAnchorTests {
    let dir: TemporaryDirectory
    let keys: KeyRing
    let signer: CheckpointSigner

    init() throws {
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
        signer = try CheckpointSigner.inMemory()
    }

    func events(_ range: ClosedRange<Int>, tag: String = "a") -> [AuditEvent] {
        range.map { AuditEvent(actor: "user-\($0)", action: "doc.\(tag)", tenant: "t1", details: ["i": .int(Int64($0))]) }
    }

    func proofFiles(_ anchor: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: anchor).filter { $0.hasSuffix(".consistency.json") }.sorted()
    }

    @Test("each checkpoint after the first writes the proof from the previous one; any pair can be proven; all verify")
    func chainOfProofs() async throws {
        let anchor = DirectoryAnchor(path: dir.path("anchor"))
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var cps: [Checkpoint] = []
        for (i, count) in [5, 6, 10, 1].enumerated() {
            try await store.append(contentsOf: events(1...count, tag: "\(i)"))
            cps.append(try await store.checkpoint(signer: signer, anchors: [anchor]))
        }
        #expect(cps.map(\.seq) == [5, 11, 21, 22])
        let files = try proofFiles(anchor.path)
        #expect(files == [(5, 11), (11, 21), (21, 22)].map { a, b in
            DirectoryAnchor.fileName(of: ConsistencyProof(storeID: store.storeID, fromSeq: a, toSeq: b, hashes: []))
        })
        for (a, b) in [(0, 1), (0, 3), (1, 3), (2, 2), (0, 2)] {
            let proof = try await store.consistencyProof(from: cps[a], to: cps[b])
            #expect(proof.invalidity(from: cps[a], to: cps[b], publicKeys: signer.publicKeys) == nil)
            #expect(proof.invalidity(from: cps[b], to: cps[a], publicKeys: signer.publicKeys) != nil || a == b)
        }
        // Checked without the rows, and with them.
        #expect(try AnchorConsistency.findings(anchorPaths: [anchor.path], storeID: store.storeID, publicKeys: signer.publicKeys).isEmpty)
        let report = try await store.verify(againstAnchors: [anchor.path], publicKeys: signer.publicKeys)
        #expect(report.findings.isEmpty, "\(report.findings)")
        try await store.close()
    }

    @Test("a proof file changed at the anchor (swapped hashes, another pair's proof, garbage) is reported exactly")
    func tamperedProofFile() async throws {
        let anchor = DirectoryAnchor(path: dir.path("anchor"))
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: events(1...6))
        let first = try await store.checkpoint(signer: signer, anchors: [anchor])
        try await store.append(contentsOf: events(7...13))
        let second = try await store.checkpoint(signer: signer, anchors: [anchor])
        try await store.append(contentsOf: events(14...15))
        _ = try await store.checkpoint(signer: signer, anchors: [anchor])
        let id = store.storeID
        let file = anchor.path + "/" + DirectoryAnchor.fileName(of: ConsistencyProof(storeID: id, fromSeq: 6, toSeq: 13, hashes: []))
        let good = try ConsistencyProof(json: Data(contentsOf: URL(fileURLWithPath: file)))
        #expect(good.hashes.count >= 2)
        func put(_ text: String) throws {
            chmod(file, 0o644)
            try text.write(toFile: file, atomically: false, encoding: .utf8)
        }
        func findings() throws -> [Finding] {
            try AnchorConsistency.findings(anchorPaths: [anchor.path], storeID: id, publicKeys: signer.publicKeys)
        }
        var swapped = good.hashes
        swapped.swapAt(0, 1)
        try put(ConsistencyProof(storeID: id, fromSeq: 6, toSeq: 13, hashes: swapped).json + "\n")
        var found = try findings()
        #expect(found.map(\.kind) == [.checkpointFork])
        #expect(found.first?.seqs == 6...13)
        #expect(found.first?.message.contains("does not lead from the Merkle root at seq 6 to the one at seq 13") == true)
        let why = try #require(found.first?.message.components(separatedBy: "by the proof in \(file): ").last)
        #expect(why.hasPrefix("the proof does not lead from the Merkle root at seq 6"), "\(why)")
        // With the store at hand, both checkpoints agree with the rows, which prove them
        // consistent: the proof file is what was altered (FORMAT.md 22.4), not a fork.
        let report = try await store.verify(againstAnchors: [anchor.path], publicKeys: signer.publicKeys)
        #expect(report.findings.map(\.kind) == [.checkpointInvalid])
        #expect(report.findings.first?.seqs == nil)
        #expect(report.findings.first?.message == "anchor file \(file) is not a valid consistency proof: it does not lead from the checkpoint at seq 6 to the one at seq 13 (\(why)), while the store's rows prove the two consistent (both agree with them): the proof file was altered or replaced, not the log. It is not signed: remove it; the two checkpoints stay anchored",
                "\(report.findings)")
        // The proof of 13 -> 15 renamed as 6 -> 13: its contents do not match the name.
        let other = try String(contentsOfFile: anchor.path + "/" + DirectoryAnchor.fileName(of: ConsistencyProof(storeID: id, fromSeq: 13, toSeq: 15, hashes: [])), encoding: .utf8)
        try put(other)
        found = try findings()
        #expect(found.map(\.kind) == [.checkpointInvalid])
        #expect(found.first?.message.contains("do not match its file name") == true)
        try put("{\"format\":\"auditdb-consistency v1\"")
        #expect(try findings().map(\.kind) == [.checkpointInvalid])
        // Put back: clean again; and a proof of another pair of sizes with the right name fails.
        try put(good.json + "\n")
        #expect(try findings().isEmpty)
        let stretched = try await store.consistencyProof(from: first, to: second)
        #expect(stretched == good)
        try await store.close()
    }

    @Test("two diverging copies: same seq in two anchors is one checkpoint-fork; a copy cannot extend the other's anchor")
    func forkedCopies() async throws {
        let path = dir.path("s.db")
        let anchorA = DirectoryAnchor(path: dir.path("a")), anchorB = DirectoryAnchor(path: dir.path("b"))
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: events(1...4))
        _ = try await store.checkpoint(signer: signer, anchors: [anchorA, anchorB])
        try await store.close()
        try FileManager.default.copyItem(atPath: path, toPath: dir.path("copy.db"))
        let a = try await AuditStore.open(at: path, keys: keys)
        let b = try await AuditStore.open(at: dir.path("copy.db"), keys: keys)
        try await a.append(contentsOf: events(5...9, tag: "left"))
        try await b.append(contentsOf: events(5...9, tag: "right"))
        let cpA = try await a.checkpoint(signer: signer, anchors: [anchorA])
        let cpB = try await b.checkpoint(signer: signer, anchors: [anchorB])
        #expect(cpA.seq == 9 && cpB.seq == 9 && cpA.merkleRoot != cpB.merkleRoot)
        // Without the rows: the two anchors hold two logs at seq 9.
        let findings = try AnchorConsistency.findings(anchorPaths: [anchorA.path, anchorB.path], storeID: a.storeID,
                                                      publicKeys: signer.publicKeys)
        #expect(findings.map(\.kind) == [.checkpointFork])
        #expect(findings.first?.seqs == 9...9)
        // b grows on; it cannot extend what anchor a holds at 9, and writes nothing there.
        try await b.append(contentsOf: events(10...10, tag: "right"))
        do {
            _ = try await b.checkpoint(signer: signer, anchors: [anchorA])
            Issue.record("the forked copy extended the other copy's anchor")
        } catch let error as AuditError {
            #expect(error.code == .integrityViolation)
        }
        #expect(try proofFiles(anchorA.path).count == 1)  // 4 -> 9 of a only
        #expect(!FileManager.default.fileExists(atPath: anchorA.path + "/" + DirectoryAnchor.fileName(of: Checkpoint(
            storeID: a.storeID, seq: 10, chainHead: [], merkleRoot: [], time: .now(), keyVersion: 1, publicKey: [], signature: []))))
        do {
            _ = try await b.consistencyProof(from: cpA, to: try await b.checkpoint(signer: signer, anchors: [anchorB]))
            Issue.record("a proof from the other copy's checkpoint was made")
        } catch let error as AuditError {
            #expect(error.code == .integrityViolation)
        }
        // With the rows at hand: an anchor holding a's checkpoint at 4, b's at 9 and a's proof
        // 4 -> 9. Checked against a's rows, b's checkpoint disagrees with them, so the failing
        // proof stays a fork (only two checkpoints the rows confirm turn it into a bad file).
        let mixed = dir.path("c")
        try FileManager.default.createDirectory(atPath: mixed, withIntermediateDirectories: false)
        let proofName = try #require(try proofFiles(anchorA.path).first)
        let checkpointAt4 = try #require(try FileManager.default.contentsOfDirectory(atPath: anchorA.path)
            .first { $0.hasSuffix(".json") && !$0.hasSuffix(DirectoryAnchor.proofSuffix) && $0.contains("-00000000000000000004") })
        for (from, name) in [(anchorA.path, checkpointAt4), (anchorB.path, DirectoryAnchor.fileName(of: cpB)), (anchorA.path, proofName)] {
            try FileManager.default.copyItem(atPath: from + "/" + name, toPath: mixed + "/" + name)
        }
        let report = try await a.verify(againstAnchors: [mixed], publicKeys: signer.publicKeys)
        #expect(report.findings.map(\.kind) == [.checkpointFork, .anchorMismatch], "\(report.findings)")
        #expect(report.findings.map(\.seqs) == [4...9, 9...9])
        try await a.close()
        try await b.close()
    }
}
