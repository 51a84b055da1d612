import Foundation
import Testing

@testable import AuditDB

/// `append --jsonl` commits its input in batches: what each batch commits, what a bad line
/// leaves behind, and that memory stays bounded however long the input is.
@Suite("append --jsonl streams in batches")
struct StreamingAppendTests {
    let dir: TempDir
    let store: String
    let keyFile: String

    init() throws {
        dir = try TempDir()
        store = dir.path("s.db")
        keyFile = dir.path("k.keys")
    }

    func auditdb(_ arguments: [String], stdin: Data, environment: [String: String] = [:]) throws -> ProcessResult {
        try run(try cliPath(), arguments + ["--store", store, "--key-file", keyFile], stdinFile: stdin,
                environment: environmentWithoutAuditDBOptions().merging(environment) { $1 })
    }

    func lines(_ count: Int, bad: Set<Int> = [], blankAfter: Set<Int> = []) -> Data {
        var text = ""
        for i in 1...count {
            text += bad.contains(i) ? #"{"actor":"a","action":"x","severity":"loud"}"# : #"{"actor":"a","action":"n\#(i)"}"#
            text += "\n"
            if blankAfter.contains(i) { text += " \r\n" }
        }
        return Data(text.utf8)
    }

    /// The actions stored, in seq order (each event's action names its input line: `n7`).
    func storedActions() async throws -> [String] {
        let opened = try await AuditStore.open(at: store, keys: try KeyFile(path: keyFile).load())
        var actions: [String] = []
        for try await entry in opened.stream(EntryQuery()) { actions.append(entry.action) }
        try await opened.close()
        return actions
    }

