import AuditDBPostgres
import AuditDBTestSupport
import Foundation
import Logging
import Testing

@testable import AuditDB

/// Who may do what at the witness: the auditor's commands refuse a publisher role (row-level
/// security would show it one store), a registration refuses a role that could never publish, and
/// a row a publisher role inserts without the signing key does not hide `silent`.
extension FleetAuditTests {
    @Test("audit and verify-shipped refuse a publisher role; register refuses a missing or non-publishing role; a junk row does not hide silent")
    func rolesAndJunk() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await AuditStore.create(at: dir.path("intact.db"), keys: keys)
        try await register(store, role: "intact", keys: signer.publicKeys)
        try await store.append(contentsOf: events(1...3))
        try await publish(store, as: "intact", signer: signer)
        // As a publisher: refused, naming the role and the fix, rather than "intact" from its own rows.
        let auditor: @Sendable (PostgresWitness) async throws -> Void = { _ = try await FleetAuditor(witness: $0, logger: Logger(label: "t")).audit() }
        let verifier: @Sendable (PostgresWitness) async throws -> Void = {
            _ = try await ShippedVerifier(central: $0, witness: $0, logger: Logger(label: "t")).verify()
        }
        for body in [auditor, verifier] {
            await #expect(performing: { try await withWitness(self.server.url("intact")) { try await body($0) } }, throws: { error in
                let error = error as? AuditError
                return error?.code == .permissionDenied
                    && error?.message.contains(#"role "intact" is a publisher, not an auditor"#) == true
                    && error?.message.contains("GRANT auditdb_auditor TO") == true
            })
        }
        let cli = try run(try builtProduct("auditdb-fleet"), ["audit", "--witness", server.url("intact")])
        #expect(cli.status == 2 && cli.stderr.contains("is a publisher, not an auditor"), "\(cli.stderr)")
        // Register: a role that does not exist, one that is not a publisher, and a superuser (whom
        // pg_has_role puts in every role, and row-level security does not bind) are refused;
        // nothing is registered.
        let other = try await AuditStore.create(at: dir.path("other.db"), keys: keys)
        for (role, message) in [("nosuchrole", #"role "nosuchrole" does not exist"#), ("auditor", #"role "auditor" is not a member of auditdb_publisher"#),
                                (PostgresServer.superuser, #"role "postgres" is a superuser or has BYPASSRLS"#)] {
            await #expect(performing: { try await self.register(other, role: role, keys: signer.publicKeys) }, throws: { error in
                (error as? AuditError)?.message.contains(message) == true
            })
        }
        #expect(try server.psql("SELECT count(*) FROM auditdb_witness.stores WHERE store_id = '\\x\(other.storeID.hex)'") == "0\n")
        // Silent: registered an hour ago; its role then inserts a junk first publication. The row
        // is reported, and the store is still silent: nothing was signed.
        let quiet = String(repeating: "dd", count: 16), zeros = String(repeating: "00", count: 32)
        try server.psql("INSERT INTO auditdb_witness.stores (store_id, publisher, label, registered_at) VALUES ('\\x\(quiet)', 'silent', 'quiet', now() - interval '1 hour')",
                        user: PostgresServer.owner)
        try server.psql("""
            INSERT INTO auditdb_witness.checkpoints (store_id, seq, chain_head, merkle_root, signed_time, key_version, public_key, signature)
            VALUES ('\\x\(quiet)', 5, '\\x\(zeros)', '\\x\(zeros)', 0, 1, '\\x\(zeros)', '\\x\(zeros)\(zeros)')
            """, user: "silent")
        let report = try await withWitness(server.url("auditor")) { witness in
            try await FleetAuditor(witness: witness, configuration: .init(silentAfter: .seconds(15 * 60)), logger: .init(label: "t")).audit()
        }
        let found = Set(report.findings.map { "\($0.storeID.hex) \($0.finding.kind) \($0.finding.seq.map(String.init) ?? "-")" })
        #expect(found == ["\(quiet) invalid-signature 5", "\(quiet) silent -"], "\(report.text)")
        #expect(report.stores.first { $0.storeID.hex == quiet }?.lastPublishedAt == nil)
        for s in [store, other] { try await s.close() }
    }
}
