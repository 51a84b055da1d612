import AuditDBTestSupport
import Foundation
import GRDB
import Testing

@testable import AuditDB

/// A row moved by someone with the file to the last possible seq (2^63 − 1), with the triggers
/// put back verbatim: every reader reports it or refuses with a typed error; none traps on seq
/// arithmetic, none walks the 2^49 empty index buckets between the log and it. (Found by a sweep
/// writing unexpected values into every column of every table, 2026-12-05.)
@Suite("A row at the last possible seq")
struct FarSeqTests {
    let dir: TemporaryDirectory
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
        db = dir.path("store.db")
    }

    /// Moves rows with `audit_entries_no_update` dropped and put back verbatim.
    func tamper(_ sql: String) throws { try sqlite3Tamper(db, sql, around: "audit_entries_no_update") }

    @Test("verify: the rows after it are missing and the row fails its MAC, exactly; the same at the log's end")
    func verifyReports() async throws {
        try await makeStore(at: db, keys: keys, count: 12)
        try tamper("UPDATE audit_entries SET seq = 9223372036854775807 WHERE seq = 5;")
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.missingRows, .missingRows, .macMismatch], "\(report)")
        #expect(report.findings.map(\.seqs) == [5...5, 13...(Int64.max - 1), Int64.max...Int64.max])
        #expect(report.findings[1].message == "9223372036854775794 row(s) missing before seq 9223372036854775807 (removed)")
        #expect(report.lastSeq == .max)
    }

    @Test("append, checkpoint and scan refuse with a typed error; the scan still reports what it found")
    func writersRefuse() async throws {
        try await makeStore(at: db, keys: keys, count: 12)
        try tamper("UPDATE audit_entries SET seq = 9223372036854775807 WHERE seq = 12;")
        let store = try await AuditStore.open(at: db, keys: keys)
        let append = await #expect(throws: AuditError.self) { try await store.append(sampleEvent(13)) }
        #expect(append?.code == .integrityViolation)
        #expect(append?.message.contains("the last row of the log has seq 9223372036854775807, which leaves no seq to append at") == true, "\(String(describing: append))")
        let checkpoint = await #expect(throws: AuditError.self) { try await store.checkpoint(signer: try testSigner()) }
        #expect(checkpoint?.code == .integrityViolation, "\(String(describing: checkpoint))")
        try await store.close()
    }

    @Test("actor and resource pages end, in both orders and from a cursor, without repeating a row")
    func bucketedPagesEnd() async throws {
        try await makeStore(at: db, keys: keys, count: 40)
        // Row 7 (actor user-0, resource doc-7) moves to the last bucket there is.
        try tamper("UPDATE audit_entries SET seq = 9223372036854775807 WHERE seq = 7;")
        let store = try await AuditStore.open(at: db, keys: keys)
        let actorSeqs: [Int64] = [14, 21, 28, 35]  // user-0: i % 7 == 0, row 7 moved away
        var query = EntryQuery(limit: 10, actor: "user-0")
        query.unverifiedRows = .mark
        let ascending = try await store.page(query)
        #expect(ascending.entries.map(\.seq) == actorSeqs + [.max])
        #expect(ascending.entries.last?.finding?.kind == .macMismatch)
        query.afterSeq = 35
        #expect(try await store.page(query).entries.map(\.seq) == [.max])
        query.afterSeq = .max - 1
        #expect(try await store.page(query).entries.map(\.seq) == [.max])
        query.afterSeq = nil
        query.descending = true
        #expect(try await store.page(query).entries.map(\.seq) == [.max] + actorSeqs.reversed())
        // Row 8's predecessor is gone: it is returned marked.
        var resource = EntryQuery(limit: 10)
        resource.resourceId = "doc-8"
        resource.unverifiedRows = .mark
        resource.afterSeq = 8
        #expect(try await store.page(resource).entries.isEmpty)
        resource.afterSeq = nil
        let page = try await store.page(resource)
        #expect(page.entries.map(\.seq) == [8])
        #expect(page.entries.first?.finding?.kind == .missingRows)
        resource.descending = true
        #expect(try await store.page(resource).entries.map(\.seq) == [8])
        try await store.close()
    }

    @Test("grdb_migrations with its first record edited: verify reports the schema findings (it threw 'no such table')")
    func firstMigrationRecordEdited() async throws {
        try await makeStore(at: db, keys: keys, count: 3)
        try sqlite3Must(db, "UPDATE grdb_migrations SET identifier = 'abc' WHERE identifier = '0001-initial';")
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.schemaTampered, .schemaTampered], "\(report)")
        #expect(report.findings.first?.message == "unknown migrations recorded: abc (newer AuditDB, or tampering)")
        #expect(report.findings.last?.message.hasSuffix("a migration record was removed or edited") == true)
    }
}

extension FarSeqTests {
    @Test("rows below seq 1 with the last row at 2^63 - 1: no candidate seq past it is tried (the step-5 search trapped)")
    func rowsBelowOneWithLastAtMax() async throws {
        try await makeStore(at: db, keys: keys, count: 12)
        try tamper("UPDATE audit_entries SET seq = 9223372036854775807 WHERE seq = 12; UPDATE audit_entries SET seq = -5 WHERE seq = 11;")
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.unexpectedRows, .missingRows, .macMismatch], "\(report)")
        #expect(report.findings.map(\.seqs) == [-5...(-5), 11...(Int64.max - 1), Int64.max...Int64.max])
    }

    @Test("a tenant + time page whose window ends inside the segment that ends at 2^63 - 1 (its binary search overflowed)")
    func timeWindowEndingAtMax() async throws {
        try await makeStore(at: db, keys: keys, count: 6)
        let times = try sqlite3Shell(db, "SELECT recorded_at FROM audit_entries ORDER BY seq;").stdout
            .split(separator: "\n").compactMap { Int64($0) }
        #expect(times.count == 6 && times == times.sorted())
        try tamper("UPDATE audit_entries SET seq = 9223372036854775807 WHERE seq = 6;")
        let reopened = try await AuditStore.open(at: db, keys: keys)
        for descending in [false, true] {
            var query = EntryQuery(limit: 10, descending: descending)
            query.tenant = "tenant-0"  // rows 3 and 6 (i % 3 == 0)
            query.unverifiedRows = .mark
            // Up to row 6's time, exclusive: the moved row is at or past the window's end.
            query.recordedAt = AuditTimestamp(microsecondsSinceEpoch: times[0])..<AuditTimestamp(microsecondsSinceEpoch: times[5])
            #expect(try await reopened.page(query).entries.map(\.seq) == (times[2] < times[5] ? [3] : []))
            query.recordedAt = AuditTimestamp(microsecondsSinceEpoch: times[0])..<AuditTimestamp(microsecondsSinceEpoch: times[5] + 1)
            let both = try await reopened.page(query).entries
            #expect(both.map(\.seq) == (descending ? [.max, 3] : [3, .max]))
            #expect(both.first { $0.seq == .max }?.finding?.kind == .macMismatch)
        }
        try await reopened.close()
    }
}
