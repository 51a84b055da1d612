import AuditDB
import Foundation

/// Section 16's first pages and streaming at one point, its report block, and the curve.
extension Bench {
    /// Every query kind of section 15, alone, with `action`, and with `outcome` and `severity`
    /// together; each newest and oldest first against raw SQLite (FirstPages.swift). Then the big
    /// tenant streamed in both orders.
    func growthQueries(store: AuditStore, path p: String, rows: Int64, point: Int64, figures fig: inout GrowthFigures, incLines: [String]) async throws {
        let raw = try FirstPageRaw(path: p)
        let minT = try raw.db.int("SELECT min(recorded_at) FROM audit_entries"), maxT = try raw.db.int("SELECT max(recorded_at) FROM audit_entries")
        let window = max(1, (maxT - minT) / 10)
        var state: UInt64 = 0x6_0757 &+ UInt64(point)
        func next() -> UInt64 { state = splitmix64(state); return state }
        func small() -> String { "tenant-" + String(format: "%02d", Int(next() % 63)) }
        func randomWindow() -> Range<AuditTimestamp> {
            let start = minT + Int64(next() % UInt64(max(1, maxT - minT - window + 1)))
            return AuditTimestamp(microsecondsSinceEpoch: start)..<AuditTimestamp(microsecondsSinceEpoch: start + window)
        }
        let newest = AuditTimestamp(microsecondsSinceEpoch: maxT - window)..<AuditTimestamp(microsecondsSinceEpoch: maxT + 1)
        let big = LopsidedProfile.bigTenant
        // Rows of each marked actor now (LopsidedProfile.fields marks by seq; every seq up to here came from it).
        let last = min(try await store.lastSeq(), rows), step = rows / 10_000
        let rare1 = last > rows / 100 ? 1 : 0, rare10 = last >= 3 ? Int((last - 3) / (rows / 10)) + 1 : 0
        let heavy = last >= 5 ? Int((last - 5) / step) + 1 : 0
        let base: [(String, (Bool) -> EntryQuery)] = [
            ("tenant, big (~90%)", { EntryQuery(descending: $0, tenant: big) }),
            ("tenant, small (~0.16%)", { EntryQuery(descending: $0, tenant: small()) }),
            ("tenant big + the newest 10% of time", { EntryQuery(descending: $0, tenant: big, recordedAt: newest) }),
            ("tenant big + random 10% time window", { EntryQuery(descending: $0, tenant: big, recordedAt: randomWindow()) }),
            ("tenant small + random 10% time window", { EntryQuery(descending: $0, tenant: small(), recordedAt: randomWindow()) }),
            ("actor-rare-1 (\(rare1) row now)", { EntryQuery(descending: $0, actor: LopsidedProfile.rare1) }),
            ("actor-rare-10 (\(rare10) rows now)", { EntryQuery(descending: $0, actor: LopsidedProfile.rare10) }),
            ("actor-heavy-10k (\(Fmt.int(Double(heavy))) rows now)", { EntryQuery(descending: $0, actor: LopsidedProfile.heavy) }),
            // An actor within a tenant (what a tenant-scoped handle asks): the bucketed path, the tenant a filter.
            ("tenant big + actor-rare-10", { EntryQuery(descending: $0, actor: LopsidedProfile.rare10, tenant: big) }),
            ("tenant big + actor-heavy-10k", { EntryQuery(descending: $0, actor: LopsidedProfile.heavy, tenant: big) }),
            ("resource id (~1 row)", { EntryQuery(descending: $0, resourceId: LopsidedProfile.fields(seq: Int64(next() % UInt64(point)) + 1, rows: rows).resourceId) }),
        ]
        var kinds = base
        for (name, make) in base {
            kinds.append(("\(name) + action (1 in 8)", { var q = make($0); q.action = "export"; return q }))
            kinds.append(("\(name) + outcome denied (1 in 16) + severity notice (1 in 2)", { var q = make($0); q.outcome = .denied; q.severity = .notice; return q }))
        }
        var cells: [[FirstPageCell]] = []
        for run in 1...options.runs {
            progress("growth point \(Fmt.int(Double(point))): first pages, run \(run)/\(options.runs)")
            try await measureFirstPages(store: store, raw: raw, kinds: kinds, run: run, keys: options.lopsidedKeys, warmUp: 5,
                                        cellSeconds: options.cellSeconds, cells: &cells)
        }
        // Streaming the big tenant's rows, both orders alternating: rows/s over the first `--stream-rows`.
        var stream: [[Double]] = [[], []], streamCPU: [[Double]] = [[], []]
        let limit = options.streamRows
        for run in 0..<options.runs {
            for descending in (run % 2 == 0 ? [true, false] : [false, true]) {
                var n = 0
                let cpu0 = Self.processCPUSeconds()
                let seconds = try await timedAsync {
                    for try await _ in store.stream(EntryQuery(descending: descending, tenant: big)) {
                        n += 1
                        if n == limit { break }
                    }
                }.1
                stream[descending ? 0 : 1].append(Double(n) / seconds)
                streamCPU[descending ? 0 : 1].append((Self.processCPUSeconds() - cpu0) * 1e6 / Double(n))
                progress("  stream \(descending ? "newest" : "oldest") first: \(Fmt.int(Double(n) / seconds)) rows/s")
            }
        }
        let perRow = zip(stream[1], stream[0]).map { $0 / $1 }  // newest-first cost per row / oldest-first
        fig.streamRatio = Summary(perRow).median
        let all = cells.flatMap { $0 }
        fig.cells = all.count
        fig.missed = all.filter { !$0.met }.count
        fig.worstP50 = all.map { Summary($0.a50).median }.max() ?? 0
        fig.worstP99 = all.map { Summary($0.a99).median }.max() ?? 0

        let us = { (v: Double) in Fmt.fixed(v, 0) }
        line("### \(Fmt.int(Double(fig.rows))) rows (load average \(loadAverage()) at the end of the point)")
        line()
        line("| measure | raw SQLite | AuditDB | AuditDB / raw |")
        line("|---|---|---|---|")
        line("| batched append, rows/s over the last tenth before this point | \(fig.rawAppend.isNaN ? "(raw store stopped growing)" : Fmt.int(fig.rawAppend)) | \(Fmt.int(fig.append)) | \(fig.rawAppend.isNaN ? "" : Fmt.pct(fig.append / fig.rawAppend)) |")
        line("| durable single append p50, µs | \(us(fig.rawDurableP50)) | \(us(fig.durableP50)) | \(Fmt.x(fig.durableP50 / fig.rawDurableP50)) |")
        line("| group commit, \(options.groupTasks) tasks, appends/s (raw: \(options.groupTasks) rows per fsync'd commit) | \(Fmt.int(fig.rawCeiling)) | \(Fmt.int(fig.group)) | \(Fmt.pct(fig.group / fig.rawCeiling)) |")
        line("| full scan rows/s (raw: every column, 1 thread; AuditDB: `scan(.full)`, index proof included) | \(Fmt.int(fig.rawScan)) | \(Fmt.int(fig.fullScan)) | \(Fmt.pct(fig.fullScan / fig.rawScan)) |")
        line("| file bytes per row (closed store not vacuumed; raw twin not measured) | | \(Fmt.fixed(fig.bytesPerRow, 1)) | |")
        line()
        line("| incremental work | rows | raw scan of those rows ms | AuditDB ms | AuditDB µs per row | AuditDB / raw |")
        line("|---|---|---|---|---|---|")
        for l in incLines { line(l) }
        line()
        line("Streaming `\(big)` (`store.stream`, pages of 1,000, the first \(Fmt.int(Double(limit))) rows each way), \(options.runs) runs, order alternating: newest first \(Fmt.mmm(Summary(stream[0]), Fmt.int)) rows/s, oldest first \(Fmt.mmm(Summary(stream[1]), Fmt.int)) rows/s; cost per row newest / oldest \(Fmt.mmm(Summary(perRow), Fmt.x)) (target <= 1.5x: \(fig.streamRatio <= 1.5 ? "met" : "**missed**")); process CPU per row (all threads, steadier under load) newest first \(Fmt.mmm(Summary(streamCPU[0]), { Fmt.fixed($0, 2) })) µs, oldest first \(Fmt.mmm(Summary(streamCPU[1]), { Fmt.fixed($0, 2) })) µs, newest / oldest \(Fmt.mmm(Summary(zip(streamCPU[0], streamCPU[1]).map { $0 / $1 }), Fmt.x)).")
        line()
        line("First page of 100, \(options.lopsidedKeys) keys per cell per run (fewer when a cell's AuditDB side passed \(Fmt.fixed(options.cellSeconds, 0)) s), 5 warm-up keys, \(options.runs) runs; ms, min / median / max over the runs of each run's percentile. \(fig.cells - fig.missed) of \(fig.cells) cells meet p50 <= 2 ms and p99 <= 10 ms.")
        line()
        firstPageTable(kinds: kinds.map(\.0), cells: cells)
        line()
    }

