import AuditDBPostgres
import AuditDBTestSupport
import Foundation
import Logging
import MetricsTestKit
import PostgresNIO
import Testing

@testable import AuditDB

/// The PostgreSQL witness against a real server the test starts: publication with proofs,
/// append-only tables, row-level security, and hostile input from an instance's role.
@Suite("Fleet: PostgreSQL witness", .serialized)
final class WitnessTests: Sendable {
    let server: PostgresServer
    let dir: TemporaryDirectory
    let keys: KeyRing

    init() async throws {
        server = try await PostgresServer.withWitnessSchema(publishers: ["inst_a", "inst_b"])
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
    }

    deinit { server.stop() }

    func events(_ range: ClosedRange<Int>, tag: String = "x") -> [AuditEvent] {
        range.map { AuditEvent(actor: "user-\($0)", action: "doc.\(tag)", tenant: "t1") }
    }

    /// A store with `rows` rows, registered to `role` with `signer`'s public keys.
    func registeredStore(_ name: String, role: String, signer: CheckpointSigner, rows: Int = 3) async throws -> AuditStore {
        let store = try await AuditStore.create(at: dir.path(name), keys: keys)
        try await store.append(contentsOf: events(1...rows))
        let id = store.storeID
        try await withWitness(server.url(PostgresServer.owner)) {
            try await $0.register(store: id, publisher: role, publicKeys: signer.publicKeys, label: name)
        }
        return store
    }

