import AuditDBTestSupport
import Foundation
import GRDB
import Synchronization
import Testing

@testable import AuditDB

/// Time breaks (migration 0009, FORMAT.md section 24): the writer records them on every insert
/// path, the migration fills them for an existing store, verification proves them exact (deleted,
/// inserted and edited by an outside client: exact finding at the exact seq, full and incremental),
/// `repair-indexes` rebuilds them, and tenant + time queries through them return exactly what a
/// brute-force filter returns.
@Suite("Time breaks")
struct TimeBreakTests {
    let dir: TemporaryDirectory
    let keys: KeyRing
    let db: String
    static let hour: Int64 = 3_600_000_000

    init() throws {
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
        db = dir.path("store.db")
    }

    func breaks(_ path: String) throws -> [Int64] {
        try sqlite3Shell(path, "SELECT seq FROM audit_time_breaks ORDER BY seq;").stdout
            .split(separator: "\n").compactMap { Int64($0.trimmingCharacters(in: .whitespaces)) }
    }

    func events(_ range: ClosedRange<Int>) -> [AuditEvent] { range.map { sampleEvent($0) } }

    /// A store whose clock went back before seqs 6 (single append), 7 (a batch of 300 through the
    /// MAC pipeline) and 307 (4,096 validated while written), then forward again.
    func makeSteppedStore(at path: String) async throws {
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: events(1...5))
        store.setClockOffsetForTesting(-1 * Self.hour)
        try await store.append(sampleEvent(6))
        store.setClockOffsetForTesting(-2 * Self.hour)
        try await store.append(contentsOf: events(7...306))
        store.setClockOffsetForTesting(-3 * Self.hour)
        try await store.append(contentsOf: events(307...4_402))
        store.setClockOffsetForTesting(0)
        try await store.append(sampleEvent(4_403))
        try await store.close()
    }

    @Test("each insert path records a break where the clock went back (single, pipelined batch, batch validated while written), none where it went forward; the store verifies intact; the breaks are the migration's fill")
    func writerRecordsBreaks() async throws {
        try await makeSteppedStore(at: db)
        #expect(try breaks(db) == [6, 7, 307])
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.isIntact, "\(report)")
        #expect(report.rowsChecked == 4_403)
        let computed = try sqlite3Shell(db, TimeBreaks.computedSQL + ";").stdout.split(separator: "\n").compactMap { Int64($0) }
        #expect(computed == [6, 7, 307])
    }

    @Test("a rotation entry written by a new key is a row like any other: its break is recorded")
    func rotationEntryBreak() async throws {
        try await makeStore(at: db, keys: keys, count: 3)
        let rotated = try keys.rotated()
        let store = try await AuditStore.open(at: db, keys: rotated)
        store.setClockOffsetForTesting(-Self.hour)
        let rotation = try #require(try await store.recordKeyRotation())
        #expect(rotation == 4)
        store.setClockOffsetForTesting(-2 * Self.hour)
        try await store.append(sampleEvent(5))
        try await store.close()
        #expect(try breaks(db) == [4, 5])
        #expect(try await AuditStore.verify(storeAt: db, keys: rotated).isIntact)
    }

    @Test("a store at 0008 takes migration 0009 with `migrate`: the breaks of its rows are filled and proved")
    func migrationFillsBreaks() async throws {
        let store = try await AuditStore.create(at: db, keys: keys, configuration: .init(), schemaUpTo: "0008-tenant-seq-index")
        try await store.append(contentsOf: events(1...10))
        store.setClockOffsetForTesting(-Self.hour)
        try await store.append(contentsOf: events(11...20))
        store.setClockOffsetForTesting(-2 * Self.hour)
        try await store.append(sampleEvent(21))
        store.setClockOffsetForTesting(0)
        try await store.append(sampleEvent(22))
        try await store.close()
        #expect(try await AuditStore.migrationPlan(at: db).pending == ["0009-time-breaks", "0010-tenant-filter-index", "0011-key-filter-indexes"])
        let report = try await AuditStore.migrate(at: db, keys: keys, backup: .none)
        #expect(report.applied == ["0009-time-breaks", "0010-tenant-filter-index", "0011-key-filter-indexes"])
        #expect(report.verification.isIntact && report.verification.rowsChecked == 22)
        #expect(try breaks(db) == [11, 21])
    }

    @Test("a break deleted by an outside client: index-mismatch at its row; the tenant + time page then misses rows; repair-indexes puts it back")
    func deletedBreak() async throws {
        try await makeSteppedStore(at: db)
        try sqlite3Tamper(db, "DELETE FROM audit_time_breaks WHERE seq = 307;", around: "audit_time_breaks_no_delete")
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.indexMismatch], "\(report)")
        #expect(report.findings.first?.seqs == 307...307)
        let store = try await AuditStore.open(at: db, keys: keys)
        let repaired = try await store.repairIndexes()
        #expect(repaired.isIntact, "\(repaired)")
        try await store.close()
        #expect(try breaks(db) == [6, 7, 307])
    }

    @Test("an append recording a time break while a pass runs (after it read the log's end): no finding, then or after")
    func breakAppendedDuringVerify() async throws {
        let store = try await AuditStore.create(at: db, keys: keys)
        try await store.append(contentsOf: events(1...12))
        let other = try await AuditStore.open(at: db, keys: keys)
        let state = RaceState()
        let report = try await store.verify(progress: { _ in
            // Reported from a reader's queue once rows are read: the append lands before the
            // time breaks are read, which until 2026-12-06 judged it with the log's old end.
            state.changeOnFirstCall {
                other.setClockOffsetForTesting(-1 * Self.hour)  // the wall clock stepped back (an NTP step)
                try await other.append(sampleEvent(13))
            }
        })
        #expect(state.failure.withLock { $0 } == nil && state.passes.withLock { $0 } >= 1)
        #expect(try breaks(db) == [13])
        #expect(report.isIntact && report.lastSeq == 12, "\(report)")
        let after = try await store.verify()
        #expect(after.isIntact && after.lastSeq == 13, "\(after)")
        try await other.close()
        try await store.close()
    }

    @Test("breaks inserted where time goes forward, at a seq with no row and outside the log: foreign-row at each seq")
    func insertedBreaks() async throws {
        try await makeSteppedStore(at: db)
        try sqlite3Must(db, "INSERT INTO audit_time_breaks VALUES (3); INSERT INTO audit_time_breaks VALUES (9000); INSERT INTO audit_time_breaks VALUES (0);")
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.foreignRow, .foreignRow, .foreignRow], "\(report)")
        #expect(report.findings.map(\.seqs) == [0...0, 3...3, 9_000...9_000])
        #expect(report.isLogIntact)
        let store = try await AuditStore.open(at: db, keys: keys)
        #expect(try await store.repairIndexes().isIntact)
        try await store.close()
        #expect(try breaks(db) == [6, 7, 307])
    }

    @Test("breaks planted ahead of the log never block an append whose clock stepped back: the planted break at its seq becomes true, the rest stay foreign-row")
    func plantedBreaksAhead() async throws {
        try await makeStore(at: db, keys: keys, count: 3)
        try sqlite3Must(db, "WITH RECURSIVE r(i) AS (SELECT 4 UNION ALL SELECT i + 1 FROM r WHERE i < 6) INSERT INTO audit_time_breaks SELECT i FROM r")
        let store = try await AuditStore.open(at: db, keys: keys)
        store.setClockOffsetForTesting(-Self.hour)
        #expect(try await store.append(sampleEvent(4)) == 4)
        store.setClockOffsetForTesting(0)
        try await store.close()
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.foreignRow, .foreignRow], "\(report)")
        #expect(report.findings.map(\.seqs) == [5...5, 6...6])
        #expect(report.findings.first?.message == "audit_time_breaks holds seq 5, which is outside the log (seq 1...4): inserted by another SQLite client, or left behind when the rows up to it were cut from the log's end")
        #expect(try breaks(db) == [4, 5, 6])
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        #expect(try pythonFindings(db, keyFile: keyFile) == ["foreign-row 5...5", "foreign-row 6...6"])
    }

    @Test("a recorded_at moved back or forward by an outside client: mac-mismatch at that row only (the step it makes, into it or out of it, is not reported twice)",
          arguments: [-86_400_000_000, 86_400_000_000] as [Int64])
    func editedRecordedAt(shift: Int64) async throws {
        try await makeSteppedStore(at: db)
        try sqlite3Tamper(db, "UPDATE audit_entries SET recorded_at = recorded_at + (\(shift)) WHERE seq = 3;", around: "audit_entries_no_update")
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.macMismatch], "\(report)")
        #expect(report.findings.first?.seqs == 3...3)
    }

    @Test("the incremental pass checks the new rows' steps, the step into the first new row included")
    func incremental() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        let store = try await AuditStore.open(at: db, keys: keys)
        let head = try #require(try await store.verify().verifiedHead)
        store.setClockOffsetForTesting(-Self.hour)
        try await store.append(contentsOf: events(11...15))
        store.setClockOffsetForTesting(-2 * Self.hour)
        try await store.append(contentsOf: events(16...20))
        let clean = try await Verifier(pool: store.pool, keys: keys, expectedStoreID: nil).run(from: head)
        #expect(clean.isIntact && clean.rowsChecked == 10, "\(clean)")
        try await store.close()
        #expect(try breaks(db) == [11, 16])
        for seq in [11, 16] {
            let copy = dir.path("inc-\(seq).db")
            try FileManager.default.copyItem(atPath: db, toPath: copy)
            try sqlite3Tamper(copy, "DELETE FROM audit_time_breaks WHERE seq = \(seq);", around: "audit_time_breaks_no_delete")
            let reopened = try await AuditStore.open(at: copy, keys: keys)
            let report = try await Verifier(pool: reopened.pool, keys: keys, expectedStoreID: nil).run(from: head)
            try await reopened.close()
            #expect(report.findings.map(\.kind) == [.indexMismatch], "\(seq): \(report)")
            #expect(report.findings.first?.seqs == Int64(seq)...Int64(seq))
        }
    }

    @Test("tenant + time through the breaks equals a brute-force filter and the old plans, with expired rows, for every order, limit, filter and seq range")
    func segmentsMatchOracle() throws {
        let queue = try DatabaseQueue()
        try StoreSchema.migrator.migrate(queue)
        struct Plain { let seq: Int64; let tenant: String; let recordedAt: Int64; let action: String; let expired: Bool
                       var severity: Int64 = 0; var type = "doc" }
        var state: UInt64 = 0x71_3E5E_6
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        var rows: [Plain] = []
        var clock: Int64 = 1_000_000
        for seq in Int64(1)...4_000 {
            // Mostly forward; ~0.5% of rows step back by up to 3,000 ticks (about 20 breaks).
            clock += next() % 200 == 0 ? -Int64(next() % 3_000) : Int64(next() % 5)
            let r = next() % 100
            rows.append(Plain(seq: seq, tenant: r < 85 ? "big" : (r < 97 ? "mid" : "small"), recordedAt: clock,
                              action: next() % 3 == 0 ? "read" : "write", expired: next() % 25 == 0,
                              severity: Int64(next() % 4), type: next() % 3 == 0 ? "img" : "doc"))
        }
        try queue.write { db in
            try db.execute(sql: "DROP TRIGGER audit_entries_next_seq_only")  // expired rows leave gaps
            for r in rows {
                if r.expired {
                    try db.execute(sql: "INSERT INTO audit_expired VALUES (?, 1, x'00', x'00', ?, x'00', 0)", arguments: [r.seq, r.recordedAt])
                } else {
                    try db.execute(sql: """
                        INSERT INTO audit_entries(seq, recorded_at, tenant, action, resource_type, outcome, severity, origin, format_version, key_version, mac)
                        VALUES (?, ?, ?, ?, ?, 0, ?, 0, 1, 1, x'00')
                        """, arguments: [r.seq, r.recordedAt, r.tenant, r.action, r.type, r.severity])
                }
            }
            try TimeBreaks.refill(db)
        }
        let breakCount = try queue.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_time_breaks") ?? 0 }
        #expect((5...QueryExecution.maximumTimeBreaks).contains(breakCount), "\(breakCount) breaks")
        let present = rows.filter { !$0.expired }
        let (minT, maxT) = (rows.map(\.recordedAt).min()!, rows.map(\.recordedAt).max()!)
        var failures: [String] = []
        var segmented = 0
        for round in 0..<400 {
            let tenant = ["big", "mid", "small"][round % 3]
            let a = minT - 10 + Int64(next() % UInt64(maxT - minT + 20))
            let width = round % 4 == 0 ? Int64(next() % 50) : Int64(next() % UInt64(maxT - minT) / 2) + 1
            let window = AuditTimestamp(microsecondsSinceEpoch: a)..<AuditTimestamp(microsecondsSinceEpoch: a + width)
            let limit = [1, 10, 100, 1_000][round % 4]
            let descending = round % 2 == 0
            let action: String? = round % 5 == 0 ? "read" : nil
            // A filter the tenant index holds (severity, migration 0010) and one it does not (resource type).
            let severity: AuditSeverity? = round % 3 == 2 ? .warning : nil
            let type: String? = round % 8 == 3 ? "img" : nil
            let (lower, upper): (Int64, Int64) = round % 7 == 0 ? (Int64(next() % 2_000) + 1, Int64(next() % 2_000) + 2_000) : (1, 4_000)
            let plan = try QueryExecution.plan(EntryQuery(limit: limit, descending: descending, action: action, tenant: tenant,
                                                          resourceType: type, severity: severity, recordedAt: window))
            let matching = present.filter {
                $0.tenant == tenant && $0.recordedAt >= a && $0.recordedAt < a + width && (action == nil || $0.action == action)
                    && (severity == nil || $0.severity == 2) && (type == nil || $0.type == type)
                    && $0.seq >= lower && $0.seq <= upper
            }.map(\.seq)
            let expected = Array((descending ? Array(matching.reversed()) : matching).prefix(limit))
            let ranges = try queue.read { db in
                try QueryExecution.windowRanges(db, window: plan.recordedWindow!, lower: lower, upper: upper, signed: unsignedRowsTrusted)
            }
            if ranges != nil { segmented += 1 }
            for breaks in [true, false] {
                let got = try queue.read { db in
                    try QueryExecution.tenantWalkSeqs(db, plan: plan, lower: lower, upper: upper, signed: unsignedRowsTrusted, timeBreaks: breaks)
                }
                if got != expected {
                    failures.append("round \(round) (\(tenant), \(descending ? "desc" : "asc"), limit \(limit), breaks \(breaks)): \(got.prefix(5)) vs \(expected.prefix(5))")
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        #expect(segmented > 300, "\(segmented) of 400 windows went through the breaks")
    }

    @Test("through the store: pages and cursors of tenant + time across breaks equal the entries filtered by hand")
    func storePagesAcrossBreaks() async throws {
        let store = try await AuditStore.create(at: db, keys: keys)
        var offset: Int64 = 0
        for batch in 0..<12 {
            offset += batch % 3 == 2 ? -Self.hour : 0
            store.setClockOffsetForTesting(offset)
            try await store.append(contentsOf: events((batch * 25 + 1)...(batch * 25 + 25)))
        }
        let all = try await allEntries(store)
        let times = all.map(\.recordedAt.microsecondsSinceEpoch).sorted()
        for (descending, tenant) in [(true, "tenant-1"), (false, "tenant-2"), (true, "tenant-0")] {
            let window = AuditTimestamp(microsecondsSinceEpoch: times[40])..<AuditTimestamp(microsecondsSinceEpoch: times[250])
            let expected = all.filter { $0.tenant == tenant && window.contains($0.recordedAt) }.map(\.seq)
            var got: [Int64] = []
            var cursor: QueryCursor?
            repeat {
                let page = try await store.page(EntryQuery(limit: 7, descending: descending, tenant: tenant, recordedAt: window, cursor: cursor))
                got += page.entries.map(\.seq)
                cursor = page.nextCursor
            } while cursor != nil
            #expect(got == (descending ? expected.reversed() : expected), "\(tenant) \(descending)")
            #expect(!expected.isEmpty)
        }
        try await store.close()
        #expect(try breaks(db).count == 4)
    }
}
