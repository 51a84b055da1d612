import Foundation
import Synchronization
import Testing

@testable import AuditDB

/// Progress of long commands: on standard error only, a redrawn line on a real terminal (a pty),
/// plain lines otherwise, nothing with --quiet; standard output's data unchanged.
@Suite("Progress on standard error")
struct ProgressTests {
    let dir: TempDir
    let store: String
    let keyFile: String

    init() throws {
        dir = try TempDir()
        store = dir.path("s.db")
        keyFile = dir.path("k.keys")
    }

    /// Runs `auditdb ARGUMENTS` with standard error on a new pseudo-terminal (python3's `pty`
    /// module) and standard output into a file; returns (exit status, standard output, what the
    /// terminal showed).
    func underTerminal(_ arguments: [String], stdin: Data = Data()) throws -> (status: Int32, stdout: String, terminal: String) {
        let outFile = dir.path("stdout-\(UUID().uuidString)")
        let script = """
            import os, subprocess, sys
            master, slave = os.openpty()
            # The child reads its input from a file: over a pipe, append --jsonl commits at each
            # pause of the writer, so its batches would depend on timing.
            with open(sys.argv[1] + ".in", "wb") as saved:
                saved.write(sys.stdin.buffer.read())
            with open(sys.argv[1], "wb") as out, open(sys.argv[1] + ".in", "rb") as given:
                child = subprocess.Popen(sys.argv[2:], stdin=given, stdout=out, stderr=slave)
                os.close(slave)
                seen = b""
                while True:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:
                        break
                    if not chunk:
                        break
                    seen += chunk
                status = child.wait()
            sys.stdout.buffer.write(seen)
            sys.exit(status)
            """
        let result = try run("/usr/bin/env", ["python3", "-c", script, outFile, try cliPath()] + arguments
                                + ["--store", store, "--key-file", keyFile],
                             stdinBytes: stdin, environment: environmentWithoutAuditDBOptions())
        let stdout = try String(contentsOfFile: outFile, encoding: .utf8)
        return (result.status, stdout, result.stdout)
    }

