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
    @Option(parsing: .unconditional, help: ArgumentHelp("Continue after this cursor (printed by the previous page), or after this seq.", valueName: "cursor"))
    var after: String?
    @Option(parsing: .unconditional, help: "At most this many entries (1-10000; default 100).", transform: StrictNumber.count) var limit: Int?
    @Flag(help: "Every matching entry, streamed a page at a time (not with --limit).") var all = false
    @Flag(help: "Newest first.") var descending = false
    @Flag(name: .customLong("include-unverified"), help: "Show rows that fail verification, marked UNVERIFIED (in JSON: \"verified\":false, and details as the stored text in a JSON string), and go on to the end instead of stopping at the first; the exit status is still 1 when any was shown.")
    var includeUnverified = false
    @Option(help: "table | json | jsonl (jsonl prints the next page's cursor, if any, on standard error)") var format: Format = .table
    @OptionGroup var masks: MaskOptions
    @Flag(name: .customLong("record-access"), help: "Record this query in the log as an access entry (needs --by).")
    var recordAccess = false
    @Option(help: ArgumentHelp("With --record-access: who reads, the access entry's actor.", valueName: "name"))
    var by: String?

    func validate() throws {
        guard recordAccess == (by != nil) else { throw ValidationError("--record-access and --by go together: --record-access --by WHO") }
        if let by { try Self.checkBy(by) }
        // A limit that --all would not apply is refused, not dropped.
        if all, limit != nil { throw ValidationError("--all prints every matching entry and --limit one page of them: give one or the other") }
        // Here, so that a bad --after is shown with this command's usage.
        if let after, QueryCursor(token: after) == nil, DecimalText.nonNegativeInt64(after) == nil { throw Self.badAfter(after) }
    }

    static func badAfter(_ after: String) -> ValidationError {
        if StrictNumber.isTooLarge(after) { return ValidationError("--after: \(after) is too large") }
        return ValidationError("--after: a cursor such as 1234.asc (printed by the previous page) or a seq (0 or more, decimal digits), not \(OutputEscaping.jsonQuoted(after))")
    }

    func query() throws -> EntryQuery {
        var query = try filters.filter().entryQuery()
        query.limit = limit ?? 100
        query.descending = descending
        if let after {
            if let cursor = QueryCursor(token: after) {
                query.cursor = cursor
            } else if let seq = DecimalText.nonNegativeInt64(after) {
                query.afterSeq = seq
            } else {
                throw Self.badAfter(after)
            }
        }
        query.unverifiedRows = includeUnverified ? .mark : .throw
        return query
    }

    func run() async throws {
        let filter = try filters.filter()
        let query = try query()
        let extraMasks = try masks.rules()
        let store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                              configuration: try global.configuration(readOnly: !recordAccess))
        var printed = 0
        var policy = MaskingPolicy.none
        let result = await Result { () async throws -> Int in
            policy = try await masks.policy(for: store, extra: extraMasks)
            let reader = store.masked(by: policy)
            if all {
                var unverified = 0
                if format == .json { try Output.line("{\"entries\":[") }
                if format == .table { try Output.line(TableFormat.header.joined(separator: "  ")) }
                for try await entry in reader.stream(query) {
                    if !entry.isVerified { unverified += 1 }
                    switch format {
                    case .table: try Output.line(TableFormat.row(entry))
                    case .json: try Output.line((printed == 0 ? "" : ",") + EntryJSON.encode(entry))
                    case .jsonl: try Output.line(EntryJSON.encode(entry))
                    }
                    printed += 1
                }
                if format == .json { try Output.line("],\"nextCursor\":null}") }
                return unverified
            }
            let page = try await reader.page(query)
            try print(page)
            printed = page.entries.count
            return page.entries.filter { !$0.isVerified }.count
        }
        // What was printed was read, also when a row failed verification after it.
        var succeeded = false
        if case .success = result { succeeded = true }
        let recorded = await Result { () async throws -> Int64? in
            guard recordAccess, let by, printed > 0 || succeeded else { return nil }
            return try await store.recordQueryAccess(filter: filter, masking: policy, entries: printed, by: by)
        }
        try await store.close()
        if let seq = try recorded.get() { Output.notice("recorded in the log as access entry \(seq)") }
        if try result.get() > 0 { throw ExitCode(ExitStatus.violation) }
    }

    private func print(_ page: QueryPage) throws {
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
            try Output.line(render(TableFormat.header))
            for row in rows { try Output.line(render(row)) }
            if let next = page.nextCursor { try Output.line("-- next page: --after \(next.token)") }
        case .json:
            let next = page.nextCursor.map { "\"\($0.token)\"" } ?? "null"
            try Output.line("{\"entries\":[" + entries.map(EntryJSON.encode).joined(separator: ",") + "],\"nextCursor\":\(next)}")
        case .jsonl:
            for entry in entries { try Output.line(EntryJSON.encode(entry)) }
            // Every line of standard output is an entry; the cursor goes to standard error.
            if let next = page.nextCursor { Output.notice("next page: --after \(next.token)") }
        }
    }
}

enum TableFormat {
    static let header = ["seq", "recorded_at", "tenant", "actor", "action", "resource", "outcome", "severity", "details"]

