import Foundation
import Testing

@testable import AuditDB

/// `append --jsonl` reads its input line by line with a bound on one line.
@Suite("append --jsonl input bounds")
struct AppendInputTests {
    let dir: TempDir
    let store: String
    let keyFile: String

    init() throws {
        dir = try TempDir()
        store = dir.path("s.db")
        keyFile = dir.path("k.keys")
    }

    func auditdb(_ arguments: [String], stdin: Data) throws -> ProcessResult {
        try run(try cliPath(), arguments + ["--store", store, "--key-file", keyFile], stdinFile: stdin,
                environment: environmentWithoutAuditDBOptions())
    }

    @Test("a line over 1 MiB is refused with its number, nothing written; a million blank lines around two events are fine")
    func bounds() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 0)
        let event = Data(#"{"actor":"a","action":"x"}"#.utf8)
        var long = event + Data("\n".utf8)
        long.append(Data(repeating: 0x20, count: (1 << 20) + 10))
        long.append(Data("\n".utf8) + event)
        let refused = try auditdb(["append", "--jsonl"], stdin: long)
        #expect(refused.status == 2)
        #expect(refused.stderr == "auditdb: error: line 2: longer than 1048576 bytes (no event is that large); nothing was written\n")
        var blank = Data(repeating: 0x0A, count: 1_000_000)
        blank.append(event + Data("\n \t\r\n".utf8) + event + Data("\r\n".utf8))
        let ok = try auditdb(["append", "--jsonl"], stdin: blank)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout == "1-2\n")
        let bad = try auditdb(["append", "--jsonl"], stdin: event + Data("\n{\"actor\":\n".utf8))
        #expect(bad.status == 2)
        #expect(bad.stderr.hasPrefix("auditdb: error: line 2: "))
    }

    @Test("--atomic: 50,000 events are one batch; the 50,001st event line is refused with its number and nothing is written")
    func eventBound() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 0)
        let line = Data(#"{"actor":"a","action":"x"}"#.utf8) + Data("\n".utf8)
        var full = Data()
        for _ in 0..<50_000 { full.append(line) }
        let over = full + Data("\n \r\n".utf8) + line  // blank lines do not count; the next event does
        let refused = try auditdb(["append", "--jsonl", "--atomic"], stdin: over)
        #expect(refused.status == 2)
        #expect(refused.stderr == "auditdb: error: line 50003: more than 50000 events on standard input, the most `append --jsonl --atomic` takes (one all-or-nothing batch held in memory); leave out --atomic to commit in batches; nothing was written\n")
        let empty = try auditdb(["query", "--format", "jsonl"], stdin: Data())
        #expect(empty.status == 0 && empty.stdout.isEmpty, "nothing was written: \(empty.stdout.prefix(200))")
        let ok = try auditdb(["append", "--jsonl", "--atomic"], stdin: full + Data("\n\n".utf8))
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout == "1-50000\n")
    }

    @Test("--atomic: 16 MiB of event lines are the most one call takes; the line that would pass it is refused, nothing written")
    func byteBound() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 0)
        // Lines of 60,000 bytes: 279 of them are 16,740,000 bytes, the 280th passes 16 MiB.
        let details = String(repeating: "x", count: 60_000 - #"{"actor":"a","action":"x","details":{"k":""}}"#.utf8.count)
        let line = Data(#"{"actor":"a","action":"x","details":{"k":"\#(details)"}}"#.utf8)
        #expect(line.count == 60_000)
        var input = Data()
        for _ in 0..<280 { input.append(line + Data("\n".utf8)) }
        let refused = try auditdb(["append", "--jsonl", "--atomic"], stdin: input)
        #expect(refused.status == 2)
        #expect(refused.stderr.hasPrefix("auditdb: error: line 280: more than 16 MiB of event lines on standard input, the most `append --jsonl --atomic` takes"))
        #expect(refused.stderr.hasSuffix("; nothing was written\n"))
        let ok = try auditdb(["append", "--jsonl", "--atomic"], stdin: input.prefix(279 * 60_001))
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout == "1-279\n")
    }
}
