import Foundation
import Testing

@testable import AuditDB

/// Permission faults, produced for real: the CLI runs as an unprivileged user (through
/// `setpriv` when the tests run as root, who would ignore permission bits).
@Suite("Faults: read-only files and directories")
struct FaultTests {
    let dir: TempDir
    let store: String
    let keyHex: String

    init() async throws {
        dir = try TempDir()
        store = dir.path("s.db")
        let keys = try testKeyRing()
        keyHex = keys.signingKey.withSecretBytes { $0.map { String(format: "%02x", $0) }.joined() }
        try await makeStore(at: store, keys: keys, count: 5)
    }

    /// Runs auditdb as `nobody` (or as this user when not root), keys from AUDITDB_KEYS.
    func auditdb(_ arguments: [String]) throws -> ProcessResult {
        var environment = ["AUDITDB_KEYS": "1:\(keyHex)", "PATH": "/usr/bin:/bin"]
        if let home = inheritedEnvironment["HOME"] { environment["HOME"] = home }
        if getuid() == 0 {
            return try run("/usr/bin/setpriv", ["--reuid=nobody", "--regid=nogroup", "--clear-groups", try cliPath()] + arguments,
                           environment: environment)
        }
        return try run(try cliPath(), arguments, environment: environment)
    }

    func chmod(_ path: String, _ mode: Int) throws {
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    @Test("a read-only store file: append fails with a typed error and writes nothing; verify still works")
    func readOnlyFile() throws {
        try chmod(dir.url.path, 0o755)
        try chmod(store, 0o444)
        let append = try auditdb(["append", "--store", store, "--actor", "a", "--action", "b"])
        #expect(append.status == 2)
        #expect(append.stderr.contains("the store is read-only"))
        #expect(append.stderr.contains("Check write permission on the file, its directory and its -wal/-shm files"))
        let verify = try auditdb(["verify", "--store", store])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stdout.hasPrefix("intact: 5 rows verified"))
    }

    @Test("scan on a read-only store: refused clearly (exit 2) with the way out; --no-record scans it")
    func scanReadOnly() throws {
        try chmod(dir.url.path, 0o755)
        try chmod(store, 0o444)
        let scan = try auditdb(["scan", "--store", store])
        #expect(scan.status == 2)
        #expect(scan.stderr.contains("the store is read-only"))
        #expect(scan.stderr.contains("use --no-record to scan a read-only store without writing"))
        let look = try auditdb(["scan", "--no-record", "--store", store])
        #expect(look.status == 0, "\(look.stderr)")
        #expect(look.stdout == "intact: full pass checked 5 rows (seq 1...5)\n")
    }

