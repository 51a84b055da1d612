import Foundation
import Testing

@testable import AuditDB

/// The signed export statement (FORMAT.md 17.3): completeness of a subset export, attested.
/// Tampering edits the real bundle files.
@Suite("Export statements", .v1Bundles)
struct ExportStatementTests {
    let dir: TempDir
    let keys: KeyRing
    let signer: CheckpointSigner

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        signer = try testSigner()
    }

    /// 30 sample rows (tenant-1 = seqs 1, 4, ..., 28), checkpointed; a signed tenant-1 export
    /// with actor withheld at `b`, a signed full export at `all`, an unsigned tenant-1 export at `plain`.
    func bundles() async throws -> String {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: (1...30).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        let summary = try await store.export(to: dir.path("b"), filter: ExportFilter(tenant: "tenant-1"), redact: [.actor], signer: signer)
        try await store.export(to: dir.path("all"), signer: signer)
        try await store.export(to: dir.path("plain"), filter: ExportFilter(tenant: "tenant-1"), redact: [.actor])
        try await store.close()
        #expect(summary.statement?.entryCount == 10)
        return dir.path("b")
    }

    func verify(_ bundle: String, requireStatement: Bool = false) async throws -> ExportVerification {
        try await ExportBundle.verify(at: bundle, publicKeys: signer.publicKeys, requireStatement: requireStatement)
    }

    func edit(_ file: String, _ change: (String) throws -> String) throws {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let changed = try change(text)
        #expect(changed != text, "the edit of \(file) changed nothing")
        try changed.write(toFile: file, atomically: false, encoding: .utf8)
    }

    func pairs(_ result: ExportVerification) -> [String] {
        result.findings.map { "\($0.kind)\($0.seq.map { "@\($0)" } ?? ""): \($0.message)" }
    }

    @Test("a signed subset export verifies and reports completeness attested")
    func attested() async throws {
        let b = try await bundles()
        #expect(FileManager.default.fileExists(atPath: b + "/statement.json"))
        let result = try await verify(b, requireStatement: true)
        #expect(result.isValid, "\(result.findings)")
        #expect(result.isCompletenessAttested)
        #expect(result.entriesVerified == 10)
        #expect(result.statement?.entryCount == 10 && result.statement?.checkpointSeq == 30)
        #expect(result.redacted == [.actor])
        #expect(result.description.hasSuffix("\ncompleteness attested: a statement signed with checkpoint key version 1 says these are all rows up to seq 30 that match the manifest's filter (withheld: actor)"))
        let full = try await verify(dir.path("all"))
        #expect(full.isCompletenessAttested && full.entriesVerified == 30)
    }

    @Test("export limit: the first N matches, the filter narrowed to their seq range, the statement attests exactly that; the rest follows from the next seq")
    func limited() async throws {
        _ = try await bundles()
        let store = try await AuditStore.open(at: dir.path("s.db"), keys: keys)
        let first = try await store.export(to: dir.path("l1"), filter: ExportFilter(tenant: "tenant-1"), signer: signer, limit: 4)
        #expect(first.isLimited && first.entryCount == 4 && first.filter.seqs == 1...10)
        var rest = ExportFilter(tenant: "tenant-1")
        rest.seqs = 11...Int64.max
        let second = try await store.export(to: dir.path("l2"), filter: rest, signer: signer, limit: 100)
        #expect(!second.isLimited && second.entryCount == 6 && second.filter.seqs == 11...Int64.max)
        await #expect(throws: AuditError.self) { try await store.export(to: dir.path("l3"), limit: 0) }
        // A range above the checkpoint: the statement attests that there are no such rows.
        var above = ExportFilter()
        above.seqs = 100...200
        #expect(try await store.export(to: dir.path("l4"), filter: above, signer: signer).entryCount == 0)
        try await store.close()
        let empty = try await verify(dir.path("l4"), requireStatement: true)
        #expect(empty.isCompletenessAttested, "\(empty.findings)")
        #expect(empty.description.contains("says these are all rows from seq 100 on (none: the checkpoint is at seq 30) that match"), "\(empty)")
        let manifest = try String(contentsOfFile: dir.path("l1") + "/manifest.json", encoding: .utf8)
        #expect(manifest.contains("\"entryCount\":4,\"seqs\":[1,4,7,10],"))
        #expect(manifest.contains("\"fromSeq\":1,") && manifest.contains("\"toSeq\":10"), "\(manifest)")
        let one = try await verify(dir.path("l1"), requireStatement: true)
        #expect(one.isValid && one.isCompletenessAttested, "\(one.findings)")
        #expect(one.statement?.entryCount == 4)
        // It says which rows it attests: the range --limit reached, not every row up to the checkpoint.
        #expect(one.attestedSeqs == 1...10)
        #expect(one.description.contains("says these are all rows from seq 1 to seq 10 that match the manifest's filter"), "\(one)")
        try signer.publicKeys.write(to: dir.path("l.pub"))
        let script = FormatVectorTests.root.appendingPathComponent("docs/verifier/auditdb_verify_export.py").path
        let python = try run(try FormatVectorTests.python3(), [script, dir.path("l1"), "--public-key", dir.path("l.pub")])
        #expect(python.stdout == "valid: 4 entries\ncompleteness attested: signed statement (key version 1): all rows from seq 1 to seq 10 that match the filter (withheld: none)\n", "\(python.stdout)\(python.stderr)")
        let two = try await verify(dir.path("l2"), requireStatement: true)
        #expect(two.isValid && two.isCompletenessAttested && two.entriesVerified == 6, "\(two.findings)")
        // Widening the manifest's range to claim more than was attested is caught.
        try edit(dir.path("l1") + "/manifest.json") { $0.replacingOccurrences(of: "\"toSeq\":10", with: "\"toSeq\":30") }
        let widened = try await verify(dir.path("l1"))
        #expect(!widened.isCompletenessAttested)
        #expect(pairs(widened).contains { $0.hasPrefix("statement-mismatch: filter:") }, "\(pairs(widened))")
    }

    @Test("an entry removed together with its seq (entryCount fixed) fails as statement-mismatch: seqs")
    func removedWithSeq() async throws {
        let b = try await bundles()
        try edit(b + "/manifest.json") {
            $0.replacingOccurrences(of: "\"entryCount\":10,\"seqs\":[1,4,7,10,", with: "\"entryCount\":9,\"seqs\":[1,4,7,")
        }
        let lines = try String(contentsOfFile: b + "/entries.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines[3].hasPrefix("{\"seq\":10,"))
        try (lines.enumerated().filter { $0.offset != 3 }.map { $0.element + "\n" }.joined())
            .write(toFile: b + "/entries.jsonl", atomically: false, encoding: .utf8)
        // Without the statement this edit goes unnoticed:
        try FileManager.default.copyItem(atPath: b, toPath: dir.path("nostatement"))
        try FileManager.default.removeItem(atPath: dir.path("nostatement") + "/statement.json")
        let blind = try await verify(dir.path("nostatement"))
        #expect(blind.isValid && !blind.isCompletenessAttested)
        let result = try await verify(b)
        #expect(!result.isValid && !result.isCompletenessAttested)
        #expect(pairs(result) == [
            "statement-mismatch: entryCount: the statement signs 10 entries, the manifest states 9",
            "statement-mismatch: seqs: the manifest's seqs differ from the ones the statement signs (an entry was removed or added together with its seq)",
        ])
    }

    @Test("a changed filter or redaction set in the manifest fails as statement-mismatch naming it")
    func changedFilter() async throws {
        let b = try await bundles()
        try edit(b + "/manifest.json") { $0.replacingOccurrences(of: "\"tenant\":\"tenant-1\"", with: "\"tenant\":\"tenant-2\"") }
        #expect(pairs(try await verify(b)) == [
            "statement-mismatch: filter: the manifest's filter differs from the one the statement signs (the selection was changed)",
        ])
        try edit(b + "/manifest.json") { $0.replacingOccurrences(of: "\"tenant\":\"tenant-2\"", with: "\"tenant\":\"tenant-1\"") }
        #expect(try await verify(b).isValid)
        try edit(b + "/manifest.json") { $0.replacingOccurrences(of: "\"redacted\":[\"actor\"]", with: "\"redacted\":[\"actor\",\"details\"]") }
        #expect(pairs(try await verify(b)) == [
            "statement-mismatch: redaction set: the manifest names actor, details as withheld, the statement signs actor",
        ])
        try edit(b + "/manifest.json") { $0.replacingOccurrences(of: "\"redacted\":[\"actor\",\"details\"]", with: "\"redacted\":[\"actor\"]") }
        try edit(b + "/manifest.json") { $0.replacingOccurrences(of: "\"occurredBefore\":null", with: "\"occurredBefore\":null,\"note\":\"x\"") }
        #expect(pairs(try await verify(b)) == [
            "statement-mismatch: filter: the manifest's filter cannot be read: it has a key `note` that no export filter has",
        ])
    }

    @Test("an entry that withholds more than the statement attests fails as statement-mismatch at its seq")
    func withheldMore() async throws {
        let b = try await bundles()
        try edit(b + "/entries.jsonl") {
            // Withhold seq 4's source: its leaf still verifies, but the auditor got less than attested.
            let line = String($0.split(separator: "\n")[1])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let commitment = try #require((object["source"] as? [String: Any])?["commitment"] as? String)
            let start = try #require(line.range(of: "\"source\":{"))
            let end = try #require(line[start.upperBound...].range(of: "}"))
            let changed = line.replacingCharacters(in: start.lowerBound..<end.upperBound,
                                                   with: "\"source\":{\"withheld\":true,\"commitment\":\"\(commitment)\"}")
            return $0.replacingOccurrences(of: line, with: changed)
        }
        #expect(pairs(try await verify(b)) == [
            "statement-mismatch@4: entry seq 4 withholds actor, source, but the statement attests that actor was withheld",
        ])
    }

    @Test("a statement copied from another export fails as statement-mismatch")
    func copiedStatement() async throws {
        let b = try await bundles()
        let tenantStatement30 = try String(contentsOfFile: b + "/statement.json", encoding: .utf8)
        // From an export of the same store and checkpoint with another filter.
        try FileManager.default.removeItem(atPath: b + "/statement.json")
        try FileManager.default.copyItem(atPath: dir.path("all") + "/statement.json", toPath: b + "/statement.json")
        // Each export's statement also signs its own creation time, which the manifest repeats.
        let copied = try await verify(b)
        #expect(pairs(copied).filter { $0.hasPrefix("statement-mismatch: createdAt: ") }.count == 1)
        #expect(pairs(copied).filter { !$0.hasPrefix("statement-mismatch: createdAt: ") } == [
            "statement-mismatch: filter: the manifest's filter differs from the one the statement signs (the selection was changed)",
            "statement-mismatch: entryCount: the statement signs 30 entries, the manifest states 10",
            "statement-mismatch: seqs: the manifest's seqs differ from the ones the statement signs (an entry was removed or added together with its seq)",
        ])
        // From the same filter's export against an older checkpoint.
        let store = try await AuditStore.open(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: (31...33).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        try await store.export(to: dir.path("new"), filter: ExportFilter(tenant: "tenant-1"), redact: [.actor], signer: signer)
        try await store.close()
        #expect(try await verify(dir.path("new")).isCompletenessAttested)
        try tenantStatement30.write(toFile: dir.path("new") + "/statement.json", atomically: false, encoding: .utf8)
        let older = try await verify(dir.path("new"))
        #expect(pairs(older).filter { $0.hasPrefix("statement-mismatch: createdAt: ") }.count == 1)
        #expect(pairs(older).filter { !$0.hasPrefix("statement-mismatch: createdAt: ") } == [
            // Seqs 31-33 are the three exports' access entries (FORMAT.md 23.4), 34-36 the new rows.
            "statement-mismatch: checkpoint: the statement binds another checkpoint (seq 30) than checkpoint.json (seq 36): it belongs to another export, or the checkpoint was replaced",
            "statement-mismatch: entryCount: the statement signs 10 entries, the manifest states 11",
            "statement-mismatch: seqs: the manifest's seqs differ from the ones the statement signs (an entry was removed or added together with its seq)",
        ])
    }

    @Test("a bit flip in the signature, or another key, fails as statement-invalid")
    func flippedSignature() async throws {
        let b = try await bundles()
        let file = b + "/statement.json"
        let original = try String(contentsOfFile: file, encoding: .utf8)
        try edit(file) { text in
            let at = try #require(text.range(of: "\"signature\":\"")).upperBound
            let digit = try #require(text[at].hexDigitValue)
            return text.replacingCharacters(in: at...at, with: String(digit ^ 1, radix: 16))
        }
        let result = try await verify(b)
        #expect(pairs(result) == ["statement-invalid: the export statement is invalid: its Ed25519 signature does not verify (the statement was changed or forged)"])
        #expect(!result.isCompletenessAttested)
        try original.write(toFile: file, atomically: false, encoding: .utf8)
        try edit(file) { $0.replacingOccurrences(of: "\"entryCount\":10", with: "\"entryCount\":11") }
        #expect(pairs(try await verify(b)).first == "statement-invalid: the export statement is invalid: its Ed25519 signature does not verify (the statement was changed or forged)")
        try original.write(toFile: file, atomically: false, encoding: .utf8)
        try edit(file) { "{" + $0.dropFirst(1).prefix(20) }
        #expect(try await verify(b).findings.map(\.kind) == [.statementInvalid])
    }

    @Test("a bundle without a statement is valid but unattested; --require-statement makes it statement-missing")
    func unattested() async throws {
        _ = try await bundles()
        let plain = try await verify(dir.path("plain"))
        #expect(plain.isValid && !plain.isCompletenessAttested && plain.statement == nil)
        #expect(plain.description.hasSuffix("\ncompleteness NOT attested: the bundle has no signed statement.json, so entries could have been left out together with their seqs"))
        let required = try await verify(dir.path("plain"), requireStatement: true)
        #expect(pairs(required) == ["statement-missing: the bundle has no statement.json, and a signed statement was required: nothing attests that the export is complete. Export it again with the checkpoint signing key (`auditdb export --signing-key FILE`)"])
    }

    @Test("the exporter refuses a signing key that did not sign the checkpoint")
    func wrongSigner() async throws {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: (1...3).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        await #expect { try await store.export(to: dir.path("x"), signer: try testSigner()) } throws: {
            ($0 as? AuditError)?.code == .invalidInput && ($0 as? AuditError)?.message.contains("does not hold the key that signed") == true
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path("x")))
        try await store.close()
    }

    @Test("the CLI: export --signing-key, verify-export [--require-statement]: exit 0 valid, 1 findings, 2 error")
    func commandLine() async throws {
        let cli = try cliPath()
        let keyFile = dir.path("k.keys"), path = dir.path("c.db"), secret = dir.path("c.key"), pub = dir.path("c.pub")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        try await makeStore(at: path, keys: keys, count: 15)
        #expect(try run(cli, ["checkpoint-key", "generate", "--out", secret, "--public-out", pub]).status == 0)
        #expect(try run(cli, ["checkpoint", "--store", path, "--key-file", keyFile, "--signing-key", secret]).status == 0)
        let signed = dir.path("signed"), plain = dir.path("plain")
        let common = ["--store", path, "--key-file", keyFile, "--tenant", "tenant-0", "--from-seq", "2", "--redact", "details"]
        let exported = try run(cli, ["export"] + common + ["--out", signed, "--signing-key", secret])
        #expect(exported.status == 0, "\(exported.stderr)")
        #expect(exported.stdout == "exported 5 entries to \(signed), proven against the checkpoint at seq 15\n"
            + "signed statement.json with checkpoint key version 1: it attests that these are all rows from seq 2 to seq 15 matching the filters\n"
            + "recorded in the log as access entry 16\n")
        let unsigned = try run(cli, ["export"] + common + ["--out", plain])
        #expect(unsigned.status == 0)
        // The first export's access entry (seq 16) is the row after the checkpoint that this one mentions.
        #expect(unsigned.stdout.hasSuffix("\nnote: no --signing-key, so no signed statement: a verifier can check each entry, but not that the export is complete\n"
            + "recorded in the log as access entry 17\n"
            + "note: 1 row(s) after seq 15 are not covered by a checkpoint and were not exported; run `auditdb checkpoint` first to include them\n"))
        let badKey = try run(cli, ["export"] + common + ["--out", dir.path("x"), "--signing-key", dir.path("nope.key")])
        #expect(badKey.status == 2 && !FileManager.default.fileExists(atPath: dir.path("x")))

        let ok = try run(cli, ["verify-export", signed, "--public-key", pub, "--require-statement"])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.hasPrefix("valid: 5 entries proven against checkpoint seq 15 of store "))
        #expect(ok.stdout.hasSuffix("\ncompleteness attested: a statement signed with checkpoint key version 1 says these are all rows from seq 2 to seq 15 that match the manifest's filter (withheld: details)\n"))
        let unattested = try run(cli, ["verify-export", plain, "--public-key", pub])
        #expect(unattested.status == 0)
        #expect(unattested.stdout.hasSuffix("\ncompleteness NOT attested: the bundle has no signed statement.json, so entries could have been left out together with their seqs\n"))
        let required = try run(cli, ["verify-export", plain, "--public-key", pub, "--require-statement"])
        #expect(required.status == 1)
        #expect(required.stdout == "EXPORT INVALID: 1 finding(s)\n  statement-missing: the bundle has no statement.json, and a signed statement was required: nothing attests that the export is complete. Export it again with the checkpoint signing key (`auditdb export --signing-key FILE`)\n")

        // Remove seq 3's entry and its seq from the manifest, fixing entryCount.
        try edit(signed + "/manifest.json") { $0.replacingOccurrences(of: "\"entryCount\":5,\"seqs\":[3,", with: "\"entryCount\":4,\"seqs\":[") }
        try edit(signed + "/entries.jsonl") { String($0.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().joined(separator: "\n")) }
        let bad = try run(cli, ["verify-export", signed, "--public-key", pub])
        #expect(bad.status == 1)
        // The CLI writes format v2 (FORMAT.md 17.5): its multiproof was made for the five seqs, so
        // it no longer fits the four left (in v1 each entry carries its own proof and still verifies).
        #expect(bad.stdout == "EXPORT INVALID: 3 finding(s)\n"
            + "  statement-mismatch: entryCount: the statement signs 5 entries, the manifest states 4\n"
            + "  statement-mismatch: seqs: the manifest's seqs differ from the ones the statement signs (an entry was removed or added together with its seq)\n"
            + "  proof-invalid: multiproof.bin holds 7 hashes; the 4 entries in a tree of 15 leaves need exactly 6 (hashes were added or removed)\n")
        #expect(try run(cli, ["verify-export", dir.path("nope"), "--public-key", pub]).status == 2)
        #expect(try run(cli, ["verify-export", signed, "--public-key", dir.path("nope.pub")]).status == 2)
    }

    @Test("the independent Python verifier agrees on a statement bundle: attested, then each tampering found")
    func pythonAgrees() async throws {
        let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let python else {
            Issue.record("python3 is not installed; it is needed to run the independent verifier")
            return
        }
        let script = FormatVectorTests.root.appendingPathComponent("docs/verifier/auditdb_verify_export.py").path
        let b = try await bundles()
        try signer.publicKeys.write(to: dir.path("c.pub"))
        func py(_ bundle: String, _ extra: [String] = []) throws -> ProcessResult {
            try run(python, [script, bundle, "--public-key", dir.path("c.pub")] + extra)
        }
        let ok = try py(b, ["--require-statement"])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout == "valid: 10 entries\ncompleteness attested: signed statement (key version 1): all rows up to seq 30 that match the filter (withheld: actor)\n")
        let plain = try py(dir.path("plain"))
        #expect(plain.status == 0 && plain.stdout == "valid: 10 entries\ncompleteness NOT attested: the bundle has no signed statement.json\n")
        let required = try py(dir.path("plain"), ["--require-statement"])
        #expect(required.status == 1 && required.stdout.contains("  statement-missing: "))
        try edit(b + "/manifest.json") {
            $0.replacingOccurrences(of: "\"entryCount\":10,\"seqs\":[1,4,7,10,", with: "\"entryCount\":9,\"seqs\":[1,4,7,")
        }
        let lines = try String(contentsOfFile: b + "/entries.jsonl", encoding: .utf8).split(separator: "\n")
        try (lines.enumerated().filter { $0.offset != 3 }.map { $0.element + "\n" }.joined())
            .write(toFile: b + "/entries.jsonl", atomically: false, encoding: .utf8)
        let swift = try await verify(b)
        let removed = try py(b)
        #expect(removed.status == 1)
        #expect(removed.stdout == "EXPORT INVALID: \(swift.findings.count) finding(s)\n" + swift.findings.map { "  \($0)\n" }.joined())
        try edit(b + "/manifest.json") { $0.replacingOccurrences(of: "\"tenant\":\"tenant-1\"", with: "\"tenant\":\"tenant-2\"") }
        let swift2 = try await verify(b)
        let filtered = try py(b)
        #expect(filtered.stdout == "EXPORT INVALID: \(swift2.findings.count) finding(s)\n" + swift2.findings.map { "  \($0)\n" }.joined())
        #expect(swift2.findings.count == 3)
    }
}
