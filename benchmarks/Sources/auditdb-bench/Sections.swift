import AuditDB
import Foundation
import GRDBSQLite

/// Shared state of one benchmark process run.
final class Bench {
    let options: Options
    let data: Dataset
    let keys: KeyRing
    let schema: SchemaText
    var report: [String] = []
    /// A relaxed AuditDB store with `options.rows` rows, left by the append section (or built).
    var verifyStorePath: String?
    /// Sequential durable append throughput per run (events/s), from the latency section.
    var sequentialThroughput: [Double] = []
    /// Raw fsync'd single-row commit throughput per run (rows/s), from the latency section.
    var rawSequentialThroughput: [Double] = []
    var appendRelaxedMedian: Double?
    /// Set when AuditDB's durable appends are evidently not fsync'd.
    var durableCheckFailed = false
    var verifyMedian: Double?

    init(options: Options, data: Dataset, keys: KeyRing, schema: SchemaText) {
        self.options = options
        self.data = data
        self.keys = keys
        self.schema = schema
    }

    func path(_ name: String) -> String { options.dir + "/" + name }

    func line(_ s: String = "") {
        report.append(s)
        print(s)
    }

    // MARK: 1. Batched append

    /// One batched-append run: rows/s over the whole run, and over its last tenth of the rows
    /// (the table then holds 90-100% of its final size: the rate "on a store of that size").
    struct AppendRate {
        var total: Double
        var tail: Double
        /// Process CPU time (all threads) per row during the timed appends, in µs: steadier than
        /// wall time when the host is shared, and it counts AuditDB's helper threads too.
        var cpuMicrosPerRow: Double
    }

    /// CPU time of the whole process so far, in seconds.
    static func processCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Rows/s of the last tenth of the batches, from per-batch times.
    static func tailRate(_ batchSeconds: [Double], _ batchRows: [Int]) -> Double {
        let k = max(1, batchSeconds.count / 10)
        let rows = batchRows.suffix(k).reduce(0, +)
        return Double(rows) / batchSeconds.suffix(k).reduce(0, +)
    }

    /// Raw baseline: the identical rows, prepared statement + bind, `batch` rows per transaction.
    func rawAppend(path: String, synchronous: String, triggers: Bool, indexes: RawIndexes = .none) throws -> AppendRate {
        let db = try makeRawStore(path: path, schema: schema, synchronous: synchronous, triggers: triggers, indexes: indexes)
        let insert = try db.prepare(rawInsertSQL)
        let begin = try db.prepare("BEGIN IMMEDIATE")
        let commit = try db.prepare("COMMIT")
        defer {
            sqlite3_finalize(insert)
            sqlite3_finalize(begin)
            sqlite3_finalize(commit)
        }
        let raw = data.raw
        let n = raw.count, batch = options.batch
        var batchSeconds: [Double] = [], batchRows: [Int] = []
        let clock = ContinuousClock()
        let cpu0 = Self.processCPUSeconds()
        let seconds = try raw.arena.withUnsafeBufferPointer { arena in
            try raw.spans.withUnsafeBufferPointer { spans in
                try raw.macs.withUnsafeBufferPointer { macs in
                    try timed {
                        var start = 0
                        while start < n {
                            let t0 = clock.now
                            try db.step(begin)
                            let end = min(n, start + batch)
                            for i in start..<end {
                                let rc = rawInsert(
                                    insert, raw, i, seq: Int64(i + 1), arena: arena.baseAddress!,
                                    spans: spans.baseAddress!, macs: macs.baseAddress!)
                                guard rc == SQLITE_DONE else {
                                    throw BenchError("raw insert failed: \(String(cString: sqlite3_errmsg(db.handle)))")
                                }
                            }
                            try db.step(commit)
                            batchSeconds.append((clock.now - t0).seconds)
                            batchRows.append(end - start)
                            start += batch
                        }
                    }.1
                }
            }
        }
        let cpu = Self.processCPUSeconds() - cpu0
        let count = try db.int("SELECT count(*) FROM audit_entries")
        guard count == n else { throw BenchError("raw store has \(count) rows, expected \(n)") }
        return AppendRate(total: Double(n) / seconds, tail: Self.tailRate(batchSeconds, batchRows), cpuMicrosPerRow: cpu * 1e6 / Double(n))
    }

    /// AuditDB: append(contentsOf:) with `batch` events per call (one transaction each).
    /// AuditDB's batched append. With `dropIndexes`, the store's secondary indexes are dropped
    /// (through a raw connection) right after it is created: the issue's "table without secondary
    /// indexes" case. Such a store no longer verifies (its schema differs); it is measured, not kept.
    func auditAppend(path: String, durability: AuditStore.Durability, dropIndexes: Bool = false) async throws -> AppendRate {
        removeDatabase(path)
        var config = AuditStore.Configuration()
        config.durability = durability
        let store = try await AuditStore.create(at: path, keys: keys, configuration: config)
        if dropIndexes {
            let db = try RawDB(path: path)
            for statement in schema.entriesIndexes {
                guard let name = statement.split(separator: " ").dropFirst(2).first else { throw BenchError("unnamed index") }
                try db.exec("DROP INDEX \(name)")
            }
            guard try db.int("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'audit_entries' AND sql IS NOT NULL") == 0
            else { throw BenchError("indexes left after dropping") }
        }
        let batches = data.batches
        var batchSeconds: [Double] = [], batchRows: [Int] = []
        let clock = ContinuousClock()
        let cpu0 = Self.processCPUSeconds()
        let seconds = try await timedAsync {
            for b in batches {
                let t0 = clock.now
                try await store.append(contentsOf: b)
                batchSeconds.append((clock.now - t0).seconds)
                batchRows.append(b.count)
            }
        }.1
        let cpu = Self.processCPUSeconds() - cpu0
        let last = try await store.lastSeq()
        try await store.close()
        guard last == Int64(data.events.count) else { throw BenchError("AuditDB store ends at seq \(last)") }
        return AppendRate(total: Double(data.events.count) / seconds, tail: Self.tailRate(batchSeconds, batchRows),
                          cpuMicrosPerRow: cpu * 1e6 / Double(data.events.count))
    }

