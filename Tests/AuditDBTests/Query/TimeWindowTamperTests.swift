import AuditDBTestSupport
import Foundation
import GRDB
import Testing

@testable import AuditDB

/// For the search tests below, whose rows are written bare (no MACs): every row counts as signed,
/// so they test the search alone. The tests of this file make some rows unsigned.
let unsignedRowsTrusted: @Sendable (Int64) throws -> Bool = { _ in true }

/// Tenant + time queries search the window's seq ranges by the `recorded_at` of rows they never
/// return (QueryExecution+TimeSegments.swift). One row's time changed without the key must not
/// move a range's end past genuine rows: the query returns every genuine row of the window, as
/// the time index does.
@Suite("Tenant + time windows over a changed recorded_at")
struct TimeWindowTamperTests {
    @Test("the probe's case through the store: row 16's time set to 1970, or to the largest time: every genuine row of each window is returned")
    func changedTimeThroughTheStore() async throws {
        let dir = try TemporaryDirectory()
        defer { withExtendedLifetime(dir) {} }  // the directory is removed when released
        let keys = try KeyFile.generate(at: dir.path("k.keys"))
        let db = dir.path("store.db")
        let store = try await AuditStore.create(at: db, keys: keys)
        for i in 1...30 { _ = try await store.append(AuditEvent(actor: "u\(i)", action: "doc.read", tenant: "acme")) }
        let times = try await store.entries(EntryQuery(limit: 100)).map(\.recordedAt)
        try await store.close()
        func seqs(since: Int, until: Int?) async throws -> [Int64] {
            let store = try await AuditStore.open(at: db, keys: keys)
            let window = times[since - 1]..<(until.map { times[$0 - 1] } ?? AuditTimestamp(microsecondsSinceEpoch: .max))
            let entries = try await store.entries(EntryQuery(limit: 100, tenant: "acme", recordedAt: window))
            try await store.close()
            return entries.map(\.seq)
        }
        for changed in [Int64(1), Int64.max] {
            try sqlite3Tamper(db, "UPDATE audit_entries SET recorded_at = \(changed) WHERE seq = 16;", around: "audit_entries_no_update")
            let report = try await AuditStore.verify(storeAt: db, keys: keys)
            #expect(report.findings.map(\.kind) == [.macMismatch] && report.findings.first?.seqs == 16...16, "\(report.findings)")
            // Rows 5...30 but the changed one, whose stored time is outside the window either way.
            #expect(try await seqs(since: 5, until: nil) == Array(5...15) + Array(17...30), "recorded_at \(changed)")
            #expect(try await seqs(since: 10, until: 12) == [10, 11], "recorded_at \(changed)")
            #expect(try await seqs(since: 1, until: 20) == Array(1...15) + Array(17...19), "recorded_at \(changed)")
            #expect(try await seqs(since: 17, until: 30) == Array(17...29), "recorded_at \(changed)")
        }
    }

    @Test("against a brute-force filter: with 1 in 50 rows' times changed to anything (unsigned), every genuine row of the window is returned, in order")
    func oracleWithChangedTimes() throws {
        let queue = try DatabaseQueue()
        try StoreSchema.migrator.migrate(queue)
        var state: UInt64 = 0x5EED_0019
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        struct Plain { let seq: Int64; let tenant: String; let genuine: Int64; var stored: Int64; var changed = false }
        var rows: [Plain] = []
        var clock: Int64 = 1_000_000
        for seq in Int64(1)...3_000 {
            // Mostly forward, with a few steps back (breaks), as a writer's clock goes.
            clock += next() % 300 == 0 ? -Int64(next() % 2_000) : Int64(next() % 5)
            rows.append(Plain(seq: seq, tenant: next() % 10 < 8 ? "big" : "small", genuine: clock, stored: clock))
        }
        try queue.write { db in
            for r in rows {
                try db.execute(sql: """
                    INSERT INTO audit_entries(seq, recorded_at, tenant, action, outcome, severity, origin, format_version, key_version, mac)
                    VALUES (?, ?, ?, 'a', 0, 0, 0, 1, 1, x'00')
                    """, arguments: [r.seq, r.genuine, r.tenant])
            }
            try TimeBreaks.refill(db)  // the breaks of the genuine times, as the writer recorded them
            try db.execute(sql: "DROP TRIGGER audit_entries_no_update")
            for index in rows.indices where next() % 50 == 0 {
                let choices: [Int64] = [1, .max, rows[index].genuine + Int64(next() % 4_000) - 2_000, 1_000_000 + Int64(next() % 10_000)]
                rows[index].stored = choices[Int(next() % 4)]
                rows[index].changed = true
                try db.execute(sql: "UPDATE audit_entries SET recorded_at = ? WHERE seq = ?", arguments: [rows[index].stored, rows[index].seq])
            }
        }
        let changed = Set(rows.filter(\.changed).map(\.seq))
        #expect(changed.count > 30)
        let (minT, maxT) = (rows.map(\.genuine).min()!, rows.map(\.genuine).max()!)
        var failures: [String] = []
        var segmented = 0
        for round in 0..<300 {
            let tenant = round % 3 == 0 ? "small" : "big"
            let a = minT - 10 + Int64(next() % UInt64(maxT - minT + 20))
            let width = round % 4 == 0 ? Int64(next() % 50) + 1 : Int64(next() % UInt64(maxT - minT) / 2) + 1
            let window = AuditTimestamp(microsecondsSinceEpoch: a)..<AuditTimestamp(microsecondsSinceEpoch: a + width)
            let descending = round % 2 == 0
            let plan = try QueryExecution.plan(EntryQuery(limit: 10_000, descending: descending, tenant: tenant, recordedAt: window))
            let genuine = rows.filter { !$0.changed && $0.tenant == tenant && $0.genuine >= a && $0.genuine < a + width }.map(\.seq)
            let got = try queue.read { db in
                if try QueryExecution.windowRanges(db, window: plan.recordedWindow!, lower: 1, upper: 3_000,
                                                   signed: { !changed.contains($0) }) != nil { segmented += 1 }
                return try QueryExecution.tenantWalkSeqs(db, plan: plan, lower: 1, upper: 3_000, signed: { !changed.contains($0) })
            }
            // Changed rows come back only where their stored time is in the window (the reader then refuses them).
            let gotGenuine = got.filter { !changed.contains($0) }
            if gotGenuine != (descending ? genuine.reversed() : genuine) {
                failures.append("round \(round) (\(tenant), [\(a), \(a + width))): \(gotGenuine.count) genuine rows, expected \(genuine.count)")
            }
            for seq in got where changed.contains(seq) {
                let stored = rows[Int(seq) - 1].stored
                if !(stored >= a && stored < a + width) { failures.append("round \(round): changed row \(seq) returned outside the window") }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
        // Most windows still go through the breaks: only those whose ends rest on a changed row fall back.
        #expect(segmented > 150, "\(segmented) of 300 windows went through the breaks")
    }
}
