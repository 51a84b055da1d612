import Foundation

/// Command-line options. Two profiles: full (default) and `--quick` (or AUDITDB_BENCH_QUICK=1).
struct Options {
    var quick = false
    var rows = 1_000_000          // rows per batched-append run, and in the verify store
    var batch = 10_000            // rows per transaction for batched appends
    var runs = 3                  // repetitions of every measurement (>= 3)
    var latencyOps = 2_000        // sequential durable single appends per run
    var groupTasks = 64           // concurrent appenders for group commit
    var groupPerTask = 200        // sequential appends per concurrent task
    /// Per process, so that two runs at once cannot delete each other's databases.
    var dir = NSTemporaryDirectory() + "auditdb-bench-\(ProcessInfo.processInfo.processIdentifier)"
    var ownsDir = true
    var schemaPath: String
    /// The hand-written Python reference (a copy kept in benchmarks/peer/), run with --indexed.
    var peerScript = ""
    var sections: Set<String> = ["append", "latency", "group", "verify", "storage", "query", "scan", "status", "adopt", "expiry", "vacuum", "erasure", "export", "jsonl", "peer"]
    /// Also run the raw baseline with plain (unbucketed) actor/resource_id indexes (slow: ~35k rows/s at 1M rows).
    var plainIndexBaseline = true
    /// Also run the raw baseline with the 3 audit_entries triggers and no index.
    var triggerBaseline = false
    /// Durable single appends with the opt-in caller-thread fast path (`writesOnCallerThread`).
    var callerThread = false
    var queryKeys = 1_000         // random keys per query kind per run
    var scanNewRows = 10_000      // rows appended before each incremental scan
    var smallStoreRows = 100_000  // the small store of the incremental-scan comparison
    var statusReads = 20_000_000  // scanner.status reads per run
    var lopsidedKeys = 200        // keys per query kind and order per run (section 15, lopsided)
    var lopsidedIndexCost = true  // section 15 also builds the store without migration 0008's index
    var lopsidedStream = true     // section 15 also streams every row of the big tenant, both orders
    var growthPoints: [Int64]?   // section 16: the sizes measured (default 1M, 10M, 100M up to --rows, and --rows)
    var rawAppendRows: Int?       // section 16: the raw twin stops growing here (disk)
    var cellSeconds = 10.0        // section 16: a first-page cell stops taking keys after this much AuditDB time
    var streamRows = 1_000_000    // section 16: rows streamed each way per run
    var exportRows = 100_000      // rows of the export-format store (a v1 bundle of every row is ~2 KB an entry)
    var out: String?
    /// The release `auditdb` for the streaming-ingest section (default: the repository's .build/release/auditdb).
    var cliPath: String?
    var defaultCLIPath = ""

    static let usage = """
        usage: auditdb-bench [--quick] [--runs N] [--rows N] [--batch N] [--latency-ops N]
                             [--group-tasks N] [--group-per-task N] [--dir PATH] [--schema PATH]
                             [--peer-script PATH] [--no-peer] [--only LIST] [--out FILE]
                             [--no-plain-index] [--trigger-baseline] [--caller-thread] [--query-keys N]
                             [--scan-new-rows N] [--small-store-rows N] [--status-reads N] [--export-rows N]
                             [--cli PATH] [--lopsided-keys N] [--no-index-cost] [--no-stream]
                             [--growth-points LIST] [--raw-append-rows N] [--cell-seconds S] [--stream-rows N]

          --quick        quick profile: 100k rows, 300 latency ops, 64x40 group appends (also AUDITDB_BENCH_QUICK=1)
          --only LIST    comma-separated sections: append,latency,group,verify,storage,query,scan,status,adopt,expiry,vacuum,erasure,export,jsonl,peer,
                         lopsided, growth (not in the default set: `--only lopsided` / `--only growth` run alone, at 1M to 100M rows),
                         deferred (not in the default set: the deferred-index design of issue 19 item 4 on raw SQLite,
                         --rows rows then the group-commit rows, 64 to a commit)
          --lopsided-keys N  keys per query kind and order per run in the lopsided section (default 200)
          --no-index-cost    lopsided: skip the second store build without audit_entries_tenant_seq (the append and verify cost of migration 0008)
          --no-stream        lopsided: skip streaming every row of the big tenant in both orders
          --growth-points LIST  growth (section 16, `--only growth`): comma-separated sizes to measure at (default 1000000,10000000,100000000 up to --rows, and --rows)
          --raw-append-rows N   growth: the raw twin stops growing at N rows (its disk); default --rows
          --cell-seconds S      growth: a first-page cell takes no more keys once its AuditDB side used S seconds (default 10)
          --stream-rows N       growth: rows of the big tenant streamed each way per run (default 1000000)
          --export-rows N  rows of the export section's store (default 100000; quick 20000)
          --no-plain-index     skip the raw baseline with plain unbucketed actor/resource_id indexes
          --trigger-baseline   also run the raw baseline with the 3 audit_entries triggers (no index)
          --caller-thread      durable single appends with Configuration.writesOnCallerThread (the opt-in fast path)
          --dir PATH     where the databases go (default $TMPDIR/auditdb-bench-PID, removed at the end); must be on a real disk for fsync figures
          --out FILE     also write the markdown report to FILE
          --cli PATH     the release auditdb for section 14, jsonl (default: <repository>/.build/release/auditdb)
        """

