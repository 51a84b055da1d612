public import Foundation

/// A signed statement about a store's log up to one seq (FORMAT.md, section 16): the store id,
/// the seq, the chain head (the stored 32-byte MAC of row `seq`), the Merkle root over rows
/// 1...seq, the time, and the version and public key of the Ed25519 key that signed it.
///
/// Anyone with the public key can check it; written to anchors outside the database, it pins
/// the log: a later copy that lacks row `seq` (truncated, rolled back) or has other content up
/// to it (rewritten, even with valid MACs) contradicts it.
public struct Checkpoint: Sendable, Hashable, CustomStringConvertible {
    /// The store it is about.
    public let storeID: StoreID
    /// The number of rows it covers (rows 1...seq); at least 1.
    public let seq: Int64
    /// The stored MAC of row `seq` (32 bytes).
    public let chainHead: [UInt8]
    /// The Merkle tree root over rows 1...seq (32 bytes).
    public let merkleRoot: [UInt8]
    /// When it was made.
    public let time: AuditTimestamp
    /// The signing key version.
    public let keyVersion: UInt32
    /// The signing key's Ed25519 public key (32 bytes).
    public let publicKey: [UInt8]
    /// The Ed25519 signature of ``statement`` (64 bytes).
    public let signature: [UInt8]

    /// The magic that starts the signed statement.
    static let magic = Array("ADB1CKPT".utf8)
    /// The format name of a checkpoint's JSON form.
    static let jsonFormat = "auditdb-checkpoint v1"

    /// Creates a checkpoint from its parts (the signature is not checked here).
    public init(storeID: StoreID, seq: Int64, chainHead: [UInt8], merkleRoot: [UInt8], time: AuditTimestamp,
                keyVersion: UInt32, publicKey: [UInt8], signature: [UInt8])
    {
        self.storeID = storeID
        self.seq = seq
        self.chainHead = chainHead
        self.merkleRoot = merkleRoot
        self.time = time
        self.keyVersion = keyVersion
        self.publicKey = publicKey
        self.signature = signature
    }

    /// Signs a statement with `key`.
    static func signed(storeID: StoreID, seq: Int64, chainHead: [UInt8], merkleRoot: [UInt8], time: AuditTimestamp,
                       key: CheckpointSigningKey) -> Checkpoint
    {
        let message = statement(storeID: storeID, seq: seq, chainHead: chainHead, merkleRoot: merkleRoot,
                                time: time, keyVersion: key.version, publicKey: key.publicKey.bytes)
        return Checkpoint(storeID: storeID, seq: seq, chainHead: chainHead, merkleRoot: merkleRoot, time: time,
                          keyVersion: key.version, publicKey: key.publicKey.bytes, signature: key.sign(message))
    }

    /// The 140 signed bytes:
    /// `"ADB1CKPT" || store_id || i64(seq) || chain_head || merkle_root || i64(time) || u32(key_version) || public_key`.
    public var statement: [UInt8] {
        Self.statement(storeID: storeID, seq: seq, chainHead: chainHead, merkleRoot: merkleRoot, time: time,
                       keyVersion: keyVersion, publicKey: publicKey)
    }

    static func statement(storeID: StoreID, seq: Int64, chainHead: [UInt8], merkleRoot: [UInt8], time: AuditTimestamp,
                          keyVersion: UInt32, publicKey: [UInt8]) -> [UInt8]
    {
        var out = magic
        out.reserveCapacity(140)
        out += storeID.bytes
        out += bigEndian(UInt64(bitPattern: seq), 8)
        out += chainHead
        out += merkleRoot
        out += bigEndian(UInt64(bitPattern: time.microsecondsSinceEpoch), 8)
        out += bigEndian(UInt64(keyVersion), 4)
        out += publicKey
        return out
    }

    private static func bigEndian(_ value: UInt64, _ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64(count - 1 - $0))) }
    }

    /// Why the checkpoint is not valid under `keys`, or nil if it is: the key version must be
    /// in `keys` with the same public key, the field sizes right, and the signature valid.
    public func invalidity(under keys: CheckpointPublicKeys) -> String? {
        guard let key = keys.key(version: keyVersion) else {
            return "it is signed with checkpoint key version \(keyVersion), which the public key file lacks"
        }
        guard key.bytes == publicKey else {
            return "it names a different public key for version \(keyVersion) than the public key file (signed by another key)"
        }
        return selfInvalidity()
    }

    /// Why the checkpoint is not valid under the public key it names itself, or nil: its
    /// fields' lengths, seq ≥ 1 and its Ed25519 signature. Says nothing about whether that key
    /// is trusted; ``invalidity(under:)`` does.
    public var invalidityUnderOwnKey: String? { selfInvalidity() }

    /// Why the checkpoint is not valid under the public key it names itself, or nil.
    func selfInvalidity() -> String? {
        guard seq >= 1 else { return "its seq \(seq) is below 1" }
        guard chainHead.count == 32, merkleRoot.count == 32, publicKey.count == 32, signature.count == 64 else {
            return "a field has the wrong length"
        }
        guard CheckpointPublicKey(version: keyVersion, bytes: publicKey).isValidSignature(signature, of: statement) else {
            return "its Ed25519 signature does not verify (the checkpoint was changed or forged)"
        }
        return nil
    }

    /// The checkpoint as one line of JSON (keys in a fixed order; all byte strings lowercase hex).
    public var json: String {
        "{\"format\":\"\(Self.jsonFormat)\",\"storeId\":\"\(storeID.hex)\",\"seq\":\(seq),"
            + "\"chainHead\":\"\(Hex.encode(chainHead))\",\"merkleRoot\":\"\(Hex.encode(merkleRoot))\","
            + "\"time\":\(time.microsecondsSinceEpoch),\"timeText\":\"\(time.iso8601)\",\"keyVersion\":\(keyVersion),"
            + "\"publicKey\":\"\(Hex.encode(publicKey))\",\"signature\":\"\(Hex.encode(signature))\"}"
    }

    /// Parses the JSON form, strictly (docs/FORMAT.md sections 16.5 and 18): one JSON object of
    /// at most 64 KiB, UTF-8 without a byte order mark, no duplicate key, integers written as
    /// integers, byte strings in lowercase hex, no field but the ones above.
    /// - Throws: ``AuditError`` `invalidInput` naming what is wrong (and the field, if one).
    public init(json data: Data) throws(AuditError) {
        let json = try StrictJSONObject(
            Array(data), what: "checkpoint", article: "a", format: Self.jsonFormat,
            known: ["format", "storeId", "seq", "chainHead", "merkleRoot", "time", "timeText", "keyVersion", "publicKey", "signature"],
            unknownNote: "a checkpoint holds only its signed fields and timeText")
        let storeID = try json.storeID, keyVersion = try json.keyVersion
        let time = AuditTimestamp(microsecondsSinceEpoch: try json.integer("time"))
        if let text = json.object["timeText"] {
            guard text.text == time.iso8601 else {
                throw AuditError(.invalidInput, "checkpoint field timeText is not the signed time (\(time.iso8601)); the checkpoint was edited", field: "timeText")
            }
        }
        self.init(
            storeID: storeID, seq: try json.integer("seq"), chainHead: try json.bytes("chainHead", 32),
            merkleRoot: try json.bytes("merkleRoot", 32), time: time,
            keyVersion: keyVersion, publicKey: try json.bytes("publicKey", 32), signature: try json.bytes("signature", 64))
    }

    public var description: String {
        "checkpoint of store \(storeID) at seq \(seq) (\(time.iso8601), key version \(keyVersion))"
    }
}
