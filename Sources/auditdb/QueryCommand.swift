import ArgumentParser
import AuditDB

struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print entries, each verified as it is read.",
        discussion: "Text output escapes control characters, newlines, terminal escapes and bidi controls, so no field can forge a line or repaint the terminal. Exit status 1 if a row fails verification.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case table, json, jsonl }

    @OptionGroup var global: GlobalOptions
    @Option var actor: String?
    @Option var action: String?
    @Option var tenant: String?
    @Option(help: "Only entries after this seq (the cursor printed by the previous page).") var after: Int64?
    @Option(help: "At most this many entries (1-10000).") var limit = 100
    @Flag(help: "Newest first.") var descending = false
    @Option(help: "table | json | jsonl") var format: Format = .table

    func run() async throws {
        let store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                              configuration: try global.configuration())
        let entries: [AuditEntry]
        do {
            entries = try await store.entries(EntryQuery(
                afterSeq: after, limit: limit, descending: descending, actor: actor, action: action, tenant: tenant))
            try await store.close()
        } catch {
            try? await store.close()  // cleanup; the original error is rethrown
            throw error
        }
        switch format {
        case .table:
            let header = ["seq", "recorded_at", "tenant", "actor", "action", "resource", "outcome", "severity", "details"]
            let rows = entries.map { e in
                [String(e.seq), e.recordedAt.iso8601, e.tenant ?? "-", e.actor ?? "(withheld)", e.action,
                 [e.resourceType, e.resourceId].compactMap { $0 }.joined(separator: ":"), e.outcome.rawValue,
                 e.severity.rawValue, e.detailsJSON ?? "-"].map(OutputEscaping.escapeForTerminal)
            }
            let widths = header.indices.map { i in min(48, ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0) }
            func render(_ cells: [String]) -> String {
                cells.enumerated().map { i, cell in
                    let c = cell.count > widths[i] ? String(cell.prefix(widths[i] - 1)) + "…" : cell
                    return i == cells.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count)
                }.joined(separator: "  ")
            }
            Output.line(render(header))
            for row in rows { Output.line(render(row)) }
            if let last = entries.last, entries.count == limit { Output.line("-- next page: --after \(last.seq)") }
        case .json:
            Output.line("[" + entries.map(EntryJSON.encode).joined(separator: ",") + "]")
        case .jsonl:
            for entry in entries { Output.line(EntryJSON.encode(entry)) }
        }
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
        // detailsJSON was validated as a JSON object when appended and verified when read.
        let details = e.detailsJSON.map(OutputEscaping.jsonSafe) ?? "null"
        return "{\"seq\":\(e.seq),\"recordedAt\":\"\(e.recordedAt.iso8601)\",\"occurredAt\":\(q(e.occurredAt?.iso8601)),"
            + "\"tenant\":\(q(e.tenant)),\"actor\":\(q(e.actor)),\"action\":\(q(e.action)),"
            + "\"resourceType\":\(q(e.resourceType)),\"resourceId\":\(q(e.resourceId)),"
            + "\"outcome\":\"\(e.outcome.rawValue)\",\"severity\":\"\(e.severity.rawValue)\","
            + "\"correlationId\":\(q(e.correlationId)),\"source\":\(q(e.source)),\"details\":\(details),"
            + "\"origin\":\(origin),\"keyVersion\":\(e.keyVersion)}"
    }
}
