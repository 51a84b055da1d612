import GRDB

/// Newest-first pages read in seq order (issue 19: streaming a tenant newest first cost 1.65x
/// oldest first per row).
///
/// Why a descending read costs more per row than an ascending one, measured on a 1M-row store
/// whose big tenant holds 90% of the rows:
///
/// 1. **The chain link.** ``EntryReader`` checks each row against the MAC of the row before it.
///    Read oldest first, that row is usually the one just read (`lastSeq == seq - 1`); read newest
///    first it never is, so every row costs one more statement (`SELECT mac ... WHERE seq = ?`,
///    a B-tree descent, bindings and a copy of the blob).
/// 2. **The table seek.** Each index entry leads to a seek into the table by rowid. SQLite steps
///    to the next cell instead of descending from the root when the wanted rowid is the current
///    one plus 1 (`sqlite3BtreeTableMoveto`), which only helps ascending reads.
///
/// So when the page's oldest seq can be found from an index alone, without reading a row (no
/// filter, or the tenant with or without action, outcome and severity: `audit_entries_tenant_seq`
/// holds those and the seq, migration 0010), the page is read in two steps inside the same read transaction: that seq (the
/// `limit`-th newest match, found with the statement's own conditions, `LIMIT 1 OFFSET limit-1`),
/// then the same statement ascending from it, and the rows reversed. Both steps select the same
/// rows with the same conditions, so the page is exactly the descending statement's; each row is
/// verified as before, in the verifier's own order.
extension QueryExecution {
    /// Whether the page of `plan` is read oldest first and reversed (see above): newest first,
    /// one statement, and no condition, or the tenant and only conditions the tenant index holds.
    static func readsNewestFirstAscending(_ plan: Plan) -> Bool {
        plan.descending && !plan.bucketed && !plan.seqsFirst
            && (plan.conditions.isEmpty || (plan.tenant != nil && plan.indexedConditions == plan.conditions.count))
    }

    /// The `limit`-th newest seq in `[?1, ?2]` matching the plan's conditions, from the index
    /// alone: `SELECT seq ... ORDER BY seq DESC LIMIT 1 OFFSET ?` (the seq written `(seq >> 0)` for a tenant).
    static func newestFirstFloorSQL(_ plan: Plan) -> String {
        let seq = plan.tenant != nil ? seqKey : "seq"
        let conditions = ["\(seq) >= ?", "\(seq) <= ?"] + plan.conditions
        return "SELECT seq FROM audit_entries WHERE \(conditions.joined(separator: " AND ")) ORDER BY \(seq) DESC LIMIT 1 OFFSET ?"
    }

    /// Reads the page of a ``readsNewestFirstAscending(_:)`` plan, newest first.
    static func readNewestFirstAscending(_ db: Database, plan: Plan, lower: Int64, upper: Int64,
                                         reader: inout EntryReader, into entries: inout [AuditEntry]) throws {
        let floor = try Int64.fetchOne(
            db.cachedStatement(sql: newestFirstFloorSQL(plan)),
            arguments: StatementArguments([lower, upper] + plan.bindings + [Int64(plan.limit - 1)])) ?? lower
        var ascending = plan
        ascending.descending = false
        let statement = try db.cachedStatement(sql: sql(ascending, bucketed: false))
        try statement.setArguments(StatementArguments([floor, upper] + plan.bindings + [Int64(plan.limit)]))
        var page: [AuditEntry] = []
        page.reserveCapacity(min(plan.limit, 1_024))
        try reader.read(statement, into: &page)
        entries.append(contentsOf: page.reversed())
    }
}
