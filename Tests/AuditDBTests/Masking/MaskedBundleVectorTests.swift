import CAuditCore
import Foundation
import Testing

@testable import AuditDB

/// docs/test-vectors/bundle-masked/ (FORMAT.md 17.6), written by the Python verifier from the text
/// alone: the engine verifies it with the public key, and renders the same unproven display.
@Suite("Format: the masked bundle vector")
struct MaskedBundleVectorTests {
    let vectors = repositoryRoot.appendingPathComponent("docs/test-vectors")

    @Test("bundle-masked verifies with the public key alone, and its masked rendering is the engine's")
    func maskedBundle() async throws {
        let keys = try CheckpointPublicKeys.load(path: vectors.appendingPathComponent("checkpoint.pub").path)
        let result = try await ExportBundle.verify(at: vectors.appendingPathComponent("bundle-masked").path, publicKeys: keys,
                                                   requireStatement: true)
        #expect(result.isValid && result.entriesVerified == 2, "\(result)")
        // Row 2's stored details (vectors.json) masked by details.reason=partial, as an exporter writes it.
        let stored = #"{"attempt":2,"reason":"résumé locked 🔒"}"#
        var bytes = Array(stored.utf8)
        let policy = try MaskingPolicy(rules: [MaskRule(parsing: "details.reason=partial")])
        let rendering = try bytes.withUnsafeMutableBufferPointer { buffer in
            try AuditStore.maskedDisplay(.details, adb_bytes(ptr: buffer.baseAddress, len: Int64(buffer.count)), policy, seq: 2)
        }
        let line = try String(contentsOf: vectors.appendingPathComponent("bundle-masked/entries.jsonl"), encoding: .utf8)
            .split(separator: "\n")[0]
        #expect(!rendering.isEmpty && line.contains(rendering), "\(rendering)")
        // The masked bundle differs from bundle/ only by that rendering.
        let plain = try String(contentsOf: vectors.appendingPathComponent("bundle/entries.jsonl"), encoding: .utf8)
        let masked = try String(contentsOf: vectors.appendingPathComponent("bundle-masked/entries.jsonl"), encoding: .utf8)
        #expect(masked.replacingOccurrences(of: rendering, with: "") == plain)
    }
}
