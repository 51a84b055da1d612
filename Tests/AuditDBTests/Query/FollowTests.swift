import Foundation
import Testing

@testable import AuditDB

/// `AuditStore.follow`: new verified entries as they are appended, in the library and in
/// `auditdb tail` run as a real process next to real appending processes.
@Suite("follow and tail")
struct FollowTests {
    let dir: TempDir
    let db: String
    let keyFile: String

    init() throws {
        dir = try TempDir()
        db = dir.path("s.db")
        keyFile = dir.path("k.keys")
    }

    @Test("the library: entries appended by another task arrive in seq order, each once; a filter applies; follow: false ends")
    func library() async throws {
        let keys = try testKeyRing()
        try await makeStore(at: db, keys: keys, count: 3)
        let store = try await AuditStore.open(at: db, keys: keys)
        let appender = Task {
            for round in 0..<10 {
                try await store.append(contentsOf: (0..<10).map { sampleEvent(100 + round * 10 + $0) })
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        var seen: [Int64] = []
        for try await entry in store.follow(after: 1, pollInterval: .milliseconds(10), pageSize: 7) {
            #expect(entry.isVerified)
            seen.append(entry.seq)
            if seen.count == 102 { break }
        }
        try await appender.value
        #expect(seen == Array(2...103))
        var denied: [Int64] = []
        for try await entry in store.follow(matching: EntryQuery(outcome: .denied), follow: false) { denied.append(entry.seq) }
        #expect(denied == (try await allEntries(store)).filter { $0.outcome == .denied }.map(\.seq))
        #expect(!denied.isEmpty)
        try await store.close()
    }

    @Test("the library: a tampered row throws integrity-violation naming it; nothing after it is handed out")
    func libraryTampered() async throws {
        let keys = try testKeyRing()
        try await makeStore(at: db, keys: keys, count: 10)
        try tamperActor(seq: 6)
        let store = try await AuditStore.open(at: db, keys: keys)
        var seen: [Int64] = []
        let error = await #expect(throws: AuditError.self) {
            for try await entry in store.follow(after: 0, pageSize: 3) { seen.append(entry.seq) }
        }
        #expect(error?.code == .integrityViolation)
        #expect(error?.message.contains("entry 6 failed verification (mac-mismatch") == true, "\(String(describing: error))")
        #expect(seen == [1, 2, 3])
        try await store.close()
    }

    func tamperActor(seq: Int) throws {
        let trigger = try sqlite3Shell(db, "SELECT sql FROM sqlite_schema WHERE name = 'audit_entries_no_update';").stdout
        try sqlite3Must(db, """
            DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET actor = 'mallory' WHERE seq = \(seq);
            \(trigger.trimmingCharacters(in: .whitespacesAndNewlines));
            """)
    }

    // MARK: auditdb tail

    /// A running `auditdb tail`; its standard output is read to the end on a thread of its own.
    struct TailProcess {
        let process: TestProcess
        let output: ThreadWork<Data>
        let errors: ThreadWork<Data>

        func stop(_ signal: Int32 = SIGTERM) throws -> (status: Int32, stdout: String, stderr: String) {
            kill(process.processIdentifier, signal)
            return try wait()
        }

        func wait() throws -> (status: Int32, stdout: String, stderr: String) {
            let out = try output.wait(), err = try errors.wait()
            process.waitUntilExit()
            return (process.terminationReason == .exit ? process.terminationStatus : -process.terminationStatus,
                    String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
        }
    }

    func startTail(_ arguments: [String]) throws -> TailProcess {
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: try cliPath())
        process.arguments = ["tail"] + arguments + ["--store", db, "--key-file", keyFile]
        process.environment = environmentWithoutAuditDBOptions()
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outReader = out.fileHandleForReading, errReader = err.fileHandleForReading
        return TailProcess(process: process, output: ThreadWork { try readToEnd(outReader.fileDescriptor) },
                           errors: ThreadWork { try readToEnd(errReader.fileDescriptor) })
    }

    /// Appends `count` events through `auditdb append --jsonl` (another process).
    func appendWithCLI(_ count: Int, from first: Int) throws {
        let lines = (first..<(first + count)).map { #"{"actor":"a","action":"e\#($0)"}"# }.joined(separator: "\n")
        let result = try run(try cliPath(), ["append", "--jsonl", "--quiet", "--batch-size", "4", "--store", db, "--key-file", keyFile],
                             stdin: lines, environment: environmentWithoutAuditDBOptions())
        #expect(result.status == 0, "\(result.stderr)")
    }

    /// Waits until the cursor file says `after=seq` (a guard against hanging, not a timing check).
    func waitForCursor(_ cursor: String, seq: Int, tail: TailProcess) throws {
        for _ in 0..<6_000 {
            if let text = try? String(contentsOfFile: cursor, encoding: .utf8), text.contains(" after=\(seq) mac=") { return }
            guard tail.process.isRunning else { throw TestFailure("tail stopped early: \(try tail.wait())") }
            usleep(10_000)
        }
        throw TestFailure("the cursor never reached \(seq)")
    }

    func seqs(_ jsonl: String) -> [Int64] {
        jsonl.split(separator: "\n").map { line in
            Int64(line.dropFirst("{\"seq\":".count).prefix { $0 != "," }) ?? -1
        }
    }

    @Test("tail --follow while other processes append, stopped by SIGTERM and restarted with its cursor file: every entry exactly once")
    func followAndResume() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: db, keys: keys, count: 0)
        let cursor = dir.path("tail.cursor")
        let arguments = ["--follow", "--cursor-file", cursor, "--poll-interval", "0.05", "--format", "jsonl"]
        let first = try startTail(arguments)
        try appendWithCLI(10, from: 1)
        try appendWithCLI(15, from: 11)
        try waitForCursor(cursor, seq: 25, tail: first)
        let one = try first.stop()
        #expect(one.status == 0, "\(one.stderr)")
        // Appended while no tail runs, then while the second one runs.
        try appendWithCLI(20, from: 26)
        let second = try startTail(arguments)
        try appendWithCLI(12, from: 46)
        try waitForCursor(cursor, seq: 57, tail: second)
        let two = try second.stop(SIGINT)
        #expect(two.status == 0, "\(two.stderr)")
        let all = seqs(one.stdout) + seqs(two.stdout)
        #expect(all == Array(1...57))
        #expect(two.stdout.split(separator: "\n").last?.contains(#""action":"e57""#) == true)
        let attributes = try FileManager.default.attributesOfItem(atPath: cursor)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        // Without --follow: from the cursor, caught up at once; nothing new, nothing printed.
        let done = try run(try cliPath(), ["tail", "--cursor-file", cursor, "--store", db, "--key-file", keyFile],
                           environment: environmentWithoutAuditDBOptions())
        #expect(done.status == 0 && done.stdout.isEmpty, "\(done.stderr)")
    }