    init(arguments: [String]) throws {
        // .../benchmarks/Sources/auditdb-bench/Options.swift -> repository root
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        schemaPath = root.appendingPathComponent("schema/audit.sql").path
        peerScript = root.appendingPathComponent("benchmarks/peer/peer_python.py").path
        defaultCLIPath = root.appendingPathComponent(".build/release/auditdb").path
        if ProcessInfo.processInfo.environment["AUDITDB_BENCH_QUICK"] == "1" || arguments.contains("--quick") {
            applyQuick()
        }
        var it = arguments.dropFirst().makeIterator()
        func value(_ flag: String) throws -> String {
            guard let v = it.next() else { throw BenchError("\(flag) needs a value\n\(Self.usage)") }
            return v
        }
        func number(_ flag: String) throws -> Int {
            guard let n = Int(try value(flag).replacingOccurrences(of: "_", with: "")), n > 0 else {
                throw BenchError("\(flag) needs a positive integer")
            }
            return n
        }
        while let arg = it.next() {
            switch arg {
            case "--quick": break
            case "--runs": runs = try number(arg)
            case "--rows": rows = try number(arg)
            case "--batch": batch = try number(arg)
            case "--latency-ops": latencyOps = try number(arg)
            case "--group-tasks": groupTasks = try number(arg)
            case "--group-per-task": groupPerTask = try number(arg)
            case "--dir":
                dir = try value(arg)
                ownsDir = false
            case "--schema": schemaPath = try value(arg)
            case "--peer-script": peerScript = try value(arg)
            case "--no-peer": sections.remove("peer")
            case "--no-plain-index": plainIndexBaseline = false
            case "--trigger-baseline": triggerBaseline = true
            case "--caller-thread": callerThread = true
            case "--query-keys": queryKeys = try number(arg)
            case "--scan-new-rows": scanNewRows = try number(arg)
            case "--small-store-rows": smallStoreRows = try number(arg)
            case "--status-reads": statusReads = try number(arg)
            case "--export-rows": exportRows = try number(arg)
            case "--lopsided-keys": lopsidedKeys = try number(arg)
            case "--no-index-cost": lopsidedIndexCost = false
            case "--no-stream": lopsidedStream = false
            case "--growth-points":
                growthPoints = try value(arg).split(separator: ",").map {
                    guard let n = Int64($0.replacingOccurrences(of: "_", with: "")), n > 0 else { throw BenchError("--growth-points needs positive integers") }
                    return n
                }
            case "--raw-append-rows": rawAppendRows = try number(arg)
            case "--cell-seconds": cellSeconds = Double(try number(arg))
            case "--stream-rows": streamRows = try number(arg)
            case "--only": sections = Set(try value(arg).split(separator: ",").map(String.init))
            case "--out": out = try value(arg)
            case "--cli": cliPath = try value(arg)
            case "-h", "--help":
                print(Self.usage)
                exit(0)
            default: throw BenchError("unknown argument \(arg)\n\(Self.usage)")
            }
        }
        if runs < 3 { progress("warning: --runs \(runs) < 3; min/median/max need at least 3 runs") }
    }

    mutating func applyQuick() {
        quick = true
        rows = 100_000
        latencyOps = 300
        groupPerTask = 40
        queryKeys = 300
        smallStoreRows = 20_000
        scanNewRows = 2_000
        statusReads = 5_000_000
        exportRows = 20_000
    }

    var profile: String { quick ? "quick" : "full" }
}
