import AuditDB
import Foundation
import GRDBSQLite

/// First-page latency of any `EntryQuery` against raw SQLite running the statements AuditDB's
/// QueryExecution runs for it (Sources/AuditDB/Query/), shared by sections 15 (lopsided) and 16
/// (growth).
extension Bench {
    /// The raw side: the same statements through the C API in one read transaction, every column
    /// of every row read, no verification. Statements are prepared once per SQL text.
    final class FirstPageRaw {
        let db: RawDB
        let head: OpaquePointer, begin: OpaquePointer, commit: OpaquePointer, rowBySeq: OpaquePointer
        private var cache: [String: OpaquePointer] = [:]
        /// QueryExecution.tenantWalkBudget(limit: 100) and tenantProbeLimit.
        static let walkBudget: Int64 = 512, probeLimit: Int64 = 4_096

        /// Whether the file has the log's time breaks (migration 0009): tenant + time then runs
        /// QueryExecution+TimeSegments.swift's plan, as AuditDB does.
        let hasTimeBreaks: Bool
        /// QueryExecution.maximumTimeBreaks and maximumSegments.
        static let maximumTimeBreaks: Int64 = 256, maximumSegments = 32

        /// The store's file, for a second connection (the untimed row-count check).
        let path: String

        init(path: String) throws {
            let db = try RawDB(path: path, readOnly: true)
            self.db = db
            self.path = path
            // The page cache AuditDB gives its read connections (Configuration.readerCacheBytes).
            try db.exec("PRAGMA cache_size = -\(AuditStore.Configuration().readerCacheBytes / 1024)")
            hasTimeBreaks = try db.int("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'audit_time_breaks'") == 1
            head = try db.prepare("SELECT seq FROM audit_entries ORDER BY seq DESC LIMIT 1")
            begin = try db.prepare("BEGIN")
            commit = try db.prepare("COMMIT")
            rowBySeq = try db.prepare("SELECT \(Bench.scanColumns) FROM audit_entries WHERE seq = ?")
        }

        deinit {
            for s in [head, begin, commit, rowBySeq] + Array(cache.values) { sqlite3_finalize(s) }
        }

        func statement(_ sql: String) throws -> OpaquePointer {
            if let s = cache[sql] { return s }
            let s = try db.prepare(sql)
            cache[sql] = s
            return s
        }

        func plan(_ sql: String) throws -> String {
            let p = try db.prepare("EXPLAIN QUERY PLAN " + sql)
            defer { sqlite3_finalize(p) }
            var lines: [String] = []
            while sqlite3_step(p) == SQLITE_ROW { lines.append(String(cString: sqlite3_column_text(p, 3))) }
            return lines.joined(separator: "; ")
        }

        func bind(_ s: OpaquePointer, _ values: [Any]) {
            for (i, v) in values.enumerated() {
                if let n = v as? Int64 { sqlite3_bind_int64(s, Int32(i + 1), n) } else if let t = v as? String { RawQuerier.bindText(s, Int32(i + 1), t) }
            }
        }

        /// The query's conditions in QueryExecution.plan's order, with their values, and how many
        /// of them, from the first, are on columns of audit_entries_tenant_seq (migration 0010).
        static func conditions(_ q: EntryQuery) -> (sql: [String], values: [Any], indexed: Int) {
            var c: [String] = [], v: [Any] = []
            func text(_ column: String, _ value: String?) { if let value { c.append("\(column) = ?"); v.append(value) } }
            // With an actor or resource id the tenant is a filter, not an index (QueryExecution+Buckets.swift).
            text(q.actor != nil || q.resourceId != nil ? "+tenant" : "tenant", q.tenant); text("action", q.action)
            if let o = q.outcome { c.append("outcome = ?"); v.append(Int64(AuditOutcome.allCases.firstIndex(of: o)!)) }
            if let s = q.severity { c.append("severity = ?"); v.append(Int64(AuditSeverity.allCases.firstIndex(of: s)!)) }
            let indexed = c.count
            text("actor", q.actor); text("resource_type", q.resourceType); text("resource_id", q.resourceId); text("correlation_id", q.correlationId)
            if let r = q.recordedAt {
                c.append("recorded_at >= ? AND recorded_at < ?")
                v += [r.lowerBound.microsecondsSinceEpoch, r.upperBound.microsecondsSinceEpoch]
            }
            return (c, v, indexed)
        }

