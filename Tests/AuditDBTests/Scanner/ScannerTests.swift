import AuditDBTestSupport
import Foundation
import GRDB
import Logging
import MetricsTestKit
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing

@testable import AuditDB

/// The integrity scanner: passes on intact and really tampered stores (through the sqlite3
/// shell while the store is open), incremental positions, the recorded history, status,
/// alerts, and the service's lifecycle.
@Suite("Integrity scanner")
struct ScannerTests {
    let dir: TemporaryDirectory
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
        db = dir.path("store.db")
    }

    /// A store with `count` sample rows, opened with a silent logger (scanners log to the store's
    /// logger unless told otherwise, and to `Logger.current`, stderr by default, without one).
    func openStore(count: Int) async throws -> AuditStore {
        try await makeStore(at: db, keys: keys, count: count)
        var configuration = AuditStore.Configuration()
        configuration.logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        return try await AuditStore.open(at: db, keys: keys, configuration: configuration)
    }

    /// Runs `sql` with `trigger` dropped, then puts the trigger back exactly as it was, so
    /// only the rows are changed (the schema check stays quiet).
    func tamper(_ sql: String, around trigger: String) throws {
        try sqlite3Tamper(db, sql, around: trigger)
    }

    func rowFindings(_ report: ScanReport) -> [Finding] { report.integrity.findings.filter { $0.seqs != nil } }

    @Test("full then incremental passes on an intact store: rows checked, recorded history, status")
    func intactPasses() async throws {
        let store = try await openStore(count: 100)
        let scanner = IntegrityScanner(store: store)
        #expect(scanner.status.lastResult == .never)
        let first = try await scanner.scan(.incremental)  // no position yet: runs full
        #expect(first.mode == .full)
        #expect(first.isIntact)
        #expect(first.integrity.rowsChecked == 100)
        #expect(first.recordSeq == 101)
        try await store.append(contentsOf: (101...150).map { sampleEvent($0) })
        let second = try await scanner.scan(.incremental)
        #expect(second.mode == .incremental)
        #expect(second.isIntact)
        // The previous record (seq 101) and the 50 new rows (102...151).
        #expect(second.checkedSeqs == 101...151)
        #expect(second.integrity.rowsChecked == 51)
        #expect(second.recordSeq == 152)
        let status = scanner.status
        #expect(status.passes == 2)
        #expect(status.isHealthy)
        #expect(status.lastMode == .incremental)
        #expect(status.lastRowsVerified == 51)
        #expect(status.verifiedThroughSeq == 151)
        #expect(status.lastFullPassResult == .intact)
        #expect(status.lastFullPassAt != nil)
        // The history is in the store, signed like any row, and readable as a table.
        let history = try await store.recordedScanStatus()
        #expect(history.lastPass?.seq == 152)
        #expect(history.lastPass?.mode == .incremental)
        #expect(history.lastPass?.rowsChecked == 51)
        #expect(history.lastFullPass?.seq == 101)
        #expect(history.lastFullPass?.throughSeq == 100)
        let view = try sqlite3Shell(db, "SELECT seq, mode, from_seq, through_seq, rows_checked, result FROM audit_scan_history;").stdout
        #expect(view == "101|full|1|100|100|intact\n152|incremental|101|151|51|intact\n")
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test(
        "every kind of row tampering is found by full and by incremental passes, naming the seq",
        arguments: ["changed", "deleted", "swapped", "foreign-key-version", "appended-forgery"])
    func tamperingFound(kind: String) async throws {
        let store = try await openStore(count: 60)
        let scanner = IntegrityScanner(store: store, configuration: .init(recordsPasses: false))
        #expect(try await scanner.scan(.full).isIntact)
        // New rows after the verified position (61...90), then tamper with one of them.
        try await store.append(contentsOf: (61...90).map { sampleEvent($0) })
        let expected: (Finding.Kind, Int64)
        switch kind {
        case "changed":
            try tamper("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 75;", around: "audit_entries_no_update")
            expected = (.macMismatch, 75)
        case "deleted":
            try tamper("DELETE FROM audit_entries WHERE seq = 75;", around: "audit_entries_no_delete")
            expected = (.missingRows, 75)
        case "swapped":
            // Two genuine rows exchange places: both carry their own seq in the MAC.
            try tamper("""
                UPDATE audit_entries SET seq = -1 WHERE seq = 75; UPDATE audit_entries SET seq = 75 WHERE seq = 76;
                UPDATE audit_entries SET seq = 76 WHERE seq = -1;
                """, around: "audit_entries_no_update")
            expected = (.macMismatch, 75)
        case "foreign-key-version":
            try tamper("UPDATE audit_entries SET key_version = 9 WHERE seq = 75;", around: "audit_entries_no_update")
            expected = (.unknownKeyVersion, 75)
        default:
            // A row added at the end by someone without the key.
            try sqlite3Must(db, TamperTests.copyRow(90, toSeq: 91))
            expected = (.macMismatch, 91)
        }
        let incremental = try await scanner.scan(.incremental)
        #expect(incremental.mode == .incremental)
        #expect(rowFindings(incremental).first?.kind == expected.0)
        #expect(rowFindings(incremental).first?.firstSeq == expected.1)
        #expect(incremental.integrity.findings.allSatisfy { $0.kind != .schemaTampered })
        let full = try await scanner.scan(.full)
        #expect(rowFindings(full).first?.kind == expected.0)
        #expect(rowFindings(full).first?.firstSeq == expected.1)
        #expect(scanner.status.lastResult == .findings)
        #expect(!scanner.status.isHealthy)
        try await store.close()
    }

    @Test("incremental passes see only new rows (documented); the scheduled full pass finds older damage")
    func incrementalScopeAndFullPass() async throws {
        let store = try await openStore(count: 40)
        let scanner = IntegrityScanner(store: store, configuration: .init(recordsPasses: false))
        #expect(try await scanner.scan(.full).isIntact)
        try tamper("UPDATE audit_entries SET details = '{\"i\":0}' WHERE seq = 10;", around: "audit_entries_no_update")
        try await store.append(sampleEvent(41))
        let incremental = try await scanner.scan(.incremental)
        #expect(incremental.isIntact)
        #expect(incremental.checkedSeqs == 41...41)
        let full = try await scanner.scan(.full)
        #expect(rowFindings(full).map(\.kind) == [.macMismatch])
        #expect(rowFindings(full).first?.firstSeq == 10)
        // Once damage is found, an incremental pass runs full (no pass reports intact over it),
        // until a full pass is intact again.
        try await store.append(sampleEvent(42))
        let after = try await scanner.scan(.incremental)
        #expect(after.mode == .full && rowFindings(after).first?.firstSeq == 10)
        #expect(scanner.status.verifiedThroughSeq == 0)
        try await store.close()
    }

    @Test("damage a full pass recorded is not forgotten by the next incremental pass, in a new scanner (the CLI) too")
    func recordedDamageForcesFullPasses() async throws {
        let store = try await openStore(count: 20)
        // A long-running scanner, with its verified position in memory.
        let running = IntegrityScanner(store: store)
        #expect(try await running.scan(.full).isIntact)
        try tamper("UPDATE audit_entries SET actor = 'evil' WHERE seq = 5;", around: "audit_entries_no_update")
        let found = try await IntegrityScanner(store: store).scan(.full)
        #expect(rowFindings(found).first?.firstSeq == 5)
        try await store.append(sampleEvent(21))
        // A fresh scanner (a new `auditdb scan` process) starts from the store's records: the
        // newest one found damage, so this pass is full and finds it again.
        let next = try await IntegrityScanner(store: store).scan(.incremental)
        #expect(next.mode == .full && rowFindings(next).first?.firstSeq == 5)
        // The running scanner did not find it itself; the store's newest record did: its next
        // incremental pass is full too, and does not record intact over the damage.
        let runningNext = try await running.scan(.incremental)
        #expect(runningNext.mode == .full && rowFindings(runningNext).first?.firstSeq == 5)
        try await store.close()
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        let cli = try run(cliPath(), ["scan", "--store", db, "--key-file", keyFile])
        #expect(cli.status == 1, "\(cli.stdout)")
        let status = try run(cliPath(), ["status", "--store", db, "--key-file", keyFile])
        #expect(status.status == 1, "\(status.stdout)")
    }

    @Test("the verified tail cut, or its last row replaced: an incremental pass reports it")
    func tailCutOrReplacedBelowPosition() async throws {
        let store = try await openStore(count: 30)
        let scanner = IntegrityScanner(store: store, configuration: .init(recordsPasses: false))
        #expect(try await scanner.scan(.full).isIntact)
        // Replace row 30 (the verified position) by a re-signed-looking copy of row 29.
        try tamper("UPDATE audit_entries SET mac = (SELECT mac FROM audit_entries WHERE seq = 29) WHERE seq = 30;",
                   around: "audit_entries_no_update")
        let replaced = try await scanner.scan(.incremental)
        #expect(rowFindings(replaced).first?.kind == .macMismatch)
        #expect(rowFindings(replaced).first?.firstSeq == 30)
        #expect(rowFindings(replaced).first?.message.contains("not the row an earlier pass verified") == true)
        try await store.close()

        let path2 = dir.path("two.db")
        try await makeStore(at: path2, keys: keys, count: 30)
        let store2 = try await AuditStore.open(at: path2, keys: keys)
        let scanner2 = IntegrityScanner(store: store2, configuration: .init(recordsPasses: false))
        #expect(try await scanner2.scan(.full).isIntact)
        let original = try sqlite3Shell(path2, "SELECT sql FROM sqlite_schema WHERE name = 'audit_entries_no_delete';").stdout
        try sqlite3Must(path2, "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq > 25; \(original.trimmingCharacters(in: .whitespacesAndNewlines));")
        let cut = try await scanner2.scan(.incremental)
        #expect(rowFindings(cut).map(\.kind) == [.missingRows])
        #expect(rowFindings(cut).first?.seqs == 26...30)
        #expect(rowFindings(cut).first?.message.contains("rows were removed from the tail") == true)
        try await store2.close()
    }

    @Test("a forged incremental position (an edited scan record) does not hide tampering")
    func forgedPositionDoesNotHide() async throws {
        let store = try await openStore(count: 50)
        let scanner = IntegrityScanner(store: store)
        let first = try await scanner.scan(.full)
        #expect(first.recordSeq == 51)
        try await store.append(contentsOf: (52...80).map { sampleEvent($0) })
        // The attacker changes row 70 and edits the scan record to claim rows up to 80 were
        // verified, with row 80's MAC as the head, so that a restarted scanner would skip 70.
        try tamper("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 70;", around: "audit_entries_no_update")
        let mac80 = try sqlite3Shell(db, "SELECT hex(mac) FROM audit_entries WHERE seq = 80;").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let forgedDetails = #"{"mode":"full","fromSeq":1,"throughSeq":80,"rowsChecked":80,"durationMicros":1,"result":"intact","findings":0,"firstFinding":null,"headMac":"\#(mac80)"}"#
        try tamper("UPDATE audit_entries SET details = '\(forgedDetails)' WHERE seq = 51;", around: "audit_entries_no_update")
        try await store.close()

        // A new process: nothing in memory, so the position comes from the store.
        let reopened = try await AuditStore.open(at: db, keys: keys)
        let restarted = IntegrityScanner(store: reopened, configuration: .init(recordsPasses: false))
        #expect(try await restarted.recordedPosition() == nil)  // the forged record's MAC fails: not trusted
        let report = try await restarted.scan(.incremental)
        #expect(report.mode == .full)
        #expect(rowFindings(report).map(\.kind) == [.macMismatch, .macMismatch])
        #expect(rowFindings(report).map(\.firstSeq) == [51, 70])
        try await reopened.close()
    }

    @Test("after a restart the position comes from the newest intact record, whose MAC is checked")
    func positionFromRecord() async throws {
        let store = try await openStore(count: 20)
        _ = try await IntegrityScanner(store: store).scan(.full)  // record at 21
        try await store.append(contentsOf: (22...30).map { sampleEvent($0) })
        let restarted = IntegrityScanner(store: store)
        let position = try await restarted.recordedPosition()
        #expect(position?.seq == 20)
        let report = try await restarted.scan(.incremental)
        #expect(report.mode == .incremental)
        #expect(report.checkedSeqs == 21...30)
        #expect(report.isIntact)
        try await store.close()
    }

    @Test("a dropped or edited trigger is found by both modes, even if no row changed")
    func schemaTampering() async throws {
        let store = try await openStore(count: 10)
        let scanner = IntegrityScanner(store: store, configuration: .init(recordsPasses: false))
        #expect(try await scanner.scan(.full).isIntact)
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_delete;")
        let incremental = try await scanner.scan(.incremental)
        #expect(incremental.integrity.findings.map(\.kind) == [.schemaTampered])
        #expect(incremental.integrity.findings.first?.message == "trigger audit_entries_no_delete is missing (dropped?)")
        try sqlite3Must(db, """
            CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries WHEN 0
            BEGIN SELECT RAISE(ABORT, 'AuditDB: the audit log is append-only: DELETE is not allowed'); END;
            DROP INDEX audit_entries_actor;
            """)
        let full = try await scanner.scan(.full)
        #expect(full.integrity.findings.map(\.kind) == [.schemaTampered, .schemaTampered])
        #expect(full.integrity.findings.map(\.message).sorted() == [
            "index audit_entries_actor is missing (dropped?)",
            "trigger audit_entries_no_delete differs from its definition (edited?)",
        ])
        try await store.close()
    }

    @Test("findings are streamed, counted in metrics and logged at error level")
    func alerts() async throws {
        let metrics = TestMetrics()
        let handler = CapturingLogHandler()
        let store = try await openStore(count: 30)
        var configuration = IntegrityScanner.Configuration(recordsPasses: false, logger: Logger(label: "test") { _ in handler })
        configuration.metricsFactory = metrics
        let scanner = IntegrityScanner(store: store, configuration: configuration)
        let findings = scanner.findings()
        #expect(try await scanner.scan(.full).isIntact)
        try tamper("UPDATE audit_entries SET outcome = 3 WHERE seq = 12;", around: "audit_entries_no_update")
        let report = try await scanner.scan(.full)
        #expect(!report.isIntact)
        var iterator = findings.makeAsyncIterator()
        let streamed = await iterator.next()
        #expect(streamed?.kind == .macMismatch)
        #expect(streamed?.firstSeq == 12)
        #expect(try metrics.expectCounter("auditdb_scan_passes_total").totalValue == 2)
        #expect(try metrics.expectCounter("auditdb_scan_rows_verified_total").totalValue == 60)
        #expect(try metrics.expectCounter("auditdb_scan_findings_total").totalValue == 1)
        #expect(try metrics.expectTimer("auditdb_scan_duration").values.count == 2)
        #expect(try metrics.expectGauge("auditdb_scan_last_success_timestamp_seconds").lastValue ?? 0 > 1_700_000_000)
        let errors = handler.records.withLock { $0.filter { $0.level == .error } }
        #expect(errors.count == 1)
        #expect(errors.first?.metadata["kind"] == "mac-mismatch")
        #expect(errors.first?.metadata["seq"] == "12")
        try await store.close()
    }

    @Test("status is served from memory: it still answers after the store is closed and its file deleted")
    func statusFromMemory() async throws {
        let store = try await openStore(count: 25)
        let scanner = IntegrityScanner(store: store)
        _ = try await scanner.scan(.full)
        try await store.close()
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: db + suffix) }
        #expect(!FileManager.default.fileExists(atPath: db))
        let status = scanner.status
        #expect(status.isHealthy)
        #expect(status.lastRowsVerified == 25)
        #expect(status.verifiedThroughSeq == 25)
        #expect(status.timeSinceLastFullPass() != nil)
        #expect(auditHealth(scanner).status == 200)  // the docs/scanning.md health check, verbatim
        // A pass now fails, and the status says so, without throwing away the last good facts.
        await #expect(throws: AuditError.self) { _ = try await scanner.scan(.incremental) }
        guard case .failed = scanner.status.lastResult else {
            Issue.record("a failed pass is not reflected in status: \(scanner.status.lastResult)")
            return
        }
        #expect(scanner.status.verifiedThroughSeq == 25)
        #expect(auditHealth(scanner).status == 503)
    }

    @Test("a full pass does not block appends: appends complete while it is still running")
    func scanDoesNotBlockAppends() async throws {
        // Relaxed durability: appends do not wait for fsync, so a slow disk under load cannot make
        // them outlast the pass; what is tested is that they do not wait for the scan.
        var configuration = AuditStore.Configuration()
        configuration.durability = .relaxed
        let store = try await AuditStore.create(at: db, keys: keys, configuration: configuration)
        for start in stride(from: 1, through: 150_000, by: 10_000) {
            try await store.append(contentsOf: (start..<start + 10_000).map { sampleEvent($0) })
        }
        let scanner = IntegrityScanner(store: store, configuration: .init(recordsPasses: false))
        let pass = Task { try await scanner.scan(.full) }
        while !scanner.status.isScanning { await Task.yield() }
        var appendedDuringScan = 0
        for i in 0..<20 {
            try await store.append(sampleEvent(200_000 + i))
            if scanner.status.isScanning { appendedDuringScan += 1 }
        }
        let report = try await pass.value
        #expect(appendedDuringScan >= 1, "no append completed while the scan ran: appends waited for it")
        #expect(report.isIntact)
        #expect(report.integrity.rowsChecked >= 150_000)
        try await store.close()
    }

    @Test("a pass whose record cannot be appended throws, keeps its report, and status is not healthy")
    func recordFailure() async throws {
        let store = try await openStore(count: 8)
        let target = IntegrityScanner.Target(
            reader: store.pool, keys: keys, path: db, expectedStoreID: nil, checkpointKeys: nil, storeID: store.storeID,
            record: { _ in throw AuditError(.diskFull, "the disk is full (test)") })
        let scanner = IntegrityScanner(target: target, storeConfiguration: .init(),
                                       configuration: .init(logger: Logger(label: "t") { _ in SwiftLogNoOpLogHandler() }),
                                       clock: ContinuousClock())
        await #expect { _ = try await scanner.scan(.full) } throws: { ($0 as? AuditError)?.code == .diskFull }
        #expect(scanner.lastReport?.isIntact == true)
        #expect(scanner.lastReport?.integrity.rowsChecked == 8)
        #expect(scanner.lastReport?.recordSeq == nil)
        #expect(scanner.status.lastResult == .failed("the pass could not be recorded: the disk is full (test)"))
        #expect(!scanner.status.isHealthy)
        try await store.close()
    }

    @Test("read-only scans of a file: incremental from its newest record, nothing written")
    func readOnlyScanOfFile() async throws {
        let store = try await openStore(count: 30)
        _ = try await IntegrityScanner(store: store).scan(.full)  // record at 31
        try await store.append(contentsOf: (32...40).map { sampleEvent($0) })
        try await store.close()
        let before = try Data(contentsOf: URL(fileURLWithPath: db))
        let report = try await IntegrityScanner.scan(storeAt: db, keys: keys)
        #expect(report.mode == .incremental)
        #expect(report.checkedSeqs == 31...40)
        #expect(report.isIntact && report.recordSeq == nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: db)) == before)
        try tamper("UPDATE audit_entries SET actor = 'm' WHERE seq = 35;", around: "audit_entries_no_update")
        let bad = try await IntegrityScanner.scan(storeAt: db, keys: keys)
        #expect(bad.integrity.findings.map(\.kind) == [.macMismatch])
        #expect(bad.integrity.findings.first?.firstSeq == 35)
        await #expect { _ = try await IntegrityScanner.scan(storeAt: dir.path("none.db"), keys: keys) } throws: {
            ($0 as? AuditError)?.code == .storeNotFound
        }
    }

    @Test("docs/scanning.md's health check is the function these tests run")
    func healthCheckDocMatches() throws {
        let doc = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/scanning.md"), encoding: .utf8)
        let test = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
        let start = try #require(doc.range(of: "func auditHealth("))
        let end = try #require(doc.range(of: "\n}\n", range: start.lowerBound..<doc.endIndex))
        let function = String(doc[start.lowerBound..<end.upperBound])
        #expect(function.count > 200)
        #expect(test.contains(function))
    }

    @Test("the service runs passes on its clock and stops on graceful shutdown", .timeLimit(.minutes(10)))
    func serviceStopsOnGracefulShutdown() async throws {
        let store = try await openStore(count: 10)
        let clock = ManualClock()
        let scanner = IntegrityScanner(
            store: store, configuration: .init(interval: .seconds(20), fullPassInterval: .seconds(3_600)), clock: clock)
        let passes = scanner.passes()
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await scanner.run() }
                try await clock.waitForSleepers()  // the first pass is done; the scanner waits 20 s
                clock.advance(by: .seconds(20))
                try await clock.waitForSleepers()  // the second one too
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()  // run() returned without the clock moving again
            }
        }
        var iterator = passes.makeAsyncIterator()
        #expect(await iterator.next()?.mode == .full)
        #expect(await iterator.next()?.mode == .incremental)
        #expect(scanner.status.passes == 2)
        #expect(!scanner.status.isScanning)
        // Nothing of the scanner is left waiting to run, and every recorded pass is a whole, verified row.
        #expect(clock.sleeperCount == 0)
        #expect(try await store.verify().isIntact)
        #expect(try await store.entries(EntryQuery(limit: 10_000, action: "auditdb.scan")).count == 2)
        try await store.close()
    }

    @Test("without a logger or metrics of its own, the scanner uses the store's: its prefix, its factory, its logger")
    func observabilityDefaultsToTheStore() async throws {
        let metrics = TestMetrics()
        let handler = CapturingLogHandler()
        try await makeStore(at: db, keys: keys, count: 6)
        var configuration = AuditStore.Configuration()
        configuration.logger = Logger(label: "store") { _ in handler }
        configuration.metricsFactory = metrics
        configuration.metricsPrefix = "app_audit"
        let store = try await AuditStore.open(at: db, keys: keys, configuration: configuration)
        let scanner = IntegrityScanner(store: store)
        #expect(try await scanner.scan(.full).isIntact)
        #expect(try metrics.expectCounter("app_audit_scan_passes_total").totalValue == 1)
        #expect(try metrics.expectCounter("app_audit_scan_rows_verified_total").totalValue == 6)
        #expect(try metrics.expectGauge("app_audit_scan_verified_through_seq").lastValue == 6)
        #expect(handler.records.withLock { $0.contains { $0.level == .info && $0.message == "audit store scan pass" } })
        // Its own configuration wins over the store's.
        let ownMetrics = TestMetrics()
        let own = IntegrityScanner(store: store, configuration: .init(metricsPrefix: "scanner", metricsFactory: ownMetrics))
        _ = try await own.scan(.incremental)
        #expect(try ownMetrics.expectCounter("scanner_scan_passes_total").totalValue == 1)
        #expect(try metrics.expectCounter("app_audit_scan_passes_total").totalValue == 1)
        try await store.close()
    }

    @Test("the schedule runs on the injected clock: a full pass whenever fullPassInterval has passed")
    func scheduleOnInjectedClock() async throws {
        let store = try await openStore(count: 5)
        let clock = SteppingClock()
        let scanner = IntegrityScanner(
            store: store, configuration: .init(interval: .seconds(300), fullPassInterval: .seconds(3_600)), clock: clock)
        let passes = scanner.passes()
        var modes: [ScanMode] = []
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await scanner.run() }
                var iterator = passes.makeAsyncIterator()
                while modes.count < 26, let report = await iterator.next() { modes.append(report.mode) }
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        // Every 300 s of clock time a pass; 3,600 s after a full pass the next one is full.
        #expect(modes.indices.filter { modes[$0] == .full } == [0, 12, 24])
        #expect(clock.now.offset >= .seconds(25 * 300))
        try await store.close()
    }

    @Test("inside a ServiceGroup: a SIGTERM-style shutdown stops the scanner and the group cleanly")
    func serviceGroupShutdown() async throws {
        let store = try await openStore(count: 5)
        let scanner = IntegrityScanner(store: store, configuration: .init(interval: .seconds(3_600)))
        let passes = scanner.passes()
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: scanner)], logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = passes.makeAsyncIterator()
            #expect(await iterator.next()?.isIntact == true)
            // The scanner now sleeps for an hour; shutdown must not wait for it.
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(scanner.status.passes == 1)
        try await store.close()
    }

    /// A store of `count` rows with its key file, for the CLI: the binary and the environment naming both.
    func cliStore(count: Int) async throws -> (cli: String, env: [String: String]) {
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        try await makeStore(at: db, keys: keys, count: count)
        return (try cliPath(), ["AUDITDB_STORE": db, "AUDITDB_KEY_FILE": keyFile])
    }

    @Test("the CLI: scan, status, exit statuses, JSON, and --every stopped by SIGTERM")
    func cli() async throws {
        let (cli, env) = try await cliStore(count: 12)
        let none = try run(cli, ["status"], environment: env)
        #expect(none.status == 2)
        #expect(none.stdout.contains("no scan pass recorded yet"))
        let full = try run(cli, ["scan", "--full"], environment: env)
        #expect(full.status == 0, "\(full.stderr)")
        #expect(full.stdout == "intact: full pass checked 12 rows (seq 1...12); recorded as seq 13\n")
        let json = try run(cli, ["scan", "--json"], environment: env)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(object?["mode"] as? String == "incremental")
        #expect(object?["recordSeq"] as? Int == 14)
        #expect((object?["report"] as? [String: Any])?["rowsChecked"] as? Int == 1)
        let status = try run(cli, ["status", "--json"], environment: env)
        #expect(status.status == 0)
        let statusObject = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        #expect((statusObject?["lastPass"] as? [String: Any])?["seq"] as? Int == 14)
        #expect((statusObject?["lastFullPass"] as? [String: Any])?["seq"] as? Int == 13)
        // Tamper; the next scan exits 1 and names the row; status then reports it too.
        try tamper("UPDATE audit_entries SET resource_id = 'doc-x' WHERE seq = 5;", around: "audit_entries_no_update")
        let bad = try run(cli, ["scan", "--full"], environment: env)
        #expect(bad.status == 1)
        #expect(bad.stdout.hasPrefix("INTEGRITY VIOLATION: full pass found 1 finding(s) (seq 1...14); recorded as seq 15\n"))
        #expect(bad.stdout.contains("mac-mismatch at seq 5"))
        let badStatus = try run(cli, ["status"], environment: env)
        #expect(badStatus.status == 1)
        #expect(badStatus.stdout.contains("first finding: mac-mismatch at seq 5"))
        // A scan record changed by hand is not believed: status fails on it.
        try tamper("UPDATE audit_entries SET details = replace(details, '\"findings\":1', '\"findings\":0') WHERE seq = 15;",
                   around: "audit_entries_no_update")
        let forged = try run(cli, ["status"], environment: env)
        #expect(forged.status == 1)
        #expect(forged.stderr.contains("entry 15 failed verification (mac-mismatch at seq 15"))
        #expect(try run(cli, ["scan", "--full", "--incremental"], environment: env).status == 2)
        #expect(try run(cli, ["scan", "--every", "5x"], environment: env).stderr.contains("unknown unit"))
    }

    @Test("status verifies the rows after the newest record: a damage-finding record hidden by a changed action, or deleted, still fails status")
    func statusSeesHiddenRecords() async throws {
        let (cli, env) = try await cliStore(count: 5)
        #expect(try run(cli, ["scan", "--full"], environment: env).status == 0)  // intact, recorded as seq 6
        try tamper("UPDATE audit_entries SET resource_id = 'doc-x' WHERE seq = 2;", around: "audit_entries_no_update")
        let bad = try run(cli, ["scan", "--full"], environment: env)
        #expect(bad.status == 1 && bad.stdout.contains("recorded as seq 7"), "\(bad.stdout)")
        #expect(try run(cli, ["append", "--actor", "a", "--action", "b"], environment: env).status == 0)  // seq 8
        try sqlite3Must(db, ".backup \(dir.path("copy.db"))")
        // The record of the pass that found damage, hidden from status's lookup by a changed action.
        try tamper("UPDATE audit_entries SET action = 'auditdb.scaN' WHERE seq = 7;", around: "audit_entries_no_update")
        let hidden = try run(cli, ["status"], environment: env)
        #expect(hidden.status == 1, "\(hidden.stdout)")
        #expect(hidden.stderr.contains("a row appended after the last recorded scan pass (record seq 6) fails verification: entry 7 failed verification (mac-mismatch at seq 7"),
                "\(hidden.stderr)")
        // The same record deleted, the row after it still there: its link tells.
        try FileManager.default.removeItem(atPath: db)
        for suffix in ["-wal", "-shm"] { try? FileManager.default.removeItem(atPath: db + suffix) }
        try FileManager.default.copyItem(atPath: dir.path("copy.db"), toPath: db)
        #expect(try run(cli, ["status"], environment: env).status == 1)  // the record is there: the pass found damage
        try tamper("DELETE FROM audit_entries WHERE seq = 7;", around: "audit_entries_no_delete")
        let deleted = try run(cli, ["status"], environment: env)
        #expect(deleted.status == 1, "\(deleted.stdout)")
        #expect(deleted.stderr.contains("a row appended after the last recorded scan pass (record seq 6) fails verification: entry 8 failed verification (missing-rows at seq 7"),
                "\(deleted.stderr)")
    }

    /// What `pipe` carries up to its first newline (its first pass's report): waits for it.
    static func firstLine(_ pipe: Pipe) -> String {
        var printed = Data()
        while !printed.contains(UInt8(ascii: "\n")) {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            printed += chunk
        }
        return String(decoding: printed, as: UTF8.self)
    }

    @Test("the CLI's --every runs until SIGTERM, then exits with the last pass's status")
    func cliEvery() async throws {
        let cli = try cliPath()
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        try await makeStore(at: db, keys: keys, count: 5)
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: cli)
        process.arguments = ["scan", "--every", "1s", "--store", db, "--key-file", keyFile]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until the first pass has been printed (read the pipe until a newline).
        #expect(Self.firstLine(out).hasPrefix("intact: full pass checked 5 rows"))
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        let store = try await AuditStore.open(at: db, keys: keys)
        #expect(try await store.verify().isIntact)
        #expect(try await store.recordedScanStatus().lastFullPass?.throughSeq == 5)
        try await store.close()
    }

    @Test("the CLI's --every says on standard error when a pass fails (the store file replaced under it), and exits 2")
    func cliEveryReportsFailedPasses() async throws {
        let keyFile = dir.path("k.keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        try await makeStore(at: db, keys: keys, count: 5)
        let copy = dir.path("copy.db")
        try sqlite3Must(db, "VACUUM INTO '\(copy)';")
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: try cliPath())
        process.arguments = ["scan", "--every", "1s", "--no-record", "--store", db, "--key-file", keyFile]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let errors = ThreadWork { try readToEnd(err.fileHandleForReading.fileDescriptor) }
        #expect(Self.firstLine(out).hasPrefix("intact: full pass checked 5 rows"))
        #expect(rename(copy, db) == 0)
        usleep(2_500_000)  // at least one more pass, which fails
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationStatus == 2)
        let stderr = String(decoding: try errors.wait(), as: UTF8.self)
        #expect(stderr.contains("scan pass failed (scan could not complete): ") && stderr.contains("is no longer the store this process opened"), "\(stderr)")
    }
}

