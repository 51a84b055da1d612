import Foundation
import Testing

@testable import AuditDB

/// A bundle holds only what is proven (or recomputed): anything added beside the proven fields
/// would be read as part of the evidence, so it makes the bundle invalid. Found by the bundle
/// mutation fuzz test (FuzzTests.exportBundles).
@Suite("Export bundles: nothing unproven", .v1Bundles)
struct ExportStrictnessTests {
    let dir: TempDir
    let signer: CheckpointSigner

    init() throws {
        dir = try TempDir()
        signer = try testSigner()
    }

    /// Two bundles of tenant-1 with actor withheld: "plain" (no statement) and "signed".
    func bundles() async throws -> (plain: String, signed: String) {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        try await store.append(contentsOf: (1...12).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        try await store.export(to: dir.path("plain"), filter: ExportFilter(tenant: "tenant-1"), redact: [.actor])
        try await store.export(to: dir.path("signed"), filter: ExportFilter(tenant: "tenant-1"), redact: [.actor], signer: signer)
        try await store.close()
        return (dir.path("plain"), dir.path("signed"))
    }

    func edit(_ path: String, _ change: (String) -> String) throws {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let changed = change(text)
        #expect(changed != text, "the edit changed nothing")
        try changed.write(toFile: path, atomically: false, encoding: .utf8)
    }

    /// The engine's findings; the independent Python verifier must print the same ones.
    func findings(_ bundle: String) async throws -> [String] {
        let engine = try await ExportBundle.verify(at: bundle, publicKeys: signer.publicKeys).findings
        let publicKey = dir.path("c.pub")
        if !FileManager.default.fileExists(atPath: publicKey) { try signer.publicKeys.write(to: publicKey) }
        let script = repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify_export.py").path
        let python = try run("/usr/bin/env", ["python3", script, bundle, "--public-key", publicKey])
        let printed = engine.map { "  \($0.kind)\($0.seq.map { " at seq \($0)" } ?? ""): \($0.message)" }
        #expect(python.status == (engine.isEmpty ? 0 : 1), "\(python.stdout)\(python.stderr)")
        if !engine.isEmpty {
            #expect(python.stdout.split(separator: "\n").dropFirst().map(String.init) == printed)
        }
        return engine.map { "\($0.kind)@\($0.seq.map(String.init) ?? "-"): \($0.message)" }
    }

    @Test("an entry with an added field, or a withheld field that also shows a value, is malformed")
    func entryExtras() async throws {
        let (plain, _) = try await bundles()
        let entries = plain + "/entries.jsonl"
        let original = try String(contentsOfFile: entries, encoding: .utf8)
        try edit(entries) { $0.replacingOccurrences(of: "{\"seq\":1,", with: "{\"seq\":1,\"approvedBy\":\"the CEO\",") }
        #expect(try await findings(plain) == [#"bundle-malformed@1: entry seq 1: unknown field "approvedBy"; an entry holds only its proven fields"#])
        try original.write(toFile: entries, atomically: false, encoding: .utf8)
        try edit(entries) { $0.replacingOccurrences(of: "\"withheld\":true,", with: "\"withheld\":true,\"value\":\"mallory\",") }
        #expect(try await findings(plain).first == #"bundle-malformed@1: entry seq 1: field actor has an unexpected key "value""#)
    }

    @Test("a NULL field shown with a nonce is malformed: a NULL has no nonce, so the nonce would be unproven")
    func nullWithNonce() async throws {
        let store = try await AuditStore.create(at: dir.path("n.db"), keys: try testKeyRing())
        try await store.append(AuditEvent(actor: "a", action: "read"))
        try await store.checkpoint(signer: signer)
        let bundle = dir.path("null")
        try await store.export(to: bundle)
        try await store.close()
        try edit(bundle + "/entries.jsonl") {
            $0.replacingOccurrences(of: "\"source\":{\"value\":null,", with: "\"source\":{\"value\":null,\"nonce\":\"\(String(repeating: "0", count: 64))\",")
        }
        #expect(try await findings(bundle) == [#"bundle-malformed@1: entry seq 1: field source has an unexpected key "nonce""#])
    }

    @Test("a manifest with an added field, an unknown redacted name, or entries that withhold other fields")
    func manifestExtras() async throws {
        let (plain, _) = try await bundles()
        let manifest = plain + "/manifest.json"
        let original = try String(contentsOfFile: manifest, encoding: .utf8)
        try edit(manifest) { $0.replacingOccurrences(of: "{\"format\"", with: "{\"note\":\"complete\",\"format\"") }
        #expect(try await findings(plain) == [#"bundle-malformed@-: manifest.json has an unknown field "note""#])
        try original.write(toFile: manifest, atomically: false, encoding: .utf8)
        try edit(manifest) { $0.replacingOccurrences(of: "\"redacted\":[\"actor\"]", with: "\"redacted\":[\"act=r\"]") }
        #expect(try await findings(plain) == ["bundle-malformed@-: manifest.json: redacted must list distinct field names among actor, source, details"])
        try original.write(toFile: manifest, atomically: false, encoding: .utf8)
        // Without a statement, the manifest's redaction set must still match every entry.
        try edit(manifest) { $0.replacingOccurrences(of: "\"redacted\":[\"actor\"]", with: "\"redacted\":[]") }
        let mismatches = try await findings(plain)
        #expect(mismatches.count == 4)
        #expect(mismatches.first == "manifest-mismatch@1: entry seq 1 withholds actor, but the manifest says none was withheld")
    }

    @Test("a statement with an added field is invalid; the manifest's createdAt must be the signed one")
    func statementExtras() async throws {
        let (_, signed) = try await bundles()
        let statement = signed + "/statement.json"
        let original = try String(contentsOfFile: statement, encoding: .utf8)
        try edit(statement) { $0.replacingOccurrences(of: "{\"format\"", with: "{\"scope\":\"all tenants\",\"format\"") }
        #expect(try await findings(signed) == [#"statement-invalid@-: statement.json: export statement has an unknown field "scope"; it holds only its signed fields"#])
        try original.write(toFile: statement, atomically: false, encoding: .utf8)
        #expect(try await findings(signed).isEmpty)
        try edit(signed + "/manifest.json") { text in
            text.replacingOccurrences(of: #""createdAt":(\d+)"#, with: "\"createdAt\":1", options: .regularExpression)
        }
        let found = try await findings(signed)
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("statement-mismatch@-: createdAt: the statement signs ") == true)
        #expect(found.first?.hasSuffix(", the manifest states 1") == true)
    }
}