    @Test("checkpoints publish with proofs the witness checks itself; a replay adds nothing; the audit is intact")
    func publishAndReplay() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("a.db", role: "inst_a", signer: signer)
        let url = server.url("inst_a")
        let published = try await withWitness(url) { witness in
            let anchor = WitnessAnchor(witness: witness)
            var cps: [Checkpoint] = []
            for batch in [4...6, 7...20, 21...21] {
                try await store.append(contentsOf: self.events(batch))
                cps.append(try await store.checkpoint(signer: signer, anchors: [anchor]))
            }
            // The same checkpoint again (e.g. a retry after a lost reply): nothing added.
            #expect(try await witness.publish(cps[2], proof: try await store.consistencyProof(from: cps[1], to: cps[2])) == .alreadyHeld)
            return cps
        }
        #expect(published.map(\.seq) == [6, 20, 21])
        #expect(try server.psql("SELECT seq, proof_from, proof_valid, key_registered, published_by FROM auditdb_witness.checkpoints ORDER BY id")
            == "6|||t|inst_a\n20|6|t|t|inst_a\n21|20|t|t|inst_a\n")
        let report = try await withWitness(server.url("auditor")) { witness in
            try await FleetAuditor(witness: witness, logger: .init(label: "t")).audit()
        }
        #expect(report.isIntact, "\(report.text)")
        #expect(report.stores.map(\.highestSeq) == [21])
        #expect(report.stores.map(\.publications) == [3])
        try await store.close()
    }

    @Test("append-only inside PostgreSQL: UPDATE, DELETE and TRUNCATE are refused for the instance and for the owner")
    func appendOnly() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("a.db", role: "inst_a", signer: signer)
        try await withWitness(server.url("inst_a")) { witness in
            _ = try await store.checkpoint(signer: signer, anchors: [WitnessAnchor(witness: witness)])
        }
        for user in ["inst_a", PostgresServer.owner] {
            for sql in ["UPDATE auditdb_witness.checkpoints SET seq = 99", "DELETE FROM auditdb_witness.checkpoints",
                        "TRUNCATE auditdb_witness.checkpoints", "DELETE FROM auditdb_witness.keys", "UPDATE auditdb_witness.stores SET publisher = 'inst_b'"]
            {
                let error = try server.psqlError(sql, user: user)
                #expect(error.contains(user == "inst_a" ? "permission denied" : "append-only"), "\(user): \(sql): \(error)")
            }
        }
        #expect(try server.psql("SELECT count(*) FROM auditdb_witness.checkpoints") == "1\n")
        try await store.close()
    }

    @Test("hostile input from an instance: another store's id, malformed rows, a proof of another store or from an unknown seq, no proof")
    func hostileInput() async throws {
        let signerA = try CheckpointSigner.inMemory(), signerB = try CheckpointSigner.inMemory()
        let a = try await registeredStore("a.db", role: "inst_a", signer: signerA)
        let b = try await registeredStore("b.db", role: "inst_b", signer: signerB)
        let cpA = try await a.checkpoint(signer: signerA)
        try await a.append(contentsOf: events(4...9))
        let cpA2 = try await a.checkpoint(signer: signerA)
        let cpB = try await b.checkpoint(signer: signerB)
        try await withWitness(server.url("inst_a")) { witness in
            // Another store's id, even with that store's valid checkpoint: row-level security.
            do {
                _ = try await witness.publish(cpB, proof: nil)
                Issue.record("inst_a published for store b")
            } catch let error as AuditError {
                #expect(error.code == .permissionDenied)
                #expect(error.message.contains("row-level security"))
            }
            #expect(try await witness.publish(cpA, proof: nil) == .recorded(keyRegistered: true, proofValid: nil))
            // A later publication without a proof.
            await #expect(throws: AuditError.self) { _ = try await witness.publish(cpA2, proof: nil) }
            // A proof of another store (b's id on a's checkpoint).
            let proof = try await a.consistencyProof(from: cpA, to: cpA2)
            let foreign = ConsistencyProof(storeID: b.storeID, fromSeq: proof.fromSeq, toSeq: proof.toSeq, hashes: proof.hashes)
            do {
                _ = try await witness.publish(cpA2, proof: foreign)
                Issue.record("a proof of another store was accepted")
            } catch let error as AuditError {
                #expect(error.message.contains("the consistency proof is for another store than the checkpoint"))
            }
            // A proof from a seq the witness never held for this store.
            let fromNowhere = ConsistencyProof(storeID: a.storeID, fromSeq: 2, toSeq: cpA2.seq, hashes: proof.hashes)
            do {
                _ = try await witness.publish(cpA2, proof: fromNowhere)
                Issue.record("a proof from an unpublished seq was accepted")
            } catch let error as AuditError {
                #expect(error.message.contains("starts at a seq this store never published here"))
            }
            // A checkpoint whose own signature fails is not even sent.
            let forged = Checkpoint(storeID: cpA2.storeID, seq: cpA2.seq, chainHead: cpA2.chainHead, merkleRoot: cpA2.merkleRoot,
                                    time: cpA2.time, keyVersion: cpA2.keyVersion, publicKey: cpA2.publicKey,
                                    signature: [cpA2.signature[0] ^ 1] + cpA2.signature.dropFirst())
            await #expect(throws: AuditError.self) { _ = try await witness.publish(forged, proof: proof) }
            // The right publication goes through, and its replay adds nothing.
            #expect(try await witness.publish(cpA2, proof: proof) == .recorded(keyRegistered: true, proofValid: true))
            #expect(try await witness.publish(cpA2, proof: proof) == .alreadyHeld)
            // The instance sees its own store's rows only.
            #expect(try await witness.checkpoints(of: b.storeID, below: 100).isEmpty)
        }
        // Malformed rows sent as raw SQL by the instance's role (bypassing the client).
        let id = a.storeID.hex
        let malformed = [
            "INSERT INTO auditdb_witness.checkpoints (store_id, seq, chain_head, merkle_root, signed_time, key_version, public_key, signature) VALUES ('\\x\(id)', 0, '\\x\(String(repeating: "00", count: 32))', '\\x\(String(repeating: "00", count: 32))', 0, 1, '\\x\(String(repeating: "00", count: 32))', '\\x\(String(repeating: "00", count: 64))')",
            "INSERT INTO auditdb_witness.checkpoints (store_id, seq, chain_head, merkle_root, signed_time, key_version, public_key, signature, proof_store_id, proof_from, proof) VALUES ('\\x\(id)', 50, '\\x\(String(repeating: "00", count: 31))', '\\x\(String(repeating: "00", count: 32))', 0, 1, '\\x\(String(repeating: "00", count: 32))', '\\x\(String(repeating: "00", count: 64))', '\\x\(id)', 3, '\\x00')",
            "INSERT INTO auditdb_witness.checkpoints (store_id, seq, chain_head, merkle_root, signed_time, key_version, public_key, signature, proof_from, proof) VALUES ('\\x\(id)', 50, '\\x\(String(repeating: "00", count: 32))', '\\x\(String(repeating: "00", count: 32))', 0, 1, '\\x\(String(repeating: "00", count: 32))', '\\x\(String(repeating: "00", count: 64))', 3, '\\x')",
        ]
        for sql in malformed {
            #expect(try !server.psqlError(sql, user: "inst_a").isEmpty, "accepted: \(sql)")
        }
        #expect(try server.psql("SELECT count(*) FROM auditdb_witness.checkpoints") == "2\n")
        // Once b has published, inst_a's replay of b's checkpoint, or a later one of b's without a
        // proof, is refused the same way: nothing tells inst_a whether b has published.
        try await b.append(contentsOf: events(4...6))
        let cpB2 = try await b.checkpoint(signer: signerB)
        let published = try await withWitness(server.url("inst_b")) { witness in try await witness.publish(cpB, proof: nil) }
        #expect(published == .recorded(keyRegistered: true, proofValid: nil))
        let proofB = try await b.consistencyProof(from: cpB, to: cpB2)
        let attempts: [(Checkpoint, ConsistencyProof?)] = [(cpB, nil), (cpB2, nil), (cpB2, proofB)]
        try await withWitness(server.url("inst_a")) { witness in
            for (checkpoint, proof) in attempts {
                await #expect(performing: { _ = try await witness.publish(checkpoint, proof: proof) }, throws: { error in
                    let error = error as? AuditError
                    return error?.code == .permissionDenied
                        && error?.message.contains("row-level security: role inst_a may not publish checkpoints of store \(b.storeID.hex)") == true
                })
            }
        }
        #expect(try server.psql("SELECT count(*) FROM auditdb_witness.checkpoints") == "3\n")
        try await a.close()
        try await b.close()
    }
}
