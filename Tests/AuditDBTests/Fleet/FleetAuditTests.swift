import AuditDBPostgres
import AuditDBTestSupport
import Foundation
import Logging
import MetricsTestKit
import Testing

@testable import AuditDB
@testable import AuditDBPostgres

/// The fleet auditor against a real PostgreSQL witness with injected faults: a forked store (two
/// diverging copies), a rolled-back store, a silent store, a store publishing under a wrong key;
/// each reported exactly, and nothing else.
@Suite("Fleet: auditor", .serialized)
final class FleetAuditTests: Sendable {
    let server: PostgresServer
    let dir: TemporaryDirectory
    let keys: KeyRing

    init() async throws {
        server = try await PostgresServer.withWitnessSchema(publishers: ["intact", "forked", "rolled", "silent", "wrongkey"])
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
    }

    deinit { server.stop() }

    func events(_ range: ClosedRange<Int>, tag: String = "x") -> [AuditEvent] {
        range.map { AuditEvent(actor: "user-\($0)", action: "doc.\(tag)", tenant: "t1") }
    }

    func register(_ store: AuditStore, role: String, keys: CheckpointPublicKeys) async throws {
        let id = store.storeID
        try await withWitness(server.url(PostgresServer.owner)) { try await $0.register(store: id, publisher: role, publicKeys: keys, label: role) }
    }

    /// Checkpoints `store` and publishes as `role`.
    @discardableResult
    func publish(_ store: AuditStore, as role: String, signer: CheckpointSigner) async throws -> Checkpoint {
        try await withWitness(server.url(role)) { witness in
            try await store.checkpoint(signer: signer, anchors: [WitnessAnchor(witness: witness)])
        }
    }

