import Foundation
import Testing

@testable import AuditDB

/// Hold entries really tampered with through the sqlite3 shell (triggers dropped): reading the
/// holds refuses with the exact integrity error, and `verify` reports the exact finding.
@Suite("Legal holds: tampering")
struct HoldTamperTests {
    let dir: TempDir
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        db = dir.path("store.db")
    }

    static let refusal = "no holds are returned, since a hold that was removed or changed could let held rows expire. Run `auditdb verify` for a full report, and restore the store from a backup."

    /// Seq 1 ordinary, 2 places hold A, 3 ordinary, 4 releases A, 5 ordinary, 6 places hold B, 7 ordinary.
    func holdLog() async throws {
        let store = try await AuditStore.create(at: db, keys: keys)
        try await store.append(sampleEvent(1))
        let a = try await store.placeHold(.tenant("tenant-1"), reason: "case A", placedBy: "legal")
        try await store.append(sampleEvent(3))
        try await store.releaseHold(id: a.id, reason: "closed", releasedBy: "legal")
        try await store.append(sampleEvent(5))
        _ = try await store.placeHold(.actor("user-3"), reason: "case B", placedBy: "legal")
        try await store.append(sampleEvent(7))
        #expect(try await store.lastSeq() == 7)
        try await store.close()
    }

    /// The error reading the holds gives, with a fresh handle.
    func holdsError() async throws -> AuditError? {
        let store = try await AuditStore.open(at: db, keys: keys)
        var failure: AuditError?
        do {
            let holds = try await store.holds(includeReleased: true)
            Issue.record("the holds were read: \(holds)")
        } catch let error as AuditError {
            #expect(error.code == .integrityViolation)
            failure = error
        }
        try await store.close()
        return failure
    }

    /// Rebuilds audit_entries_engine without row `seq`'s entry and puts its schema text back, as
    /// someone editing the b-tree would: the schema check sees nothing, the index proof does.
    func hideFromEngineIndex(seq: Int64) throws {
        let original = "CREATE INDEX audit_entries_engine ON audit_entries(action) WHERE action >= 'auditdb.' AND action < 'auditdb/'"
        try sqlite3Must(db, """
            DROP INDEX audit_entries_engine;
            \(original) AND seq <> \(seq);
            PRAGMA writable_schema = ON;
            UPDATE sqlite_schema SET sql = '\(original.replacingOccurrences(of: "'", with: "''"))' WHERE name = 'audit_entries_engine';
            """)
    }

    func rowFindings() async throws -> [Finding] {
        try await AuditStore.verify(storeAt: db, keys: keys).findings.filter { $0.seqs != nil }
    }

    @Test("a placement's value changed (the hold moved to another tenant): mac-mismatch, and the holds are refused")
    func placementChanged() async throws {
        try await holdLog()
        try sqlite3Must(db, """
            DROP TRIGGER audit_entries_no_update;
            UPDATE audit_entries SET details = replace(details, 'user-3', 'nobody') WHERE seq = 6;
            """)
        let findings = try await rowFindings()
        #expect(findings.map(\.kind) == [.macMismatch])
        #expect(findings.first?.seqs == 6...6)
        let error = try await holdsError()
        #expect(error?.message == "legal hold entry 6 failed verification (\(findings[0])); \(Self.refusal)")
        #expect(error?.message.hasPrefix("legal hold entry 6 failed verification (mac-mismatch at seq 6: ") == true)
    }

    @Test("a release's reason changed: refused too (no hold entry that fails verification is believed)")
    func releaseChanged() async throws {
        try await holdLog()
        try sqlite3Must(db, """
            DROP TRIGGER audit_entries_no_update;
            UPDATE audit_entries SET details = replace(details, 'closed', 'settled') WHERE seq = 4;
            """)
        let findings = try await rowFindings()
        #expect(findings.map(\.kind) == [.macMismatch])
        #expect(try await holdsError()?.message == "legal hold entry 4 failed verification (\(findings[0])); \(Self.refusal)")
    }

    @Test("a placement's action changed so that the index no longer lists it: the next hold entry names it")
    func placementHiddenByAction() async throws {
        try await holdLog()
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET action = 'document.read' WHERE seq = 2;")
        let findings = try await rowFindings()
        #expect(findings.map(\.kind) == [.macMismatch])
        #expect(findings.first?.seqs == 2...2)
        // Entry 4 (the release) names entry 2 as the hold entry before it.
        #expect(try await holdsError()?.message == "legal hold entry 4 follows hold entry 2, which failed verification (\(findings[0])); \(Self.refusal)")
    }

    @Test("the release entry deleted: verify reports missing-rows, and the holds are refused (the next hold entry names it)")
    func releaseDeleted() async throws {
        try await holdLog()
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq = 4;")
        let findings = try await rowFindings()
        #expect(findings.map(\.kind) == [.missingRows])
        #expect(findings.first?.seqs == 4...4)
        #expect(try await holdsError()?.message == "legal hold entry 6 follows hold entry 4, which is missing from the store (deleted); \(Self.refusal)")
    }

    @Test("a placement deleted together with its release: the hold entry after them names the release")
    func placementAndReleaseDeleted() async throws {
        try await holdLog()
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq IN (2, 4);")
        let findings = try await rowFindings()
        #expect(findings.map(\.kind) == [.missingRows, .missingRows])
        #expect(findings.map(\.seqs) == [2...2, 4...4])
        #expect(try await holdsError()?.message == "legal hold entry 6 follows hold entry 4, which is missing from the store (deleted); \(Self.refusal)")
    }

    @Test("the row just before a hold entry deleted: the hold entry's link cannot be checked, so it is refused")
    func rowBeforeHoldEntryDeleted() async throws {
        try await holdLog()
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq = 5;")
        #expect(try await rowFindings().map(\.seqs) == [5...5])
        #expect(try await holdsError()?.message == "legal hold entry 6 failed verification (missing-rows at seq 5: the row before seq 6 is missing); \(Self.refusal)")
    }

    @Test("a hold entry hidden from the engine index (rebuilt without it, its schema text put back): named by the next one")
    func hiddenFromIndex() async throws {
        try await holdLog()
        try hideFromEngineIndex(seq: 4)
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.indexMismatch])
        #expect(try await holdsError()?.message == "legal hold entry 6 follows hold entry 4, which the index audit_entries_engine does not list (the index was edited: `auditdb verify` reports index-mismatch; `auditdb repair-indexes` rebuilds it); \(Self.refusal)")
    }

    @Test("the newest placement hidden from the engine index, older than the cut-off: expiry finds it as it reads the candidates, and refuses with nothing expired")
    func newestPlacementHiddenOlderThanCutoff() async throws {
        try await holdLog()
        try hideFromEngineIndex(seq: 6)
        let store = try await AuditStore.open(at: db, keys: keys)
        let policy = try RetentionPolicy(parsingDefault: "1d", tenants: [:])
        let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 86_400_000_000)
        for dryRun in [true, false] {
            do {
                let report = try await store.applyRetention(policy, now: later, dryRun: dryRun)
                Issue.record("expiry ran: \(report)")
            } catch let error as AuditError {
                #expect(error.code == .integrityViolation)
                #expect(error.message == "legal hold entry 6 is not listed by the index audit_entries_engine (the index was edited: `auditdb verify` reports index-mismatch; `auditdb repair-indexes` rebuilds it); \(Self.refusal)")
            }
        }
        #expect(try await store.lastSeq() == 7)
        try await store.close()
        #expect(try await AuditStore.verify(storeAt: db, keys: keys).findings.map(\.kind) == [.indexMismatch])
        #expect(try sqlite3Shell(db, "SELECT count(*) FROM audit_entries;").stdout == "7\n")
    }

    @Test("the newest placement hidden from the engine index, newer than the cut-off: expiry (which trusts the index past the rows it reads) expires its held row; verify reports index-mismatch and the retention-violation")
    func newestPlacementHiddenNewerThanCutoff() async throws {
        try await holdLog()
        try hideFromEngineIndex(seq: 6)
        // docs/retention.md, "What is proven": a hold entry newer than the rows expiry reads,
        // hidden from the index, looks like none; expiry must run behind a full pass. Here it
        // does not: the cut-off is row 6's time, so rows 1, 3 and 5 go, row 3 (user-3) under hold B.
        let placed = try #require(Int64(try sqlite3Shell(db, "SELECT recorded_at FROM audit_entries WHERE seq = 6;").stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let store = try await AuditStore.open(at: db, keys: keys)
        let policy = try RetentionPolicy(parsingDefault: "1d", tenants: [:])
        let report = try await store.applyRetention(policy, now: AuditTimestamp(microsecondsSinceEpoch: placed + 86_400_000_000))
        #expect(report.expired == 3)  // rows 1, 3 and 5
        try await store.close()
        let findings = try await AuditStore.verify(storeAt: db, keys: keys).findings
        #expect(findings.map(\.kind) == [.indexMismatch, .retentionViolation], "\(findings)")
        #expect(findings.last?.seqs == 3...3)
        #expect(findings.last?.message.contains("legal hold 6") == true, "\(findings)")
    }

    @Test("a copy of a hold entry below seq 1: not part of the log, so the holds read as before and expiry runs; verify reports unexpected-rows")
    func holdEntryCopiedBelowOne() async throws {
        try await holdLog()
        let columns = try sqlite3Shell(db, "SELECT group_concat(name, ', ') FROM pragma_table_info('audit_entries') WHERE name <> 'seq';").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try sqlite3Tamper(db, "INSERT INTO audit_entries (seq, \(columns)) SELECT -1, \(columns) FROM audit_entries WHERE seq = 6;",
                          around: "audit_entries_next_seq_only")
        let store = try await AuditStore.open(at: db, keys: keys)
        let holds = try await store.holds(includeReleased: true)
        #expect(holds.map(\.id) == [2, 6])
        let policy = try RetentionPolicy(parsingDefault: "1d", tenants: [:])
        let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 86_400_000_000)
        #expect(try await store.applyRetention(policy, now: later, dryRun: true).held == 1)  // row 3, user-3, under hold B
        try await store.close()
        let findings = try await AuditStore.verify(storeAt: db, keys: keys).findings
        #expect(findings.map(\.kind) == [.unexpectedRows], "\(findings)")
    }

    @Test("the newest hold entry deleted, rows after it: verify reports missing-rows; the holds read without it (documented limit)")
    func newestHoldEntryDeleted() async throws {
        try await holdLog()
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq = 6;")
        #expect(try await rowFindings().map(\.kind) == [.missingRows])
        #expect(try await rowFindings().map(\.seqs) == [6...6])
        // docs/retention.md, "What is proven": like a cut tail, only verify sees it. Expiry runs
        // behind a verification for that reason.
        let store = try await AuditStore.open(at: db, keys: keys)
        #expect(try await store.activeHolds().isEmpty)
        try await store.close()
    }

    @Test("refused for every reader: placing still works, releasing and listing throw the same error")
    func damagedStoreStillTakesPlacements() async throws {
        try await holdLog()
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET details = replace(details, 'user-3', 'nobody') WHERE seq = 6;")
        let store = try await AuditStore.open(at: db, keys: keys)
        let placed = try await store.placeHold(.tenant("bank"), reason: "case C", placedBy: "legal")
        #expect(placed.id == 8)
        await #expect {
            try await store.releaseHold(id: placed.id, reason: "x", releasedBy: "legal")
        } throws: { error in
            (error as? AuditError)?.code == .integrityViolation
                && (error as? AuditError)?.message.hasPrefix("legal hold entry 6 failed verification (mac-mismatch at seq 6: ") == true
        }
        await #expect(throws: AuditError.self) { try await store.activeHolds() }
        #expect(try await store.lastSeq() == 8)
        try await store.close()
    }
}
