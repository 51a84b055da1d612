import GRDB

/// Actor and resource id pages: the buckets of `audit_entries_actor` / `audit_entries_resource`
/// (`seq >> 14`), newest or oldest bucket first.
///
/// A key with rows in most buckets fills a page from the first one or two: those are read one
/// bucket per statement, in index order, with no sort and an early stop. A rare key finds nothing
/// in most buckets (~610 at 10M rows), and each statement adds a reset, bindings and a step to
/// its index seek. Past the first buckets, one statement therefore seeks a run of buckets
/// (2, 4, 8 … 64 at a time: `(seq >> 14) IN (<the run>)`), selects the matching seqs of that run from the index, newest or
/// oldest first, at most the rows still wanted, and the rows are then read by seq. Runs are taken
/// in order, so every seq of a run precedes (in the page's order) every seq of the next: the page
/// holds exactly the rows one statement over all the buckets would return. After a bucket or run
/// that matched nothing, one rowid seek finds the next bucket holding any row
/// (``nextOccupiedBucket(_:from:descending:)``), so seqs with no rows at all cost nothing. Measured
/// (docs/performance.md, "Rare keys: runs of buckets"): 3x cheaper on a synthetic index, but in a
/// store the page reads behind each seek dominated; the readers' page cache
/// (``AuditStore/Configuration/readerCacheBytes``) is what brought rare actors under 2 ms at 10M.
extension QueryExecution {
    /// Buckets read one statement each before runs begin (``Plan/singleBuckets``).
    static let singleBuckets: Int64 = 2
    /// The longest run of buckets one statement seeks.
    static let maximumBucketRun: Int64 = 64

    /// The statement for a run of buckets `?3`…`?4`: the matching seqs, in the page's order (the
    /// seq bounds and order on the indexes' key `seq >> 0`, migration 0011, so that the bounds
    /// limit each bucket's seek and a filter on action, outcome or severity is tested on the entry).
    static func bucketRunSQL(_ plan: Plan) -> String {
        var conditions = ["\(seqKey) >= ?", "\(seqKey) <= ?"]
        conditions.append(
            "(seq >> \(bucketShift)) IN (WITH RECURSIVE run(bucket) AS (SELECT ? UNION ALL SELECT bucket + 1 FROM run WHERE bucket < ?) SELECT bucket FROM run)")
        conditions += plan.conditions
        return "SELECT seq FROM audit_entries WHERE \(conditions.joined(separator: " AND ")) "
            + "ORDER BY \(seqKey) \(plan.descending ? "DESC" : "ASC") LIMIT ?"
    }

    /// Reads the page of a bucketed plan over the seqs `lower`…`upper`.
    static func readBuckets(
        _ db: Database, plan: Plan, lower: Int64, upper: Int64, reader: inout EntryReader, into entries: inout [AuditEntry]
    ) throws {
        let first = lower >> bucketShift, final = upper >> bucketShift
        let step: Int64 = plan.descending ? -1 : 1
        var bucket = plan.descending ? final : first
        func remains() -> Bool { entries.count < plan.limit && (plan.descending ? bucket >= first : bucket <= final) }
        // Every argument is bound once; per bucket only the bucket (?3) and the rows still wanted
        // (the last ?) change, bound directly on the statement.
        let single = try db.cachedStatement(sql: sql(plan, bucketed: true))
        try single.setArguments(StatementArguments([lower, upper, bucket] + plan.bindings + [Int64(plan.limit)]))
        let singleHandle = single.sqliteStatement, singleLimit = Int32(4 + plan.bindings.count)
        var singles: Int64 = 0
        while singles < plan.singleBuckets && remains() {
            try SQLite.bind(singleHandle, 3, bucket)
            try SQLite.bind(singleHandle, singleLimit, Int64(plan.limit - entries.count))
            let before = entries.count
            try reader.read(single, into: &entries)
            bucket += step
            singles += 1
            if entries.count == before { bucket = try nextOccupiedBucket(db, from: bucket, descending: plan.descending) }
        }
        guard remains() else { return }
        let run = try db.cachedStatement(sql: bucketRunSQL(plan))
        try run.setArguments(StatementArguments([lower, upper, bucket, bucket] + plan.bindings + [Int64(plan.limit)]))
        let runHandle = run.sqliteStatement, runLimit = Int32(5 + plan.bindings.count)
        let row = try db.cachedStatement(sql: rowBySeqSQL)
        var length: Int64 = 2
        while remains() {
            // The run's buckets, oldest first as the statement wants them.
            let far = plan.descending ? max(first, bucket - length + 1) : min(final, bucket + length - 1)
            try SQLite.bind(runHandle, 3, min(bucket, far))
            try SQLite.bind(runHandle, 4, max(bucket, far))
            try SQLite.bind(runHandle, runLimit, Int64(plan.limit - entries.count))
            var seqs: [Int64] = []
            defer { SQLite.reset(runHandle) }
            while try SQLite.step(runHandle, while: "read the seqs of a run of index buckets") {
                seqs.append(SQLite.int64(runHandle, 0))
            }
            for seq in seqs {
                try SQLite.bind(row.sqliteStatement, 1, seq)
                try reader.read(row, into: &entries)
            }
            bucket = far + step
            length = min(length * 2, maximumBucketRun)
            if seqs.isEmpty { bucket = try nextOccupiedBucket(db, from: bucket, descending: plan.descending) }
        }
    }

    /// The bucket of the nearest row of any key at or past bucket `from` in the page's direction
    /// (one seek on the table's rowid), or one past the last possible bucket when there is none.
    /// Read after a bucket or run that matched nothing, so that a stretch of seqs without rows
    /// costs one seek rather than a walk bucket by bucket: a store's seqs are dense, but a row
    /// moved to a far seq by someone with the file (say 2^63 − 1) would otherwise leave 2^49
    /// empty buckets between the log and it. Never skips a bucket that holds a row.
    static func nextOccupiedBucket(_ db: Database, from bucket: Int64, descending: Bool) throws -> Int64 {
        let statement = try db.cachedStatement(sql: descending
            ? "SELECT seq FROM audit_entries WHERE seq <= ? ORDER BY seq DESC LIMIT 1"
            : "SELECT seq FROM audit_entries WHERE seq >= ? ORDER BY seq ASC LIMIT 1").sqliteStatement
        defer { SQLite.reset(statement) }
        // Past the first or last possible bucket (one step beyond a walk's end): nothing to find,
        // and the shift below would wrap around.
        guard bucket >= Int64.min >> bucketShift, bucket <= Int64.max >> bucketShift else { return bucket }
        // The bucket's last seq (descending) or first seq (ascending).
        try SQLite.bind(statement, 1, descending ? (bucket << bucketShift) | ((1 << bucketShift) - 1) : bucket << bucketShift)
        guard try SQLite.step(statement, while: "find the next index bucket that holds rows") else {
            return descending ? Int64.min >> bucketShift : (Int64.max >> bucketShift) + 1
        }
        return SQLite.int64(statement, 0) >> bucketShift
    }
}
