import AuditDB
import Foundation
import GRDBSQLite

/// Section 15 (`--only lopsided`, issue 19): first-page latency on a lopsided store. One tenant
/// holds ~90% of the rows, 63 small tenants share the rest; three marked actors have exactly 1, 10
/// and 10,000 rows (`--rows` must be a multiple of 10,000). Rows are generated per batch (the
/// store is never held in memory), so the section runs at 10M rows; `--only lopsided` skips the
/// shared data set.
enum LopsidedProfile {
    static let bigTenant = "tenant-big"
    static let rare1 = "actor-rare-1", rare10 = "actor-rare-10", heavy = "actor-heavy-10k"

    /// Row `seq` of an `rows`-row store: `RowFields` with the profile's tenant and marked actors.
    static func fields(seq: Int64, rows: Int64) -> RowFields {
        var f = RowFields(seq: seq)
        let x = splitmix64(UInt64(seq) ^ 0x10B5_1DED)
        f.tenant = x % 10 == 0 ? "tenant-" + String(format: "%02d", Int((x >> 8) % 63)) : bigTenant
        guard seq <= rows else { return f }  // rows appended beyond the profile (section 16) carry no mark
        let step = rows / 10_000
        if seq % step == 5 { f.actor = heavy }  // every step-th row: 10,000 rows spread over the store
        if seq == rows / 100 + 1 { f.actor = rare1 }  // one row among the oldest 1%
        if (seq - 3) % (rows / 10) == 0 { f.actor = rare10 }  // 10 rows, one per tenth of the store
        return f
    }
}

extension Bench {
    /// The SQL before migration 0008 (raw only): a big tenant's rows sorted by seq from (tenant, recorded_at).
    func tenantBeforeMigration(_ raw: FirstPageRaw, descending: Bool) throws -> Int {
        let s = try raw.statement("SELECT \(Bench.scanColumns) FROM audit_entries INDEXED BY audit_entries_tenant_time WHERE seq >= ? AND seq <= ? AND tenant = ? ORDER BY seq \(descending ? "DESC" : "ASC") LIMIT ?")
        raw.bind(s, [Int64(1), Int64.max, LopsidedProfile.bigTenant, Int64(100)])
        return Bench.scan(s).rows
    }

    /// Builds the lopsided store (timed: the append rate with every index), and optionally a
    /// second one without `audit_entries_tenant_seq` (the append cost of migration 0008).
    func buildLopsided(path p: String, withoutTenantSeq: Bool) async throws -> Double {
        removeDatabase(p)
        var config = AuditStore.Configuration()
        config.durability = .relaxed
        let store = try await AuditStore.create(at: p, keys: keys, configuration: config)
        if withoutTenantSeq { try RawDB(path: p).exec("DROP INDEX audit_entries_tenant_seq") }
        let rows = Int64(options.rows), batch = Int64(options.batch)
        var seconds = 0.0
        for start in stride(from: Int64(1), through: rows, by: Int(batch)) {
            let events = (start...min(rows, start + batch - 1)).map { LopsidedProfile.fields(seq: $0, rows: rows).event }
            seconds += try await timedAsync { try await store.append(contentsOf: events) }.1
            if start % 1_000_000 == 1 && start > 1 { progress("  \(start - 1) rows appended") }
        }
        try await store.close()
        return Double(rows) / seconds
    }