    /// The curve so far: one row per point.
    func growthCurveTable(_ curve: [GrowthFigures]) {
        guard let first = curve.first else { return }
        line("#### The curve so far")
        line()
        line("| rows | append rows/s (vs raw; vs the first point) | durable p50 µs (raw) | group appends/s (of raw ceiling) | full scan rows/s (of raw) | incremental scan µs/new row (10k, 50k) | incremental checkpoint µs/new row (10k, 50k) | stream newest/oldest per row | first pages: cells met, worst p50 / p99 ms |")
        line("|---|---|---|---|---|---|---|---|---|")
        for f in curve {
            let rawPart = f.rawAppend.isNaN ? "raw not grown" : Fmt.pct(f.append / f.rawAppend)
            line("| \(Fmt.int(Double(f.rows))) | \(Fmt.int(f.append)) (\(rawPart); \(Fmt.pct(f.append / first.append))) | \(Fmt.fixed(f.durableP50, 0)) (\(Fmt.fixed(f.rawDurableP50, 0))) | \(Fmt.int(f.group)) (\(Fmt.pct(f.group / f.rawCeiling))) | \(Fmt.int(f.fullScan)) (\(Fmt.pct(f.fullScan / f.rawScan))) | \(f.incScanMicros.map { Fmt.fixed($0, 2) }.joined(separator: ", ")) | \(f.incCheckpointMicros.map { Fmt.fixed($0, 2) }.joined(separator: ", ")) | \(Fmt.x(f.streamRatio)) | \(f.cells - f.missed)/\(f.cells), \(Fmt.fixed(f.worstP50, 2)) / \(Fmt.fixed(f.worstP99, 2)) |")
        }
        line()
    }
}
