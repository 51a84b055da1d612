import Foundation
import Testing

@_spi(Testing) @testable import AuditDB

/// The independent Python verifiers (docs/verifier/, written from FORMAT.md alone) agree with the
/// engine on a store with erased fields, intact and damaged, and on an export of it.
@Suite("Erasure: the Python verifiers agree")
struct ErasureAgreementTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let name: String
        let sql: String?
        var testDescription: String { name }
    }

    static let triggersOff = "DROP TRIGGER audit_entries_no_update; DROP TRIGGER audit_entries_no_delete; "
    static let cases: [Case] = [
        Case(name: "intact", sql: nil),
        Case(name: "an erased commitment changed",
             sql: triggersOff + "UPDATE audit_entries SET seals = CAST(substr(seals, 1, 5) || X'00' || substr(seals, 7) AS BLOB) WHERE seq = 8;"),
        Case(name: "a value put back next to erased seals", sql: triggersOff + "UPDATE audit_entries SET actor = 'x' WHERE seq = 8;"),
        Case(name: "a value put back with fresh seals",
             sql: triggersOff + "UPDATE audit_entries SET actor = 'x', seals = CAST(X'00' || randomblob(32) AS BLOB) WHERE seq = 8;"),
        Case(name: "a fresh row's seals changed",
             sql: triggersOff + "UPDATE audit_entries SET seals = CAST(X'00' || randomblob(32) AS BLOB) WHERE seq = 9;"),
        Case(name: "the erasure entry changed", sql: triggersOff + "UPDATE audit_entries SET details = '{}' WHERE seq = 21;"),
        Case(name: "the erasure entry deleted", sql: triggersOff + "DELETE FROM audit_entries WHERE seq = 21;"),
        // Row 20's MAC fails, so a sequential pass does not check 21's link against it: the
        // erasure entry still counts (mac-mismatch at 20 only, not erasure-tampered at 3, 8, 13).
        Case(name: "the row before the erasure entry changed", sql: triggersOff + "UPDATE audit_entries SET mac = zeroblob(32) WHERE seq = 20;"),
        Case(name: "the row before the erasure entry with a short MAC", sql: triggersOff + "UPDATE audit_entries SET mac = zeroblob(31) WHERE seq = 20;"),
        // Link halves (mac[16..32)) zeroed: each such row fails its own link only if the row
        // before it passed. Rows 18-20: 18 fails, 19 is not checked, 20 fails, so 21 is not
        // checked and the entry counts. Rows 19-20: 19 fails, 20 is not checked, 21's link
        // against 20's changed MAC fails, so the entry does not count (rule 2 at 3, 8, 13).
        Case(name: "the link halves of rows 18-20 changed",
             sql: triggersOff + "UPDATE audit_entries SET mac = CAST(substr(mac, 1, 16) || X'00000000000000000000000000000000' AS BLOB) WHERE seq BETWEEN 18 AND 20;"),
        Case(name: "the link halves of rows 19-20 changed",
             sql: triggersOff + "UPDATE audit_entries SET mac = CAST(substr(mac, 1, 16) || X'00000000000000000000000000000000' AS BLOB) WHERE seq BETWEEN 19 AND 20;"),
    ]

    @Test("the same findings (kind and seqs) from both store verifiers", arguments: cases)
    func agree(_ c: Case) async throws {
        let dir = try TempDir()
        let keyPath = dir.path("k.keys")
        let keys = try KeyFile.generate(at: keyPath)
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...20).map { sampleEvent($0) })
        _ = try await store.erase(.seqs([3, 8, 13]), fields: [.actor, .details], reason: "TICKET-9")
        try await store.append(sampleEvent(22))
        try await store.close()
        if let sql = c.sql { try sqlite3Must(path, sql) }
        let ours = try await AuditStore.verify(storeAt: path, keys: keys)
        let verifier = repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify.py").path
        let theirs = try run("/usr/bin/env", ["python3", verifier, "--store", path, "--key-file", keyPath, "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(theirs.stdout.utf8)) as? [String: Any], "\(theirs.stderr)")
        let findings = try #require(json["findings"] as? [[String: Any]])
        func describe(_ kind: String, _ first: Int64?, _ last: Int64?) -> String { "\(kind) \(first.map(String.init) ?? "-")...\(last.map(String.init) ?? "-")" }
        let python = findings.map { f in
            describe(f["kind"] as? String ?? "?", (f["first_seq"] as? NSNumber)?.int64Value, (f["last_seq"] as? NSNumber)?.int64Value)
        }
        let swift = ours.findings.map { describe($0.kind.name, $0.seqs?.lowerBound, $0.seqs?.upperBound) }
        #expect(python == swift, "python: \(python)\nswift: \(swift)")
        #expect(ours.isIntact == (c.sql == nil))
    }

    @Test("an export of erased rows (some fields also redacted) is valid for the Python export verifier too",
          arguments: ExportBundle.Format.allCases)
    func exportAgrees(format: ExportBundle.Format) async throws {
        let dir = try TempDir()
        let signer = try testSigner()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        try await store.append(contentsOf: (1...10).map { sampleEvent($0) })
        _ = try await store.erase(.seqs([2, 5]), fields: [.actor, .details], reason: "TICKET-10")
        _ = try await store.checkpoint(signer: signer)
        _ = try await ExportBundle.formatWritten.withValue(format) {
            try await store.export(to: dir.path("b"), redact: [.details], signer: signer)
        }
        try await store.close()
        let ours = try await ExportBundle.verify(at: dir.path("b"), publicKeys: signer.publicKeys, requireStatement: true)
        #expect(ours.isValid && ours.entriesVerified == 11, "\(ours)")
        try signer.publicKeys.write(to: dir.path("c.pub"))
        let script = repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify_export.py").path
        let theirs = try run("/usr/bin/env", ["python3", script, dir.path("b"), "--public-key", dir.path("c.pub"), "--require-statement"])
        #expect(theirs.status == 0 && theirs.stdout.hasPrefix("valid: 11 entries\n"), "\(theirs.stdout)\(theirs.stderr)")
        // The v2 statement attests the erased fields (FORMAT.md 17.3): nothing is named unproven.
        #expect(ours.statement?.erasedHash != nil && ours.entriesShowingErased == [])
        #expect(!ours.description.contains("NOT proven") && !theirs.stdout.contains("NOT proven"), "\(ours)\n\(theirs.stdout)")
        let statementText = try String(contentsOfFile: dir.path("b") + "/statement.json", encoding: .utf8)
        #expect(statementText.hasPrefix(#"{"format":"auditdb-export-statement v2","#) && statementText.contains(#""erasedHash":""#))
        let lines = try String(contentsOfFile: dir.path("b") + "/entries.jsonl", encoding: .utf8)
        if format == .v1 {
            #expect(lines.contains(#""details":{"erased":true,"commitment":""#) && lines.contains(#""details":{"withheld":true,"commitment":""#))
        } else {
            #expect(lines.contains(#",{"erased":""#) && lines.contains(#",{"withheld":""#))  // FORMAT.md 17.5
        }
    }

    @Test("a shown or withheld field relabelled erased after signing: the v2 statement's erasedHash no longer matches, for both verifiers; under a v1 statement it verifies and both name the entries as unproven (FORMAT.md 21.5)",
          arguments: ["shown", "withheld"])
    func relabelledFieldIsCaught(_ what: String) async throws {
        let dir = try TempDir()
        let signer = try testSigner()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        try await store.append(contentsOf: (1...6).map { sampleEvent($0) })
        _ = try await store.erase(.seqs([2]), fields: [.details], reason: "TICKET-11")
        _ = try await store.checkpoint(signer: signer)
        _ = try await ExportBundle.formatWritten.withValue(.v1) {
            try await store.export(to: dir.path("b"), redact: what == "withheld" ? [.actor] : [], signer: signer)
        }
        try await store.close()
        let file = dir.path("b") + "/entries.jsonl"
        var lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let index = try #require(lines.firstIndex { $0.hasPrefix(#"{"seq":4,"#) })
        let field = what == "shown"
            ? #/"actor":\{"value":"user-4","nonce":"[0-9a-f]{64}","commitment":("[0-9a-f]{64}")\}/#
            : #/"actor":\{"withheld":true,"commitment":("[0-9a-f]{64}")\}/#
        let match = try #require(lines[index].firstMatch(of: field))
        lines[index].replaceSubrange(match.range, with: #""actor":{"erased":true,"commitment":"# + match.output.1 + "}")
        try lines.joined(separator: "\n").write(toFile: file, atomically: false, encoding: .utf8)
        try signer.publicKeys.write(to: dir.path("c.pub"))
        let script = repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify_export.py").path
        let message = "erased: the fields the entries show as erased differ from the ones the statement signs (a shown or withheld field was relabelled erased, or an erased one relabelled)"
        let ours = try await ExportBundle.verify(at: dir.path("b"), publicKeys: signer.publicKeys, requireStatement: true)
        #expect(ours.findings.map(\.kind) == [.statementMismatch] && ours.findings.first?.message == message, "\(ours)")
        let theirs = try run("/usr/bin/env", ["python3", script, dir.path("b"), "--public-key", dir.path("c.pub"), "--require-statement"])
        #expect(theirs.status == 1 && theirs.stdout == "EXPORT INVALID: 1 finding(s)\n  statement-mismatch: \(message)\n", "\(theirs.stdout)\(theirs.stderr)")

        // The same bundle under a v1 statement (as AuditDB wrote before statement v2): valid, the
        // erased labels named as unproven.
        let v2 = try ExportStatement(json: Data(contentsOf: URL(fileURLWithPath: dir.path("b") + "/statement.json")))
        let unsigned = ExportStatement(storeID: v2.storeID, checkpointSeq: v2.checkpointSeq, checkpointHash: v2.checkpointHash,
                                       filterHash: v2.filterHash, entryCount: v2.entryCount, seqsHash: v2.seqsHash,
                                       createdAt: v2.createdAt, keyVersion: v2.keyVersion, publicKey: v2.publicKey, signature: [])
        let v1 = ExportStatement(storeID: v2.storeID, checkpointSeq: v2.checkpointSeq, checkpointHash: v2.checkpointHash,
                                 filterHash: v2.filterHash, entryCount: v2.entryCount, seqsHash: v2.seqsHash,
                                 createdAt: v2.createdAt, keyVersion: v2.keyVersion, publicKey: v2.publicKey,
                                 signature: signer.signingKey.sign(unsigned.message))
        #expect(v1.message.count == 180 && v2.message.count == 212)
        try FileManager.default.removeItem(atPath: dir.path("b") + "/statement.json")
        try Data((v1.json + "\n").utf8).write(to: URL(fileURLWithPath: dir.path("b") + "/statement.json"))
        let legacy = try await ExportBundle.verify(at: dir.path("b"), publicKeys: signer.publicKeys, requireStatement: true)
        #expect(legacy.isValid && legacy.isCompletenessAttested && legacy.entriesShowingErased == [2, 4], "\(legacy)")
        let theirsLegacy = try run("/usr/bin/env", ["python3", script, dir.path("b"), "--public-key", dir.path("c.pub"), "--require-statement"])
        #expect(theirsLegacy.status == 0, "\(theirsLegacy.stdout)\(theirsLegacy.stderr)")
        for output in [legacy.description, theirsLegacy.stdout] {
            #expect(output.contains("erased fields NOT proven: 2 entries show fields as erased (first: seq 2)"), "\(output)")
        }
    }
}
