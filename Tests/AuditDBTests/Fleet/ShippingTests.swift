import AuditDBPostgres
import AuditDBTestSupport
import Foundation
import Logging
import MetricsTestKit
import PostgresNIO
import Synchronization
import Testing

@testable import AuditDB

/// Shipping verified entries into the central table and proving them against the witness, with a
/// real PostgreSQL server: resumption, withheld and erased fields, expired rows, central
/// tampering reported exactly, row-level security and append-only tables.
@Suite("Fleet: shipping", .serialized)
final class ShippingTests: Sendable {
    let server: PostgresServer
    let dir: TemporaryDirectory
    let keys: KeyRing

    init() async throws {
        server = try await PostgresServer.withWitnessSchema(publishers: ["inst_a", "inst_b"])
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
    }

    deinit { server.stop() }

    /// A store of `rows` sample rows, registered to `role`.
    func registeredStore(_ name: String, role: String, signer: CheckpointSigner, rows: Int) async throws -> AuditStore {
        let store = try await AuditStore.create(at: dir.path(name), keys: keys)
        if rows > 0 { try await store.append(contentsOf: (1...rows).map { sampleEvent($0) }) }
        let id = store.storeID
        try await withWitness(server.url(PostgresServer.owner)) {
            try await $0.register(store: id, publisher: role, publicKeys: signer.publicKeys, label: name)
        }
        return store
    }

    func ship(_ store: AuditStore, as role: String, signer: CheckpointSigner?, batchSize: Int = 1_000,
              withholding: Set<WithholdableField> = [], cursor: ShippingCursor? = nil) async throws -> CentralShipper.Summary
    {
        try await withWitness(server.url(role)) { witness in
            try await CentralShipper(central: witness, witness: witness,
                                     configuration: .init(batchSize: batchSize, withholding: withholding), logger: Logger(label: "test"))
                .ship(store, signer: signer, cursor: cursor)
        }
    }

    func verify() async throws -> ShippedReport {
        try await withWitness(server.url("auditor")) { witness in
            try await ShippedVerifier(central: witness, witness: witness, logger: Logger(label: "test")).verify()
        }
    }

    /// The central tables dumped by docs/verifier/shipped_dump.sql (as the auditor) and checked
    /// by the Python verifier of FORMAT.md 22.7, which knows nothing of the engine.
    func outsideVerifier() throws -> ProcessResult {
        let root = FormatVectorTests.root.path
        let dump = dir.path("dump-\(UUID().uuidString).json")
        try server.psql(file: root + "/docs/verifier/shipped_dump.sql", user: "auditor").write(toFile: dump, atomically: false, encoding: .utf8)
        return try run("/usr/bin/python3", [root + "/docs/verifier/shipping.py", dump])
    }

    func findings(_ report: ShippedReport) -> [String] {
        report.stores.flatMap { $0.findings.map { "\($0.kind) \($0.seqs.lowerBound)...\($0.seqs.upperBound)" } }
    }

