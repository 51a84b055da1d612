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
            try (edited + "\n").write(toFile: dir.path("bundle") + "/checkpoint.json", atomically: false, encoding: .utf8)
            let result = try await ExportBundle.verify(at: dir.path("bundle"), publicKeys: signer.publicKeys)
            #expect(result.findings.map(\.kind) == [.checkpointInvalid], "\(field)")
            // The independent verifier applies the same rule.
            let independent = try run(python, ["python3", script, dir.path("bundle"), "--public-key", dir.path("c.pub")])
            #expect(independent.status == 1, "\(field): \(independent.stdout)\(independent.stderr)")
            #expect(independent.stdout.contains("checkpoint-invalid"), "\(field): \(independent.stdout)")
        }
    }

    @Test("Ed25519 as strict as libsodium: a small-order key with R the identity and S = 0 never verifies; nor S + L")
    func strictEd25519() throws {
        let identity = [UInt8(1)] + [UInt8](repeating: 0, count: 31)
        // [0]B = R + [k]A holds for any message here: plain RFC 8032 code accepts it.
        #expect(!CheckpointPublicKey(version: 1, bytes: identity).isValidSignature(identity + [UInt8](repeating: 0, count: 32),
                                                                                      of: Array("any message".utf8)))
        let key = try CheckpointSigningKey.generate(version: 1)
        let message = Array("checkpoint".utf8)
        let signature = key.sign(message)
        #expect(key.publicKey.isValidSignature(signature, of: message))
        // S + L (the group order) is the same scalar mod L: refused, so signatures cannot be altered.
        let order: [UInt8] = [0xED, 0xD3, 0xF5, 0x5C, 0x1A, 0x63, 0x12, 0x58, 0xD6, 0x9C, 0xF7, 0xA2, 0xDE, 0xF9, 0xDE, 0x14,
                              0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]
        var s = Array(signature[32...]), carry = 0
        for i in 0..<32 {
            let sum = Int(s[i]) + Int(order[i]) + carry
            s[i] = UInt8(sum & 0xFF)
            carry = sum >> 8
        }
        #expect(!key.publicKey.isValidSignature(Array(signature[..<32]) + s, of: message))
    }
}
