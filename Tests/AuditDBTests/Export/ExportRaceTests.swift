import Foundation
import Synchronization
import Testing

@testable import AuditDB

/// An erasure or an expiry that lands while an export runs (between the pass that verifies and
/// matches the rows and the pass that writes them): the bundle written must still verify and
/// show the store as one moment saw it.
@Suite("Export racing erasure and expiry")
struct ExportRaceTests {
    /// Exports every entry of a 12-row store; when pass 1 reports its progress (its rows read,
    /// its read transaction still open), runs `change` on a second handle of the store, once.
    /// Returns the summary and the bundle's verification.
    func exportRacing(_ dir: TempDir, change: @escaping @Sendable (AuditStore) async throws -> Void)
        async throws -> (ExportSummary, ExportVerification, Int)
    {
        let signer = try testSigner()
        let path = dir.path("s.db")
        let keys = try testKeyRing()
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...12).map { sampleEvent($0) })
        _ = try await store.checkpoint(signer: signer)
        // The change waits for the held reader only briefly (an erasure's WAL scrub gives up).
        var configuration = AuditStore.Configuration()
        configuration.busyTimeout = .milliseconds(500)
        let other = try await AuditStore.open(at: path, keys: keys, configuration: configuration)
        let state = RaceState()
        let summary = try await store.export(to: dir.path("b"), signer: signer, progress: { _ in
            state.changeOnFirstCall { try await change(other) }
        })
        try await other.close()
        try await store.close()
        #expect(state.failure.withLock { $0 } == nil)
        let verification = try await ExportBundle.verify(at: dir.path("b"), publicKeys: signer.publicKeys, requireStatement: true)
        return (summary, verification, state.passes.withLock { $0 })
    }

    @Test("an erasure between the passes: the export starts again and its bundle verifies, the field shown erased and signed so")
    func erasureBetweenPasses() async throws {
        let dir = try TempDir()
        let (summary, verification, passes) = try await exportRacing(dir) { other in
            let report = try await other.erase(.seqs([3, 8]), fields: [.details], reason: "TICKET-12")
            #expect(report.erased.count == 2 && !report.scrubbed, "the held reader keeps the WAL from being truncated")
        }
        #expect(passes >= 1, "the erasure ran during pass 1")
        #expect(verification.isValid && verification.isCompletenessAttested, "\(verification)")
        #expect(summary.entryCount == 12 && summary.statement != nil)
        let entries = try String(contentsOfFile: dir.path("b") + "/entries.jsonl", encoding: .utf8)
        // Format v2 entry lines (FORMAT.md 17.5): an array whose first element is the seq; an
        // erased field is {"erased":commitment}.
        let erased = entries.split(separator: "\n").filter { $0.contains(#"{"erased":""#) }
        #expect(erased.count == 2 && erased[0].hasPrefix("[3,") && erased[1].hasPrefix("[8,"), "\(erased)")
    }

    @Test("an expiry between the passes: the export starts again; the expired rows are not in the bundle, which verifies")
    func expiryBetweenPasses() async throws {
        let dir = try TempDir()
        let (summary, verification, passes) = try await exportRacing(dir) { other in
            let report = try await other.applyRetention(ExpiryTests.policy, now: ExpiryTests.later)
            #expect(report.expired == 8)  // the 12 rows of tenants 1 and 2; tenant-0 keeps its rows forever
        }
        #expect(passes >= 1, "the expiry ran during pass 1")
        #expect(verification.isValid && verification.isCompletenessAttested, "\(verification)")
        #expect(summary.entryCount == 4, "only tenant-0's rows are left")
    }
}