    /// Profiling aid: AUDITDB_BENCH_PROFILE_SIDE=raw|raw-idx|raw-idx-full|raw-plain|raw-trig|auditdb|auditdb-full|auditdb-noindex runs only that side of section 1, once, no report.
    func profileAppendSide(_ side: String) async throws {
        let (seconds, rate): (Double, AppendRate)
        switch side {
        case "raw":
            (rate, seconds) = try timed { try rawAppend(path: path("append-raw.db"), synchronous: "NORMAL", triggers: false) }
        case "raw-idx":
            (rate, seconds) = try timed { try rawAppend(path: path("append-raw.db"), synchronous: "NORMAL", triggers: false, indexes: .same) }
        case "raw-plain":
            (rate, seconds) = try timed { try rawAppend(path: path("append-raw.db"), synchronous: "NORMAL", triggers: false, indexes: .plain) }
        case "raw-idx-full":
            (rate, seconds) = try timed { try rawAppend(path: path("append-raw.db"), synchronous: "FULL", triggers: false, indexes: .same) }
        case "auditdb-full":
            (rate, seconds) = try await timedAsync { try await auditAppend(path: path("append-auditdb.db"), durability: .synchronous) }
        case "auditdb-noindex":
            (rate, seconds) = try await timedAsync {
                try await auditAppend(path: path("append-auditdb.db"), durability: .relaxed, dropIndexes: true)
            }
        case "raw-trig":
            (rate, seconds) = try timed { try rawAppend(path: path("append-raw.db"), synchronous: "NORMAL", triggers: true) }
        default:
            (rate, seconds) = try await timedAsync { try await auditAppend(path: path("append-auditdb.db"), durability: .relaxed) }
        }
        removeDatabase(path("append-raw.db"))
        removeDatabase(path("append-auditdb.db"))
        progress("profile side \(side): \(Fmt.int(rate.total)) rows/s, last tenth \(Fmt.int(rate.tail)), \(Fmt.fixed(rate.cpuMicrosPerRow, 2)) CPU µs/row (\(Fmt.fixed(seconds, 2)) s incl. open/close)")
    }