    @Test("a read-only directory without -wal/-shm files (an archived store): verify and the read commands work, append is refused")
    func readOnlyDirectory() throws {
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: store + suffix) }
        try chmod(store, 0o444)
        try chmod(dir.url.path, 0o555)
        defer { try? chmod(dir.url.path, 0o755) }
        let verify = try auditdb(["verify", "--store", store])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stdout.hasPrefix("intact: 5 rows verified"))
        // The readers open it immutable (no -shm can be made there): the rows, not an error.
        let query = try auditdb(["query", "--store", store, "--format", "jsonl"])
        #expect(query.status == 0, "\(query.stderr)")
        #expect(query.stdout.split(separator: "\n").map { $0.prefix(9) } == (1...5).map { #"{"seq":\#($0),"# })
        let status = try auditdb(["status", "--store", store])
        #expect(status.status == 2 && (status.stdout + status.stderr).contains("no scan pass recorded yet: run `auditdb scan`"), "\(status.stdout)\(status.stderr)")
        let tail = try auditdb(["tail", "--store", store, "--after", "3", "--format", "jsonl"])
        #expect(tail.status == 0 && tail.stdout.split(separator: "\n").map { $0.prefix(9) } == [#"{"seq":4,"#, #"{"seq":5,"#],
                "\(tail.stdout)\(tail.stderr)")
        #expect(!FileManager.default.fileExists(atPath: store + "-shm") && !FileManager.default.fileExists(atPath: store + "-wal"))
        // A store file its owner can still write may be written right now: no read without the
        // -shm file (it could see a half-done checkpoint), but the way out.
        try chmod(store, 0o644)
        for command in [["query"], ["verify"]] {
            let live = try auditdb(command + ["--store", store])
            #expect(live.status == 2, "\(command): \(live.stdout)\(live.stderr)")
            #expect(live.stderr.contains("the store file itself is writable (mode 644), so another process may be writing it"), "\(live.stderr)")
            #expect(live.stderr.contains("remove every write permission from the file (`chmod a-w`)"))
        }
        try chmod(store, 0o444)
        // Through a symlink in another directory: the companion files are looked for beside the
        // real file, and the read works the same.
        let link = dir.path("link.db")
        defer { try? FileManager.default.removeItem(atPath: link) }
        try chmod(dir.url.path, 0o755)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: store)
        try chmod(dir.url.path, 0o555)
        let linked = try auditdb(["query", "--store", link, "--format", "jsonl"])
        #expect(linked.status == 0 && linked.stdout.split(separator: "\n").count == 5, "\(linked.stderr)")
        let append = try auditdb(["append", "--store", store, "--actor", "a", "--action", "b"])
        #expect(append.status == 2)
        #expect(append.stderr.contains("read-only"))
    }

    @Test("a writable store whose -wal/-shm files are not writable: append names them, the store is unchanged")
    func unwritableWalAndShm() throws {
        try chmod(dir.url.path, 0o755)
        try chmod(store, 0o666)
        for suffix in ["-wal", "-shm"] {
            let path = store + suffix
            if !FileManager.default.fileExists(atPath: path) {
                #expect(writeTestFile(path, Data(), mode: 0o644))
            }
            try chmod(path, 0o444)
        }
        let append = try auditdb(["append", "--store", store, "--actor", "a", "--action", "b"])
        #expect(append.status == 2)
        #expect(append.stderr.contains("-wal/-shm"))
        try chmod(store + "-wal", 0o644)
        try chmod(store + "-shm", 0o644)
        let sqlite = try sqlite3Shell(store, "SELECT count(*) FROM audit_entries;")
        #expect(sqlite.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "5")
    }

    @Test("another process holds the write lock past the busy timeout: typed busy error, nothing written, then it works")
    func lockedByAnotherProcess() async throws {
        let path = dir.path("locked.db")
        let keys = try testKeyRing()
        try await makeStore(at: path, keys: keys, count: 3)
        var config = AuditStore.Configuration()
        config.busyTimeout = .milliseconds(300)
        let store = try await AuditStore.open(at: path, keys: keys, configuration: config)
        // A separate process (Python's sqlite3) takes the write lock and holds it until told to stop.
        let holder = TestProcess()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["python3", "-c", """
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1], isolation_level=None)
            c.execute("BEGIN IMMEDIATE")
            print("locked", flush=True)
            sys.stdin.readline()
            c.execute("ROLLBACK")
            """, path]
        let input = Pipe(), output = Pipe()
        holder.standardInput = input
        holder.standardOutput = output
        try holder.run()
        // Wait for the whole line: a pipe may hand it over in pieces.
        var ready = Data()
        while !ready.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            ready += chunk
        }
        #expect(String(decoding: ready, as: UTF8.self) == "locked\n")
        do {
            try await store.append(sampleEvent(4))
            Issue.record("append succeeded while another process held the write lock")
        } catch let error as AuditError {
            #expect(error.code == .busy)
            #expect(error.message.contains("Nothing was written"))
        }
        #expect(try await store.lastSeq() == 3)
        // The other process lets go; the next append takes the next seq and the store verifies.
        input.fileHandleForWriting.write(Data("\n".utf8))
        holder.waitUntilExit()
        #expect(holder.terminationStatus == 0)
        #expect(try await store.append(sampleEvent(4)) == 4)
        #expect(try await store.verify().isIntact)
        try await store.close()
    }
}
