import Foundation
import GRDB
import Testing

@testable import AuditDB

/// Sources that used to be read wrongly without a word: NULL or non-integer ids, a column named
/// rowid, REAL timestamps, UTF-16 files; and the options a run must keep, and what `--then drop`
/// must never destroy.
@Suite("Adopting: strict reading of the source")
struct AdoptionStrictnessTests {
    let dir: TempDir
    let keys: KeyRing

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
    }

    @Test("more NULL ids than a window holds: every later row is still read (NULL ids skipped, named by rowid), in both commit modes")
    func nullIdsAcrossWindows() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE t(id INTEGER, actor TEXT, action TEXT);
            WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 22)
            INSERT INTO t SELECT CASE WHEN i <= 12 THEN NULL ELSE i END, 'u' || i, 'read' FROM c;
            """)
        for commits in [LegacyAdoption.Commits.oneTransaction, .batches] {
            let store = try await AuditStore.create(at: dir.path("s-\(commits.rawValue).db"), keys: keys)
            var adoption = LegacyAdoption(sourcePath: legacy, table: "t", mapping: [.actor: "actor", .action: "action"])
            adoption.idColumn = "id"
            adoption.windowSize = 5  // the first two windows hold only NULL ids
            adoption.skipInvalid = true
            adoption.commits = commits
            let report = try await store.adopt(adoption)
            #expect(report.imported == 10 && report.skippedCount == 12, "\(commits)")
            #expect(report.skipped == Array(1...12))  // their rowids
            #expect(try await allEntries(store).dropFirst().map(\.actor) == (13...22).map { "u\($0)" })
            try await store.close()
        }
        // Without --skip-invalid the run is refused, naming them.
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "t", mapping: [.actor: "actor", .action: "action"])
        adoption.idColumn = "id"
        adoption.windowSize = 5
        await #expect { _ = try await store.adopt(adoption) } throws: {
            ($0 as? AuditError)?.message.contains("12 source row(s) are invalid; nothing was imported. row 1: id: the id is NULL, not an integer (this row is named by its rowid, 1)") == true
        }
        try await store.close()
    }

    @Test("a non-integer id is named by its rowid, not by what it reads as (TEXT '17abc' is not row 17)")
    func nonIntegerIdNamedByRowid() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE t(id, actor TEXT, action TEXT);
            INSERT INTO t VALUES (17, 'a', 'read'), ('17abc', 'b', 'read'), (3.7, 'c', 'read'), (18, 'd', 'read'), (18, 'e', 'read');
            """)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "t", mapping: [.actor: "actor", .action: "action"])
        adoption.idColumn = "id"
        await #expect { _ = try await store.adopt(adoption) } throws: { error in
            guard let message = (error as? AuditError)?.message else { return false }
            return message.contains("row 3: id: the id is the REAL 3.7, not an integer (this row is named by its rowid, 3)")
                && message.contains("row 2: id: the id is the TEXT \"17abc\", not an integer (this row is named by its rowid, 2)")
                && message.contains("row 18: id: duplicate id (the repeat has rowid 5)")
        }
        try await store.close()
    }

    @Test("a column named rowid does not replace the rowid: a repeated id on a window boundary is still reported, nothing lost")
    func columnNamedRowid() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE t(id INTEGER, rowid INTEGER, actor TEXT, action TEXT);
            INSERT INTO t VALUES (1, 0, 'a', 'read'), (2, 0, 'b', 'read'), (2, 0, 'c', 'read'), (3, 0, 'd', 'read');
            """)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "t", mapping: [.actor: "actor", .action: "action", .source: "rowid"])
        adoption.idColumn = "id"
        adoption.windowSize = 2  // the repeat of id 2 opens the second window
        adoption.skipInvalid = true
        let report = try await store.adopt(adoption)
        #expect(report.imported == 3 && report.skipped == [2])
        #expect(try await allEntries(store).dropFirst().map(\.actor) == ["a", "b", "d"])
        // With all three of SQLite's names for it taken, the table is refused.
        try sqlite3Must(legacy, "CREATE TABLE u(rowid, _rowid_, oid, actor, action);")
        var hidden = LegacyAdoption(sourcePath: legacy, table: "u", mapping: [.actor: "actor", .action: "action"])
        hidden.dropUnmapped = true
        await #expect { _ = try await store.adopt(hidden) } throws: {
            ($0 as? AuditError)?.message.hasPrefix("u has columns named rowid, _rowid_ and oid, which hide its rowid") == true
        }
        try await store.close()
    }

    @Test("a WITHOUT ROWID table and a UTF-16 database are refused with what to do")
    func refusedSources() async throws {
        let legacy = dir.path("legacy.db"), utf16 = dir.path("utf16.db")
        try sqlite3Must(legacy, "CREATE TABLE w(id INTEGER PRIMARY KEY, actor TEXT, action TEXT) WITHOUT ROWID; INSERT INTO w VALUES (1, 'a', 'read');")
        try sqlite3Must(utf16, "PRAGMA encoding = 'UTF-16le'; CREATE TABLE t(actor TEXT, action TEXT); INSERT INTO t VALUES ('a', 'read');")
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var withoutRowid = LegacyAdoption(sourcePath: legacy, table: "w", mapping: [.actor: "actor", .action: "action"])
        withoutRowid.idColumn = "id"
        await #expect { _ = try await store.adopt(withoutRowid) } throws: {
            ($0 as? AuditError)?.message == "w has no rowid (a WITHOUT ROWID table or a view); copy it into an ordinary table first"
        }
        await #expect { _ = try await store.adopt(LegacyAdoption(sourcePath: utf16, table: "t", mapping: [.actor: "actor", .action: "action"])) } throws: {
            ($0 as? AuditError)?.message.hasPrefix("\(utf16) is a UTF-16le database; AuditDB adopts UTF-8 databases only") == true
        }
        // A column whose name is not UTF-8 (raw bytes in the CREATE TABLE): refused, not recorded
        // with replacement characters as a dropped column.
        let badName = dir.path("badname.db")
        let sql = Data("CREATE TABLE b(id INTEGER PRIMARY KEY, actor TEXT, action TEXT, \"a".utf8) + Data([0xFF]) + Data("b\" TEXT);\n".utf8)
        let created = try run("/usr/bin/env", ["sqlite3", badName], stdinBytes: sql)
        #expect(created.status == 0, "\(created.stderr)")
        var dropping = LegacyAdoption(sourcePath: badName, table: "b", mapping: [.actor: "actor", .action: "action"])
        dropping.idColumn = "id"
        dropping.dropUnmapped = true
        await #expect { _ = try await store.adopt(dropping) } throws: {
            ($0 as? AuditError)?.message == "column 4 of b has a name that is not valid UTF-8 (bytes 61ff62); rename it first (ALTER TABLE … RENAME COLUMN)"
        }
        #expect(try await store.lastSeq() == 0)
        try await store.close()
    }

    @Test("REAL timestamps are read as the decimal they print as, exactly; finer than a microsecond is refused, never truncated")
    func realTimestamps() async throws {
        #expect(LegacySource.exactMicroseconds(1109935586.791, shift: 6) == 1_109_935_586_791_000)
        #expect(LegacySource.exactMicroseconds(1709284522.123456, shift: 6) == 1_709_284_522_123_456)
        #expect(LegacySource.exactMicroseconds(1709284522.1234567, shift: 6) == nil)
        #expect(LegacySource.exactMicroseconds(1.7e9, shift: 3) == 1_700_000_000_000)
        #expect(LegacySource.exactMicroseconds(1e-06, shift: 6) == 1)
        #expect(LegacySource.exactMicroseconds(2.5e-06, shift: 6) == nil)
        #expect(LegacySource.exactMicroseconds(-1.5, shift: 6) == -1_500_000)
        #expect(LegacySource.exactMicroseconds(0.0, shift: 0) == 0)
        #expect(LegacySource.exactMicroseconds(0.5, shift: 0) == nil)
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE t(id INTEGER PRIMARY KEY, ts REAL, actor TEXT, action TEXT);
            INSERT INTO t VALUES (1, 1109935586.791, 'a', 'read'), (2, 1709284522.1234567, 'b', 'read');
            """)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "t", mapping: [.actor: "actor", .action: "action", .occurredAt: "ts"])
        adoption.timestampFormat = .unixSeconds
        adoption.idColumn = "id"
        await #expect { _ = try await store.adopt(adoption) } throws: {
            ($0 as? AuditError)?.message.contains("row 2: occurredAt: 1709284522.1234567 as unix-seconds is finer than a microsecond") == true
        }
        adoption.skipInvalid = true
        _ = try await store.adopt(adoption)
        #expect(try await allEntries(store).dropFirst().map { $0.occurredAt?.microsecondsSinceEpoch } == [1_109_935_586_791_000])
        try await store.close()
    }

    @Test("continuing a run with other options is refused; the same source through a symbolic link is the same run")
    func runOptionsAndSourceIdentity() async throws {
        let legacy = dir.path("legacy.db"), link = dir.path("link.db")
        try AdoptionTests.workflowTable(in: legacy, count: 50)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: legacy)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: link, table: "audit_events", mapping: AdoptionTests.workflowMapping)
        adoption.idColumn = "id"
        adoption.dropUnmapped = true
        let first = try await store.adopt(adoption)
        #expect(first.imported == 50)
        // The real path, and the table's name in other case: the run is found, complete, nothing imported again.
        adoption.sourcePath = legacy
        adoption.table = "AUDIT_EVENTS"
        let again = try await store.adopt(adoption)
        #expect(again.runSeq == first.runSeq && again.imported == 0 && again.resumedFrom == 50)
        // Other options for the same run.
        var other = adoption
        other.mapping[.details] = nil
        await #expect { _ = try await store.adopt(other) } throws: {
            ($0 as? AuditError)?.message.hasPrefix("run 1 adopted this table with other options (the mapping, the columns left out differ)") == true
        }
        other = adoption
        other.skipInvalid = true
        await #expect { _ = try await store.adopt(other) } throws: {
            ($0 as? AuditError)?.message.hasPrefix("run 1 adopted this table with other options (--skip-invalid differ)") == true
        }
        #expect(try await store.lastSeq() == 51)
        try await store.close()
    }

    @Test("--then drop never destroys what is not in the store: unmapped columns, skipped rows, rows written after the read")
    func dropKeepsWhatIsNotImported() async throws {
        let legacy = dir.path("legacy.db")
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        func tableExists(_ name: String) throws -> Bool {
            try sqlite3Shell(legacy, "SELECT count(*) FROM sqlite_schema WHERE name = '\(name)';").stdout.hasPrefix("1")
        }
        // Unmapped columns: refused before anything is imported.
        try AdoptionTests.workflowTable(in: legacy, count: 20)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "audit_events", mapping: AdoptionTests.workflowMapping)
        adoption.idColumn = "id"
        adoption.dropUnmapped = true
        adoption.afterwards = .drop
        await #expect { _ = try await store.adopt(adoption) } throws: {
            ($0 as? AuditError)?.message.hasPrefix("--then drop would destroy the columns event_type of audit_events, which are not imported") == true
        }
        #expect(try await store.lastSeq() == 0 && tableExists("audit_events"))
        // Skipped rows: imported, the table kept.
        try sqlite3Must(legacy, "CREATE TABLE t(id INTEGER PRIMARY KEY, actor TEXT, action TEXT); INSERT INTO t VALUES (1, 'a', 'read'), (2, NULL, 'read');")
        var skipping = LegacyAdoption(sourcePath: legacy, table: "t", mapping: [.actor: "actor", .action: "action"])
        skipping.skipInvalid = true
        skipping.idColumn = "id"
        skipping.afterwards = .drop
        await #expect { _ = try await store.adopt(skipping) } throws: {
            ($0 as? AuditError)?.message.hasPrefix("run 1 imported 1 rows, but t was not dropped: its 1 row(s) skipped as invalid are only there") == true
        }
        #expect(try tableExists("t"))
        // A row written after the import read the table (a WAL-mode source): not dropped.
        try sqlite3Must(legacy, "PRAGMA journal_mode = WAL; CREATE TABLE v(id INTEGER PRIMARY KEY, actor TEXT, action TEXT); INSERT INTO v VALUES (1, 'a', 'read'), (2, 'b', 'read');")
        var changing = LegacyAdoption(sourcePath: legacy, table: "v", mapping: [.actor: "actor", .action: "action"])
        changing.afterwards = .drop
        changing.idColumn = "id"
        changing.commits = .batches
        changing.batchSize = 1
        await #expect {
            _ = try await store.adopt(changing) { step in
                guard step.imported == 1 else { return }
                do { try sqlite3Must(legacy, "INSERT INTO v VALUES (3, 'late', 'read');") } catch { Issue.record("the late write failed: \(error)") }
            }
        } throws: {
            ($0 as? AuditError)?.message.hasPrefix("v changed after it was read for the import (its rows' digest differs), so it was not dropped") == true
        }
        #expect(try tableExists("v"))
        #expect(try sqlite3Shell(legacy, "SELECT count(*) FROM v;").stdout.hasPrefix("3"))
        try await store.close()
    }

    @Test("--then protect: tables x\"y and xy both end up read-only; a same-named trigger that is not AuditDB's is refused, then the re-run protects")
    func protectNames() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE "x""y"(who TEXT, what TEXT);
            CREATE TABLE xy(who TEXT, what TEXT);
            CREATE TABLE t(who TEXT, what TEXT);
            CREATE TABLE other(n INTEGER);
            INSERT INTO "x""y" VALUES ('alice', 'login');
            INSERT INTO xy VALUES ('bob', 'login');
            INSERT INTO t VALUES ('carol', 'login');
            CREATE TRIGGER t_adopted_no_update BEFORE UPDATE ON other BEGIN SELECT 1; END;
            """)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        _ = try await store.adopt(Self.protecting("x\"y", in: legacy))
        _ = try await store.adopt(Self.protecting("xy", in: legacy))
        for table in ["\"x\"\"y\"", "xy"] { try Self.expectReadOnly(table, in: legacy) }
        // Run again: the triggers found are AuditDB's own, and are kept.
        let rerun = try await store.adopt(Self.protecting("xy", in: legacy))
        #expect(rerun.imported == 0 && rerun.resumedFrom == 1)
        #expect(try Self.triggers(on: "xy", in: legacy) == 2)
        // The application's own trigger, on another table, has the name AuditDB would give t's.
        do {
            _ = try await store.adopt(Self.protecting("t", in: legacy))
            Issue.record("a trigger of another table was taken for t's protection")
        } catch let error as AuditError {
            #expect(error.code == .invalidInput)
            #expect(error.message.contains("t was not protected: a trigger named \"t_adopted_no_update\" already exists on \"other\""), "\(error.message)")
        }
        #expect(try Self.triggers(on: "t", in: legacy) == 0, "a trigger was left on t by the refused protect")
        try sqlite3Must(legacy, "DROP TRIGGER t_adopted_no_update;")
        let again = try await store.adopt(Self.protecting("t", in: legacy))
        #expect(again.imported == 0 && again.resumedFrom == 1, "the rerun imported t again: \(again)")
        try Self.expectReadOnly("t", in: legacy)
        #expect(try await allEntries(store).map(\.actor).filter { $0 == "carol" }.count == 1)
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("--then protect keeps AuditDB's triggers whatever their names' case or an older AuditDB's form, and refuses a same-named one with another body")
    func protectExistingTriggers() async throws {
        let legacy = dir.path("legacy.db")
        let abort = "SELECT RAISE(ABORT, 'this legacy audit table was adopted into AuditDB; it is read-only');"
        try sqlite3Must(legacy, """
            CREATE TABLE old(who TEXT, what TEXT);
            CREATE TABLE "Ev"(who TEXT, what TEXT);
            CREATE TABLE mine(who TEXT, what TEXT);
            INSERT INTO old VALUES ('alice', 'login');
            INSERT INTO "Ev" VALUES ('bob', 'login');
            INSERT INTO mine VALUES ('carol', 'login');
            CREATE TRIGGER IF NOT EXISTS "old_adopted_no_update" BEFORE UPDATE ON "old"
            BEGIN \(abort) END;
            CREATE TRIGGER IF NOT EXISTS "old_adopted_no_delete" BEFORE DELETE ON "old"
            BEGIN \(abort) END;
            CREATE TRIGGER "EV_ADOPTED_NO_UPDATE" BEFORE UPDATE ON "ev"
            BEGIN \(abort) END;
            CREATE TRIGGER mine_adopted_no_delete BEFORE DELETE ON mine BEGIN SELECT 1; END;
            """)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        // The form an earlier AuditDB wrote, and a name in other case: taken as AuditDB's, not added twice.
        _ = try await store.adopt(Self.protecting("old", in: legacy))
        _ = try await store.adopt(Self.protecting("Ev", in: legacy))
        #expect(try Self.triggers(on: "old", in: legacy) == 2)
        #expect(try Self.triggers(on: "Ev", in: legacy) == 2)
        try Self.expectReadOnly("old", in: legacy)
        try Self.expectReadOnly("\"Ev\"", in: legacy)
        // The right name on the right table, but a body that protects nothing.
        do {
            _ = try await store.adopt(Self.protecting("mine", in: legacy))
            Issue.record("a trigger that refuses nothing was taken for mine's protection")
        } catch let error as AuditError {
            #expect(error.message.contains("mine was not protected: a trigger named \"mine_adopted_no_delete\" already exists and is not AuditDB's"),
                    "\(error.message)")
        }
        #expect(try Self.triggers(on: "mine", in: legacy) == 1, "the update trigger made before the refusal was not rolled back")
        try await store.close()
    }

    @Test("INTEGER values in text fields are their decimal text; timestamps that are not ASCII are refused by what they are")
    func integersAndTimestampText() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE log(id INTEGER PRIMARY KEY, who, what TEXT, target, ts TEXT);
            INSERT INTO log VALUES (1, 42, 'login', -9223372036854775808, '2024-01-01T00:00:00Z'),
                (2, -7, 'logout', 0, '2024-01-01 00:00:01'),
                (3, 'dora', 'login', 'r', '२०२४-01-01T00:00:00Z'),
                (4, 'erin', 'login', 'r', CAST(X'32303234C328' AS TEXT)),
                (5, 'finn', 'login', 'r', '2024-01-01T00:00:00.1234567Z');
            """)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "log",
                                      mapping: [.actor: "who", .action: "what", .resourceId: "target", .occurredAt: "ts"])
        adoption.idColumn = "id"
        do {
            _ = try await store.adopt(adoption)
            Issue.record("invalid timestamps were adopted")
        } catch let error as AuditError {
            for expected in ["3 source row(s) are invalid", "row 3: occurredAt: \"२०२४-01-01T00:00:00Z\" is not an RFC 3339 / ISO 8601 time",
                             "row 4: occurredAt: \"2024\u{FFFD}(\" is not an RFC 3339 / ISO 8601 time",
                             "row 5: occurredAt: \"2024-01-01T00:00:00.1234567Z\" has 7 fractional digits"]
            {
                #expect(error.message.contains(expected), "missing \(expected) in \(error.message)")
            }
        }
        adoption.skipInvalid = true
        let report = try await store.adopt(adoption)
        #expect(report.skipped == [3, 4, 5])
        let entries = try await allEntries(store).dropFirst()
        #expect(entries.map(\.actor) == ["42", "-7"])
        #expect(entries.map(\.resourceId) == ["-9223372036854775808", "0"])
        #expect(entries.map { $0.occurredAt?.iso8601 } == ["2024-01-01T00:00:00.000000Z", "2024-01-01T00:00:01.000000Z"])
        try await store.close()
    }

    static func protecting(_ table: String, in legacy: String) -> LegacyAdoption {
        var adoption = LegacyAdoption(sourcePath: legacy, table: table, mapping: [.actor: "who", .action: "what"])
        adoption.afterwards = .protect
        return adoption
    }

    /// UPDATE and DELETE on `table` (as SQL) are refused by AuditDB's triggers.
    static func expectReadOnly(_ table: String, in legacy: String) throws {
        for statement in ["UPDATE \(table) SET who = 'mallory';", "DELETE FROM \(table);"] {
            let result = try sqlite3Shell(legacy, statement)
            #expect(result.stderr.contains("adopted into AuditDB; it is read-only"), "\(statement): \(result.stderr)")
        }
    }

    static func triggers(on table: String, in legacy: String) throws -> Int {
        let escaped = table.replacingOccurrences(of: "'", with: "''")
        let result = try sqlite3Shell(legacy, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = '\(escaped)' COLLATE NOCASE;")
        return try #require(Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), "\(result.stderr)")
    }
}
