import AuditDBPostgres
import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// What a shipment trusts: the rows already shipped must be this store's (a forked or
/// rolled-back copy of the store is refused before it ships on top of them), and only a
/// checkpoint signed with a key registered for the store bounds a shipment (rows a publisher
/// role inserts without the signing key neither decide nor block it).
extension ShippingTests {
    @Test("a rolled-back copy of the store that grew again is refused: nothing is shipped on top of the other log's rows")
    func forkedCopyRefused() async throws {
        let signer = try CheckpointSigner.inMemory()
        var store = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 20)
        #expect(try await ship(store, as: "inst_a", signer: signer).shippedAfter == 20)
        try await store.close()
        // The file as it was at 20 rows: the rollback's starting point.
        let files = ["", "-wal"].filter { FileManager.default.fileExists(atPath: dir.path("a.db") + $0) }
        for suffix in files { try FileManager.default.copyItem(atPath: dir.path("a.db") + suffix, toPath: dir.path("old.db") + suffix) }
        store = try await AuditStore.open(at: dir.path("a.db"), keys: keys)
        try await store.append(contentsOf: (21...30).map { sampleEvent($0) })
        #expect(try await ship(store, as: "inst_a", signer: signer).shippedAfter == 30)
        try await store.close()
        // The old copy grows to 35 other rows; its checkpoint publishes (the auditor reports the
        // rollback), but its rows 21...30 are not the ones the central copy holds.
        let rolledBack = try await AuditStore.open(at: dir.path("old.db"), keys: keys)
        try await rolledBack.append(contentsOf: (21...35).map { sampleEvent($0, actor: "other-\($0)") })
        await #expect(performing: { _ = try await self.ship(rolledBack, as: "inst_a", signer: signer) }, throws: { error in
            let error = error as? AuditError
            return error?.code == .integrityViolation
                && error?.message.contains("the central copy's entries 1...30 were proven against checkpoint") == true
                && error?.message.contains("this store is another copy of the log (forked, rewritten or rolled back)") == true
        })
        #expect(try server.psql("SELECT count(*), max(seq) FROM auditdb_ship.entries") == "30|30\n")
        let report = try await verify()
        #expect(report.isIntact, "\(report.text)")
        try await rolledBack.close()
    }

    @Test("checkpoint rows a publisher role inserted without the signing key (junk signatures, an unregistered key) do not bound or block shipping")
    func untrustedCheckpointsIgnored() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 20)
        #expect(try await ship(store, as: "inst_a", signer: signer).shippedAfter == 20)
        try await store.append(contentsOf: (21...25).map { sampleEvent($0) })
        let registered = try #require(signer.publicKeys.keys.first).bytes.map { String(format: "%02x", $0) }.joined()
        let zeros = String(repeating: "00", count: 32), junk = String(repeating: "ab", count: 64)
        // 70 rows (more than one page) naming the registered key with a junk signature, and one
        // signed by nobody's registered key, all above the store's real length.
        var values: [String] = []
        for seq in 1_000_000..<1_000_070 {
            values.append("('\\x\(store.storeID.hex)', \(seq), '\\x\(zeros)', '\\x\(zeros)', 0, 1, '\\x\(registered)', '\\x\(junk)', '\\x\(store.storeID.hex)', 20, ''::bytea)")
        }
        values.append("('\\x\(store.storeID.hex)', 2000000, '\\x\(zeros)', '\\x\(zeros)', 0, 1, '\\x\(String(repeating: "11", count: 32))', '\\x\(junk)', '\\x\(store.storeID.hex)', 20, ''::bytea)")
        _ = try server.psql("""
            INSERT INTO auditdb_witness.checkpoints
                (store_id, seq, chain_head, merkle_root, signed_time, key_version, public_key, signature, proof_store_id, proof_from, proof)
            VALUES \(values.joined(separator: ", "))
            """, user: "inst_a")
        #expect(try server.psql("SELECT count(*) FILTER (WHERE key_registered), count(*) FROM auditdb_witness.checkpoints") == "71|72\n")
        // Without a new publication, the newest trusted checkpoint is still seq 20: nothing to ship.
        let idle = try await ship(store, as: "inst_a", signer: nil)
        #expect(idle.shipped == 0 && idle.checkpoint == nil)
        // Publishing the real one (seq 25) ships up to it, past the junk rows.
        let shipped = try await ship(store, as: "inst_a", signer: signer)
        #expect(shipped.shippedAfter == 25 && shipped.checkpoint?.seq == 25)
        let report = try await verify()
        #expect(report.stores.map(\.entriesChecked) == [25])
        try await store.close()
    }
}