    static func cells(_ e: AuditEntry) -> [String] {
        // An erased field shows as <erased> (FORMAT.md section 21), a masked one as <masked:SHOWN>
        // (docs/masking.md), never as "-" (absent) or an empty cell.
        func field(_ f: WithholdableField, _ value: String?, absent: String) -> String {
            if e.isErased(f) { return erased }
            if let mask = e.mask(of: f) { return "<masked:\(mask.shown)>" }
            return value ?? absent
        }
        // A value that could be read as another cell, as a marker or as two columns is shown
        // JSON-quoted (the details, last and always JSON, need not be).
        func value(_ text: String?, absent: String) -> String { text.map { quotedIfAmbiguous($0) } ?? absent }
        func marker(_ f: WithholdableField, _ text: String?, absent: String) -> String {
            e.isErased(f) || e.mask(of: f) != nil ? field(f, text, absent: absent) : value(text, absent: absent)
        }
        // A back-signed row is labelled as such on every output (JSON: "origin"): its MAC proves it
        // unchanged since its adoption, not that it was true before (docs/migrations.md).
        let origin = if case .backSigned = e.origin { " back-signed" } else { "" }
        return [(e.isVerified ? "" : "UNVERIFIED ") + String(e.seq) + origin, e.recordedAt.iso8601, value(e.tenant, absent: "-"),
                marker(.actor, e.actor, absent: "(withheld)"), quotedIfAmbiguous(e.action),
                resource(e),
                e.outcome.rawValue, e.severity.rawValue,
                field(.details, e.detailsJSON, absent: "-") + erasedPaths(e)].map(OutputEscaping.escapeForTerminal)
    }

    /// `TYPE:ID`; `TYPE:` or `:ID` when only one is given (`doc` alone would not say which); empty
    /// when neither is. A part holding `:` is JSON-quoted.
    static func resource(_ e: AuditEntry) -> String {
        guard e.resourceType != nil || e.resourceId != nil else { return "" }
        let parts = [e.resourceType, e.resourceId].map { $0.map { quotedIfAmbiguous($0, alsoQuoting: ":") } ?? "" }
        return parts.joined(separator: ":")
    }

    /// `text`, or its JSON quoting when it is empty, could be read as a marker of the table
    /// (`-`, `(withheld)`, `<erased>`, `<masked:…>`, a leading quote), or holds white space (or
    /// one of `alsoQuoting`), which would draw another column.
    static func quotedIfAmbiguous(_ text: String, alsoQuoting: Character? = nil) -> String {
        let ambiguous = text.isEmpty || text == "-" || text == "(withheld)" || text == erased || text.hasPrefix("<masked:")
            || text.hasPrefix("\"") || text.contains(where: { $0.isWhitespace || $0 == alsoQuoting })
        return ambiguous ? OutputEscaping.jsonQuoted(text) : text
    }

    static func row(_ e: AuditEntry) -> String { cells(e).joined(separator: "  ") }

    /// How the table shows an erased field.
    static let erased = "<erased>"

    /// After a details whose paths were erased (FORMAT.md 21.7): ` <erased:details.email,details.ip>`.
    static func erasedPaths(_ e: AuditEntry) -> String {
        e.erasedDetailPaths.isEmpty ? "" : " <erased:" + e.erasedDetailPaths.map(\.description).joined(separator: ",") + ">"
    }
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
        // A masked field is {"masked":METHOD,"value":SHOWN}, and "masked" lists every masked path
        // (docs/masking.md): only that list tells a masked member of details from a real object.
        func masked(_ f: WithholdableField) -> String? {
            e.mask(of: f).map { "{\"masked\":\"\($0.method.rawValue)\",\"value\":\(q($0.shown))}" }
        }
        func field(_ f: WithholdableField, _ s: String?) -> String { e.isErased(f) ? erased : masked(f) ?? q(s) }
        // A verified row's detailsJSON was validated as a JSON object when appended. An unverified
        // row's (--include-unverified) may be anything another client wrote, e.g. text that closes
        // the object and adds members of its own: it is shown as a JSON string, never spliced in.
        let stored = e.finding == nil ? e.detailsJSON.map(OutputEscaping.jsonSafe) : e.detailsJSON.map(OutputEscaping.jsonQuoted)
        let details = e.isErased(.details) ? erased : masked(.details) ?? stored ?? "null"
        let maskList = e.masked.isEmpty ? "" : ",\"masked\":[" + e.masked.map { q($0.path.description) }.joined(separator: ",") + "]"
        // Paths erased inside details (FORMAT.md 21.7): gone from "details", named here.
        let erasedList = e.erasedDetailPaths.isEmpty ? "" : ",\"erasedPaths\":[" + e.erasedDetailPaths.map { q($0.description) }.joined(separator: ",") + "]"
        return "{\"seq\":\(e.seq),\"recordedAt\":\"\(e.recordedAt.iso8601)\",\"occurredAt\":\(q(e.occurredAt?.iso8601)),"
            + "\"tenant\":\(q(e.tenant)),\"actor\":\(field(.actor, e.actor)),\"action\":\(q(e.action)),"
            + "\"resourceType\":\(q(e.resourceType)),\"resourceId\":\(q(e.resourceId)),"
            + "\"outcome\":\"\(e.outcome.rawValue)\",\"severity\":\"\(e.severity.rawValue)\","
            + "\"correlationId\":\(q(e.correlationId)),\"source\":\(field(.source, e.source)),\"details\":\(details)\(erasedList)\(maskList),"
            + "\"origin\":\(origin),\"keyVersion\":\(e.keyVersion)"
            + (e.finding.map { ",\"verified\":false,\"finding\":\(OutputEscaping.jsonQuoted($0.description))" } ?? "") + "}"
    }
}
