import Foundation
import Testing

/// The help and argument errors of `auditdb-fleet`, compared with golden files (GoldenFile.swift).
/// Its runs against a PostgreSQL server are in Fleet/ (the output there holds ports and ids).
@Suite("Golden output: auditdb-fleet help and arguments")
struct GoldenOutputFleetTests {
    let cli: GoldenCLI

    init() throws { cli = try GoldenCLI(executable: "auditdb-fleet") }

    @Test("help: the root command, ship, verify-shipped, audit")
    func help() throws {
        try cli.golden("fleet-help-root", ["--help"])
        try cli.golden("fleet-help-ship", ["ship", "--help"])
        try cli.golden("fleet-help-verify-shipped", ["verify-shipped", "--help"])
        try cli.golden("fleet-help-audit", ["audit", "--help"])
    }

    @Test("bad arguments: --withhold, --batch-size, --every, --store-id, a URL that is not PostgreSQL's")
    func badArguments() throws {
        let ship = ["ship", "--store", cli.path("s.db"), "--key-file", cli.path("k"), "--to", "postgresql://u@127.0.0.1:1/db"]
        try cli.golden("fleet-ship-bad-withhold", ship + ["--withhold", "actor,tenant"])
        try cli.golden("fleet-ship-bad-batch-size", ship + ["--batch-size", "0"])
        try cli.golden("fleet-audit-bad-every", ["audit", "--witness", "postgresql://u@127.0.0.1:1/db", "--every", "30"])
        try cli.golden("fleet-verify-shipped-bad-store-id", ["verify-shipped", "--to", "postgresql://u@127.0.0.1:1/db", "--store-id", "xyz"])
        try cli.golden("fleet-verify-shipped-bad-url", ["verify-shipped", "--to", "mysql://u@h/db"])
    }
}
