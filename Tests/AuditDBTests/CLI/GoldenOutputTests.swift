import Foundation
import Testing

@testable import AuditDB

/// The whole output of `auditdb` help, `init`, `append` and `keys`, compared with golden files
/// (GoldenFile.swift): each command's success and its common failures. The other commands are
/// in GoldenOutputIntegrityTests, GoldenOutputCheckpointTests and GoldenOutputMigrateTests.
@Suite("Golden output: help, init, append, keys")
struct GoldenOutputTests {
    let cli: GoldenCLI

    init() throws { cli = try GoldenCLI() }

    @Test("help: the root command, no subcommand, a subcommand's help, an unknown subcommand")
    func help() throws {
        try cli.golden("help-root", ["--help"])
        try cli.golden("help-no-subcommand", [])
        try cli.golden("help-verify", ["verify", "--help"])
        try cli.golden("help-unknown-subcommand", ["frobnicate"])
    }

    @Test("init: creates a store; refuses an existing store, a missing store or key, a loose or missing key file")
    func initCommand() throws {
        try cli.step(["keys", "generate", "--out", cli.keyFile])
        let arguments = ["init"] + cli.options
        let created = try cli.auditdb(arguments)
        try cli.registerStoreID(of: cli.store)
        try cli.expect("init-success", arguments, result: created)
        try cli.golden("init-store-exists", arguments)
        try cli.golden("init-no-store", ["init", "--key-file", cli.keyFile])
        try cli.golden("init-no-key", ["init", "--store", cli.path("other.db")])
        try cli.golden("init-missing-key-file", ["init", "--store", cli.path("other.db"), "--key-file", cli.path("missing.keys")])
        try cli.golden("init-missing-directory", ["init", "--store", cli.path("no-such-dir/s.db"), "--key-file", cli.keyFile])
        try cli.golden("init-bad-keys-variable", ["init", "--store", cli.path("other.db")], environment: ["AUDITDB_KEYS": "1:zz"])
        try cli.loosenKeyFile()
        try cli.golden("init-loose-key-file", ["init", "--store", cli.path("other.db"), "--key-file", cli.keyFile])
    }

