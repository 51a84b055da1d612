import Foundation
import GRDBSQLite

/// Section `deferred` (issue 19 item 4): what the batched-index design would give group commit,
/// and what it would cost queries, measured on raw SQLite before anyone builds it.
///
/// The design: `audit_entries` keeps only its cheap indexes (those appended in seq order, or
/// rarely written); a narrow side table `audit_keys` (seq and the columns the costly indexes
/// read) carries the costly indexes — every index on `tenant`, `actor` or `resource_id`, whose
/// appends dirty a leaf page per row — and is filled every `N` rows, inside the commit that
/// crosses the mark, from the rows above the last mark. A query then reads the indexes below the
/// mark and scans the rows above it (at most `N - 1`, by rowid).
extension Bench {
    /// The costly indexes of the schema: every `audit_entries` index on tenant, actor or resource id.
    private func costlyIndexes() -> [String] {
        schema.entriesIndexes.filter { $0.contains("tenant") || $0.contains("actor") || $0.contains("resource_id") }
    }

    private static let keysTable = """
        CREATE TABLE audit_keys (seq INTEGER PRIMARY KEY, recorded_at INTEGER NOT NULL, tenant TEXT, actor TEXT,
            action TEXT NOT NULL, resource_id TEXT, outcome INTEGER NOT NULL, severity INTEGER NOT NULL) STRICT
        """
    private static let fillKeys = """
        INSERT INTO audit_keys SELECT seq, recorded_at, tenant, actor, action, resource_id, outcome, severity
        FROM audit_entries WHERE seq > ?1
        """

    private enum Layout: Hashable, CustomStringConvertible {
        case same, bare, deferred(Int)
        var description: String {
            switch self {
            case .same: "raw, the store's indexes (the ceiling today)"
            case .bare: "raw, no secondary index (bound)"
            case .deferred(let n): "deferred, filled every \(Fmt.int(Double(n))) rows"
            }
        }
    }

    /// A raw store of `layout` holding `prefill` rows (untimed), its costly indexes filled.
    private func deferredStore(_ layout: Layout, path: String, prefill: Int) throws -> RawDB {
        let db = try makeRawStore(path: path, schema: schema, synchronous: "FULL", triggers: false,
                                  indexes: layout == .same ? .same : .none)
        if case .deferred = layout {
            let costly = costlyIndexes()
            for i in schema.entriesIndexes where !costly.contains(i) { try db.exec(i) }
            try db.exec(Self.keysTable)
            for i in costly {
                let onKeys = i.replacingOccurrences(of: " ON audit_entries(", with: " ON audit_keys(")
                    .replacingOccurrences(of: "CREATE INDEX audit_entries_", with: "CREATE INDEX audit_keys_")
                guard onKeys != i else { throw BenchError("could not move \(i) to audit_keys") }
                try db.exec(onKeys)
            }
        }
        try insertRows(db, from: 1, count: prefill, perCommit: prefill, layout: layout, mark: 0, commitSeconds: nil)
        if case .deferred = layout { try fill(db, above: 0) }
        return db
    }

    private func fill(_ db: RawDB, above mark: Int64) throws {
        let stmt = try db.prepare(Self.fillKeys)
        defer { sqlite3_finalize(stmt) }
        sqlite3_bind_int64(stmt, 1, mark)
        try db.step(stmt)
    }

    /// Inserts rows `from..<from+count` (seq = index, row data cycling over the dataset),
    /// `perCommit` to a transaction; a deferred layout fills `audit_keys` inside the commit that
    /// brings the unfilled rows to its `N`. Returns the new mark.
    @discardableResult
    private func insertRows(_ db: RawDB, from: Int, count: Int, perCommit: Int, layout: Layout, mark: Int64,
                            commitSeconds: ((Double) -> Void)?) throws -> Int64 {
        let raw = data.raw
        let insert = try db.prepare(rawInsertSQL), begin = try db.prepare("BEGIN IMMEDIATE"), commit = try db.prepare("COMMIT")
        defer { sqlite3_finalize(insert); sqlite3_finalize(begin); sqlite3_finalize(commit) }
        var mark = mark
        try raw.arena.withUnsafeBufferPointer { arena in
            try raw.spans.withUnsafeBufferPointer { spans in
                try raw.macs.withUnsafeBufferPointer { macs in
                    var i = 0
                    while i < count {
                        let n = min(perCommit, count - i)
                        let seconds = try timed {
                            try db.step(begin)
                            for k in 0..<n {
                                let seq = from + i + k
                                let rc = rawInsert(insert, raw, (seq - 1) % raw.count, seq: Int64(seq), arena: arena.baseAddress!,
                                                   spans: spans.baseAddress!, macs: macs.baseAddress!)
                                guard rc == SQLITE_DONE else { throw BenchError("raw insert failed: \(rc)") }
                            }
                            let last = Int64(from + i + n - 1)
                            if case .deferred(let every) = layout, last - mark >= Int64(every), commitSeconds != nil {
                                try fill(db, above: mark)
                                mark = last
                            }
                            try db.step(commit)
                        }.1
                        commitSeconds?(seconds)
                        i += n
                    }
                }
            }
        }
        return mark
    }

