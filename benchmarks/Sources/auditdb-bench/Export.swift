@_spi(Testing) import AuditDB
import Foundation

extension Bench {
    // MARK: 13. Export bundles: format v1 against format v2

    /// Bundle bytes per entry and `verify-export` time per entry, for format v1 (an inclusion
    /// proof per entry, the format before issue 18) and v2 (entry arrays and one multiproof,
    /// FORMAT.md 17.5), on the same rows of one store, in the same run, the two formats
    /// interleaved run by run: every row (a dense range) and one tenant of 64 (a sparse selection).
    func exportFormats() async throws {
        let rows = min(options.rows, options.exportRows), runs = options.runs
        let storePath = path("export.db")
        removeDatabase(storePath)
        let signer = try CheckpointSigner([CheckpointSigningKey.generate(version: 1)])
        let store = try await AuditStore.create(at: storePath, keys: keys)
        var appended = 0
        for batch in data.batches where appended < rows {
            let part = Array(batch.prefix(rows - appended))
            try await store.append(contentsOf: part)
            appended += part.count
        }
        try await store.checkpoint(signer: signer)
        let selections: [(String, ExportFilter)] = [("every row", ExportFilter()), ("one tenant of 64", ExportFilter(tenant: "tenant-07"))]
        let formats: [ExportBundle.Format] = [.v1, .v2]
        struct Figures { var bytesPerEntry = 0.0, entries = 0, exportSeconds: [Double] = [], verifyMicros: [Double] = [], ratio: [Double] = [] }
        var figures: [String: Figures] = [:]
        for run in 1...runs {
            for (name, filter) in selections {
                var micros: [ExportBundle.Format: Double] = [:]
                for format in formats {
                    let bundle = path("bundle-\(format == .v1 ? "v1" : "v2")")
                    try? FileManager.default.removeItem(atPath: bundle)
                    let (summary, exportSeconds) = try await timedAsync {
                        try await ExportBundle.formatWritten.withValue(format) {
                            try await store.export(to: bundle, filter: filter, signer: signer)
                        }
                    }
                    let bytes = try ["entries.jsonl", "multiproof.bin"].reduce(0) { total, file in
                        let p = bundle + "/" + file
                        guard FileManager.default.fileExists(atPath: p) else { return total }
                        return total + (try FileManager.default.attributesOfItem(atPath: p)[.size] as? Int ?? 0)
                    }
                    let (result, verifySeconds) = try await timedAsync {
                        try await ExportBundle.verify(at: bundle, publicKeys: signer.publicKeys, requireStatement: true)
                    }
                    guard result.isValid, result.entriesVerified == summary.entryCount else {
                        throw BenchError("the \(format.rawValue) bundle does not verify: \(result)")
                    }
                    let key = "\(name)|\(format.rawValue)"
                    var f = figures[key] ?? Figures()
                    f.entries = summary.entryCount
                    f.bytesPerEntry = Double(bytes) / Double(summary.entryCount)
                    f.exportSeconds.append(exportSeconds)
                    f.verifyMicros.append(verifySeconds * 1e6 / Double(summary.entryCount))
                    micros[format] = f.verifyMicros.last!
                    figures[key] = f
                    progress("export run \(run)/\(runs), \(name), \(format.rawValue): \(summary.entryCount) entries, \(Fmt.fixed(f.bytesPerEntry, 0)) B/entry, verify \(Fmt.fixed(micros[format]!, 2)) µs/entry")
                    try FileManager.default.removeItem(atPath: bundle)
                }
                figures["\(name)|\(ExportBundle.Format.v2.rawValue)"]?.ratio.append(micros[.v1]! / micros[.v2]!)
            }
        }
        try await store.close()
        removeDatabase(storePath)
        line("## 13. Export bundles: format v1 against format v2, \(Fmt.int(Double(rows))) rows, \(runs) runs")
        line()
        line("One store of the benchmark rows (~200-byte details, no source), one checkpoint; `store.export(…, signer:)` then `ExportBundle.verify(…, requireStatement: true)` per format, v1 and v2 interleaved in each run. Bytes are `entries.jsonl` (+ `multiproof.bin` for v2) per entry, which do not depend on load; times are min / median / max, and the speed-up is v1 / v2 per run.")
        line()
        line("| selection | format | entries | bytes / entry | export, s | verify-export, µs / entry | verify speed-up (v1 / v2, same run) |")
        line("|---|---|---|---|---|---|---|")
        for (name, _) in selections {
            for format in formats {
                guard let f = figures["\(name)|\(format.rawValue)"] else { continue }
                let ratio = f.ratio.isEmpty ? "" : Fmt.mmm(Summary(f.ratio), Fmt.x)
                line("| \(name) | \(format.rawValue) | \(Fmt.int(Double(f.entries))) | \(Fmt.int(f.bytesPerEntry)) | \(Fmt.mmm(Summary(f.exportSeconds), { Fmt.fixed($0, 2) })) | \(Fmt.mmm(Summary(f.verifyMicros), { Fmt.fixed($0, 2) })) | \(ratio) |")
            }
        }
        line()
    }
}
