/// Access entries: who read what out of the store (docs/FORMAT.md section 23.4). A report, an
/// export, and a query that asks for it each leave one, so the log itself shows who took which
/// data. An access entry is one of AuditDB's own entries, which are never erased: it holds no
/// value of any row and no filter value (a filter may name a person), only which conditions
/// were used and, for a filter that names no person, SHA-256 of the filter's encoding
/// (FILTER_ENC, section 17.3), which matches the `filterHash` of an export's signed statement.
extension AuditStore {
    /// The action of an access entry.
    static let accessAction = "auditdb.access"

    /// Checks who asks (an access entry's actor: the rules of `actor`) before any work is done.
    /// - Throws: ``AuditError`` `invalidInput` naming `field`.
    public static func checkRequester(_ name: String, field: String = "--by") throws(AuditError) {
        try checkPerson(name, field: field)
    }

    /// Appends the access entry of one read: action `auditdb.access`, actor `by` (`auditdb` if
    /// nil), resource type `kind`, severity notice, details `kind` and `details`.
    func recordAccess(kind: String, by: String?, details: [String: JSONValue]) async throws -> Int64 {
        var all = details
        all["kind"] = .string(kind)
        return try await appendEngineEntry(AuditEvent(actor: by ?? "auditdb", action: Self.accessAction, resourceType: kind,
                                                      severity: .notice, details: AuditDetails(all)))
    }

    /// The details an export's or a query's access entry shares: which filter conditions were
    /// used (their manifest names), SHA-256 of FILTER_ENC, and the masking rules applied.
    static func accessDetails(filter: ExportFilter, redact: Set<WithholdableField>, masking: MaskingPolicy, entries: Int)
        -> [String: JSONValue]
    {
        let used: [(String, Bool)] = [
            ("tenant", filter.tenant != nil), ("actor", filter.actor != nil), ("action", filter.action != nil),
            ("resourceType", filter.resourceType != nil), ("resourceId", filter.resourceId != nil), ("outcome", filter.outcome != nil),
            ("severity", filter.severity != nil), ("correlationId", filter.correlationId != nil), ("seqs", filter.seqs != nil),
            ("recordedFrom", filter.recordedFrom != nil), ("recordedBefore", filter.recordedBefore != nil),
            ("occurredFrom", filter.occurredFrom != nil), ("occurredBefore", filter.occurredBefore != nil),
        ]
        var details: [String: JSONValue] = [
            "conditions": .array(used.filter(\.1).map { .string($0.0) }),
            "masked": .array(masking.rules.map { .string($0.description) }),
            "entryCount": .int(Int64(entries)),
        ]
        // A hash without a key of a filter that names a person confirms a guess of that name,
        // for ever (this entry is never erased), even after the person's rows are erased: only
        // filters without such a value are hashed (FORMAT.md 23.4).
        if !Self.namesAPerson(filter) {
            details["filterSha256"] = .string(Hex.encode(ExportStatement.sha256(filter.encoding(redact: redact))))
        }
        return details
    }

    /// Whether a filter holds a value that may name a person: a tenant, an actor, a resource id
    /// or a correlation id.
    static func namesAPerson(_ filter: ExportFilter) -> Bool {
        filter.tenant != nil || filter.actor != nil || filter.resourceId != nil || filter.correlationId != nil
    }

    /// Records that `by` read `entries` entries matching `filter` (`auditdb query
    /// --record-access --by WHO`): an access entry of kind `query`.
    /// - Returns: The entry's seq.
    /// - Throws: ``AuditError`` `invalidInput` for a bad name; storage errors.
    @discardableResult
    public func recordQueryAccess(filter: ExportFilter, masking: MaskingPolicy = .none, entries: Int, by: String) async throws -> Int64 {
        try Self.checkRequester(by)
        return try await recordAccess(kind: "query", by: by,
                                      details: Self.accessDetails(filter: filter, redact: [], masking: masking, entries: entries))
    }
}
