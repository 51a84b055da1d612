import CAuditCore
import Foundation
import GRDB

extension AuditStore {
    /// The action of a key compromise declaration (docs/FORMAT.md section 10).
    static let declarationAction = "auditdb.key.compromised"
}

/// What ``AuditStore/reattest(compromisedVersion:)`` did.
public struct ReattestationReceipt: Sendable, Hashable {
    /// The version declared compromised.
    public let compromisedVersion: UInt32
    /// The key version that signed the attestations (the ring's signing key).
    public let attestingVersion: UInt32
    /// The seq of the entry that records the declaration.
    public let declarationSeq: Int64
    /// How many rows were re-attested.
    public let rowsAttested: Int
    /// Whether the store header (signed by the same key version) was re-attested too.
    public let headerAttested: Bool
    /// Whether this call wrote nothing: the version was declared compromised before (at
    /// ``declarationSeq``) and every row it signed already has a valid attestation.
    public let alreadyDeclared: Bool
}

extension AuditStore {
    /// The key versions above `version` that `audit_attestations` already uses: an attestation of
    /// a version the key ring does not have yet can only be a foreign row, and it would take the
    /// place of that version's own attestation (the table's key is (`seq`, `key_version`)). Pass
    /// them to ``KeyRing/rotated(skipping:)`` so that the next version is a free one.
    public func attestationKeyVersions(above version: UInt32) async throws -> Set<UInt32> {
        do {
            return try await pool.read { db in
                guard try db.tableExists("audit_attestations") else { return [] }
                let rows = try Int64.fetchAll(db, sql: """
                    SELECT DISTINCT key_version FROM audit_attestations
                    WHERE typeof(key_version) = 'integer' AND key_version > ? AND key_version <= 4294967295
                    """, arguments: [Int64(version)])
                return Set(rows.compactMap { UInt32(exactly: $0) })
            }
        } catch {
            throw AuditError.from(error, while: "read the key versions of audit_attestations")
        }
    }

    /// Re-attests every row signed under `version` with the ring's signing key, and records the
    /// declaration as a `critical` entry (action `auditdb.key.compromised`). No row is modified:
    /// attestations go to their own append-only table.
    ///
    /// Afterwards, with `version` marked compromised in the key ring (`auditdb keys compromised`
    /// does both steps), a row under that version passes verification only with a valid
    /// attestation: rows that existed at the declaration pass; rows forged with the stolen key
    /// later do not.
    ///
    /// The store must verify intact first, so that no row forged before the declaration is
    /// laundered into an attested one: a full pass runs first, then, inside the transaction that
    /// writes the attestations (holding the write lock), the rows appended since that pass are
    /// verified too and the row it ended on must be unchanged. Running it again attests only rows still lacking a valid
    /// attestation; if none lacks one and `version` was declared before, it writes nothing and
    /// returns that declaration (``ReattestationReceipt/alreadyDeclared``).
    ///
    /// Other handles on the store (other processes) keep the ring they were opened with: one
    /// whose signing key is `version` goes on signing with it, and its rows fail verification as
    /// `compromised-key`. Close them before declaring, and open them again with the new ring.
    ///
    /// - Throws: ``AuditError`` `invalidInput` if `version` is the signing key (rotate first) or
    ///   unknown; `integrityViolation` if the store does not verify intact.
    public func reattest(compromisedVersion version: UInt32) async throws -> ReattestationReceipt {
        try await reattest(compromisedVersion: version, afterCheck: nil)
    }

