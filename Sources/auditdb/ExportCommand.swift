import ArgumentParser
import AuditDB
import Foundation

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write an export bundle that anyone with the public checkpoint key can verify (the filters of `query`).",
        discussion: """
            The bundle (a new directory) holds the matching entries as JSONL, the store's latest checkpoint and one \
            multiproof of all entries (docs/FORMAT.md 17.5). Rows after the latest checkpoint are not included: run `auditdb checkpoint` \
            first. --redact withholds fields: only their commitments are written, and the bundle still verifies. \
            --mask (and the store's masking rules) withholds the masked fields too, and writes each masked rendering next \
            to its commitment, marked as not proven (docs/masking.md). --signing-key (the checkpoint signing key file) adds a signed statement.json attesting that the bundle \
            holds every row up to the checkpoint that matches the filters; without it a verifier can check each \
            entry but not that none was left out. Verify it with `auditdb verify-export DIR --public-key FILE` (no store, no HMAC key needed).
            """)

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("The bundle directory to create.", valueName: "dir")) var out: String
    @OptionGroup var filters: EntryFilterOptions
    @Option(help: ArgumentHelp("Fields to withhold: a comma-separated list of actor, source, details.", valueName: "fields"))
    var redact: String?
    @Option(name: .customLong("signing-key"), help: ArgumentHelp("The secret checkpoint key file: sign a statement that the export is complete.", valueName: "file"))
    var signingKey: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("At most this many entries (1-1000000), the first in seq order; the bundle's filter then ends at the last one exported (--to-seq), and the statement attests exactly that range.", valueName: "n"), transform: StrictNumber.count)
    var limit: Int?
    @Flag(help: "No progress on standard error.") var quiet = false
    @OptionGroup var masks: MaskOptions
    @Option(help: ArgumentHelp("Who takes the export: the actor of the access entry it leaves in the log (default: auditdb).", valueName: "name"))
    var by: String?

    func validate() throws {
        if let limit, !(1...1_000_000).contains(limit) { throw ValidationError("--limit must be from 1 to 1000000") }
        if let by { try Self.checkBy(by) }
    }

    func run() async throws {
        let filter = try filters.filter()
        var fields = Set<WithholdableField>()
        if let redact {
            // Every name given must be a field: an empty list (`--redact ""`, `--redact ,`) would
            // export everything the caller meant to withhold.
            for name in redact.split(separator: ",", omittingEmptySubsequences: false) {
                guard let field = WithholdableField(rawValue: String(name)) else {
                    throw AuditError(.invalidInput, "--redact takes a comma-separated list of actor, source and details (got \(OutputEscaping.jsonQuoted(String(name))) in \(OutputEscaping.jsonQuoted(redact)))", field: "--redact")
                }
                guard fields.insert(field).inserted else {
                    throw AuditError(.invalidInput, "--redact names \(field.rawValue) twice (in \(OutputEscaping.jsonQuoted(redact))); name each field once", field: "--redact")
                }
            }
        }
        let extraMasks = try masks.rules()
        let signer = try signingKey.map { path throws(AuditError) in try CheckpointSigner.load(path: path) }
        let store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                              configuration: try global.configuration())
        let summary: ExportSummary
        let display = Progress("export", unit: "rows verified", quiet: quiet)
        let policy: MaskingPolicy
        do {
            policy = try await masks.policy(for: store, extra: extraMasks)
            let target = URL(fileURLWithPath: out)
            for leftover in AuditStore.interruptedStaging(in: target.deletingLastPathComponent().path, matching: { $0 == target.lastPathComponent }) {
                Output.notice("warning: \(leftover) is the staging directory of an export to this path that was interrupted (killed before its rename) or is running now; it holds copies of rows, values erased since included. Delete it once no export runs")
            }
            let (out, limit, by, fields) = (out, limit, by, fields)
            summary = try await stoppable { [policy] in
                try await store.export(to: out, filter: filter, redact: fields, signer: signer, limit: limit,
                                       progress: { display.update($0.rowsChecked, total: $0.totalRows) }, accessBy: by,
                                       masking: policy)
            }
            display.finish()
            try await store.close()
        } catch {
            display.finish()
            try? await store.close()  // cleanup; the original error is rethrown
            if AuditError.isCancellation(error) {
                // SIGINT or SIGTERM: the export removed its staging directory (nothing half-written stays).
                throw AuditError(.cancelled, "export stopped by a signal: no bundle was written to \(out), and the rows copied so far "
                                 + "were removed with its staging directory; run it again to export")
            }
            throw error
        }
        try Output.line("exported \(summary.entryCount) entries to \(OutputEscaping.escapeForMessage(out)), proven against the checkpoint at seq \(summary.checkpoint.seq)")
        if summary.isLimited, let seqs = summary.filter.seqs {
            try Output.line("--limit \(summary.entryCount): more entries match; this bundle covers seqs \(seqs.lowerBound)-\(seqs.upperBound) (its filter ends with --to-seq \(seqs.upperBound)); export the rest with --from-seq \(seqs.upperBound + 1)")
        }
        if let statement = summary.statement {
            // The rows it covers: the filter's seq range (--from-seq/--to-seq, or what --limit
            // reached) within the checkpoint, else every row up to the checkpoint.
            let range = summary.filter.seqs.map { ExportFilter.describe(seqs: $0, checkpoint: statement.checkpointSeq) }
                ?? "up to seq \(statement.checkpointSeq)"
            try Output.line("signed statement.json with checkpoint key version \(statement.keyVersion): it attests that these are all rows \(range) matching the filters")
        } else {
            try Output.line("note: no --signing-key, so no signed statement: a verifier can check each entry, but not that the export is complete")
        }
        if !policy.isEmpty {
            try Output.line("masked: \(policy.rules.map(\.description).joined(separator: ", ")) (withheld in the proof; the masked renderings are shown unproven)")
        }
        if let access = summary.accessSeq { try Output.line("recorded in the log as access entry \(access)") }
        if let newest = summary.skippedCheckpoints.first {
            Output.notice("warning: the store's newer checkpoint(s) at seq \(summary.skippedCheckpoints.prefix(5).map(String.init).joined(separator: ", "))\(summary.skippedCheckpoints.count > 5 ? " …" : "") could not be used (a signature, Merkle frontier or chain head that does not match the log, or a key that is not the signing key file's), so the bundle is proven against seq \(summary.checkpoint.seq), not \(newest). The store's copy of a checkpoint is a convenience that anyone who can write the file can damage; `auditdb checkpoint` records a new one once rows follow seq \(newest)")
        }
        if summary.rowsAfterCheckpoint > 0 {
            try Output.line("note: \(summary.rowsAfterCheckpoint) row(s) after seq \(summary.checkpoint.seq) are not covered by a checkpoint and were not exported; run `auditdb checkpoint` first to include them")
        }
    }
}

