import Foundation
import Testing

@testable import AuditDB

/// The whole output of `masking`, of `query`, `tail` and `export` with masks, of access entries
/// (`query --record-access`, `export --by`) and of `keys rotate` with a store, compared with
/// golden files (GoldenFile.swift). MaskingTests, RotationEntryTests and
/// AccessAndExportMaskingTests check the values and the proofs.
@Suite("Golden output: masking, access entries, rotation entries")
struct GoldenOutputMaskingTests {
    let cli: GoldenCLI

    init() throws { cli = try GoldenCLI() }

    /// A masking key file holding the test vector's bytes 00 01 … 1f (docs/masking.md), so
    /// that hash tokens are the same in every run. Test-only: never a real key.
    func vectorMaskKey() throws -> String {
        let path = cli.path("mask.key")
        let hex = (0..<32).map { String(format: "%02x", $0) }.joined()
        try SecretFile.write(Array("auditdb-keys v1\nkey 1 active 2026-01-01T00:00:00.000000Z \(hex)\n".utf8), to: path, mode: 0o600,
                             replacing: false, what: "test masking key file")
        return path
    }

    @Test("masking: set and show the store's rules; query and tail masked in every format; what is refused")
    func masking() async throws {
        try await cli.createStore(count: 4)
        let maskKey = try vectorMaskKey()
        try cli.golden("masking-show-none", ["masking", "show"] + cli.options)
        try cli.golden("masking-set", ["masking", "set", "--rule", "details.note=hash", "--rule", "actor=partial", "--reason", "DPIA-7",
                                       "--by", "dpo:ana"] + cli.options)
        try cli.golden("masking-show", ["masking", "show"] + cli.options)
        try cli.golden("masking-query-no-key", ["query", "--to-seq", "2"] + cli.options)
        try cli.golden("masking-query-table", ["query", "--to-seq", "2", "--mask-key", maskKey] + cli.options)
        try cli.golden("masking-query-json", ["query", "--to-seq", "2", "--mask-key", maskKey, "--format", "json"] + cli.options)
        try cli.golden("masking-query-jsonl", ["query", "--to-seq", "2", "--mask", "source=partial", "--format", "jsonl"] + cli.options,
                       environment: ["AUDITDB_MASK_KEY_FILE": maskKey])
        try cli.golden("masking-tail", ["tail", "--after", "3", "--mask-key", maskKey] + cli.options)
        try cli.golden("masking-query-weaker", ["query", "--mask", "actor=hash", "--mask-key", maskKey] + cli.options)
        try cli.golden("masking-query-bad-rule", ["query", "--mask", "tenant=partial"] + cli.options)
        try cli.golden("masking-query-row-key", ["query", "--mask", "source=hash", "--mask-key", cli.keyFile] + cli.options)
        try cli.golden("masking-set-conflict", ["masking", "set", "--rule", "actor=partial", "--rule", "actor=hash"] + cli.options)
        try cli.golden("masking-set-nothing", ["masking", "set"] + cli.options)
        try cli.golden("masking-set-none", ["masking", "set", "--none", "--by", "dpo:ana"] + cli.options)
        try cli.golden("masking-query-after-none", ["query", "--to-seq", "1", "--format", "jsonl"] + cli.options)
    }

    @Test("access entries: query --record-access --by, checked first; export --by; the entries as the log holds them")
    func accessEntries() async throws {
        let secret = cli.path("ckpt.key")
        try cli.step(["checkpoint-key", "generate", "--out", secret, "--public-out", cli.path("ckpt.pub")])
        try await cli.createStore(count: 4)
        try cli.golden("query-record-access", ["query", "--to-seq", "1", "--record-access", "--by", "analyst:lee"] + cli.options)
        try cli.golden("query-record-access-no-by", ["query", "--record-access"] + cli.options)
        try cli.golden("query-by-empty", ["query", "--record-access", "--by", ""] + cli.options)
        try cli.golden("report-by-empty", ["report", "--out", cli.path("r"), "--signing-key", secret, "--by", ""] + cli.options)
        try cli.step(["checkpoint", "--signing-key", secret] + cli.options)
        try cli.golden("export-masked-by", ["export", "--out", cli.path("b"), "--tenant", "tenant-1", "--mask", "actor=partial",
                                            "--by", "auditor:kim", "--signing-key", secret] + cli.options)
        try cli.golden("verify-export-masked", ["verify-export", cli.path("b"), "--public-key", cli.path("ckpt.pub"), "--require-statement"])
        try cli.golden("query-access-entries", ["query", "--action", "auditdb.access", "--format", "jsonl"] + cli.options)
    }

    @Test("keys rotate with a store records the rotation at once; without one it is recorded at the next append")
    func rotation() async throws {
        try await cli.createStore(count: 2)
        let result = try cli.auditdb(["keys", "rotate"] + cli.options)
        let created = try KeyFile(path: cli.keyFile).load().key(version: 2)!.createdAt!.microsecondsSinceEpoch
        cli.register(String(created), as: "<KEY-CREATED>")
        try cli.expect("keys-rotate-store", ["keys", "rotate"] + cli.options, result: result)
        try cli.golden("keys-rotate-entry", ["query", "--from-seq", "3", "--format", "jsonl"] + cli.options)
    }
}
