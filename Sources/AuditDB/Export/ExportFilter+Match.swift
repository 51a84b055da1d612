/// Whether an exported entry is one its signed filter selects (FORMAT.md 17.2 step 4, last check).
extension ExportFilter {
    /// The first condition of the filter, in the order of 17.1's table, that the entry's shown
    /// values fail, in words (`its tenant is "b", not "a"`); nil when none fails. A condition on
    /// the actor is not judged when the entry withholds or shows erased its actor.
    func mismatch(_ values: ExportBundle.EntryValues, actor: ExportBundle.FieldShown) -> String? {
        func quoted(_ text: String?) -> String { text.map(OutputEscaping.jsonQuoted) ?? "null" }
        func text(_ name: String, _ wanted: String?, _ shown: String?) -> String? {
            guard let wanted, shown.map({ !$0.utf8.elementsEqual(wanted.utf8) }) ?? true else { return nil }
            return "its \(name) is \(quoted(shown)), not \(quoted(wanted))"
        }
        func range(_ name: String, _ value: Int64?, from: AuditTimestamp?, before: AuditTimestamp?) -> String? {
            let low = from?.microsecondsSinceEpoch, high = before?.microsecondsSinceEpoch
            guard low != nil || high != nil else { return nil }
            if let value, value >= (low ?? .min), high.map({ value < $0 }) ?? true { return nil }
            return "its \(name) is \(value.map(String.init) ?? "null"), not from \(low.map(String.init) ?? "any time") up to before \(high.map(String.init) ?? "any time")"
        }
        if let why = text("tenant", tenant, values.tenant) { return why }
        switch actor {
        case .value(let shown): if let why = text("actor", self.actor, shown) { return why }
        case .null: if let why = text("actor", self.actor, nil) { return why }
        case .withheld, .erased, .unknown: break  // not shown: nothing to judge
        }
        if let why = text("action", action, values.action) { return why }
        if let why = text("resourceType", resourceType, values.resourceType) { return why }
        if let why = text("resourceId", resourceId, values.resourceId) { return why }
        if let outcome, outcome.code != values.outcome {
            return "its outcome is code \(values.outcome), not \(outcome.rawValue) (code \(outcome.code))"
        }
        if let severity, severity.code != values.severity {
            return "its severity is code \(values.severity), not \(severity.rawValue) (code \(severity.code))"
        }
        if let why = text("correlationId", correlationId, values.correlationId) { return why }
        if let seqs, !seqs.contains(values.seq) {
            return "its seq is outside \(seqs.lowerBound)...\(seqs.upperBound)"
        }
        if let why = range("recordedAt", values.recordedAt, from: recordedFrom, before: recordedBefore) { return why }
        return range("occurredAt", values.occurredAt, from: occurredFrom, before: occurredBefore)
    }
}
