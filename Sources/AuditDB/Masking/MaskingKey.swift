import CAuditCore
import CSodium

/// The key of ``MaskMethod/hash`` masks: 32 secret bytes, held apart from the row keys.
///
/// It is derived from a key file of its own (the format of ``KeyFile``; make one with `auditdb
/// keys generate --out mask.key`): `K_mask = HMAC-SHA256(K, "ADB1MASK")` with `K` the newest
/// version in that file. It is never a row key: a masking key file that holds a row key of the
/// store is refused, so that whoever is given hashed output for analysis — or the masking key
/// itself, to compute the same tokens — can never sign rows, and rotating or retiring a row key
/// never changes the tokens (docs/masking.md).
///
/// The bytes live in libsodium secure memory and are wiped when the key is released; the type
/// prints no key material. Sendable: immutable after `init`, the buffer is owned by this object.
public final class MaskingKey: @unchecked Sendable, CustomStringConvertible {
    /// K_mask, then the same derivation from each older version of the file (newest first), kept
    /// only so that ``checkDistinct(from:)`` can refuse a file holding a row key at any version.
    private let bytes: UnsafeMutableRawPointer
    /// How many 32-byte derivations `bytes` holds (the file's versions).
    private let count: Int

    /// Derives the masking key from the newest version of `ring` (a masking key file's ring).
    /// - Throws: ``AuditError`` `storage` if secure memory cannot be had.
    public init(deriving ring: KeyRing) throws(AuditError) {
        let versions = Array(ring.versions.reversed())  // a KeyRing is never empty
        guard sodiumInitialized, let memory = sodium_malloc(32 * versions.count) else {
            throw AuditError(.storage, "could not allocate secure memory for the masking key (libsodium sodium_malloc failed); check RLIMIT_MEMLOCK")
        }
        let label = Array("ADB1MASK".utf8)
        for (index, version) in versions.enumerated() {
            ring.keys[version]!.withSecretBytes { key in
                adb_hmac_sha256(key.bindMemory(to: UInt8.self).baseAddress, key.count, label, label.count,
                                memory.assumingMemoryBound(to: UInt8.self) + 32 * index)
            }
        }
        bytes = memory
        count = versions.count
    }

    /// Reads a masking key file (the format of ``KeyFile``, mode 0600).
    /// - Throws: ``AuditError`` `keyFileInsecure`, `invalidKeyFile`, `keyUnavailable`.
    public static func load(path: String) throws(AuditError) -> MaskingKey {
        try MaskingKey(deriving: try KeyFile(path: path).load())
    }

    /// Refuses a masking key file that holds any of `ring`'s row keys, at any of its versions:
    /// whoever is handed the masking key file must not get a key that signs rows. Compared in
    /// constant time, through the derivation (the same key gives the same derived bytes).
    /// - Throws: ``AuditError`` `invalidKeyFile`.
    public func checkDistinct(from ring: KeyRing) throws(AuditError) {
        let rowKeys = try MaskingKey(deriving: ring)
        for index in 0..<count {
            for rowIndex in 0..<rowKeys.count where sodium_memcmp(bytes + 32 * index, rowKeys.bytes + 32 * rowIndex, 32) == 0 {
                let version = Array(ring.versions.reversed())[rowIndex]
                throw AuditError(.invalidKeyFile, "the masking key file holds row key version \(version) of this store; a masking key must be its own key file, holding no row key (make one with `auditdb keys generate --out mask.key`)", field: "--mask-key")
            }
        }
    }

    /// The token of a hash mask: `hmac:` and the first 16 bytes of HMAC-SHA256(K_mask, value), in hex.
    func token(_ value: some Collection<UInt8>) -> String {
        let message = Array(value)
        var mac = [UInt8](repeating: 0, count: 32)
        adb_hmac_sha256(bytes.assumingMemoryBound(to: UInt8.self), 32, message, message.count, &mac)
        return "hmac:" + Hex.encode(Array(mac.prefix(16)))
    }

    deinit { sodium_free(bytes) }  // sodium_free zeroes the memory first

    public var description: String { "MaskingKey(bytes redacted)" }
}