        static func whereClause(_ seqs: [String], _ c: [String]) -> String { (seqs + c).joined(separator: " AND ") }

        private func rows(_ seqs: [Int64]) -> Int {
            var n = 0
            for seq in seqs {
                sqlite3_bind_int64(rowBySeq, 1, seq)
                n += Bench.scan(rowBySeq).rows
            }
            return n
        }

        private func seqs(_ s: OpaquePointer, _ values: [Any]) -> [Int64] {
            bind(s, values)
            var out: [Int64] = []
            while sqlite3_step(s) == SQLITE_ROW { out.append(sqlite3_column_int64(s, 0)) }
            sqlite3_reset(s)
            return out
        }

        /// QueryExecution.windowRanges: the seq ranges of `lower...upper` whose rows' recorded_at is
        /// in `[from, to)`, by binary search between the time breaks; nil with too many breaks or segments.
        private func windowRanges(_ from: Int64, _ to: Int64, lower: Int64, upper: Int64) throws -> [ClosedRange<Int64>]? {
            let breaks = seqs(try statement("SELECT seq FROM audit_time_breaks WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"),
                              [lower, upper, Self.maximumTimeBreaks + 1])
            guard Int64(breaks.count) <= Self.maximumTimeBreaks else { return nil }
            guard from < to else { return [] }
            let first = try statement("SELECT seq, recorded_at FROM audit_entries WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT 1")
            let lastRow = try statement("SELECT seq, recorded_at FROM audit_entries WHERE seq >= ? AND seq <= ? ORDER BY seq DESC LIMIT 1")
            func row(_ s: OpaquePointer, _ seqs: ClosedRange<Int64>) -> (seq: Int64, time: Int64)? {
                bind(s, [seqs.lowerBound, seqs.upperBound])
                defer { sqlite3_reset(s) }
                guard sqlite3_step(s) == SQLITE_ROW else { return nil }
                return (sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1))
            }
            func boundary(_ time: Int64, in segment: ClosedRange<Int64>) -> Int64 {
                var low = segment.lowerBound, high = segment.upperBound + 1
                while low < high {
                    let middle = low + (high - low) / 2
                    guard let found = row(first, middle...segment.upperBound), found.time < time else { high = middle; continue }
                    low = found.seq + 1
                }
                return low
            }
            var ranges: [ClosedRange<Int64>] = []
            let starts = [lower] + breaks
            for (index, start) in starts.enumerated() {
                let segment = start...(index + 1 < starts.count ? starts[index + 1] - 1 : upper)
                guard let head = row(first, segment), let tail = row(lastRow, segment), head.time < to, tail.time >= from else { continue }
                let a = head.time >= from ? head.seq : boundary(from, in: segment)
                let b = tail.time < to ? tail.seq : boundary(to, in: segment) - 1
                guard a <= b else { continue }
                ranges.append(a...b)
                guard ranges.count <= Self.maximumSegments else { return nil }
            }
            return ranges
        }

