import ArgumentParser
import AuditDB
import Foundation

struct Retain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Expire the rows a retention policy no longer requires, with proof; rows under a legal hold stay.",
        discussion: """
            A row expires when it was recorded more than --older-than ago (or its tenant's --tenant limit), no \
            active legal hold matches it, and it verifies. Its values leave the store; a tombstone keeps the chain \
            and the Merkle tree whole, and a signed expiry entry records the policy (docs/FORMAT.md section 20, \
            docs/retention.md). AuditDB's own entries and the newest row never expire. Rows go in batches, each \
            one durable transaction: if interrupted, run the command again. SIGTERM or SIGINT stops it between two \
            batches; it says how far it got and exits 2. Exit status 1 if a row or hold entry \
            fails verification (nothing of that batch is written), 2 for bad arguments or storage errors.
            """)
    @OptionGroup var global: GlobalOptions
    @Option(name: .customLong("older-than"), parsing: .unconditional,
            help: ArgumentHelp("The default limit: a period such as 90d, 12h, 2w, or `forever`.", valueName: "period"))
    var olderThan: String
    @Option(help: ArgumentHelp("A tenant's own limit, as TENANT=PERIOD (e.g. bank=400d, or bank=forever); repeatable.",
                               valueName: "tenant=period"))
    var tenant: [String] = []
    @Flag(name: .customLong("dry-run"), help: "Say what would expire; write nothing.") var dryRun = false
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Rows per transaction (appends wait at most one batch).",
            transform: StrictNumber.count)
    var batchSize: Int = 10_000
    @Option(help: ArgumentHelp("Archive each batch first: a verified, signed export bundle per batch in this directory (it must exist).",
                               valueName: "dir"))
    var archive: String?
    @Option(name: .customLong("signing-key"),
            help: ArgumentHelp("With --archive: the secret checkpoint key file that proves and signs the bundles.", valueName: "file"))
    var signingKey: String?
    @Flag(help: "No progress on standard error.") var quiet = false

    func validate() throws {
        // The --tenant syntax here, so that its errors show this command's usage.
        _ = try tenantPeriods()
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard (archive == nil) == (signingKey == nil) else {
            throw ValidationError("--archive and --signing-key go together: the bundles are proven against a signed checkpoint")
        }
    }

    /// The --tenant options as (tenant, period text), each tenant once byte for byte: tenants are
    /// compared as the rows hold them, so "café" composed and decomposed are two tenants.
    func tenantPeriods() throws -> [(tenant: String, limit: String)] {
        var tenants: [(tenant: String, limit: String)] = []
        var seen: Set<[UInt8]> = []
        for item in tenant {
            // At the last "=" (a scalar: not joined with a combining mark after it): a period never
            // holds one, a tenant name may (a=b=400d is tenant "a=b").
            guard let equals = item.unicodeScalars.lastIndex(of: "="), equals != item.startIndex else {
                throw ValidationError("--tenant takes TENANT=PERIOD (e.g. bank=400d), not \(OutputEscaping.jsonQuoted(item))")
            }
            let name = String(item.unicodeScalars[..<equals])
            guard seen.insert(Array(name.utf8)).inserted else { throw ValidationError("--tenant names \(OutputEscaping.jsonQuoted(name)) twice") }
            tenants.append((name, String(item.unicodeScalars[item.unicodeScalars.index(after: equals)...])))
        }
        return tenants
    }

    func policy() throws -> RetentionPolicy {
        try RetentionPolicy(parsingDefault: olderThan, tenantTexts: try tenantPeriods())
    }

    func run() async throws {
        let policy = try policy()
        let destination = try archive.map { RetentionArchive(directory: $0, signer: try CheckpointSigner.load(path: signingKey ?? ""), createsDirectory: false) }
        for leftover in destination?.interruptedStaging() ?? [] {
            Output.notice("warning: \(leftover) is the staging directory of an archive bundle that an interrupted run left (killed before its rename), or of a run going on now; it holds copies of that batch's rows, values erased since included. Delete it (that batch did not expire then; a run archives its rows again)")
        }
        let display = Progress("retain", unit: "candidate rows", quiet: quiet)
        let report = try await withStore(global) { store in
            // A tenant named with a typo ("bank " for "bank") would leave the real tenant's rows to
            // the default limit: say so for each named tenant that has no row (it may be one to come).
            for name in policy.tenantOverrides.map(\.tenant)
            where try await store.page(EntryQuery(limit: 1, tenant: name, unverifiedRows: .mark)).entries.isEmpty {
                Output.notice("warning: --tenant \(OutputEscaping.jsonQuoted(name)) matches no row of the store, so its limit applies to nothing yet; tenant names match exactly (a typo leaves that tenant's rows to --older-than)")
            }
            let dryRun = dryRun
            return try await stoppable {
                try await store.applyRetention(policy, dryRun: dryRun, batchSize: batchSize, archive: destination,
                                               progress: { display.update($0.rowsChecked, total: $0.totalRows) })
            }
        }
        display.finish()
        let verb = report.dryRun ? "would expire" : "expired"
        try Output.line("\(verb) \(report.expired) row(s) under policy default \(policy.defaultLimit)"
            + policy.tenantOverrides.map { ", \(OutputEscaping.jsonQuoted($0.tenant)) \($0.limit)" }.joined()
            + "; \(report.held) kept by legal holds")
        for count in report.expiredPerTenant {
            try Output.line("  \(count.tenant.isEmpty ? "(no tenant)" : OutputEscaping.jsonQuoted(count.tenant)): \(count.count)")
        }
        if !report.keptByForeignTombstones.isEmpty {
            Output.notice("warning: kept \(report.keptByForeignTombstones.count) row(s) the policy would expire, because a tombstone no expiry wrote already holds their seq (first: \(report.keptByForeignTombstones[0])); `auditdb verify` reports it as foreign-row, and docs/retention.md says how to remove it")
        }
        for bundle in report.archives { try Output.line("archived to \(OutputEscaping.escapeForMessage(bundle))") }
        if !report.expiryEntries.isEmpty {
            try Output.line("expiry entries: \(report.expiryEntries.map(String.init).joined(separator: ", "))")
        }
        if let space = report.space { try Output.line(SpaceLine.describe(space)) }
    }
}
