@testable import AuditDBPostgres
import AuditDBTestSupport
import Foundation
import Logging
import Testing

@testable import AuditDB

/// Rows erased after they were shipped (FORMAT.md 22.7): the batch that ships the erasure entry
/// erases them in the central table too, and both central verifiers still prove every row. Only
/// that change gets past the append-only trigger, and only through the batch trigger.
extension ShippingTests {
    /// `seq:erased:withheld` of every central row with a bit in `erased`, in seq order.
    func erasedRows() throws -> String {
        try server.psql("SELECT string_agg(seq || ':' || erased || ':' || withheld, ',' ORDER BY seq) FROM auditdb_ship.entries WHERE erased <> 0")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("rows erased after they were shipped: shipping the erasure entry erases the fields centrally (value and nonce gone, bit in `erased`, commitment kept); both verifiers prove every row")
    func erasedAfterShipping() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("erased.db", role: "inst_a", signer: signer, rows: 60)
        // Every row shipped whole, `source` withheld.
        #expect(try await ship(store, as: "inst_a", signer: signer, batchSize: 25, withholding: [.source]).shipped == 60)
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries WHERE actor = 'user-3'") == "9\n")
        let commitments = try server.psql("SELECT string_agg(encode(actor_commitment || source_commitment || details_commitment, 'hex'), ',' ORDER BY seq) FROM auditdb_ship.entries")

        // Actor user-3 (rows 3, 10, …, 59): actor and source erased; rows 5 and 6: a path inside details.
        // (A reason may hold U+2028 or a bidirectional control, written escaped in the entry: the
        // central database reads the entry whatever its encoding.)
        let byActor = try await store.erase(.actor("user-3"), fields: [.actor, .source], reason: "ticket-21 \u{2028}\u{202E}")
        #expect(byActor.erased == [3, 10, 17, 24, 31, 38, 45, 52, 59])
        let byPath = try await store.erase(.seqs([5, 6]), fields: [], paths: [try MaskPath(parsing: "details.note")], reason: "ticket-22")
        #expect(byPath.erased == [5, 6])
        let second = try await ship(store, as: "inst_a", signer: signer, batchSize: 25, withholding: [.source])
        #expect(second.shipped == 2)

        // The actor is gone from every central row (the erasure entries never name it); source was
        // withheld already (its bit stays in `withheld`); rows 5 and 6 lose details whole.
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries e WHERE e::text LIKE '%user-3%'") == "0\n")
        #expect(try erasedRows() == "3:1:2,5:4:2,6:4:2,10:1:2,17:1:2,24:1:2,31:1:2,38:1:2,45:1:2,52:1:2,59:1:2")
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries WHERE (erased & 1 = 1 AND (actor IS NOT NULL OR actor_nonce IS NOT NULL)) OR (erased & 4 = 4 AND (details IS NOT NULL OR details_nonce IS NOT NULL))") == "0\n")
        #expect(try server.psql("SELECT string_agg(encode(actor_commitment || source_commitment || details_commitment, 'hex'), ',' ORDER BY seq) FROM auditdb_ship.entries WHERE seq <= 60")
            == commitments)
        let report = try await verify()
        #expect(report.isIntact, "\(report.text)")
        let outside = try outsideVerifier()
        #expect(outside.status == 0, "\(outside.stdout)\(outside.stderr)")

