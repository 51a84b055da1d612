import GRDB
import Testing

@testable import AuditDB

/// Legal holds through the library: placing, releasing and listing as signed entries, the
/// matching rules, the errors, and the index the holds are read through.
@Suite("Legal holds")
struct LegalHoldTests {
    let dir: TempDir
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        db = dir.path("store.db")
    }

    @Test("place, release and list: each a signed entry; the id is the placing seq; the store verifies intact")
    func placeReleaseList() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        let store = try await AuditStore.open(at: db, keys: keys)
        let tenantHold = try await store.placeHold(.tenant("tenant-1"), reason: "case 2026-114", placedBy: "legal:dana")
        #expect(tenantHold.id == 11)
        #expect(tenantHold.isActive)
        let resourceHold = try await store.placeHold(.resource(type: "document", id: "doc-7"), reason: "subpoena 7", placedBy: "legal:eve")
        #expect(resourceHold.id == 12)
        #expect(try await store.activeHolds() == [tenantHold, resourceHold])

        let released = try await store.releaseHold(id: 11, reason: "case closed", releasedBy: "legal:dana")
        #expect(released.id == 11)
        #expect(released.release?.seq == 13)
        #expect(released.release?.releasedBy == "legal:dana")
        #expect(released.release?.reason == "case closed")
        #expect(!released.isActive)
        #expect(try await store.activeHolds() == [resourceHold])
        #expect(try await store.holds(includeReleased: true) == [released, resourceHold])

        // What the log holds, byte for byte: the entries' details are part of the format.
        let entries = try await store.entries(EntryQuery(seqs: 11...13))
        #expect(entries.map(\.action) == ["auditdb.hold.placed", "auditdb.hold.placed", "auditdb.hold.released"])
        #expect(entries.map(\.actor) == ["legal:dana", "legal:eve", "legal:dana"])
        #expect(entries.map(\.resourceType) == ["legal-hold", "legal-hold", "legal-hold"])
        #expect(entries.map(\.resourceId) == [nil, nil, "11"])
        #expect(entries.map(\.severity) == [.notice, .notice, .notice])
        #expect(entries.map(\.detailsJSON) == [
            #"{"field":"tenant","previousHoldEntry":0,"reason":"case 2026-114","value":"tenant-1"}"#,
            #"{"field":"resource","previousHoldEntry":11,"reason":"subpoena 7","resourceType":"document","value":"doc-7"}"#,
            #"{"holdId":11,"previousHoldEntry":12,"reason":"case closed"}"#,
        ])
        #expect(tenantHold.placedAt == entries[0].recordedAt)
        #expect(released.release?.releasedAt == entries[2].recordedAt)
        try await store.close()

        // Read back by a fresh handle: the log is the only place holds live.
        let reopened = try await AuditStore.open(at: db, keys: keys)
        #expect(try await reopened.holds(includeReleased: true) == [released, resourceHold])
        #expect(try await reopened.verify().isIntact)
        try await reopened.close()
    }

    @Test("a store without holds has none; the hold actions stay reserved to AuditDB")
    func noHoldsAndReserved() async throws {
        try await makeStore(at: db, keys: keys, count: 3)
        let store = try await AuditStore.open(at: db, keys: keys)
        #expect(try await store.activeHolds().isEmpty)
        #expect(try await store.holds(includeReleased: true).isEmpty)
        for action in ["auditdb.hold.placed", "auditdb.hold.released", "AuditDB.Hold.Released"] {
            await #expect {
                try await store.append(AuditEvent(actor: "mallory", action: action, resourceId: "11"))
            } throws: { error in
                (error as? AuditError)?.message == "actions starting with \"auditdb.\" are reserved for AuditDB's own entries; choose another action name"
            }
        }
        #expect(try await store.lastSeq() == 3)
        try await store.close()
    }

    @Test("releasing twice, an unknown id, or the id of an entry that is not a placement: typed errors, nothing written")
    func releaseErrors() async throws {
        try await makeStore(at: db, keys: keys, count: 2)
        let store = try await AuditStore.open(at: db, keys: keys)
        let hold = try await store.placeHold(.actor("user-1"), reason: "case 1", placedBy: "legal")
        let released = try await store.releaseHold(id: hold.id, reason: "done", releasedBy: "legal")
        let last = try await store.lastSeq()
        do {
            try await store.releaseHold(id: hold.id, reason: "again", releasedBy: "legal")
            Issue.record("released twice")
        } catch let error as AuditError {
            #expect(error.code == .holdAlreadyReleased)
            #expect(error.field == "id")
            #expect(error.message == "legal hold 3 was already released by entry 4 at \(released.release!.releasedAt.iso8601); nothing was written")
        }
        for id: Int64 in [99, 1, 4, 0, -1] {  // unknown, an ordinary row, the release entry, out of range
            do {
                try await store.releaseHold(id: id, reason: "x", releasedBy: "legal")
                Issue.record("released \(id)")
            } catch let error as AuditError {
                #expect(error.code == .holdNotFound)
                #expect(error.message == "no legal hold has id \(id) (a hold's id is the seq of the entry that placed it); list the holds with `auditdb hold list --all`")
            }
        }
        #expect(try await store.lastSeq() == last)
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("a closed store refuses placing and releasing as it refuses appends")
    func closedStore() async throws {
        try await makeStore(at: db, keys: keys, count: 1)
        let store = try await AuditStore.open(at: db, keys: keys)
        try await store.close()
        do {
            _ = try await store.placeHold(.tenant("t"), reason: "r", placedBy: "p")
            Issue.record("placed on a closed store")
        } catch let error as AuditError {
            #expect(error.code == .closed)
            #expect(error.message == "the store is closed; open it again to place a legal hold")
        }
        await #expect {
            try await store.releaseHold(id: 1, reason: "r", releasedBy: "p")
        } throws: { error in
            (error as? AuditError)?.message == "the store is closed; open it again to release legal hold 1"
        }
    }

    @Test("invalid holds are refused naming the field, before anything is written",
          arguments: [
              (LegalHold.Matcher.tenant(""), "r", "p", "tenant", "tenant: must not be empty (no row holds an empty value)"),
              (.actor("a\u{1B}[31m"), "r", "p", "actor", "actor: contains a control character at byte 1 (newlines, tabs, NUL and escape sequences are not allowed)"),
              (.resource(type: "doc", id: String(repeating: "r", count: 1_025)), "r", "p", "resourceId", "resourceId: is 1025 bytes of UTF-8; the limit is 1024 (nothing is truncated)"),
              (.resource(type: "", id: "doc-1"), "r", "p", "resourceType", "resourceType: must not be empty (no row holds an empty value)"),
              (.correlationId("c\n"), "r", "p", "correlationId", "correlationId: contains a control character at byte 1 (newlines, tabs, NUL and escape sequences are not allowed)"),
              (.tenant("t"), "", "p", "reason", "reason: must not be empty: say why (a case or ticket number)"),
              (.tenant("t"), "   ", "p", "reason", "reason: must not be empty: say why (a case or ticket number)"),
              (.tenant("t"), "line\nbreak", "p", "reason", "reason: contains a control character at byte 4 (newlines, tabs, NUL and escape sequences are not allowed)"),
              (.tenant("t"), String(repeating: "é", count: 513), "p", "reason", "reason: is 1026 bytes of UTF-8; the limit is 1024 (nothing is truncated)"),
              (.tenant("t"), "r", "", "placedBy", "placedBy: must not be empty: name who does it"),
              (.tenant("t"), "r", String(repeating: "p", count: 257), "placedBy", "placedBy: is 257 bytes of UTF-8; the limit is 256 (nothing is truncated)"),
          ])
    func invalidPlacements(matcher: LegalHold.Matcher, reason: String, placedBy: String, field: String, message: String) async throws {
        try await makeStore(at: db, keys: keys, count: 1)
        let store = try await AuditStore.open(at: db, keys: keys)
        do {
            _ = try await store.placeHold(matcher, reason: reason, placedBy: placedBy)
            Issue.record("accepted")
        } catch let error as AuditError {
            #expect(error.code == .invalidInput)
            #expect(error.field == field)
            #expect(error.message == message)
        }
        #expect(try await store.lastSeq() == 1)
        try await store.close()
    }

    /// A row's values for the matching table.
    struct RowValues: Sendable, CustomTestStringConvertible {
        var tenant: String?, actor: String?, resourceType: String?, resourceId: String?, correlationId: String?
        var testDescription: String { "\([tenant, actor, resourceType, resourceId, correlationId])" }
    }

    static let row = RowValues(tenant: "acme", actor: "user:42", resourceType: "document", resourceId: "doc-7", correlationId: "req-1")

    @Test("matching: exact values byte for byte; a resource by id, narrowed by type when given; a withheld actor is held",
          arguments: [
              (LegalHold.Matcher.tenant("acme"), row, true),
              (.tenant("Acme"), row, false),  // no case folding
              (.tenant("acme "), row, false),
              (.tenant("acme"), RowValues(actor: "user:42"), false),  // a row without a tenant
              (.actor("user:42"), row, true),
              (.actor("user:4"), row, false),  // no prefix match
              (.actor("user:42"), RowValues(tenant: "acme", actor: nil), true),  // withheld: kept
              (.resource(type: nil, id: "doc-7"), row, true),
              (.resource(type: nil, id: "doc-7"), RowValues(resourceType: "invoice", resourceId: "doc-7"), true),
              (.resource(type: "document", id: "doc-7"), row, true),
              (.resource(type: "invoice", id: "doc-7"), row, false),
              (.resource(type: "document", id: "doc-7"), RowValues(resourceId: "doc-7"), false),  // no type on the row
              (.resource(type: nil, id: "doc-7"), RowValues(resourceType: "document"), false),
              (.resource(type: nil, id: "document"), row, false),  // the type is not the id
              (.correlationId("req-1"), row, true),
              (.correlationId("req-1"), RowValues(tenant: "acme"), false),
              (.tenant("caf\u{E9}"), RowValues(tenant: "cafe\u{301}"), false),  // NFC hold, NFD row: not equal bytes
          ])
    func matching(matcher: LegalHold.Matcher, row: RowValues, expected: Bool) {
        let hold = LegalHold(id: 1, matcher: matcher, reason: "r", placedBy: "p", placedAt: .now(), release: nil)
        #expect(hold.matches(tenant: row.tenant, actor: row.actor, resourceType: row.resourceType, resourceId: row.resourceId,
                             correlationId: row.correlationId) == expected)
    }

    @Test("expiry's question on real rows: old enough under the policy, and not held by an active hold")
    func expiryQuestion() async throws {
        try await makeStore(at: db, keys: keys, count: 12)
        let store = try await AuditStore.open(at: db, keys: keys)
        let byTenant = try await store.placeHold(.tenant("tenant-1"), reason: "case A", placedBy: "legal")
        let byResource = try await store.placeHold(.resource(type: "document", id: "doc-2"), reason: "case B", placedBy: "legal")
        try await store.releaseHold(id: byResource.id, reason: "closed", releasedBy: "legal")
        let holds = try await store.holds(includeReleased: true)
        let rows = try await store.entries(EntryQuery(seqs: 1...12))
        let policy = try RetentionPolicy(parsingDefault: "1h", tenants: ["tenant-0": "forever"])
        let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 3_600_000_000)
        let going = rows.filter { policy.allowsExpiry(of: $0, now: later, holds: holds) }.map(\.seq)
        // sampleEvent(i): tenant-(i % 3), resource doc-i. Tenant 0 is kept for ever, tenant 1 is held,
        // doc-2 (tenant 2) was held and released.
        #expect(going == [2, 5, 8, 11])
        #expect(rows.filter { byTenant.matches($0) }.map(\.seq) == [1, 4, 7, 10])
        #expect(rows.filter { policy.allowsExpiry(of: $0, now: .now(), holds: holds) }.isEmpty)  // nothing is an hour old
        try await store.close()
    }

    @Test("concurrent placements and releases keep one chain of hold entries")
    func concurrentWrites() async throws {
        try await makeStore(at: db, keys: keys, count: 5)
        let store = try await AuditStore.open(at: db, keys: keys)
        let first = try await store.placeHold(.tenant("t0"), reason: "r", placedBy: "p")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 1...16 {
                group.addTask { _ = try await store.placeHold(.tenant("t\(i)"), reason: "r\(i)", placedBy: "p") }
                group.addTask { try await store.append(sampleEvent(i)) }
            }
            group.addTask { try await store.releaseHold(id: first.id, reason: "done", releasedBy: "p") }
            try await group.waitForAll()
        }
        let holds = try await store.holds(includeReleased: true)
        #expect(holds.count == 17)
        #expect(holds.filter(\.isActive).count == 16)
        #expect(Set(holds.map(\.matcher.value)) == Set((0...16).map { "t\($0)" }))
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("the holds are read through the index on AuditDB's own entries, not by scanning the log")
    func indexUsed() async throws {
        try await makeStore(at: db, keys: keys, count: 100)
        let store = try await AuditStore.open(at: db, keys: keys)
        _ = try await store.placeHold(.tenant("t"), reason: "r", placedBy: "p")
        let (all, newest, table) = try await store.pool.read { db in
            (try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + HoldLog.entriesSQL(throughTable: false)).map { $0["detail"] as String },
             try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + HoldLog.newestSQL(throughTable: false)).map { $0["detail"] as String },
             try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + HoldLog.entriesSQL(throughTable: true)).map { $0["detail"] as String })
        }
        #expect(all == ["SEARCH audit_entries USING COVERING INDEX audit_entries_engine (action=? AND rowid>?)", "USE TEMP B-TREE FOR ORDER BY"])
        #expect(newest == ["SEARCH audit_entries USING INDEX audit_entries_engine (action=? AND rowid>?)"])
        // Verification's full pass, when its index proof did not prove that index: every row from seq 1.
        #expect(table == ["SEARCH audit_entries USING INTEGER PRIMARY KEY (rowid>?)"])
        try await store.close()
    }

    @Test("a legacy row that used a hold action is refused by adoption: it can neither place nor release a hold")
    func legacyRowWithAHoldActionIsRefused() async throws {
        let store = try await AuditStore.create(at: db, keys: keys)
        let hold = try await store.placeHold(.tenant("acme"), reason: "case", placedBy: "legal")
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE events(id INTEGER PRIMARY KEY, who TEXT, what TEXT, rid TEXT, info TEXT);
            INSERT INTO events VALUES (1, 'mallory', 'auditdb.hold.released', '1', '{"holdId":1,"previousHoldEntry":1,"reason":"forged"}');
            """)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "events",
                                      mapping: [.actor: "who", .action: "what", .resourceId: "rid", .details: "info"])
        adoption.idColumn = "id"
        let refusal = await #expect(throws: AuditError.self) { try await store.adopt(adoption) }
        #expect(refusal?.code == .invalidInput)
        #expect(refusal?.message.contains(#"row 1: action: "auditdb.hold.released" is reserved for AuditDB's own entries"#) == true)
        #expect(try await store.entries(EntryQuery(action: "auditdb.hold.released")).isEmpty)
        #expect(try await store.activeHolds() == [hold])
        try await store.close()
    }
}
