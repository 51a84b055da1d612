import Foundation
import Testing

@testable import AuditDB

/// The whole output of `checkpoint-key`, `checkpoint`, `verify --anchor`, `export` and
/// `verify-export`, compared with golden files (GoldenFile.swift).
@Suite("Golden output: checkpoint-key, checkpoint, verify --anchor, export, verify-export")
struct GoldenOutputCheckpointTests {
    let cli: GoldenCLI
    let secret: String
    let publicKey: String
    let anchor: String

    init() throws {
        cli = try GoldenCLI()
        secret = cli.path("ckpt.key")
        publicKey = cli.path("ckpt.pub")
        anchor = cli.path("anchor")
        try FileManager.default.createDirectory(atPath: anchor, withIntermediateDirectories: false)
    }

    var generateKey: [String] { ["checkpoint-key", "generate", "--out", secret, "--public-out", publicKey] }

    @Test("checkpoint-key generate and rotate: success, an existing file, a missing file or option")
    func checkpointKey() throws {
        try cli.golden("checkpoint-key-generate", generateKey)
        try cli.golden("checkpoint-key-generate-exists", generateKey)
        try cli.golden("checkpoint-key-generate-no-public-out", ["checkpoint-key", "generate", "--out", cli.path("other.key")])
        // The public file of another key, or the secret path twice: refused before anything is written.
        try cli.golden("checkpoint-key-generate-public-exists", ["checkpoint-key", "generate", "--out", cli.path("new.key"), "--public-out", publicKey])
        #expect(!FileManager.default.fileExists(atPath: cli.path("new.key")))
        try cli.golden("checkpoint-key-generate-same-path", ["checkpoint-key", "generate", "--out", cli.path("one.key"), "--public-out", cli.path("./one.key")])
        #expect(!FileManager.default.fileExists(atPath: cli.path("one.key")))
        try cli.golden("checkpoint-key-rotate-same-path", ["checkpoint-key", "rotate", "--signing-key", secret, "--public-out", secret])
        try cli.golden("checkpoint-key-rotate", ["checkpoint-key", "rotate", "--signing-key", secret, "--public-out", publicKey])
        try cli.golden("checkpoint-key-rotate-missing-key", ["checkpoint-key", "rotate", "--signing-key", cli.path("missing.key"),
                                                             "--public-out", cli.path("missing.pub")])
        try cli.golden("checkpoint-key-no-subcommand", ["checkpoint-key"])
    }

    @Test("checkpoint: anchored, store-only, an empty or tampered store, a missing or wrong signing key")
    func checkpoint() async throws {
        try cli.step(generateKey)
        try await cli.createStore(at: cli.path("empty.db"), count: 0, placeholder: "<EMPTY-STORE-ID>")
        try cli.golden("checkpoint-empty-store", ["checkpoint", "--store", cli.path("empty.db"), "--key-file", cli.keyFile,
                                                  "--signing-key", secret, "--anchor", anchor])
        try await cli.createStore(count: 10)
        // A missing anchor directory (a typo, an unmounted volume) is refused before anything is
        // read, and not created: nothing is signed or recorded.
        let missing = cli.path("unmounted")
        try cli.golden("checkpoint-missing-anchor", ["checkpoint", "--signing-key", secret, "--anchor", anchor, "--anchor", missing]
                       + cli.options)
        #expect(!FileManager.default.fileExists(atPath: missing))
        #expect(try FileManager.default.contentsOfDirectory(atPath: anchor).isEmpty)
        #expect(try sqlite3Shell(cli.store, "SELECT count(*) FROM audit_checkpoints;").stdout == "0\n")
        try cli.golden("checkpoint-anchored", ["checkpoint", "--signing-key", secret, "--anchor", anchor] + cli.options)
        try cli.golden("checkpoint-again-same-seq", ["checkpoint", "--signing-key", secret, "--anchor", anchor] + cli.options)
        try cli.step(["append", "--actor", "alice", "--action", "login"] + cli.options)
        try cli.golden("checkpoint-store-only", ["checkpoint", "--signing-key", secret] + cli.options)
        try cli.golden("checkpoint-no-signing-key", ["checkpoint", "--anchor", anchor] + cli.options)
        try cli.golden("checkpoint-missing-signing-key", ["checkpoint", "--signing-key", cli.path("missing.key")] + cli.options)
        try cli.golden("checkpoint-public-key-as-signing-key", ["checkpoint", "--signing-key", publicKey] + cli.options)
        try cli.golden("checkpoint-missing-store", ["checkpoint", "--signing-key", secret, "--store", cli.path("missing.db"),
                                                    "--key-file", cli.keyFile])
        // A later checkpoint verifies only the rows since the last one (AuditStore.checkpoint):
        // a row the last one covers, changed since, does not stop it; the first checkpoint of a
        // tampered store is refused.
        try cli.tamperRow(seq: 3)
        try cli.golden("checkpoint-tampered-covered-row", ["checkpoint", "--signing-key", secret] + cli.options)
        let fresh = cli.path("fresh.db")
        try await cli.createStore(at: fresh, count: 4, placeholder: "<FRESH-STORE-ID>")
        try cli.tamperRow(seq: 2, in: fresh)
        try cli.golden("checkpoint-tampered-store", ["checkpoint", "--signing-key", secret, "--anchor", anchor, "--store", fresh,
                                                     "--key-file", cli.keyFile])
    }

