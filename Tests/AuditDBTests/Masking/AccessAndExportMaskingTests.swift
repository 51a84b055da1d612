import Foundation
import Testing

@testable import AuditDB

/// Access entries for exports and queries (docs/FORMAT.md section 23.4), and masked exports
/// (section 17.5): withheld in the proof, the masked rendering unproven, and still verifying with
/// the public key alone.
@Suite("Access entries and masked exports")
struct AccessAndExportMaskingTests {
    let dir: TempDir
    let keys: KeyRing

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
    }

    func storeWithCheckpoint(_ signer: CheckpointSigner) async throws -> AuditStore {
        let store = try await AuditStore.create(at: dir.path("store.db"), keys: keys)
        try await store.append(contentsOf: (1...6).map { i in
            AuditEvent(actor: "jane.doe@example.com", action: "read", tenant: i % 2 == 0 ? "acme" : "other", source: "203.0.113.\(i)",
                       details: AuditDetails(json: #"{"email":"jane.doe@example.com","n":\#(i)}"#))
        })
        try await store.checkpoint(signer: signer)
        return store
    }

    @Test("an export records who took which filter: conditions and hashes, never the values")
    func exportAccessEntry() async throws {
        let signer = try testSigner()
        let store = try await storeWithCheckpoint(signer)
        let summary = try await store.export(to: dir.path("b"), filter: ExportFilter(tenant: "acme"), redact: [.source], signer: signer,
                                             accessBy: "auditor:kim")
        #expect(summary.accessSeq == 7)
        let entry = try await store.entries(EntryQuery(seqs: 7...7)).first!
        #expect(entry.action == "auditdb.access" && entry.actor == "auditor:kim" && entry.resourceType == "export")
        let manifest = try Data(contentsOf: URL(fileURLWithPath: dir.path("b/manifest.json")))
        let manifestHash = Hex.encode(ExportStatement.sha256(Array(manifest)))
        // A tenant may name a person: no hash of the filter, nor of the manifest that holds it
        // (either would confirm a guessed name).
        #expect(entry.detailsJSON == #"{"checkpointSeq":6,"conditions":["tenant"],"entryCount":3,"kind":"export","masked":[],"statement":true}"#)
        #expect(entry.detailsJSON?.contains(manifestHash) == false)
        #expect(entry.detailsJSON?.contains("acme") == false)
        // A filter that names no one (an action and a time) is hashed as the statement's filterHash.
        let byAction = try await store.export(to: dir.path("c"), filter: ExportFilter(action: "read", recordedFrom: AuditTimestamp(microsecondsSinceEpoch: 0)),
                                              signer: signer, accessBy: "auditor:kim")
        let second = try await store.entries(EntryQuery(seqs: byAction.accessSeq!...byAction.accessSeq!)).first!
        #expect(second.detailsJSON?.contains(#""filterSha256":"\#(Hex.encode(byAction.statement!.filterHash))""#) == true, "\(second.detailsJSON ?? "")")
        let secondManifest = Hex.encode(ExportStatement.sha256(Array(try Data(contentsOf: URL(fileURLWithPath: dir.path("c/manifest.json"))))))
        #expect(second.detailsJSON?.contains(#""manifestSha256":"\#(secondManifest)""#) == true)
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("who asks is checked before any work: a bad --by writes no bundle, no report and no entry")
    func requesterCheckedFirst() async throws {
        let signer = try testSigner()
        let store = try await storeWithCheckpoint(signer)
        do {
            _ = try await store.export(to: dir.path("bad"), accessBy: "kim\u{1B}[2J")
            Issue.record("an export by a name with an escape sequence was made")
        } catch let error as AuditError {
            #expect(error.code == .invalidInput && error.message.hasPrefix("accessBy: contains a control character"))
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path("bad")))
        do {
            _ = try await store.complianceReport(signer: signer, options: ComplianceReportOptions(requestedBy: ""))
            Issue.record("a report for an empty name was made")
        } catch let error as AuditError {
            #expect(error.message == "requestedBy: must not be empty: name who does it")
        }
        #expect(try await store.lastSeq() == 6)
        try await store.close()
    }

    @Test("a query's access entry: kind query, the conditions, the rules and the count; the filter hash only for a filter that names no one")
    func queryAccessEntry() async throws {
        let store = try await storeWithCheckpoint(try testSigner())
        let filter = ExportFilter(actor: "jane.doe@example.com")
        let policy = try MaskingPolicy(rules: [MaskRule(parsing: "actor=partial")])
        let seq = try await store.recordQueryAccess(filter: filter, masking: policy, entries: 6, by: "analyst:lee")
        let entry = try await store.entries(EntryQuery(seqs: seq...seq)).first!
        // No hash of a filter naming an actor: it would confirm a guessed name, erased or not.
        #expect(entry.detailsJSON == #"{"conditions":["actor"],"entryCount":6,"kind":"query","masked":["actor=partial"]}"#)
        #expect(entry.actor == "analyst:lee" && entry.resourceType == "query")
        var byResource = ExportFilter(), byCorrelation = ExportFilter()
        byResource.resourceId = "r"
        byCorrelation.correlationId = "c"
        for named in [ExportFilter(tenant: "t"), byResource, byCorrelation] {
            let other = try await store.recordQueryAccess(filter: named, entries: 1, by: "analyst:lee")
            #expect(try await store.entries(EntryQuery(seqs: other...other)).first?.detailsJSON?.contains("filterSha256") == false)
        }
        var plain = ExportFilter(action: "read")
        plain.outcome = .denied
        let plainSeq = try await store.recordQueryAccess(filter: plain, entries: 2, by: "analyst:lee")
        let hash = Hex.encode(ExportStatement.sha256(plain.encoding(redact: [])))
        #expect(try await store.entries(EntryQuery(seqs: plainSeq...plainSeq)).first?.detailsJSON
            == #"{"conditions":["action","outcome"],"entryCount":2,"filterSha256":"\#(hash)","kind":"query","masked":[]}"#)
        try await store.close()
    }

    @Test("a masked export withholds the masked fields, carries the renderings unproven, and verifies with the public key")
    func maskedExport() async throws {
        let signer = try testSigner()
        let store = try await storeWithCheckpoint(signer)
        let policy = try MaskingPolicy(rules: [MaskRule(parsing: "actor=partial"), MaskRule(parsing: "details.email=partial")])
        let summary = try await store.export(to: dir.path("m"), filter: ExportFilter(tenant: "acme"), signer: signer, masking: policy)
        let lines = try String(contentsOfFile: dir.path("m/entries.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        let first = String(lines[0])
        #expect(first.contains(#""actor":{"withheld":true,"commitment":""#))
        #expect(first.contains(#","masked":{"rules":["actor=partial"],"shown":"j***@example.com","proven":false}}"#))
        #expect(first.contains(#""masked":{"rules":["details.email=partial"],"shown":"{\"email\":{\"masked\":\"partial\",\"value\":\"j***@example.com\"},\"n\":2}","proven":false}"#))
        #expect(!first.contains("jane.doe"))
        let manifest = try String(contentsOfFile: dir.path("m/manifest.json"), encoding: .utf8)
        #expect(manifest.contains(#""redacted":["actor","details"]"#))
        let verified = try await ExportBundle.verify(at: dir.path("m"), publicKeys: signer.publicKeys, requireStatement: true)
        #expect(verified.isValid && verified.entriesVerified == 3, "\(verified)")
        let access = try await store.entries(EntryQuery(seqs: summary.accessSeq!...summary.accessSeq!)).first!
        #expect(access.detailsJSON?.contains(#""masked":["actor=partial","details.email=partial"]"#) == true)

        // The rendering is not proven: changing it still verifies; changing what is proven does not.
        let entries = dir.path("m/entries.jsonl")
        let original = try String(contentsOfFile: entries, encoding: .utf8)
        try original.replacingOccurrences(of: "\"shown\":\"j***@example.com\"", with: "\"shown\":\"someone else\"")
            .write(toFile: entries, atomically: false, encoding: .utf8)
        #expect(try await ExportBundle.verify(at: dir.path("m"), publicKeys: signer.publicKeys).isValid)
        try original.replacingOccurrences(of: "\"proven\":false}}", with: "\"proven\":true}}")
            .write(toFile: entries, atomically: false, encoding: .utf8)
        let claimed = try await ExportBundle.verify(at: dir.path("m"), publicKeys: signer.publicKeys)
        #expect(claimed.findings.map { "\($0.kind) \($0.seq.map(String.init) ?? "-")" } == ["bundle-malformed 2", "bundle-malformed 4", "bundle-malformed 6"])
        // The Python verifier agrees on the intact bundle.
        try original.write(toFile: entries, atomically: false, encoding: .utf8)
        let python = try run("/usr/bin/env", ["python3", repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify_export.py").path,
                                              dir.path("m"), "--public-key", try publicKeyFile(signer), "--require-statement"])
        #expect(python.status == 0 && python.stdout.hasPrefix("valid: 3 entries\n"), "\(python.stdout)\(python.stderr)")
        try await store.close()
    }

    @Test("a field given to redact is withheld whole: no masked rendering of it, whatever the masking rules")
    func redactWinsOverMaskedRendering() async throws {
        let signer = try testSigner()
        let store = try await storeWithCheckpoint(signer)
        let policy = try MaskingPolicy(rules: [MaskRule(parsing: "details.email=partial"), MaskRule(parsing: "source=partial")])
        _ = try await store.export(to: dir.path("r"), filter: ExportFilter(seqs: 1...1), redact: [.details], signer: signer, masking: policy)
        let line = try String(contentsOfFile: dir.path("r/entries.jsonl"), encoding: .utf8)
        // details: the commitment and nothing after it; source: withheld with its rendering.
        let details = try #require(line.components(separatedBy: #""details":{"withheld":true,"commitment":""#).last)
        #expect(details.dropFirst(64).hasPrefix(#""},"#))
        #expect(line.contains(#""source":{"withheld":true,"commitment":""#) && line.contains(#""shown":"2***1","proven":false}"#))
        #expect(!line.contains(#""rules":["details"#))
        #expect(try await ExportBundle.verify(at: dir.path("r"), publicKeys: signer.publicKeys, requireStatement: true).isValid)
        try await store.close()
    }

    func publicKeyFile(_ signer: CheckpointSigner) throws -> String {
        let path = dir.path("ckpt.pub")
        try signer.publicKeys.write(to: path)
        return path
    }
}