/// Copied verbatim from docs/scanning.md ("Health checks"), so the documented code compiles and works.
func auditHealth(_ scanner: IntegrityScanner) -> (status: Int, body: String) {
    let s = scanner.status
    let fullRecently = s.lastFullPassResult == .intact
        && (s.timeSinceLastFullPass() ?? .seconds(Int64.max)) < .seconds(26 * 3600)
    let body = "last=\(s.lastResult) rows=\(s.lastRowsVerified) through=\(s.verifiedThroughSeq) "
        + "lastPass=\(s.lastPassAt?.iso8601 ?? "never") lastFull=\(s.lastFullPassAt?.iso8601 ?? "never")"
    return (s.isHealthy && fullRecently ? 200 : 503, body)
}

/// A clock whose sleeps return at once, advancing its time to the deadline: a schedule runs
/// deterministically and fast.
final class SteppingClock: Clock, Sendable {
    struct Instant: InstantProtocol {
        var offset: Duration
        func advanced(by duration: Duration) -> Instant { Instant(offset: offset + duration) }
        func duration(to other: Instant) -> Duration { other.offset - offset }
        static func < (a: Instant, b: Instant) -> Bool { a.offset < b.offset }
    }

    private let current = Mutex<Duration>(.zero)
    var now: Instant { Instant(offset: current.withLock { $0 }) }
    var minimumResolution: Duration { .zero }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        try Task.checkCancellation()
        current.withLock { $0 = max($0, deadline.offset) }
        await Task.yield()
    }
}