    func lopsided() async throws {
        let rows = options.rows, runs = options.runs, keysPerRun = options.lopsidedKeys
        guard rows % 10_000 == 0 else { throw BenchError("--rows must be a multiple of 10,000 for the lopsided profile") }
        let p = path("lopsided.db"), q = path("lopsided-no-0007.db")
        var rates: [Double] = [], ratesWithout: [Double] = []
        for run in 0..<(options.lopsidedIndexCost ? 2 : 1) {
            for without in (run % 2 == 0 ? [false, true] : [true, false]) where options.lopsidedIndexCost || !without {
                progress("lopsided: appending \(Fmt.int(Double(rows))) rows (\(without ? "without" : "with") audit_entries_tenant_seq)")
                let rate = try await buildLopsided(path: without ? q : p, withoutTenantSeq: without)
                if without { ratesWithout.append(rate) } else { rates.append(rate) }
                progress("  \(Fmt.int(rate)) rows/s")
            }
        }
        // The proof's cost of the new index: verify() of both stores (the one without the index
        // reports it missing, schema-tampered, and proves the other indexes as usual).
        var verifyWith: [Double] = [], verifyWithout: [Double] = []
        if options.lopsidedIndexCost {
            for run in 0..<runs {
                for without in (run % 2 == 0 ? [false, true] : [true, false]) {
                    let (report, seconds) = try await timedAsync { try await AuditStore.verify(storeAt: without ? q : p, keys: keys) }
                    guard report.rowsChecked == rows, report.isIntact != without else { throw BenchError("lopsided verify: \(report)") }
                    if without { verifyWithout.append(Double(rows) / seconds) } else { verifyWith.append(Double(rows) / seconds) }
                }
                progress("  verify(): \(Fmt.int(verifyWith.last!)) rows/s with audit_entries_tenant_seq, \(Fmt.int(verifyWithout.last!)) without")
            }
        }
        removeDatabase(q)
        let store = try await AuditStore.open(at: p, keys: keys)
        let raw = try FirstPageRaw(path: p)
        let minT = try raw.db.int("SELECT min(recorded_at) FROM audit_entries"), maxT = try raw.db.int("SELECT max(recorded_at) FROM audit_entries")
        let bigRows = try raw.db.int("SELECT count(*) FROM audit_entries WHERE tenant = '\(LopsidedProfile.bigTenant)'")
        let window = max(1, (maxT - minT) / 10)
        var state: UInt64 = 0x10B5
        func next() -> UInt64 { state = splitmix64(state); return state }
        func small() -> String { "tenant-" + String(format: "%02d", Int(next() % 63)) }
        func randomWindow() -> Range<AuditTimestamp> {
            let start = minT + Int64(next() % UInt64(max(1, maxT - minT - window + 1)))
            return AuditTimestamp(microsecondsSinceEpoch: start)..<AuditTimestamp(microsecondsSinceEpoch: start + window)
        }
        let newest = AuditTimestamp(microsecondsSinceEpoch: maxT - window)..<AuditTimestamp(microsecondsSinceEpoch: maxT + 1)
        let kinds: [(String, (Bool) -> EntryQuery)] = [
            ("tenant, big (\(Fmt.pct(Double(bigRows) / Double(rows))) of rows)", { EntryQuery(descending: $0, tenant: LopsidedProfile.bigTenant) }),
            ("tenant, small (~0.16%)", { EntryQuery(descending: $0, tenant: small()) }),
            ("tenant big + the newest 10% of time", { EntryQuery(descending: $0, tenant: LopsidedProfile.bigTenant, recordedAt: newest) }),
            ("tenant big + random 10% time window", { EntryQuery(descending: $0, tenant: LopsidedProfile.bigTenant, recordedAt: randomWindow()) }),
            ("tenant small + random 10% time window", { EntryQuery(descending: $0, tenant: small(), recordedAt: randomWindow()) }),
            ("actor with 1 row (among the oldest 1%)", { EntryQuery(descending: $0, actor: LopsidedProfile.rare1) }),
            ("actor with 10 rows", { EntryQuery(descending: $0, actor: LopsidedProfile.rare10) }),
            ("actor with 10,000 rows", { EntryQuery(descending: $0, actor: LopsidedProfile.heavy) }),
            ("resource id (~1 row)", { EntryQuery(descending: $0, resourceId: LopsidedProfile.fields(seq: Int64(next() % UInt64(rows)) + 1, rows: Int64(rows)).resourceId) }),
        ]
        var cells: [[FirstPageCell]] = []
        var before: [[Double]] = [[], []]  // newest, oldest first
        let clock = ContinuousClock()
        for run in 1...runs {
            progress("lopsided run \(run)/\(runs)")
            try await measureFirstPages(store: store, raw: raw, kinds: kinds, run: run, keys: keysPerRun, cells: &cells)
            // The SQL before migration 0008, raw, one key (it reads and sorts all the big tenant's rows).
            for (o, descending) in [true, false].enumerated() {
                let t0 = clock.now
                _ = try tenantBeforeMigration(raw, descending: descending)
                before[o].append((clock.now - t0).seconds * 1e3)
                progress("  before 0008 (raw), \(descending ? "newest" : "oldest") first: \(Fmt.fixed(before[o].last!, 1)) ms")
            }
        }
        // Streaming every row of the big tenant (issue 19: 4 min 33 s newest first against 16 s
        // for the whole store oldest first, before migration 0008), both orders, alternating.
        var stream: [[Double]] = [[], []], streamCPU: [[Double]] = [[], []]  // rows/s and CPU µs/row, newest and oldest first
        for run in 0..<(options.lopsidedStream ? runs : 0) {
            for descending in (run % 2 == 0 ? [true, false] : [false, true]) {
                var n = 0
                let cpu0 = Self.processCPUSeconds()
                let seconds = try await timedAsync {
                    for try await _ in store.stream(EntryQuery(descending: descending, tenant: LopsidedProfile.bigTenant)) { n += 1 }
                }.1
                guard n == Int(bigRows) else { throw BenchError("streamed \(n) rows of \(bigRows)") }
                stream[descending ? 0 : 1].append(Double(n) / seconds)
                streamCPU[descending ? 0 : 1].append((Self.processCPUSeconds() - cpu0) * 1e6 / Double(n))
                progress("  stream of the big tenant, \(descending ? "newest" : "oldest") first: \(Fmt.int(Double(n) / seconds)) rows/s, \(Fmt.fixed(streamCPU[descending ? 0 : 1].last!, 2)) CPU µs/row")
            }
        }
        let fp = FirstPageRaw.self
        let tenantC = ["tenant = ?"], timeC = ["tenant = ?", "recorded_at >= ? AND recorded_at < ?"]
        let plans = [
            // Tenant pages seek and order by the tenant index's key expression (seq >> 0), migration 0010.
            ("tenant, newest first (floor, then ascending)", try raw.plan("SELECT seq FROM audit_entries WHERE \(fp.whereClause(["(seq >> 0) >= 1", "(seq >> 0) <= 9"], tenantC)) ORDER BY (seq >> 0) DESC LIMIT 1 OFFSET 99") + " / " + raw.plan("SELECT \(Bench.scanColumns) FROM audit_entries WHERE \(fp.whereClause(["(seq >> 0) >= 1", "(seq >> 0) <= 9"], tenantC)) ORDER BY (seq >> 0) ASC LIMIT 100")),
            ("tenant + time, walk", try raw.plan("SELECT seq, (tenant = ?) FROM audit_entries WHERE (seq >> 0) >= ? AND (seq >> 0) <= ? AND tenant = ? ORDER BY (seq >> 0) DESC LIMIT ?")),
            ("tenant + time, rest", try raw.plan("SELECT seq FROM audit_entries WHERE \(fp.whereClause(["+seq >= ?", "+seq <= ?"], timeC)) ORDER BY seq DESC LIMIT ?")),
            ("before 0008", try raw.plan("SELECT seq FROM audit_entries INDEXED BY audit_entries_tenant_time WHERE seq >= ? AND seq <= ? AND tenant = ? ORDER BY seq DESC LIMIT ?")),
        ]
        try await store.close()
        let ms = { (v: [Double]) in Fmt.mmm(Summary(v), { Fmt.fixed($0, 3) }) }
        line("## 15. Lopsided profile: first page of 100 on a \(Fmt.int(Double(rows)))-row store, \(keysPerRun) keys per kind and order per run, \(runs) runs")
        line()
        line("One tenant (`\(LopsidedProfile.bigTenant)`) holds \(Fmt.int(Double(bigRows))) rows; 63 small tenants share the rest (~\(Fmt.int(Double(rows - Int(bigRows)) / 63)) rows each); actors `\(LopsidedProfile.rare1)` (1 row, seq \(rows / 100 + 1)), `\(LopsidedProfile.rare10)` (10 rows, one per tenth of the store) and `\(LopsidedProfile.heavy)` (10,000 rows, every \(rows / 10_000)th); other actors and resource ids as in the other sections. Time windows are 10% of the store's recorded-time span (\(Fmt.fixed(Double(window) / 1e6, 2)) s of \(Fmt.fixed(Double(maxT - minT) / 1e6, 1)) s). `store.page(EntryQuery(limit: 100, ...))` (every row's MAC and chain link verified) against the same SQL statements run raw on a second read-only connection (the same head read, bucket loop, for tenant + time the window's entries counted in the time index up to \(FirstPageRaw.probeLimit), then (if that many) a walk of at most \(FirstPageRaw.walkBudget) of the tenant's rows, then the time index for the rest, rows by seq; every column read; no verification); per key the sides run back to back, order alternating; 20 untimed warm-up keys per cell. ms, min / median / max over the runs of each run's percentile.")
        line()
        if !rates.isEmpty {
            let cost = ratesWithout.isEmpty ? "" : "; without `audit_entries_tenant_seq` (dropped after creation): \(Fmt.mmm(Summary(ratesWithout), Fmt.int)) rows/s, so migration 0008 costs \(Fmt.pct(1 - Summary(rates).median / Summary(ratesWithout).median)) of the append rate (medians, same run, order alternating)"
            line("Building the store (relaxed durability, \(Fmt.int(Double(options.batch))) rows per `append(contentsOf:)`, rows generated between batches, untimed): \(Fmt.mmm(Summary(rates), Fmt.int)) rows/s with every index\(cost).")
            line()
        }
        if !verifyWith.isEmpty {
            let ratio = zip(verifyWith, verifyWithout).map { $0 / $1 }
            line("`AuditStore.verify(storeAt:)` (full pass, index proof included), \(runs) runs each, order alternating: \(Fmt.mmm(Summary(verifyWith), Fmt.int)) rows/s with `audit_entries_tenant_seq`, \(Fmt.mmm(Summary(verifyWithout), Fmt.int)) rows/s on the same rows without it (that store reports the index missing); with / without per run: \(Fmt.mmm(Summary(ratio), Fmt.pct)).")
            line()
        }
        if !stream[0].isEmpty {
            let ratio = zip(stream[1], stream[0]).map { $0 / $1 }
            line("Streaming all \(Fmt.int(Double(bigRows))) rows of `\(LopsidedProfile.bigTenant)` (`store.stream`, pages of 1,000, every row verified), \(runs) runs each, order alternating: newest first \(Fmt.mmm(Summary(stream[0]), Fmt.int)) rows/s, oldest first \(Fmt.mmm(Summary(stream[1]), Fmt.int)) rows/s; oldest / newest per run \(Fmt.mmm(Summary(ratio), Fmt.x)) (target: within 1.5x); process CPU per row (all threads, steadier under load) newest first \(Fmt.mmm(Summary(streamCPU[0]), { Fmt.fixed($0, 2) })) µs, oldest first \(Fmt.mmm(Summary(streamCPU[1]), { Fmt.fixed($0, 2) })) µs, newest / oldest per run \(Fmt.mmm(Summary(zip(streamCPU[0], streamCPU[1]).map { $0 / $1 }), Fmt.x)).")
            line()
        }
        line("Plans (`EXPLAIN QUERY PLAN`, newest first): " + plans.map { "\($0.0): `\($0.1)`" }.joined(separator: "; ") + ".")
        line()
        firstPageTable(kinds: kinds.map(\.0), cells: cells)
        for (o, order) in ["newest first", "oldest first"].enumerated() {
            line("| (raw only, one key per run) tenant big, the SQL before migration 0008 | \(order) | 1 | 100.0 | \(ms(before[o])) | | | | | |")
        }
        line()
        if options.ownsDir { removeDatabase(p) }
    }
}
