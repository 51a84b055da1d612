import Foundation
import Testing

@testable import AuditDB

/// The whole output of `verify`, `scan`, `status`, `query` and `repair-indexes`, compared with
/// golden files (GoldenFile.swift): intact and tampered stores, and the common failures.
@Suite("Golden output: verify, scan, status, query, repair-indexes")
struct GoldenOutputIntegrityTests {
    let cli: GoldenCLI

    init() throws { cli = try GoldenCLI() }

    @Test("verify: intact (text, JSON, pinned id); a tampered row, a swapped store; could not verify")
    func verify() async throws {
        let id = try await cli.createStore(count: 5)
        try cli.golden("verify-intact", ["verify"] + cli.options)
        try cli.golden("verify-intact-json", ["verify", "--json"] + cli.options)
        try cli.golden("verify-pinned-store-id", ["verify", "--store-id", id] + cli.options)
        try cli.golden("verify-store-id-mismatch", ["verify", "--store-id", "00112233445566778899aabbccddeeff"] + cli.options)
        try cli.golden("verify-bad-store-id", ["verify", "--store-id", "xyz"] + cli.options)
        try cli.golden("verify-unknown-option", ["verify", "--bogus"] + cli.options)
        try cli.golden("verify-no-store", ["verify", "--key-file", cli.keyFile])
        try cli.golden("verify-missing-store", ["verify", "--store", cli.path("missing.db"), "--key-file", cli.keyFile])
        try Data("not a database\n".utf8).write(to: URL(fileURLWithPath: cli.path("text.db")))
        try cli.golden("verify-not-a-store", ["verify", "--store", cli.path("text.db"), "--key-file", cli.keyFile])
        try cli.golden("verify-no-key", ["verify", "--store", cli.store])
        try cli.golden("verify-wrong-key", ["verify", "--store", cli.store, "--key-file", try cli.otherKeyFile()])
        try cli.tamperRow(seq: 3)
        try cli.golden("verify-tampered-row", ["verify"] + cli.options)
        try cli.golden("verify-tampered-row-json", ["verify", "--json"] + cli.options)
        try sqlite3Must(cli.store, "DROP TRIGGER audit_entries_no_delete;")
        try cli.golden("verify-tampered-schema", ["verify"] + cli.options)
        try cli.loosenKeyFile()
        try cli.golden("verify-loose-key-file", ["verify"] + cli.options)
    }

    @Test("scan: first pass, incremental, full, JSON, --no-record; a tampered store; bad arguments")
    func scan() async throws {
        try await cli.createStore(count: 5)
        try cli.golden("scan-first-pass", ["scan"] + cli.options)
        try cli.golden("scan-incremental-first-record", ["scan"] + cli.options)  // checks the first pass's record
        try cli.step(["append", "--actor", "alice", "--action", "login"] + cli.options)
        try cli.golden("scan-incremental", ["scan", "--incremental"] + cli.options)
        try cli.golden("scan-full", ["scan", "--full"] + cli.options)
        try cli.golden("scan-json", ["scan", "--full", "--json"] + cli.options)
        try cli.golden("scan-no-record", ["scan", "--full", "--no-record"] + cli.options)
        try cli.golden("scan-full-and-incremental", ["scan", "--full", "--incremental"] + cli.options)
        try cli.golden("scan-bad-interval-unit", ["scan", "--every", "5x"] + cli.options)
        try cli.golden("scan-bad-interval", ["scan", "--every", "1h", "--full-every", "soon"] + cli.options)
        // Refused at start, not created (a typo, an unmounted volume). The signing key is missing
        // too, so that a scanner started despite the anchor would fail instead of running on.
        let unmounted = cli.path("unmounted")
        try cli.golden("scan-every-missing-anchor", ["scan", "--every", "1h", "--signing-key", cli.path("missing.key"),
                                                     "--anchor", unmounted] + cli.options)
        #expect(!FileManager.default.fileExists(atPath: unmounted))
        try cli.golden("scan-missing-store", ["scan", "--store", cli.path("missing.db"), "--key-file", cli.keyFile])
        try cli.golden("scan-no-key", ["scan", "--store", cli.store])
        try cli.tamperRow(seq: 2)
        try cli.golden("scan-tampered-no-record", ["scan", "--full", "--no-record"] + cli.options)
        try cli.golden("scan-tampered", ["scan", "--full"] + cli.options)
    }

    @Test("status: none recorded, after intact passes (text, JSON), after a pass with findings")
    func status() async throws {
        try await cli.createStore(count: 3)
        try cli.golden("status-none-recorded", ["status"] + cli.options)
        try cli.golden("status-none-recorded-json", ["status", "--json"] + cli.options)
        try cli.step(["scan"] + cli.options)
        try cli.golden("status-intact", ["status"] + cli.options)
        try cli.step(["scan"] + cli.options)
        try cli.golden("status-intact-json", ["status", "--json"] + cli.options)
        try cli.golden("status-missing-store", ["status", "--store", cli.path("missing.db"), "--key-file", cli.keyFile])
        try cli.tamperRow(seq: 2)
        #expect(try cli.auditdb(["scan", "--full"] + cli.options).status == 1)
        try cli.golden("status-findings", ["status"] + cli.options)
        try cli.golden("status-findings-json", ["status", "--json"] + cli.options)
    }