    @Test("tail killed with SIGKILL while entries arrive, restarted with its cursor file: nothing lost; only the page printed last before the kill can come again")
    func killedAndResumed() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: db, keys: keys, count: 0)
        let cursor = dir.path("tail.cursor")
        let arguments = ["--follow", "--cursor-file", cursor, "--poll-interval", "0.05"]
        let first = try startTail(arguments)
        for round in 0..<6 { try appendWithCLI(7, from: 1 + round * 7) }
        try waitForCursor(cursor, seq: 42, tail: first)
        // More entries arrive while it is killed mid-stream (somewhere in these appends).
        let appender = ThreadWork { for round in 6..<12 { try self.appendWithCLI(7, from: 1 + round * 7) } }
        usleep(50_000)
        let one = try first.stop(SIGKILL)
        #expect(one.status == -SIGKILL)
        try appender.wait()
        let second = try startTail(arguments)
        try waitForCursor(cursor, seq: 84, tail: second)
        let two = try second.stop()
        #expect(two.status == 0, "\(two.stderr)")
        // A page is written, then its cursor saved: a kill between the two repeats that page only.
        let before = seqs(one.stdout), after = seqs(two.stdout)
        #expect(Set(before + after) == Set(1...84), "nothing lost")
        #expect(before == Array(1...Int64(before.count)) && after == Array((after.first ?? 1)...84), "in order, no gaps")
        let repeated = Set(before).intersection(after)
        #expect(repeated == Set(before.suffix(repeated.count)), "only the end of the first run repeats: \(repeated.sorted())")
    }

    @Test("tail meets a tampered row: exit status 1 with the finding, nothing from that page printed, the cursor not moved past it")
    func tailTampered() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: db, keys: keys, count: 5)
        let cursor = dir.path("tail.cursor")
        let first = try startTail(["--follow", "--cursor-file", cursor, "--poll-interval", "0.05"])
        try waitForCursor(cursor, seq: 5, tail: first)
        #expect(try first.stop().status == 0)
        try appendWithCLI(5, from: 6)
        try tamperActor(seq: 8)
        let second = try startTail(["--follow", "--cursor-file", cursor, "--poll-interval", "0.05"])
        let result = try second.wait()
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.hasPrefix("auditdb: error: entry 8 failed verification (mac-mismatch at seq 8"), "\(result.stderr)")
        #expect(try String(contentsOfFile: cursor, encoding: .utf8).contains(" after=5 mac="))
    }

    @Test("a store rolled back below the last entry printed and grown again: tail refuses (running, and restarted from its cursor file) instead of skipping the new rows")
    func rolledBackUnderTail() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: db, keys: keys, count: 10)
        let cursor = dir.path("tail.cursor")
        let env = environmentWithoutAuditDBOptions()
        let base = ["tail", "--cursor-file", cursor, "--store", db, "--key-file", keyFile]
        let first = try run(try cliPath(), base, environment: env)
        #expect(first.status == 0 && seqs(first.stdout) == Array(1...10), "\(first.stderr)")
        let saved = try String(contentsOfFile: cursor, encoding: .utf8)
        #expect(saved.hasPrefix("auditdb-tail-cursor v2 store=") && saved.contains(" after=10 mac=") && saved.hasSuffix("\n"), "\(saved)")
        // A running follower has printed 1...10 when the rollback happens (its own cursor file
        // says so: a fixed sleep let a slow start on a loaded machine miss the rollback, and the
        // follower then followed for ever).
        let followerCursor = dir.path("follower.cursor")
        let follower = try startTail(["--follow", "--poll-interval", "0.05", "--cursor-file", followerCursor])
        let trigger = try sqlite3Shell(db, "SELECT sql FROM sqlite_schema WHERE name = 'audit_entries_no_delete';").stdout
        // The rollback: rows 9 and 10 go (as an older copy of the file would lack them), then the
        // store grows again: new rows 9...12.
        try waitForCursor(followerCursor, seq: 10, tail: follower)
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq >= 9; \(trigger.trimmingCharacters(in: .whitespacesAndNewlines));")
        try appendWithCLI(4, from: 100)
        let followed = try follower.wait()
        #expect(followed.status == 1, "\(followed.stderr)")
        #expect(seqs(followed.stdout) == Array(1...10))
        // It polls every 50 ms: it sees row 10 gone (between the delete and the appends) or changed.
        #expect(followed.stderr.contains("the entry at seq 10, the last one handed out, is gone: the store was rolled back")
                    || followed.stderr.contains("the entry at seq 10, the last one handed out, is no longer the one read (its MAC differs): the store was rolled back"),
                "\(followed.stderr)")
        // Restarted from the cursor file: refused too, nothing printed, the cursor left as it was.
        let again = try run(try cliPath(), base, environment: env)
        #expect(again.status == 1 && again.stdout.isEmpty, "\(again.stdout)")
        #expect(again.stderr.contains("the entry at seq 10, the last one handed out, is no longer the one read"), "\(again.stderr)")
        #expect(try String(contentsOfFile: cursor, encoding: .utf8) == saved)
        // A v1 cursor (no MAC) is still read: it resumes after its seq, unchecked.
        try saved.replacingOccurrences(of: " v2 ", with: " v1 ").replacingOccurrences(of: #" mac=[0-9a-f]{64}"#, with: "", options: .regularExpression)
            .write(toFile: cursor, atomically: false, encoding: .utf8)
        let old = try run(try cliPath(), base, environment: env)
        #expect(old.status == 0 && seqs(old.stdout) == [11, 12], "\(old.stderr)")
    }

    @Test("a file moved over the store while tail --follow and a scanner run: tail exits 1, the scanner's passes fail, naming the replacement")
    func storeFileReplacedUnderReaders() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: db, keys: keys, count: 5)
        let copy = dir.path("copy.db")
        try sqlite3Must(db, "VACUUM INTO '\(copy)';")
        let followerCursor = dir.path("follower.cursor")
        let follower = try startTail(["--follow", "--poll-interval", "0.05", "--cursor-file", followerCursor])
        let store = try await AuditStore.open(at: db, keys: keys)
        let scanner = IntegrityScanner(store: store, configuration: .init(recordsPasses: false))
        #expect(try await scanner.scan(.full).isIntact)
        try store.checkStillAtPath()
        try waitForCursor(followerCursor, seq: 5, tail: follower)  // it has the store open, and printed 1...5
        #expect(rename(copy, db) == 0)  // another file (a backup) now at the store's path
        let followed = try follower.wait()
        #expect(followed.status == 1 && seqs(followed.stdout) == Array(1...5), "\(followed.stderr)")
        #expect(followed.stderr.contains("is no longer the store this process opened (another file was put there"), "\(followed.stderr)")
        await #expect { _ = try await scanner.scan(.incremental) } throws: { error in
            (error as? AuditError)?.message.contains("is no longer the store this process opened") == true
        }
        if case .failed = scanner.status.lastResult {} else { Issue.record("status: \(scanner.status.lastResult)") }
        try await store.close()
    }

    @Test("masking rules set while tail --follow runs apply to what it prints next")
    func maskingSetWhileFollowing() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: db, keys: keys, count: 2)
        let env = environmentWithoutAuditDBOptions()
        let global = ["--store", db, "--key-file", keyFile]
        let cursor = dir.path("tail.cursor")
        let follower = try startTail(["--follow", "--poll-interval", "0.05", "--cursor-file", cursor])
        try waitForCursor(cursor, seq: 2, tail: follower)
        let set = try run(try cliPath(), ["masking", "set", "--rule", "actor=partial", "--by", "dpo"] + global, environment: env)
        #expect(set.status == 0, "\(set.stderr)")
        let appended = try run(try cliPath(), ["append", "--actor", "secret.person@example.com", "--action", "x"] + global, environment: env)
        #expect(appended.status == 0, "\(appended.stderr)")
        try waitForCursor(cursor, seq: 4, tail: follower)
        let result = try follower.stop()
        #expect(seqs(result.stdout) == [1, 2, 3, 4], "\(result.stdout)")
        #expect(!result.stdout.contains("secret.person@example.com"), "\(result.stdout)")
        #expect(result.stdout.contains(#""actor":{"masked":"partial","value":"s***@example.com"}"#), "\(result.stdout)")
    }

    @Test("tail refuses a cursor file of another store, and --after with --cursor-file")
    func cursorRefusals() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: db, keys: keys, count: 2)
        let cursor = dir.path("tail.cursor")
        try "auditdb-tail-cursor v1 store=00000000000000000000000000000000 after=1\n".write(toFile: cursor, atomically: false, encoding: .utf8)
        let env = environmentWithoutAuditDBOptions()
        let other = try run(try cliPath(), ["tail", "--cursor-file", cursor, "--store", db, "--key-file", keyFile], environment: env)
        #expect(other.status == 2)
        #expect(other.stderr.contains("belongs to another store"))
        let both = try run(try cliPath(), ["tail", "--cursor-file", cursor, "--after", "1", "--store", db, "--key-file", keyFile],
                           environment: env)
        #expect(both.status == 2)
        #expect(both.stderr.hasPrefix("Error: give --after or --cursor-file, not both"))
        let after = try run(try cliPath(), ["tail", "--after", "1", "--store", db, "--key-file", keyFile], environment: env)
        #expect(after.status == 0)
        #expect(seqs(after.stdout) == [2])
        // A cursor file others may write: whoever writes it decides where tail starts.
        let shared = dir.path("shared.cursor")
        try "auditdb-tail-cursor v1 store=00000000000000000000000000000000 after=0\n".write(toFile: shared, atomically: false, encoding: .utf8)
        #expect(chmod(shared, 0o666) == 0)
        let open = try run(try cliPath(), ["tail", "--cursor-file", shared, "--store", db, "--key-file", keyFile], environment: env)
        #expect(open.status == 2 && open.stdout.isEmpty)
        #expect(open.stderr.contains("can be written by group or others (mode 666)"), "\(open.stderr)")
        // A cursor that could not be saved is refused before anything is printed.
        let nowhere = dir.path("no-such-dir") + "/tail.cursor"
        let unsaved = try run(try cliPath(), ["tail", "--cursor-file", nowhere, "--store", db, "--key-file", keyFile], environment: env)
        #expect(unsaved.status == 2 && unsaved.stdout.isEmpty)
        #expect(unsaved.stderr.contains("cursor file \(nowhere) cannot be written"), "\(unsaved.stderr)")
        // A temporary left by a killed run with this very pid (pids are reused) does not stop a save.
        let saved = dir.path("saved.cursor")
        try Data("left".utf8).write(to: URL(fileURLWithPath: saved + ".tmp-\(getpid())"))
        try StateFile.replace(saved, with: Array("x\n".utf8), mode: 0o600, what: "cursor file")
        #expect(try String(contentsOfFile: saved, encoding: .utf8) == "x\n")
        #expect(!FileManager.default.fileExists(atPath: saved + ".tmp-\(getpid())"))
    }

}