        // Shipping it again changes nothing; neither does installing the schema again (which applies
        // every shipped erasure entry, for central databases made before this).
        #expect(try await ship(store, as: "inst_a", signer: signer).shipped == 0)
        try await withWitness(server.url(PostgresServer.owner)) { try await $0.installSchema() }
        #expect(try erasedRows() == "3:1:2,5:4:2,6:4:2,10:1:2,17:1:2,24:1:2,31:1:2,38:1:2,45:1:2,52:1:2,59:1:2")
        try await store.close()
    }

    @Test("the central copy of an erasure: an instance cannot run it, the owner's UPDATE of anything else is still refused, and a central database of an earlier version catches up when the schema is installed again")
    func centralErasureGuarded() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("guard.db", role: "inst_a", signer: signer, rows: 20)
        _ = try await ship(store, as: "inst_a", signer: signer, batchSize: 10)
        let id = "'\\x\(store.storeID.hex)'::bytea"

        #expect(try server.psqlError("SELECT auditdb_ship.apply_lifecycle(\(id), 1, 20)", user: "inst_a")
            .contains("permission denied for function apply_lifecycle"))
        // The owner (even with the setting the batch trigger uses) may not change a value, nor
        // erase a field without its bit, nor set a bit without erasing.
        for change in ["tenant = 'tenant-9'", "actor = NULL, actor_nonce = NULL", "erased = 1", "actor = NULL, actor_nonce = NULL, erased = 3",
                       "leaf = sha256(leaf)", "erased = 0"] {
            let error = try server.psqlError("""
                BEGIN; SET LOCAL auditdb_ship.applying = 'on';
                UPDATE auditdb_ship.entries SET \(change) WHERE store_id = \(id) AND seq = 3; COMMIT;
                """, user: PostgresServer.owner)
            #expect(error.contains("append-only: UPDATE is refused"), "\(change): \(error)")
        }
        // An erasure shipped by a shipper of the earlier version (its batch trigger did not apply
        // it): the rows of user-3 still show their actor until the schema is installed again.
        let erased = try await store.erase(.actor("user-3"), fields: [.actor], reason: "ticket-23")
        #expect(erased.erased == [3, 10, 17])
        try server.psql("ALTER TABLE auditdb_ship.batches DISABLE TRIGGER batches_insert")
        _ = try await ship(store, as: "inst_a", signer: signer)
        try server.psql("ALTER TABLE auditdb_ship.batches ENABLE TRIGGER batches_insert")
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries WHERE actor = 'user-3'") == "3\n")
        try await withWitness(server.url(PostgresServer.owner)) { try await $0.installSchema() }
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries WHERE actor = 'user-3'") == "0\n")
        #expect(try erasedRows() == "3:1:0,10:1:0,17:1:0")
        #expect(try await verify().isIntact)
        #expect(try outsideVerifier().status == 0)

        // An erasure entry whose details do not read as 21.3 says (inserted by the owner, as a
        // shipper that forged one would): its batch is refused, naming it.
        let error = try server.psqlError("""
            BEGIN;
            INSERT INTO auditdb_ship.entries (store_id, seq, recorded_at, action, origin, details, leaf, outcome, severity, format_version, key_version)
                VALUES (\(id), 22, now(), 'auditdb.erasure', 0, '{"fields":["name"],"seqs":[1]}', sha256('x'), 0, 0, 2, 1);
            INSERT INTO auditdb_ship.batches (store_id, first_seq, last_seq, checkpoint_seq, checkpoint_signature, proof)
                SELECT store_id, 22, 22, checkpoint_seq, checkpoint_signature, '' FROM auditdb_ship.batches WHERE store_id = \(id) ORDER BY last_seq DESC LIMIT 1;
            COMMIT;
            """, user: PostgresServer.owner)
        #expect(error.contains("the erasure entry at seq 22 of store \(store.storeID.hex) does not read as FORMAT.md 21.3 says: its members are not"), "\(error)")

        // The same entry shipped before this version checked them (the batch trigger off), and
        // another store's erasure shipped unapplied: the next installation of the schema names
        // the first store in a warning, completes, and applies the other store's erasure.
        let other = try await registeredStore("other.db", role: "inst_b", signer: signer, rows: 10)
        _ = try await ship(other, as: "inst_b", signer: signer)
        #expect(try await other.erase(.actor("user-5"), fields: [.actor], reason: "ticket-24").erased == [5])
        try server.psql("ALTER TABLE auditdb_ship.batches DISABLE TRIGGER batches_insert")
        _ = try await ship(other, as: "inst_b", signer: signer)
        try server.psql("ALTER TABLE auditdb_ship.batches ENABLE TRIGGER batches_insert")
        let otherID = "'\\x\(other.storeID.hex)'::bytea"
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries WHERE store_id = \(otherID) AND actor = 'user-5'") == "1\n")
        try server.psql("""
            ALTER TABLE auditdb_ship.batches DISABLE TRIGGER batches_insert;
            INSERT INTO auditdb_ship.entries (store_id, seq, recorded_at, action, origin, details, leaf, outcome, severity, format_version, key_version)
                VALUES (\(id), 22, now(), 'auditdb.erasure', 0, '{"seqs":[1]}', sha256('x'), 0, 0, 2, 1);
            INSERT INTO auditdb_ship.batches (store_id, first_seq, last_seq, checkpoint_seq, checkpoint_signature, proof)
                SELECT store_id, 22, 22, 22, checkpoint_signature, '' FROM auditdb_ship.batches WHERE store_id = \(id) ORDER BY last_seq DESC LIMIT 1;
            ALTER TABLE auditdb_ship.batches ENABLE TRIGGER batches_insert;
            """)
        let install = try server.psqlFile(FormatVectorTests.root.path + "/postgres/witness_shipping.sql", user: PostgresServer.owner)
        #expect(install.status == 0)
        #expect(install.stderr.contains("WARNING:  AuditDB: the erasure entries shipped for store \(store.storeID.hex) were not applied to its central rows: the erasure entry at seq 22"),
                "\(install.stderr)")
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries WHERE store_id = \(otherID) AND actor = 'user-5'") == "0\n")
        try await store.close()
        try await other.close()
    }
}
