import CAuditCore
import GRDB

/// The statement that reads one row's attestations, prepared only when some key version is
/// compromised and the store has attestations (``RowContext/forRow(_:seq:lookup:)``).
struct AttestationLookup {
    let ofRow: Statement?

    init(_ db: Database, keys: KeyRing) throws {
        if !keys.compromisedVersions.isEmpty, try db.tableExists("audit_attestations") {
            ofRow = try db.cachedStatement(sql: Verifier.attestationsSQL + " AND a.seq = ?")
        } else {
            ofRow = nil
        }
    }
}

/// What a row is checked against: the store, the key ring, and the attestations of rows signed
/// by compromised versions.
struct RowContext: Sendable {
    let storeID: [UInt8]
    let keys: KeyRing
    let compromised: Set<UInt32>
    let attestations: [Int64: [Verifier.Attestation]]

    init(storeID: [UInt8], keys: KeyRing, attestations: [Int64: [Verifier.Attestation]]) {
        self.storeID = storeID
        self.keys = keys
        compromised = keys.compromisedVersions
        self.attestations = attestations
    }

    /// The same context with other attestations.
    func with(attestations: [Int64: [Verifier.Attestation]]) -> RowContext {
        RowContext(storeID: storeID, keys: keys, attestations: attestations)
    }

    /// The context a row is checked in outside a full pass (queries, erasure, expiry): for a row
    /// signed by a compromised key version, its own attestations, looked up through `lookup`
    /// (so a page does not load every attestation of the store); for any other row, this one.
    func forRow(_ view: RowView, seq: Int64, lookup: AttestationLookup) throws -> RowContext {
        guard let statement = lookup.ofRow, view.isWellFormed, compromised.contains(view.row.key_version) else { return self }
        return with(attestations: Verifier.attestations(from: try Row.fetchAll(statement, arguments: [seq])))
    }

    /// The ring as the C fast path reads it. Its pointers live as long as `keys`.
    var keyEntries: [adb_key_entry] {
        keys.keys.values.sorted { $0.version < $1.version }.map { key in
            adb_key_entry(version: key.version, trusted: compromised.contains(key.version) ? 0 : 1, keyset: key.keyset)
        }
    }
}

/// The chain state between rows checked in seq order: the stored MAC of the row before, and
/// whether the next row's link may be checked against it.
struct RowChain: Sendable {
    /// Always 32 bytes (C reads and writes 32): a value of another length is not a known link,
    /// so the chain becomes unknown rather than read or written past the array. Callers check
    /// a stored MAC's length first and report it; this only keeps a slip from reaching C.
    var prevMac: [UInt8] {
        didSet {
            if prevMac.count != 32 {
                prevMac = [UInt8](repeating: 0, count: 32)
                prevKnown = false
            }
        }
    }
    var prevKnown: Bool

    /// `prevMac` is read as 32 bytes: any other length (a stored MAC can be tampered to one) is
    /// not a known link, so the chain starts unknown rather than read past the array.
    init(prevMac: [UInt8] = [UInt8](repeating: 0, count: 32), prevKnown: Bool = true) {
        if prevMac.count == 32 {
            self.prevMac = prevMac
            self.prevKnown = prevKnown
        } else {
            self.prevMac = [UInt8](repeating: 0, count: 32)
            self.prevKnown = false
        }
    }
}

extension RowView {
    /// The verdict on this row, the one every consumer reports: nil if it is well-formed, signed by
    /// a key of the ring, its row tag matches and (when the row before is known) its link tag too,
    /// and, if its key version is compromised, it has a valid attestation. Otherwise the finding.
    ///
    /// `chain` is advanced past this row: after a bad row its stored MAC proves nothing, so the
    /// next row's link is not checked against it (that would only repeat this finding); its row
    /// tag still is. With `leaf`, a row that passes also gets its Merkle leaf hash, computed from
    /// the same encoding as its row tag (one pass over the row).
    mutating func check(seq: Int64, chain: inout RowChain, context: RowContext,
                        leaf: UnsafeMutablePointer<UInt8>? = nil) -> Finding?
    {
        guard isWellFormed, let mac else {
            chain.prevKnown = false
            return Finding(kind: .malformedRow, seqs: seq...seq, message: malformation ?? "malformed")
        }
        row.seq = seq  // the seq being checked (rowsMovedFromTheTail checks a row against other seqs)
        let kv = row.key_version
        defer { chain.prevMac.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: mac, count: 32) } }
        guard let key = context.keys.key(version: kv) else {
            chain.prevKnown = false
            return Finding(kind: .unknownKeyVersion, seqs: seq...seq,
                           message: "signed with key version \(kv), which the key ring lacks; load the key file that holds it")
        }
        let verdict = chain.prevMac.withUnsafeBufferPointer { prev in
            adb_row_check_leaf(key.keyset, context.storeID, &row, chain.prevKnown ? prev.baseAddress : nil, mac, 32, leaf)
        }
        switch verdict {
        case Int32(ADB_OK):
            break
        case Int32(ADB_ROW_TAG_MISMATCH):
            chain.prevKnown = false
            return Finding(kind: .macMismatch, seqs: seq...seq,
                           message: "the stored values do not match the row's MAC (changed, or copied from another store)")
        default:
            chain.prevKnown = false
            return Finding(kind: .chainBreak, seqs: seq...seq,
                           message: "the row is intact but does not follow seq \(seq - 1) (rows removed, inserted or reordered, or taken from another copy of this store)")
        }
        chain.prevKnown = true
        if context.compromised.contains(kv) {
            let valid = Verifier.hasValidAttestation(
                seq: seq, keyVersion: kv, mac: mac, storeID: context.storeID, keys: context.keys,
                distrusted: context.compromised, attestations: context.attestations)
            if !valid {
                return Finding(kind: .compromisedKey, seqs: seq...seq,
                               message: "signed with key version \(kv), declared compromised, and not re-attested: it may be forged with the stolen key")
            }
        }
        return nil
    }

    /// The Merkle leaf hash SHA256(0x00 || ENC_ROW) of a well-formed row, without checking it;
    /// nil if it is malformed or its key version is not in the ring.
    func leaf(storeID: StoreID, keys: KeyRing) -> [UInt8]? {
        guard isWellFormed, let key = keys.key(version: row.key_version) else { return nil }
        var row = row
        var leaf = [UInt8](repeating: 0, count: 32)
        _ = adb_row_check_leaf(key.keyset, storeID.bytes, &row, nil, mac, 32, &leaf)
        return leaf
    }
}
