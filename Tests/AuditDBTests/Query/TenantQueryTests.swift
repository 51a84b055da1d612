import AuditDBTestSupport
import Foundation
import GRDB
import Testing

@testable import AuditDB

/// Tenant queries through `audit_entries_tenant_seq` (migration 0008, issue 19): the plans (no sort
/// of the tenant's rows, newest or oldest first), the tenant + time walk against a brute-force
/// oracle on rows whose recorded_at goes backwards, the index proof for the new index (tampered
/// with by hand: exact finding, full and incremental), `repair-indexes`, and the migration.
@Suite("Tenant queries")
struct TenantQueryTests {
    let dir: TemporaryDirectory
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
        db = dir.path("store.db")
    }

    func details(_ store: AuditStore, _ sql: String, _ arguments: [any DatabaseValueConvertible & Sendable]) async throws -> [String] {
        try await store.pool.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: StatementArguments(arguments)).map { $0["detail"] as String }
        }
    }

    @Test("a tenant's page, newest or oldest first, is one seek in audit_entries_tenant_seq and no sort; tenant + time walks it (through the time breaks or not), then the time index")
    func plans() async throws {
        try await makeStore(at: db, keys: keys, count: 50)
        let store = try await AuditStore.open(at: db, keys: keys)
        for descending in [true, false] {
            for query in [EntryQuery(descending: descending, tenant: "t"), EntryQuery(descending: descending, action: "read", tenant: "t"),
                          EntryQuery(descending: descending, tenant: "t", outcome: .denied)] {
                let plan = try QueryExecution.plan(query)
                let got = try await details(store, QueryExecution.sql(plan, bucketed: false), [Int64(1), Int64.max] + plan.bindings + [Int64(100)])
                #expect(got == ["SEARCH audit_entries USING INDEX audit_entries_tenant_seq (tenant=? AND <expr>>? AND <expr><?)"], "\(query)")
            }
            let now = AuditTimestamp.now()
            let plan = try QueryExecution.plan(EntryQuery(descending: descending, tenant: "t", recordedAt: now..<now))
            #expect(plan.tenantWalk)
            let probe = try await details(store, QueryExecution.tenantProbeSQL, [Int64(1), Int64.max, "t", Int64(0), Int64(1), Int64(4_096)])
            #expect(probe.contains("SEARCH audit_entries USING COVERING INDEX audit_entries_tenant_time (tenant=? AND recorded_at>? AND recorded_at<?)"), "\(probe)")
            let walk = try await details(store, QueryExecution.tenantWalkSQL(plan), plan.bindings + [Int64(1), Int64.max, "t", Int64(2_000)])
            #expect(walk == ["SEARCH audit_entries USING INDEX audit_entries_tenant_seq (tenant=? AND <expr>>? AND <expr><?)"])
            let rest = try await details(store, QueryExecution.sql(plan, bucketed: false), [Int64(1), Int64.max] + plan.bindings + [Int64(100)])
            #expect(rest.first == "SEARCH audit_entries USING COVERING INDEX audit_entries_tenant_time (tenant=? AND recorded_at>? AND recorded_at<?)")
            // Through the time breaks: the tenant's index within one seq range, every filter tested
            // as one term (no time index, no sort), with or without other filters.
            for query in [EntryQuery(descending: descending, tenant: "t", recordedAt: now..<now),
                          EntryQuery(descending: descending, action: "read", tenant: "t", outcome: .denied, severity: .notice, recordedAt: now..<now)] {
                let plan = try QueryExecution.plan(query)
                let segment = try await details(store, QueryExecution.segmentWalkSQL(plan), [Int64(1), Int64.max, "t"] + plan.bindings + [Int64(100)])
                #expect(segment == ["SEARCH audit_entries USING INDEX audit_entries_tenant_seq (tenant=? AND <expr>>? AND <expr><?)"], "\(query)")
            }
        }
        try await store.close()
    }

    @Test("newest first by tenant or unfiltered: the floor seq comes from an index alone, and every page, cursor, seq range and stream equals oldest first reversed")
    func newestFirstAscending() async throws {
        try await makeStore(at: db, keys: keys, count: 60)
        let store = try await AuditStore.open(at: db, keys: keys)
        for tenant in [nil, "tenant-1"] {
            let plan = try QueryExecution.plan(EntryQuery(descending: true, tenant: tenant))
            #expect(QueryExecution.readsNewestFirstAscending(plan))
            let floor = try await details(store, QueryExecution.newestFirstFloorSQL(plan), [Int64(1), Int64.max] + plan.bindings + [Int64(99)])
            #expect(floor == [tenant == nil
                ? "SEARCH audit_entries USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"
                : "SEARCH audit_entries USING COVERING INDEX audit_entries_tenant_seq (tenant=? AND <expr>>? AND <expr><?)"], "\(floor)")
        }
        // The filters the tenant index holds (migration 0010): the floor still comes from the index alone.
        let filtered = try QueryExecution.plan(EntryQuery(descending: true, action: "read", tenant: "tenant-1", outcome: .denied, severity: .notice))
        #expect(QueryExecution.readsNewestFirstAscending(filtered))
        let filteredFloor = try await details(store, QueryExecution.newestFirstFloorSQL(filtered), [Int64(1), Int64.max] + filtered.bindings + [Int64(99)])
        #expect(filteredFloor == ["SEARCH audit_entries USING COVERING INDEX audit_entries_tenant_seq (tenant=? AND <expr>>? AND <expr><?)"], "\(filteredFloor)")
        // A filter the index does not hold would need rows read twice: such pages stay one descending statement.
        #expect(!QueryExecution.readsNewestFirstAscending(try QueryExecution.plan(EntryQuery(descending: true, tenant: "tenant-1", resourceType: "doc"))))
        #expect(!QueryExecution.readsNewestFirstAscending(try QueryExecution.plan(EntryQuery(descending: false, tenant: "tenant-1"))))
        for tenant in [nil, "tenant-0", "tenant-2", "tenant-9"] {
            let matching = (Int64(1)...60).filter { tenant == nil || "tenant-\($0 % 3)" == tenant }
            for limit in [1, 3, 19, 20, 21, 100] {
                for after in [nil, Int64(31), Int64(2)] {
                    for seqs in [nil, Int64(10)...Int64(50)] {
                        let got = try await store.entries(EntryQuery(afterSeq: after, limit: limit, descending: true, tenant: tenant, seqs: seqs)).map(\.seq)
                        let expected = matching.filter { (after == nil || $0 < after!) && (seqs?.contains($0) ?? true) }.reversed().prefix(limit)
                        #expect(got == Array(expected), "tenant \(tenant ?? "-"), limit \(limit), after \(after ?? -1), seqs \(String(describing: seqs))")
                    }
                }
            }
            var streamed: [Int64] = []
            for try await entry in store.stream(EntryQuery(descending: true, tenant: tenant), pageSize: 7) { streamed.append(entry.seq) }
            #expect(streamed == matching.reversed())
        }
        // With the filters the tenant index holds, in both orders, against the rows' own values.
        for tenant in ["tenant-0", "tenant-2"] {
            for (action, outcome) in [("read", nil), (nil, AuditOutcome.denied), ("write", AuditOutcome.denied), ("delete", AuditOutcome.success)] {
                let matching = (Int64(1)...60).filter {
                    "tenant-\($0 % 3)" == tenant && (action == nil || ["login", "read", "write", "delete"][Int($0) % 4] == action)
                        && (outcome == nil || ($0 % 5 == 0 ? AuditOutcome.denied : .success) == outcome)
                }
                for descending in [true, false] {
                    for limit in [1, 3, 100] {
                        for seqs in [nil, Int64(10)...Int64(50)] {
                            let got = try await store.entries(EntryQuery(limit: limit, descending: descending, action: action, tenant: tenant,
                                                                         outcome: outcome, seqs: seqs)).map(\.seq)
                            let inRange = matching.filter { seqs?.contains($0) ?? true }
                            let expected = Array((descending ? inRange.reversed() : inRange).prefix(limit))
                            #expect(got == expected, "\(tenant) \(action ?? "-") \(String(describing: outcome)) desc \(descending) limit \(limit)")
                        }
                    }
                }
            }
        }
        let scoped = try await store.scoped(toTenant: "tenant-2").entries(EntryQuery(limit: 5, descending: true)).map(\.seq)
        #expect(scoped == [59, 56, 53, 50, 47])
        try await store.close()
    }

    @Test("tenant + time equals a brute-force filter when recorded_at steps backwards, for every walk budget, limit, order and seq range")
    func walkMatchesOracle() throws {
        // Plain rows (no MACs: this checks which seqs the SQL selects) in a database with the schema.
        let queue = try DatabaseQueue()
        try StoreSchema.migrator.migrate(queue)
        struct Row3 { let seq: Int64; let tenant: String; let recordedAt: Int64; let action: String; let outcome: Int64; let type: String }
        var state: UInt64 = 0x5EED_19
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        var rows: [Row3] = []
        var clock: Int64 = 1_000_000
        for seq in Int64(1)...3_000 {
            // A clock that mostly advances and sometimes steps back by up to 400 ticks.
            clock += next() % 10 == 0 ? -Int64(next() % 400) : Int64(next() % 5)
            let r = next() % 100
            let tenant = r < 80 ? "big" : (r < 95 ? "mid" : "small")
            rows.append(Row3(seq: seq, tenant: tenant, recordedAt: clock, action: next() % 3 == 0 ? "read" : "write",
                             outcome: Int64(next() % 4), type: next() % 2 == 0 ? "doc" : "img"))
        }
        try queue.write { db in
            for r in rows {
                try db.execute(sql: """
                    INSERT INTO audit_entries(seq, recorded_at, tenant, action, resource_type, outcome, severity, origin, format_version, key_version, mac)
                    VALUES (?, ?, ?, ?, ?, ?, 0, 0, 1, 1, x'00')
                    """, arguments: [r.seq, r.recordedAt, r.tenant, r.action, r.type, r.outcome])
            }
            // ~300 breaks: more than the segment plan takes (QueryExecution+TimeSegments.swift), so
            // the default path below falls back to this walk too.
            try TimeBreaks.refill(db)
        }
        let (minT, maxT) = (rows.map(\.recordedAt).min()!, rows.map(\.recordedAt).max()!)
        var failures: [String] = []
        for round in 0..<300 {
            let tenant = ["big", "mid", "small"][round % 3]
            let a = minT + Int64(next() % UInt64(maxT - minT)), width = Int64(next() % UInt64(maxT - minT) / 2) + 1
            let window = AuditTimestamp(microsecondsSinceEpoch: a)..<AuditTimestamp(microsecondsSinceEpoch: a + width)
            let limit = [1, 10, 100, 1_000][round % 4]
            let descending = round % 2 == 0
            let action: String? = round % 5 == 0 ? "read" : nil
            // A filter the tenant index holds (outcome) and one it does not (resource type).
            let outcome: AuditOutcome? = round % 3 == 1 ? .denied : nil
            let type: String? = round % 4 == 1 ? "doc" : nil
            let (lower, upper): (Int64, Int64) = round % 7 == 0 ? (Int64(next() % 1_500) + 1, Int64(next() % 1_500) + 1_500) : (1, 3_000)
            let plan = try QueryExecution.plan(EntryQuery(limit: limit, descending: descending, action: action, tenant: tenant,
                                                          resourceType: type, outcome: outcome, recordedAt: window))
            let matching = rows.filter {
                $0.tenant == tenant && $0.recordedAt >= a && $0.recordedAt < a + width && (action == nil || $0.action == action)
                    && (outcome == nil || $0.outcome == 2) && (type == nil || $0.type == type)
                    && $0.seq >= lower && $0.seq <= upper
            }.map(\.seq)
            let expected = Array((descending ? Array(matching.reversed()) : matching).prefix(limit))
            // Probe limit 1: always walk (budgets 1, 7, 50, 2,000 rows: the time index takes over at
            // every point); 4,096 (the default): the time index alone for small windows.
            for (probe, budget, breaks) in [(1, 1, false), (1, 7, false), (1, 50, false), (1, 2_000, false),
                                            (QueryExecution.tenantProbeLimit, nil, false), (QueryExecution.tenantProbeLimit, nil, true)] {
                let got = try queue.read { db in
                    try QueryExecution.tenantWalkSeqs(db, plan: plan, lower: lower, upper: upper, signed: unsignedRowsTrusted,
                                                      probeLimit: probe, budget: budget,
                                                      timeBreaks: breaks)
                }
                if got != expected {
                    failures.append("round \(round) (\(tenant), \(descending ? "desc" : "asc"), limit \(limit), probe \(probe), budget \(budget ?? -1)): \(got.prefix(5)) vs \(expected.prefix(5))")
                }
            }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
    }

    /// tenant-1's first page of 100, newest first, from a store opened for it and closed after.
    func tenantOnePage(_ mode: EntryQuery.UnverifiedRows) async throws -> [AuditEntry] {
        let store = try await AuditStore.open(at: db, keys: keys)
        do {
            let entries = try await store.entries(EntryQuery(limit: 100, descending: true, tenant: "tenant-1", unverifiedRows: mode))
            try await store.close()
            return entries
        } catch {
            try await store.close()
            throw error
        }
    }

    @Test("a tenant's page, newest first, checks each row's link to the stored row before it (not the row read before it): that row deleted, or its MAC changed, the row after it is named")
    func pageChecksStoredPredecessor() async throws {
        try await makeStore(at: db, keys: keys, count: 20)  // tenant-1: seqs 1, 4, 7, 10, 13, 16, 19
        let tenantOne: [Int64] = [19, 16, 13, 10, 7, 4, 1]
        #expect(try await tenantOnePage(.throw).map(\.seq) == tenantOne)

        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET mac = zeroblob(32) WHERE seq = 12;")
        let forged = try await tenantOnePage(.mark)
        #expect(forged.map(\.seq) == tenantOne)
        #expect(forged.filter { $0.finding != nil }.map(\.seq) == [13])
        #expect(forged.first { $0.seq == 13 }?.finding?.kind == .chainBreak, "\(forged.compactMap(\.finding))")

        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq = 9;")
        let marked = try await tenantOnePage(.mark)
        #expect(marked.filter { $0.finding != nil }.map(\.seq) == [13, 10])
        #expect(marked.first { $0.seq == 10 }?.finding?.kind == .missingRows)
        // The page reads the tenant's rows oldest first and reverses them: entry 10 fails first.
        await #expect {
            _ = try await tenantOnePage(.throw)
        } throws: { error in
            (error as? AuditError)?.message
                == "entry 10 failed verification (missing-rows at seq 9: the row before seq 10 is missing); it is not returned. Run `auditdb verify` for a full report."
        }
    }

    @Test("a tenant's page, newest first, whose row before a row has a stored MAC of 1, 33 or 0 bytes: that row is named malformed, nothing is read past the MAC")
    func pageWithShortStoredPredecessor() async throws {
        try await makeStore(at: db, keys: keys, count: 20)  // tenant-1: seqs 1, 4, 7, 10, 13, 16, 19
        let tenantOne: [Int64] = [19, 16, 13, 10, 7, 4, 1]
        // The link check reads 32 bytes of the MAC before. Longer (its first 32 bytes the true
        // MAC) or empty: not a link, named as such.
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET mac = CAST(mac || x'00' AS BLOB) WHERE seq = 12;")
        try sqlite3Must(db, "UPDATE audit_entries SET mac = x'' WHERE seq = 15;")
        let long = try await tenantOnePage(.mark)
        #expect(long.map(\.seq) == tenantOne)
        #expect(long.filter { $0.finding != nil }.map(\.seq) == [16, 13])
        #expect(long.first { $0.seq == 13 }?.finding == Finding(
            kind: .malformedRow, seqs: 12...12, message: "the row before seq 13 has a stored MAC of 33 bytes, not 32, so seq 13's link cannot be checked"))
        #expect(long.first { $0.seq == 16 }?.finding?.message == "the row before seq 16 has a stored MAC of 0 bytes, not 32, so seq 16's link cannot be checked")

        // Shorter: never read past it.
        try sqlite3Must(db, "UPDATE audit_entries SET mac = x'00' WHERE seq = 12;")
        let short = try await tenantOnePage(.mark)
        #expect(short.filter { $0.finding != nil }.map(\.seq) == [16, 13])
        #expect(short.first { $0.seq == 13 }?.finding?.message == "the row before seq 13 has a stored MAC of 1 bytes, not 32, so seq 13's link cannot be checked")
        // The page reads the tenant's rows oldest first and reverses them: entry 13 fails first.
        await #expect {
            _ = try await tenantOnePage(.throw)
        } throws: { error in
            (error as? AuditError)?.message
                == "entry 13 failed verification (malformed-row at seq 12: the row before seq 13 has a stored MAC of 1 bytes, not 32, so seq 13's link cannot be checked); it is not returned. Run `auditdb verify` for a full report."
        }
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        // The dropped trigger is a finding of its own; the rows' findings are rows 12's and 15's.
        let rows = report.findings.filter { $0.kind != .schemaTampered }
        #expect(rows.map(\.kind) == [.malformedRow, .malformedRow], "\(report)")
        #expect(rows.map(\.seqs) == [12...12, 15...15], "\(report)")
    }

    @Test("one tenant byte flipped inside audit_entries_tenant_seq: index-mismatch naming it, the tenant's page misses a row; repair-indexes fixes it")
    func byteFlipped() async throws {
        try await makeStore(at: db, keys: keys, count: 20)
        let page = try indexRootPage("audit_entries_tenant_seq", in: db)
        let hits = try offsets(of: "tenant-1", in: db).filter { page.contains($0) }
        #expect(hits.count == 7)  // sampleEvent i % 3 == 1 for i in 1...20
        try patchFile(db, at: hits[0] + 7, with: Array("7".utf8))  // one entry's key tenant-1 -> tenant-7, in the index only
        let oracle = (1...20).filter { $0 % 3 == 1 }.map(Int64.init)
        let store = try await AuditStore.open(at: db, keys: keys)
        let newest = try await store.entries(EntryQuery(limit: 100, descending: true, tenant: "tenant-1")).map(\.seq)
        #expect(newest != Array(oracle.reversed()))  // the damage the proof exists for
        try await store.close()
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        // A tenant-7 key amid tenant-1's entries is also out of key order, which is what is named.
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_tenant_seq is not in key order (its entry for rowid ") == true, "\(report)")

        let reopened = try await AuditStore.open(at: db, keys: keys)
        let repaired = try await reopened.repairIndexes()
        #expect(repaired.isIntact)
        #expect(try await reopened.entries(EntryQuery(limit: 100, descending: true, tenant: "tenant-1")).map(\.seq) == Array(oracle.reversed()))
        try await reopened.close()
    }

    @Test("one action flipped in audit_entries_tenant_seq (write -> wrote): index-mismatch naming it, the filtered page misses the row; repair-indexes fixes it")
    func filterValueFlipped() async throws {
        try await makeStore(at: db, keys: keys, count: 20)
        let page = try indexRootPage("audit_entries_tenant_seq", in: db)
        let hits = try offsets(of: "write", in: db).filter { page.contains($0) }
        #expect(hits.count == 5)  // sampleEvent's action is "write" for i % 4 == 2, i in 1...20
        try patchFile(db, at: hits[0] + 2, with: Array("o".utf8))  // in the index only
        let writes = (1...20).filter { $0 % 4 == 2 }.map(Int64.init)
        let store = try await AuditStore.open(at: db, keys: keys)
        var got: [Int64] = []
        for tenant in ["tenant-0", "tenant-1", "tenant-2"] {
            got += try await store.entries(EntryQuery(action: "write", tenant: tenant)).map(\.seq)
        }
        #expect(got.sorted() != writes)  // the damage the proof exists for
        try await store.close()
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_tenant_seq does not hold exactly the entries of the log's rows (20 entries, as many as the rows imply, but some are altered)") == true, "\(report)")
        let reopened = try await AuditStore.open(at: db, keys: keys)
        #expect(try await reopened.repairIndexes().isIntact)
        got = []
        for tenant in ["tenant-0", "tenant-1", "tenant-2"] {
            got += try await reopened.entries(EntryQuery(action: "write", tenant: tenant)).map(\.seq)
        }
        #expect(got.sorted() == writes)
        try await reopened.close()
    }

    @Test("the stored seq key of one entry moved (seq 7 keyed as 8, the CREATE INDEX text put back): full and incremental passes name the index, the page comes out of order")
    func seqKeyMoved() async throws {
        let moved = "CREATE INDEX audit_entries_tenant_seq ON audit_entries(tenant, ((seq >> 0) + (seq = 7)), outcome, severity, action) WHERE tenant IS NOT NULL"
        try await makeStore(at: db, keys: keys, count: 20)
        try rebuildIndex("audit_entries_tenant_seq", in: db, as: moved)
        let store = try await AuditStore.open(at: db, keys: keys)
        // tenant-1 holds 1, 4, 7, 10, ...: key 8 still sorts 7 between 4 and 10, so read a range that ends at 7.
        let page = try await store.entries(EntryQuery(tenant: "tenant-1", seqs: 1...7)).map(\.seq)
        #expect(page == [1, 4])  // the damage: seq 7 is in range but its key (8) is not
        try await store.close()
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_tenant_seq does not hold exactly the entries of the log's rows (20 entries, as many as the rows imply, but some are altered)") == true, "\(report)")

        // Incremental, rows 6...10: the moved key belongs to a new row (7, keyed 8).
        let incremental = try await incrementalPass("inc-key.db", rows: 5, added: 5, rebuiltAs: moved)
        #expect(incremental.rowsChecked == 5)
        #expect(incremental.findings.map(\.kind) == [.indexMismatch], "\(incremental)")
        // An old row's entry moved into the new rows' keys (row 2 of tenant-2, keyed 8 beside row 8):
        // counted by its key, so extra, whatever row it points at.
        let intoRange = "CREATE INDEX audit_entries_tenant_seq ON audit_entries(tenant, ((seq >> 0) + 6 * (seq = 2)), outcome, severity, action) WHERE tenant IS NOT NULL"
        let into = try await incrementalPass("inc-into.db", rows: 5, added: 5, rebuiltAs: intoRange)
        #expect(into.rowsChecked == 5)
        #expect(into.findings.map(\.kind) == [.indexMismatch], "\(into)")
        #expect(into.findings.first?.message.hasPrefix("index audit_entries_tenant_seq does not hold exactly the entries of the log's rows (6 entries where the rows imply 5)") == true, "\(into)")
    }

    /// The incremental pass over `added` rows after `rows`, the tenant index rebuilt as `definition`.
    func incrementalPass(_ file: String, rows: Int, added: Int, rebuiltAs definition: String) async throws -> IntegrityReport {
        try await incrementalPassAfterRebuild(at: dir.path(file), keys: keys, rows: rows, added: added,
                                              index: "audit_entries_tenant_seq", as: definition)
    }

    @Test("a store at 0009 takes migrations 0010 and 0011 with `migrate`: the tenant index gains the filter columns, is proved, and filtered pages equal the rows filtered by hand")
    func migrationAddsFilterColumns() async throws {
        let store = try await AuditStore.create(at: db, keys: keys, configuration: .init(), schemaUpTo: "0009-time-breaks")
        try await store.append(contentsOf: (1...40).map { sampleEvent($0) })
        try await store.close()
        #expect(try await AuditStore.migrationPlan(at: db).pending == ["0010-tenant-filter-index", "0011-key-filter-indexes"])
        let report = try await AuditStore.migrate(at: db, keys: keys, backup: .none)
        #expect(report.applied == ["0010-tenant-filter-index", "0011-key-filter-indexes"])
        #expect(report.verification.isIntact && report.verification.rowsChecked == 40)
        let definition = try sqlite3Shell(db, "SELECT sql FROM sqlite_schema WHERE name = 'audit_entries_tenant_seq';").stdout
        #expect(definition.contains("(tenant, (seq >> 0), outcome, severity, action)"), "\(definition)")
        let migrated = try await AuditStore.open(at: db, keys: keys)
        let got = try await migrated.entries(EntryQuery(descending: true, action: "read", tenant: "tenant-1")).map(\.seq)
        #expect(got == (1...40).filter { $0 % 4 == 1 && $0 % 3 == 1 }.reversed().map(Int64.init))
        try await migrated.close()
    }

    @Test("audit_entries_tenant_seq rebuilt without a row (its CREATE INDEX text put back): the full pass names it; so does the incremental pass that covers the row")
    func rowLeftOut() async throws {
        try await makeStore(at: db, keys: keys, count: 30)
        try rebuildIndex("audit_entries_tenant_seq", in: db,
                         as: "CREATE INDEX audit_entries_tenant_seq ON audit_entries(tenant, (seq >> 0), outcome, severity, action) WHERE tenant IS NOT NULL AND seq <> 5")
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(report.findings.first?.message.hasPrefix("index audit_entries_tenant_seq does not hold exactly the entries of the log's rows (29 entries where the rows imply 30)") == true, "\(report)")

        // Incremental: the new rows' part of the index, one seek per tenant of those rows.
        let incremental = try await incrementalPass(
            "inc.db", rows: 10, added: 5,
            rebuiltAs: "CREATE INDEX audit_entries_tenant_seq ON audit_entries(tenant, (seq >> 0), outcome, severity, action) WHERE tenant IS NOT NULL AND seq <> 13")
        #expect(incremental.rowsChecked == 5)
        #expect(incremental.findings.map(\.kind) == [.indexMismatch])
        #expect(incremental.findings.first?.message.hasPrefix("index audit_entries_tenant_seq does not hold exactly the entries of the log's rows (4 entries where the rows imply 5)") == true)
    }

    @Test("a store at 0006 takes migrations 0007 and 0008 with `migrate`: the index is built from the rows and proved")
    func migrationAddsIndex() async throws {
        let store = try await AuditStore.create(at: db, keys: keys, configuration: .init(), schemaUpTo: "0006-erasure")
        try await store.append(contentsOf: (1...40).map { sampleEvent($0) })
        try await store.close()
        let later = Array(StoreSchema.knownMigrations.drop { $0 != "0007-erasure-paths" })  // 0007, 0008 and any after them
        #expect(later.prefix(2) == ["0007-erasure-paths", "0008-tenant-seq-index"])
        #expect(try await AuditStore.migrationPlan(at: db).pending == later)
        let report = try await AuditStore.migrate(at: db, keys: keys, backup: .none)
        #expect(report.applied == later)
        #expect(report.verification.isIntact && report.verification.rowsChecked == 40)
        let count = try sqlite3Shell(db, "SELECT count(*) FROM audit_entries INDEXED BY audit_entries_tenant_seq WHERE tenant IS NOT NULL;").stdout
        #expect(count.trimmingCharacters(in: .whitespacesAndNewlines) == "40")
        let reopened = try await AuditStore.open(at: db, keys: keys)
        let newest = try await reopened.entries(EntryQuery(limit: 3, descending: true, tenant: "tenant-2")).map(\.seq)
        #expect(newest == [38, 35, 32])
        try await reopened.close()
    }
}
