import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// `auditdb export` stopped by SIGINT or SIGTERM: it died of the signal and left its staging
/// directory (a hidden copy of the rows, erased values included) with no word. It now stops,
/// removes the staging directory, and says so (exit 2), as `retain` and `erase` do.
@Suite("An export stopped by a signal")
struct ExportInterruptTests {
    @Test("SIGINT while the bundle is being written: exit 2 with a message, no bundle, no staging directory, no access entry; the store verifies", arguments: [SIGINT, SIGTERM])
    func stopped(signal: Int32) async throws {
        let dir = try TemporaryDirectory()
        defer { withExtendedLifetime(dir) {} }  // the directory is removed when released
        let keyFile = dir.path("k.keys"), db = dir.path("store.db"), out = dir.path("exports")
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: db, keys: keys, count: 60_000)
        let store = try await AuditStore.open(at: db, keys: keys)
        _ = try await store.checkpoint(signer: try testSigner())
        let lastSeq = try await store.lastSeq()
        try await store.close()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
        let stderrPath = dir.path("stderr.txt")
        #expect(FileManager.default.createFile(atPath: stderrPath, contents: nil))
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: try cliPath())
        process.arguments = ["export", "--out", out + "/bundle", "--store", db, "--key-file", keyFile, "--quiet"]
        process.environment = environmentWithoutAuditDBOptions()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try process.run()
        // Wait for the staging directory (the bundle being written), then stop the export.
        func staging() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix(".bundle.partial-") } }
        let deadline = Date().addingTimeInterval(300)
        while process.isRunning, try staging().isEmpty, Date() < deadline { usleep(2_000) }
        let stagedBeforeStop = try !staging().isEmpty
        kill(process.processIdentifier, signal)
        process.waitUntilExit()
        try #require(stagedBeforeStop, "the export ended before its staging directory was seen; raise the store size")
        let stderr = try String(contentsOfFile: stderrPath, encoding: .utf8)
        #expect(process.terminationReason == .exit && process.terminationStatus == 2, "\(process.terminationStatus): \(stderr)")
        #expect(stderr.contains("export stopped by a signal: no bundle was written to \(out)/bundle"), "\(stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty)
        let after = try await AuditStore.open(at: db, keys: keys)
        #expect(try await after.lastSeq() == lastSeq)  // no access entry: nothing was exported
        #expect(try await after.verify().isIntact)
        try await after.close()
    }
}
