@testable import AuditDBPostgres
import AuditDBTestSupport
import Foundation
import Logging
import Synchronization
import Testing

@testable import AuditDB

/// Rows that expire after they were shipped (FORMAT.md 22.7, late tombstones): the central copy
/// keeps them as shipped, the batch with their expiry entry ships their tombstones, and both
/// central verifiers prove the entry's digest with them; tampering with them is reported exactly.
extension ShippingTests {
    /// Expires every row of `tenant` older than a day (as if two days had passed).
    func expire(_ store: AuditStore, tenant: String) async throws -> RetentionReport {
        try await store.applyRetention(try RetentionPolicy(parsingDefault: "forever", tenants: [tenant: "1d"]),
                                       now: AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 86_400_000_000))
    }

    /// Runs `sql` as the superuser with the append-only trigger of `auditdb_ship.tombstones` off.
    func tamperLate(_ sql: String) throws {
        try server.psql("""
            ALTER TABLE auditdb_ship.tombstones DISABLE TRIGGER tombstones_no_change;
            \(sql);
            ALTER TABLE auditdb_ship.tombstones ENABLE TRIGGER tombstones_no_change;
            """)
    }

    @Test("rows shipped whole, then expired: the shipment of their expiry entry carries their late tombstones; both verifiers prove it, and find each change to them")
    func expiredAfterShipping() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 60)
        _ = try await ship(store, as: "inst_a", signer: signer, batchSize: 25)
        let retention = try await expire(store, tenant: "tenant-1")
        // Rows 1, 4, …, 58 (tenant-1; 60 is tenant-0): 20 rows, all shipped whole.
        #expect(retention.expired == 20 && retention.expiryEntries == [61])
        let second = try await ship(store, as: "inst_a", signer: signer, batchSize: 25)
        #expect(second.shipped == 1 && second.lateTombstones == 20)
        #expect(try server.psql("SELECT count(*), min(seq), max(seq), min(expiry_seq), max(expiry_seq) FROM auditdb_ship.tombstones") == "20|1|58|61|61\n")
        // The central rows stay as shipped: the tombstones table says which have expired since.
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries e JOIN auditdb_ship.tombstones t USING (store_id, seq) WHERE e.tenant = 'tenant-1' AND e.tombstone IS NULL") == "20\n")
        let report = try await verify()
        #expect(report.isIntact, "\(report.text)")
        #expect(report.stores.map(\.expiredAwaitingEntry) == [0])
        #expect(try outsideVerifier().status == 0)

        // A late tombstone's match tag changed: the entry at 61 no longer matches its digest.
        try tamperLate("UPDATE auditdb_ship.tombstones SET tombstone = set_byte(tombstone, 100, get_byte(tombstone, 100) # 1) WHERE seq = 4")
        #expect(findings(try await verify()) == ["changed 1...58"])
        var outside = try outsideVerifier()
        #expect(outside.status == 1 && outside.stdout.contains(": changed at seqs 1...58: "), "\(outside.stdout)\(outside.stderr)")
        try tamperLate("UPDATE auditdb_ship.tombstones SET tombstone = set_byte(tombstone, 100, get_byte(tombstone, 100) # 1) WHERE seq = 4")
        #expect(try await verify().isIntact)

        // A late tombstone deleted.
        let saved = try server.psql("SELECT encode(tombstone, 'hex') FROM auditdb_ship.tombstones WHERE seq = 7").trimmingCharacters(in: .whitespacesAndNewlines)
        try tamperLate("DELETE FROM auditdb_ship.tombstones WHERE seq = 7")
        #expect(findings(try await verify()) == ["changed 1...58"])
        try tamperLate("INSERT INTO auditdb_ship.tombstones VALUES ('\\x\(store.storeID.hex)', 7, '\\x\(saved)', 61)")
        #expect(try await verify().isIntact)

        // A late tombstone for row 2 (tenant-2, not expired) with row 2's leaf (row 7's bytes,
        // the seq and leaf replaced), naming a seq that is no expiry entry.
        let id = "'\\x\(store.storeID.hex)'"
        try tamperLate("""
            INSERT INTO auditdb_ship.tombstones VALUES (\(id), 2, overlay(overlay('\\x\(saved)'::bytea placing '\\x0000000000000002'::bytea from 1 for 8)
                placing (SELECT leaf FROM auditdb_ship.entries WHERE store_id = \(id) AND seq = 2) from 45 for 32), 59)
            """)
        let stray = try await verify()
        #expect(findings(stray) == ["changed 2...2"])
        #expect(stray.stores.first?.findings.first?.message.contains("which is no shipped expiry entry") == true)
        outside = try outsideVerifier()
        #expect(outside.status == 1 && outside.stdout.contains(": changed at seq 2: "), "\(outside.stdout)\(outside.stderr)")
        try await store.close()
    }

    @Test("an expired row is shipped only with a checkpoint covering its expiry entry: the run stops before one whose entry is newer; the rest follows with a newer checkpoint, the early tombstone counted once")
    func expiredRowsShippedEarlyAndLate() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("b.db", role: "inst_a", signer: signer, rows: 40)
        // tenant-1's rows expire (entry 41: rows 1, 4, …, 37; 40 was the newest row), then the
        // checkpoint at 41 is published, then tenant-2's rows expire (entry 42: rows 2, 5, …, 38).
        #expect(try await expire(store, tenant: "tenant-1").expiryEntries == [41])
        try await withWitness(server.url("inst_a")) { witness in
            _ = try await store.checkpoint(signer: signer, anchors: [WitnessAnchor(witness: witness)])
        }
        let second = try await expire(store, tenant: "tenant-2")
        #expect(second.expiryEntries == [42] && second.expired == 13)
        // Against the checkpoint at 41, row 2 (expired by entry 42) cannot go: only row 1 is shipped,
        // as a tombstone whose entry (41) that checkpoint covers.
        let early = try await ship(store, as: "inst_a", signer: nil, batchSize: 15)
        #expect(early.shippedAfter == 1 && early.heldBackAt == 2)
        #expect(try server.psql("SELECT seq, expiry_seq FROM auditdb_ship.entries") == "1|41\n")
        let awaiting = try await verify()
        #expect(awaiting.isIntact, "\(awaiting.text)")
        #expect(awaiting.stores.map(\.expiredAwaitingEntry) == [1])
        #expect(try outsideVerifier().status == 0)
        // Nothing more without a newer checkpoint.
        let again = try await ship(store, as: "inst_a", signer: nil, batchSize: 15)
        #expect(again.shipped == 0 && again.heldBackAt == 2)
        let late = try await ship(store, as: "inst_a", signer: signer, batchSize: 15)
        #expect(late.shippedAfter == 42 && late.heldBackAt == nil && late.lateTombstones == 1)
        // Entry 41's tombstone of row 1 again (equal to the one shipped in row 1).
        #expect(try server.psql("SELECT seq, expiry_seq FROM auditdb_ship.tombstones") == "1|41\n")
        let report = try await verify()
        #expect(report.isIntact, "\(report.text)")
        #expect(report.stores.map(\.expiredAwaitingEntry) == [0])
        #expect(try outsideVerifier().status == 0)
        // The late tombstone no longer equal to the expired row it repeats: reported at its seq
        // and left out (the row's own tombstone still gives the entry's digest).
        try tamperLate("UPDATE auditdb_ship.tombstones SET tombstone = set_byte(tombstone, 150, get_byte(tombstone, 150) # 1) WHERE seq = 1")
        let tampered = try await verify()
        #expect(findings(tampered) == ["changed 1...1"])
        #expect(tampered.stores.first?.findings.first?.message.contains("its late tombstone is not of this row") == true)
        let outside = try outsideVerifier()
        #expect(outside.status == 1 && outside.stdout.contains(": changed at seq 1: "), "\(outside.stdout)\(outside.stderr)")
        try await store.close()
    }
}

