import GRDB

/// Tenant + recorded-time queries (issue 19).
///
/// `recorded_at` is the writer's clock: it is not monotone in seq (a clock stepped back, rows
/// back-signed from a legacy table), so no time window maps exactly to a seq range without
/// reading rows. Two exact ways to find the page's seqs:
///
/// 1. **The walk**: the tenant's rows in seq order through `audit_entries_tenant_seq` (one seek,
///    then one row per step), testing every filter on each row. Its cost is the number of the
///    tenant's rows between the query's start and the page's last match: flat when the window
///    is near where the walk starts (the newest rows for a newest-first page), whatever the
///    tenant's size.
/// 2. **The time index**: every entry of the tenant in the window, from the covering
///    `(tenant, recorded_at)` index, sorted by seq (the two-phase plan). Its cost is the number
///    of the tenant's rows in the window, wherever the window lies.
///
/// The walk runs first for at most ``tenantWalkBudget`` of the tenant's rows; if the page is not
/// full by then, the time index answers for the seqs the walk did not reach. Both read in the
/// query's seq order, so their concatenation is exactly the page.
extension QueryExecution {
    /// The most tenant rows the walk reads before the time index takes over (~1-2 ms).
    static let tenantWalkBudget = 2_000

    /// The walk's statement: each of the tenant's rows in seq order, with whether it matches
    /// every filter (tenant and time included, so the test is the same as the time index's).
    static func tenantWalkSQL(_ plan: Plan) -> String {
        "SELECT seq, (\(plan.conditions.joined(separator: " AND "))) FROM audit_entries "
            + "WHERE seq >= ? AND seq <= ? AND tenant = ? ORDER BY seq \(plan.descending ? "DESC" : "ASC") LIMIT ?"
    }

    /// The seqs of the page for a tenant + time query, in the query's order (at most `plan.limit`).
    static func tenantWalkSeqs(_ db: Database, plan: Plan, lower: Int64, upper: Int64, budget: Int = tenantWalkBudget) throws -> [Int64] {
        guard let tenant = plan.tenant else { return [] }
        let walk = try db.cachedStatement(sql: tenantWalkSQL(plan))
        let arguments: [any DatabaseValueConvertible & Sendable] = plan.bindings + [lower, upper, tenant, Int64(budget)]
        var seqs: [Int64] = []
        seqs.reserveCapacity(plan.limit)
        var read = 0, reached: Int64? = nil
        let cursor = try Row.fetchCursor(walk, arguments: StatementArguments(arguments))
        while let row = try cursor.next() {
            read += 1
            let seq: Int64 = row[0]
            reached = seq
            if (row[1] as Int64?) == 1 {
                seqs.append(seq)
                if seqs.count == plan.limit { return seqs }
            }
        }
        // The walk read every row of the tenant in range: nothing is left.
        guard read == budget, let reached else { return seqs }
        let (restLower, restUpper) = plan.descending ? (lower, reached - 1) : (reached + 1, upper)
        guard restLower <= restUpper else { return seqs }
        let more = try Int64.fetchAll(
            db.cachedStatement(sql: sql(plan, bucketed: false)),
            arguments: StatementArguments([restLower, restUpper] + plan.bindings + [Int64(plan.limit - seqs.count)]))
        return seqs + more
    }
}
