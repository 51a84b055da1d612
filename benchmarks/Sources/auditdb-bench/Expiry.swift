import AuditDB
import Foundation
import Synchronization

extension Bench {
    // MARK: 11. Expiry (retention)

    /// Expiring the older half of a store of 2 x `rows` rows (docs/retention.md): rows/s, and the
    /// pauses a concurrent appender sees (durable single appends in a loop during the expiry,
    /// against the same loop just before it on the same store). Then `verify()` on the store with
    /// its expired range against a copy of the same store made before the expiry (same run).
    func expiry() async throws {
        let rows = options.rows, runs = options.runs
        var rates: [Double] = [], worstDuring: [Double] = [], p99During: [Double] = [], worstBefore: [Double] = [], p99Before: [Double] = []
        var verifyExpired: [Double] = [], verifyWhole: [Double] = []
        var mbBefore: [Double] = [], mbAfter: [Double] = [], queryWorst: [Double] = [], queryP99: [Double] = [], queries: [Double] = []
        for run in 1...runs {
            progress("expiry run \(run)/\(runs): \(2 * rows) rows, the older \(rows) expire")
            let storePath = path("expiry.db"), copyPath = path("expiry-whole.db")
            removeDatabase(storePath)
            removeDatabase(copyPath)
            let store = try await AuditStore.create(at: storePath, keys: keys)
            for batch in data.batches { try await store.append(contentsOf: batch) }
            try await Task.sleep(for: .milliseconds(2))
            let middle = AuditTimestamp.now()
            try await Task.sleep(for: .milliseconds(2))
            for batch in data.batches { try await store.append(contentsOf: batch) }
            try await store.close()
            try FileManager.default.copyItem(atPath: storePath, toPath: copyPath)  // closed: WAL checkpointed
            mbBefore.append(Double(try Self.fileBytes(storePath)) / 1_048_576)
            let reopened = try await AuditStore.open(at: storePath, keys: keys)
            // The same appender loop before (baseline) and during the expiry.
            let events = Array(data.events.prefix(10_000))
            let before = try await Self.appendLatencies(reopened, events: events, seconds: 2, stop: nil)
            let stop = StopFlag()
            async let during = Self.appendLatencies(reopened, events: events, seconds: 600, stop: stop)
            async let reads = Self.queryLatencies(reopened, tenant: events[0].tenant, stop: stop)
            let policy = try RetentionPolicy(parsingDefault: "1d")
            let later = AuditTimestamp(microsecondsSinceEpoch: middle.microsecondsSinceEpoch + 86_400_000_000)
            let (report, seconds) = try await timedAsync { try await reopened.applyRetention(policy, now: later) }
            stop.value.store(true, ordering: .relaxed)
            let latencies = try await during
            let queryLatencies = try await reads
            queryWorst.append(queryLatencies.max() ?? 0)
            queryP99.append(percentile(queryLatencies, 0.99))
            queries.append(Double(queryLatencies.count))
            guard report.expired == rows else { throw BenchError("expired \(report.expired) rows, expected \(rows)") }
            rates.append(Double(rows) / seconds)
            worstBefore.append(before.max() ?? 0)
            p99Before.append(percentile(before, 0.99))
            worstDuring.append(latencies.max() ?? 0)
            p99During.append(percentile(latencies, 0.99))
            // verify(): the store with its expired half vs the copy without expiry.
            let (expiredReport, expiredSeconds) = try await timedAsync { try await reopened.verify() }
            try await reopened.close()
            mbAfter.append(Double(try Self.fileBytes(storePath)) / 1_048_576)
            guard expiredReport.isIntact else { throw BenchError("verify after expiry: \(expiredReport)") }
            let whole = try await AuditStore.open(at: copyPath, keys: keys)
            let (wholeReport, wholeSeconds) = try await timedAsync { try await whole.verify() }
            try await whole.close()
            guard wholeReport.isIntact else { throw BenchError("verify of the copy: \(wholeReport)") }
            verifyExpired.append(Double(2 * rows) / expiredSeconds)
            verifyWhole.append(Double(2 * rows) / wholeSeconds)
            progress("  file \(Fmt.fixed(mbBefore.last!, 0)) MiB -> \(Fmt.fixed(mbAfter.last!, 0)) MiB; expiry \(Fmt.int(rates.last!)) rows/s; appender worst pause \(Fmt.fixed(worstDuring.last! * 1000, 1)) ms (before: \(Fmt.fixed(worstBefore.last! * 1000, 1)) ms); verify \(Fmt.int(verifyExpired.last!)) vs \(Fmt.int(verifyWhole.last!)) seqs/s")
            removeDatabase(storePath)
            removeDatabase(copyPath)
        }
        let ms = { (v: [Double]) in Fmt.mmm(Summary(v.map { $0 * 1000 }), { Fmt.fixed($0, 1) }) }
        let r = { (v: [Double]) in Fmt.mmm(Summary(v), Fmt.int) }
        line("## 11. Expiry: the older \(Fmt.int(Double(rows))) rows of a \(Fmt.int(Double(2 * rows)))-row store, \(runs) runs")
        line()
        line("`store.applyRetention(policy)` (batches of 10,000 rows, each one durable transaction: verify each row, write its tombstone, delete it, append an expiry entry; then the freed pages leave the file, `PRAGMA incremental_vacuum` 2,048 pages per write transaction) while one task appends durable single events in a loop and another queries the newest 100 rows of one tenant in a loop; the same append loop for 2 s just before is the baseline. File sizes are of the closed store (WAL checkpointed). Then `verify()` of the store with its expired half against a file copy of the same store made before the expiry, in seqs/s (rows and tombstones).")
        line()
        line("| measure | value |")
        line("|---|---|")
        line("| expiry, rows/s | \(r(rates)) |")
        line("| concurrent appender, longest single append, ms: before / during expiry | \(ms(worstBefore)) / \(ms(worstDuring)) |")
        line("| concurrent appender, p99 append, ms: before / during expiry | \(ms(p99Before)) / \(ms(p99During)) |")
        line("| concurrent query (newest 100 of a tenant), longest / p99, ms; queries answered | \(ms(queryWorst)) / \(ms(queryP99)); \(r(queries)) |")
        line("| store file, MiB: before / after expiry | \(Fmt.mmm(Summary(mbBefore), { Fmt.fixed($0, 0) })) / \(Fmt.mmm(Summary(mbAfter), { Fmt.fixed($0, 0) })) |")
        line("| verify(), seqs/s: half expired / none expired (same rows, same run) | \(r(verifyExpired)) / \(r(verifyWhole)) |")
        line("| verify(), half expired / none expired | \(Fmt.mmm(Summary(zip(verifyExpired, verifyWhole).map { $0 / $1 }), Fmt.pct)) |")
        line()
    }

