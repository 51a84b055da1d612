import CSodium
import Foundation
import GRDB
import Synchronization
import Testing

@testable import AuditDB

@Suite("Adopting legacy audit tables")
struct AdoptionTests {
    let dir: TempDir
    let keys: KeyRing

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
    }

    /// The workflow platform's shape (id, ISO timestamps, JSON details), `count` rows.
    static func workflowTable(in path: String, count: Int) throws {
        try sqlite3Must(path, """
            CREATE TABLE audit_events(id INTEGER PRIMARY KEY, timestamp TEXT, event_type TEXT, user_id TEXT, tenant_id TEXT,
                resource_type TEXT, resource_id TEXT, action TEXT, outcome TEXT, details TEXT);
            WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < \(count))
            INSERT INTO audit_events SELECT i, strftime('%Y-%m-%dT%H:%M:%SZ', 1700000000 + i, 'unixepoch'), 'evt',
                'user-' || (i % 50), 'tenant-' || (i % 4), 'doc', 'd' || i,
                CASE i % 3 WHEN 0 THEN 'read' WHEN 1 THEN 'write' ELSE 'delete' END,
                CASE i % 7 WHEN 0 THEN 'denied' ELSE 'success' END, json_object('i', i, 'event', 'evt') FROM c;
            """)
    }

    static let workflowMapping: [LegacyAdoption.Field: String] = [
        .actor: "user_id", .action: "action", .tenant: "tenant_id", .resourceType: "resource_type",
        .resourceId: "resource_id", .outcome: "outcome", .details: "details", .occurredAt: "timestamp",
    ]

    /// The CLI arguments that adopt the workflow table of `legacy` into `store`.
    static func adoptArguments(store: String, keyFile: String, legacy: String) -> [String] {
        ["migrate", "adopt", "--store", store, "--key-file", keyFile, "--source", legacy, "--table", "audit_events",
         "--id-column", "id", "--drop-unmapped", "--batch-size", "500"]
            + workflowMapping.sorted { $0.key.rawValue < $1.key.rawValue }.map { "--map=\($0.key.rawValue)=\($0.value)" }
    }

    @Test("the source digest is SHA-256 over each row's id and mapped columns as type, length, bytes (recomputed here)")
    func sourceDigestDefinition() async throws {
        let legacy = dir.path("legacy.db"), path = dir.path("s.db")
        try Self.workflowTable(in: legacy, count: 50)
        try sqlite3Must(legacy, "UPDATE audit_events SET tenant_id = NULL WHERE id = 3")  // a NULL column too
        let store = try await AuditStore.create(at: path, keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "audit_events", mapping: Self.workflowMapping)
        adoption.idColumn = "id"
        adoption.dropUnmapped = true
        let report = try await store.adopt(adoption)
        try await store.close()
        // The id, then the mapped columns in LegacyAdoption.Field order, each as
        // u8 SQLite type code || u32 big-endian length || the value's bytes (integers as decimal text).
        let columns = ["id"] + LegacyAdoption.Field.allCases.compactMap { Self.workflowMapping[$0] }
        let queue = try DatabaseQueue(path: legacy)
        let message = try await queue.read { db in
            var bytes: [UInt8] = []
            for row in try Row.fetchAll(db, sql: "SELECT \(columns.joined(separator: ", ")) FROM audit_events ORDER BY id") {
                for value in row.databaseValues {
                    let (type, content): (UInt8, [UInt8]) = switch value.storage {
                    case .null: (5, [])
                    case .int64(let n): (1, Array(String(n).utf8))
                    case .string(let text): (3, Array(text.utf8))
                    default: (0, [])
                    }
                    #expect(type != 0, "the fixture holds only integers, text and NULL")
                    bytes.append(type)
                    bytes += withUnsafeBytes(of: UInt32(content.count).bigEndian) { Array($0) }
                    bytes += content
                }
            }
            return bytes
        }
        var digest = [UInt8](repeating: 0, count: 32)
        crypto_hash_sha256(&digest, message, UInt64(message.count))
        #expect(report.sourceDigest == Hex.encode(digest))
        #expect(message.count > 50 * 9 * 5)
    }

    @Test("the workflow shape, in the store's own file: order, timestamps and provenance kept, verified")
    func workflowShapeInTheSameFile() async throws {
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(sampleEvent(1))  // the store already has an entry
        try Self.workflowTable(in: path, count: 1_000)
        var adoption = LegacyAdoption(sourcePath: path, table: "audit_events", mapping: Self.workflowMapping)
        adoption.idColumn = "id"
        adoption.dropUnmapped = true
        adoption.batchSize = 300
        let report = try await store.adopt(adoption)
        #expect(report.runSeq == 2)
        #expect(report.imported == 1_000 && report.total == 1_000 && report.resumedFrom == 0)
        #expect(report.droppedColumns == ["event_type"])
        let entries = try await allEntries(store)
        #expect(entries.count == 1_002)
        let run = entries[1]
        #expect(run.action == "auditdb.migration.adopt")
        #expect(run.detailsJSON?.contains("\"sourceDigest\":\"\(report.sourceDigest)\"") == true)
        #expect(run.detailsJSON?.contains("\"droppedColumns\":[\"event_type\"]") == true)
        let adopted = Array(entries.dropFirst(2))
        #expect(adopted.allSatisfy { $0.origin == .backSigned(run: 2) })
        #expect(adopted.map(\.resourceId) == (1...1_000).map { "d\($0)" })  // the source's order
        #expect(adopted.first?.occurredAt == AuditTimestamp(iso8601: "2023-11-14T22:13:21Z"))
        #expect(adopted[6].outcome == .denied)  // id 7
        #expect(adopted[0].detailsJSON == #"{"i":1,"event":"evt"}"#)
        #expect(try await store.verify().isIntact)  // the legacy table in the same file is not AuditDB's
        try await store.close()
    }

    @Test("only an ordinary table is adopted: a view, a virtual table, or a table of AuditDB's own (in the store's file or another store's) is refused, nothing written")
    func sourcesRefused() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE base(id INTEGER PRIMARY KEY, who TEXT, what TEXT);
            INSERT INTO base VALUES (1, 'alice', 'a');
            CREATE VIEW vw AS SELECT * FROM base;
            CREATE VIRTUAL TABLE vt USING fts5(who, what);
            INSERT INTO vt VALUES ('bob', 'b');
            """)
        let storePath = dir.path("s.db")
        let store = try await AuditStore.create(at: storePath, keys: keys)
        let other = dir.path("other.db")
        try await (try await AuditStore.create(at: other, keys: keys)).close()
        let cases: [(String, String, String)] = [
            (legacy, "vw", "vw in \(legacy) is a view, not an ordinary table"),
            (legacy, "vt", "vt in \(legacy) is a virtual table, not an ordinary table"),
            (storePath, "grdb_migrations", "grdb_migrations is one of AuditDB's own tables"),
            (other, "audit_key_versions", "audit_key_versions is one of AuditDB's own tables"),
            (legacy, "sqlite_schema", "sqlite_schema in \(legacy) is one of SQLite's own tables (sqlite_…)"),
            (legacy, "SQLITE_MASTER", "SQLITE_MASTER in \(legacy) is one of SQLite's own tables (sqlite_…)"),
        ]
        for (source, table, message) in cases {
            var adoption = LegacyAdoption(sourcePath: source, table: table, mapping: [.actor: "who", .action: "what"])
            adoption.dropUnmapped = true
            await #expect {
                _ = try await store.adopt(adoption)
            } throws: { error in
                let error = error as? AuditError
                return error?.code == .invalidInput && error?.message.hasPrefix(message) == true
            }
        }
        #expect(try await store.lastSeq() == 0)
        try await store.close()
    }

    @Test("one adoption into a store at a time: while another holds the store's adoption lock, adopt is refused, nothing written")
    func oneAdoptionAtATime() async throws {
        let legacy = dir.path("legacy.db"), path = dir.path("s.db")
        try Self.workflowTable(in: legacy, count: 20)
        var configuration = AuditStore.Configuration()
        configuration.busyTimeout = .milliseconds(200)  // how long a second run waits for the lock
        let store = try await AuditStore.create(at: path, keys: keys, configuration: configuration)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "audit_events", mapping: Self.workflowMapping)
        adoption.idColumn = "id"
        adoption.dropUnmapped = true
        // What a concurrent run holds (in this process or another: a flock on an open file of its own).
        let held = try await store.takeAdoptionLock()
        await #expect {
            _ = try await store.adopt(adoption)
        } throws: { error in
            let error = error as? AuditError
            return error?.code == .busy && error?.message == "another adoption into this store is running (it holds "
                + "\(URL(fileURLWithPath: path).resolvingSymlinksInPath().path).adopt-lock); wait for it to end, then run this again: "
                + "it finds that run and resumes it, or has nothing left to do"
        }
        #expect(try await store.lastSeq() == 0)
        // From a second process too (the CLI), through a symbolic link to the store.
        let link = dir.path("link.db")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        let cli = try run(cliPath(), Self.adoptArguments(store: link, keyFile: keyFile, legacy: legacy) + ["--progress", "none", "--busy-timeout", "0.2"])
        #expect(cli.status == 2 && cli.stderr.contains("another adoption into this store is running"), "\(cli.stderr)")
        #expect(try await store.lastSeq() == 0)
        Platform.close(held)
        #expect(try await store.adopt(adoption).imported == 20)
        let mode = try FileManager.default.attributesOfItem(atPath: path + ".adopt-lock")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        try await store.close()
    }

    @Test("adopting again after retention expired some of the run's rows is refused: they would be imported twice")
    func adoptAgainAfterExpiry() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE ev(id INTEGER PRIMARY KEY, who TEXT, what TEXT);
            INSERT INTO ev VALUES (1, 'alice', 'a'), (2, 'bob', 'b'), (3, 'carol', 'c'), (4, 'dave', 'd');
            """)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "ev", mapping: [.actor: "who", .action: "what"])
        adoption.idColumn = "id"
        let first = try await store.adopt(adoption)
        #expect(first.imported == 4)
        let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 86_400_000_000)
        let retention = try await store.applyRetention(try RetentionPolicy(parsingDefault: "1d"), now: later)
        #expect(retention.expired == 3)  // the newest row of the log (dave) stays
        let before = try await store.lastSeq()
        await #expect {
            _ = try await store.adopt(adoption)
        } throws: { error in
            let error = error as? AuditError
            return error?.code == .invalidInput
                && error?.message.contains("was adopted before (run \(first.runSeq)), and retention has expired rows since that run began: 1 of its 4 rows are still in the log") == true
        }
        #expect(try await store.lastSeq() == before)
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("a hand-made log with only a rowid and Unix milliseconds, in another file; then protect it")
    func rowidAndMilliseconds() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE log(ts INTEGER, who TEXT, what TEXT, target TEXT);
            INSERT INTO log VALUES (1700000000123, 'alice', 'login', NULL), (1700000001456, 'bob', 'export', 'report-9'),
                (1700000000999, 'carol', 'logout', NULL);
            """)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "log",
                                      mapping: [.occurredAt: "ts", .actor: "who", .action: "what", .resourceId: "target"])
        adoption.timestampFormat = .unixMilliseconds
        adoption.afterwards = .protect
        let report = try await store.adopt(adoption)
        let entries = try await allEntries(store)
        #expect(entries.dropFirst().map(\.actor) == ["alice", "bob", "carol"])  // rowid order, not time order
        #expect(entries[1].occurredAt?.iso8601 == "2023-11-14T22:13:20.123000Z")
        #expect(entries[2].resourceId == "report-9")
        #expect(entries.dropFirst().allSatisfy { $0.origin == .backSigned(run: report.runSeq) })
        let update = try sqlite3Shell(legacy, "UPDATE log SET who = 'mallory';")
        #expect(update.stderr.contains("adopted into AuditDB; it is read-only"))
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("invalid rows (and reserved actions) are listed by id and nothing is imported, unless --skip-invalid")
    func validation() async throws {
        let legacy = dir.path("legacy.db")
        try Self.workflowTable(in: legacy, count: 12)
        try sqlite3Must(legacy, """
            UPDATE audit_events SET user_id = NULL WHERE id = 3;
            UPDATE audit_events SET details = '{"broken": ' WHERE id = 5;
            UPDATE audit_events SET timestamp = 'yesterday' WHERE id = 7;
            UPDATE audit_events SET user_id = CAST(X'C328' AS TEXT) WHERE id = 9;
            UPDATE audit_events SET action = 'x' || char(10) || 'y' WHERE id = 11;
            UPDATE audit_events SET action = 'AuditDB.key.compromised' WHERE id = 12;
            """)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "audit_events", mapping: Self.workflowMapping)
        adoption.idColumn = "id"
        adoption.dropUnmapped = true
        do {
            _ = try await store.adopt(adoption)
            Issue.record("invalid rows were adopted")
        } catch let error as AuditError {
            #expect(error.code == .invalidInput)
            for expected in ["6 source row(s) are invalid; nothing was imported", "row 3: actor: is NULL",
                             "row 5: details: invalid JSON", "row 7: occurredAt: \"yesterday\" is not an RFC 3339",
                             "row 9: actor: is not valid UTF-8", "row 11: action: contains a control character",
                             "row 12: action: \"AuditDB.key.compromised\" is reserved for AuditDB's own entries"]
            {
                #expect(error.message.contains(expected), "missing \(expected) in \(error.message)")
            }
        }
        #expect(try await store.lastSeq() == 0)
        adoption.skipInvalid = true
        let report = try await store.adopt(adoption)
        #expect(report.skipped == [3, 5, 7, 9, 11, 12])
        #expect(report.imported == 6)
        #expect(try await allEntries(store).dropFirst().map(\.resourceId) == ["d1", "d2", "d4", "d6", "d8", "d10"])
        try await store.close()
    }

    @Test("unmapped columns refuse the run; a missing table or column is named")
    func mappingErrors() async throws {
        let legacy = dir.path("legacy.db")
        try Self.workflowTable(in: legacy, count: 2)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        for (adoption, expected) in [
            (LegacyAdoption(sourcePath: legacy, table: "audit_events", mapping: Self.workflowMapping),
             "columns id, event_type of audit_events are not mapped"),
            (LegacyAdoption(sourcePath: legacy, table: "nope", mapping: Self.workflowMapping), "has no table nope"),
            (LegacyAdoption(sourcePath: legacy, table: "audit_events", mapping: [.actor: "who", .action: "action"]),
             "actor maps to who, which audit_events lacks"),
            (LegacyAdoption(sourcePath: legacy, table: "audit_events", mapping: [.actor: "user_id"]), "map at least actor and action"),
        ] {
            await #expect { _ = try await store.adopt(adoption) } throws: {
                ($0 as? AuditError)?.message.contains(expected) == true
            }
        }
        #expect(try await store.lastSeq() == 0)
        try await store.close()
    }

    /// Killed attempts, then one to the end. In batches each attempt resumes after the last
    /// committed batch; in one transaction (what `automatic` chooses for this empty store) a killed
    /// attempt leaves nothing at all, and the next starts over.
    @Test("killed mid-adoption (a real process, SIGKILL) and run again: every row once, in order, intact",
          arguments: ["batches", "automatic"])
    func resumeAfterKill(commits: String) async throws {
        let legacy = dir.path("legacy.db"), path = dir.path("s.db"), keyFile = dir.path("k.keys")
        try Self.workflowTable(in: legacy, count: 60_000)
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: path, keys: keys, count: 0)
        let arguments = Self.adoptArguments(store: path, keyFile: keyFile, legacy: legacy) + ["--progress", "none", "--commits", commits]
        let cli = try cliPath()
        var random = SeededRandom(seed: 0xAD0)
        var killed = 0
        for _ in 0..<3 {
            let process = TestProcess()
            process.executableURL = URL(fileURLWithPath: cli)
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            usleep(useconds_t(Int.random(in: 150_000...600_000, using: &random)))
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                killed += 1
            }
            process.waitUntilExit()
            if commits == "automatic" {
                let rows = try sqlite3Shell(path, "SELECT count(*) FROM audit_entries;").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(rows == "0" || rows == "60001", "a killed one-transaction run left \(rows) rows")
            }
        }
        let final = try run(cli, arguments)
        #expect(final.status == 0, "\(final.stderr)")
        let store = try await AuditStore.open(at: path, keys: keys)
        let entries = try await allEntries(store)
        try await store.close()
        let runs = entries.filter { $0.action == "auditdb.migration.adopt" }
        #expect(runs.count == 1, "a resumed adoption must reuse its run entry")
        let adopted = entries.filter { $0.origin != .recorded }
        #expect(adopted.count == 60_000)
        #expect(adopted.map(\.resourceId) == (1...60_000).map { "d\($0)" })
        #expect(try await AuditStore.verify(storeAt: path, keys: keys).isIntact)
        #expect(killed > 0, "no attempt was killed mid-way, so resuming was not tested")
        print("adoption resume (\(commits)): \(killed) kill(s) before completion")
    }

    @Test("a source that changed after it was adopted is refused, not imported twice")
    func changedSourceRefused() async throws {
        let legacy = dir.path("legacy.db")
        try Self.workflowTable(in: legacy, count: 10)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "audit_events", mapping: Self.workflowMapping)
        adoption.idColumn = "id"
        adoption.dropUnmapped = true
        let first = try await store.adopt(adoption)
        #expect(try await store.adopt(adoption).imported == 0)  // same source: nothing to do
        try sqlite3Must(legacy, "INSERT INTO audit_events(id, timestamp, user_id, action) VALUES (11, '2026-01-01T00:00:00Z', 'u', 'late');")
        do {
            _ = try await store.adopt(adoption)
            Issue.record("a changed source was adopted again")
        } catch let error as AuditError {
            #expect(error.message.contains("was adopted before (run \(first.runSeq)) and has changed since"))
        }
        #expect(try await store.lastSeq() == 11)  // the run entry and 10 rows, nothing more
        try await store.close()
    }

    @Test("a REAL changed in its 16th significant digit (a microsecond of a Unix time) is a changed source: digest 2 hashes its exact bits")
    func realChangedBeyondFifteenDigits() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE ev(id INTEGER PRIMARY KEY, who TEXT, what TEXT, ts REAL);
            INSERT INTO ev VALUES (1, 'u1', 'a', 1709384512.5), (2, 'u2', 'b', 1709384513.25);
            """)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "ev", mapping: [.actor: "who", .action: "what", .occurredAt: "ts"])
        adoption.idColumn = "id"
        adoption.timestampFormat = .unixSeconds
        let first = try await store.adopt(adoption)
        #expect(first.imported == 2)
        let source = try LegacySource(adoption, busyTimeoutMilliseconds: 1_000)
        let before = try await AuditStore.firstPass(source, validating: false)
        source.close()
        // Both values print alike in SQLite's 15 significant digits: digest 1 cannot tell them apart.
        try sqlite3Must(legacy, "UPDATE ev SET ts = 1709384512.500004 WHERE id = 1;")
        #expect(try sqlite3Shell(legacy, "SELECT ts FROM ev WHERE id = 1;").stdout == "1709384512.5\n")
        let reread = try LegacySource(adoption, busyTimeoutMilliseconds: 1_000)
        let after = try await AuditStore.firstPass(reread, validating: false)
        reread.close()
        #expect(after.legacyDigest == before.legacyDigest && after.digest != before.digest)
        await #expect {
            _ = try await store.adopt(adoption)
        } throws: { error in
            (error as? AuditError)?.message.contains("was adopted before (run \(first.runSeq)) and has changed since") == true
        }
        #expect(try await store.lastSeq() == 3)
        try await store.close()
    }

    @Test("the same rows again from a copy, a hard link or a renamed table are refused, not imported twice; an empty table is not 'the same rows'")
    func sameRowsFromElsewhereRefused() async throws {
        let legacy = dir.path("legacy.db")
        try Self.workflowTable(in: legacy, count: 10)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        func adoption(_ source: String, _ table: String = "audit_events") -> LegacyAdoption {
            var adoption = LegacyAdoption(sourcePath: source, table: table, mapping: Self.workflowMapping)
            adoption.idColumn = "id"
            adoption.dropUnmapped = true
            return adoption
        }
        let first = try await store.adopt(adoption(legacy))
        try FileManager.default.copyItem(atPath: legacy, toPath: dir.path("copy.db"))
        try FileManager.default.linkItem(atPath: legacy, toPath: dir.path("hardlink.db"))
        try FileManager.default.copyItem(atPath: legacy, toPath: dir.path("renamed.db"))
        try sqlite3Must(dir.path("renamed.db"), "ALTER TABLE audit_events RENAME TO events_2025;")
        for (source, table) in [(dir.path("copy.db"), "audit_events"), (dir.path("hardlink.db"), "audit_events"), (dir.path("renamed.db"), "events_2025")] {
            await #expect {
                _ = try await store.adopt(adoption(source, table))
            } throws: { error in
                let error = error as? AuditError
                return error?.code == .invalidInput && error?.message.hasPrefix(
                    "the rows of \(table) in \(AuditStore.sourceName(source)) were adopted before, as audit_events in \(AuditStore.sourceName(legacy)) (run \(first.runSeq)): the same ids and values") == true
            }
        }
        #expect(try await store.lastSeq() == 11)
        // Two empty tables share one digest; neither has rows to import twice.
        try sqlite3Must(dir.path("empty.db"), "CREATE TABLE a(id INTEGER PRIMARY KEY, user_id TEXT, action TEXT); CREATE TABLE b(id INTEGER PRIMARY KEY, user_id TEXT, action TEXT);")
        for table in ["a", "b"] {
            var empty = LegacyAdoption(sourcePath: dir.path("empty.db"), table: table, mapping: [.actor: "user_id", .action: "action"])
            empty.idColumn = "id"
            #expect(try await store.adopt(empty).imported == 0)
        }
        try await store.close()
    }

    @Test("unsigned rows of AuditDB's own shape (codes for outcome and severity) are adopted; duplicate ids are refused; --then drop")
    func auditDBShapedRowsAndDrop() async throws {
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        try sqlite3Must(path, """
            CREATE TABLE unsigned_entries(seq INTEGER, recorded_at INTEGER, actor TEXT, action TEXT, outcome INTEGER, severity INTEGER);
            INSERT INTO unsigned_entries VALUES (1, 1700000000000000, 'a', 'x', 2, 3), (2, 1700000000000001, 'b', 'y', 0, 0),
                (2, 1700000000000002, 'c', 'z', 0, 0);
            """)
        var adoption = LegacyAdoption(sourcePath: path, table: "unsigned_entries", mapping: [
            .occurredAt: "recorded_at", .actor: "actor", .action: "action", .outcome: "outcome", .severity: "severity",
        ])
        adoption.idColumn = "seq"
        adoption.timestampFormat = .unixMicroseconds
        adoption.afterwards = .drop
        await #expect { _ = try await store.adopt(adoption) } throws: {
            ($0 as? AuditError)?.message.contains("row 2: id: duplicate id") == true
        }
        try sqlite3Must(path, "DELETE FROM unsigned_entries WHERE actor = 'c';")
        let report = try await store.adopt(adoption)
        #expect(report.imported == 2)
        let entries = try await store.entries()
        #expect(entries.dropFirst().map(\.outcome) == [.denied, .success])
        #expect(entries.dropFirst().map(\.severity) == [.critical, .info])
        #expect(entries[1].occurredAt?.microsecondsSinceEpoch == 1_700_000_000_000_000)
        // --then drop: dropped only after the verified import.
        let remaining = try sqlite3Shell(path, "SELECT count(*) FROM sqlite_schema WHERE name = 'unsigned_entries';")
        #expect(remaining.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("the CLI: a progress bar with rows/s and ETA when asked (or on a terminal), else one JSON line")
    func cliOutput() async throws {
        let legacy = dir.path("legacy.db"), path = dir.path("s.db"), keyFile = dir.path("k.keys")
        try Self.workflowTable(in: legacy, count: 3_000)
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: path, keys: keys, count: 0)
        let base = Self.adoptArguments(store: path, keyFile: keyFile, legacy: legacy)
        let bar = try run(try cliPath(), base + ["--progress", "bar"])
        #expect(bar.status == 0)
        #expect(bar.stderr.contains("3000/3000 rows") && bar.stderr.contains("rows/s") && bar.stderr.contains("ETA"))
        #expect(bar.stdout.hasPrefix("adopted 3000 row(s) of audit_events as back-signed entries of run 1"))
        let again = try run(try cliPath(), base)  // not a terminal: one JSON line, nothing on stderr
        #expect(again.stderr.isEmpty)
        let summary = try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any]
        #expect(summary?["run"] as? Int == 1 && summary?["imported"] as? Int == 0 && summary?["resumedFrom"] as? Int == 3_000)
    }

    @Test("windows of the source: a duplicate id on a window boundary is reported; both passes agree on the rows")
    func windowBoundaries() async throws {
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, """
            CREATE TABLE log(n INTEGER, who TEXT, what TEXT);
            WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 12)
            INSERT INTO log SELECT i, 'u' || i, 'a' FROM c;
            INSERT INTO log VALUES (5, 'second-5', 'a');
            """)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "log", mapping: [.actor: "who", .action: "what"])
        adoption.idColumn = "n"
        adoption.windowSize = 5  // ids 1-5 | 5, 6, 7, 8, 9 | 10-12: the duplicate opens the second window
        await #expect { _ = try await store.adopt(adoption) } throws: {
            ($0 as? AuditError)?.message.contains("row 5: id: duplicate id") == true
        }
        adoption.skipInvalid = true
        let report = try await store.adopt(adoption)
        #expect(report.skipped == [5])
        #expect(report.imported == 12)
        #expect(try await allEntries(store).dropFirst().map(\.actor) == (1...12).map { "u\($0)" })
        try await store.close()
    }

    @Test("cancelled mid-adoption in batches: adopt stops writing before it throws, and a second run finishes exactly")
    func cancelledAdoptionStopsWriting() async throws {
        let legacy = dir.path("legacy.db"), path = dir.path("s.db")
        try Self.workflowTable(in: legacy, count: 3_000)
        let store = try await AuditStore.create(at: path, keys: keys)
        var adoption = LegacyAdoption(sourcePath: legacy, table: "audit_events", mapping: Self.workflowMapping)
        adoption.idColumn = "id"
        adoption.dropUnmapped = true
        adoption.batchSize = 10
        adoption.windowSize = 500
        adoption.commits = .batches
        // The task cancels itself from the progress callback after the first committed batch.
        let cancelled = SharedCounter()
        let handle = Task<AdoptionReport, any Error>.detached { [store] in
            try await store.adopt(adoption) { _ in
                if cancelled.value.add(1, ordering: .relaxed).newValue == 1 { withUnsafeCurrentTask { $0?.cancel() } }
            }
        }
        await #expect(throws: CancellationError.self) { _ = try await handle.value }
        let count = {
            try await store.entries(EntryQuery(limit: 10_000)).filter { if case .backSigned = $0.origin { true } else { false } }.count
        }
        let atReturn = try await count()
        #expect(atReturn >= 10 && atReturn < 3_000, "some batches committed before the cancel took effect: \(atReturn)")
        #expect(atReturn % 10 == 0, "whole batches only")
        // Nothing keeps writing after adopt has thrown: an append queued behind anything still
        // pending finds the count unchanged, and the second run resumes exactly where the first stopped.
        try await store.append(sampleEvent(1))
        #expect(try await count() == atReturn)
        let report = try await store.adopt(adoption)
        #expect(report.resumedFrom == atReturn)
        #expect(report.imported == 3_000 - atReturn)
        #expect(try await count() == 3_000)
        #expect(report.total == 3_000)
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("a back-signed row changed later is detected like any other")
    func tamperedBackSignedRow() async throws {
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        try Self.workflowTable(in: path, count: 20)
        var adoption = LegacyAdoption(sourcePath: path, table: "audit_events", mapping: Self.workflowMapping)
        adoption.idColumn = "id"
        adoption.dropUnmapped = true
        _ = try await store.adopt(adoption)
        try await store.close()
        try sqlite3Must(path, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET outcome = 0 WHERE seq = 8;")
        let report = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(report.findings.filter { $0.seqs != nil }.map(\.firstSeq) == [8])
        #expect(report.findings.filter { $0.seqs != nil }.map(\.kind) == [.macMismatch])
    }
}