    /// `reattest`, with `afterCheck` run between the full verification and the write
    /// transaction (tests use it to append a row in that gap).
    func reattest(compromisedVersion version: UInt32, afterCheck: (@Sendable () async throws -> Void)?)
        async throws -> ReattestationReceipt
    {
        let signer = keys.signingKey
        guard keys.key(version: version) != nil else {
            throw AuditError(.invalidInput, "key version \(version) is not in the key ring (it has \(keys.versions))",
                             field: "version")
        }
        guard signer.version != version else {
            throw AuditError(
                .invalidInput,
                "key version \(version) is the signing key; add a new key first (`auditdb keys rotate`) so it can attest",
                field: "version")
        }
        let report = try await verify()
        guard report.isLogIntact else {
            throw AuditError(
                .integrityViolation,
                "the store does not verify intact (\(report)); refusing to re-attest rows that may already be forged. Investigate with `auditdb verify`.")
        }
        try await afterCheck?()
        let storeID = self.storeID.bytes
        let distrusted = keys.compromisedVersions.union([version])
        let keys = self.keys
        let checked = report.verifiedHead
        return try await appender.exclusiveTransaction { db, append in
            let attestations = try Verifier.loadAttestations(db, keys: keys, always: true)
            // The full pass ran before this transaction took the write lock. Holding it now, check
            // that the head it verified is still there and that every row appended since verifies
            // too, so that nothing unverified is attested.
            try Self.checkRowsSince(checked, db: db, storeID: storeID, keys: keys, attestations: attestations)
            let placeholders = distrusted.map { _ in "?" }.joined(separator: ",")
            let rows = try Row.fetchAll(
                db, sql: "SELECT seq, key_version, mac FROM audit_entries WHERE key_version IN (\(placeholders)) ORDER BY seq",
                arguments: StatementArguments(distrusted.map { Int64($0) }))
            var pending: [(Int64, UInt32, [UInt8])] = []
            for row in rows {
                let seq: Int64 = row["seq"]
                guard let kv = UInt32(exactly: row.stored("key_version", as: Int64.self) ?? -1), let mac = row.stored("mac", as: Data.self), mac.count == 32 else {
                    continue
                }
                let macBytes = Array(mac)
                let alreadyValid = macBytes.withUnsafeBufferPointer { pointer in
                    Verifier.hasValidAttestation(
                        seq: seq, keyVersion: kv, mac: pointer.baseAddress!, storeID: storeID, keys: keys,
                        distrusted: distrusted, attestations: attestations)
                }
                if !alreadyValid { pending.append((seq, kv, macBytes)) }
            }
            let declarationEvent = { (count: Int) throws in try EncodedEvent(validating: AuditEvent(
                actor: "auditdb", action: Self.declarationAction, resourceType: "key-version",
                resourceId: String(version), severity: .critical,
                details: ["keyVersion": .int(Int64(version)), "attestingKeyVersion": .int(Int64(signer.version)),
                          "rowsAttested": .int(Int64(count))])) }
            // The store header (attested as seq 0) if the same key signed it.
            if let header = try Row.fetchOne(db, sql: "SELECT key_version, mac FROM audit_store"),
               let kv = UInt32(exactly: header.stored("key_version", as: Int64.self) ?? -1), distrusted.contains(kv),
               let mac = header.stored("mac", as: Data.self), mac.count == 32
            {
                let macBytes = Array(mac)
                let headerAttested = macBytes.withUnsafeBufferPointer { pointer in
                    Verifier.hasValidAttestation(
                        seq: 0, keyVersion: kv, mac: pointer.baseAddress!, storeID: storeID, keys: keys,
                        distrusted: distrusted, attestations: attestations)
                }
                if !headerAttested { pending.insert((0, kv, macBytes), at: 0) }
            }
            // Declared before, and nothing left to attest: a second declaration would only repeat
            // the first (e.g. a run that recorded it but stopped before marking the key file).
            if pending.isEmpty, let earlier = try Int64.fetchOne(db, sql: """
                SELECT seq FROM audit_entries WHERE action = ? AND resource_type = 'key-version' AND resource_id = ?
                ORDER BY seq DESC LIMIT 1
                """, arguments: [Self.declarationAction, String(version)])
            {
                return ReattestationReceipt(compromisedVersion: version, attestingVersion: signer.version, declarationSeq: earlier,
                                            rowsAttested: 0, headerAttested: false, alreadyDeclared: true)
            }
            // A foreign row may already sit where one of these attestations goes (the table's key is
            // (seq, key_version)). It is not a valid attestation (else the row would not be pending),
            // and it cannot be replaced: say so, and how to get past it, before writing anything.
            let occupied = try pending.filter { seq, _, _ in
                try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM audit_attestations WHERE seq = ? AND key_version = ?)",
                                  arguments: [seq, Int64(signer.version)]) == true
            }.map(\.0)
            guard occupied.isEmpty else {
                throw AuditError(
                    .integrityViolation,
                    "audit_attestations already holds rows under key version \(signer.version) for seq(s) \(occupied.prefix(10).map(String.init).joined(separator: ", "))\(occupied.count > 10 ? " and \(occupied.count - 10) more" : "") that are not valid attestations (foreign rows; `auditdb verify` reports them as foreign-row). They take the places this key's attestations would go. Nothing was written. Add a new key version (`auditdb keys rotate` with the store: it skips every version audit_attestations already uses) and run this again: the new version's attestations do not collide with them.")
            }
            let declarationSeq = try append([try declarationEvent(pending.filter { $0.0 > 0 }.count)]).lowerBound
            let insert = try db.cachedStatement(
                sql: "INSERT INTO audit_attestations(seq, key_version, declaration_seq, mac) VALUES (?, ?, ?, ?)")
            var attestation = [UInt8](repeating: 0, count: 32)
            for (seq, kv, mac) in pending {
                adb_attestation_mac(signer.keyset, storeID, seq, kv, mac, declarationSeq, &attestation)
                try insert.execute(arguments: [seq, Int64(signer.version), declarationSeq, Data(attestation)])
            }
            return ReattestationReceipt(
                compromisedVersion: version, attestingVersion: signer.version, declarationSeq: declarationSeq,
                rowsAttested: pending.filter { $0.0 > 0 }.count, headerAttested: pending.contains { $0.0 == 0 },
                alreadyDeclared: false)
        }
    }

    /// Inside the attesting transaction: the row at `checked` still has the MAC the full pass saw,
    /// and the rows after it verify (MAC, chain, trusted key) from that MAC on.
    private static func checkRowsSince(_ checked: Verifier.Position?, db: Database, storeID: [UInt8], keys: KeyRing,
                                       attestations: [Int64: [Verifier.Attestation]]) throws
    {
        let from = checked ?? Verifier.Position(seq: 0, mac: [UInt8](repeating: 0, count: 32))
        if from.seq > 0 {
            let stored = try StoredMacs(db).mac(at: from.seq)
            let same = stored.map { Array($0) }.map { $0.count == 32 && from.mac.count == 32 && adb_ct_equal($0, from.mac, 32) == 1 } ?? false
            guard same else {
                throw AuditError(.integrityViolation, "row \(from.seq) changed or disappeared while re-attesting; nothing was written. Investigate with `auditdb verify`.")
            }
        }
        let last = try Appender.readHead(db).seq
        guard last > from.seq else { return }
        let context = RowContext(storeID: storeID, keys: keys, attestations: attestations)
        let result = try Verifier.scan(db, range: (from.seq + 1)...last, isLast: true, context: context, startMac: from.mac)
        if let first = result.findings.first {
            throw AuditError(
                .integrityViolation,
                "rows appended since the store was verified do not verify (\(first)); refusing to re-attest. Nothing was written. Investigate with `auditdb verify`.")
        }
    }
}