    /// Newest-first pages of one tenant in a loop until `stop` is set; each one's latency.
    static func queryLatencies(_ store: AuditStore, tenant: String?, stop: StopFlag) async throws -> [Double] {
        var latencies: [Double] = []
        while !stop.value.load(ordering: .relaxed) {
            var query = EntryQuery(limit: 100, descending: true)
            query.tenant = tenant
            let (_, elapsed) = try await timedAsync { try await store.entries(query) }
            latencies.append(elapsed)
        }
        return latencies
    }

    static func fileBytes(_ path: String) throws -> Int64 {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value ?? 0
    }

    /// Durable single appends in a loop until `stop` is set (or `seconds` pass); each one's latency.
    static func appendLatencies(_ store: AuditStore, events: [AuditEvent], seconds: Double, stop: StopFlag?) async throws -> [Double] {
        var latencies: [Double] = []
        let end = Date().addingTimeInterval(seconds)
        var index = 0
        while Date() < end, !(stop?.value.load(ordering: .relaxed) ?? false) {
            let event = events[index % events.count]
            let (_, elapsed) = try await timedAsync { try await store.append(event) }
            latencies.append(elapsed)
            index += 1
        }
        return latencies
    }
}

/// A flag one task sets and another polls.
final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}

extension Bench {
    // MARK: 12. What releasing space online costs appends

    /// Batched appends of `rows` rows into a new store (`auto_vacuum = INCREMENTAL`, what
    /// `AuditStore.create` makes, so that expiry can give pages back) against the same into a store
    /// switched to `auto_vacuum = NONE` (as stores were before), alternating which goes first.
    func autoVacuumCost() async throws {
        let runs = options.runs
        var incremental: [Double] = [], none: [Double] = []
        for run in 1...runs {
            progress("auto_vacuum run \(run)/\(runs): \(options.rows) rows each")
            for mode in (run % 2 == 0 ? ["NONE", "INCREMENTAL"] : ["INCREMENTAL", "NONE"]) {
                let storePath = path("vacuum-\(mode).db")
                removeDatabase(storePath)
                let created = try await AuditStore.create(at: storePath, keys: keys)
                try await created.close()
                if mode == "NONE" {
                    let raw = try RawDB(path: storePath)
                    try raw.exec("PRAGMA auto_vacuum = NONE; VACUUM;")
                }
                let store = try await AuditStore.open(at: storePath, keys: keys)
                let (_, seconds) = try await timedAsync {
                    for batch in data.batches { try await store.append(contentsOf: batch) }
                }
                try await store.close()
                if mode == "NONE" { none.append(Double(options.rows) / seconds) } else { incremental.append(Double(options.rows) / seconds) }
                removeDatabase(storePath)
            }
        }
        let r = { (v: [Double]) in Fmt.mmm(Summary(v), Fmt.int) }
        line("## 12. Releasing space online: batched append, auto_vacuum INCREMENTAL vs NONE, \(Fmt.int(Double(options.rows))) rows, \(runs) runs")
        line()
        line("The same rows in batches of \(options.batch) into a new store (INCREMENTAL, as `AuditStore.create` makes it, so expiry can give pages back) and into one switched to NONE (as stores were before), alternating which goes first.")
        line()
        line("| measure | value |")
        line("|---|---|")
        line("| rows/s: INCREMENTAL / NONE | \(r(incremental)) / \(r(none)) |")
        line("| INCREMENTAL / NONE | \(Fmt.mmm(Summary(zip(incremental, none).map { $0 / $1 }), Fmt.pct)) |")
        line()
    }
}
