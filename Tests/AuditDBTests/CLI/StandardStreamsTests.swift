import Foundation
import Testing

@testable import AuditDB

/// A failed write to standard output (a full disk, a closed descriptor, a reader gone while
/// SIGPIPE is ignored) is an error with exit status 2 (3 for a committed append) that says what was committed, never a
/// crash; a closed standard output never becomes the descriptor of a file the command writes.
@Suite("CLI: standard output that cannot be written")
struct StandardStreamsTests {
    let dir: TempDir
    let keys: KeyRing
    let store: String
    let keyFile: String

    init() async throws {
        dir = try TempDir()
        keys = try testKeyRing()
        store = dir.path("s.db")
        keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        _ = try await makeStore(at: store, keys: keys, count: 3)
    }

    /// `auditdb ARGUMENTS` through the shell, with `redirect` applied to it.
    func auditdb(_ arguments: [String], _ redirect: String, ignoringSIGPIPE: Bool = false) throws -> ProcessResult {
        let quoted = ([try cliPath()] + arguments + ["--store", store, "--key-file", keyFile])
            .map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        return try run("/bin/sh", ["-c", (ignoringSIGPIPE ? "trap '' PIPE; " : "") + quoted + " " + redirect])
    }

    func message(_ reason: String) -> String {
        "auditdb: error: cannot write standard output (\(reason)): the rest of the command's output was lost (whatever it had committed to the store stays committed)\n"
    }

    @Test("append to a full disk or a closed standard output: exit 3 naming the committed seq; the row is there once")
    func fullDisk() async throws {
        for (redirect, reason, seq) in [(">/dev/full", "No space left on device", 4), (">&-", "Bad file descriptor", 5)] {
            let result = try auditdb(["append", "--actor", "alice", "--action", "login"], redirect)
            #expect(result.status == 3, "\(result.status) \(result.stderr)")
            #expect(result.stderr == "auditdb: error: the event was appended at seq \(seq) (committed), then: cannot write standard output (\(reason)): the rest of the command's output was lost (whatever it had committed to the store stays committed)\n")
        }
        let entries = try await AuditStore.open(at: store, keys: keys).entries()
        #expect(entries.map(\.seq) == [1, 2, 3, 4, 5] && entries.last?.actor == "alice")
    }

    @Test("a closed standard output: exit 2; an export's files never receive the report line")
    func closedOutput() throws {
        let verify = try auditdb(["verify"], ">&-")
        #expect(verify.status == 2 && verify.stderr == message("Bad file descriptor"), "\(verify.status) \(verify.stderr)")
        let signing = dir.path("c.key"), publicKey = dir.path("c.pub")
        #expect(try run(try cliPath(), ["checkpoint-key", "generate", "--out", signing, "--public-out", publicKey]).status == 0)
        let checkpoint = try run(try cliPath(), ["checkpoint", "--signing-key", signing, "--store", store, "--key-file", keyFile])
        #expect(checkpoint.status == 0, "\(checkpoint.stderr)")
        let bundle = dir.path("bundle")
        let export = try auditdb(["export", "--out", bundle, "--signing-key", signing], ">&-")
        #expect(export.status == 2 && export.stderr == message("Bad file descriptor"), "\(export.status) \(export.stderr)")
        for name in try FileManager.default.contentsOfDirectory(atPath: bundle) {
            let text = try String(contentsOfFile: bundle + "/" + name, encoding: .utf8)
            #expect(!text.contains("exported "), "\(name): \(text)")
        }
        let checked = try run(try cliPath(), ["verify-export", bundle, "--public-key", publicKey])
        #expect(checked.status == 0, "\(checked.stdout)\(checked.stderr)")
    }

    @Test("scan --every to a full disk: goes on scanning and recording, says so once, exits 2 at SIGTERM")
    func periodicScanToFullDisk() async throws {
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: try cliPath())
        process.arguments = ["scan", "--every", "1s", "--store", store, "--key-file", keyFile]
        let full = try #require(FileHandle(forWritingAtPath: "/dev/full"))
        defer { try? full.close() }
        process.standardOutput = full
        let errors = Pipe()
        process.standardError = errors
        let collected = ScanMetricsTests.drain(errors)
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // Two passes recorded (auditdb.scan entries): the second report failed as the first did.
        _ = try await ScanMetricsTests.waitFor("two recorded passes", {
            Int(try sqlite3Shell(store, "PRAGMA busy_timeout = 30000; SELECT count(*) FROM audit_entries NOT INDEXED WHERE action = 'auditdb.scan';")
                .stdout.split(separator: "\n").last ?? "").map { $0 >= 2 ? true : nil } ?? nil  // the pragma prints its value first
        }, orFail: { collected.withLock { $0 } })
        #expect(process.isRunning, "the scanner stopped when its output failed: \(collected.withLock { $0 })")
        kill(process.processIdentifier, SIGTERM)
        _ = try await ScanMetricsTests.waitFor("the scanner to stop") { process.isRunning ? nil : true }
        let reason = "cannot write standard output (No space left on device): the rest of the command's output was lost (whatever it had committed to the store stays committed)"
        let kept = "its passes are recorded in the store; `auditdb status` shows the last"
        #expect(process.terminationReason == .exit && process.terminationStatus == 2)
        _ = try await ScanMetricsTests.waitFor("the last line on standard error", {
            collected.withLock { $0 }.hasSuffix("\n") && collected.withLock { $0 }.contains("not printed") ? true : nil
        }, orFail: { collected.withLock { $0 } })
        #expect(collected.withLock { $0 } == "auditdb: error: \(reason) (the scanner goes on; \(kept))\n"
            + "auditdb: error: some scan reports were not printed: \(reason) (\(kept))\n")
    }

    @Test("a reader gone while SIGPIPE is ignored (as systemd starts services): exit 2, broken pipe")
    func brokenPipe() throws {
        // The pipe's read end is closed before the query starts, so its first write fails.
        let script = """
            import os, signal, subprocess, sys
            r, w = os.pipe()
            os.close(r)
            p = subprocess.run(sys.argv[1:], stdout=w, stderr=subprocess.PIPE,
                               preexec_fn=lambda: signal.signal(signal.SIGPIPE, signal.SIG_IGN))
            sys.stderr.buffer.write(p.stderr)
            sys.exit(p.returncode)
            """
        let result = try run("/usr/bin/env", ["python3", "-c", script, try cliPath(), "query", "--all", "--format", "jsonl",
                                              "--store", store, "--key-file", keyFile])
        #expect(result.status == 2 && result.stderr == message("Broken pipe"), "\(result.status) \(result.stderr)")
    }
}