    @Test("verify --anchor: intact, no public key, another public key, a cut tail")
    func verifyAgainstAnchor() async throws {
        try cli.step(generateKey)
        try await cli.createStore(count: 10)
        try cli.step(["checkpoint", "--signing-key", secret, "--anchor", anchor] + cli.options)
        let verify = ["verify", "--anchor", anchor] + cli.options
        try cli.golden("verify-anchor-intact", verify + ["--public-key", publicKey])
        try cli.golden("verify-public-key-without-anchor", ["verify", "--public-key", publicKey] + cli.options)
        try cli.golden("verify-anchor-no-public-key", verify)
        try cli.golden("verify-anchor-missing-public-key", verify + ["--public-key", cli.path("missing.pub")])
        try cli.step(["checkpoint-key", "generate", "--out", cli.path("other.key"), "--public-out", cli.path("other.pub")])
        try cli.golden("verify-anchor-other-public-key", verify + ["--public-key", cli.path("other.pub")])
        try cli.golden("verify-anchor-missing-anchor", ["verify", "--anchor", cli.path("no-anchor"), "--public-key", publicKey]
                       + cli.options)
        try cutTail(cli.store, above: 7)
        try cli.golden("verify-anchor-truncated", verify + ["--public-key", publicKey])
        try cli.golden("verify-anchor-truncated-json", verify + ["--public-key", publicKey, "--json"])
    }

    @Test("export: unsigned, signed and redacted; no checkpoint, an existing directory, bad arguments")
    func export() async throws {
        try cli.step(generateKey)
        try await cli.createStore(count: 12)
        try cli.golden("export-no-checkpoint", ["export", "--out", cli.path("early")] + cli.options)
        try cli.step(["checkpoint", "--signing-key", secret] + cli.options)
        try cli.step(["append", "--actor", "alice", "--action", "login"] + cli.options)
        try cli.golden("export-unsigned", ["export", "--out", cli.path("unsigned")] + cli.options)
        try cli.golden("export-signed-redacted", ["export", "--out", cli.path("signed"), "--tenant", "tenant-1",
                                                  "--redact", "actor,details", "--signing-key", secret] + cli.options)
        try cli.golden("export-limit", ["export", "--out", cli.path("limited"), "--tenant", "tenant-1", "--limit", "2",
                                        "--signing-key", secret] + cli.options)
        try cli.golden("export-bad-limit", ["export", "--out", cli.path("x"), "--limit", "0"] + cli.options)
        try cli.golden("export-out-exists", ["export", "--out", cli.path("unsigned")] + cli.options)
        try cli.golden("export-no-out", ["export"] + cli.options)
        try cli.golden("export-bad-redact", ["export", "--out", cli.path("x"), "--redact", "actor,tenant"] + cli.options)
        try cli.golden("export-empty-redact", ["export", "--out", cli.path("x"), "--redact", ""] + cli.options)
        try cli.golden("export-redact-empty-name", ["export", "--out", cli.path("x"), "--redact", "actor,"] + cli.options)
        try cli.golden("export-reversed-time", ["export", "--out", cli.path("x"), "--since", "2030-01-01T00:00:00Z",
                                                "--until", "2020-01-01T00:00:00Z"] + cli.options)
        try cli.golden("export-bad-severity", ["export", "--out", cli.path("x"), "--severity", "loud"] + cli.options)
        try cli.golden("export-missing-signing-key", ["export", "--out", cli.path("x"), "--signing-key", cli.path("missing.key")]
                       + cli.options)
        try cli.golden("export-missing-store", ["export", "--out", cli.path("x"), "--store", cli.path("missing.db"),
                                                "--key-file", cli.keyFile])
    }

