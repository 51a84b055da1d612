// ordo-one/benchmark suite: AuditDB's hot paths, each registered next to its raw-SQLite twin so
// one `swift package --package-path benchmarks benchmark` run measures both, with the harness's
// metrics (wall clock, CPU, mallocs, throughput) and its baselines/thresholds workflow.
// The side-by-side ratios quoted in docs/performance.md come from `auditdb-bench` (same package),
// which interleaves the two sides run by run; this suite is for regression tracking.
import AuditDB
import Benchmark
import Foundation
import GRDBSQLite

/// A benchmark's state: built in `setup`, used by the measured closure, removed in `teardown`.
final class Fixture: @unchecked Sendable {
    let dir: String
    var store: AuditStore?
    var raw: OpaquePointer?
    var insert: OpaquePointer?
    var nextSeq = 0
    var actors: [String] = []

    init(_ name: String) {
        dir = NSTemporaryDirectory() + "auditdb-ordo-\(name)-\(getpid())"
    }

    var path: String { dir + "/store.db" }

    func reset() throws {
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func tearDown() async throws {
        if let insert { sqlite3_finalize(insert) }
        if let raw { sqlite3_close(raw) }
        insert = nil
        raw = nil
        try await store?.close()
        store = nil
        try? FileManager.default.removeItem(atPath: dir)
    }
}

let keys = try! KeyRing([AuditKey.generate(version: 1)])

/// The bench's row shape: 64 tenants, 50k actors, 8 actions, high-cardinality resource ids, ~200-byte details.
func event(_ i: Int) -> (event: AuditEvent, details: String) {
    var x = UInt64(truncatingIfNeeded: i) &+ 0x9E37_79B9_7F4A_7C15
    x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
    x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
    x ^= x >> 31
    let actions = ["document.read", "document.write", "document.delete", "document.share", "login", "logout",
                   "permission.grant", "permission.revoke"]
    let details = #"{"bytes":\#(x % 1_000_000),"ip":"10.\#(x >> 8 & 255).\#(x >> 16 & 255).\#(x >> 24 & 255)","# +
        #""reason":"policy-check","request_id":"\#(String(x, radix: 16))","status":\#(200 + x % 300),"# +
        #""ua":"Mozilla/5.0 (X11; Linux x86_64) AuditClient/1.4"}"#
    let event = AuditEvent(
        actor: "user-\(x % 50_000)", action: actions[Int(x >> 20 & 7)], resourceType: "document",
        resourceId: "/projects/\((x >> 24) % 1_000)/docs/\(x % 100_000)", tenant: "tenant-\((x >> 40) % 64)",
        details: AuditDetails(json: details))
    return (event, details)
}

/// The store's table and indexes (schema/audit.sql), without triggers: the raw twin's table.
func rawStore(_ fixture: Fixture, synchronous: String) throws {
    let schema = try String(contentsOfFile: #filePath.replacingOccurrences(
        of: "benchmarks/Benchmarks/AuditDBBenchmarks/AuditDBBenchmarks.swift", with: "schema/audit.sql"), encoding: .utf8)
    var db: OpaquePointer?
    guard sqlite3_open(fixture.dir + "/raw.db", &db) == SQLITE_OK else { throw CocoaError(.fileWriteUnknown) }
    fixture.raw = db
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=\(synchronous);", nil, nil, nil)
    // CREATE TABLE audit_entries and its CREATE INDEX statements, verbatim.
    let statements = schema.components(separatedBy: ";\n").map { $0.split(separator: "\n").filter { !$0.hasPrefix("--") }.joined(separator: "\n") }
    for sql in statements where sql.hasPrefix("CREATE TABLE audit_entries ") || (sql.hasPrefix("CREATE INDEX") && sql.contains(" ON audit_entries(")) {
        guard sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { throw CocoaError(.fileWriteUnknown) }
    }
    sqlite3_prepare_v2(db, """
        INSERT INTO audit_entries(seq, recorded_at, occurred_at, tenant, actor, action, resource_type, resource_id,
            outcome, severity, correlation_id, source, details, origin, origin_ref, format_version, key_version, mac)
        VALUES (?1, ?2, NULL, ?3, ?4, ?5, 'document', ?6, 0, 0, NULL, NULL, ?7, 0, NULL, 1, 1, zeroblob(32))
        """, -1, &fixture.insert, nil)
}