    @Test("ship in batches proven against a published checkpoint, verify with public keys, resume from the high-water mark; plain SQL queries")
    func shipVerifyResume() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 2_500)
        let first = try await ship(store, as: "inst_a", signer: signer)
        #expect(first.shipped == 2_500)
        #expect(first.batches == 3)
        #expect(try server.psql("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM auditdb_ship.entries") == "2500|2500|1|2500\n")
        #expect(try server.psql("SELECT first_seq, last_seq, checkpoint_seq, length(proof) > 0 FROM auditdb_ship.batches ORDER BY first_seq")
            == "1|1000|2500|t\n1001|2000|2500|t\n2001|2500|2500|f\n")
        var report = try await verify()
        #expect(report.isIntact, "\(report.text)")
        #expect(report.stores.map(\.entriesChecked) == [2_500])
        #expect(report.stores.map(\.batchesProven) == [3])
        // Nothing new: nothing shipped. New rows: only they are read and shipped.
        #expect(try await ship(store, as: "inst_a", signer: signer).shipped == 0)
        try await store.append(contentsOf: (2_501...2_800).map { sampleEvent($0) })
        let second = try await ship(store, as: "inst_a", signer: signer, cursor: first.cursor)
        #expect(second.shippedBefore == 2_500 && second.shippedAfter == 2_800 && second.batches == 1)
        report = try await verify()
        #expect(report.isIntact, "\(report.text)")
        #expect(report.stores.map(\.entriesChecked) == [2_800])
        // A central query in plain SQL (tenant, action, time) as the auditor role.
        let expected = (1...2_800).filter { $0 % 3 == 1 && $0 % 4 == 1 }.count
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries WHERE tenant = 'tenant-1' AND action = 'read' AND recorded_at > now() - interval '1 hour'",
                                user: "auditor") == "\(expected)\n")
        // Instances read no entries (not even their own), and another instance cannot ship for the store.
        for role in ["inst_a", "inst_b"] {
            let read = try server.psqlError("SELECT count(*) FROM auditdb_ship.entries", user: role)
            #expect(read.contains("permission denied for table entries"), "\(role): \(read)")
        }
        let zeros = String(repeating: "00", count: 32)
        let foreign = try server.psqlError(
            "INSERT INTO auditdb_ship.entries (store_id, seq, recorded_at, leaf) VALUES ('\\x\(store.storeID.hex)', 9999, now(), '\\x\(zeros)')",
            user: "inst_b")
        #expect(foreign.contains("role inst_b may not ship entries of store \(store.storeID.hex)"), "\(foreign)")
        // A batch row for the store is refused before the trigger's other checks, whose messages
        // would tell inst_b the store's shipped high-water mark (2,800 here).
        let sixtyFour = String(repeating: "00", count: 64)
        let batch = try server.psqlError(
            "INSERT INTO auditdb_ship.batches (store_id, first_seq, last_seq, checkpoint_seq, checkpoint_signature, proof) VALUES ('\\x\(store.storeID.hex)', 1, 1, 1, '\\x\(sixtyFour)', '\\x')",
            user: "inst_b")
        #expect(batch.contains("role inst_b may not ship batches of store \(store.storeID.hex)") && !batch.contains("2801"), "\(batch)")
        // Append-only for the instance and for the owner.
        for user in ["inst_a", PostgresServer.owner] {
            for sql in ["UPDATE auditdb_ship.entries SET action = 'x' WHERE seq = 1", "DELETE FROM auditdb_ship.entries WHERE seq = 1",
                        "TRUNCATE auditdb_ship.entries", "DELETE FROM auditdb_ship.batches"]
            {
                let error = try server.psqlError(sql, user: user)
                #expect(error.contains(user == "inst_a" ? "permission denied" : "append-only"), "\(user): \(sql): \(error)")
            }
        }
        try await store.close()
    }

    @Test("an instance COPYs straight into the central table, checked per statement: a row of a store registered to another role refuses the whole COPY or INSERT")
    func copyCheckedPerStatement() async throws {
        let signer = try CheckpointSigner.inMemory()
        let a = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 0)
        let b = try await registeredStore("b.db", role: "inst_b", signer: signer, rows: 0)
        let zeros = String(repeating: "00", count: 32)
        func line(_ store: AuditStore, _ seq: Int) -> String { "\\\\x\(store.storeID.hex)\t\(seq)\t2026-12-01 10:00:00+00\t\\\\x\(zeros)\n" }
        /// COPY `text` into auditdb_ship.entries as `role`, as CentralShipper does; the error's message, or "".
        func copy(_ text: String, as role: String) async throws -> String {
            try await withWitness(server.url(role)) { witness in
                do {
                    try await witness.client.withTransaction(logger: Logger(label: "test")) { connection in
                        try await connection.query("SET LOCAL search_path = pg_catalog, auditdb_ship, pg_temp", logger: Logger(label: "test"))
                        try await connection.copyFrom(table: "entries", columns: ["store_id", "seq", "recorded_at", "leaf"],
                                                      logger: Logger(label: "test")) { try await $0.write(ByteBuffer(string: text)) }
                    }
                    return ""
                } catch let error as PostgresTransactionError {
                    return (error.closureError as? PSQLError)?.serverInfo?[.message] ?? "\(error)"
                }
            }
        }
        #expect(try await copy(line(b, 1) + line(b, 2), as: "inst_b") == "")
        #expect(try await copy(line(b, 3) + line(a, 1), as: "inst_b") == "role inst_b may not ship entries of store \(a.storeID.hex): it is not registered to that role")
        #expect(try await copy(line(a, 1), as: "inst_b").contains("may not ship entries of store \(a.storeID.hex)"))
        let insert = try server.psqlError(
            "INSERT INTO auditdb_ship.entries (store_id, seq, recorded_at, leaf) VALUES ('\\x\(b.storeID.hex)', 4, now(), '\\x\(zeros)'), ('\\x\(a.storeID.hex)', 2, now(), '\\x\(zeros)')",
            user: "inst_b")
        #expect(insert.contains("role inst_b may not ship entries of store \(a.storeID.hex)"), "\(insert)")
        // Only the first COPY's two rows are there: each refused statement was refused whole.
        #expect(try server.psql("SELECT encode(store_id, 'hex'), seq FROM auditdb_ship.entries ORDER BY seq") == "\(b.storeID.hex)|1\n\(b.storeID.hex)|2\n")
        try await a.close()
        try await b.close()
    }

    @Test("withheld and erased fields arrive as commitments only, expired rows as tombstones; all verify, and no erased value is in the central table")
    func withheldErasedExpired() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 60)
        _ = try await store.erase(.actor("user-3"), fields: [.actor], reason: "ticket-17")
        let retention = try await store.applyRetention(try RetentionPolicy(parsingDefault: "1d", tenants: ["tenant-0": "forever"]),
                                                       now: AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 86_400_000_000))
        #expect(retention.expired > 0)
        let summary = try await ship(store, as: "inst_a", signer: signer, batchSize: 25, withholding: [.details])
        #expect(summary.shipped == (try await store.lastSeq()))
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries WHERE tombstone IS NOT NULL") == "\(retention.expired)\n")
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries e WHERE e::text LIKE '%user-3%'") == "0\n")
        #expect(try server.psql("SELECT count(*) > 0, bool_and(actor IS NULL AND actor_nonce IS NULL AND length(actor_commitment) = 32) FROM auditdb_ship.entries WHERE erased & 1 = 1")
            == "t|t\n")
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries WHERE tombstone IS NULL AND action NOT LIKE 'auditdb.%' AND (details IS NOT NULL OR withheld & 4 = 0)")
            == "0\n")
        let report = try await verify()
        #expect(report.isIntact, "\(report.text)")
        #expect(report.stores.map(\.expiredAwaitingEntry) == [0])
        #expect(try outsideVerifier().status == 0)
        // One tombstone's match tags changed centrally: its expiry entry's digest no longer
        // matches, reported over the seqs that entry lists.
        #expect(retention.expiryEntries.count == 1)
        let range = try server.psql("SELECT min(seq) || '...' || max(seq) FROM auditdb_ship.entries WHERE tombstone IS NOT NULL")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try server.psql("""
            ALTER TABLE auditdb_ship.entries DISABLE TRIGGER entries_no_change;
            UPDATE auditdb_ship.entries SET tombstone = set_byte(tombstone, 100, get_byte(tombstone, 100) # 1)
                WHERE seq = (SELECT min(seq) FROM auditdb_ship.entries WHERE tombstone IS NOT NULL);
            ALTER TABLE auditdb_ship.entries ENABLE TRIGGER entries_no_change;
            """)
        let tampered = try await verify()
        #expect(findings(tampered) == ["changed \(range)"])
        let outside = try outsideVerifier()
        #expect(outside.status == 1 && outside.stdout.contains(": changed at seqs \(range): "), "\(outside.stdout)\(outside.stderr)")
        #expect(tampered.stores.first?.findings.first?.message.contains("are not the ones it lists") == true)
        try await store.close()
    }

    @Test("tampering in the central table is reported exactly: a changed value, a changed committed field, a missing row, an extra row, a changed batch proof")
    func centralTampering() async throws {
        let signer = try CheckpointSigner.inMemory()
        let a = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 3_000)
        let b = try await registeredStore("b.db", role: "inst_b", signer: signer, rows: 3_000)
        _ = try await ship(a, as: "inst_a", signer: signer)
        _ = try await ship(b, as: "inst_b", signer: signer)
        #expect(try await verify().isIntact)
        let idA = "'\\x\(a.storeID.hex)'", idB = "'\\x\(b.storeID.hex)'"
        // As a superuser who disables the append-only trigger.
        try server.psql("""
            ALTER TABLE auditdb_ship.entries DISABLE TRIGGER entries_no_change;
            ALTER TABLE auditdb_ship.batches DISABLE TRIGGER batches_no_change;
            UPDATE auditdb_ship.entries SET action = 'document.view' WHERE store_id = \(idA) AND seq = 5;
            UPDATE auditdb_ship.entries SET actor = 'mallory' WHERE store_id = \(idA) AND seq = 7;
            DELETE FROM auditdb_ship.entries WHERE store_id = \(idA) AND seq = 10;
            CREATE TEMP TABLE extra AS SELECT * FROM auditdb_ship.entries WHERE store_id = \(idA) AND seq = 1;
            UPDATE extra SET seq = 3001;
            INSERT INTO auditdb_ship.entries SELECT * FROM extra;
            UPDATE auditdb_ship.batches SET proof = set_byte(proof, 0, get_byte(proof, 0) # 1) WHERE store_id = \(idB) AND first_seq = 1;
            ALTER TABLE auditdb_ship.entries ENABLE TRIGGER entries_no_change;
            ALTER TABLE auditdb_ship.batches ENABLE TRIGGER batches_no_change;
            """)
        let report = try await verify()
        let byStore = Dictionary(uniqueKeysWithValues: report.stores.map { ($0.storeID, $0.findings) })
        #expect(byStore[a.storeID]?.map { "\($0.kind) \($0.seqs.lowerBound)...\($0.seqs.upperBound)" }
            == ["changed 5...5", "changed 7...7", "missing 10...10", "extra 3001...3001"])
        #expect(byStore[a.storeID]?[0].message.contains("its values do not hash to its leaf hash") == true)
        #expect(byStore[a.storeID]?[1].message.contains("the actor does not match its commitment") == true)
        #expect(byStore[b.storeID]?.map { "\($0.kind) \($0.seqs.lowerBound)...\($0.seqs.upperBound)" } == ["batch-changed 1...1000"])
        #expect(byStore[b.storeID]?.first?.message.hasPrefix("the batch record's proof, or the checkpoint it names, was changed") == true)
        #expect(report.text.hasSuffix("shipped entries NOT intact: 2 of 2 store(s) with findings, 5 finding(s)\n"), "\(report.text)")
        // The CLI: the same findings, exit 1.
        let cli = try run(try builtProduct("auditdb-fleet"), ["verify-shipped", "--to", server.url("auditor"), "--format", "json"])
        #expect(cli.status == 1)
        #expect(cli.stdout.contains("\"kind\":\"missing\",\"fromSeq\":10,\"toSeq\":10"))
        try await a.close()
        try await b.close()
    }

    /// Starts `auditdb-fleet ship` for `path`, and SIGKILLs it (`kill`) or restarts the server
    /// once at least `after` entries of the store are committed centrally.
    func interruptedShipment(store path: String, keyFile: String, role: String, storeID: StoreID, after: Int,
                             interrupt: (TestProcess) throws -> Void) throws -> TestProcess
    {
        let child = TestProcess()
        child.executableURL = URL(fileURLWithPath: try builtProduct("auditdb-fleet"))
        child.arguments = ["ship", "--store", path, "--key-file", keyFile, "--to", server.url(role), "--batch-size", "100"]
        try child.run()
        let count = "SELECT count(*) FROM auditdb_ship.entries WHERE store_id = '\\x\(storeID.hex)'"
        while child.isRunning, (Int(try server.psql(count).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) < after {
            usleep(5_000)
        }
        try interrupt(child)
        // A guard against a hang (PostgresNIO may never return from a query whose connection was
        // lost; the CLI's watchdog then exits with 2 after 120 s): a shipper still running five
        // minutes after the interruption is a failure.
        for _ in 0..<30_000 where child.isRunning { usleep(10_000) }
        if child.isRunning {
            kill(child.processIdentifier, SIGKILL)
            Issue.record("the shipper was still running five minutes after the interruption")
        }
        child.waitUntilExit()
        return child
    }

    /// After an interruption: exactly whole batches are there; a second run completes the store
    /// exactly once, and the central verifier proves it.
    func resumeAndCheck(store path: String, keyFile: String, role: String, storeID: StoreID, rows: Int) throws {
        let id = "'\\x\(storeID.hex)'"
        let partial = try server.psql("SELECT count(*), coalesce((SELECT max(last_seq) FROM auditdb_ship.batches WHERE store_id = \(id)), 0) FROM auditdb_ship.entries WHERE store_id = \(id)")
        let parts = partial.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|")
        #expect(parts.count == 2 && parts[0] == parts[1], "rows and high-water mark after the interruption: \(partial)")
        let again = try run(try builtProduct("auditdb-fleet"), ["ship", "--store", path, "--key-file", keyFile, "--to", server.url(role), "--batch-size", "100"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try server.psql("SELECT count(*), count(DISTINCT seq), max(seq) FROM auditdb_ship.entries WHERE store_id = \(id)") == "\(rows)|\(rows)|\(rows)\n")
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.batches b WHERE store_id = \(id) AND first_seq <> 1 AND NOT EXISTS (SELECT 1 FROM auditdb_ship.batches p WHERE p.store_id = b.store_id AND p.last_seq = b.first_seq - 1)") == "0\n")
        let verified = try run(try builtProduct("auditdb-fleet"), ["verify-shipped", "--to", server.url("auditor"), "--store-id", storeID.hex])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        #expect(verified.stdout.contains("shipped entries intact: 1 store(s), \(rows) row(s)"))
    }

    /// A store of `rows` rows with a key file, registered and with a published checkpoint at its end.
    func publishedStore(_ name: String, role: String, rows: Int) async throws -> (path: String, keyFile: String, id: StoreID) {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore(name, role: role, signer: signer, rows: rows)
        try await withWitness(server.url(role)) { witness in
            _ = try await store.checkpoint(signer: signer, anchors: [WitnessAnchor(witness: witness)])
        }
        let id = store.storeID
        try await store.close()
        let keyFile = dir.path(name + ".keys")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        return (dir.path(name), keyFile, id)
    }

    @Test("a shipper SIGKILLed mid-run leaves whole batches only; run again, every entry is there exactly once")
    func killAndResume() async throws {
        let (path, keyFile, id) = try await publishedStore("a.db", role: "inst_a", rows: 30_000)
        let child = try interruptedShipment(store: path, keyFile: keyFile, role: "inst_a", storeID: id, after: 300) { child in
            kill(child.processIdentifier, SIGKILL)
        }
        #expect(child.terminationReason == .uncaughtSignal && child.terminationStatus == SIGKILL, "the shipper finished before it was killed")
        try resumeAndCheck(store: path, keyFile: keyFile, role: "inst_a", storeID: id, rows: 30_000)
    }

    @Test("PostgreSQL restarted mid-run: the shipper fails or carries on; run again, every entry is there exactly once")
    func restartMidRun() async throws {
        let (path, keyFile, id) = try await publishedStore("b.db", role: "inst_b", rows: 30_000)
        let child = try interruptedShipment(store: path, keyFile: keyFile, role: "inst_b", storeID: id, after: 300) { _ in
            try self.server.restart()
        }
        #expect(child.terminationReason == .exit && [0, 2].contains(child.terminationStatus), "status \(child.terminationStatus)")
        try resumeAndCheck(store: path, keyFile: keyFile, role: "inst_b", storeID: id, rows: 30_000)
    }

    @Test("the shipping service ships on its clock, counts what it ships, and carries on after PostgreSQL restarts")
    func shippingService() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("s.db", role: "inst_a", signer: signer, rows: 500)
        let metrics = TestMetrics()
        let clock = ManualClock()
        let rounds = Mutex<[Int64]>([])
        try await withWitness(server.url("inst_a")) { witness in
            let shipper = CentralShipper(central: witness, witness: witness, configuration: .init(batchSize: 200), logger: Logger(label: "test"))
            let service = ShippingService(store: store, shipper: shipper, signer: signer, interval: .seconds(60), clock: clock,
                                          metricsFactory: metrics) { summary in rounds.withLock { $0.append(summary.shippedAfter) } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                try await clock.waitForSleepers()
                #expect(rounds.withLock { $0 } == [500])
                try await store.append(contentsOf: (501...800).map { sampleEvent($0) })
                // Every connection of the pool is cut: the next round fails or reconnects; either
                // way a later round ships the new rows, once.
                try self.server.restart()
                for _ in 0..<3 where rounds.withLock({ $0.last }) != 800 {
                    clock.advance(by: .seconds(60))
                    try await clock.waitForSleepers()
                }
                #expect(rounds.withLock { $0.last } == 800)
                group.cancelAll()
            }
        }
        let failed = try metrics.expectCounter("auditdb_ship_errors_total").totalValue
        #expect(rounds.withLock { $0.count } + Int(failed) >= 2)
        #expect(try metrics.expectCounter("auditdb_ship_entries_total").totalValue == 800)
        #expect(try metrics.expectGauge("auditdb_ship_high_water_seq").lastValue == 800)
        #expect(clock.sleeperCount == 0)
        let report = try await verify()
        #expect(report.isIntact, "\(report.text)")
        #expect(report.stores.map(\.entriesChecked) == [800])
        try await store.close()
    }
}
