import AuditDB
import Foundation

extension Bench {
    // MARK: 12. Erasure

    /// Erasing one subject's fields across `rows` / 100 rows of a `rows`-row store (issue 16: 10,000
    /// of 1,000,000): the time of `store.erase`, and the pauses a concurrent durable appender sees
    /// during it against the same loop just before it on the same store.
    func erasure() async throws {
        let rows = options.rows, runs = options.runs
        let subject = "erasure-subject@example.org"
        var times: [Double] = [], worstDuring: [Double] = [], p99During: [Double] = [], worstBefore: [Double] = [], p99Before: [Double] = []
        var erasedCounts: [Int] = []
        for run in 1...runs {
            progress("erasure run \(run)/\(runs): \(rows) rows, every 100th the subject's")
            let storePath = path("erasure.db")
            removeDatabase(storePath)
            let store = try await AuditStore.create(at: storePath, keys: keys)
            var index = 0
            for batch in data.batches {
                try await store.append(contentsOf: batch.map { event in
                    defer { index += 1 }
                    guard index % 100 == 0 else { return event }
                    var e = event
                    e.actor = subject
                    return e
                })
            }
            let events = Array(data.events.prefix(10_000))
            let before = try await Self.appendLatencies(store, events: events, seconds: 2, stop: nil)
            let stop = StopFlag()
            async let during = Self.appendLatencies(store, events: events, seconds: 600, stop: stop)
            let (report, seconds) = try await timedAsync {
                try await store.erase(.actor(subject), fields: [.actor, .source, .details], reason: "BENCH-1")
            }
            stop.value.store(true, ordering: .relaxed)
            let latencies = try await during
            guard report.erased.count == (rows + 99) / 100 else { throw BenchError("erased \(report.erased.count) rows, expected \((rows + 99) / 100)") }
            times.append(seconds)
            erasedCounts.append(report.erased.count)
            worstBefore.append(before.max() ?? 0)
            p99Before.append(percentile(before, 0.99))
            worstDuring.append(latencies.max() ?? 0)
            p99During.append(percentile(latencies, 0.99))
            try await store.close()
            progress("  erased \(report.erased.count) rows in \(Fmt.fixed(seconds, 2)) s; appender worst pause \(Fmt.fixed(worstDuring.last! * 1000, 1)) ms (before: \(Fmt.fixed(worstBefore.last! * 1000, 1)) ms)")
            removeDatabase(storePath)
        }
        let ms = { (v: [Double]) in Fmt.mmm(Summary(v.map { $0 * 1000 }), { Fmt.fixed($0, 1) }) }
        line("## 12. Erasure: one subject's \(Fmt.int(Double(erasedCounts.first ?? 0))) rows of a \(Fmt.int(Double(rows)))-row store, \(runs) runs")
        line()
        line("`store.erase(.actor(subject), fields: [.actor, .source, .details], reason:)`: find the rows through the verified query path, then batches of 2,000 rows, each one durable transaction with secure_delete on (verify each row, rewrite its seals and NULL its fields, append an erasure entry), then a truncating WAL checkpoint; while one task appends durable single events in a loop. The same loop for 2 s just before is the baseline.")
        line()
        line("| measure | value |")
        line("|---|---|")
        line("| erase, seconds | \(Fmt.mmm(Summary(times), { Fmt.fixed($0, 2) })) |")
        line("| concurrent appender, longest single append, ms: before / during erasure | \(ms(worstBefore)) / \(ms(worstDuring)) |")
        line("| concurrent appender, p99 append, ms: before / during erasure | \(ms(p99Before)) / \(ms(p99During)) |")
        line()
    }
}
