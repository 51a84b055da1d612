import AuditDB
import Foundation
import GRDBSQLite

/// Section 16 (`--only growth`, issue 19 items 1-3): the growth curve. One store of the lopsided
/// profile (section 15's rows: one tenant ~90%, actors with 1, 10 and 10,000 rows) grows to
/// `--rows`, its rows generated batch by batch (never held in memory), with a raw-SQLite twin
/// (the store's table and indexes, the same rows and seqs) grown beside it, batch by batch, order
/// alternating. At each point of `--growth-points` (default 1M, 10M, 100M up to `--rows`, and
/// `--rows`), with the store at that size: append rate, durable single appends, group commit, full
/// scan, checkpoint, incremental scan and checkpoint of 10k and 50k new rows, first pages, streaming.
/// Each point's report is written to `--out` as soon as it is measured.
extension Bench {
    struct GrowthFigures {
        var rows: Int64 = 0
        var append = 0.0, rawAppend = 0.0, durableP50 = 0.0, rawDurableP50 = 0.0, group = 0.0, rawCeiling = 0.0
        var fullScan = 0.0, rawScan = 0.0, incScanMicros: [Double] = [], incCheckpointMicros: [Double] = []
        var worstP50 = 0.0, worstP99 = 0.0, missed = 0, cells = 0, streamRatio = 0.0, bytesPerRow = 0.0
    }

    /// Writes the report so far to `--out` (a long run leaves what it measured).
    func flushReport() {
        guard let out = options.out else { return }
        try? (report.joined(separator: "\n") + "\n").write(toFile: out, atomically: false, encoding: .utf8)
    }

