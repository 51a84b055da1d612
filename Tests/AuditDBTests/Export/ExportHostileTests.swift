import Foundation
import Testing

@_spi(Testing) @testable import AuditDB

/// Values that AuditDB stores faithfully although they could forge lines or repaint a terminal
/// (bidi controls, line and paragraph separators, JSON text holding escapes and newlines): an
/// export keeps them exact, one entry per line, with no raw control character in the file, and
/// verification output escapes them.
@Suite("Export bundles: hostile values")
struct ExportHostileTests {
    @Test("hostile but valid values survive an export exactly, escaped, and verify", arguments: ExportBundle.Format.allCases)
    func hostileValues(format: ExportBundle.Format) async throws {
        let dir = try TempDir()
        let keys = try testKeyRing()
        let signer = try testSigner()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        let events = [
            AuditEvent(actor: "eve\u{202E}lanigiro", action: "read", resourceId: "doc\u{2028}7", tenant: "t\u{2066}x",
                       details: AuditDetails(json: #"{"m":"a\nb\u001b[2J\u0007","z":"\u2029","e":"😀"}"#)),
            AuditEvent(actor: "\u{200F}\u{061C}", action: "x", correlationId: "c\u{FEFF}", source: "s\u{2029}",
                       details: AuditDetails(json: #"{"nested":{"k":"\u0001\u001f"}}"#)),
        ]
        try await store.append(contentsOf: events)
        try await store.checkpoint(signer: signer)
        let written = try await store.entries()
        _ = try await ExportBundle.formatWritten.withValue(format) { try await store.export(to: dir.path("bundle")) }
        try await store.close()

        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir.path("bundle") + "/entries.jsonl"))
        // One line per entry; no raw C0 control (other than the line feeds), DEL or C1 control.
        #expect(bytes.filter { $0 == 0x0A }.count == 2)
        #expect(!bytes.contains { ($0 < 0x20 && $0 != 0x0A) || $0 == 0x7F })
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(!text.unicodeScalars.contains { (0x80...0x9F).contains($0.value) || $0 == "\u{2028}" || $0 == "\u{2029}" })
        // The values read back from the bundle are exactly the stored ones.
        let lines = text.split(separator: "\n")
        for (line, entry) in zip(lines, written) {
            let json = try JSONSerialization.jsonObject(with: Data(line.utf8))
            if format == .v1 {
                let object = try #require(json as? [String: Any])
                #expect((object["actor"] as? [String: Any])?["value"] as? String == entry.actor)
                #expect((object["details"] as? [String: Any])?["value"] as? String == entry.detailsJSON)
                #expect(object["resourceId"] as? String == entry.resourceId)
                #expect(object["tenant"] as? String == entry.tenant)
                #expect(object["correlationId"] as? String == entry.correlationId)
            } else {
                // FORMAT.md 17.5: elements 5 tenant, 8 resourceId, 11 correlationId, 14 actor, 16 details.
                let array = try #require(json as? [Any])
                #expect((array[14] as? [Any])?.first as? String == entry.actor)
                #expect((array[16] as? [Any])?.first as? String == entry.detailsJSON)
                #expect(array[8] as? String == entry.resourceId)
                #expect(array[5] as? String == entry.tenant)
                #expect(array[11] as? String == entry.correlationId)
            }
        }
        let result = try await ExportBundle.verify(at: dir.path("bundle"), publicKeys: signer.publicKeys)
        #expect(result.isValid, "\(result.findings)")
        #expect(result.entriesVerified == 2)
        // The CLI's verification output is escaped too.
        let publicKey = dir.path("ckpt.pub")
        try signer.publicKeys.write(to: publicKey)
        let cli = try run(try cliPath(), ["verify-export", dir.path("bundle"), "--public-key", publicKey])
        #expect(cli.status == 0, "\(cli.stderr)")
        #expect(!cli.stdout.unicodeScalars.contains { OutputEscaping.needsEscape($0) && $0 != "\n" })
    }
}