    @Test("append: flags and --jsonl print the new seqs; bad arguments, values and lines are refused")
    func append() async throws {
        try await cli.createStore(count: 0)
        try cli.golden("append-flags", ["append"] + cli.options + [
            "--actor", "alice", "--action", "login", "--tenant", "acme", "--resource-type", "doc", "--resource-id", "d1",
            "--outcome", "denied", "--severity", "warning", "--correlation-id", "req-1", "--source", "10.0.0.8",
            "--occurred-at", "2024-03-01T12:00:00Z", "--details", #"{"ip":"10.0.0.8"}"#,
        ])
        let lines = """
            {"actor":"bob","action":"read","details":{"doc":7}}
            {"actor":"carol","action":"write","occurredAt":1700000000000000}

            """
        try cli.golden("append-jsonl", ["append", "--jsonl"] + cli.options, stdin: lines)
        try cli.golden("append-environment", ["append", "--actor", "dave", "--action", "logout"],
                       environment: ["AUDITDB_STORE": cli.store, "AUDITDB_KEY_FILE": cli.keyFile])
        try cli.golden("append-missing-action", ["append"] + cli.options + ["--actor", "alice"])
        try cli.golden("append-jsonl-with-flags", ["append", "--jsonl"] + cli.options + ["--actor", "alice"], stdin: lines)
        try cli.golden("append-bad-outcome", ["append"] + cli.options + ["--actor", "a", "--action", "b", "--outcome", "maybe"])
        try cli.golden("append-bad-severity", ["append"] + cli.options + ["--actor", "a", "--action", "b", "--severity", "loud"])
        try cli.golden("append-bad-occurred-at", ["append"] + cli.options + ["--actor", "a", "--action", "b", "--occurred-at", "yesterday"])
        try cli.golden("append-bad-details", ["append"] + cli.options + ["--actor", "a", "--action", "b", "--details", "[1]"])
        try cli.golden("append-reserved-action", ["append"] + cli.options + ["--actor", "a", "--action", "auditdb.scan"])
        try cli.golden("append-jsonl-bad-line", ["append", "--jsonl"] + cli.options,
                       stdin: "{\"actor\":\"a\",\"action\":\"x\"}\n{\"actor\":\"a\",\"action\":\"x\",\"severity\":\"loud\"}\n")
        try cli.golden("append-jsonl-empty", ["append", "--jsonl"] + cli.options, stdin: "\n")
        try cli.golden("append-no-store", ["append", "--key-file", cli.keyFile, "--actor", "a", "--action", "b"])
        try cli.golden("append-missing-store", ["append", "--store", cli.path("missing.db"), "--key-file", cli.keyFile,
                                                "--actor", "a", "--action", "b"])
        try cli.golden("append-no-key", ["append", "--store", cli.store, "--actor", "a", "--action", "b"])
        try cli.golden("append-wrong-key", ["append", "--store", cli.store, "--key-file", try cli.otherKeyFile(),
                                            "--actor", "a", "--action", "b"])
        try cli.golden("append-bad-store-id", ["append"] + cli.options + ["--store-id", "xyz", "--actor", "a", "--action", "b"])
        try cli.golden("append-jsonl-partial", ["append", "--jsonl", "--batch-size", "2"] + cli.options,
                       stdin: "{\"actor\":\"a\",\"action\":\"x\"}\n\n{\"actor\":\"a\",\"action\":\"y\"}\n{\"actor\":\"a\",\"action\":\"z\"}\n{\"actor\":\"a\"}\n")
        try cli.golden("append-jsonl-atomic-bad-line", ["append", "--jsonl", "--atomic"] + cli.options,
                       stdin: "{\"actor\":\"a\",\"action\":\"x\"}\n{\"actor\":\"a\"}\n")
        try cli.golden("append-jsonl-atomic-batch-size", ["append", "--jsonl", "--atomic", "--batch-size", "5"] + cli.options, stdin: "")
        try cli.loosenKeyFile()
        try cli.golden("append-loose-key-file", ["append"] + cli.options + ["--actor", "a", "--action", "b"])
    }

    @Test("keys generate, list, rotate: success, an existing file, no key file")
    func keys() throws {
        try cli.golden("keys-generate", ["keys", "generate", "--out", cli.keyFile])
        try cli.golden("keys-generate-exists", ["keys", "generate", "--out", cli.keyFile])
        try cli.golden("keys-generate-no-out", ["keys", "generate"])
        try cli.golden("keys-rotate", ["keys", "rotate", "--key-file", cli.keyFile])
        try cli.golden("keys-list", ["keys", "list", "--key-file", cli.keyFile])
        try cli.golden("keys-list-no-key", ["keys", "list"])
        try cli.golden("keys-list-missing-key-file", ["keys", "list", "--key-file", cli.path("missing.keys")])
        try cli.golden("keys-rotate-no-key-file", ["keys", "rotate"])
        try cli.golden("keys-rotate-missing-key-file", ["keys", "rotate", "--key-file", cli.path("missing.keys")])
        try cli.golden("keys-unknown-subcommand", ["keys", "delete"])
        try cli.loosenKeyFile()
        try cli.golden("keys-list-loose-key-file", ["keys", "list", "--key-file", cli.keyFile])
    }

    @Test("keys compromised: re-attests and marks; refuses an unknown version, no key file, a tampered store")
    func keysCompromised() async throws {
        try await cli.createStore(count: 3)
        try cli.golden("keys-compromised", ["keys", "compromised", "1"] + cli.options)
        try cli.golden("keys-compromised-list", ["keys", "list", "--key-file", cli.keyFile])
        try cli.golden("keys-compromised-unknown-version", ["keys", "compromised", "7"] + cli.options)
        try cli.golden("keys-compromised-not-a-number", ["keys", "compromised", "one"] + cli.options)
        try cli.golden("keys-compromised-no-key-file", ["keys", "compromised", "2", "--store", cli.store])
        try cli.tamperRow(seq: 2)
        try cli.golden("keys-compromised-tampered-store", ["keys", "compromised", "2"] + cli.options)
    }
}