    func batchedAppend() async throws {
        if let side = ProcessInfo.processInfo.environment["AUDITDB_BENCH_PROFILE_SIDE"] {
            return try await profileAppendSide(side)
        }
        let n = options.rows, runs = options.runs
        var rawIdx: [AppendRate] = [], audit: [AppendRate] = [], rawNone: [AppendRate] = [], rawPlain: [AppendRate] = []
        var rawTrig: [AppendRate] = [], auditNone: [AppendRate] = []
        var rawIdxSync: [AppendRate] = [], auditSync: [AppendRate] = []
        for run in 1...runs {
            let auditFirst = run % 2 == 0  // alternate the order so neither side always runs first
            progress("append run \(run)/\(runs): relaxed (WAL, synchronous=NORMAL)")
            let storePath = path("append-auditdb-relaxed.db")
            func rawSide() throws {
                rawIdx.append(try rawAppend(path: path("append-raw.db"), synchronous: "NORMAL", triggers: false, indexes: .same))
                rawNone.append(try rawAppend(path: path("append-raw.db"), synchronous: "NORMAL", triggers: false, indexes: .none))
            }
            if auditFirst {
                audit.append(try await auditAppend(path: storePath, durability: .relaxed))
                try rawSide()
            } else {
                try rawSide()
                audit.append(try await auditAppend(path: storePath, durability: .relaxed))
            }
            auditNone.append(try await auditAppend(path: path("append-auditdb-noindex.db"), durability: .relaxed, dropIndexes: true))
            removeDatabase(path("append-auditdb-noindex.db"))
            if options.plainIndexBaseline {
                rawPlain.append(try rawAppend(path: path("append-raw.db"), synchronous: "NORMAL", triggers: false, indexes: .plain))
            }
            if options.triggerBaseline {
                rawTrig.append(try rawAppend(path: path("append-raw-trig.db"), synchronous: "NORMAL", triggers: true))
            }
            progress("  AuditDB \(Fmt.int(audit.last!.total)) rows/s (last tenth \(Fmt.int(audit.last!.tail))), AuditDB indexes dropped \(Fmt.int(auditNone.last!.total)), raw same indexes \(Fmt.int(rawIdx.last!.total)) (\(Fmt.int(rawIdx.last!.tail))), raw no index \(Fmt.int(rawNone.last!.total))"
                     + (rawPlain.isEmpty ? "" : ", raw plain TEXT indexes \(Fmt.int(rawPlain.last!.total)) (\(Fmt.int(rawPlain.last!.tail)))"))
            progress("append run \(run)/\(runs): synchronous (WAL, synchronous=FULL)")
            let syncPath = path("append-auditdb-sync.db")
            if auditFirst {
                auditSync.append(try await auditAppend(path: syncPath, durability: .synchronous))
                rawIdxSync.append(try rawAppend(path: path("append-raw.db"), synchronous: "FULL", triggers: false, indexes: .same))
            } else {
                rawIdxSync.append(try rawAppend(path: path("append-raw.db"), synchronous: "FULL", triggers: false, indexes: .same))
                auditSync.append(try await auditAppend(path: syncPath, durability: .synchronous))
            }
            progress("  raw same indexes \(Fmt.int(rawIdxSync.last!.total)) rows/s, AuditDB \(Fmt.int(auditSync.last!.total))")
        }
        // Keep the last relaxed AuditDB store for verify, storage, query and scan.
        let keep = path("verify-store.db")
        removeDatabase(keep)
        try FileManager.default.moveItem(atPath: path("append-auditdb-relaxed.db"), toPath: keep)
        verifyStorePath = keep
        for p in ["append-auditdb-relaxed.db", "append-raw.db", "append-raw-trig.db", "append-auditdb-sync.db"] {
            removeDatabase(path(p))
        }

        appendRelaxedMedian = Summary(audit.map(\.total)).median
        let r = { (v: [Double]) in Fmt.mmm(Summary(v), Fmt.int) }
        let p = { (v: [Double]) in Fmt.mmm(Summary(v), Fmt.pct) }
        func ratio(_ a: [AppendRate], _ b: [AppendRate], _ key: KeyPath<AppendRate, Double>) -> [Double] {
            zip(a, b).map { $0[keyPath: key] / $1[keyPath: key] }
        }
        let verdict = { (v: [Double], target: Double) in Summary(v).median >= target ? "**met**" : "**missed**" }
        let us = { (v: [Double]) in Fmt.mmm(Summary(v), { Fmt.fixed($0, 2) }) }
        line("## 1. Batched append: \(Fmt.int(Double(n))) rows per run, \(Fmt.int(Double(options.batch))) rows per transaction, \(runs) runs")
        line()
        line("rows/s and ratios as min / median / max over the runs; each ratio is computed within a run (AuditDB and its baselines back to back, order alternating). Every AuditDB store has the query indexes of migration 0003, so AuditDB's figure is an *indexed* append. \"Same indexes\" = the \(schema.entriesIndexes.count) `CREATE INDEX ... ON audit_entries` statements of schema/audit.sql, verbatim (actor and resource_id bucketed by `seq >> 14`, `(tenant, recorded_at)`, `recorded_at`, and the partial `origin_ref` index that no engine-recorded row enters). Same pragmas on both sides (WAL, the synchronous mode named, SQLite's default 2 MB page cache); no triggers on the raw side (AuditDB's connections skip them). \"Last tenth\" = rows/s over the last 10% of the batches, i.e. appending into a table of \(Fmt.int(Double(n) * 0.9))-\(Fmt.int(Double(n))) rows.")
        line()
        line("| case | baseline rows/s | AuditDB rows/s | AuditDB / baseline | target |")
        line("|---|---|---|---|---|")
        line("| relaxed (NORMAL), raw with the same indexes | \(r(rawIdx.map(\.total))) | \(r(audit.map(\.total))) | \(p(ratio(audit, rawIdx, \.total))) | >= 85%: \(verdict(ratio(audit, rawIdx, \.total), 0.85)) |")
        line("| same, last tenth of the rows | \(r(rawIdx.map(\.tail))) | \(r(audit.map(\.tail))) | \(p(ratio(audit, rawIdx, \.tail))) | (information) |")
        line("| synchronous (FULL), raw with the same indexes | \(r(rawIdxSync.map(\.total))) | \(r(auditSync.map(\.total))) | \(p(ratio(auditSync, rawIdxSync, \.total))) | >= 85%: \(verdict(ratio(auditSync, rawIdxSync, \.total), 0.85)) |")
        line("| relaxed, **table without secondary indexes** on both sides (AuditDB's store with its indexes dropped after creation) | \(r(rawNone.map(\.total))) | \(r(auditNone.map(\.total))) | \(p(ratio(auditNone, rawNone, \.total))) | >= 85%: \(verdict(ratio(auditNone, rawNone, \.total), 0.85)) |")
        line("| CPU µs per row, table without secondary indexes: raw vs AuditDB | \(us(rawNone.map(\.cpuMicrosPerRow))) | \(us(auditNone.map(\.cpuMicrosPerRow))) | raw / AuditDB CPU: \(p(ratio(rawNone, auditNone, \.cpuMicrosPerRow))) | (information) |")
        line("| relaxed, raw with **no** secondary index vs AuditDB with its indexes | \(r(rawNone.map(\.total))) | \(r(audit.map(\.total))) | \(p(ratio(audit, rawNone, \.total))) | (information: what the indexes cost AuditDB) |")
        if !rawPlain.isEmpty {
            line("| relaxed, raw with plain unbucketed TEXT indexes on actor, resource_id (rest the same) | \(r(rawPlain.map(\.total))) | \(r(audit.map(\.total))) | \(p(ratio(audit, rawPlain, \.total))) | (information: what bucketing buys) |")
            line("| same, last tenth of the rows | \(r(rawPlain.map(\.tail))) | \(r(audit.map(\.tail))) | \(p(ratio(audit, rawPlain, \.tail))) | |")
        }
        line("| CPU µs per row (whole process, all threads), relaxed, raw same indexes vs AuditDB | \(us(rawIdx.map(\.cpuMicrosPerRow))) | \(us(audit.map(\.cpuMicrosPerRow))) | raw / AuditDB CPU: \(p(ratio(rawIdx, audit, \.cpuMicrosPerRow))) | (information: less noise-sensitive) |")
        line("| CPU µs per row, raw no index / plain TEXT indexes | \(us(rawNone.map(\.cpuMicrosPerRow)))\(rawPlain.isEmpty ? "" : " / " + us(rawPlain.map(\.cpuMicrosPerRow))) | | | |")
        if !rawTrig.isEmpty {
            line("| relaxed, raw with no index but the 3 audit_entries triggers | \(r(rawTrig.map(\.total))) | \(r(audit.map(\.total))) | \(p(ratio(audit, rawTrig, \.total))) | (information) |")
        }
        line()
        let absMedian = Summary(audit.map(\.total)).median, tailMedian = Summary(audit.map(\.tail)).median
        line("Absolute: AuditDB indexed append \(Fmt.int(absMedian)) rows/s median over the \(Fmt.int(Double(n)))-row run, \(Fmt.int(tailMedian)) rows/s median over its last tenth; target >= 100,000 rows/s on a 1M-row store: \(n >= 1_000_000 ? (min(absMedian, tailMedian) >= 100_000 ? "**met**" : "**missed**") : "not evaluated (fewer than 1M rows)").")
        line()
        line("Index cost on the raw baseline (raw same indexes / raw no index, same run): \(p(ratio(rawIdx, rawNone, \.total)))" + (rawPlain.isEmpty ? "." : "; raw plain TEXT indexes / raw same indexes: \(p(ratio(rawPlain, rawIdx, \.total))) (last tenth: \(p(ratio(rawPlain, rawIdx, \.tail)))).") )
        line()
    }

    // MARK: 2 + 3. Durable single appends and group commit