struct VerifyExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-export",
        abstract: "Verify an export bundle with only the public checkpoint key: no store, no HMAC key.",
        discussion: """
            EXIT STATUS
              0  the checkpoint and every entry verify, and the entries are exactly the
                 ones the manifest lists; the output says whether a signed statement
                 attests that the export is complete
              1  the bundle does not verify (each reason is printed), or
                 --require-statement and it has no statement, or it is of another store
                 than --store-id (or AUDITDB_STORE_ID) names; --store and --key-file play
                 no part
              2  could not run: no bundle directory, unreadable public key file
            """)

    @Argument(help: ArgumentHelp("The bundle directory.", valueName: "bundle")) var bundle: String
    @Option(name: .customLong("public-key"), help: ArgumentHelp("The public checkpoint key file.", valueName: "file"))
    var publicKey: String
    @Flag(name: .customLong("require-statement"), help: "Fail unless a signed statement attests that the export is complete.")
    var requireStatement = false
    /// Only `--store-id` (or `AUDITDB_STORE_ID`) applies: fail unless the bundle is of that store (a
    /// checkpoint key shared by a fleet signs every store's bundles).
    @OptionGroup var global: GlobalOptions
    @Flag(help: "No progress on standard error.") var quiet = false

    func run() async throws {
        let expected = try global.expectedStoreID()
        let display = Progress("verify-export", unit: "entries", quiet: quiet)
        let result = try await ExportBundle.verify(at: bundle, publicKeys: try CheckpointPublicKeys.load(path: publicKey),
                                                   requireStatement: requireStatement,
                                                   progress: { display.update($0.rowsChecked, total: $0.totalRows) })
        display.finish()
        if result.isValid, let expected, let found = result.checkpoint?.storeID, found != expected {
            try Output.line("EXPORT INVALID: the bundle verifies, but it is of store \(found.hex), not of store \(expected.hex) (--store-id)")
            throw ExitCode(ExitStatus.violation)
        }
        if result.isValid {
            for line in result.description.split(separator: "\n") { try Output.line(OutputEscaping.escapeForMessage(String(line))) }
            return
        }
        try Output.line("EXPORT INVALID: \(result.findings.count) finding(s)")
        for finding in result.findings.prefix(50) { try Output.line("  " + OutputEscaping.escapeForMessage(finding.description)) }
        if result.findings.count > 50 { try Output.line("  ... and \(result.findings.count - 50) more") }
        if result.findings.count >= ExportBundle.findingLimit {
            try Output.line("  (verification stopped at \(ExportBundle.findingLimit) findings; the rest of the bundle was not checked)")
        }
        throw ExitCode(ExitStatus.violation)
    }
}