    func growth() async throws {
        let rows = Int64(options.rows), batch = Int64(options.batch)
        guard rows % 10_000 == 0 else { throw BenchError("--rows must be a multiple of 10,000 for the growth profile") }
        let points = Array(Set((options.growthPoints ?? [1_000_000, 10_000_000, 100_000_000]).filter { $0 <= rows } + [rows])).sorted()
        let rawLimit = Int64(options.rawAppendRows ?? options.rows)
        let p = path("growth.db"), r = path("growth-raw.db")
        removeDatabase(p); removeDatabase(r)
        defer { removeDatabase(p); removeDatabase(r) }
        var relaxed = AuditStore.Configuration()
        relaxed.durability = .relaxed
        var store = try await AuditStore.create(at: p, keys: keys, configuration: relaxed)
        let raw = try makeRawStore(path: r, schema: schema, synchronous: "NORMAL", triggers: false, indexes: .same)
        let insert = try raw.prepare(rawInsertSQL), begin = try raw.prepare("BEGIN IMMEDIATE"), commit = try raw.prepare("COMMIT")
        defer { sqlite3_finalize(insert); sqlite3_finalize(begin); sqlite3_finalize(commit) }
        let signer = try CheckpointSigner([CheckpointSigningKey.generate(version: 1)])
        /// Inserts rows `from..<from+count` of `rr` as seqs `firstSeq + index`, `perCommit` rows per transaction.
        func rawBatch(_ rr: RawRows, from: Int = 0, count: Int? = nil, firstSeq: Int64, perCommit: Int) throws {
            let end = from + (count ?? rr.count)
            try rr.arena.withUnsafeBufferPointer { arena in
                try rr.spans.withUnsafeBufferPointer { spans in
                    try rr.macs.withUnsafeBufferPointer { macs in
                        var i = from
                        while i < end {
                            try raw.step(begin)
                            for k in i..<min(end, i + perCommit) {
                                let rc = rawInsert(insert, rr, k, seq: firstSeq + Int64(k), arena: arena.baseAddress!, spans: spans.baseAddress!, macs: macs.baseAddress!)
                                guard rc == SQLITE_DONE else { throw BenchError("raw insert: \(String(cString: sqlite3_errmsg(raw.handle)))") }
                            }
                            try raw.step(commit)
                            i += perCommit
                        }
                    }
                }
            }
        }
        func rawRows(_ fields: [RowFields]) -> RawRows { RawRows(fields, recordedBase: AuditTimestamp.now().microsecondsSinceEpoch) }
        func profile(_ range: ClosedRange<Int64>) -> [RowFields] { range.map { LopsidedProfile.fields(seq: $0, rows: rows) } }
        line("## 16. Growth curve: the lopsided profile grown to \(Fmt.int(Double(rows))) rows, measured at \(points.map { Fmt.int(Double($0)) }.joined(separator: ", ")) rows")
        line()
        line("One AuditDB store (relaxed durability, \(Fmt.int(Double(batch))) rows per `append(contentsOf:)`) and a raw-SQLite twin (schema/audit.sql's table and all \(schema.entriesIndexes.count) `audit_entries` indexes verbatim, WAL, synchronous=NORMAL, prepared binds, \(Fmt.int(Double(batch))) rows per transaction, the same rows and seqs\(rawLimit < rows ? "; it stops growing at \(Fmt.int(Double(rawLimit))) rows (disk)" : "")) grow together, batch by batch, order alternating; rows generated per batch (untimed). At each point, with both at that size: the rates of the last tenth of the rows before it; \(options.latencyOps) durable single appends per side (synchronous=FULL, interleaved in blocks of 50); \(options.groupTasks) tasks x \(options.groupPerTask) durable appends against raw SQLite's ceiling (\(options.groupTasks) rows per fsync'd commit); `IntegrityScanner.scan(.full)` against a raw scan of every column of the store's file (1 thread); `checkpoint(signer:)` covering the rows since the last one; then 10,000 and 50,000 new rows each followed by `scan(.incremental)` and `checkpoint(signer:)` (against a raw scan of just those rows); first pages; streaming. Load average at the start: \(loadAverage()).")
        line()
        flushReport()
        var curve: [GrowthFigures] = []
        var next: Int64 = 1, batchIndex = 0
        for point in points {
            var fig = GrowthFigures()
            let windowStart = point - point / 10
            var aRows = 0, aSec = 0.0, rRows = 0, rSec = 0.0
            // The raw twin takes the store's seqs: after a point, the store holds more rows than
            // the generator's index (durable, group and incremental appends), and so may the twin.
            var seqNext = try await store.lastSeq() + 1
            while next <= point {
                let end = min(point, next + batch - 1)
                let fields = profile(next...end)
                let events = fields.map(\.event)
                let inWindow = next > windowStart
                func auditSide() async throws {
                    let s = try await timedAsync { try await store.append(contentsOf: events) }.1
                    if inWindow { aRows += events.count; aSec += s }
                }
                func rawSide() throws {
                    guard next <= rawLimit else { return }
                    let rr = rawRows(fields)
                    let s = try timed { try rawBatch(rr, firstSeq: seqNext, perCommit: Int(batch)) }.1
                    if inWindow { rRows += fields.count; rSec += s }
                }
                if batchIndex % 2 == 0 { try await auditSide(); try rawSide() } else { try rawSide(); try await auditSide() }
                batchIndex += 1
                next = end + 1
                seqNext += Int64(events.count)
                if (next - 1) % 1_000_000 == 0 { progress("growth: \(Fmt.int(Double(next - 1))) rows (load \(loadAverage()))") }
            }
            fig.append = Double(aRows) / aSec
            fig.rawAppend = rRows > 0 ? Double(rRows) / rSec : .nan
            fig.rows = try await store.lastSeq()
            progress("growth point \(Fmt.int(Double(fig.rows))): append \(Fmt.int(fig.append)) rows/s, raw \(Fmt.int(fig.rawAppend))")
            try await store.close()

            // Durable single appends and group commit, on the store at this size.
            var durable = AuditStore.Configuration()
            durable.durability = .synchronous
            store = try await AuditStore.open(at: p, keys: keys, configuration: durable)
            try raw.exec("PRAGMA synchronous=FULL")
            var seq = try await store.lastSeq() + 1
            var aLat: [Double] = [], rLat: [Double] = []
            let clock = ContinuousClock()
            for blockStart in stride(from: 0, to: options.latencyOps, by: 50) {
                let n = min(50, options.latencyOps - blockStart)
                let fields = profile(seq...(seq + Int64(n) - 1))
                func auditSide() async throws {
                    for f in fields { let t0 = clock.now; try await store.append(f.event); aLat.append((clock.now - t0).microseconds) }
                }
                func rawSide() throws {
                    let rr = rawRows(fields)
                    for k in 0..<n { let t0 = clock.now; try rawBatch(rr, from: k, count: 1, firstSeq: seq, perCommit: 1); rLat.append((clock.now - t0).microseconds) }
                }
                if (blockStart / 50) % 2 == 0 { try await auditSide(); try rawSide() } else { try rawSide(); try await auditSide() }
                seq += Int64(n)
            }
            fig.durableP50 = percentile(aLat, 50); fig.rawDurableP50 = percentile(rLat, 50)
            let total = options.groupTasks * options.groupPerTask
            let groupFields = profile(seq...(seq + Int64(total) - 1))
            let groupEvents = groupFields.map(\.event)
            let s = store, tasks = options.groupTasks, perTask = options.groupPerTask
            let groupSeconds = try await timedAsync {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for t in 0..<tasks {
                        group.addTask { for k in 0..<perTask { try await s.append(groupEvents[t * perTask + k]) } }
                    }
                    try await group.waitForAll()
                }
            }.1
            fig.group = Double(total) / groupSeconds
            let groupRaw = rawRows(groupFields)
            fig.rawCeiling = Double(total) / (try timed { try rawBatch(groupRaw, firstSeq: seq, perCommit: tasks) }.1)
            try raw.exec("PRAGMA synchronous=NORMAL")
            try await store.close()
            store = try await AuditStore.open(at: p, keys: keys, configuration: relaxed)
            progress("  durable p50 \(Fmt.fixed(fig.durableP50, 0)) µs (raw \(Fmt.fixed(fig.rawDurableP50, 0))); group \(Fmt.int(fig.group))/s (raw ceiling \(Fmt.int(fig.rawCeiling)))")

            // Full scan, checkpoint, and incremental scan/checkpoint of new rows only.
            let scanner = IntegrityScanner(store: store, configuration: IntegrityScanner.Configuration(recordsPasses: false))
            let size = try await store.lastSeq()
            let (full, fullSeconds) = try await timedAsync { try await scanner.scan(.full) }
            guard full.isIntact, full.integrity.rowsChecked == Int(size) else { throw BenchError("growth full pass: \(full.integrity)") }
            fig.fullScan = Double(size) / fullSeconds
            fig.rawScan = try rawScan(p, threads: 1, rows: Int(size))
            let lastCheckpoint = (try await store.checkpoints()).last?.seq ?? 0
            let checkpointSeconds = try await timedAsync { try await store.checkpoint(signer: signer) }.1
            var incLines: [String] = []
            incLines.append("| checkpoint of the rows since the last one (\(lastCheckpoint == 0 ? "the first: verifies every row, then the tree" : "from seq \(lastCheckpoint + 1)")) | \(Fmt.int(Double(size - lastCheckpoint))) | | \(Fmt.fixed(checkpointSeconds * 1e3, 1)) | \(Fmt.fixed(checkpointSeconds * 1e6 / Double(size - lastCheckpoint), 2)) | |")
            for newRows in [Int64(10_000), 50_000] {
                let first = try await store.lastSeq() + 1
                for start in stride(from: first, to: first + newRows, by: Int(batch)) {
                    try await store.append(contentsOf: profile(start...min(first + newRows - 1, start + batch - 1)).map(\.event))
                }
                let (inc, incSeconds) = try await timedAsync { try await scanner.scan(.incremental) }
                guard inc.isIntact, inc.mode == .incremental else { throw BenchError("growth incremental pass: \(inc.integrity)") }
                let cpSeconds = try await timedAsync { try await store.checkpoint(signer: signer) }.1
                let rawSeconds = try timed { () throws -> Int in
                    let stmt = try RawDB(path: p, readOnly: true)
                    let q = try stmt.prepare("SELECT \(Bench.scanColumns) FROM audit_entries WHERE seq BETWEEN \(first) AND \(first + newRows - 1) ORDER BY seq")
                    defer { sqlite3_finalize(q) }
                    return Bench.scan(q).rows
                }.1
                fig.incScanMicros.append(incSeconds * 1e6 / Double(newRows))
                fig.incCheckpointMicros.append(cpSeconds * 1e6 / Double(newRows))
                incLines.append("| `scan(.incremental)` after \(Fmt.int(Double(newRows))) new rows (\(inc.integrity.rowsChecked) rows checked) | \(Fmt.int(Double(newRows))) | \(Fmt.fixed(rawSeconds * 1e3, 1)) | \(Fmt.fixed(incSeconds * 1e3, 1)) | \(Fmt.fixed(fig.incScanMicros.last!, 2)) | \(Fmt.x(incSeconds / rawSeconds)) |")
                incLines.append("| `checkpoint(signer:)` of those \(Fmt.int(Double(newRows))) rows | \(Fmt.int(Double(newRows))) | \(Fmt.fixed(rawSeconds * 1e3, 1)) | \(Fmt.fixed(cpSeconds * 1e3, 1)) | \(Fmt.fixed(fig.incCheckpointMicros.last!, 2)) | \(Fmt.x(cpSeconds / rawSeconds)) |")
            }
            progress("  full scan \(Fmt.int(fig.fullScan)) rows/s (raw \(Fmt.int(fig.rawScan))); incremental scan µs/new row \(fig.incScanMicros.map { Fmt.fixed($0, 2) }), checkpoint \(fig.incCheckpointMicros.map { Fmt.fixed($0, 2) })")
            let db = try RawDB(path: p, readOnly: true)
            fig.bytesPerRow = Double(try db.int("PRAGMA page_count") * db.int("PRAGMA page_size")) / Double(try await store.lastSeq())
            try await growthQueries(store: store, path: p, rows: rows, point: fig.rows, figures: &fig, incLines: incLines)
            curve.append(fig)
            growthCurveTable(curve)
            flushReport()
        }
        try await store.close()
    }

    func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
    }
}
