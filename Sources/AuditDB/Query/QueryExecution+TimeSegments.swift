import GRDB

/// Time windows as seq ranges, through the log's time breaks (docs/FORMAT.md, section 24; issue 19).
///
/// Between two breaks, `recorded_at` is non-decreasing in seq order (rows that expired since leave
/// a subsequence, which is still ordered). So within one such segment, the rows of a time window
/// `[lower, upper)` are one seq range, found by two binary searches of rowid lookups; over the
/// whole query the window is at most one range per segment. A tenant + time page then walks the
/// tenant's index `(tenant, seq)` within those ranges in the query's order: the first page of 100
/// is about 100 index steps, whatever the tenant's size or the window's width.
///
/// Verification proves the breaks complete (TimeBreakCheck), as it proves the indexes: a break
/// missing would make a segment look ordered when it is not, and hide rows from the answer.
///
/// The searches trust the `recorded_at` of rows they never return, which anyone with the file can
/// change (one row set to 1970 would move a boundary past genuine rows, and hide them). So every
/// row a range's ends rest on — a segment's first and last row, and the two rows either side of
/// each boundary found — must be signed at its seq (its MAC holds) and on the right side of the
/// boundary. Then, since the signed rows of a segment are ordered, the ranges hold exactly the
/// signed rows of the window. If one is not, the time index answers instead (it reads each row's
/// own time, so a changed row moves only itself, and the query meets it as any other).
///
/// - Complexity: O(b + s log n) lookups for b breaks in the query's seq bounds and s segments the
///   window overlaps. With more than ``maximumTimeBreaks`` breaks or ``maximumSegments``
///   overlapping segments, the caller falls back to the time index (QueryExecution+TenantWalk.swift).
extension QueryExecution {
    /// More breaks than this in the query's seq bounds: use the time index instead.
    static let maximumTimeBreaks = 256
    /// More segments overlapping the window than this: use the time index instead.
    static let maximumSegments = 32

    static let timeBreaksSQL = "SELECT seq FROM audit_time_breaks WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
    static let firstRowSQL = "SELECT seq, recorded_at FROM audit_entries WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT 1"
    static let lastRowSQL = "SELECT seq, recorded_at FROM audit_entries NOT INDEXED WHERE seq >= ? AND seq <= ? ORDER BY seq DESC LIMIT 1"

