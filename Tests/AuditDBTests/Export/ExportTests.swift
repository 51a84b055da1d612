import Foundation
import Synchronization
import Testing

@testable import AuditDB

@Suite("Export bundles", .v1Bundles)
struct ExportTests {
    let dir: TempDir
    let keys: KeyRing
    let signer: CheckpointSigner

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        signer = try testSigner()
    }

    /// A store of 30 sample rows (tenants tenant-0/1/2) with a checkpoint of all of them, open.
    func checkpointedStore() async throws -> AuditStore {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: (1...30).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        return store
    }

    func verify(_ bundle: String) async throws -> ExportVerification {
        try await ExportBundle.verify(at: bundle, publicKeys: signer.publicKeys)
    }

    func lines(_ bundle: String) throws -> [String] {
        try String(contentsOfFile: bundle + "/entries.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
    }

    func write(_ lines: [String], _ bundle: String) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: bundle + "/entries.jsonl", atomically: false, encoding: .utf8)
    }

    func seq(_ line: String) throws -> Int64 {
        try #require((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["seq"] as? Int64)
    }

    @Test("a full export verifies with only the public key; entries carry values, nonces and proofs")
    func fullExport() async throws {
        let store = try await checkpointedStore()
        try await store.append(sampleEvent(31))
        let summary = try await store.export(to: dir.path("full"))
        try await store.close()
        #expect(summary.entryCount == 30 && summary.rowsAfterCheckpoint == 1)
        let result = try await verify(dir.path("full"))
        #expect(result.isValid, "\(result.findings)")
        #expect(result.entriesVerified == 30)
        #expect(result.checkpoint?.seq == 30)
        let first = try lines(dir.path("full"))[0]
        #expect(first.contains("\"actor\":{\"value\":\"user-1\",\"nonce\":\""))
    }

    @Test("subset exports verify: one tenant, a seq range, a recorded-time range")
    func subsets() async throws {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: (1...20).map { sampleEvent($0) })
        try await Task.sleep(for: .milliseconds(2))
        let boundary = AuditTimestamp.now()
        try await Task.sleep(for: .milliseconds(2))
        try await store.append(contentsOf: (21...30).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        let tenant = try await store.export(to: dir.path("tenant"), filter: ExportFilter(tenant: "tenant-1"))
        let range = try await store.export(to: dir.path("range"), filter: ExportFilter(seqs: 5...12))
        let week = try await store.export(to: dir.path("time"), filter: ExportFilter(recordedFrom: boundary))
        var denied = ExportFilter(tenant: "tenant-0")
        denied.outcome = .denied
        denied.resourceType = "document"
        denied.occurredFrom = AuditTimestamp(microsecondsSinceEpoch: 1_700_000_000_000_010)
        let deniedExport = try await store.export(to: dir.path("denied"), filter: denied)
        try await store.close()
        #expect(tenant.entryCount == 10 && range.entryCount == 8 && week.entryCount == 10)
        // sampleEvent: outcome denied when i % 5 == 0, tenant-0 when i % 3 == 0, occurredAt base + i.
        #expect(deniedExport.entryCount == 2)
        #expect(try lines(dir.path("denied")).map(seq) == [15, 30])
        for bundle in ["tenant", "range", "time", "denied"] {
            let result = try await verify(dir.path(bundle))
            #expect(result.isValid, "\(bundle): \(result.findings)")
        }
        #expect(try lines(dir.path("tenant")).map(seq) == [1, 4, 7, 10, 13, 16, 19, 22, 25, 28])
        #expect(try lines(dir.path("time")).map(seq) == Array(21...30))
    }

    @Test("a redacted export withholds the values and still verifies")
    func redacted() async throws {
        let store = try await checkpointedStore()
        try await store.export(to: dir.path("r"), filter: ExportFilter(tenant: "tenant-2"), redact: [.actor, .details])
        try await store.close()
        let result = try await verify(dir.path("r"))
        #expect(result.isValid, "\(result.findings)")
        let text = try String(contentsOfFile: dir.path("r") + "/entries.jsonl", encoding: .utf8)
        #expect(!text.contains("user-") && !text.contains("sample "))
        #expect(text.contains("\"actor\":{\"withheld\":true,\"commitment\":\""))
        #expect(text.contains("\"source\":{\"value\":\"10.0.0."))
    }

    @Test("no export without a checkpoint, and none from a store that fails verification")
    func refusals() async throws {
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...5).map { sampleEvent($0) })
        await #expect { try await store.export(to: dir.path("x")) } throws: {
            ($0 as? AuditError)?.code == .invalidInput && ($0 as? AuditError)?.message.contains("Run `auditdb checkpoint` first") == true
        }
        try await store.checkpoint(signer: signer)
        try sqlite3Must(path, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET tenant = 'evil' WHERE seq = 3;")
        await #expect { try await store.export(to: dir.path("y")) } throws: {
            ($0 as? AuditError)?.code == .integrityViolation && ($0 as? AuditError)?.message.contains("mac-mismatch at seq 3") == true
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path("y")))
        try await store.close()
    }

    @Test("the store's newest checkpoint damaged: the export says it used an older one, and a later checkpoint is used again")
    func damagedNewestCheckpointIsNamed() async throws {
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...10).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        try await store.append(contentsOf: (11...20).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        try sqlite3Tamper(path, "UPDATE audit_checkpoints SET signature = randomblob(64) WHERE seq = 20;", around: "audit_checkpoints_no_update")
        let summary = try await store.export(to: dir.path("x"), signer: signer)
        #expect(summary.checkpoint.seq == 10 && summary.skippedCheckpoints == [20] && summary.rowsAfterCheckpoint == 10)
        #expect(summary.entryCount == 10)
        try await store.append(sampleEvent(21))
        try await store.checkpoint(signer: signer)
        let later = try await store.export(to: dir.path("y"), signer: signer)
        #expect(later.checkpoint.seq == 22 && later.skippedCheckpoints.isEmpty)  // 21 and the first export's access entry
        try await store.close()
    }

    /// A bundle of tenant-1 (seqs 1, 4, 7, ..., 28), actor withheld, to tamper with.
    func bundle(redact: Set<WithholdableField> = []) async throws -> String {
        let store = try await checkpointedStore()
        try await store.export(to: dir.path("b"), filter: ExportFilter(tenant: "tenant-1"), redact: redact)
        try await store.export(to: dir.path("all"))
        try await store.close()
        #expect(try await verify(dir.path("b")).isValid)
        return dir.path("b")
    }

    func onlyFinding(_ bundle: String) async throws -> ExportFinding {
        let result = try await verify(bundle)
        #expect(result.findings.count == 1, "\(result.findings)")
        return try #require(result.findings.first)
    }

    @Test("a changed entry fails as entry-changed")
    func changedEntry() async throws {
        let b = try await bundle()
        var l = try lines(b)
        #expect(l[2].contains("\"resourceId\":\"doc-7\""))
        l[2] = l[2].replacingOccurrences(of: "\"resourceId\":\"doc-7\"", with: "\"resourceId\":\"doc-8\"")
        try write(l, b)
        let f = try await onlyFinding(b)
        #expect(f.kind == .entryChanged && f.seq == 7)
        #expect(f.message == "entry seq 7: its values do not hash to its leaf hash: a value was changed")
    }

    @Test("a changed shown value of a committed field fails as commitment-mismatch")
    func changedCommittedValue() async throws {
        let b = try await bundle()
        var l = try lines(b)
        l[1] = l[1].replacingOccurrences(of: "\"value\":\"user-4\"", with: "\"value\":\"user-5\"")
        try write(l, b)
        let f = try await onlyFinding(b)
        #expect(f.kind == .commitmentMismatch && f.seq == 4)
        #expect(f.message == "entry seq 4: the shown actor does not match its commitment (the value or its nonce was changed)")
    }

    @Test("a removed entry fails as entry-missing")
    func removedEntry() async throws {
        let b = try await bundle()
        var l = try lines(b)
        l.remove(at: 3)
        try write(l, b)
        let f = try await onlyFinding(b)
        #expect(f.kind == .entryMissing && f.seq == 10)
        #expect(f.message == "the manifest lists seq 10 but the bundle has no entry for it: it was removed")
    }

    @Test("an added entry (a genuine one from another export) fails as entry-added")
    func addedEntry() async throws {
        let b = try await bundle()
        var l = try lines(b)
        let foreign = try lines(dir.path("all"))[29]  // seq 30, tenant-0: genuine, with a valid proof
        #expect(try seq(foreign) == 30)
        l.append(foreign)
        try write(l, b)
        let f = try await onlyFinding(b)
        #expect(f.kind == .entryAdded && f.seq == 30)
        #expect(f.message == "entry seq 30 (line 11) is not listed in the manifest: it was added")
        // Progress counts entries of the manifest's 10, never past them: the added line is a
        // finding, not 11/10. Blank lines are not entries.
        try write(l.flatMap { [$0, ""] }, b)
        let steps = Mutex<[VerificationProgress]>([])
        _ = try await ExportBundle.verify(at: b, publicKeys: signer.publicKeys, progress: { step in steps.withLock { $0.append(step) } })
        let seen = steps.withLock { $0 }
        #expect(seen.last.map { [$0.rowsChecked, $0.totalRows] } == [10, 10], "\(seen)")
    }

    @Test("reordered entries fail as entry-out-of-order; a repeated one as entry-duplicate")
    func reordered() async throws {
        let b = try await bundle()
        var l = try lines(b)
        l.swapAt(4, 5)  // seqs 13 and 16
        try write(l, b)
        let f = try await onlyFinding(b)
        #expect(f.kind == .entryOutOfOrder && f.seq == 13)
        #expect(f.message == "entry seq 13 (line 6) comes after seq 16: the entries were reordered")
        l.swapAt(4, 5)
        l.insert(l[2], at: 3)
        try write(l, b)
        let d = try await onlyFinding(b)
        #expect(d.kind == .entryDuplicate && d.seq == 7)
    }

    @Test("a changed proof fails as proof-invalid")
    func changedProof() async throws {
        let b = try await bundle()
        var l = try lines(b)
        let marker = "\"proof\":[\""
        let range = try #require(l[4].range(of: marker))
        let at = range.upperBound
        let old = l[4][at]
        l[4].replaceSubrange(at...at, with: old == "0" ? "1" : "0")
        try write(l, b)
        let f = try await onlyFinding(b)
        #expect(f.kind == .proofInvalid && f.seq == 13)
        #expect(f.message == "entry seq 13: its inclusion proof does not lead to the Merkle root of the checkpoint at seq 30 (the proof was changed)")
    }

    @Test("a changed checkpoint fails as checkpoint-invalid, as does another public key")
    func changedCheckpoint() async throws {
        let b = try await bundle()
        let file = b + "/checkpoint.json"
        let original = try String(contentsOfFile: file, encoding: .utf8)
        try original.replacingOccurrences(of: "\"seq\":30,", with: "\"seq\":31,").write(toFile: file, atomically: false, encoding: .utf8)
        let f = try await onlyFinding(b)
        #expect(f.kind == .checkpointInvalid)
        #expect(f.message == "the checkpoint at seq 31 is invalid: its Ed25519 signature does not verify (the checkpoint was changed or forged)")
        try original.write(toFile: file, atomically: false, encoding: .utf8)
        let other = try await ExportBundle.verify(at: b, publicKeys: try testSigner().publicKeys)
        #expect(other.findings.map(\.kind) == [.checkpointInvalid])
    }

    @Test("an altered commitment of a redacted field fails as entry-changed naming the withheld field")
    func alteredRedactedCommitment() async throws {
        let b = try await bundle(redact: [.actor])
        var l = try lines(b)
        let marker = "\"actor\":{\"withheld\":true,\"commitment\":\""
        let at = try #require(l[6].range(of: marker)).upperBound
        l[6].replaceSubrange(at...at, with: l[6][at] == "a" ? "b" : "a")
        try write(l, b)
        let f = try await onlyFinding(b)
        #expect(f.kind == .entryChanged && f.seq == 19)
        #expect(f.message == "entry seq 19: its values do not hash to its leaf hash: a value or the commitment of a withheld field (actor) was changed")
    }

    @Test("the CLI: export with filters and --redact, verify-export exits 0, then 1 after an edit")
    func commandLine() async throws {
        let cli = try cliPath()
        let keyFile = dir.path("k.keys"), path = dir.path("c.db"), secret = dir.path("c.key"), pub = dir.path("c.pub")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        try await makeStore(at: path, keys: keys, count: 15)
        #expect(try run(cli, ["checkpoint-key", "generate", "--out", secret, "--public-out", pub]).status == 0)
        #expect(try run(cli, ["checkpoint", "--store", path, "--key-file", keyFile, "--signing-key", secret]).status == 0)
        let out = dir.path("bundle")
        let exported = try run(cli, ["export", "--store", path, "--key-file", keyFile, "--out", out, "--tenant", "tenant-0",
                                     "--from-seq", "2", "--redact", "actor,details", "--severity", "info"])
        let badOutcome = try run(cli, ["export", "--store", path, "--key-file", keyFile, "--out", dir.path("x"), "--outcome", "maybe"])
        #expect(badOutcome.status == 2 && badOutcome.stderr.contains("--outcome must be success, failure, denied or error"))
        #expect(exported.status == 0, "\(exported.stderr)")
        #expect(exported.stdout == "exported 5 entries to \(out), proven against the checkpoint at seq 15\n"
            + "note: no --signing-key, so no signed statement: a verifier can check each entry, but not that the export is complete\n"
            + "recorded in the log as access entry 16\n")
        let ok = try run(cli, ["verify-export", out, "--public-key", pub])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.hasPrefix("valid: 5 entries proven against checkpoint seq 15 of store "))
        var l = try lines(out)
        l.removeFirst()
        try write(l, out)
        let bad = try run(cli, ["verify-export", out, "--public-key", pub])
        #expect(bad.status == 1)
        #expect(bad.stdout == "EXPORT INVALID: 1 finding(s)\n  entry-missing at seq 3: the manifest lists seq 3 but the bundle has no entry for it: it was removed\n")
        let missing = try run(cli, ["verify-export", dir.path("nope"), "--public-key", pub])
        #expect(missing.status == 2)
    }
}