    @Test("query: each format, pages and cursors, --all, no match; bad filters; could not query")
    func query() async throws {
        try await cli.createStore(count: 6)
        try cli.golden("query-table", ["query"] + cli.options)
        try cli.golden("query-json", ["query", "--format", "json"] + cli.options)
        try cli.golden("query-jsonl", ["query", "--format", "jsonl"] + cli.options)
        try cli.golden("query-filters", ["query", "--tenant", "tenant-1", "--outcome", "success", "--from-seq", "2",
                                         "--occurred-since", "2023-11-14T22:13:20.000002Z"] + cli.options)
        try cli.golden("query-page-table", ["query", "--limit", "2", "--descending"] + cli.options)
        try cli.golden("query-page-json", ["query", "--limit", "2", "--format", "json"] + cli.options)
        try cli.golden("query-after-cursor", ["query", "--limit", "2", "--descending", "--after", "5.desc"] + cli.options)
        try cli.golden("query-after-seq", ["query", "--after", "4", "--format", "jsonl"] + cli.options)
        try cli.golden("query-all-table", ["query", "--all", "--action", "write"] + cli.options)
        try cli.golden("query-all-limit", ["query", "--all", "--limit", "1"] + cli.options)
        try cli.golden("query-all-json", ["query", "--all", "--format", "json", "--tenant", "tenant-2"] + cli.options)
        try cli.golden("query-no-match", ["query", "--actor", "nobody"] + cli.options)
        try cli.golden("query-no-match-json", ["query", "--actor", "nobody", "--format", "json"] + cli.options)
        try cli.golden("query-bad-format", ["query", "--format", "csv"] + cli.options)
        try cli.golden("query-bad-after", ["query", "--after", "x"] + cli.options)
        try cli.golden("query-cursor-wrong-order", ["query", "--after", "5.desc"] + cli.options)
        try cli.golden("query-bad-since", ["query", "--since", "yesterday"] + cli.options)
        try cli.golden("query-bad-outcome", ["query", "--outcome", "maybe"] + cli.options)
        try cli.golden("query-bad-seq-range", ["query", "--from-seq", "9", "--to-seq", "3"] + cli.options)
        try cli.golden("query-time-range-backwards", ["query", "--since", "2026-01-02T00:00:00Z",
                                                      "--until", "2026-01-01T00:00:00Z"] + cli.options)
        try cli.golden("query-bad-limit", ["query", "--limit", "0"] + cli.options)
        try cli.golden("query-missing-store", ["query", "--store", cli.path("missing.db"), "--key-file", cli.keyFile])
        try cli.golden("query-wrong-key", ["query", "--store", cli.store, "--key-file", try cli.otherKeyFile()])
        try cli.golden("tail-after", ["tail", "--after", "3", "--tenant", "tenant-1"] + cli.options)
        try cli.golden("tail-table", ["tail", "--format", "table", "--from-seq", "5"] + cli.options)
        try cli.golden("tail-after-and-cursor", ["tail", "--after", "3", "--cursor-file", cli.path("c")] + cli.options)
        try cli.golden("tail-bad-poll-interval", ["tail", "--follow", "--poll-interval", "0"] + cli.options)
        try cli.tamperRow(seq: 4)
        try cli.golden("query-tampered", ["query"] + cli.options)
        try cli.golden("query-tampered-include-unverified", ["query", "--include-unverified", "--from-seq", "3", "--to-seq", "5"] + cli.options)
        try cli.golden("query-tampered-include-unverified-jsonl", ["query", "--include-unverified", "--format", "jsonl",
                                                                  "--from-seq", "4", "--to-seq", "4"] + cli.options)
    }

    @Test("repair-indexes: an intact store, an index rebuilt without a row, a tampered row, a missing store")
    func repairIndexes() async throws {
        try await cli.createStore(count: 8)
        try cli.golden("repair-indexes-intact", ["repair-indexes"] + cli.options)
        try rebuildIndex("audit_entries_actor", in: cli.store, as:
            "CREATE INDEX audit_entries_actor ON audit_entries((seq >> 14), actor, (seq >> 0), outcome, severity, action) WHERE actor IS NOT NULL AND seq <> 5")
        try cli.golden("repair-indexes-index-mismatch-verify", ["verify"] + cli.options)
        try cli.golden("repair-indexes-index-mismatch", ["repair-indexes"] + cli.options)
        try cli.tamperRow(seq: 6)
        try cli.golden("repair-indexes-tampered-row", ["repair-indexes"] + cli.options)
        try cli.golden("repair-indexes-missing-store", ["repair-indexes", "--store", cli.path("missing.db"), "--key-file", cli.keyFile])
    }
}
