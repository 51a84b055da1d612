import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// `auditdb erase` stopped by SIGTERM: it ends the batch it is in, empties the log of what it
/// erased, says how far it got and exits 2; run again, it finishes.
@Suite("Erasure: stopped")
struct EraseStopTests {
    @Test("erase stopped by SIGTERM between batches: what it committed leaves the file, the message says how far it got, exit 2; run again, it finishes and the store verifies")
    func sigtermBetweenBatches() async throws {
        let dir = try TempDir()
        let keyFile = dir.path("k.keys"), path = dir.path("s.db")
        try KeyFile.generate(at: keyFile)
        let keys = try KeyFile(path: keyFile).load()
        let store = try await AuditStore.create(at: path, keys: keys)
        // 30,000 rows of one actor, each with a source address of its own: 15 batches of 2,000.
        let total = 30_000
        for start in stride(from: 0, to: total, by: 10_000) {
            try await store.append(contentsOf: (start..<start + 10_000).map { i in
                AuditEvent(actor: "victim", action: "read", source: "src-\(100_000 + i)")
            })
        }
        try await store.close()
        func source(ofSeq seq: Int) -> Data { Data("src-\(100_000 + seq - 1)".utf8) }

        let errorPath = dir.path("stderr.txt")
        #expect(writeTestFile(errorPath, Data(), mode: 0o644))
        let errors = try #require(FileHandle(forWritingAtPath: errorPath))
        let arguments = ["erase", "--store", path, "--key-file", keyFile, "--actor", "victim", "--fields", "source", "--reason", "T-1"]
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: try cliPath())
        process.arguments = arguments
        process.standardError = errors
        try process.run()
        // Stop it once its first batch is committed (the first erasure entry is in the log).
        let deadline = Date().addingTimeInterval(120)
        var committed = false
        while process.isRunning, Date() < deadline, !committed {
            let count = try sqlite3Shell(path, "SELECT count(*) FROM audit_entries WHERE action = 'auditdb.erasure'")
            committed = count.status == 0 && count.stdout != "0\n"
            if !committed { usleep(10_000) }
        }
        #expect(committed)
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        try errors.close()
        let message = try String(contentsOfFile: errorPath, encoding: .utf8)
        #expect(process.terminationStatus == 2, "\(message)")
        // "the erasure was stopped after N of 30000 matching row(s): N erased, 0 had nothing left to
        // erase (erasure entries …); the erased values are gone from the file. The other M row(s)
        // were not reached: run the same erasure again"
        let prefix = "auditdb: error: the erasure was stopped after "
        #expect(message.hasPrefix(prefix), "\(message)")
        let erased = Int(message.dropFirst(prefix.count).prefix { $0.isNumber }) ?? 0
        #expect(erased > 0 && erased < total && erased % ErasureRecord.maximumSeqs == 0, "\(message)")
        #expect(message.contains(" of \(total) matching row(s): \(erased) erased, 0 had nothing left to erase (erasure entries "), "\(message)")
        #expect(message.contains("the erased values are gone from the file. The other \(total - erased) row(s) were not reached: run the same erasure again to finish it."),
                "\(message)")
        let bytes = try storeFileBytes(path)
        #expect(bytes.range(of: source(ofSeq: 1)) == nil && bytes.range(of: source(ofSeq: erased)) == nil)
        #expect(bytes.range(of: source(ofSeq: total)) != nil)  // not erased yet

        let again = try run(try cliPath(), arguments)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.hasPrefix("erased source of \(total - erased) row(s); \(erased) had nothing left to erase"), "\(again.stdout)")
        #expect(try storeFileBytes(path).range(of: Data("src-1".utf8)) == nil)
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).isIntact)
    }
}