let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

func rawInsert(_ fixture: Fixture, _ row: (event: AuditEvent, details: String)) {
    let e = row.event
    fixture.nextSeq += 1
    let s = fixture.insert
    sqlite3_bind_int64(s, 1, Int64(fixture.nextSeq))
    sqlite3_bind_int64(s, 2, AuditTimestamp.now().microsecondsSinceEpoch)
    sqlite3_bind_text(s, 3, e.tenant, -1, transient)
    sqlite3_bind_text(s, 4, e.actor, -1, transient)
    sqlite3_bind_text(s, 5, e.action, -1, transient)
    sqlite3_bind_text(s, 6, e.resourceId, -1, transient)
    sqlite3_bind_text(s, 7, row.details, -1, transient)
    sqlite3_step(s)
    sqlite3_reset(s)
}

let benchmarks: @Sendable () -> Void = {
    let batch = 10_000
    let rows = (0..<30).map { b in (0..<batch).map { event(b * batch + $0) } }
    let batches = rows.map { $0.map(\.event) }

    // Batched append: one 10k-event transaction per iteration, into a growing store.
    let rawBatch = Fixture("raw-batch")
    Benchmark("append 10k batch: raw SQLite, same indexes",
              configuration: .init(metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal], maxDuration: .seconds(5), maxIterations: 30),
              closure: { benchmark in
                  let events = rows[rawBatch.nextSeq / batch % rows.count]
                  sqlite3_exec(rawBatch.raw, "BEGIN IMMEDIATE", nil, nil, nil)
                  for e in events { rawInsert(rawBatch, e) }
                  sqlite3_exec(rawBatch.raw, "COMMIT", nil, nil, nil)
              },
              setup: { try rawBatch.reset(); try rawStore(rawBatch, synchronous: "NORMAL") },
              teardown: { try await rawBatch.tearDown() })

    let auditBatch = Fixture("auditdb-batch")
    Benchmark("append 10k batch: AuditDB",
              configuration: .init(metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal], maxDuration: .seconds(5), maxIterations: 30),
              closure: { (benchmark: Benchmark) async throws in
                  try await auditBatch.store!.append(contentsOf: batches[auditBatch.nextSeq % batches.count])
                  auditBatch.nextSeq += 1
              },
              setup: {
                  try auditBatch.reset()
                  var config = AuditStore.Configuration()
                  config.durability = .relaxed
                  auditBatch.store = try await AuditStore.create(at: auditBatch.path, keys: keys, configuration: config)
              },
              teardown: { try await auditBatch.tearDown() })

    // Durable single append: one event per transaction, fsync'd.
    let rawDurable = Fixture("raw-durable")
    Benchmark("durable single append: raw SQLite FULL commit, same indexes",
              configuration: .init(metrics: [.wallClock, .cpuTotal], maxDuration: .seconds(3), maxIterations: 3_000),
              closure: { benchmark in
                  sqlite3_exec(rawDurable.raw, "BEGIN IMMEDIATE", nil, nil, nil)
                  rawInsert(rawDurable, rows[0][rawDurable.nextSeq % batch])
                  sqlite3_exec(rawDurable.raw, "COMMIT", nil, nil, nil)
              },
              setup: { try rawDurable.reset(); try rawStore(rawDurable, synchronous: "FULL") },
              teardown: { try await rawDurable.tearDown() })

    let auditDurable = Fixture("auditdb-durable")
    Benchmark("durable single append: AuditDB",
              configuration: .init(metrics: [.wallClock, .cpuTotal], maxDuration: .seconds(3), maxIterations: 3_000),
              closure: { (benchmark: Benchmark) async throws in
                  try await auditDurable.store!.append(batches[0][auditDurable.nextSeq % batch])
                  auditDurable.nextSeq += 1
              },
              setup: {
                  try auditDurable.reset()
                  auditDurable.store = try await AuditStore.create(at: auditDurable.path, keys: keys)
              },
              teardown: { try await auditDurable.tearDown() })

    // Full verification of a 100k-row store, and the raw scan of the same file.
    let verify = Fixture("verify")
    let verifySetup: Benchmark.BenchmarkSetupHook = {
        try verify.reset()
        let store = try await AuditStore.create(at: verify.path, keys: keys)
        for b in batches.prefix(10) { try await store.append(contentsOf: b) }
        verify.store = store
    }
    Benchmark("full verify, 100k rows: AuditDB verify()",
              configuration: .init(metrics: [.wallClock, .cpuTotal, .throughput], maxDuration: .seconds(5), maxIterations: 20),
              closure: { (benchmark: Benchmark) async throws in
                  let report = try await verify.store!.verify()
                  precondition(report.isIntact && report.rowsChecked == 100_000)
              },
              setup: verifySetup,
              teardown: { try await verify.tearDown() })

    let scan = Fixture("scan")
    Benchmark("full scan, 100k rows: raw SQLite, every column",
              configuration: .init(metrics: [.wallClock, .cpuTotal, .throughput], maxDuration: .seconds(5), maxIterations: 20),
              closure: { benchmark in
                  var db: OpaquePointer?, stmt: OpaquePointer?
                  sqlite3_open_v2(scan.path, &db, SQLITE_OPEN_READONLY, nil)
                  sqlite3_prepare_v2(db, "SELECT * FROM audit_entries ORDER BY seq", -1, &stmt, nil)
                  var rows = 0
                  while sqlite3_step(stmt) == SQLITE_ROW {
                      for i in 0..<sqlite3_column_count(stmt) { blackHole(sqlite3_column_bytes(stmt, i)) }
                      rows += 1
                  }
                  sqlite3_finalize(stmt)
                  sqlite3_close(db)
                  precondition(rows == 100_000)
              },
              setup: {
                  try scan.reset()
                  let store = try await AuditStore.create(at: scan.path, keys: keys)
                  for b in batches.prefix(10) { try await store.append(contentsOf: b) }
                  try await store.close()
              },
              teardown: { try await scan.tearDown() })

    // First page of 100 by actor, newest first, on a 300k-row store.
    let query = Fixture("query")
    Benchmark("query, first page of 100 by actor, 300k rows: AuditDB",
              configuration: .init(metrics: [.wallClock, .cpuTotal], maxDuration: .seconds(3), maxIterations: 2_000),
              closure: { (benchmark: Benchmark) async throws in
                  let actor = query.actors[query.nextSeq % query.actors.count]
                  query.nextSeq += 1
                  blackHole(try await query.store!.page(EntryQuery(limit: 100, descending: true, actor: actor)))
              },
              setup: {
                  try query.reset()
                  let store = try await AuditStore.create(at: query.path, keys: keys)
                  for b in batches { try await store.append(contentsOf: b) }
                  query.store = store
                  query.actors = (0..<1_000).map { batches[$0 % batches.count][$0 * 7 % batch].actor }
              },
              teardown: { try await query.tearDown() })

    // The scanner's status: no database work.
    let status = Fixture("status")
    nonisolated(unsafe) var scanner: IntegrityScanner?
    Benchmark("scanner status read",
              configuration: .init(metrics: [.wallClock], scalingFactor: .mega, maxDuration: .seconds(2)),
              closure: { benchmark in
                  for _ in benchmark.scaledIterations { blackHole(scanner!.status) }
              },
              setup: {
                  try status.reset()
                  status.store = try await AuditStore.create(at: status.path, keys: keys)
                  scanner = IntegrityScanner(store: status.store!, configuration: .init())
              },
              teardown: { scanner = nil; try await status.tearDown() })
}
