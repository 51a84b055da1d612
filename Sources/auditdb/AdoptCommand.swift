import ArgumentParser
import AuditDB
import Foundation

struct Adopt: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Back-sign a legacy audit table: validate it, then append its rows as back-signed entries.",
        discussion: """
            Every source column must be mapped (--map FIELD=COLUMN; FIELD is one of actor, action, tenant, \
            resourceType, resourceId, outcome, severity, correlationId, source, occurredAt, details) or the run \
            is refused, unless --drop-unmapped. All rows are validated first; invalid rows are listed by id and \
            nothing is imported unless --skip-invalid. Rows keep their order (--id-column, default rowid) and \
            their timestamps (occurredAt). Into an empty or small store the rows go in one transaction with the \
            indexes built once at its end (--commits automatic): killed, nothing stays and running it again starts \
            over. With --commits batches (or into a larger store) they go --batch-size rows per transaction: \
            killed and run again, it resumes. The legacy table is left as it was \
            unless --then protect (triggers refuse UPDATE/DELETE) or --then drop (after a verified import).

            EXIT STATUS: 0 done or nothing to do; 1 the store does not verify; 2 invalid rows, bad arguments, \
            storage error. Output: a progress bar on standard error and a summary on a terminal; otherwise plain \
            progress lines on standard error and one JSON summary line on standard output.
            """)

    enum ProgressStyle: String, ExpressibleByArgument, CaseIterable { case auto, bar, none }

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("The SQLite file holding the legacy table.", valueName: "path")) var source: String
    @Option(help: "The legacy table.") var table: String
    @Option(name: .customLong("map"), help: ArgumentHelp("FIELD=COLUMN (repeat).", valueName: "field=column"))
    var mappings: [String] = []
    @Option(name: .customLong("id-column"), help: "The integer column giving the order (default: rowid).") var idColumn: String?
    @Option(name: .customLong("timestamp-format"), help: "auto | iso8601 | unix-seconds | unix-milliseconds | unix-microseconds")
    var timestampFormat: String = "auto"
    @Flag(name: .customLong("skip-invalid"), help: "Import the valid rows; list and count the invalid ones.") var skipInvalid = false
    @Flag(name: .customLong("drop-unmapped"), help: "Leave out unmapped columns (recorded in the run entry).") var dropUnmapped = false
    @Option(name: .customLong("then"), help: "leave | protect | drop") var afterwards: String = "leave"
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Rows per transaction (with --commits batches).") var batchSize = 10_000
    @Option(help: "automatic (one transaction into an empty or small store, else batches) | batches | one-transaction")
    var commits: String = "automatic"
    @Option(help: "auto (a bar on a terminal, else plain lines) | bar | none") var progress: ProgressStyle = .auto

    func adoption() throws -> LegacyAdoption {
        var mapping: [LegacyAdoption.Field: String] = [:]
        for item in mappings {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let field = LegacyAdoption.Field(rawValue: parts[0]), !parts[1].isEmpty else {
                throw AuditError(
                    .invalidInput,
                    "--map \(item): expected FIELD=COLUMN with FIELD one of \(LegacyAdoption.Field.allCases.map(\.rawValue).joined(separator: ", "))",
                    field: "--map")
            }
            guard mapping[field] == nil else { throw AuditError(.invalidInput, "--map \(field.rawValue) is given twice", field: "--map") }
            mapping[field] = parts[1]
        }
        var adoption = LegacyAdoption(sourcePath: source, table: table, mapping: mapping)
        adoption.idColumn = idColumn
        guard let format = LegacyAdoption.TimestampFormat(rawValue: timestampFormat) else {
            throw AuditError(.invalidInput, "--timestamp-format must be one of \(LegacyAdoption.TimestampFormat.allCases.map(\.rawValue).joined(separator: ", "))",
                             field: "--timestamp-format")
        }
        adoption.timestampFormat = format
        guard let then = LegacyAdoption.Afterwards(rawValue: afterwards) else {
            throw AuditError(.invalidInput, "--then must be leave, protect or drop", field: "--then")
        }
        adoption.afterwards = then
        adoption.skipInvalid = skipInvalid
        adoption.dropUnmapped = dropUnmapped
        adoption.batchSize = batchSize
        guard let commits = LegacyAdoption.Commits(rawValue: commits) else {
            throw AuditError(.invalidInput, "--commits must be automatic, batches or one-transaction", field: "--commits")
        }
        adoption.commits = commits
        return adoption
    }

    func run() async throws {
        let adoption = try adoption()
        let store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                              configuration: try global.configuration())
        let showBar = progress == .bar || (progress == .auto && Platform.standardErrorIsTerminal)
        let display = Progress("adopt", unit: "rows", quiet: progress == .none, style: progress == .bar ? .terminal : nil)
        let started = Date()
        let report: AdoptionReport
        do {
            report = try await store.adopt(adoption) { step in
                display.update(Int64(step.imported), total: Int64(step.total))
            }
            try await store.close()
        } catch {
            display.finish()
            try? await store.close()  // cleanup; the original error is rethrown
            throw error
        }
        display.finish()
        let seconds = Date().timeIntervalSince(started)
        if showBar {
            try Output.line("adopted \(report.imported) row(s) of \(table) as back-signed entries of run \(report.runSeq)"
                + (report.resumedFrom > 0 ? " (resumed after \(report.resumedFrom))" : "")
                + (report.skippedCount == 0 ? "" : "; skipped \(report.skippedCount) invalid row(s): \(report.skipped.prefix(20).map(String.init).joined(separator: ", "))\(report.skippedCount > 20 ? ", ..." : "")")
                + (report.droppedColumns.isEmpty ? "" : "; columns left out: \(report.droppedColumns.joined(separator: ", "))")
                + "; legacy table: \(report.afterwards.rawValue)")
        } else {
            try Output.line("{\"run\":\(report.runSeq),\"imported\":\(report.imported),\"skipped\":\(report.skippedCount),"
                + "\"skippedIds\":[\(report.skipped.map(String.init).joined(separator: ","))],"
                + "\"resumedFrom\":\(report.resumedFrom),\"total\":\(report.total),\"sourceDigest\":\"\(report.sourceDigest)\","
                + "\"seconds\":\(String(format: "%.3f", seconds))}")
        }
    }
}
