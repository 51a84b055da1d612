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

    @Test("staging directories an interrupted export or archive left are named by the CLI: they hold copies of rows, values erased since included")
    func leftoversNamed() async throws {
        let dir = try TempDir()
        let keyFile = dir.path("k.keys")
        let keys = try KeyFile.generate(at: keyFile)
        let store = dir.path("s.db")
        try await makeStore(at: store, keys: keys, count: 5)
        let signingKey = dir.path("c.key")
        try testSigner().write(to: signingKey, replacing: false)
        let archive = dir.path("archive")
        try FileManager.default.createDirectory(atPath: archive, withIntermediateDirectories: false)
        for name in [".expiry-1-5.partial-0123ABCD", ".expiry-1-5.partial-short", "expiry-6-9", ".other.partial-0123ABCD"] {
            try FileManager.default.createDirectory(atPath: archive + "/" + name, withIntermediateDirectories: false)
        }
        #expect(AuditStore.interruptedStaging(in: archive) { $0 == "other" } == [archive + "/.other.partial-0123ABCD"])
        let options = ["--store", store, "--key-file", keyFile]
        let retain = try run(try cliPath(), ["retain", "--older-than", "90d", "--archive", archive, "--signing-key", signingKey] + options)
        #expect(retain.status == 0, "\(retain.stderr)")
        #expect(retain.stderr.components(separatedBy: "\n").filter { $0.hasPrefix("auditdb: warning: ") }
                    == ["auditdb: warning: \(archive)/.expiry-1-5.partial-0123ABCD is the staging directory of an archive bundle that an interrupted run left (killed before its rename), or of a run going on now; it holds copies of that batch's rows, values erased since included. Delete it (that batch did not expire then; a run archives its rows again)"],
                "\(retain.stderr)")
        try FileManager.default.createDirectory(atPath: dir.path(".bundle.partial-89ABCDEF"), withIntermediateDirectories: false)
        #expect(try run(try cliPath(), ["checkpoint", "--signing-key", signingKey] + options).status == 0)
        let export = try run(try cliPath(), ["export", "--out", dir.path("bundle"), "--signing-key", signingKey] + options)
        #expect(export.status == 0, "\(export.stderr)")
        #expect(export.stderr.contains("warning: \(dir.path(".bundle.partial-89ABCDEF")) is the staging directory of an export to this path that was interrupted"), "\(export.stderr)")
    }
}
