import AuditDB
import Foundation
import GRDBSQLite

@main
struct AuditDBBench {
    static func main() async {
        do {
            try await run()
        } catch {
            progress("auditdb-bench failed: \(error)")
            exit(1)
        }
    }

    static func run() async throws {
        let options = try Options(arguments: CommandLine.arguments)
        #if DEBUG
        progress("warning: this is a debug build; numbers are meaningless. Use `swift run -c release ...`.")
        #endif
        try FileManager.default.createDirectory(atPath: options.dir, withIntermediateDirectories: true)
        let schema = try SchemaText(path: options.schemaPath)
        let keys = try KeyRing([AuditKey.generate(version: 1)])
        // The lopsided and growth sections generate its own rows batch by batch (10M rows do not fit twice).
        let dataRows = options.sections.subtracting(["lopsided", "growth"]).isEmpty ? 1 : options.rows
        progress("generating \(dataRows) rows (untimed)...")
        let (data, genSeconds) = timed { Dataset(rows: dataRows, batchSize: options.batch) }
        progress("  done in \(Fmt.fixed(genSeconds, 1)) s; mean details \(data.fields.reduce(0) { $0 + $1.details.utf8.count } / data.fields.count) bytes")

        let bench = Bench(options: options, data: data, keys: keys, schema: schema)
        bench.line("# auditdb-bench results (\(options.profile) profile)")
        bench.line()
        bench.line("- date: \(ISO8601DateFormatter().string(from: Date()))")
        bench.line("- machine: \(cpuModel()), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory / 1_048_576) MiB RAM")
        bench.line("- SQLite \(String(cString: sqlite3_libversion())) (system library, via GRDBSQLite), build: \(isDebug ? "DEBUG (numbers invalid)" : "release")")
        bench.line("- databases in \(options.dir)")
        bench.line("- rows: \(options.rows), runs: \(options.runs), durable single appends: \(options.latencyOps) per side per run, group commit: \(options.groupTasks) tasks x \(options.groupPerTask)")
        bench.line("- command: `\(CommandLine.arguments.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " "))`")
        bench.line()

        let s = options.sections
        if s.contains("append") { try await bench.batchedAppend() }
        if s.contains("latency") { try await bench.durableLatency() }
        if s.contains("group") { try await bench.groupCommit() }
        if s.contains("verify") { try await bench.verify() }
        if s.contains("storage") { try await bench.storage() }
        if s.contains("query") { try await bench.query() }
        if s.contains("scan") { try await bench.incrementalScan() }
        if s.contains("status") { try await bench.statusRead() }
        if s.contains("adopt") { try await bench.adoption() }
        if s.contains("expiry") { try await bench.expiry() }
        if s.contains("vacuum") { try await bench.autoVacuumCost() }
        if s.contains("erasure") { try await bench.erasure() }
        if s.contains("export") { try await bench.exportFormats() }
        if s.contains("jsonl") { try await bench.jsonlIngest() }
        if s.contains("lopsided") { try await bench.lopsided() }
        if s.contains("growth") { try await bench.growth() }
        if s.contains("deferred") { try bench.deferredIndexes() }
        if s.contains("peer") { try bench.peer() }
        if let p = bench.verifyStorePath { removeDatabase(p) }
        if options.ownsDir { try? FileManager.default.removeItem(atPath: options.dir) }

        if let out = options.out {
            try (bench.report.joined(separator: "\n") + "\n").write(toFile: out, atomically: false, encoding: .utf8)
            progress("report written to \(out)")
        }
    }

    static var isDebug: Bool {
        #if DEBUG
        true
        #else
        false
        #endif
    }

    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let l = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let v = l.split(separator: ":", maxSplits: 1).last
        else { return "unknown CPU" }
        return v.trimmingCharacters(in: .whitespaces)
    }
}