    @Test("every batch of --batch-size event lines is committed and printed as one line of seqs; blank lines do not count")
    func batches() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 0)
        let result = try auditdb(["append", "--jsonl", "--batch-size", "10", "--quiet"], stdin: lines(25, blankAfter: [3, 10]))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "1-10\n11-20\n21-25\n")
        #expect(result.stderr.isEmpty)
        #expect(try await storedActions() == (1...25).map { "n\($0)" })
    }

    @Test("a bad line after committed batches: those stay, nothing of its own batch is written, exit status 3 names the lines")
    func partial() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 0)
        // Event 17 sits on line 18 (a blank line follows event 3); its batch holds events 11-20.
        let result = try auditdb(["append", "--jsonl", "--batch-size", "10", "--quiet"], stdin: lines(25, bad: [17], blankAfter: [3]))
        #expect(result.status == 3)
        #expect(result.stdout == "1-10\n")
        #expect(result.stderr == "auditdb: error: line 18: severity: must be one of info, notice, warning, critical; "
            + "lines 1-11 were committed (10 event(s) in 1 batch(es), seqs 1 to 10, one line per batch on standard output); "
            + "nothing from line 12 on was written\n")
        #expect(try await storedActions() == (1...10).map { "n\($0)" })
        // Run again from line 12 (`tail -n +12`): the rest goes in, the bad line still refused.
        let input = lines(25, bad: [17], blankAfter: [3])
        let fromLine12 = input.split(separator: 0x0A, omittingEmptySubsequences: false).dropFirst(11)
            .reduce(into: Data()) { $0.append($1); $0.append(0x0A) }
        let rest = try auditdb(["append", "--jsonl", "--batch-size", "10", "--quiet"], stdin: fromLine12)
        #expect(rest.status == 2)
        #expect(rest.stderr.hasPrefix("auditdb: error: line 7: severity: "))
        #expect(rest.stderr.hasSuffix("; nothing was written\n"))
    }

    @Test("a bad line in the first batch writes nothing (exit status 2); --atomic writes nothing for a bad line anywhere")
    func nothingWritten() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 0)
        let first = try auditdb(["append", "--jsonl", "--batch-size", "10", "--quiet"], stdin: lines(25, bad: [4]))
        #expect(first.status == 2)
        #expect(first.stdout.isEmpty)
        #expect(first.stderr == "auditdb: error: line 4: severity: must be one of info, notice, warning, critical; nothing was written\n")
        let atomic = try auditdb(["append", "--jsonl", "--atomic"], stdin: lines(25, bad: [24]))
        #expect(atomic.status == 2)
        #expect(atomic.stderr == "auditdb: error: line 24: severity: must be one of info, notice, warning, critical; nothing was written\n")
        #expect(try await storedActions().isEmpty)
        let whole = try auditdb(["append", "--jsonl", "--atomic"], stdin: lines(25))
        #expect(whole.status == 0)
        #expect(whole.stdout == "1-25\n")
    }

    @Test("--batch-size out of range and the batch options without --jsonl are refused")
    func options() throws {
        let zero = try auditdb(["append", "--jsonl", "--batch-size", "0"], stdin: Data())
        #expect(zero.status == 2)
        #expect(zero.stderr.hasPrefix("Error: --batch-size must be from 1 to 50000\n"))
        let flags = try auditdb(["append", "--actor", "a", "--action", "b", "--atomic"], stdin: Data())
        #expect(flags.status == 2)
        #expect(flags.stderr.hasPrefix("Error: --batch-size, --atomic and --quiet go with --jsonl\n"))
    }

    /// `append --jsonl --batch-size 10` on an empty store, fed 15 lines through a pipe that
    /// stays open; returns once all 15 are committed (or 60 s have passed).
    func appendWithPausedInput() async throws -> (process: TestProcess, input: Pipe, output: Pipe, errors: Pipe, count: String) {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 0)
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: try cliPath())
        process.arguments = ["append", "--jsonl", "--batch-size", "10", "--quiet", "--store", store, "--key-file", keyFile]
        process.environment = environmentWithoutAuditDBOptions()
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(lines(15))
        let deadline = Date().addingTimeInterval(60)
        var count = ""
        while Date() < deadline {
            count = try sqlite3Shell(store, "SELECT count(*) FROM audit_entries;").stdout
            if count == "15\n" { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        return (process, input, output, errors, count)
    }

    @Test("a paused input (a pipe kept open, as from `tail -f`): the events read so far are committed and printed without waiting for more or for the end")
    func pausedInputCommits() async throws {
        // All 15 are committed while the pipe stays open: 1-10 (a full batch), then 11-15.
        let (process, input, output, _, count) = try await appendWithPausedInput()
        #expect(count == "15\n")
        #expect(process.isRunning)
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(printed == "1-10\n11-15\n", "\(printed)")
        #expect(try await storedActions() == (1...15).map { "n\($0)" })
    }

    @Test("SIGTERM or SIGINT with the input idle: exit 143 or 130 at once, every committed batch printed, the message names the last committed line",
          arguments: [SIGTERM, SIGINT])
    func signalStopsAfterTheBatch(_ signal: Int32) async throws {
        let (process, input, output, errors, count) = try await appendWithPausedInput()
        #expect(count == "15\n")
        kill(process.processIdentifier, signal)
        process.waitUntilExit()  // the input stays open: only the signal ends it
        #expect(process.terminationStatus == 128 + signal)
        #expect(String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "1-10\n11-15\n")
        let name = signal == SIGTERM ? "SIGTERM" : "SIGINT"
        #expect(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                == "auditdb: error: stopped by \(name): lines 1-15 were committed (15 event(s) in 2 batch(es), seqs 1 to 15, one line per batch on standard output); nothing from line 16 on was written\n")
        try input.fileHandleForWriting.close()
        #expect(try await storedActions() == (1...15).map { "n\($0)" })
    }

    @Test("plain progress lines on standard error say which lines are committed; standard output keeps only seqs")
    func progressLines() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 0)
        let result = try auditdb(["append", "--jsonl", "--batch-size", "500"], stdin: lines(20_000),
                                 environment: ["AUDITDB_PROGRESS_INTERVAL": "0.001"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == stride(from: 1, to: 20_000, by: 500).map { "\($0)-\($0 + 499)\n" }.joined())
        let progress = result.stderr.split(separator: "\n")
        #expect(!progress.isEmpty)
        #expect(progress.allSatisfy { $0.hasPrefix("append: ") && $0.contains(" events, ") && $0.contains(" committed") })
        #expect(progress.last?.hasSuffix("; lines 1-20000 committed") == true, "\(progress.suffix(2))")
    }

    @Test("memory stays bounded: 100,000 lines in batches of 1,000 peak far below what one batch of them would take")
    func boundedMemory() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 0)
        let count = 100_000
        var text = ""
        text.reserveCapacity(count * 160)
        for i in 1...count {
            text += #"{"actor":"user-\#(i % 5000)","action":"read","tenant":"t\#(i % 7)","resourceId":"doc-\#(i)","details":{"i":\#(i),"note":"a typical payload of some length"}}"#
            text += "\n"
        }
        // python3 reports the peak resident set of its child (RUSAGE_CHILDREN), in KiB.
        let script = "import resource,subprocess,sys\nr=subprocess.run(sys.argv[1:])\n"
            + "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\nsys.exit(r.returncode)"
        let result = try run("/usr/bin/env", ["python3", "-c", script, try cliPath(), "append", "--jsonl", "--quiet", "--batch-size", "1000",
                                              "--store", store, "--key-file", keyFile],
                             stdinBytes: Data(text.utf8), environment: environmentWithoutAuditDBOptions())
        #expect(result.status == 0, "\(result.stderr)")
        let output = result.stdout.split(separator: "\n")
        // 100 batches of 1,000 and the peak; more batches if the input paused between the
        // pipe's writes (a paused input commits what it has, a smaller batch).
        #expect(output.count >= 101, "the batches and the peak")
        #expect(output.dropLast().last == "\(count - 999)-\(count)" || output.dropLast().last?.hasSuffix("-\(count)") == true)
        let peakKiB = Int(output.last ?? "") ?? .max
        // 15 MB of lines; a few batches of 1,000 at a time stay near the process's own size (~35 MB;
        // measured ~40 MB in a debug build), whereas one batch of all of them grows with the input.
        #expect(peakKiB < 64 * 1024, "peak resident set \(peakKiB) KiB")
        #expect(try await storedActions().count == count)
    }
}
