import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// Commands that only read open the store read-only: they go on while another process holds a
/// write transaction, and they write nothing (the file change counter does not move).
@Suite("CLI: readers go on while another process writes")
struct ReadersGoOnTests {
    @Test("query, tail, status, verify and scan --no-record under another connection's BEGIN IMMEDIATE: exit as usual within the busy timeout, nothing written")
    func readersUnderAWriteLock() async throws {
        let dir = try TemporaryDirectory()
        let keyPath = dir.path("k.keys")
        _ = try KeyFile.generate(at: keyPath)
        let db = dir.path("s.db")
        let environment = ["AUDITDB_STORE": db, "AUDITDB_KEY_FILE": keyPath]
        #expect(try run(try cliPath(), ["init"], environment: environment).status == 0)
        #expect(try run(try cliPath(), ["append", "--actor", "a", "--action", "x"], environment: environment).status == 0)
        #expect(try run(try cliPath(), ["scan", "--quiet"], environment: environment).status == 0)
        func changeCounter() throws -> [UInt8] {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: db))
            defer { try? handle.close() }
            try handle.seek(toOffset: 24)
            return Array(try handle.read(upToCount: 4) ?? Data())
        }
        let before = try changeCounter()
        for command in [["query"], ["tail"], ["status"], ["verify"], ["scan", "--no-record", "--quiet"]] {
            #expect(try run(try cliPath(), command, environment: environment).status == 0, "\(command)")
        }
        #expect(try changeCounter() == before, "a read command wrote to the store")

        // Another process (the sqlite3 shell) holds a write transaction open.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        holder.arguments = ["-batch", db]
        let input = Pipe()
        holder.standardInput = input
        holder.standardOutput = FileHandle.nullDevice
        try holder.run()
        input.fileHandleForWriting.write(Data("BEGIN IMMEDIATE; CREATE TABLE held(a); SELECT 1;\n".utf8))
        try await Task.sleep(for: .milliseconds(500))
        // `migrate` of a current store only reads too (its plan and its verification).
        for command in [["query"], ["tail"], ["status"], ["verify"], ["scan", "--no-record", "--quiet"], ["migrate", "--dry-run"], ["migrate"]] {
            let result = try run(try cliPath(), command + ["--busy-timeout", "1"], environment: environment)
            #expect(result.status == 0, "\(command) under a write lock: \(result.stderr)")
        }
        let append = try run(try cliPath(), ["append", "--actor", "a", "--action", "y", "--busy-timeout", "1"], environment: environment)
        #expect(append.status == 2 && append.stderr.contains("locked"), "a writer still waits for the lock: \(append.stderr)")
        // A streaming append that meets the lock stops with the same error: its reader thread,
        // which had taken the one free slot, left the semaphore lower than it was made (the
        // process used to die on SIGILL freeing it).
        let lines = (1...40_000).map { #"{"actor":"u\#($0)","action":"login"}"# }.joined(separator: "\n") + "\n"
        let streaming = try run(try cliPath(), ["append", "--jsonl", "--batch-size", "20", "--busy-timeout", "0.2"],
                                stdinFile: Data(lines.utf8), environment: environment)
        #expect(streaming.status == 2 && streaming.stderr.contains("stayed locked by another connection"), "\(streaming.status) \(streaming.stderr)")
        input.fileHandleForWriting.write(Data("ROLLBACK;\n".utf8))
        try input.fileHandleForWriting.close()
        holder.waitUntilExit()
    }
}