        /// Rows read for `q`, as AuditDB reads them.
        func run(_ q: EntryQuery) throws -> Int {
            try db.step(begin)
            defer { try? db.step(commit) }
            sqlite3_step(head)
            let last = sqlite3_column_int64(head, 0)
            sqlite3_reset(head)
            let (c, v, indexed) = Self.conditions(q)
            let order = q.descending ? "DESC" : "ASC", limit = Int64(q.limit), cols = Bench.scanColumns
            if q.actor != nil || q.resourceId != nil {
                // Bucketed (QueryExecution+Buckets.swift): the first 2 buckets one statement each,
                // then runs of 2, 4 … 64 buckets, one statement each selecting seqs, then rows by seq.
                // Seq bounds and order on the indexes' key expression (seq >> 0), migration 0011.
                let s = try statement("SELECT \(cols) FROM audit_entries WHERE \(Self.whereClause(["(seq >> 0) >= ?", "(seq >> 0) <= ?", "(seq >> 14) = ?"], c)) ORDER BY (seq >> 0) \(order) LIMIT ?")
                let runSQL = try statement("SELECT seq FROM audit_entries WHERE \(Self.whereClause(["(seq >> 0) >= ?", "(seq >> 0) <= ?", "(seq >> 14) IN (WITH RECURSIVE run(bucket) AS (SELECT ? UNION ALL SELECT bucket + 1 FROM run WHERE bucket < ?) SELECT bucket FROM run)"], c)) ORDER BY (seq >> 0) \(order) LIMIT ?")
                let step: Int64 = q.descending ? -1 : 1, final = last >> 14
                var got = 0, bucket = q.descending ? final : 0, singles = 0, length: Int64 = 2
                while got < q.limit && bucket >= 0 && bucket <= final {
                    if singles < 2 {
                        bind(s, [Int64(1), last, bucket] + v + [limit - Int64(got)])
                        got += Bench.scan(s).rows
                        bucket += step
                        singles += 1
                        continue
                    }
                    let far = q.descending ? max(0, bucket - length + 1) : min(final, bucket + length - 1)
                    got += rows(seqs(runSQL, [Int64(1), last, min(bucket, far), max(bucket, far)] + v + [limit - Int64(got)]))
                    bucket = far + step
                    length = min(length * 2, 64)
                }
                return got
            }
            if q.recordedAt != nil {
                // seqsFirst: the page's seqs (for a tenant: counted, walked, then the time index), then rows by seq.
                let rest = try statement("SELECT seq FROM audit_entries WHERE \(Self.whereClause(["+seq >= ?", "+seq <= ?"], c)) ORDER BY seq \(order) LIMIT ?")
                guard let tenant = q.tenant, let window = q.recordedAt else { return rows(seqs(rest, [Int64(1), last] + v + [limit])) }
                let lo = window.lowerBound.microsecondsSinceEpoch, hi = window.upperBound.microsecondsSinceEpoch
                if hasTimeBreaks, let ranges = try windowRanges(lo, hi, lower: 1, upper: last) {
                    // The window's seq ranges, then the tenant's rows in each, in the query's order.
                    let indexedTerms = c.prefix(indexed).map { " AND \($0)" }.joined()
                    let rest = c.dropFirst(indexed)
                    let restTerm = rest.isEmpty ? "" : " AND (\(rest.joined(separator: " AND "))) IS 1"
                    let walk = try statement("SELECT seq FROM audit_entries WHERE (seq >> 0) >= ? AND (seq >> 0) <= ? AND tenant = ?\(indexedTerms)\(restTerm) ORDER BY (seq >> 0) \(order) LIMIT ?")
                    var found: [Int64] = []
                    for range in q.descending ? ranges.reversed() : ranges {
                        found += seqs(walk, [range.lowerBound, range.upperBound, tenant] + v + [limit - Int64(found.count)])
                        if found.count == q.limit { break }
                    }
                    return rows(found)
                }
                let probe = try statement("SELECT count(*) FROM (SELECT 1 FROM audit_entries WHERE +seq >= ? AND +seq <= ? AND tenant = ? AND recorded_at >= ? AND recorded_at < ? LIMIT ?)")
                bind(probe, [Int64(1), last, tenant, lo, hi, Self.probeLimit])
                sqlite3_step(probe)
                let dense = sqlite3_column_int64(probe, 0) >= Self.probeLimit
                sqlite3_reset(probe)
                var found: [Int64] = [], read: Int64 = 0, reached: Int64 = q.descending ? last + 1 : 0
                if dense {
                    let walk = try statement("SELECT seq, (\(c.joined(separator: " AND "))) FROM audit_entries WHERE (seq >> 0) >= ? AND (seq >> 0) <= ? AND tenant = ? ORDER BY (seq >> 0) \(order) LIMIT ?")
                    bind(walk, v + [Int64(1), last, tenant, Self.walkBudget])
                    while sqlite3_step(walk) == SQLITE_ROW {
                        read += 1
                        reached = sqlite3_column_int64(walk, 0)
                        if sqlite3_column_int64(walk, 1) == 1 { found.append(reached) }
                        if found.count == q.limit { break }
                    }
                    sqlite3_reset(walk)
                }
                if found.count < q.limit && (read == Self.walkBudget || !dense) {
                    let (a, b) = q.descending ? (Int64(1), reached - 1) : (reached + 1, last)
                    found += seqs(rest, [a, b] + v + [limit - Int64(found.count)])
                }
                return rows(found)
            }
            // A tenant page seeks and orders by the tenant index's key expression (QueryExecution.seqKey).
            let sk = q.tenant != nil ? "(seq >> 0)" : "seq"
            if q.descending && (c.isEmpty || (q.tenant != nil && indexed == c.count)) {
                // Newest first from the index alone (QueryExecution+NewestFirst.swift): the floor, then ascending.
                let floorSQL = try statement("SELECT seq FROM audit_entries WHERE \(Self.whereClause(["\(sk) >= ?", "\(sk) <= ?"], c)) ORDER BY \(sk) DESC LIMIT 1 OFFSET ?")
                let floor = seqs(floorSQL, [Int64(1), last] + v + [limit - 1]).first ?? 1
                let s = try statement("SELECT \(cols) FROM audit_entries WHERE \(Self.whereClause(["\(sk) >= ?", "\(sk) <= ?"], c)) ORDER BY \(sk) ASC LIMIT ?")
                bind(s, [floor, last] + v + [limit])
                return Bench.scan(s).rows
            }
            let s = try statement("SELECT \(cols) FROM audit_entries WHERE \(Self.whereClause(["\(sk) >= ?", "\(sk) <= ?"], c)) ORDER BY \(sk) \(order) LIMIT ?")
            bind(s, [Int64(1), last] + v + [limit])
            return Bench.scan(s).rows
        }
    }

    /// One query kind and order over the runs: each run's p50/p99 on both sides.
    struct FirstPageCell {
        var a50: [Double] = [], a99: [Double] = [], r50: [Double] = [], r99: [Double] = [], ratio: [Double] = []
        /// Median read syscalls per page, each run: pages the connection's cache did not hold.
        var aReads: [Double] = [], rReads: [Double] = []
        var rowsPerPage: [Double] = [], keys: [Int] = []
        var met: Bool { !a50.isEmpty && Summary(a50).median <= 2 && Summary(a99).median <= 10 }
    }

    /// One run of every kind, newest and oldest first: `keys` keys each (fewer when a cell's
    /// AuditDB side passes `cellSeconds`), the two sides back to back, each on a key of its own
    /// (order alternating), after `warmUp` untimed keys; raw SQLite's row count on AuditDB's key
    /// must equal AuditDB's. `cells[k][0]` is newest first.
    func measureFirstPages(store: AuditStore, raw: FirstPageRaw, kinds: [(String, (Bool) -> EntryQuery)], run: Int,
                           keys: Int, warmUp: Int = 20, cellSeconds: Double = .infinity, cells: inout [[FirstPageCell]]) async throws {
        let clock = ContinuousClock()
        // What reading the counter itself adds (it is one read of /proc/self/io).
        let readCost = { let r0 = Self.readSyscalls(); return Self.readSyscalls() - r0 }()
        // The row-count check reads AuditDB's key on a connection of its own, so that raw's
        // cache sees only raw's keys.
        let checker = try FirstPageRaw(path: raw.path)
        if cells.count != kinds.count { cells = [[FirstPageCell]](repeating: [FirstPageCell(), FirstPageCell()], count: kinds.count) }
        for (k, kind) in kinds.enumerated() {
            for descending in [true, false] {
                let make = kind.1
                for _ in 0..<warmUp { let x = make(descending); _ = try await store.page(x); _ = try raw.run(x) }
                var a: [Double] = [], b: [Double] = [], returned = 0, aReads: [Double] = [], rReads: [Double] = []
                for i in 0..<keys where a.reduce(0, +) < cellSeconds * 1e3 {
                    // Each side reads a key of its own, drawn from the same generator: on a key
                    // both read, the side that went second found the first one's pages in the OS
                    // cache, which hid what a cold page costs once a store outgrows memory. The
                    // row counts are compared on AuditDB's key, untimed, after both sides. Kinds
                    // with a single key (the big tenant, the actors) still read it on both sides.
                    let x = make(descending), y = make(descending)
                    var n = 0
                    func auditSide() async throws {
                        let r0 = Self.readSyscalls(), t0 = clock.now
                        n = try await store.page(x).entries.count
                        a.append((clock.now - t0).seconds * 1e3); aReads.append(Double(Self.readSyscalls() - r0 - readCost))
                    }
                    func rawSide() throws {
                        let r0 = Self.readSyscalls(), t0 = clock.now
                        _ = try raw.run(y)
                        b.append((clock.now - t0).seconds * 1e3); rReads.append(Double(Self.readSyscalls() - r0 - readCost))
                    }
                    if (i + run) % 2 == 0 { try await auditSide(); try rawSide() } else { try rawSide(); try await auditSide() }
                    let expected = try checker.run(x)
                    guard n == expected else { throw BenchError("\(kind.0): AuditDB read \(n) rows, raw \(expected), for \(x)") }
                    returned += n
                }
                var c = cells[k][descending ? 0 : 1]
                c.a50.append(percentile(a, 50)); c.a99.append(percentile(a, 99))
                c.r50.append(percentile(b, 50)); c.r99.append(percentile(b, 99))
                c.ratio.append(percentile(a, 50) / percentile(b, 50))
                c.rowsPerPage.append(Double(returned) / Double(a.count))
                c.aReads.append(percentile(aReads, 50)); c.rReads.append(percentile(rReads, 50))
                c.keys.append(a.count)
                cells[k][descending ? 0 : 1] = c
                progress("  run \(run) \(kind.0), \(descending ? "newest" : "oldest") first (\(a.count) keys): p50 AuditDB \(Fmt.fixed(c.a50.last!, 3)) ms, raw \(Fmt.fixed(c.r50.last!, 3)) ms; p99 \(Fmt.fixed(c.a99.last!, 3)) / \(Fmt.fixed(c.r99.last!, 3)) ms")
            }
        }
    }

    /// The table of `measureFirstPages`' cells.
    func firstPageTable(kinds: [String], cells: [[FirstPageCell]]) {
        let ms = { (v: [Double]) in Fmt.mmm(Summary(v), { Fmt.fixed($0, 3) }) }
        line("| query | order | keys per run | rows/page | raw p50 ms | AuditDB p50 ms | p50 AuditDB / raw | raw p99 ms | AuditDB p99 ms | p50 <= 2 ms, p99 <= 10 ms | reads per page, raw / AuditDB |")
        line("|---|---|---|---|---|---|---|---|---|---|---|")
        for (k, kind) in kinds.enumerated() {
            for (o, order) in ["newest first", "oldest first"].enumerated() {
                let c = cells[k][o]
                let keys = Set(c.keys).sorted().map(String.init).joined(separator: ", ")
                line("| \(kind) | \(order) | \(keys) | \(Fmt.fixed(Summary(c.rowsPerPage).median, 1)) | \(ms(c.r50)) | \(ms(c.a50)) | \(Fmt.mmm(Summary(c.ratio), Fmt.x)) | \(ms(c.r99)) | \(ms(c.a99)) | \(c.met ? "met" : "**missed**") | \(Fmt.fixed(Summary(c.rReads).median, 0)) / \(Fmt.fixed(Summary(c.aReads).median, 0)) |")
            }
        }
    }

    /// The process's read syscalls so far (`syscr` of /proc/self/io): SQLite reads each page its
    /// cache does not hold with one `pread`, so the difference around a page counts those pages.
    static func readSyscalls() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/io", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("syscr:") }),
              let value = Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        else { return 0 }
        return value
    }
}
