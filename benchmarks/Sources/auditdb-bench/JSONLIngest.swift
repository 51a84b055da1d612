import AuditDB
import Foundation

extension Bench {
    // MARK: 14. Streaming ingest: `auditdb append --jsonl` against the library

    /// `auditdb append --jsonl` (a release build of the CLI, default `--batch-size 10000`) reading
    /// the bench's rows as JSON lines from a file on stdin, against the library's batched append of
    /// the same rows (`append(contentsOf:)`, 10,000 per call, the same default durability: one
    /// fsync per batch) into a fresh store. Alternating order, run by run (issue 18, item 3: >= 80%).
    /// The CLI's time includes its start-up, opening the store and parsing every line.
    func jsonlIngest() async throws {
        let rows = options.rows, runs = options.runs
        let cli = options.cliPath ?? options.defaultCLIPath
        guard FileManager.default.isExecutableFile(atPath: cli) else {
            line("## 14. Streaming ingest: skipped (no release CLI at \(cli); build it with `swift build -c release --product auditdb`, or pass --cli PATH)")
            line()
            return
        }
        let input = path("ingest.jsonl"), keyFile = path("ingest.keys")
        progress("jsonl: writing \(rows) lines (untimed)")
        try writeLines(to: input)
        let inputBytes = (try FileManager.default.attributesOfItem(atPath: input)[.size] as? Int) ?? 0
        let fileKeys = try KeyFile.generate(at: keyFile)
        var cliRates: [Double] = [], libraryRates: [Double] = [], ratios: [Double] = []
        var cliCPU: [Double] = [], libraryCPU: [Double] = [], cpuRatios: [Double] = []
        for run in 1...runs {
            var cliRate = 0.0, libraryRate = 0.0, cliMicros = 0.0, libraryMicros = 0.0
            for side in (run % 2 == 1 ? ["cli", "library"] : ["library", "cli"]) {
                let storePath = path("ingest-\(side).db")
                removeDatabase(storePath)
                let store = try await AuditStore.create(at: storePath, keys: fileKeys)
                if side == "cli" {
                    try await store.close()
                    let cpu0 = Self.childrenCPUSeconds()
                    let (status, seconds) = try timed { try runCLI(cli, ["append", "--jsonl", "--quiet", "--store", storePath, "--key-file", keyFile], stdin: input) }
                    guard status == 0 else { throw BenchError("auditdb append --jsonl exited \(status)") }
                    cliRate = Double(rows) / seconds
                    cliMicros = (Self.childrenCPUSeconds() - cpu0) / Double(rows) * 1e6
                } else {
                    let cpu0 = Self.processCPUSeconds()
                    let (_, seconds) = try await timedAsync {
                        for batch in data.batches { try await store.append(contentsOf: batch) }
                    }
                    libraryMicros = (Self.processCPUSeconds() - cpu0) / Double(rows) * 1e6
                    try await store.close()
                    libraryRate = Double(rows) / seconds
                }
                let check = try await AuditStore.verify(storeAt: storePath, keys: fileKeys)
                guard check.isIntact, check.lastSeq == Int64(rows) else {
                    throw BenchError("\(side): the store does not verify with \(rows) rows (last seq \(check.lastSeq))")
                }
                removeDatabase(storePath)
            }
            progress("  run \(run): CLI \(Fmt.int(cliRate)) rows/s, library \(Fmt.int(libraryRate)) rows/s")
            cliRates.append(cliRate)
            libraryRates.append(libraryRate)
            ratios.append(cliRate / libraryRate)
            cliCPU.append(cliMicros)
            libraryCPU.append(libraryMicros)
            cpuRatios.append(libraryMicros / cliMicros)
        }
        try? FileManager.default.removeItem(atPath: input)
        try? FileManager.default.removeItem(atPath: keyFile)
        let met = Summary(ratios).median >= 0.8
        line("## 14. Streaming ingest: `auditdb append --jsonl` vs the library's batched append, \(Fmt.int(Double(rows))) rows, \(runs) runs")
        line()
        line("The same rows as section 1, written once as JSON lines (\(Fmt.int(Double(inputBytes / max(rows, 1)))) bytes per line on average) and fed to a release `auditdb append --jsonl --quiet` on stdin from the file (default `--batch-size 10000`, default durability: one fsync per committed batch); the library side appends the same events with `append(contentsOf:)`, 10,000 per call, into a fresh store with the default configuration. Order alternates run by run; each store is verified afterwards. The CLI's time includes process start-up, opening the store and parsing every line.")
        line()
        line("| case | rows/s (min / median / max) |")
        line("|---|---|")
        line("| library `append(contentsOf:)` | \(Fmt.mmm(Summary(libraryRates), Fmt.int)) |")
        line("| `auditdb append --jsonl` | \(Fmt.mmm(Summary(cliRates), Fmt.int)) |")
        line("| CLI / library (same run) | \(Fmt.mmm(Summary(ratios), Fmt.pct)); target >= 80%: **\(met ? "met" : "missed")** |")
        line("| CPU µs per row (all threads): library / CLI | \(Fmt.mmm(Summary(libraryCPU), { Fmt.fixed($0, 2) })) / \(Fmt.mmm(Summary(cliCPU), { Fmt.fixed($0, 2) })) |")
        line("| library CPU / CLI CPU per row (same run; steadier under load than the rates) | \(Fmt.mmm(Summary(cpuRatios), Fmt.pct)) |")
        line()
    }

    /// CPU time (user + system) of the children waited for so far, in seconds.
    static func childrenCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// The bench's rows as JSONL input lines (the JSON member names of `AuditEvent`).
    private func writeLines(to file: String) throws {
        guard FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: file)
        else { throw BenchError("cannot create \(file)") }
        defer { try? handle.close() }
        var chunk = ""
        chunk.reserveCapacity(1 << 20)
        for f in data.fields {
            // Every generated text is plain ASCII without quotes or backslashes; details is a JSON object.
            chunk += #"{"actor":"\#(f.actor)","action":"\#(f.action)","tenant":"\#(f.tenant)","resourceType":"\#(f.resourceType)","#
                + #""resourceId":"\#(f.resourceId)","outcome":"\#(AuditOutcome.allCases[Int(f.outcome)].rawValue)","#
                + #""severity":"\#(AuditSeverity.allCases[Int(f.severity)].rawValue)","occurredAt":\#(f.occurredAt),"details":\#(f.details)}"#
                + "\n"
            if chunk.utf8.count >= 1 << 20 {
                try handle.write(contentsOf: Data(chunk.utf8))
                chunk.removeAll(keepingCapacity: true)
            }
        }
        try handle.write(contentsOf: Data(chunk.utf8))
    }

    /// Runs `cli` with `arguments`, stdin from the file `stdin`, stdout and stderr discarded; its exit status.
    private func runCLI(_ cli: String, _ arguments: [String], stdin: String) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: cli)
        process.arguments = arguments
        process.standardInput = FileHandle(forReadingAtPath: stdin)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }
}
