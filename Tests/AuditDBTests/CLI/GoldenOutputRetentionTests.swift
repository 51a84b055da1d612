import Foundation
import Testing

@testable import AuditDB

/// The whole output of `hold`, `retain` and `compact`, compared with golden files (GoldenFile.swift).
/// Rows cannot be made old through the CLI, so `retain` is shown on fresh rows (nothing is old
/// enough) and refusing bad input; ExpiryTests expire real rows through the library.
@Suite("Golden output: hold, retain, compact")
struct GoldenOutputRetentionTests {
    let cli: GoldenCLI

    init() throws { cli = try GoldenCLI() }

    @Test("hold: add, list (text, JSON, --all), release, and their refusals")
    func hold() async throws {
        try await cli.createStore(count: 6)
        try cli.golden("hold-add-tenant", ["hold", "add", "--tenant", "tenant-1", "--reason", "case 7", "--by", "legal"] + cli.options)
        try cli.golden("hold-add-resource", ["hold", "add", "--resource", "doc-2", "--resource-type", "document", "--reason", "subpoena",
                                             "--by", "legal"] + cli.options)
        try cli.golden("hold-add-two-matchers", ["hold", "add", "--tenant", "a", "--actor", "b", "--reason", "r"] + cli.options)
        try cli.golden("hold-add-no-reason", ["hold", "add", "--tenant", "a"] + cli.options)
        try cli.golden("hold-list", ["hold", "list"] + cli.options)
        try cli.golden("hold-release", ["hold", "release", "7", "--reason", "closed", "--by", "legal"] + cli.options)
        try cli.golden("hold-release-again", ["hold", "release", "7", "--reason", "closed", "--by", "legal"] + cli.options)
        try cli.golden("hold-release-unknown", ["hold", "release", "3", "--reason", "closed", "--by", "legal"] + cli.options)
        try cli.golden("hold-list-all-json", ["hold", "list", "--all", "--json"] + cli.options)
    }

    @Test("retain: a dry run and a run on fresh rows, and bad policies")
    func retain() async throws {
        try await cli.createStore(count: 6)
        try cli.golden("retain-dry-run", ["retain", "--older-than", "90d", "--tenant", "bank=400d", "--dry-run"] + cli.options)
        try cli.golden("retain-nothing-old-enough", ["retain", "--older-than", "1h"] + cli.options)
        try cli.golden("retain-bad-period", ["retain", "--older-than", "90 days"] + cli.options)
        try cli.golden("retain-bad-tenant", ["retain", "--older-than", "90d", "--tenant", "bank"] + cli.options)
        try cli.golden("retain-tenant-twice", ["retain", "--older-than", "90d", "--tenant", "bank=1d", "--tenant", "bank=2d"] + cli.options)
        try cli.golden("retain-no-policy", ["retain"] + cli.options)
        try cli.golden("retain-archive-without-signing-key", ["retain", "--older-than", "90d", "--archive", cli.path("archive")] + cli.options)
        try cli.golden("retain-missing-store", ["retain", "--older-than", "90d", "--store", cli.path("missing.db"), "--key-file", cli.keyFile])
    }

    @Test("report and verify-report: refusals that need no store contents")
    func report() async throws {
        try await cli.createStore(count: 3)
        try cli.golden("report-no-signing-key", ["report", "--out", cli.path("r")] + cli.options)
        try cli.golden("report-bad-key-max-age", ["report", "--out", cli.path("r"), "--signing-key", cli.path("none.key"),
                                                  "--key-max-age", "90 days"] + cli.options)
        try cli.golden("report-zero-key-max-age", ["report", "--out", cli.path("r"), "--signing-key", cli.path("none.key"),
                                                   "--key-max-age", "0d"] + cli.options)
        try cli.golden("verify-report-missing", ["verify-report", cli.path("nothing"), "--public-key", cli.path("none.pub")])
    }

    @Test("compact: a new store, and one from before AuditDB released space online")
    func compact() async throws {
        try await cli.createStore(count: 6)
        try cli.golden("compact", ["compact"] + cli.options)
        try cli.golden("compact-missing-store", ["compact", "--store", cli.path("missing.db"), "--key-file", cli.keyFile])
    }
}
