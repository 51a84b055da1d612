import Foundation
import Testing

@testable import AuditDB

/// Found by a probe of the CLI as a new user: a reader that goes away (`| head -1`) must not kill
/// the process between a commit and its line, nor make the resume advice append rows twice; an
/// empty `--store-id` or `--cursor-file` is not "unset"; a v1 cursor past the log's end is refused;
/// numbers that name rows have one grammar; a pass recorded in the future has no age.
@Suite("CLI: strict where it matters")
struct CLIStrictnessTests {
    let dir: TempDir
    let keyFile: String
    let store: String

    init() throws {
        dir = try TempDir()
        keyFile = dir.path("k.keys")
        try KeyFile.generate(at: keyFile)
        store = dir.path("s.db")
    }

    func auditdb(_ arguments: [String], stdin: String? = nil, environment extra: [String: String] = [:]) throws -> ProcessResult {
        var environment = environmentWithoutAuditDBOptions()
        for (name, value) in extra { environment[name] = value }
        return try run(try cliPath(), arguments + ["--store", store, "--key-file", keyFile], stdin: stdin, environment: environment)
    }

    @Test("append --jsonl into a pipe its reader closed: exit 3 (not SIGPIPE's 141), and resuming starts after every committed line")
    func closedPipe() async throws {
        #expect(try auditdb(["init"]).status == 0)
        let lines = (1...50).map { #"{"actor":"a","action":"x\#($0)"}"# }.joined(separator: "\n") + "\n"
        let input = dir.path("in.jsonl")
        #expect(writeTestFile(input, Data(lines.utf8)))
        // The reader is gone before the command starts (its end of the pipe closed, SIGPIPE at
        // its default as in a shell), so the first batch's line meets EPIPE, however fast or
        // slow either side runs. (`| head -c 1` let a fast writer fill the pipe's buffer first.)
        let script = """
            import os, subprocess, sys
            r, w = os.pipe()
            os.close(r)
            with open(sys.argv[1], "rb") as source:
                p = subprocess.run(sys.argv[2:], stdin=source, stdout=w, stderr=subprocess.PIPE, restore_signals=True)
            sys.stderr.buffer.write(p.stderr)
            sys.stderr.buffer.write(("\\n%d" % p.returncode).encode())
            """
        let result = try run("/usr/bin/env", ["python3", "-c", script, input, try cliPath(), "append", "--jsonl", "--batch-size", "10",
                                              "--store", store, "--key-file", keyFile], environment: environmentWithoutAuditDBOptions())
        let status = result.stderr.split(separator: "\n").last.map(String.init)
        #expect(status == "3", "\(result.stderr)")
        let committed = try await AuditStore.open(at: store, keys: try KeyFile(path: keyFile).load())
        let last = try await committed.lastSeq()
        try await committed.close()
        #expect(last >= 10 && last % 10 == 0)
        #expect(result.stderr.contains("lines 1-\(last) were committed"), "\(result.stderr)")
        #expect(result.stderr.contains("nothing from line \(last + 1) on was written"), "\(result.stderr)")
    }

    @Test("another process holds every read mark of the store's -shm file: exit 2 naming the -shm lock, not a bare 'locking protocol'")
    func shmReadMarksHeld() throws {
        #expect(try auditdb(["init"]).status == 0)
        #expect(try auditdb(["append", "--actor", "a", "--action", "x"]).status == 0)
        // The -shm file stays after a command (SQLite's WAL index); its bytes 123-127 are the
        // read marks of SQLite's unix locking (UNIX_SHM_BASE + 3 ...). Held exclusively, no
        // reader can take one: SQLite retries for seconds, then gives SQLITE_PROTOCOL.
        let script = """
            python3 -c '
            import fcntl, os, sys, time
            fd = os.open(sys.argv[1], os.O_RDWR)
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 123, os.SEEK_SET)
            print("locked", flush=True)
            time.sleep(120)
            ' "$1-shm" > "$1.locker" &
            locker=$!
            while [ ! -s "$1.locker" ]; do sleep 0.05; done
            "$0" verify --busy-timeout 1 --store "$1" --key-file "$2"
            status=$?
            kill -9 $locker  # SIGKILL: a child started by the tests may inherit SIGTERM blocked
            exit $status
            """
        let result = try run("/bin/bash", ["-c", script, try cliPath(), store, keyFile], environment: environmentWithoutAuditDBOptions())
        #expect(result.status == 2, "\(result.stdout)\(result.stderr)")
        #expect(result.stderr == "auditdb: error: open \(store) failed: another process holds a lock on the store's -shm file that SQLite's locking protocol could not get past (locking protocol). Nothing was written by that step; find the process that has the store's -shm file open (for example with `fuser`), stop it, and retry.\n", "\(result.stderr)")
    }

    @Test("a number past Int64 is called too large, not 'no number'; a malformed one is still named as such")
    func tooLargeNumbers() throws {
        #expect(try auditdb(["init"]).status == 0)
        for arguments in [["query", "--limit", "99999999999999999999999"], ["query", "--from-seq", "9223372036854775808"],
                          ["hold", "release", "99999999999999999999", "--reason", "x"]]
        {
            let refused = try auditdb(arguments)
            #expect(refused.status == 2 && refused.stderr.contains(" is too large\n"), "\(arguments): \(refused.stderr)")
        }
        let malformed = try auditdb(["query", "--limit", "0099"])
        #expect(malformed.status == 2 && malformed.stderr.contains(#""0099" is not a whole number in decimal digits"#), "\(malformed.stderr)")
    }

    @Test("an empty --store-id is refused, not taken for unset (which would switch off AUDITDB_STORE_ID); the variable's error names it")
    func emptyStoreID() throws {
        #expect(try auditdb(["init"]).status == 0)
        let pinned = ["AUDITDB_STORE_ID": String(repeating: "0", count: 32)]
        #expect(try auditdb(["query"], environment: pinned).status == 1)  // not the pinned store: an integrity incident
        let empty = try auditdb(["query", "--store-id", ""], environment: pinned)
        #expect(empty.status == 2 && empty.stderr.contains(#"--store-id must be 32 hex digits, the id `auditdb init` printed (got "")"#), "\(empty.stderr)")
        let spaced = try auditdb(["query"], environment: ["AUDITDB_STORE_ID": " abc"])
        #expect(spaced.status == 2 && spaced.stderr.contains("AUDITDB_STORE_ID must be 32 hex digits"), "\(spaced.stderr)")
    }

    @Test("tail stopped by a row that fails verification says which entry it printed last, and to verify the store before going on")
    func tailNamesWhereToGoOn() throws {
        #expect(try auditdb(["init"]).status == 0)
        for i in 1...3 { #expect(try auditdb(["append", "--actor", "a", "--action", "x\(i)"]).status == 0) }
        let first = try auditdb(["tail", "--after", "0"])
        #expect(first.status == 0 && first.stdout.split(separator: "\n").count == 3)
        #expect(try auditdb(["append", "--actor", "a", "--action", "x4"]).status == 0)
        try sqlite3Must(store, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET actor = 'b' WHERE seq = 4;")
        let stopped = try auditdb(["tail", "--after", "3"])
        #expect(stopped.status == 1 && stopped.stdout.isEmpty, "\(stopped.stdout)")
        // Not "run it again from seq 3": that meets row 4 again.
        #expect(stopped.stderr.hasSuffix("(the last entry printed is seq 3; the store no longer verifies from there: check it with `auditdb verify` (and restore it) before tailing it again)\n"), "\(stopped.stderr)")
    }

    @Test("tail --after past the log's end: a warning naming the entries it will skip, nothing printed, exit 0")
    func tailAfterPastTheEnd() throws {
        #expect(try auditdb(["init"]).status == 0)
        for i in 1...3 { #expect(try auditdb(["append", "--actor", "a", "--action", "x\(i)"]).status == 0) }
        let past = try auditdb(["tail", "--after", "50"])
        #expect(past.status == 0 && past.stdout.isEmpty, "\(past.stdout)")
        #expect(past.stderr == "auditdb: warning: --after 50 is past the store's last entry (seq 3): entries 4 to 50 will not be printed when they are appended; pass --after 3 to print every entry from the next one on\n")
        #expect(try auditdb(["tail", "--after", "3"]).stderr.isEmpty)
    }

    @Test("tail: an empty cursor path, a symbolic link, and a v1 cursor past the log's end are refused before anything is printed")
    func cursorFiles() async throws {
        try await makeStore(at: store, keys: try KeyFile(path: keyFile).load(), count: 5)
        let empty = try auditdb(["tail", "--cursor-file", ""])
        #expect(empty.status == 2 && empty.stdout.isEmpty && empty.stderr.contains("--cursor-file needs a path"), "\(empty.stderr)")
        let id = try await AuditStore.open(at: store, keys: try KeyFile(path: keyFile).load())
        let hex = id.storeID.hex
        try await id.close()
        let ahead = dir.path("ahead.cursor")
        #expect(writeTestFile(ahead, Data("auditdb-tail-cursor v1 store=\(hex) after=8\n".utf8)))
        let past = try auditdb(["tail", "--cursor-file", ahead])
        #expect(past.status == 1 && past.stdout.isEmpty, "\(past.stdout)\(past.stderr)")
        #expect(past.stderr.contains("points after seq 8, but the store's last entry is seq 5"), "\(past.stderr)")
        let link = dir.path("link.cursor")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: ahead)
        let linked = try auditdb(["tail", "--after", "0", "--cursor-file", link])
        #expect(linked.status == 2, "\(linked.stderr)")
        let real = dir.path("real.cursor")
        let fine = try auditdb(["tail", "--cursor-file", real])
        #expect(fine.status == 0 && fine.stdout.split(separator: "\n").count == 5, "\(fine.stderr)")
    }

    @Test("seqs, hold ids, limits and intervals take decimal digits only: +7, 007, 0x10 and 1e-1 are refused")
    func strictNumbers() async throws {
        try await makeStore(at: store, keys: try KeyFile(path: keyFile).load(), count: 3)
        for arguments in [["query", "--from-seq", "+1"], ["query", "--to-seq", "007"], ["query", "--limit", "+5"],
                          ["tail", "--after", "007"], ["tail", "--poll-interval", "0x1p-2"], ["tail", "--poll-interval", "1e-1"],
                          ["hold", "release", "007", "--reason", "x"], ["hold", "release", "+8", "--reason", "x"]] {
            let result = try auditdb(arguments)
            #expect(result.status == 2, "\(arguments): \(result.stdout)")
            #expect(result.stderr.contains("is not a whole number in decimal digits") || result.stderr.contains("is not a number of seconds in decimal digits"),
                    "\(arguments): \(result.stderr)")
        }
        #expect(try auditdb(["query", "--from-seq", "2", "--to-seq", "3"]).status == 0)
        #expect(try auditdb(["tail", "--poll-interval", "0.25"]).status == 0)
    }

    @Test("status: a pass recorded in the future has no age (JSON null), and the text says so")
    func futurePass() async throws {
        try await makeStore(at: store, keys: try KeyFile(path: keyFile).load(), count: 3)
        let opened = try await AuditStore.open(at: store, keys: try KeyFile(path: keyFile).load())
        opened.setClockOffsetForTesting(3_600_000_000)  // the clock an hour ahead, then back
        let scanner = IntegrityScanner(store: opened, configuration: IntegrityScanner.Configuration(recordsPasses: true))
        #expect(try await scanner.scan(.full).isIntact)
        try await opened.close()
        let json = try auditdb(["status", "--json"])
        #expect(json.status == 0 && json.stdout.contains("\"secondsSinceLastPass\":null"), "\(json.stdout)")
        let text = try auditdb(["status"])
        #expect(text.stdout.contains("s in the future: the clock stepped back since, or was ahead then; its age is unknown"), "\(text.stdout)")
    }
}
