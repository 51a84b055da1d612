import Foundation
import Synchronization
import Testing

@testable import AuditDB

/// An export writes its bundle under a hidden staging name and renames it to `--out` last, after
/// its access entry: a bundle at `--out` is whole and recorded, and a killed export leaves only
/// the staging directory, which does not stop the next export.
@Suite("Export: staged, then renamed")
struct ExportStagingTests {
    @Test("nothing at --out while the export runs; afterwards the bundle, its access entry, no staging directory; a stale staging directory does not block")
    func staged() async throws {
        let dir = try TempDir()
        let signer = try testSigner()
        let keys = try testKeyRing()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        try await store.append(contentsOf: (1...12).map { sampleEvent($0) })
        _ = try await store.checkpoint(signer: signer)
        let out = dir.path("bundle")
        // What a killed export of another process left behind.
        let stale = dir.path(".bundle.partial-999999")
        try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: false)
        let seenDuringRun = RaceState()
        let summary = try await store.export(to: out, signer: signer, progress: { _ in
            seenDuringRun.changeOnFirstCall { if FileManager.default.fileExists(atPath: out) { throw TestFailure("\(out) exists mid-run") } }
        }, accessBy: "auditor")
        #expect(seenDuringRun.failure.withLock { $0 } == nil)
        #expect(summary.path == out)
        let access = try #require(summary.accessSeq)
        #expect(try await store.entries(EntryQuery(seqs: access...access)).map(\.action) == ["auditdb.access"])
        try await store.close()
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path("")).sorted()
        #expect(names.filter { $0.contains(".partial-") } == [".bundle.partial-999999"], "\(names)")
        let verification = try await ExportBundle.verify(at: out, publicKeys: signer.publicKeys, requireStatement: true)
        #expect(verification.isCompletenessAttested)
    }
}
