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
    /// Inserts checkpoint rows of `store` as role `inst_a` would without the signing key: zero
    /// chain head and root, each with a consistency proof from seq 20 (empty, so it fails).
    func insertJunkCheckpoints(_ store: AuditStore, _ rows: [(seq: Int64, publicKey: String, signature: String)]) throws {
        let id = store.storeID.hex, zeros = String(repeating: "00", count: 32)
        let values = rows.map { row in
            "('\\x\(id)', \(row.seq), '\\x\(zeros)', '\\x\(zeros)', 0, 1, '\\x\(row.publicKey)', '\\x\(row.signature)', '\\x\(id)', 20, ''::bytea)"
        }
        _ = try server.psql("""
            INSERT INTO auditdb_witness.checkpoints
                (store_id, seq, chain_head, merkle_root, signed_time, key_version, public_key, signature, proof_store_id, proof_from, proof)
            VALUES \(values.joined(separator: ", "))
            """, user: "inst_a")
    }

    /// A copy of the closed store `name` (its file and -wal) as `copy`: another copy of the log.
    func copyStore(_ name: String, to copy: String) throws {
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: dir.path(name) + suffix) {
            try FileManager.default.copyItem(atPath: dir.path(name) + suffix, toPath: dir.path(copy) + suffix)
        }
    }

    /// Store `a.db` (role inst_a) shipped to 20 rows, copied to `old.db` (a backup at 20 rows:
    /// the rollback's starting point), then grown to 30 rows and shipped again; both closed.
    func shippedWithBackup() async throws -> CheckpointSigner {
        let signer = try CheckpointSigner.inMemory()
        var store = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 20)
        #expect(try await ship(store, as: "inst_a", signer: signer).shippedAfter == 20)
        try await store.close()
        try copyStore("a.db", to: "old.db")
        store = try await AuditStore.open(at: dir.path("a.db"), keys: keys)
        try await store.append(contentsOf: (21...30).map { sampleEvent($0) })
        #expect(try await ship(store, as: "inst_a", signer: signer).shippedAfter == 30)
        try await store.close()
        return signer
    }

    @Test("a rolled-back copy of the store that grew again is refused: nothing is shipped on top of the other log's rows")
    func forkedCopyRefused() async throws {
        let signer = try await shippedWithBackup()
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

    @Test("a store put back to a backup at a published seq, or replaced by a copy of the same length, is refused even with nothing new to ship")
    func rolledBackWithNothingNew() async throws {
        let signer = try await shippedWithBackup()
        // The backup at 20 rows: its checkpoint at 20 is at the witness already, the newest one
        // (30) is above what it holds. Before, this was "nothing to ship", exit 0.
        let rolledBack = try await AuditStore.open(at: dir.path("old.db"), keys: keys)
        for signing in [signer, nil] {
            await #expect(performing: { _ = try await self.ship(rolledBack, as: "inst_a", signer: signing) }, throws: { error in
                let error = error as? AuditError
                return error?.code == .integrityViolation
                    && error?.message.contains("the central copy holds entries 1...30 of this store, but this store ends at seq 20: it was rolled back") == true
            })
        }
        // Grown again to exactly 30 other rows, and shipped without publishing: the newest
        // checkpoint is still the real one at 30, so there is nothing new; its rows are not the
        // ones shipped.
        try await rolledBack.append(contentsOf: (21...30).map { sampleEvent($0, actor: "other-\($0)") })
        await #expect(performing: { _ = try await self.ship(rolledBack, as: "inst_a", signer: nil) }, throws: { error in
            let error = error as? AuditError
            return error?.code == .integrityViolation
                && error?.message.contains("this store is another copy of the log (forked, rewritten or rolled back)") == true
        })
        #expect(try server.psql("SELECT count(*), max(seq) FROM auditdb_ship.entries") == "30|30\n")
        try await rolledBack.close()
        // The real store still ships on.
        let store = try await AuditStore.open(at: dir.path("a.db"), keys: keys)
        #expect(try await ship(store, as: "inst_a", signer: signer).shippedAfter == 30)
        try await store.close()
    }

    @Test("a checkpoint another copy of the store published above this store's last row: refused, naming the fork, not 'cannot be read'")
    func checkpointAboveTheStore() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 20)
        #expect(try await ship(store, as: "inst_a", signer: signer).shippedAfter == 20)
        try await store.close()
        try copyStore("a.db", to: "copy.db")
        // The copy grows to 25 rows and publishes its checkpoint (it extends the one at 20).
        let copy = try await AuditStore.open(at: dir.path("copy.db"), keys: keys)
        try await copy.append(contentsOf: (21...25).map { sampleEvent($0, actor: "copy-\($0)") })
        try await withWitness(server.url("inst_a")) { witness in
            _ = try await copy.checkpoint(signer: signer, anchors: [WitnessAnchor(witness: witness)])
        }
        try await copy.close()
        let real = try await AuditStore.open(at: dir.path("a.db"), keys: keys)
        await #expect(performing: { _ = try await self.ship(real, as: "inst_a", signer: nil) }, throws: { error in
            let error = error as? AuditError
            return error?.code == .integrityViolation
                && error?.message.contains("the checkpoint to ship against is at seq 25, above this store's last row (seq 20): another copy of the store signed and published it") == true
        })
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries") == "20\n")
        try await real.close()
    }

    @Test("a backup restored and grown again ships nothing when the live copy published a checkpoint above the high-water mark (its proof fell back below it); the live copy proves its next checkpoint from its own, not the other copy's, and is refused too until the fork is resolved; verify-shipped of an unknown id is an error")
    func rollbackPastAnUnshippedCheckpoint() async throws {
        let signer = try CheckpointSigner.inMemory()
        let first = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 10)
        #expect(try await ship(first, as: "inst_a", signer: signer).shippedAfter == 10)
        try await first.close()
        try copyStore("a.db", to: "old.db")  // the backup, at the high-water mark
        // The live copy grows to 15 and publishes (as an app's CheckpointService does) before its shipper runs.
        let grown = try await AuditStore.open(at: dir.path("a.db"), keys: keys)
        try await grown.append(contentsOf: (11...15).map { sampleEvent($0) })
        try await withWitness(server.url("inst_a")) { witness in
            _ = try await grown.checkpoint(signer: signer, anchors: [WitnessAnchor(witness: witness)])
        }
        try await grown.close()
        // The backup is restored elsewhere and grows to 20 other rows. Its checkpoint at 20 cannot
        // be proven from 15, so it is published with a proof from 10 (evidence of the fork), and
        // its rows 11...20 hash to it: before, they were shipped.
        let restored = try await AuditStore.open(at: dir.path("old.db"), keys: keys)
        try await restored.append(contentsOf: (11...20).map { sampleEvent($0, actor: "other-\($0)") })
        await #expect(performing: { _ = try await self.ship(restored, as: "inst_a", signer: signer) }, throws: { error in
            let error = error as? AuditError
            return error?.code == .integrityViolation
                && error?.message.contains("which this store's rows do not give (another Merkle root at seq 15): another copy of the store published it (a fork), or this store was rolled back and grew again. Nothing was shipped.") == true
        })
        try await restored.close()
        #expect(try server.psql("SELECT count(*), max(seq) FROM auditdb_ship.entries") == "10|10\n")
        #expect(try server.psql("SELECT proof_from FROM auditdb_witness.checkpoints WHERE seq = 20") == "10\n")

        // The live copy grows to 21: the newest checkpoint below it is the other copy's at 20,
        // which it does not extend; its own at 15 is tried next, not one below 15.
        let live = try await AuditStore.open(at: dir.path("a.db"), keys: keys)
        try await live.append(contentsOf: (16...21).map { sampleEvent($0) })
        await #expect(performing: { _ = try await self.ship(live, as: "inst_a", signer: signer) }, throws: { error in
            let error = error as? AuditError
            return error?.code == .integrityViolation
                && error?.message.contains("which this store's rows do not give (another Merkle root at seq 20)") == true
        })
        #expect(try server.psql("SELECT proof_from FROM auditdb_witness.checkpoints WHERE seq = 21") == "15\n")
        #expect(try server.psql("SELECT count(*), max(seq) FROM auditdb_ship.entries") == "10|10\n")
        try await live.close()

        // The central verifier, pinned to an id it holds nothing of: an error, not "intact: 0 store(s)".
        let unknown = String(repeating: "ab", count: 16)
        let verified = try run(try builtProduct("auditdb-fleet"), ["verify-shipped", "--to", server.url("auditor"), "--store-id", unknown])
        #expect(verified.status == 2, "\(verified.stdout)\(verified.stderr)")
        #expect(verified.stderr.contains("the central database holds no shipped entry or batch of store \(unknown): nothing was verified"), "\(verified.stderr)")
        #expect(verified.stdout.isEmpty)
    }

    @Test("a checkpoint published before its key was registered ships once the key is registered (the registration, not the flag set at publication, decides)")
    func keyRegisteredAfterPublication() async throws {
        let signer = try CheckpointSigner.inMemory(versions: [1, 2])  // signs with version 2
        let onlyV1 = CheckpointPublicKeys(signer.publicKeys.keys.filter { $0.version == 1 })
        let store = try await AuditStore.create(at: dir.path("a.db"), keys: keys)
        let id = store.storeID
        // Registered with version 1 only: shipping with version 2 is refused before anything is
        // published or checkpointed...
        try await withWitness(server.url(PostgresServer.owner)) {
            try await $0.register(store: id, publisher: "inst_a", publicKeys: onlyV1, label: "a.db")
        }
        try await store.append(contentsOf: (1...10).map { sampleEvent($0) })
        await #expect(performing: { _ = try await self.ship(store, as: "inst_a", signer: signer) }, throws: { error in
            (error as? AuditError)?.message.hasPrefix("checkpoint key version 2 is not registered for store \(id) at the witness (or the store is not registered to this role): nothing was published.") == true
        })
        #expect(try server.psql("SELECT count(*) FROM auditdb_witness.checkpoints") == "0\n")
        #expect(try await store.checkpoints().isEmpty)
        // ...but a version-2 checkpoint published anyway (by a publisher role) is recorded
        // (unknown-key for now), and nothing ships against it.
        _ = try await withWitness(server.url("inst_a")) { witness in
            try await publishBypassingRegistration(store, signer: signer, to: witness)
        }
        await #expect(performing: { _ = try await self.ship(store, as: "inst_a", signer: nil) }, throws: { error in
            (error as? AuditError)?.message.contains("signed with a key registered for it") == true
        })
        #expect(try server.psql("SELECT count(*) FILTER (WHERE key_registered), count(*) FROM auditdb_witness.checkpoints") == "0|1\n")
        // The owner registers version 2 now: the checkpoint counts, and its batch ships.
        try await withWitness(server.url(PostgresServer.owner)) {
            try await $0.register(store: id, publisher: "inst_a", publicKeys: signer.publicKeys, label: "a.db")
        }
        let shipped = try await ship(store, as: "inst_a", signer: nil)
        #expect(shipped.shippedAfter == 10 && shipped.checkpoint?.seq == 10)
        // And the next shipment continues on it (its tip is that checkpoint).
        try await store.append(contentsOf: (11...12).map { sampleEvent($0) })
        #expect(try await ship(store, as: "inst_a", signer: signer).shippedAfter == 12)
        #expect(try await verify().stores.map(\.entriesChecked) == [12])
        try await store.close()
    }

    @Test("junk rows at the seqs between two real checkpoints do not block the next publication or shipment")
    func junkBelowTheNextCheckpoint() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 20)
        #expect(try await ship(store, as: "inst_a", signer: signer).shippedAfter == 20)
        let registered = try #require(signer.publicKeys.keys.first).bytes.map { String(format: "%02x", $0) }.joined()
        // 40 rows at seqs 21...24 (more than the 16 newest an unfiltered look would try), each
        // with the registered key, a junk signature and a proof from the real checkpoint at 20.
        try insertJunkCheckpoints(store, (0..<40).map { i in (Int64(21 + i % 4), registered, String(format: "%0128x", i + 1)) })
        try await store.append(contentsOf: (21...25).map { sampleEvent($0) })
        let shipped = try await ship(store, as: "inst_a", signer: signer)
        #expect(shipped.shippedAfter == 25 && shipped.checkpoint?.seq == 25)
        #expect(try server.psql("SELECT proof_from, proof_valid FROM auditdb_witness.checkpoints WHERE seq = 25") == "20|t\n")
        try await store.close()
    }

    @Test("checkpoint rows a publisher role inserted without the signing key (junk signatures, an unregistered key) do not bound or block shipping")
    func untrustedCheckpointsIgnored() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 20)
        #expect(try await ship(store, as: "inst_a", signer: signer).shippedAfter == 20)
        try await store.append(contentsOf: (21...25).map { sampleEvent($0) })
        let registered = try #require(signer.publicKeys.keys.first).bytes.map { String(format: "%02x", $0) }.joined()
        let junk = String(repeating: "ab", count: 64)
        // 70 rows (more than one page) naming the registered key with a junk signature, and one
        // signed by nobody's registered key, all above the store's real length.
        try insertJunkCheckpoints(store, (Int64(1_000_000)..<1_000_070).map { ($0, registered, junk) }
                                  + [(2_000_000, String(repeating: "11", count: 32), junk)])
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
