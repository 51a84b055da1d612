import ArgumentParser
import AuditDB

/// The entry filters `query` and `export` share. Every condition given must match.
struct EntryFilterOptions: ParsableArguments {
    @Option var tenant: String?
    @Option var actor: String?
    @Option var action: String?
    @Option(name: .customLong("resource-type")) var resourceType: String?
    @Option(name: .customLong("resource-id")) var resourceId: String?
    @Option(help: "success | failure | denied | error") var outcome: String?
    @Option(help: "info | notice | warning | critical") var severity: String?
    @Option(name: .customLong("correlation-id")) var correlationId: String?
    @Option(name: .customLong("from-seq"), parsing: .unconditional, help: "Only entries from this seq on.", transform: StrictNumber.integer) var fromSeq: Int64?
    @Option(name: .customLong("to-seq"), parsing: .unconditional, help: "Only entries up to this seq.", transform: StrictNumber.integer) var toSeq: Int64?
    @Option(help: ArgumentHelp("Only entries recorded at or after this time (RFC 3339).", valueName: "time")) var since: String?
    @Option(help: ArgumentHelp("Only entries recorded before this time (RFC 3339).", valueName: "time")) var until: String?
    @Option(name: .customLong("occurred-since"), help: ArgumentHelp("Only entries that occurred at or after this time.", valueName: "time"))
    var occurredSince: String?
    @Option(name: .customLong("occurred-until"), help: ArgumentHelp("Only entries that occurred before this time.", valueName: "time"))
    var occurredUntil: String?

    /// The filters, checked: an unknown outcome or severity, a time that is not RFC 3339 and a
    /// seq or time range that ends before it starts are refused, naming the option.
    func filter() throws(AuditError) -> ExportFilter {
        var filter = ExportFilter(tenant: tenant, actor: actor, action: action)
        if fromSeq != nil || toSeq != nil {
            for (value, option) in [(fromSeq, "--from-seq"), (toSeq, "--to-seq")] {
                if let value, value < 0 {
                    throw AuditError(.invalidInput, "\(option) must be a seq, 0 or more (got \(value))", field: option)
                }
            }
            let low = fromSeq ?? 1, high = toSeq ?? Int64.max
            guard low <= high else { throw AuditError(.invalidInput, "--from-seq must not be above --to-seq", field: "--from-seq") }
            filter.seqs = low...high
        }
        filter.recordedFrom = try Self.time(since, "--since")
        filter.recordedBefore = try Self.time(until, "--until")
        filter.occurredFrom = try Self.time(occurredSince, "--occurred-since")
        filter.occurredBefore = try Self.time(occurredUntil, "--occurred-until")
        for (from, before, options) in [(filter.recordedFrom, filter.recordedBefore, ("--since", "--until")),
                                        (filter.occurredFrom, filter.occurredBefore, ("--occurred-since", "--occurred-until"))]
        {
            if let from, let before, before < from {
                throw AuditError(.invalidInput, "\(options.1) is before \(options.0): the time range ends before it starts", field: options.1)
            }
        }
        filter.resourceType = resourceType
        filter.resourceId = resourceId
        filter.correlationId = correlationId
        if let outcome {
            guard let value = AuditOutcome(rawValue: outcome) else {
                throw AuditError(.invalidInput, "--outcome must be success, failure, denied or error", field: "--outcome")
            }
            filter.outcome = value
        }
        if let severity {
            guard let value = AuditSeverity(rawValue: severity) else {
                throw AuditError(.invalidInput, "--severity must be info, notice, warning or critical", field: "--severity")
            }
            filter.severity = value
        }
        return filter
    }

    private static func time(_ text: String?, _ option: String) throws(AuditError) -> AuditTimestamp? {
        guard let text else { return nil }
        // The parser's own reason (7 fractional digits, a leap second, outside 0001-9999), as
        // `append --occurred-at` gives it: the four time filters and the event read times alike.
        switch AuditTimestamp.parse(text) {
        case .success(let t):
            return t
        case .failure(let problem):
            throw AuditError(.invalidInput, "\(option): \(OutputEscaping.jsonQuoted(text)) \(problem.description)", field: option)
        }
    }
}

extension ExportFilter {
    /// The same conditions as a query (`query`, `tail`): every filter, no order, cursor or limit.
    func entryQuery() throws -> EntryQuery {
        func range(_ from: AuditTimestamp?, _ to: AuditTimestamp?) throws -> Range<AuditTimestamp>? {
            guard from != nil || to != nil else { return nil }
            let lower = from ?? .minimum, upper = to ?? AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.maximum.microsecondsSinceEpoch + 1)
            guard lower <= upper else { throw ValidationError("the time range ends before it starts") }
            return lower..<upper
        }
        var query = EntryQuery(actor: actor, action: action, tenant: tenant, resourceType: resourceType,
                               resourceId: resourceId, outcome: outcome, severity: severity, correlationId: correlationId,
                               seqs: seqs)
        query.recordedAt = try range(recordedFrom, recordedBefore)
        query.occurredAt = try range(occurredFrom, occurredBefore)
        return query
    }
}
