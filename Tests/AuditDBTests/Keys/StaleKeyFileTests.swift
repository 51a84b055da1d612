import Foundation
import Testing

@testable import AuditDB

/// A key file that lacks a version the log uses: the verdicts that rest on entries that version
/// signed say so, rather than read as tampering alone.
extension KeyTests {
    @Test("verify with a key file that lacks the newest version: the erasure that version signed is not called tampering without saying a key is missing")
    func staleKeyFileVerdicts() async throws {
        let path = dir.path("stale.db")
        let first = try AuditKey.generate(version: 1)
        try await makeStore(at: path, keys: try KeyRing([first]), count: 3, actor: { "user-\($0)" })
        let store = try await AuditStore.open(at: path, keys: try KeyRing([first, try AuditKey.generate(version: 2)]))
        _ = try await store.erase(.actor("user-2"), fields: [.actor], reason: "TICKET-1")  // signed by version 2
        try await store.close()
        let report = try await AuditStore.verify(storeAt: path, keys: try KeyRing([first]))
        #expect(report.findings.map { "\($0.kind) \($0.firstSeq ?? 0)" } == ["erasure-tampered 2", "unknown-key-version 4", "unknown-key-version 5"],
                "\(report.findings)")
        #expect(report.findings[0].message.hasSuffix("(the key ring lacks a key version this store uses (see the unknown-key-version findings), which may have signed the entry that explains this: verify again with the key file that holds every version)"))
        #expect(!report.findings[1].message.contains("may hold the entry"))
    }
}