    func durableLatency() async throws {
        let ops = options.latencyOps, runs = options.runs, block = 50
        // Raw sides: the store's table with the same indexes (like for like, the target's
        // baseline) and without secondary indexes (what the indexes cost a durable commit).
        let rawSides: [RawIndexes] = [.same, .none]
        var rawP50: [RawIndexes: [Double]] = [:], rawP99: [RawIndexes: [Double]] = [:]
        var ratioP50: [RawIndexes: [Double]] = [:], ratioP99: [RawIndexes: [Double]] = [:], rawTput: [RawIndexes: [Double]] = [:]
        var audP50: [Double] = [], audP99: [Double] = []
        var cpuPerAppend: [[Double]] = [[], [], []]  // process CPU µs per append: AuditDB, raw same, raw none
        sequentialThroughput = []
        let raw = data.raw, events = data.events
        for run in 1...runs {
            progress("durable single appends run \(run)/\(runs): \(ops) appends per side (AuditDB, raw same indexes, raw no index), interleaved in blocks of \(block)")
            let storePath = path("latency-auditdb.db")
            removeDatabase(storePath)
            var config = AuditStore.Configuration()
            config.durability = .synchronous
            config.writesOnCallerThread = options.callerThread
            let store = try await AuditStore.create(at: storePath, keys: keys, configuration: config)
            final class RawSide {
                let db: RawDB, insert: OpaquePointer, begin: OpaquePointer, commit: OpaquePointer, path: String
                var latencies: [Double] = []
                init(_ db: RawDB, path: String) throws {
                    self.db = db
                    self.path = path
                    insert = try db.prepare(rawInsertSQL)
                    begin = try db.prepare("BEGIN IMMEDIATE")
                    commit = try db.prepare("COMMIT")
                }
                func close() {
                    sqlite3_finalize(insert)
                    sqlite3_finalize(begin)
                    sqlite3_finalize(commit)
                }
            }
            var sides: [RawIndexes: RawSide] = [:]
            for kind in rawSides {
                let rawPath = path("latency-raw-\(kind.rawValue).db")
                sides[kind] = try RawSide(try makeRawStore(path: rawPath, schema: schema, synchronous: "FULL", triggers: false, indexes: kind), path: rawPath)
            }
            var audLat: [Double] = []
            audLat.reserveCapacity(ops)
            let clock = ContinuousClock()
            func rawOne(_ side: RawSide, _ i: Int) throws {
                try raw.arena.withUnsafeBufferPointer { arena in
                    try raw.spans.withUnsafeBufferPointer { spans in
                        try raw.macs.withUnsafeBufferPointer { macs in
                            let start = clock.now
                            try side.db.step(side.begin)
                            let rc = rawInsert(
                                side.insert, raw, i % raw.count, seq: Int64(i + 1), arena: arena.baseAddress!,
                                spans: spans.baseAddress!, macs: macs.baseAddress!)
                            guard rc == SQLITE_DONE else { throw BenchError("raw insert failed") }
                            try side.db.step(side.commit)
                            if i > 0 { side.latencies.append((clock.now - start).microseconds) }
                        }
                    }
                }
            }
            func auditOne(_ i: Int) async throws {
                let start = clock.now
                try await store.append(events[i % events.count])
                if i > 0 { audLat.append((clock.now - start).microseconds) }
            }
            // Warm-up (untimed): the first append of a store also records its key version.
            for kind in rawSides { try rawOne(sides[kind]!, 0) }
            try await auditOne(0)
            var i = 1
            var blockIndex = 0
            var cpuSeconds = [0.0, 0.0, 0.0]  // AuditDB, raw same indexes, raw no index
            while i <= ops {
                let end = min(ops + 1, i + block)
                // The three sides take turns going first, so each sees the same disk phases.
                let order = (blockIndex + run) % 3
                for position in 0..<3 {
                    let side = (order + position) % 3
                    let cpu0 = Self.processCPUSeconds()
                    switch side {
                    case 0: for k in i..<end { try await auditOne(k) }
                    case 1: for k in i..<end { try rawOne(sides[.same]!, k) }
                    default: for k in i..<end { try rawOne(sides[.none]!, k) }
                    }
                    cpuSeconds[side] += Self.processCPUSeconds() - cpu0
                }
                i = end
                blockIndex += 1
            }
            try await store.close()
            removeDatabase(storePath)
            let ap50 = percentile(audLat, 50), ap99 = percentile(audLat, 99)
            audP50.append(ap50); audP99.append(ap99)
            var note = "  p50 AuditDB \(Fmt.fixed(ap50, 0)) µs"
            for kind in rawSides {
                let side = sides[kind]!
                side.close()
                removeDatabase(side.path)
                let rp50 = percentile(side.latencies, 50), rp99 = percentile(side.latencies, 99)
                rawP50[kind, default: []].append(rp50)
                rawP99[kind, default: []].append(rp99)
                ratioP50[kind, default: []].append(ap50 / rp50)
                ratioP99[kind, default: []].append(ap99 / rp99)
                rawTput[kind, default: []].append(Double(side.latencies.count) / (side.latencies.reduce(0, +) / 1e6))
                note += ", raw \(kind.rawValue) \(Fmt.fixed(rp50, 0)) µs"
            }
            sequentialThroughput.append(Double(audLat.count) / (audLat.reduce(0, +) / 1e6))
            for (side, seconds) in cpuSeconds.enumerated() { cpuPerAppend[side].append(seconds / Double(ops) * 1e6) }
            progress(note)
        }
        let us = { (v: [Double]) in Fmt.mmm(Summary(v), { Fmt.fixed($0, 0) }) }
        let xs = { (v: [Double]) in Fmt.mmm(Summary(v), Fmt.x) }
        line("## 2. Durable single append: \(Fmt.int(Double(ops))) sequential appends per side per run, \(runs) runs")
        line()
        line("One event per transaction, WAL, synchronous=FULL; AuditDB `append(_:)` with `.synchronous`\(options.callerThread ? " and `writesOnCallerThread` (the opt-in fast path: written on the caller's thread when the store is idle)" : " (default configuration: written on GRDB's writer queue, the caller suspends)") vs raw `BEGIN IMMEDIATE; INSERT; COMMIT` (prepared) into the same table **with the same indexes** (like for like: the target's baseline) and, for reference, into the bare table without secondary indexes. The three sides take turns in blocks of \(block) appends, so all see the same disk phases. Latencies in µs, min / median / max over the runs of each run's percentile.")
        line()
        line("| metric | raw, same indexes | raw, no secondary index | AuditDB | AuditDB / raw same indexes | AuditDB / raw no index | target |")
        line("|---|---|---|---|---|---|---|")
        let same = RawIndexes.same, bare = RawIndexes.none
        durableCheckFailed = Summary(ratioP50[bare]!).median < 0.6
        let verdict = durableCheckFailed ? "not valid (see warning)" : (Summary(ratioP50[same]!).median <= 1.15 ? "**met**" : "**missed**")
        line("| p50 µs | \(us(rawP50[same]!)) | \(us(rawP50[bare]!)) | \(us(audP50)) | \(xs(ratioP50[same]!)) | \(xs(ratioP50[bare]!)) | <= 1.15x raw same indexes: \(verdict) |")
        line("| p99 µs | \(us(rawP99[same]!)) | \(us(rawP99[bare]!)) | \(us(audP99)) | \(xs(ratioP99[same]!)) | \(xs(ratioP99[bare]!)) | (information) |")
        line("| appends/s (sequential, one caller) | \(Fmt.mmm(Summary(rawTput[same]!), Fmt.int)) | \(Fmt.mmm(Summary(rawTput[bare]!), Fmt.int)) | \(Fmt.mmm(Summary(sequentialThroughput), Fmt.int)) | \(xs(zip(sequentialThroughput, rawTput[same]!).map { $0 / $1 })) | \(xs(zip(sequentialThroughput, rawTput[bare]!).map { $0 / $1 })) | |")
        let cpu = { (v: [Double]) in Fmt.mmm(Summary(v), { Fmt.fixed($0, 1) }) }
        line("| process CPU µs per append (all threads; the fsync wait is not CPU) | \(cpu(cpuPerAppend[1])) | \(cpu(cpuPerAppend[2])) | \(cpu(cpuPerAppend[0])) | | | (information) |")
        line()
        rawSequentialThroughput = rawTput[same]!
        // Sanity check: a commit that is really fsync'd cannot be much faster than the raw
        // synchronous=FULL commit without indexes measured beside it on the same disk.
        if durableCheckFailed {
            line("**WARNING: invalid durability.** AuditDB's `.synchronous` appends complete in \(Fmt.x(Summary(ratioP50[bare]!).median)) the time of a raw fsync'd commit: they are not being fsync'd (check with `strace -f -e trace=fdatasync`). Section 3 then measures non-durable appends too.")
            line()
        }
    }