    /// The seq ranges (ascending, disjoint, within `lower...upper`) that hold exactly the rows
    /// whose `recorded_at` is in `window`; nil when the store has no time breaks (before
    /// migration 0009), too many of them for this to pay, or a row the ranges rest on is not
    /// `signed` (its MAC does not hold at its seq: see above).
    static func windowRanges(_ db: Database, window: (lower: Int64, upper: Int64), lower: Int64, upper: Int64,
                             signed: (Int64) throws -> Bool) throws -> [ClosedRange<Int64>]?
    {
        guard try db.tableExists(TimeBreaks.table) else { return nil }
        let breaks = try Int64.fetchAll(db.cachedStatement(sql: timeBreaksSQL), arguments: [lower, upper, maximumTimeBreaks + 1])
        guard breaks.count <= maximumTimeBreaks else { return nil }
        guard window.lower < window.upper else { return [] }
        let first = try db.cachedStatement(sql: firstRowSQL), last = try db.cachedStatement(sql: lastRowSQL)
        // On the raw statement: a page's binary searches take ~40 of these lookups.
        func row(_ statement: Statement, _ seqs: ClosedRange<Int64>) throws(AuditError) -> (seq: Int64, time: Int64)? {
            let stmt = statement.sqliteStatement
            defer { SQLite.reset(stmt) }
            try SQLite.bind(stmt, 1, seqs.lowerBound)
            try SQLite.bind(stmt, 2, seqs.upperBound)
            guard try SQLite.step(stmt, while: "find the time window's rows") else { return nil }
            return (SQLite.int64(stmt, 0), SQLite.int64(stmt, 1))
        }
        /// The first seq `s` of `segment` such that every row from `s` on has a time >= `time`,
        /// and every row before it a lower one; nil when every row of the segment has a lower
        /// time (`s` would be one past the segment: no Int64 for a segment that ends at
        /// 2^63 − 1, where someone with the file can put a row). The search runs on offsets from
        /// the segment's first seq (at least 1), which cannot overflow.
        func boundary(_ time: Int64, in segment: ClosedRange<Int64>) throws -> Int64? {
            let base = segment.lowerBound, past = UInt64(segment.upperBound - base) + 1
            var low: UInt64 = 0, high = past
            while low < high {
                let middle = low + (high - low) / 2
                // Rows from `high` on have a time >= `time`: a row found past `high - 1` means
                // none in middle..<high.
                guard let found = try row(first, (base + Int64(middle))...segment.upperBound), found.time < time else {
                    high = middle
                    continue
                }
                low = UInt64(found.seq - base) + 1
            }
            return low == past ? nil : base + Int64(low)
        }
        /// Whether `seq`, found as the boundary of `time` in `segment`, is one: the row before it
        /// (if any) is earlier than `time`, the row from it on (if any) is not, and both are signed.
        func holds(_ seq: Int64, of time: Int64, in segment: ClosedRange<Int64>) throws -> Bool {
            if seq > segment.lowerBound, let before = try row(last, segment.lowerBound...(seq - 1)) {
                guard before.time < time, try signed(before.seq) else { return false }
            }
            if seq <= segment.upperBound, let after = try row(first, seq...segment.upperBound) {
                guard after.time >= time, try signed(after.seq) else { return false }
            }
            return true
        }
        var ranges: [ClosedRange<Int64>] = []
        let starts = [lower] + breaks
        for (index, start) in starts.enumerated() {
            let segment = start...(index + 1 < starts.count ? starts[index + 1] - 1 : upper)
            guard let head = try row(first, segment), let tail = try row(last, segment) else { continue }
            guard try signed(head.seq), try signed(tail.seq) else { return nil }
            guard head.time < window.upper, tail.time >= window.lower else { continue }
            // The tail is in or past the window, so its start is inside the segment.
            let from: Int64
            if head.time >= window.lower {
                from = head.seq
            } else {
                guard let found = try boundary(window.lower, in: segment), try holds(found, of: window.lower, in: segment) else { return nil }
                from = found
            }
            // The head is before the window's end, so the end's boundary is after it.
            let to: Int64
            if tail.time < window.upper {
                to = tail.seq
            } else {
                guard let found = try boundary(window.upper, in: segment), try holds(found, of: window.upper, in: segment) else { return nil }
                to = found - 1
            }
            guard from <= to else { continue }
            ranges.append(from...to)
            guard ranges.count <= maximumSegments else { return nil }
        }
        return ranges
    }

    /// The statement of ``segmentWalkSeqs(_:plan:tenant:ranges:)``: the tenant's rows of one seq
    /// range that match every filter, in the query's order. The filters the tenant index holds
    /// (tenant, action, outcome, severity) are plain terms, which SQLite tests on the index entry;
    /// the others, the time window included, are one `IS 1` term, tested on the rows that pass,
    /// so that SQLite walks `audit_entries_tenant_seq` within the range (no time index, no sort).
    /// A test checks the plan.
    static func segmentWalkSQL(_ plan: Plan) -> String {
        let indexed = plan.conditions.prefix(plan.indexedConditions)
        let rest = plan.conditions.dropFirst(plan.indexedConditions)
        return "SELECT seq FROM audit_entries WHERE \(seqKey) >= ? AND \(seqKey) <= ? AND tenant = ? "
            + indexed.map { "AND \($0) " }.joined()
            + (rest.isEmpty ? "" : "AND (\(rest.joined(separator: " AND "))) IS 1 ")
            + "ORDER BY \(seqKey) \(plan.descending ? "DESC" : "ASC") LIMIT ?"
    }

    /// The page's seqs for a tenant + time query through the window's seq ranges: the tenant's
    /// rows in each range, in the query's order, that match every filter. Every row it reads is
    /// one of the window's entries, which the time index would read too (and then sort), so it
    /// reads until the page is full or the ranges end: the cost is the rows read to fill the
    /// page (about `limit` divided by the filters' selectivity), wherever the window lies.
    static func segmentWalkSeqs(_ db: Database, plan: Plan, tenant: String, ranges: [ClosedRange<Int64>]) throws -> [Int64] {
        let walk = try db.cachedStatement(sql: segmentWalkSQL(plan))
        var seqs: [Int64] = []
        seqs.reserveCapacity(plan.limit)
        for range in plan.descending ? ranges.reversed() : ranges {
            let arguments: [any DatabaseValueConvertible & Sendable] =
                [range.lowerBound, range.upperBound, tenant] + plan.bindings + [Int64(plan.limit - seqs.count)]
            seqs += try Int64.fetchAll(walk, arguments: StatementArguments(arguments))
            if seqs.count == plan.limit { break }
        }
        return seqs
    }
}
