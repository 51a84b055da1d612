import ArgumentParser
import AuditDB

struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print entries, each verified as it is read.",
        discussion: "Text output escapes control characters, newlines, terminal escapes and bidi controls, so no field can forge a line or repaint the terminal. Exit status 1 if a row fails verification.")

    /// table: aligned columns, escaped; json: one object {"entries": [...], "nextCursor": ...};
    /// jsonl: one entry per line.
    enum Format: String, ExpressibleByArgument, CaseIterable { case table, json, jsonl }

    @OptionGroup var global: GlobalOptions
    @OptionGroup var filters: EntryFilterOptions
    @Option(help: ArgumentHelp("Continue after this cursor (printed by the previous page), or after this seq.", valueName: "cursor"))
    var after: String?
    @Option(help: "At most this many entries (1-10000).") var limit = 100
    @Flag(help: "Every matching entry, streamed a page at a time (ignores --limit).") var all = false
    @Flag(help: "Newest first.") var descending = false
    @Flag(name: .customLong("include-unverified"), help: "Show rows that fail verification, marked UNVERIFIED, instead of stopping (exit status 1).")
    var includeUnverified = false
    @Option(help: "table | json | jsonl") var format: Format = .table

    func query() throws -> EntryQuery {
        var query = try filters.filter().entryQuery()
        query.limit = limit
        query.descending = descending
        if let after {
            if let cursor = QueryCursor(token: after) {
                query.cursor = cursor
            } else if let seq = Int64(after) {
                query.afterSeq = seq
            } else {
                throw ValidationError("--after: a cursor such as 1234.asc (printed by the previous page) or a seq")
            }
        }
        query.unverifiedRows = includeUnverified ? .mark : .throw
        return query
    }

    func run() async throws {
        let query = try query()
        let store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                              configuration: try global.configuration())
        let result = await Result {
            if all {
                var count = 0
                var unverified = 0
                if format == .json { Output.line("{\"entries\":[") }
                if format == .table { Output.line(TableFormat.header.joined(separator: "  ")) }
                for try await entry in store.stream(query) {
                    if !entry.isVerified { unverified += 1 }
                    switch format {
                    case .table: Output.line(TableFormat.row(entry))
                    case .json: Output.line((count == 0 ? "" : ",") + EntryJSON.encode(entry))
                    case .jsonl: Output.line(EntryJSON.encode(entry))
                    }
                    count += 1
                }
                if format == .json { Output.line("],\"nextCursor\":null}") }
                return unverified
            }
            let page = try await store.page(query)
            print(page)
            return page.entries.filter { !$0.isVerified }.count
        }
        try await store.close()
        if try result.get() > 0 { throw ExitCode(ExitStatus.violation) }
    }

    private func print(_ page: QueryPage) {
        let entries = page.entries
        switch format {
        case .table:
            let rows = entries.map(TableFormat.cells)
            let widths = TableFormat.header.indices.map { i in
                min(48, ([TableFormat.header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0)
            }
            func render(_ cells: [String]) -> String {
                cells.enumerated().map { i, cell in
                    let c = cell.count > widths[i] ? String(cell.prefix(widths[i] - 1)) + "…" : cell
                    return i == cells.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count)
                }.joined(separator: "  ")
            }
            Output.line(render(TableFormat.header))
            for row in rows { Output.line(render(row)) }
            if let next = page.nextCursor { Output.line("-- next page: --after \(next.token)") }
        case .json:
            let next = page.nextCursor.map { "\"\($0.token)\"" } ?? "null"
            Output.line("{\"entries\":[" + entries.map(EntryJSON.encode).joined(separator: ",") + "],\"nextCursor\":\(next)}")
        case .jsonl:
            for entry in entries { Output.line(EntryJSON.encode(entry)) }
        }
    }
}

enum TableFormat {
    static let header = ["seq", "recorded_at", "tenant", "actor", "action", "resource", "outcome", "severity", "details"]

    static func cells(_ e: AuditEntry) -> [String] {
        // An erased field shows as <erased> (FORMAT.md section 21), never as "-" (absent) or an empty cell.
        [(e.isVerified ? "" : "UNVERIFIED ") + String(e.seq), e.recordedAt.iso8601, e.tenant ?? "-",
         e.isErased(.actor) ? erased : e.actor ?? "(withheld)", e.action,
         [e.resourceType, e.resourceId].compactMap { $0 }.joined(separator: ":"), e.outcome.rawValue,
         e.severity.rawValue, e.isErased(.details) ? erased : e.detailsJSON ?? "-"].map(OutputEscaping.escapeForTerminal)
    }

    static func row(_ e: AuditEntry) -> String { cells(e).joined(separator: "  ") }

    /// How the table shows an erased field.
    static let erased = "<erased>"
}

enum EntryJSON {
    static func encode(_ e: AuditEntry) -> String {
        func q(_ s: String?) -> String { s.map(OutputEscaping.jsonQuoted) ?? "null" }
        let origin: String
        switch e.origin {
        case .recorded: origin = "\"recorded\""
        case .backSigned(let run?): origin = "\"back-signed\",\"originRun\":\(run)"
        case .backSigned(nil): origin = "\"back-signed\""
        }
        // An erased field is {"erased":true} (FORMAT.md section 21): neither null (absent) nor a string.
        let erased = "{\"erased\":true}"
        func field(_ f: WithholdableField, _ s: String?) -> String { e.isErased(f) ? erased : q(s) }
        // detailsJSON was validated as a JSON object when appended and verified when read.
        let details = e.isErased(.details) ? erased : e.detailsJSON.map(OutputEscaping.jsonSafe) ?? "null"
        return "{\"seq\":\(e.seq),\"recordedAt\":\"\(e.recordedAt.iso8601)\",\"occurredAt\":\(q(e.occurredAt?.iso8601)),"
            + "\"tenant\":\(q(e.tenant)),\"actor\":\(field(.actor, e.actor)),\"action\":\(q(e.action)),"
            + "\"resourceType\":\(q(e.resourceType)),\"resourceId\":\(q(e.resourceId)),"
            + "\"outcome\":\"\(e.outcome.rawValue)\",\"severity\":\"\(e.severity.rawValue)\","
            + "\"correlationId\":\(q(e.correlationId)),\"source\":\(field(.source, e.source)),\"details\":\(details),"
            + "\"origin\":\(origin),\"keyVersion\":\(e.keyVersion)"
            + (e.finding.map { ",\"verified\":false,\"finding\":\(OutputEscaping.jsonQuoted($0.description))" } ?? "") + "}"
    }
}