    @Test("append --jsonl and verify on a terminal: a redrawn progress line on stderr; stdout holds exactly the data")
    func terminal() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 0)
        let lines = (1...2_500).map { #"{"actor":"a","action":"n\#($0)"}"# }.joined(separator: "\n")
        let append = try underTerminal(["append", "--jsonl", "--batch-size", "1000"], stdin: Data(lines.utf8))
        #expect(append.status == 0, "\(append.terminal)")
        #expect(append.stdout == "1-1000\n1001-2000\n2001-2500\n")
        #expect(append.terminal.contains("\r\u{1B}[Kappend: 2500 events  "), "\(append.terminal.debugDescription)")
        #expect(append.terminal.contains("; lines 1-2500 committed"))
        let verify = try underTerminal(["verify"])
        #expect(verify.status == 0)
        #expect(verify.stdout.hasPrefix("intact: 2500 rows verified (last seq 2500), store "))
        #expect(verify.terminal.contains("\r\u{1B}[Kverify: [##############################] 2500/2500 rows  "),
                "\(verify.terminal.debugDescription)")
        let scan = try underTerminal(["scan", "--full", "--no-record"])
        #expect(scan.status == 0)
        #expect(scan.stdout.hasPrefix("intact: full pass checked 2500 rows"))
        #expect(scan.terminal.contains("scan: [##############################] 2500/2500 rows  "), "\(scan.terminal.debugDescription)")
        let secret = dir.path("ckpt.key")
        let made = try run(try cliPath(), ["checkpoint-key", "generate", "--out", secret, "--public-out", dir.path("ckpt.pub")],
                           environment: environmentWithoutAuditDBOptions())
        #expect(made.status == 0, "\(made.stderr)")
        // The first checkpoint reads every row twice: verification, then the Merkle tree.
        let checkpoint = try underTerminal(["checkpoint", "--signing-key", secret])
        #expect(checkpoint.status == 0)
        #expect(checkpoint.stdout.hasPrefix("checkpoint at seq 2500 of store "))
        #expect(checkpoint.terminal.contains("checkpoint: [##############################] 5000/5000 rows  "),
                "\(checkpoint.terminal.debugDescription)")
        let export = try underTerminal(["export", "--out", dir.path("bundle")])
        #expect(export.status == 0)
        #expect(export.stdout.hasPrefix("exported 2500 entries to "))
        #expect(export.terminal.contains("export: [##############################] 2500/2500 rows verified  "),
                "\(export.terminal.debugDescription)")
        let checked = try underTerminal(["verify-export", dir.path("bundle"), "--public-key", dir.path("ckpt.pub")])
        #expect(checked.status == 0, "\(checked.stdout)")
        #expect(checked.terminal.contains("verify-export: [##############################] 2500/2500 entries  "),
                "\(checked.terminal.debugDescription)")
        let quiet = try underTerminal(["verify", "--quiet"])
        #expect(quiet.status == 0 && quiet.terminal.isEmpty, "\(quiet.terminal.debugDescription)")
        // The export left its access entry (FORMAT.md 23.4) as row 2501 since the first verify.
        #expect(quiet.stdout == verify.stdout.replacingOccurrences(of: "2500 rows verified (last seq 2500)", with: "2501 rows verified (last seq 2501)"))
    }

    @Test("not a terminal: plain progress lines on stderr at the interval; stdout unchanged")
    func plainLines() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 200_000)
        let result = try run(try cliPath(), ["verify", "--store", store, "--key-file", keyFile],
                             environment: environmentWithoutAuditDBOptions().merging(["AUDITDB_PROGRESS_INTERVAL": "0.001"]) { $1 })
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("intact: 200000 rows verified (last seq 200000), store "))
        let lines = result.stderr.split(separator: "\n")
        #expect(!lines.isEmpty, "no progress line")
        #expect(lines.allSatisfy { $0.hasPrefix("verify: ") && $0.contains("/200000 rows, ") && $0.hasSuffix(" elapsed") }, "\(lines)")
        #expect(!result.stderr.contains("\r"))
    }

    @Test("a bad AUDITDB_PROGRESS_INTERVAL: one warning with progress lines, none with --quiet")
    func badInterval() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 10)
        let environment = environmentWithoutAuditDBOptions().merging(["AUDITDB_PROGRESS_INTERVAL": "abc"]) { $1 }
        let loud = try run(try cliPath(), ["verify", "--store", store, "--key-file", keyFile], environment: environment)
        #expect(loud.status == 0)
        #expect(loud.stderr == "auditdb: warning: AUDITDB_PROGRESS_INTERVAL=\"abc\" is not a number of seconds above 0 and at most 3600 (e.g. 0.5); progress lines come every 5 s\n",
                "\(loud.stderr.debugDescription)")
        let quiet = try run(try cliPath(), ["verify", "--store", store, "--key-file", keyFile, "--quiet"], environment: environment)
        #expect(quiet.status == 0)
        #expect(quiet.stderr.isEmpty, "\(quiet.stderr.debugDescription)")
        #expect(quiet.stdout == loud.stdout)
        // Swift's Double() reads these; the command line's one grammar of numbers does not.
        for text in ["1e0", "0x1p-2", " 1", "inf"] {
            let odd = try run(try cliPath(), ["verify", "--store", store, "--key-file", keyFile],
                              environment: environmentWithoutAuditDBOptions().merging(["AUDITDB_PROGRESS_INTERVAL": text]) { $1 })
            #expect(odd.stderr.hasPrefix("auditdb: warning: AUDITDB_PROGRESS_INTERVAL=\"\(text)\" is not a number of seconds"), "\(text): \(odd.stderr.debugDescription)")
        }
    }

    @Test("the library's progress hooks: retention reports candidate rows per batch, ending at the total")
    func retentionProgress() async throws {
        let keys = try testKeyRing()
        try await makeStore(at: store, keys: keys, count: 25)
        let opened = try await AuditStore.open(at: store, keys: keys)
        let steps = Mutex<[VerificationProgress]>([])
        let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 3 * 86_400_000_000)
        let report = try await opened.applyRetention(try RetentionPolicy(parsingDefault: "1d"), now: later, batchSize: 10,
                                                     progress: { step in steps.withLock { $0.append(step) } })
        try await opened.close()
        let seen = steps.withLock { $0 }
        #expect(report.expired > 0)
        #expect(seen.map(\.rowsChecked) == [10, 20, seen.last?.totalRows ?? -1], "\(seen)")
        #expect(seen.allSatisfy { $0.totalRows == seen.last?.totalRows && $0.totalRows > 20 })
    }
}