extension ShippingTests {
    @Test("a tombstone gone from the store since its rows were shipped: the shipment of its expiry entry is refused whole, nothing reaches the central tables")
    func lateTombstoneMissingLocally() async throws {
        let signer = try CheckpointSigner.inMemory()
        var store = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 60)
        _ = try await ship(store, as: "inst_a", signer: signer, batchSize: 25)
        #expect(try await expire(store, tenant: "tenant-1").expiryEntries == [61])
        _ = try await store.checkpoint(signer: signer)
        try await store.close()
        // The tombstone of row 4 (shipped whole, expired since) deleted with the sqlite3 shell.
        try sqlite3Tamper(dir.path("a.db"), "DELETE FROM audit_expired WHERE seq = 4;", around: "audit_expired_no_delete")
        store = try await AuditStore.open(at: dir.path("a.db"), keys: keys)
        await #expect {
            _ = try await self.ship(store, as: "inst_a", signer: signer, batchSize: 25)
        } throws: { error in
            guard let error = error as? AuditError else { return false }
            return error.code == .integrityViolation && error.message.contains("the expiry entry at seq 61 are not the ones it lists (19 found, 20 listed")
        }
        #expect(try server.psql("SELECT (SELECT max(last_seq) FROM auditdb_ship.batches), (SELECT count(*) FROM auditdb_ship.tombstones)") == "60|0\n")
        #expect(try await verify().isIntact)
        try await store.close()
    }
}

/// The central verifier reads the central tables in one snapshot.
extension ShippingTests {
    @Test("a batch committed while the verifier reads is not half seen: no rows 'above the highest batch', no finding")
    func shipmentDuringVerify() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 50)
        _ = try await ship(store, as: "inst_a", signer: signer)
        try await store.append(contentsOf: (51...80).map { sampleEvent($0) })
        let shipped = Mutex(Int64(0))
        let report = try await withWitness(server.url("auditor")) { witness in
            var verifier = ShippedVerifier(central: witness, witness: witness, logger: Logger(label: "test"))
            verifier.afterBatchesRead = {
                let summary = try await self.ship(store, as: "inst_a", signer: signer)
                shipped.withLock { $0 = summary.shippedAfter }
            }
            return try await verifier.verify()
        }
        #expect(shipped.withLock { $0 } == 80)
        #expect(report.isIntact, "\(report.text)")
        #expect(report.stores.map(\.highWaterMark) == [50])
        #expect(try await verify().stores.map(\.highWaterMark) == [80])
        try await store.close()
    }
}
