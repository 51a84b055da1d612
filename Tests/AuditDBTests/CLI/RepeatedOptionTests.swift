import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// A single-value option given twice is refused before anything runs (ArgumentParser would keep
/// the last value and drop the others: a hold on one tenant of two, an export with the actor in
/// clear); options declared repeating may repeat.
@Suite("CLI: an option given twice")
struct RepeatedOptionTests {
    let dir: TemporaryDirectory
    let environment: [String: String]

    init() throws {
        dir = try TemporaryDirectory()
        let keyPath = dir.path("k.keys")
        _ = try KeyFile.generate(at: keyPath)
        environment = ["AUDITDB_STORE": dir.path("s.db"), "AUDITDB_KEY_FILE": keyPath]
    }

    func auditdb(_ arguments: [String]) throws -> ProcessResult {
        try run(try cliPath(), arguments, environment: environment)
    }

    @Test("hold add, export, erase, retain, query and the global --store: refused with exit 2, naming the option; nothing written")
    func refused() throws {
        #expect(try auditdb(["init"]).status == 0)
        #expect(try auditdb(["append", "--actor", "a", "--action", "x", "--tenant", "t0"]).status == 0)
        let cases: [([String], String, String)] = [
            (["hold", "add", "--tenant", "t0", "--tenant", "t1", "--reason", "case 1"], "--tenant", "auditdb hold add"),
            (["export", "--redact", "actor", "--redact=source", "--out", dir.path("x")], "--redact", "auditdb export"),
            (["erase", "--actor", "a", "--actor", "b", "--fields", "actor", "--reason", "r"], "--actor", "auditdb erase"),
            (["retain", "--older-than", "forever", "--older-than", "1h"], "--older-than", "auditdb retain"),
            (["--store", dir.path("other.db"), "query", "--store", dir.path("s.db")], "--store", "auditdb query"),
        ]
        for (arguments, option, command) in cases {
            let result = try auditdb(arguments)
            #expect(result.status == 2, "\(arguments): \(result.stdout)")
            #expect(result.stderr == "auditdb: error: \(option) was given 2 times; `\(command)` takes it once (it would keep only the last value). Give it once, or run the command once per value\n", "\(arguments)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path("x")))
        let holds = try auditdb(["hold", "list"])
        #expect(holds.status == 0 && holds.stdout.hasPrefix("no active legal holds"), "\(holds.stdout)")
        let erased = try auditdb(["query", "--actor", "a", "--format", "jsonl"])
        #expect(erased.stdout.contains(#""actor":"a""#))
    }

    @Test("options declared repeating may repeat; a value equal to an option name is a value")
    func allowed() throws {
        #expect(try auditdb(["init"]).status == 0)
        let masked = try auditdb(["query", "--mask", "actor=partial", "--mask", "source=partial"])
        #expect(masked.status == 0, "\(masked.stderr)")
        let anchors = try auditdb(["verify", "--anchor", dir.path("a"), "--anchor", dir.path("b")])
        #expect(anchors.stderr.hasPrefix("auditdb: error: --anchor needs --public-key FILE"), "\(anchors.stderr)")
        // `--actor=--actor`: one --actor whose value is "--actor"; `query` here is a value, not the command.
        #expect(try auditdb(["append", "--actor=--actor", "--action", "query"]).status == 0)
        let back = try auditdb(["query", "--actor=--actor", "--format", "jsonl"])
        #expect(back.status == 0 && back.stdout.contains(#""actor":"--actor","action":"query""#), "\(back.stdout) \(back.stderr)")
    }

    @Test("auditdb-fleet: --to given twice is refused the same way")
    func fleet() throws {
        let result = try run(try builtProduct("auditdb-fleet"),
                             ["ship", "--store", dir.path("s.db"), "--to", "postgresql://a@127.0.0.1/x", "--to", "postgresql://b@127.0.0.1/y"])
        #expect(result.status == 2)
        #expect(result.stderr == "error: --to was given 2 times; `auditdb-fleet ship` takes it once (it would keep only the last value). Give it once, or run the command once per value\n")
    }
}
