import GRDB

/// Tenant + recorded-time queries (issue 19). First choice: the window as seq ranges between the
/// log's time breaks (QueryExecution+TimeSegments.swift); what follows is the fallback for stores
/// with many breaks.
///
/// `recorded_at` is the writer's clock: it is not monotone in seq (a clock stepped back), so no
/// time window maps exactly to a seq range without reading rows. Two exact ways to find the
/// page's seqs:
///
/// 1. **The time index**: every entry of the tenant in the window, from the covering
///    `(tenant, recorded_at)` index, sorted by seq (the two-phase plan). Its cost is the number
///    of the tenant's entries in the window (M), wherever the window lies.
/// 2. **The walk**: the tenant's rows in seq order through `audit_entries_tenant_seq` (one seek,
///    then one row per step), testing every filter on each row. Its cost is the number of the
///    tenant's rows between the query's start and the page's last match: flat when the window
///    is near where the walk starts (the newest rows for a newest-first page), whatever the
///    tenant's size, but each step reads a row.
///
/// So: first count the window's entries in the covering index, stopping at ``tenantProbeLimit``.
/// Fewer: the time index answers alone (cheap). More: the walk runs for at most
/// ``tenantWalkBudget(limit:)`` rows; if the page is not full by then, the time index answers
/// for the seqs the walk did not reach (cost M: what remains of issue 19 for wide windows far
/// from the page's start). Both read in the query's seq order, so their concatenation is exactly
/// the page.
extension QueryExecution {
    /// Entries of the window counted in the covering time index before choosing the walk.
    static let tenantProbeLimit = 4_096

    /// The most tenant rows the walk reads before the time index takes over.
    static func tenantWalkBudget(limit: Int) -> Int { min(10_000, max(512, 4 * limit)) }

    /// Counts the window's entries (up to `?6`) in the covering `(tenant, recorded_at)` index.
    static let tenantProbeSQL = """
        SELECT count(*) FROM (SELECT 1 FROM audit_entries WHERE +seq >= ? AND +seq <= ? AND tenant = ? \
        AND recorded_at >= ? AND recorded_at < ? LIMIT ?)
        """

    /// The walk's statement: each of the tenant's rows in seq order, with whether it matches
    /// every filter (tenant and time included, so the test is the same as the time index's).
    static func tenantWalkSQL(_ plan: Plan) -> String {
        "SELECT seq, (\(plan.conditions.joined(separator: " AND "))) FROM audit_entries "
            + "WHERE \(seqKey) >= ? AND \(seqKey) <= ? AND tenant = ? ORDER BY \(seqKey) \(plan.descending ? "DESC" : "ASC") LIMIT ?"
    }

    /// The seqs of the page for a tenant + time query, in the query's order (at most `plan.limit`).
    /// `signed`: whether the row at a seq is signed at it (``windowRanges(_:window:lower:upper:signed:)``).
    static func tenantWalkSeqs(_ db: Database, plan: Plan, lower: Int64, upper: Int64, signed: (Int64) throws -> Bool,
                               probeLimit: Int = tenantProbeLimit, budget: Int? = nil, timeBreaks: Bool = true) throws -> [Int64] {
        guard let tenant = plan.tenant, let window = plan.recordedWindow else { return [] }
        // The window as seq ranges between the log's time breaks (QueryExecution+TimeSegments.swift);
        // without them, with too many, or resting on a row not signed, the probe and walk below.
        if timeBreaks, let ranges = try windowRanges(db, window: window, lower: lower, upper: upper, signed: signed) {
            return try segmentWalkSeqs(db, plan: plan, tenant: tenant, ranges: ranges)
        }
        var seqs: [Int64] = []
        var restLower = lower, restUpper = upper
        let inWindow = try Int.fetchOne(
            db.cachedStatement(sql: tenantProbeSQL),
            arguments: [lower, upper, tenant, window.lower, window.upper, probeLimit]) ?? 0
        if inWindow >= probeLimit {
            let budget = budget ?? tenantWalkBudget(limit: plan.limit)
            let walk = try db.cachedStatement(sql: tenantWalkSQL(plan))
            let arguments: [any DatabaseValueConvertible & Sendable] = plan.bindings + [lower, upper, tenant, Int64(budget)]
            seqs.reserveCapacity(plan.limit)
            var read = 0, reached: Int64? = nil
            let cursor = try Row.fetchCursor(walk, arguments: StatementArguments(arguments))
            while let row = try cursor.next() {
                read += 1
                let seq: Int64 = row[0]
                reached = seq
                if row.stored(1, as: Int64.self) == 1 {
                    seqs.append(seq)
                    if seqs.count == plan.limit { return seqs }
                }
            }
            // The walk read every row of the tenant in range: nothing is left.
            guard read == budget, let reached else { return seqs }
            (restLower, restUpper) = plan.descending ? (lower, reached - 1) : (reached + 1, upper)
            guard restLower <= restUpper else { return seqs }
        }
        let more = try Int64.fetchAll(
            db.cachedStatement(sql: sql(plan, bucketed: false)),
            arguments: StatementArguments([restLower, restUpper] + plan.bindings + [Int64(plan.limit - seqs.count)]))
        return seqs + more
    }
}