    @Test("verify-export: unsigned and signed bundles; no statement, an edited bundle, another key, nothing to read")
    func verifyExport() async throws {
        try cli.step(generateKey)
        try await cli.createStore(count: 9)
        try cli.step(["checkpoint", "--signing-key", secret] + cli.options)
        let unsigned = cli.path("unsigned"), signed = cli.path("signed")
        try cli.step(["export", "--out", unsigned, "--tenant", "tenant-0"] + cli.options)
        try cli.step(["export", "--out", signed, "--redact", "source", "--signing-key", secret] + cli.options)
        try cli.golden("verify-export-unsigned", ["verify-export", unsigned, "--public-key", publicKey])
        try cli.golden("verify-export-signed", ["verify-export", signed, "--public-key", publicKey, "--require-statement"])
        try cli.golden("verify-export-require-statement", ["verify-export", unsigned, "--public-key", publicKey, "--require-statement"])
        try cli.step(["checkpoint-key", "generate", "--out", cli.path("other.key"), "--public-out", cli.path("other.pub")])
        try cli.golden("verify-export-other-public-key", ["verify-export", signed, "--public-key", cli.path("other.pub")])
        try cli.golden("verify-export-missing-bundle", ["verify-export", cli.path("nope"), "--public-key", publicKey])
        try cli.golden("verify-export-missing-public-key", ["verify-export", signed, "--public-key", cli.path("missing.pub")])
        try cli.golden("verify-export-no-public-key", ["verify-export", signed])
        // An export that cannot be written is refused before anything is recorded: no access entry.
        let rowsBefore = try sqlite3Shell(cli.store, "SELECT count(*) FROM audit_entries;").stdout
        let dangling = cli.path("dangling")
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: cli.path("points-nowhere"))
        for (out, message) in [("", "the export directory is empty; name a new directory"),
                               (cli.path("missing/bundle"), "\(cli.path("missing/bundle")) cannot be created: its parent \(cli.path("missing")) is not a writable directory"),
                               (dangling, "\(dangling) already exists (a symbolic link); an export writes a new directory")] {
            let refused = try run(try cliPath(), ["export", "--out", out] + cli.options, environment: environmentWithoutAuditDBOptions())
            #expect(refused.status == 2 && refused.stderr.contains(message), "\(refused.stderr)")
        }
        #expect(try sqlite3Shell(cli.store, "SELECT count(*) FROM audit_entries;").stdout == rowsBefore)
        // --store-id pins the store: a fleet's shared checkpoint key signs every store's bundles.
        let storeHex = try sqlite3Shell(cli.store, "SELECT lower(hex(store_id)) FROM audit_store;").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(storeHex.count == 32)
        let pinned = try run(try cliPath(), ["verify-export", signed, "--public-key", publicKey, "--store-id", storeHex, "--quiet"])
        #expect(pinned.status == 0, "\(pinned.stderr)")
        let otherID = String(repeating: "ab", count: 16)
        let other = try run(try cliPath(), ["verify-export", signed, "--public-key", publicKey, "--store-id", otherID, "--quiet"])
        #expect(other.status == 1)
        #expect(other.stdout == "EXPORT INVALID: the bundle verifies, but it is of store \(storeHex), not of store \(otherID) (--store-id)\n")
        let malformed = try run(try cliPath(), ["verify-export", signed, "--public-key", publicKey, "--store-id", "xyz"])
        #expect(malformed.status == 2 && malformed.stderr.contains("--store-id must be 32 hex digits"), "\(malformed.stderr)")
        // Remove the first entry line, as someone hiding an entry would.
        let entries = unsigned + "/entries.jsonl"
        let lines = try String(contentsOfFile: entries, encoding: .utf8).split(separator: "\n")
        try (lines.dropFirst().joined(separator: "\n") + "\n").write(toFile: entries, atomically: false, encoding: .utf8)
        try cli.golden("verify-export-entry-removed", ["verify-export", unsigned, "--public-key", publicKey])
    }
}
