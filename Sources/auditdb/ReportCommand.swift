import ArgumentParser
import AuditDB

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a signed compliance report for an auditor: report.json, report.sig and report.txt.",
        discussion: """
            The report (docs/FORMAT.md section 23) covers the store, the log's range, a full verification run \
            now (against --anchor locations, if given), the last recorded full scan, the key versions (status, \
            age, compromise declarations; versions older than --key-max-age are flagged), the checkpoints and \
            where they are anchored, expiries, erasures (what each erased and why) and legal holds (who placed \
            them shown as query shows a masked actor), and a list of flags. It never holds a row's values. It is signed with the checkpoint key; anyone checks it with `auditdb verify-report` and the \
            public key file, or docs/verifier/auditdb_verify_report.py.

            EXIT STATUS: 0 written; 1 written, and the store did not verify (the report says so), or nothing written: \
            the file is not the store --store-id pins; 2 could not run.
            """)

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("A new directory (or an empty one) for the three files.", valueName: "dir")) var out: String
    @Option(name: .customLong("signing-key"), help: ArgumentHelp("The secret checkpoint key file.", valueName: "file"))
    var signingKey: String
    @Option(name: .customLong("key-max-age"), parsing: .unconditional,
            help: ArgumentHelp("Flag key versions older than this (e.g. 90d), or `forever` to flag none.", valueName: "period"))
    var keyMaxAge = "90d"
    @Option(help: ArgumentHelp("An anchor directory to verify against and look checkpoints up in; repeatable.", valueName: "dir"))
    var anchor: [String] = []
    @Option(help: ArgumentHelp("Who asks for the report: the actor of the access entry it leaves in the log.", valueName: "name"))
    var by: String?

    func validate() throws {
        if let by { try Self.checkBy(by) }  // before the report is made, not when its access entry is written
    }

    func run() async throws {
        var options = ComplianceReportOptions(anchorPaths: anchor, requestedBy: by)
        options.keyMaxAge = keyMaxAge == "forever" ? nil : try RetentionPeriod(parsingKeyAge: keyMaxAge, field: "--key-max-age")
        let signer = try CheckpointSigner.load(path: signingKey)
        // Before the report is made: one that cannot be written must leave no access entry.
        try SignedComplianceReport.checkDestination(out)
        let report = try await withStore(global) { store in try await store.complianceReport(signer: signer, options: options) }
        try report.write(to: out)
        try Output.line("report written to \(OutputEscaping.escapeForMessage(out)) (report.json, report.sig, report.txt); "
            + "recorded in the log as access entry \(report.accessSeq.map(String.init) ?? "-")")
        // report.txt's lines are escaped already (ReportBody.text): escaped again, they would double.
        for line in report.text.split(separator: "\n") { try Output.line(String(line)) }
        if !report.storeIntact { throw ExitCode(ExitStatus.violation) }
    }
}

struct VerifyReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-report",
        abstract: "Verify a compliance report's signature with only the public checkpoint key.",
        discussion: """
            EXIT STATUS: 0 the signature verifies and report.json is the report it signs; 1 it does not, or \
            report.sig or report.json is missing, not a regular file or too large (the reason is printed); \
            2 could not run (no such directory, an unreadable public key file).
            """)

    @Argument(help: ArgumentHelp("The report directory.", valueName: "dir")) var directory: String
    @Option(name: .customLong("public-key"), help: ArgumentHelp("The public checkpoint key file.", valueName: "file"))
    var publicKey: String

    func run() async throws {
        switch try SignedComplianceReport.verify(at: directory, publicKeys: try CheckpointPublicKeys.load(path: publicKey)) {
        case .valid(let storeID, let createdAt, let keyVersion):
            try Output.line("report valid: store \(storeID), made \(createdAt), signed by checkpoint key version \(keyVersion) (report.json is what is signed; report.txt is a rendering of it, not checked)")
        case .invalid(let reason):
            try Output.line("REPORT INVALID: " + OutputEscaping.escapeForMessage(reason))
            throw ExitCode(ExitStatus.violation)
        }
    }
}
