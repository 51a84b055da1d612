import Foundation
import Testing

@testable import AuditDB

/// Nothing unsigned in a checkpoint may mislead a reader: its only unsigned field, timeText,
/// must be the signed time, and no other field may be added.
@Suite("Checkpoint JSON: nothing unproven")
struct CheckpointJSONTests {
    @Test("an edited timeText or an added field makes the checkpoint invalid, in a bundle too")
    func unprovenFields() async throws {
        let dir = try TempDir()
        let signer = try testSigner()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        try await store.append(contentsOf: (1...5).map { sampleEvent($0) })
        let checkpoint = try await store.checkpoint(signer: signer)
        _ = try await store.export(to: dir.path("bundle"))
        try await store.close()
        try signer.publicKeys.write(to: dir.path("c.pub"))
        let python = "/usr/bin/env"
        let script = repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify_export.py").path
        let json = checkpoint.json
        #expect(try Checkpoint(json: Data(json.utf8)) == checkpoint)
        let edits = [
            ("timeText", json.replacingOccurrences(of: "\"timeText\":\"\(checkpoint.time.iso8601)\"", with: "\"timeText\":\"2001-01-01T00:00:00.000000Z\"")),
            ("approvedBy", json.replacingOccurrences(of: "{\"format\"", with: "{\"approvedBy\":\"the CEO\",\"format\"")),
        ]
        for (field, edited) in edits {
            #expect(edited != json)
            #expect { _ = try Checkpoint(json: Data(edited.utf8)) } throws: { ($0 as? AuditError)?.field == field }
            try (edited + "\n").write(toFile: dir.path("bundle") + "/checkpoint.json", atomically: true, encoding: .utf8)
            let result = try await ExportBundle.verify(at: dir.path("bundle"), publicKeys: signer.publicKeys)
            #expect(result.findings.map(\.kind) == [.checkpointInvalid], "\(field)")
            // The independent verifier applies the same rule.
            let independent = try run(python, ["python3", script, dir.path("bundle"), "--public-key", dir.path("c.pub")])
            #expect(independent.status == 1, "\(field): \(independent.stdout)\(independent.stderr)")
            #expect(independent.stdout.contains("checkpoint-invalid"), "\(field): \(independent.stdout)")
        }
    }
}
