import Foundation
import GRDB
import Testing

@testable import AuditDB

/// The query API: every filter against an oracle (all rows filtered in Swift), index use
/// (EXPLAIN QUERY PLAN), cursors under concurrent appends, tenant isolation, streaming in
/// bounded memory, and tampered rows never returned as verified.
@Suite("Query API")
struct QueryTests {
    let dir: TempDir
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        db = dir.path("store.db")
    }

    /// Every page of `query`, following cursors.
    func allPages(_ store: AuditStore, _ query: EntryQuery) async throws -> [AuditEntry] {
        var query = query
        var out: [AuditEntry] = []
        while true {
            let page = try await store.page(query)
            out += page.entries
            guard let next = page.nextCursor else { return out }
            query.cursor = next
        }
    }

    @Test("every filter, alone and combined, in both orders, across index buckets, equals the oracle")
    func filtersMatchOracle() async throws {
        // 40,000 rows span three 16,384-row buckets of the actor and resource indexes.
        try await makeStore(at: db, keys: keys, count: 40_000)
        let store = try await AuditStore.open(at: db, keys: keys)
        let all = try await allEntries(store)
        #expect(all.count == 40_000)
        let t0 = all[10_000].recordedAt, t1 = all[30_000].recordedAt
        let o0 = all[5].occurredAt!, o1 = all[25_000].occurredAt!
        let cases: [(String, EntryQuery, (AuditEntry) -> Bool)] = [
            ("actor", EntryQuery(actor: "user-3"), { $0.actor == "user-3" }),
            ("resource id", EntryQuery(resourceId: "doc-20000"), { $0.resourceId == "doc-20000" }),
            ("resource type+id", EntryQuery(resourceType: "document", resourceId: "doc-7"), { $0.resourceId == "doc-7" }),
            ("tenant", EntryQuery(tenant: "tenant-2"), { $0.tenant == "tenant-2" }),
            ("action", EntryQuery(action: "delete"), { $0.action == "delete" }),
            ("outcome", EntryQuery(outcome: .denied), { $0.outcome == .denied }),
            ("severity", EntryQuery(severity: .info), { $0.severity == .info }),
            ("correlation id", EntryQuery(correlationId: "req-31337"), { $0.correlationId == "req-31337" }),
            ("recorded range", EntryQuery(recordedAt: t0..<t1), { $0.recordedAt >= t0 && $0.recordedAt < t1 }),
            ("occurred range", EntryQuery(occurredAt: o0..<o1), { $0.occurredAt.map { $0 >= o0 && $0 < o1 } ?? false }),
            ("seq range", EntryQuery(seqs: 16_000...17_000), { (16_000...17_000).contains($0.seq) }),
            ("tenant + time", EntryQuery(tenant: "tenant-1", recordedAt: t0..<t1),
             { $0.tenant == "tenant-1" && $0.recordedAt >= t0 && $0.recordedAt < t1 }),
            ("tenant + time + action", EntryQuery(action: "read", tenant: "tenant-2", recordedAt: t0..<t1),
             { $0.tenant == "tenant-2" && $0.action == "read" && $0.recordedAt >= t0 && $0.recordedAt < t1 }),
            ("tenant + outcome", EntryQuery(tenant: "tenant-0", outcome: .denied), { $0.tenant == "tenant-0" && $0.outcome == .denied }),
            ("actor + tenant + action", EntryQuery(actor: "user-5", action: "read", tenant: "tenant-0"),
             { $0.actor == "user-5" && $0.tenant == "tenant-0" && $0.action == "read" }),
            ("actor + seq range", EntryQuery(actor: "user-1", seqs: 10_000...35_000),
             { $0.actor == "user-1" && (10_000...35_000).contains($0.seq) }),
            // The filters the bucketed indexes hold (migration 0011), tested on the index entry.
            ("actor + outcome + severity", EntryQuery(actor: "user-2", outcome: .denied, severity: .info),
             { $0.actor == "user-2" && $0.outcome == .denied && $0.severity == .info }),
            ("actor + action + tenant + seq range", EntryQuery(actor: "user-4", action: "delete", tenant: "tenant-1", seqs: 7_000...33_000),
             { $0.actor == "user-4" && $0.action == "delete" && $0.tenant == "tenant-1" && (7_000...33_000).contains($0.seq) }),
            ("resource id + outcome", EntryQuery(resourceId: "doc-20000", outcome: .denied), { $0.resourceId == "doc-20000" && $0.outcome == .denied }),
            ("resource id + action (no match)", EntryQuery(action: "login", resourceId: "doc-20001"),
             { $0.resourceId == "doc-20001" && $0.action == "login" }),
            ("no match", EntryQuery(actor: "nobody"), { _ in false }),
        ]
        for (name, base, predicate) in cases {
            let expected = all.filter(predicate).map(\.seq)
            for descending in [false, true] {
                var query = base
                query.limit = 997
                query.descending = descending
                let got = try await allPages(store, query)
                #expect(got.map(\.seq) == (descending ? expected.reversed() : expected), "\(name), descending: \(descending)")
                #expect(got.filter { !$0.isVerified }.isEmpty)
            }
        }
        // Runs of buckets from the first bucket on (a rare key's path past the first two):
        // runs of 2 then 4 buckets, clamped at the ends, pages that end inside a run.
        let storeID = store.storeID
        for (name, base, predicate) in cases where try QueryExecution.plan(base).bucketed {
            let expected = all.filter(predicate).map(\.seq)
            for descending in [false, true] {
                for limit in [7, 997] {
                    var plan = try QueryExecution.plan(base)
                    plan.singleBuckets = 0
                    plan.descending = descending
                    plan.limit = limit
                    var got: [Int64] = []
                    while true {
                        let page = try await store.pool.read { [plan] db in
                            try QueryExecution.page(db, plan: plan, storeID: storeID, keys: keys)
                        }
                        #expect(page.entries.filter { !$0.isVerified }.isEmpty)
                        got += page.entries.map(\.seq)
                        guard let next = page.nextCursor else { break }
                        if descending { plan.upperSeq = next.seq - 1 } else { plan.lowerSeq = next.seq + 1 }
                    }
                    #expect(got == (descending ? expected.reversed() : expected), "runs only: \(name), descending: \(descending), limit \(limit)")
                }
            }
        }
        // The limit holds for bucketed lookups too.
        let newestFive = try await store.entries(EntryQuery(limit: 5, descending: true, actor: "user-3")).map(\.seq)
        #expect(newestFive == Array(all.filter { $0.actor == "user-3" }.map(\.seq).suffix(5).reversed()))
        try await store.close()
    }

    @Test("the common filters use the indexes (EXPLAIN QUERY PLAN)")
    func indexesUsed() async throws {
        try await makeStore(at: db, keys: keys, count: 100)
        let store = try await AuditStore.open(at: db, keys: keys)
        let now = AuditTimestamp.now()
        let cases: [(EntryQuery, String)] = [
            (EntryQuery(actor: "user-1"), "USING INDEX audit_entries_actor (<expr>=? AND actor=? AND <expr>>? AND <expr><?)"),
            (EntryQuery(resourceId: "doc-1"), "USING INDEX audit_entries_resource (<expr>=? AND resource_id=? AND <expr>>? AND <expr><?)"),
            (EntryQuery(resourceType: "document", resourceId: "doc-1"), "USING INDEX audit_entries_resource (<expr>=? AND resource_id=? AND <expr>>? AND <expr><?)"),
            // With a tenant too (every lookup through a tenant-scoped handle), still the bucketed
            // index: the tenant's own index would walk all its rows for each bucket.
            (EntryQuery(actor: "user-1", tenant: "t"), "USING INDEX audit_entries_actor (<expr>=? AND actor=? AND <expr>>? AND <expr><?)"),
            (EntryQuery(tenant: "t", resourceId: "doc-1"), "USING INDEX audit_entries_resource (<expr>=? AND resource_id=? AND <expr>>? AND <expr><?)"),
            (EntryQuery(actor: "user-1", tenant: "t", recordedAt: now..<now), "USING INDEX audit_entries_actor (<expr>=? AND actor=? AND <expr>>? AND <expr><?)"),
            (EntryQuery(tenant: "t", recordedAt: now..<now), "USING COVERING INDEX audit_entries_tenant_time (tenant=? AND recorded_at>? AND recorded_at<?)"),
            (EntryQuery(recordedAt: now..<now), "USING COVERING INDEX audit_entries_recorded_at (recorded_at>? AND recorded_at<?)"),
            (EntryQuery(afterSeq: 10), "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)"),
        ]
        for (query, expected) in cases {
            let plan = try QueryExecution.plan(query)
            let sql = QueryExecution.sql(plan, bucketed: plan.bucketed)
            var arguments: [any DatabaseValueConvertible & Sendable] = [Int64(1), Int64.max]
            if plan.bucketed { arguments.append(Int64(0)) }
            arguments += plan.bindings + [Int64(100)]
            let finalArguments = arguments
            let details = try await store.pool.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: StatementArguments(finalArguments))
                    .map { $0["detail"] as String }
            }
            #expect(details.contains { $0.contains(expected) }, "\(expected): \(details)")
            if plan.bucketed {
                // One bucket's entries of a key are in seq order in the index (migration 0011's key
                // seq >> 0): read in the page's order, never sorted.
                #expect(!details.contains { $0.contains("TEMP B-TREE") }, "\(details)")
            }
        }
        // A run of buckets seeks each bucket of the run in the same index, reading seqs only.
        for (query, expected) in [
            (EntryQuery(actor: "user-1"), "SEARCH audit_entries USING COVERING INDEX audit_entries_actor (<expr>=? AND actor=? AND <expr>>? AND <expr><?)"),
            (EntryQuery(resourceId: "doc-1"), "SEARCH audit_entries USING COVERING INDEX audit_entries_resource (<expr>=? AND resource_id=? AND <expr>>? AND <expr><?)"),
            (EntryQuery(actor: "user-1", tenant: "t"), "SEARCH audit_entries USING INDEX audit_entries_actor (<expr>=? AND actor=? AND <expr>>? AND <expr><?)"),
            // The filters the bucketed indexes hold (migration 0011): still covering, so tested on
            // the entry without reading the row.
            (EntryQuery(actor: "user-1", action: "a", outcome: .failure, severity: .warning),
             "SEARCH audit_entries USING COVERING INDEX audit_entries_actor (<expr>=? AND actor=? AND <expr>>? AND <expr><?)"),
            (EntryQuery(resourceId: "doc-1", outcome: .success),
             "SEARCH audit_entries USING COVERING INDEX audit_entries_resource (<expr>=? AND resource_id=? AND <expr>>? AND <expr><?)"),
        ] {
            let plan = try QueryExecution.plan(query)
            let arguments: [any DatabaseValueConvertible & Sendable] = [Int64(1), Int64.max, Int64(0), Int64(9)] + plan.bindings + [Int64(100)]
            let details = try await store.pool.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + QueryExecution.bucketRunSQL(plan), arguments: StatementArguments(arguments))
                    .map { $0["detail"] as String }
            }
            #expect(details.contains(expected), "\(expected): \(details)")
        }
        // The scanner finds its newest record through the partial index on AuditDB's own
        // entries, newest first, without reading the log backwards or sorting.
        let scanPlan = try await store.pool.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + RecordedScan.newestFirstSQL(throughTable: false)).map { $0["detail"] as String }
        }
        #expect(scanPlan == ["SEARCH audit_entries USING INDEX audit_entries_engine (action=? AND rowid>?)"])
        try await store.close()
    }

    @Test("cursor pagination stays exact while appends continue")
    func paginationUnderAppends() async throws {
        try await makeStore(at: db, keys: keys, count: 3_000)
        let store = try await AuditStore.open(at: db, keys: keys)
        // Newest-first pages taken while appends run: exactly the rows at or below the first
        // page's top, each once, in order.
        let firstPage = try await store.page(EntryQuery(limit: 50, descending: true, tenant: "tenant-1"))
        let top = try #require(firstPage.entries.first?.seq)
        let writer = Task {
            for batch in 0..<40 {
                try await store.append(contentsOf: (0..<50).map { sampleEvent(3_001 + batch * 50 + $0) })
            }
        }
        var descending = firstPage.entries
        var cursor = firstPage.nextCursor
        var ascending: [AuditEntry] = []
        var ascendingQuery = EntryQuery(limit: 37, tenant: "tenant-1")
        while let next = cursor {
            let page = try await store.page(EntryQuery(limit: 50, descending: true, tenant: "tenant-1", cursor: next))
            descending += page.entries
            cursor = page.nextCursor
            // Interleave oldest-first pages too.
            let up = try await store.page(ascendingQuery)
            ascending += up.entries
            if let nextUp = up.nextCursor { ascendingQuery.cursor = nextUp }
        }
        try await writer.value
        ascending += try await allPages(store, ascendingQuery)
        let all = try await allEntries(store)
        #expect(all.count == 5_000)
        let expectedDown = all.filter { $0.tenant == "tenant-1" && $0.seq <= top }.map(\.seq).reversed()
        #expect(descending.map(\.seq) == Array(expectedDown))
        #expect(ascending.map(\.seq) == all.filter { $0.tenant == "tenant-1" }.map(\.seq))
        try await store.close()
    }

    @Test("a cursor is used with the order it came from; afterSeq and cursor are exclusive; tokens round-trip")
    func cursorRules() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        let store = try await AuditStore.open(at: db, keys: keys)
        let page = try await store.page(EntryQuery(limit: 3, descending: true))
        let cursor = try #require(page.nextCursor)
        #expect(cursor.token == "8.desc")
        #expect(QueryCursor(token: "8.desc") == cursor)
        for bad in ["", "8", "8.up", "-1.asc", "x.asc", "8.asc.1", "٣.asc"] { #expect(QueryCursor(token: bad) == nil, "\(bad)") }
        await #expect { _ = try await store.page(EntryQuery(limit: 3, cursor: cursor)) } throws: {
            ($0 as? AuditError)?.code == .invalidInput && ($0 as? AuditError)?.field == "cursor"
        }
        await #expect { _ = try await store.page(EntryQuery(afterSeq: 2, descending: true, cursor: cursor)) } throws: {
            ($0 as? AuditError)?.code == .invalidInput
        }
        #expect(try await store.page(EntryQuery(limit: 3, descending: true, cursor: cursor)).entries.map(\.seq) == [7, 6, 5])
        let ascending = try #require(QueryCursor(token: "4.asc"))
        await #expect { _ = try await store.page(EntryQuery(limit: 3, descending: true, cursor: ascending)) } throws: {
            ($0 as? AuditError)?.message == "the cursor 4.asc continues an oldest-first query; use it with the same order"
        }
        // A page shorter than the limit is the last: no cursor.
        #expect(try await store.page(EntryQuery(limit: 20)).nextCursor == nil)
        try await store.close()
    }

    @Test("a text filter no entry can match (empty, over its field's limit, a control character) is refused, naming the field")
    func impossibleFiltersRefused() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        let store = try await AuditStore.open(at: db, keys: keys)
        let cases: [(EntryQuery, String, String)] = [
            (EntryQuery(actor: "user-1\n"), "actor", "control character at byte 6"),
            (EntryQuery(tenant: "tenant-\u{85}"), "tenant", "control character at byte 7"),
            (EntryQuery(action: ""), "action", "must not be empty"),
            (EntryQuery(correlationId: String(repeating: "c", count: 257)), "correlationId", "is 257 bytes of UTF-8, over the field's limit of 256"),
            (EntryQuery(resourceId: String(repeating: "r", count: 1_025)), "resourceId", "over the field's limit of 1024"),
            (EntryQuery(resourceType: "doc\u{7F}"), "resourceType", "control character at byte 3"),
        ]
        for (query, field, message) in cases {
            await #expect(performing: { _ = try await store.page(query) }, throws: { error in
                let error = error as? AuditError
                return error?.code == .invalidInput && error?.field == field && error?.message.contains(message) == true
            })
        }
        // At the limit, and with non-ASCII text, a filter is a filter: it matches what it names.
        #expect(try await store.page(EntryQuery(actor: String(repeating: "a", count: 256))).entries.isEmpty)
        #expect(try await store.page(EntryQuery(actor: "user-1")).entries.map(\.seq) == [1, 8])
        // An export takes the same rules, before it writes its access entry.
        let head = try await store.page(EntryQuery(limit: 1, descending: true)).entries.first?.seq
        let out = db + ".export"
        await #expect(performing: { _ = try await store.export(to: out, filter: ExportFilter(actor: "user-1\t")) }, throws: { error in
            (error as? AuditError)?.field == "actor"
        })
        // So is a time range that ends before it starts (a query cannot even express one).
        let now = AuditTimestamp.now()
        let earlier = AuditTimestamp(microsecondsSinceEpoch: now.microsecondsSinceEpoch - 1)
        var reversed = ExportFilter(recordedFrom: now, recordedBefore: earlier)
        await #expect(performing: { _ = try await store.export(to: out, filter: reversed) }, throws: { error in
            (error as? AuditError)?.message == "recordedBefore: the time range ends before it starts"
        })
        reversed = ExportFilter()
        reversed.occurredFrom = now
        reversed.occurredBefore = earlier
        await #expect(performing: { _ = try await store.export(to: out, filter: reversed) }, throws: { error in
            (error as? AuditError)?.field == "occurredBefore"
        })
        #expect(try await store.page(EntryQuery(limit: 1, descending: true)).entries.first?.seq == head)
        #expect(!FileManager.default.fileExists(atPath: out))
        try await store.close()
    }

    @Test("a tenant-scoped handle only ever sees and writes its own tenant")
    func tenantIsolation() async throws {
        try await makeStore(at: db, keys: keys, count: 300)
        let store = try await AuditStore.open(at: db, keys: keys)
        let scoped = store.scoped(toTenant: "tenant-2")
        let mine = try await scoped.entries(EntryQuery(limit: 10_000))
        #expect(mine.count == 100)
        #expect(mine.allSatisfy { $0.tenant == "tenant-2" })
        // Filters narrow within the tenant, never widen beyond it.
        let byActor = try await scoped.entries(EntryQuery(limit: 10_000, actor: "user-1"))
        #expect(!byActor.isEmpty && byActor.allSatisfy { $0.tenant == "tenant-2" && $0.actor == "user-1" })
        #expect(try await scoped.entries(EntryQuery(limit: 10_000, resourceId: "doc-1")).isEmpty)  // doc-1 is tenant-1's
        #expect(try await scoped.entries(EntryQuery(tenant: "tenant-2")).count == 100)
        await #expect { _ = try await scoped.entries(EntryQuery(tenant: "tenant-1")) } throws: {
            ($0 as? AuditError)?.code == .permissionDenied
        }
        var streamed = 0
        for try await entry in scoped.stream(EntryQuery(), pageSize: 7) {
            #expect(entry.tenant == "tenant-2")
            streamed += 1
        }
        #expect(streamed == 100)
        // Appends: recorded under the tenant; another tenant is refused.
        let seq = try await scoped.append(AuditEvent(actor: "a", action: "x"))
        #expect(try await store.entries(EntryQuery(seqs: seq...seq)).first?.tenant == "tenant-2")
        await #expect { _ = try await scoped.append(AuditEvent(actor: "a", action: "x", tenant: "tenant-0")) } throws: {
            ($0 as? AuditError)?.code == .permissionDenied
        }
        try await store.close()
    }

    @Test("tampered rows are never returned as verified: throw by default, or come back marked")
    func tamperedRowsNeverVerified() async throws {
        try await makeStore(at: db, keys: keys, count: 50)
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET actor = 'user-3' WHERE seq = 20;")
        let store = try await AuditStore.open(at: db, keys: keys)
        for query in [EntryQuery(limit: 100), EntryQuery(limit: 100, descending: true), EntryQuery(actor: "user-3"),
                      EntryQuery(seqs: 20...20)] {
            await #expect { _ = try await store.entries(query) } throws: { error in
                let error = error as? AuditError
                return error?.code == .integrityViolation && error?.message.contains("entry 20 failed verification (mac-mismatch at seq 20") == true
            }
        }
        await #expect(throws: AuditError.self) {
            for try await _ in store.stream(EntryQuery(), pageSize: 8) {}
        }
        var marked = EntryQuery(limit: 100)
        marked.unverifiedRows = .mark
        let entries = try await store.entries(marked)
        #expect(entries.count == 50)
        #expect(entries.filter { !$0.isVerified }.map(\.seq) == [20])
        #expect(entries[19].finding?.kind == .macMismatch)
        #expect(entries[19].actor == "user-3")  // shown as stored, flagged
        // Rows on either side are still verified, including the link from 20 to 21.
        #expect(entries[18].isVerified && entries[20].isVerified)
        try await store.close()
        // A deleted row: the row after it cannot be linked, so it is not verified either.
        let other = dir.path("deleted.db")
        try await makeStore(at: other, keys: keys, count: 10)
        try sqlite3Must(other, "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq = 4;")
        let store2 = try await AuditStore.open(at: other, keys: keys)
        var markedAll = EntryQuery(limit: 100)
        markedAll.unverifiedRows = .mark
        let afterDelete = try await store2.entries(markedAll)
        #expect(afterDelete.filter { !$0.isVerified }.map(\.seq) == [5])
        #expect(afterDelete.first { $0.seq == 5 }?.finding?.kind == .missingRows)
        try await store2.close()
    }

    @Test("streaming 120,000 rows (about 150 MB of details) keeps memory bounded", .timeLimit(.minutes(15)))
    func streamingBoundedMemory() async throws {
        let store = try await AuditStore.create(at: db, keys: keys, configuration: {
            var c = AuditStore.Configuration()
            c.durability = .relaxed
            return c
        }())
        let pad = String(repeating: "p", count: 1_200)
        for batch in 0..<12 {
            try await store.append(contentsOf: (0..<10_000).map { i in
                AuditEvent(actor: "a\(i % 50)", action: "bulk", resourceId: "r\(batch)-\(i)", tenant: "big",
                           details: ["pad": .string(pad), "i": .int(Int64(i))])
            })
        }
        try await store.append(AuditEvent(actor: "x", action: "other", tenant: "small"))
        try await store.close()
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        let child = try builtProduct("AuditDBCrashChild")
        let result = try run(child, [db, keyFile, "stream", "big"])
        #expect(result.status == 0, "\(result.stderr)")
        let fields = result.stdout.split(separator: " ").map(String.init)
        #expect(fields.count == 8 && fields[0] == "streamed")
        guard fields.count == 8, let baseline = Int(fields[5]), let peak = Int(fields[7].trimmingCharacters(in: .whitespacesAndNewlines)) else { return }
        #expect(fields[1] == "120000")
        #expect(fields[2] == "1" && fields[3] == "120000")
        // 120,000 entries with 1.2 kB details would need well over 150 MB if held at once.
        #expect(peak - baseline < 48 * 1_024, "peak RSS grew by \(peak - baseline) kB while streaming")
    }
}
