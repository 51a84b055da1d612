import ArgumentParser
import AuditDB

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify the whole store: schema, header, and every row's MAC, chain link and seq.",
        discussion: """
            EXIT STATUS
              0  intact
              1  integrity violation found (findings are printed; the first names the
                 earliest bad row)
              2  could not verify: bad arguments, missing key, unreadable file
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print the report as one JSON object.") var json = false
    @Flag(help: "No progress on standard error.") var quiet = false
    @Option(name: .customLong("anchor"), help: ArgumentHelp(
        "Also check against the signed checkpoints in this anchor directory or file (repeatable): detects truncation, rollback and rewrites.",
        valueName: "path"))
    var anchors: [String] = []
    @Option(name: .customLong("public-key"), help: ArgumentHelp(
        "The public checkpoint key file (required with --anchor). Without --anchor it authenticates the checkpoints the store recorded itself.",
        valueName: "file"))
    var publicKey: String?

    func configuration() throws -> AuditStore.Configuration {
        var configuration = try global.configuration()
        if let publicKey { configuration.checkpointPublicKeys = try CheckpointPublicKeys.load(path: publicKey) }
        return configuration
    }

    func run() async throws {
        let display = Progress("verify", unit: "rows", quiet: quiet)
        let report = anchors.isEmpty ? try await AuditStore.verify(
            storeAt: try global.storePath(), keys: try global.keyRing(), configuration: try configuration(),
            progress: { display.update($0.rowsChecked, total: $0.totalRows) })
            : try await verifyAgainstAnchors(display)
        display.finish()
        if json {
            try Output.line(ReportJSON.encode(report))
        } else if report.isIntact {
            try Output.line("intact: \(report.rowsChecked) rows verified (last seq \(report.lastSeq)), store \(report.storeID.map(\.hex) ?? "?")")
        } else {
            try Output.line("INTEGRITY VIOLATION: \(report.totalFindings) finding(s) in " + (report.storeID.map { "store \($0.hex)" } ?? "a store whose id cannot be read"))
            for finding in report.findings.prefix(50) {
                try Output.line("  " + OutputEscaping.escapeForMessage(finding.description))
            }
            if report.totalFindings > 50 { try Output.line("  ... and \(report.totalFindings - 50) more") }
        }
        if !report.isIntact { throw ExitCode(ExitStatus.violation) }
    }
}

extension Verify {
    func verifyAgainstAnchors(_ display: Progress) async throws -> IntegrityReport {
        guard let publicKey else {
            throw AuditError(.invalidInput, "--anchor needs --public-key FILE: the checkpoints are only trusted under the public key you hold", field: "--public-key")
        }
        return try await AuditStore.verify(
            storeAt: try global.storePath(), keys: try global.keyRing(), configuration: try configuration(),
            againstAnchors: anchors, publicKeys: try CheckpointPublicKeys.load(path: publicKey),
            progress: { display.update($0.rowsChecked, total: $0.totalRows) })
    }
}

enum ReportJSON {
    static func encode(_ report: IntegrityReport) -> String {
        let findings = report.findings.map { f -> String in
            let seqs = f.seqs.map { "\"firstSeq\":\($0.lowerBound),\"lastSeq\":\($0.upperBound)," } ?? ""
            return "{\"kind\":\(OutputEscaping.jsonQuoted(f.kind.name)),\(seqs)\"message\":\(OutputEscaping.jsonQuoted(f.message))}"
        }
        return "{\"intact\":\(report.isIntact),\"storeId\":\(report.storeID.map { "\"\($0.hex)\"" } ?? "null"),"
            + "\"rowsChecked\":\(report.rowsChecked),\"lastSeq\":\(report.lastSeq),"
            + "\"totalFindings\":\(report.totalFindings),\"findings\":[\(findings.joined(separator: ","))],"
            + "\"startedAt\":\"\(report.startedAt.iso8601)\",\"durationSeconds\":\(Double(report.duration.components.seconds) + Double(report.duration.components.attoseconds) / 1e18)}"
    }
}