    @Test("fork, rollback, silent and unknown-key are each reported exactly, with metrics; the CLI exits 1 with the same JSON")
    func injectedFaults() async throws {
        let signer = try CheckpointSigner.inMemory()
        // Intact: three publications.
        let intact = try await AuditStore.create(at: dir.path("intact.db"), keys: keys)
        try await register(intact, role: "intact", keys: signer.publicKeys)
        for batch in [1...3, 4...10, 11...12] {
            try await intact.append(contentsOf: events(batch))
            try await publish(intact, as: "intact", signer: signer)
        }
        // Forked: one file copied, both copies grow differently and publish at the same seq.
        let forkedPath = dir.path("forked.db")
        let forked = try await AuditStore.create(at: forkedPath, keys: keys)
        try await register(forked, role: "forked", keys: signer.publicKeys)
        try await forked.append(contentsOf: events(1...4))
        try await publish(forked, as: "forked", signer: signer)
        try await forked.close()
        try FileManager.default.copyItem(atPath: forkedPath, toPath: dir.path("forked-copy.db"))
        let left = try await AuditStore.open(at: forkedPath, keys: keys)
        let right = try await AuditStore.open(at: dir.path("forked-copy.db"), keys: keys)
        try await left.append(contentsOf: events(5...9, tag: "left"))
        try await right.append(contentsOf: events(5...9, tag: "right"))
        try await publish(left, as: "forked", signer: signer)
        try await publish(right, as: "forked", signer: signer)
        // Rolled back: the file is replaced by an older copy, which grows and publishes again.
        let rolledPath = dir.path("rolled.db")
        let rolled = try await AuditStore.create(at: rolledPath, keys: keys)
        try await register(rolled, role: "rolled", keys: signer.publicKeys)
        try await rolled.append(contentsOf: events(1...5))
        try await publish(rolled, as: "rolled", signer: signer)
        try await rolled.close()
        try FileManager.default.copyItem(atPath: rolledPath, toPath: dir.path("rolled-old.db"))
        let grown = try await AuditStore.open(at: rolledPath, keys: keys)
        try await grown.append(contentsOf: events(6...10))
        try await publish(grown, as: "rolled", signer: signer)
        try await grown.close()
        let old = try await AuditStore.open(at: dir.path("rolled-old.db"), keys: keys)
        try await old.append(contentsOf: events(6...7, tag: "after-restore"))
        let rolledBack = try await publish(old, as: "rolled", signer: signer)
        #expect(rolledBack.seq == 7)
        // Silent: registered an hour ago (out of band), never published.
        let silent = try await AuditStore.create(at: dir.path("silent.db"), keys: keys)
        try await register(silent, role: "silent", keys: signer.publicKeys)
        try server.psql("INSERT INTO auditdb_witness.stores (store_id, publisher, label, registered_at) SELECT '\\x\(String(repeating: "ee", count: 16))', 'silent', 'silent-old', now() - interval '1 hour'",
                        user: PostgresServer.owner)
        // Wrong key: the instance signs with a key that is not the registered one.
        let wrongKey = try await AuditStore.create(at: dir.path("wrongkey.db"), keys: keys)
        try await register(wrongKey, role: "wrongkey", keys: signer.publicKeys)
        try await wrongKey.append(contentsOf: events(1...2))
        let stranger = try CheckpointSigner.inMemory()
        // The anchor checks the registration first and publishes nothing...
        await #expect(performing: { try await self.publish(wrongKey, as: "wrongkey", signer: stranger) }, throws: { error in
            let message = (error as? AuditError)?.message ?? ""
            return message.hasPrefix("checkpoint key version 1 of this signing key is not the public key registered for store \(wrongKey.storeID) at the witness (registered \(signer.publicKeys.keys[0].hex), this key \(stranger.publicKeys.keys[0].hex)): nothing was published.")
        })
        #expect(try server.psql("SELECT count(*) FROM auditdb_witness.checkpoints WHERE store_id = '\\x\(wrongKey.storeID.hex)'") == "0\n")
        // ...but a publisher role can insert one without the owner's key: the auditor reports it.
        let bypassed = try await withWitness(server.url("wrongkey")) { witness in
            try await publishBypassingRegistration(wrongKey, signer: stranger, to: witness)
        }
        #expect(bypassed == .recorded(keyRegistered: false, proofValid: nil))

        let metrics = TestMetrics()
        let report = try await withWitness(server.url("auditor")) { witness in
            try await FleetAuditor(witness: witness, configuration: .init(silentAfter: .seconds(15 * 60), metricsFactory: metrics),
                                   logger: .init(label: "t")).audit()
        }
        let found = Set(report.findings.map { "\($0.storeID.hex) \($0.finding.kind) \($0.finding.seq.map(String.init) ?? "-")" })
        #expect(found == [
            "\(forked.storeID.hex) fork 9",
            "\(rolled.storeID.hex) rollback 7",
            "\(String(repeating: "ee", count: 16)) silent -",
            "\(wrongKey.storeID.hex) unknown-key 2",
        ], "\(report.text)")
        #expect(report.findings.count == 4)
        #expect(!report.isIntact)
        for kind in ["fork", "rollback", "silent", "unknown-key"] {
            let counter = try metrics.expectCounter("auditdb_fleet_findings_total", [("kind", kind)])
            #expect(counter.totalValue == 1, "\(kind)")
        }
        // The CLI: exit 1, the same findings in JSON.
        let cli = try run(try builtProduct("auditdb-fleet"),
                          ["audit", "--witness", server.url("auditor"), "--silent-after", "15m", "--format", "json"])
        #expect(cli.status == 1, "\(cli.stderr)")
        #expect(cli.stdout.hasPrefix("{\"format\":\"auditdb-fleet-report v1\",\"intact\":false,"))
        #expect(cli.stdout.components(separatedBy: "\"kind\":\"").count - 1 == 4)
        let text = try run(try builtProduct("auditdb-fleet"), ["audit", "--witness", server.url("auditor")])
        #expect(text.status == 1)
        #expect(text.stdout.hasSuffix("fleet NOT intact: 3 of 6 store(s) with findings, 3 finding(s)\n"), "\(text.stdout)")
        for store in [intact, left, right, old, silent, wrongKey] { try await store.close() }
    }

    @Test("an intact fleet: exit 0; a bad URL or an unreachable witness: exit 2")
    func exitStatuses() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await AuditStore.create(at: dir.path("intact.db"), keys: keys)
        try await register(store, role: "intact", keys: signer.publicKeys)
        try await store.append(contentsOf: events(1...3))
        try await publish(store, as: "intact", signer: signer)
        let fleet = try builtProduct("auditdb-fleet")
        let ok = try run(fleet, ["audit", "--witness", server.url("auditor"), "--silent-after", "1h"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout == "fleet intact: 1 store(s), 1 publication(s)\n")
        let bad = try run(fleet, ["audit", "--witness", "mysql://x@y/z"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("postgresql://USER@HOST"))
        let silentBad = try run(fleet, ["audit", "--witness", server.url("auditor"), "--silent-after", "15 minutes"])
        #expect(silentBad.status == 2)
        let closed = try run(fleet, ["audit", "--witness", "postgresql://auditor@127.0.0.1:\(try PostgresServer.freePort())/witness", "--timeout", "3"])
        #expect(closed.status == 2)
        // Nothing listens there: the refusal is reported at once, with the system's cause.
        #expect(closed.stderr.contains("error: cannot connect to postgresql://auditor@127.0.0.1:"), "\(closed.stderr)")
        #expect(closed.stderr.contains("Nothing answered there (refused, unreachable or timed out): check that PostgreSQL runs and listens on the URL's host and port"), "\(closed.stderr)")
        // A database without the witness schema (a wrong database name): says to install it, or to check the name.
        _ = try server.psql("CREATE DATABASE no_schema")
        let noSchema = try run(fleet, ["audit", "--witness", "postgresql://auditor@127.0.0.1:\(server.port)/no_schema", "--timeout", "5"])
        #expect(noSchema.status == 2 && noSchema.stderr.contains("This database has no AuditDB witness schema (or not all of it): run `auditdb-fleet install-schema` as the witness owner, or check the database name in the URL"),
                "\(noSchema.stderr)")
        // A refusal people meet first says what to do.
        let noDatabase = try run(fleet, ["audit", "--witness", "postgresql://auditor@127.0.0.1:\(server.port)/no_such_database", "--timeout", "5"])
        #expect(noDatabase.status == 2 && noDatabase.stderr.contains("Create the database, or name the right one in the URL"), "\(noDatabase.stderr)")
        // Numbers below zero or out of range reach the option's own check (not "Missing value").
        for arguments in [["audit", "--witness", server.url("auditor"), "--timeout", "-1"],
                          ["verify-shipped", "--to", server.url("auditor"), "--timeout", "0"]]
        {
            let refused = try run(fleet, arguments)
            #expect(refused.status == 2 && refused.stderr.contains("--timeout must be from 1 to 86400 seconds"), "\(arguments): \(refused.stderr)")
        }
        // register: the id as `auditdb init` prints it or in capitals; no PostgresNIO warning
        // (a lease before the pool ran printed one on most runs); a bad id shows register's usage.
        try signer.publicKeys.write(to: dir.path("ck.pub"))
        try server.psql((1...4).map { "CREATE ROLE cli_publisher_\($0) LOGIN IN ROLE auditdb_publisher;" }.joined(separator: " "))
        for n in 1...4 {
            let id = try #require(StoreID(hex: String(repeating: "a\(n)", count: 16)))
            let registered = try run(fleet, ["register", "--witness", server.url(PostgresServer.owner), "--store-id", n % 2 == 0 ? id.hex.uppercased() : id.hex,
                                             "--publisher", "cli_publisher_\(n)", "--public-key", dir.path("ck.pub")])
            #expect(registered.status == 0 && registered.stderr == "" && registered.stdout == "registered store \(id.hex) for role cli_publisher_\(n)\n",
                    "\(registered.stdout)\(registered.stderr)")
        }
        let badID = try run(fleet, ["register", "--witness", server.url(PostgresServer.owner), "--store-id", "xyz", "--publisher", "p", "--public-key", dir.path("ck.pub")])
        #expect(badID.status == 2 && badID.stderr.contains("--store-id must be 32 hex digits") && badID.stderr.contains("Usage: auditdb-fleet register"),
                "\(badID.stderr)")
        // The owner deletes the store's registration (triggers off): its publications are still
        // at the witness and are reported, not passed over as if the store had never been.
        let hex = store.storeID.hex
        try server.psql("SET session_replication_role = replica; DELETE FROM auditdb_witness.keys WHERE store_id = '\\x\(hex)'; DELETE FROM auditdb_witness.stores WHERE store_id = '\\x\(hex)'")
        let orphaned = try run(fleet, ["audit", "--witness", server.url("auditor")])
        #expect(orphaned.status == 1, "\(orphaned.stdout)\(orphaned.stderr)")
        #expect(orphaned.stdout.contains("store \(hex): unknown-key at seq 3: the witness holds 1 publication(s) of this store, which is not registered"), "\(orphaned.stdout)")
        try await store.close()
    }

    @Test("the judgement alone: a store that published and went quiet is silent; a bad signature in the witness is reported")
    func judgement() throws {
        let signer = try CheckpointSigner.inMemory()
        let id = StoreID(bytes: Array(repeating: 1, count: 16))
        let leaves = syntheticLeaves(8)
        func cp(_ n: Int) -> Checkpoint {
            Checkpoint.signed(storeID: id, seq: Int64(n), chainHead: leaves[n - 1], merkleRoot: referenceRoot(leaves[..<n]),
                              time: AuditTimestamp(microsecondsSinceEpoch: 1_800_000_000_000_000), key: signer.signingKey)
        }
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        let store = FleetAuditor.Store(storeID: id, label: "s", registeredAt: t0,
                                       keys: [1: signer.publicKeys.key(version: 1)!.bytes])
        let proof = ConsistencyProof(storeID: id, fromSeq: 3, toSeq: 8, hashes: referenceConsistencyProof(3, leaves[..<8]))
        let records = [FleetAuditor.Record(checkpoint: cp(3), proof: nil, publishedAt: t0),
                       FleetAuditor.Record(checkpoint: cp(8), proof: proof, publishedAt: t0.addingTimeInterval(10))]
        let quiet = FleetAuditor.judge(store, records, now: t0.addingTimeInterval(3600), silentAfter: .seconds(900))
        #expect(quiet.findings.map(\.kind) == [.silent])
        #expect(quiet.findings.first?.seq == 8)
        #expect(FleetAuditor.judge(store, records, now: t0.addingTimeInterval(600), silentAfter: .seconds(900)).findings.isEmpty)
        // The proof's hashes swapped (someone edited the witness's row): a fork.
        var swapped = proof.hashes
        swapped.swapAt(0, 1)
        let edited = [records[0], FleetAuditor.Record(checkpoint: cp(8), proof: ConsistencyProof(storeID: id, fromSeq: 3, toSeq: 8, hashes: swapped), publishedAt: t0)]
        #expect(FleetAuditor.judge(store, edited, now: t0, silentAfter: nil).findings.map(\.kind) == [.fork])
        // A signature flipped in the witness's row.
        let c = cp(8)
        let forged = Checkpoint(storeID: id, seq: 8, chainHead: c.chainHead, merkleRoot: c.merkleRoot, time: c.time, keyVersion: 1,
                                publicKey: c.publicKey, signature: [c.signature[0] ^ 1] + c.signature.dropFirst())
        let bad = FleetAuditor.judge(store, [records[0], FleetAuditor.Record(checkpoint: forged, proof: proof, publishedAt: t0)], now: t0, silentAfter: nil)
        #expect(bad.findings.map(\.kind) == [.invalidSignature])
    }
}