    func deferredIndexes() throws {
        let tasks = options.groupTasks, total = options.groupTasks * options.groupPerTask, runs = options.runs
        let prefill = options.rows
        // Every deferred layout must fill at least once, or its row would show the bare table.
        guard total >= 16_384 else {
            throw BenchError("section deferred writes tasks × per-task rows (\(tasks) × \(options.groupPerTask) = \(total)) per layout, fewer than the largest fill interval (16,384): pass --group-per-task \((16_384 + tasks - 1) / tasks) or more")
        }
        let layouts: [Layout] = [.same, .bare, .deferred(1_024), .deferred(4_096), .deferred(16_384)]
        var rates: [Layout: [Double]] = [:], p99: [Layout: [Double]] = [:], worst: [Layout: [Double]] = [:]
        for run in 1...runs {
            // Alternate the order run by run so that no layout always meets the same disk phase.
            for layout in run % 2 == 1 ? layouts : layouts.reversed() {
                let p = path("deferred.db")
                let db = try deferredStore(layout, path: p, prefill: prefill)
                try db.exec("PRAGMA wal_checkpoint(TRUNCATE)")
                var commits: [Double] = []
                let seconds = try timed {
                    try insertRows(db, from: prefill + 1, count: total, perCommit: tasks, layout: layout, mark: Int64(prefill)) {
                        commits.append($0)
                    }
                }.1
                rates[layout, default: []].append(Double(total) / seconds)
                p99[layout, default: []].append(percentile(commits, 99) * 1e3)
                worst[layout, default: []].append(commits.max()! * 1e3)
                progress("deferred run \(run)/\(runs), \(layout): \(Fmt.int(Double(total) / seconds)) rows/s, commit p99 \(Fmt.fixed(percentile(commits, 99) * 1e3, 2)) ms")
                removeDatabase(p)
            }
        }
        // What the design costs a query: the scan of the unfilled rows above the mark, here all
        // of a window of N rows, for a tenant or an actor that none of them has (the worst case:
        // every row of the window is read), against the first page the indexes give today.
        let p = path("deferred-query.db")
        let db = try deferredStore(.same, path: p, prefill: prefill)
        defer { removeDatabase(p) }
        try db.exec("PRAGMA cache_size = -32768")
        let last = try db.int("SELECT max(seq) FROM audit_entries")
        var tail: [Int: (tenant: [Double], actor: [Double])] = [:]
        let tailSQL = { (column: String) in
            "SELECT * FROM audit_entries NOT INDEXED WHERE seq > ?1 AND \(column) = ?2 ORDER BY seq DESC LIMIT 100"
        }
        for n in [1_024, 4_096, 16_384] {
            for column in ["tenant", "actor"] {
                let stmt = try db.prepare(tailSQL(column))
                defer { sqlite3_finalize(stmt) }
                var samples: [Double] = []
                for _ in 0..<(options.latencyOps + 5) {
                    sqlite3_bind_int64(stmt, 1, last - Int64(n))  // seq > last - n: the newest n rows
                    sqlite3_bind_text(stmt, 2, "no-such-key", -1, unsafeBitCast(-1, to: sqlite3_destructor_type.self))
                    let s = timed { while sqlite3_step(stmt) == SQLITE_ROW {}; sqlite3_reset(stmt) }.1
                    samples.append(s * 1e3)
                }
                let measured = Array(samples.dropFirst(5))
                if column == "tenant" { tail[n, default: ([], [])].tenant = measured } else { tail[n, default: ([], [])].actor = measured }
            }
        }

        line("## Deferred index maintenance (issue 19 item 4): the design measured on raw SQLite, \(runs) runs")
        line()
        line("Raw SQLite (one thread, prepared, no signing, WAL, synchronous=FULL) holding \(Fmt.int(Double(prefill))) rows, then \(Fmt.int(Double(total))) more written \(tasks) to an fsync'd commit — the group-commit ceiling of section 3 — in three layouts, alternated run by run. **Deferred**: `audit_entries` keeps its indexes that are appended in order or rarely written (\(schema.entriesIndexes.count - costlyIndexes().count) of \(schema.entriesIndexes.count)); the \(costlyIndexes().count) on tenant, actor or resource id move to a narrow table `audit_keys` (seq, recorded_at, tenant, actor, action, resource_id, outcome, severity), filled from the rows above the last mark inside the commit that brings them to N. Rows/s and the commit times (ms), min / median / max over the runs.")
        line()
        line("| layout | rows/s | of the ceiling today | commit p99 ms | slowest commit ms |")
        line("|---|---|---|---|---|")
        for layout in layouts {
            let ratio = zip(rates[layout]!, rates[.same]!).map { $0 / $1 }
            let ms = { (v: [Double]) in Fmt.mmm(Summary(v), { Fmt.fixed($0, 2) }) }
            line("| \(layout) | \(Fmt.mmm(Summary(rates[layout]!), Fmt.int)) | \(Fmt.mmm(Summary(ratio), Fmt.pct)) | \(ms(p99[layout]!)) | \(ms(worst[layout]!)) |")
        }
        line()
        line("What it costs a query: the rows above the mark are read by rowid, newest first. Worst case, a key that none of N rows has (every row read), `SELECT * FROM audit_entries NOT INDEXED WHERE seq > ?1 AND <column> = ?2 ORDER BY seq DESC LIMIT 100`, \(options.latencyOps) times after 5 unmeasured (a warm cache: the same rows each time), 32 MiB page cache, the \(Fmt.int(Double(prefill)))-row store; ms:")
        line()
        line("| rows above the mark | tenant p50 / p99 | actor p50 / p99 |")
        line("|---|---|---|")
        for n in [1_024, 4_096, 16_384] {
            let t = tail[n]!
            line("| \(Fmt.int(Double(n))) | \(Fmt.fixed(percentile(t.tenant, 50), 3)) / \(Fmt.fixed(percentile(t.tenant, 99), 3)) | \(Fmt.fixed(percentile(t.actor, 50), 3)) / \(Fmt.fixed(percentile(t.actor, 99), 3)) |")
        }
        line()
    }
}