    func groupCommit() async throws {
        let tasks = options.groupTasks, perTask = options.groupPerTask, runs = options.runs
        let total = tasks * perTask
        var tput: [Double] = []
        var cpuPerAppend: [Double] = []
        var groupSizes: [Double] = []
        var rawGroup: [RawIndexes: [Double]] = [:], rawSingle: [RawIndexes: [Double]] = [:]
        let events = data.events, raw = data.raw
        for run in 1...runs {
            progress("group commit run \(run)/\(runs): \(tasks) tasks x \(perTask) durable appends")
            let storePath = path("group-auditdb.db")
            removeDatabase(storePath)
            var config = AuditStore.Configuration()
            config.durability = .synchronous
            let counting = CountingMetrics()
            config.metricsFactory = counting
            let store = try await AuditStore.create(at: storePath, keys: keys, configuration: config)
            try await store.append(events[0])  // warm-up
            let commits0 = counting.counter("auditdb_commits_total")
            let cpu0 = Self.processCPUSeconds()
            let seconds = try await timedAsync {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for t in 0..<tasks {
                        group.addTask {
                            for k in 0..<perTask {
                                try await store.append(events[(1 + t * perTask + k) % events.count])
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }.1
            cpuPerAppend.append((Self.processCPUSeconds() - cpu0) / Double(total) * 1e6)
            groupSizes.append(Double(total) / Double(max(1, counting.counter("auditdb_commits_total") - commits0)))
            let last = try await store.lastSeq()
            try await store.close()
            removeDatabase(storePath)
            guard last == Int64(total + 1) else { throw BenchError("group store ends at seq \(last), expected \(total + 1)") }
            tput.append(Double(total) / seconds)
            // The ceiling for any group commit of `tasks` single-event callers: raw SQLite writing
            // the same rows `tasks` to a transaction (every fsync carrying every caller), one thread,
            // no signing; and, for its base, raw one-row commits into the same table.
            var note = "  \(Fmt.int(tput.last!)) appends/s"
            for kind in [RawIndexes.same, .none] {
                let rawPath = path("group-raw-\(kind.rawValue).db")
                for perCommit in [tasks, 1] {
                    let db = try makeRawStore(path: rawPath, schema: schema, synchronous: "FULL", triggers: false, indexes: kind)
                    let insert = try db.prepare(rawInsertSQL), begin = try db.prepare("BEGIN IMMEDIATE"), commit = try db.prepare("COMMIT")
                    let rows = perCommit == 1 ? min(total, 2_000) : total
                    let rawSeconds = try raw.arena.withUnsafeBufferPointer { arena in
                        try raw.spans.withUnsafeBufferPointer { spans in
                            try raw.macs.withUnsafeBufferPointer { macs in
                                try timed {
                                    var i = 0
                                    while i < rows {
                                        try db.step(begin)
                                        for _ in 0..<min(perCommit, rows - i) {
                                            let rc = rawInsert(insert, raw, i % raw.count, seq: Int64(i + 1), arena: arena.baseAddress!,
                                                               spans: spans.baseAddress!, macs: macs.baseAddress!)
                                            guard rc == SQLITE_DONE else { throw BenchError("raw insert failed") }
                                            i += 1
                                        }
                                        try db.step(commit)
                                    }
                                }.1
                            }
                        }
                    }
                    sqlite3_finalize(insert); sqlite3_finalize(begin); sqlite3_finalize(commit)
                    removeDatabase(rawPath)
                    if perCommit == 1 { rawSingle[kind, default: []].append(Double(rows) / rawSeconds) }
                    else { rawGroup[kind, default: []].append(Double(rows) / rawSeconds) }
                }
                note += "; raw \(kind.rawValue): \(tasks) rows/commit \(Fmt.int(rawGroup[kind]!.last!))/s, 1 row/commit \(Fmt.int(rawSingle[kind]!.last!))/s"
            }
            progress(note)
        }
        line("## 3. Group commit: \(tasks) concurrent tasks x \(perTask) durable single appends (\(Fmt.int(Double(total))) events) per run, \(runs) runs")
        line()
        line("Each task calls `append(_:)` in a loop (`.synchronous`); `withThrowingTaskGroup`. Compared with the sequential one-caller AuditDB throughput of section 2, run by run. **Raw ceiling**, same run: raw SQLite writing the same rows \(tasks) to a transaction (synchronous=FULL, one thread, prepared, no signing) — what any group commit of \(tasks) single-event callers could reach if every fsync carried all of them — against raw one-row commits into the same table, with the store's indexes and without.")
        line()
        line("| metric | sequential, one caller (section 2) | \(tasks) concurrent tasks | speed-up | target |")
        line("|---|---|---|---|---|")
        if sequentialThroughput.count == tput.count {
            let ratio = zip(tput, sequentialThroughput).map { $0 / $1 }
            let verdict = durableCheckFailed ? "not valid (see section 2 warning)" : (Summary(ratio).median >= 25 ? "**met**" : "**missed**")
            line("| AuditDB appends/s | \(Fmt.mmm(Summary(sequentialThroughput), Fmt.int)) | \(Fmt.mmm(Summary(tput), Fmt.int)) | \(Fmt.mmm(Summary(ratio), Fmt.x)) | >= 25x: \(verdict) |")
            let rawRatio = zip(tput, rawSequentialThroughput).map { $0 / $1 }
            line("| vs raw fsync'd single-row commits, same indexes (section 2) | \(Fmt.mmm(Summary(rawSequentialThroughput), Fmt.int)) | \(Fmt.mmm(Summary(tput), Fmt.int)) | \(Fmt.mmm(Summary(rawRatio), Fmt.x)) | (reference) |")
            let busy = zip(cpuPerAppend, tput).map { $0 * $1 / 1e6 }
            line("| appends per commit (one fsync each), mean | | \(Fmt.mmm(Summary(groupSizes), { Fmt.fixed($0, 1) })) | | (information: \(tasks) tasks could share one) |")
            line("| process CPU µs per append (all threads), and CPU cores kept busy (µs/append x appends/s) | | \(Fmt.mmm(Summary(cpuPerAppend), { Fmt.fixed($0, 1) })) µs; \(Fmt.mmm(Summary(busy), { Fmt.fixed($0, 2) })) cores of \(ProcessInfo.processInfo.activeProcessorCount) | | (information: CPU-bound when near the core count) |")
        } else {
            line("| appends/s | (section 2 not run) | \(Fmt.mmm(Summary(tput), Fmt.int)) | n/a | >= 25x: not evaluated |")
        }
        for (kind, label) in [(RawIndexes.same, "same indexes"), (.none, "no secondary index")] {
            let multiple = zip(rawGroup[kind]!, rawSingle[kind]!).map { $0 / $1 }
            line("| **raw ceiling**, \(label): \(tasks) rows per fsync'd commit vs 1 row per commit (rows/s) | \(Fmt.mmm(Summary(rawSingle[kind]!), Fmt.int)) | \(Fmt.mmm(Summary(rawGroup[kind]!), Fmt.int)) | \(Fmt.mmm(Summary(multiple), Fmt.x)) | (bound: raw SQLite's own multiple) |")
        }
        let ofCeiling = zip(tput, rawGroup[.same]!).map { $0 / $1 }
        line("| AuditDB \(tasks) tasks / raw ceiling with the same indexes | | | \(Fmt.mmm(Summary(ofCeiling), Fmt.pct)) | (information) |")
        line()
    }

    // MARK: 4. Verify

    /// Builds the verify store if the append section did not leave one.
    func ensureVerifyStore() async throws -> String {
        if let p = verifyStorePath { return p }
        let p = path("verify-store.db")
        progress("building a \(Fmt.int(Double(options.rows)))-row store for verify (untimed)")
        _ = try await auditAppend(path: p, durability: .relaxed)
        verifyStorePath = p
        return p
    }

    static let scanColumns = """
        seq, recorded_at, occurred_at, tenant, actor, action, resource_type, resource_id, outcome, severity,
        correlation_id, source, details, origin, origin_ref, format_version, key_version, mac
        """

    /// Steps through every row, touching every column (ints read, texts and blob fetched).
    static func scan(_ stmt: OpaquePointer) -> (rows: Int, checksum: UInt64) {
        var rows = 0
        var sum: UInt64 = 0
        while sqlite3_step(stmt) == SQLITE_ROW {
            rows += 1
            for c: Int32 in [0, 1, 2, 8, 9, 13, 14, 15, 16] { sum &+= UInt64(bitPattern: sqlite3_column_int64(stmt, c)) }
            for c: Int32 in [3, 4, 5, 6, 7, 10, 11, 12] {
                if let p = sqlite3_column_text(stmt, c) { sum &+= UInt64(p[0]) }
                sum &+= UInt64(sqlite3_column_bytes(stmt, c))
            }
            if let b = sqlite3_column_blob(stmt, 17) { sum &+= UInt64(b.load(as: UInt8.self)) }
            sum &+= UInt64(sqlite3_column_bytes(stmt, 17))
        }
        sqlite3_reset(stmt)
        return (rows, sum)
    }

    func rawScan(_ storePath: String, threads: Int, rows: Int) throws -> Double {
        let last = Int64(rows), half = Int64(rows / 2)
        var ranges: [(Int64, Int64)] = [(1, last)]
        if threads == 2 { ranges = [(1, half), (half + 1, last)] }
        let dbs = try ranges.map { _ in try RawDB(path: storePath, readOnly: true) }
        let stmts = try dbs.map { try $0.prepare("SELECT \(Self.scanColumns) FROM audit_entries WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq") }
        defer { for s in stmts { sqlite3_finalize(s) } }
        for (s, r) in zip(stmts, ranges) {
            sqlite3_bind_int64(s, 1, r.0)
            sqlite3_bind_int64(s, 2, r.1)
        }
        let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: threads)
        defer { counts.deallocate() }
        nonisolated(unsafe) let shared = (stmts, counts)
        let seconds = timed {
            DispatchQueue.concurrentPerform(iterations: threads) { k in
                shared.1[k] = Self.scan(shared.0[k]).rows
            }
        }.1
        let seen = counts.reduce(0, +)
        guard seen == rows else { throw BenchError("raw scan saw \(seen) rows, expected \(rows)") }
        _ = dbs
        return Double(rows) / seconds
    }

    func verify() async throws {
        let storePath = try await ensureVerifyStore()
        let rows = options.rows, runs = options.runs
        let store = try await AuditStore.open(at: storePath, keys: keys)
        var raw1: [Double] = [], raw2: [Double] = [], audit: [Double] = [], scanFull: [Double] = [], auditCPU: [Double] = []
        var scanConfig = IntegrityScanner.Configuration()
        scanConfig.recordsPasses = false  // keep the store at exactly `rows` rows
        let scanner = IntegrityScanner(store: store, configuration: scanConfig)
        for run in 1...runs {
            progress("verify run \(run)/\(runs)")
            func doScan() async throws {
                let (report, seconds) = try await timedAsync { try await scanner.scan(.full) }
                guard report.isIntact, report.mode == .full, report.integrity.rowsChecked == rows else {
                    throw BenchError("scan(.full): intact=\(report.isIntact) mode=\(report.mode) rowsChecked=\(report.integrity.rowsChecked)")
                }
                scanFull.append(Double(rows) / seconds)
            }
            func doVerify() async throws {
                let cpu0 = Self.processCPUSeconds()
                let (report, seconds) = try await timedAsync { try await store.verify() }
                let cpu = Self.processCPUSeconds() - cpu0
                guard report.isIntact, report.rowsChecked == rows else {
                    throw BenchError("verify: intact=\(report.isIntact) rowsChecked=\(report.rowsChecked): \(report)")
                }
                audit.append(Double(rows) / seconds)
                auditCPU.append(cpu * 1e9 / Double(rows))
            }
            if run % 2 == 0 { try await doVerify(); try await doScan() }
            raw1.append(try rawScan(storePath, threads: 1, rows: rows))
            raw2.append(try rawScan(storePath, threads: 2, rows: rows))
            if run % 2 == 1 { try await doScan(); try await doVerify() }
            progress("  raw scan 1 thread \(Fmt.int(raw1.last!)) rows/s, 2 threads \(Fmt.int(raw2.last!)); verify \(Fmt.int(audit.last!)); scanner full \(Fmt.int(scanFull.last!))")
        }
        try await store.close()
        verifyMedian = Summary(audit).median
        let r = { (v: [Double]) in Fmt.mmm(Summary(v), Fmt.int) }
        let p = { (v: [Double]) in Fmt.mmm(Summary(v), Fmt.pct) }
        line("## 4. Full verify: \(Fmt.int(Double(rows)))-row store, \(runs) runs")
        line()
        line("`store.verify()` (schema, header, every row's MAC and chain link; it uses two reader connections for stores of 20k rows or more) vs a raw scan of the same file reading every column of every row in seq order (sqlite3_step loop), on one thread and on two threads (two connections, seq range split in half). All read the same, OS-cached file.")
        line()
        line("| case | rows/s | verify / case (same run) |")
        line("|---|---|---|")
        line("| raw scan, 1 thread | \(r(raw1)) | \(p(zip(audit, raw1).map { $0 / $1 })) |")
        line("| raw scan, 2 threads | \(r(raw2)) | \(p(zip(audit, raw2).map { $0 / $1 })) |")
        line("| AuditDB `verify()` | \(r(audit)) | |")
        line("| AuditDB `verify()`, CPU time (all threads) per row | \(Fmt.mmm(Summary(auditCPU), { "\(Int($0.rounded())) ns" })) | |")
        line("| AuditDB `IntegrityScanner.scan(.full)` (pass not recorded) | \(r(scanFull)) | scan / verify (same run): \(p(zip(scanFull, audit).map { $0 / $1 })); scan / raw 1 thread: \(p(zip(scanFull, raw1).map { $0 / $1 })); scan / raw 2 threads: \(p(zip(scanFull, raw2).map { $0 / $1 })) |")
        line()
        line("Target >= 1,200,000 rows/s: verify \(Summary(audit).median >= 1_200_000 ? "**met**" : "**missed**") (median \(Fmt.int(Summary(audit).median))); scanner full pass \(Summary(scanFull).median >= 1_200_000 ? "**met**" : "**missed**") (median \(Fmt.int(Summary(scanFull).median))).")
        line()
    }

    // MARK: 5. Storage

    func storage() async throws {
        let storePath = try await ensureVerifyStore()
        let rows = Double(options.rows)
        let vacuumed = path("storage-auditdb-vacuumed.db"), unsigned = path("storage-unsigned.db")
        removeDatabase(vacuumed)
        removeDatabase(unsigned)
        let asIs: Int64
        do {
            let db = try RawDB(path: storePath)
            asIs = try db.int("PRAGMA page_count") * db.int("PRAGMA page_size")
            try db.exec("VACUUM INTO '\(vacuumed)'")
        }
        let v = try RawDB(path: vacuumed)
        let auditBytes = try v.int("PRAGMA page_count") * v.int("PRAGMA page_size")
        let u = try RawDB(path: unsigned)
        try u.exec(schema.unsignedTable)
        for i in schema.unsignedIndexes { try u.exec(i) }  // same indexes, so whole files compare like for like
        try u.exec("ATTACH '\(vacuumed)' AS s")
        try u.exec("""
            INSERT INTO audit_entries_unsigned SELECT seq, recorded_at, occurred_at, tenant, actor, action, resource_type,
                resource_id, outcome, severity, correlation_id, source, details, origin, origin_ref FROM s.audit_entries
            """)
        try u.exec("DETACH s")
        try u.exec("VACUUM")
        let unsignedBytes = try u.int("PRAGMA page_count") * u.int("PRAGMA page_size")
        // Per-table bytes from dbstat, when this SQLite has it.
        let auditTable = try? v.int("SELECT sum(pgsize) FROM dbstat WHERE name = 'audit_entries'")
        let unsignedTable = try? u.int("SELECT sum(pgsize) FROM dbstat WHERE name = 'audit_entries_unsigned'")
        let macPayload = try v.int("SELECT sum(length(mac)) FROM audit_entries")
        line("## 5. Storage: the \(Fmt.int(rows))-row store")
        line()
        line("Page size \(try v.int("PRAGMA page_size")) bytes. \"Unsigned\" = the same rows in the same table minus `mac`, `key_version` and `format_version`, with the same \(schema.entriesIndexes.count) secondary indexes, copied from the store with INSERT ... SELECT and VACUUMed. Index sizes are listed separately.")
        line()
        line("| measure | unsigned | AuditDB | overhead per row | target |")
        line("|---|---|---|---|---|")
        let overhead = Double(auditBytes - unsignedBytes) / rows
        line("| whole file after VACUUM (page_count x page_size) / rows | \(Fmt.fixed(Double(unsignedBytes) / rows, 1)) B | \(Fmt.fixed(Double(auditBytes) / rows, 1)) B | \(Fmt.fixed(overhead, 1)) B | <= 48 B: \(overhead <= 48 ? "**met**" : "**missed**") |")
        if let a = auditTable, let b = unsignedTable {
            line("| audit_entries b-tree only (dbstat) / rows | \(Fmt.fixed(Double(b) / rows, 1)) B | \(Fmt.fixed(Double(a) / rows, 1)) B | \(Fmt.fixed(Double(a - b) / rows, 1)) B | |")
            // How those bytes split: record payload, per-cell overhead, and free space on pages.
            for (column, label) in [("payload", "record bytes (dbstat payload) / rows"), ("unused", "free bytes on pages (dbstat unused) / rows")] {
                if let pa = try? v.int("SELECT sum(\(column)) FROM dbstat WHERE name = 'audit_entries'"),
                   let pb = try? u.int("SELECT sum(\(column)) FROM dbstat WHERE name = 'audit_entries_unsigned'") {
                    line("| \(label) | \(Fmt.fixed(Double(pb) / rows, 1)) B | \(Fmt.fixed(Double(pa) / rows, 1)) B | \(Fmt.fixed(Double(pa - pb) / rows, 1)) B | |")
                }
            }
        }
        line("| store as left by `close()` (not vacuumed) / rows | | \(Fmt.fixed(Double(asIs) / rows, 1)) B | | |")
        // The secondary indexes, reported separately (both sides carry the same ones).
        for name in ["audit_entries_actor", "audit_entries_resource", "audit_entries_tenant_time", "audit_entries_recorded_at", "audit_entries_origin_ref"] {
            let unsignedName = name.replacingOccurrences(of: "audit_entries_", with: "audit_entries_unsigned_")
            if let a = try? v.int("SELECT sum(pgsize) FROM dbstat WHERE name = '\(name)'"),
               let b = try? u.int("SELECT sum(pgsize) FROM dbstat WHERE name = '\(unsignedName)'") {
                line("| index `\(name)` (dbstat) / rows | \(Fmt.fixed(Double(b) / rows, 1)) B | \(Fmt.fixed(Double(a) / rows, 1)) B | \(Fmt.fixed(Double(a - b) / rows, 1)) B | |")
            }
        }
        line()
        line("The `mac` column alone holds \(Fmt.fixed(Double(macPayload) / rows, 1)) bytes of payload per row.")
        line()
        removeDatabase(vacuumed)
        removeDatabase(unsigned)
    }

    // MARK: 6. The Python peer

    func peer() throws {
        let script = options.peerScript
        guard FileManager.default.fileExists(atPath: script) else {
            line("## 6. Python peer: skipped (\(script) not found)")
            line()
            return
        }
        let rows = options.rows
        progress("python peer: \(script) \(rows) rows, \(options.runs) reps")
        let dbPath = path("peer-python.db")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // --indexed: the same query indexes AuditDB's store has, so the comparison is like for like.
        process.arguments = ["python3", script, dbPath, String(rows), String(options.runs), "--indexed"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        removeDatabase(dbPath)
        progress(output)
        func parse(_ key: String) -> [Double]? {
            guard let l = output.split(separator: "\n").first(where: { $0.hasPrefix("python \(key) rows/s") }),
                  let nums = l.split(separator: "=").last
            else { return nil }
            let v = nums.trimmingCharacters(in: .whitespaces).split(separator: "/").compactMap { Double($0) }
            return v.count == 3 ? v : nil
        }
        line("## 6. The hand-written Python reference (benchmarks/peer/peer_python.py --indexed), \(Fmt.int(Double(rows))) rows, \(options.runs) reps")
        line()
        line("Python \(pythonVersion()) `sqlite3` + `hmac`/`hashlib`, canonical JSON per row, 10k rows per commit, synchronous=NORMAL, with the same query indexes as AuditDB's store (actor and resource bucketed by seq >> 14, (tenant, ts), (ts)). Its rows come from its own generator (same shape, not the same bytes). Run in this process run, after the sections above.")
        line()
        guard process.terminationStatus == 0, let a = parse("append"), let v = parse("verify") else {
            line("The peer failed (exit \(process.terminationStatus)); output:")
            line("```")
            line(output)
            line("```")
            return
        }
        line("| path | Python rows/s (min / median / max) | AuditDB median rows/s (this run) | AuditDB / Python |")
        line("|---|---|---|---|")
        let am = appendRelaxedMedian.map { Fmt.int($0) } ?? "n/a"
        let vm = verifyMedian.map { Fmt.int($0) } ?? "n/a"
        line("| append | \(Fmt.int(a[0])) / \(Fmt.int(a[1])) / \(Fmt.int(a[2])) | \(am) (relaxed) | \(appendRelaxedMedian.map { Fmt.x($0 / a[1]) } ?? "n/a") |")
        line("| verify | \(Fmt.int(v[0])) / \(Fmt.int(v[1])) / \(Fmt.int(v[2])) | \(vm) | \(verifyMedian.map { Fmt.x($0 / v[1]) } ?? "n/a") |")
        line()
    }

    func pythonVersion() -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "--version"]
        let pipe = Pipe()
        process.standardOutput = pipe
        guard (try? process.run()) != nil else { return "?" }
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return out.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "Python ", with: "")
    }
}
