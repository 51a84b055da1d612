import CAuditCore
import CSodium

/// libsodium must be initialised once before its secure allocator is used.
let sodiumInitialized: Bool = sodium_init() >= 0

/// One version of the HMAC key: 32 secret bytes that never leave this object.
///
/// The bytes live in libsodium secure memory (`sodium_malloc`: guarded, locked pages) and are
/// zeroed when the key is released. The type prints no key material: its description shows
/// only the version and status.
///
/// Sendable: every stored property is immutable after `init`, and the two secure buffers are
/// owned exclusively by this object, written only in `init` and freed only in `deinit`.
public final class AuditKey: @unchecked Sendable, CustomStringConvertible {
    /// Whether a key version may sign new rows.
    public enum Status: String, Sendable, Hashable {
        /// Signs (if it is the newest active version) and verifies.
        case active
        /// Declared compromised: never signs again; rows under it only pass verification
        /// with a valid re-attestation under an uncompromised key.
        case compromised
    }

    /// The key version stored with every row this key signs.
    public let version: UInt32
    /// Whether the version may still sign.
    public let status: Status
    /// When the key was generated, if known.
    public let createdAt: AuditTimestamp?

    /// 32 bytes of key material.
    let master: UnsafeMutableRawPointer
    /// The derived, prekeyed HMAC states (as secret as the key).
    let keyset: OpaquePointer

    /// Creates a key from 32 secret bytes. The caller should wipe its own copy afterwards.
    /// - Throws: ``AuditError`` `invalidKeyFile` if `bytes` is not 32 bytes long or the version is 0.
    public init(version: UInt32, bytes: UnsafeRawBufferPointer, status: Status = .active, createdAt: AuditTimestamp? = nil)
        throws(AuditError)
    {
        guard bytes.count == Int(ADB_KEY_LEN) else {
            throw AuditError(.invalidKeyFile, "key version \(version) has \(bytes.count) bytes; keys are 32 bytes (64 hex digits)")
        }
        guard version > 0 else {
            throw AuditError(.invalidKeyFile, "key versions start at 1; version 0 is not allowed")
        }
        // 32 zero bytes are no secret (a placeholder, or a file zeroed by mistake): every row
        // signed with them could be forged by anyone.
        guard sodium_is_zero(bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), Int(ADB_KEY_LEN)) == 0 else {
            throw AuditError(.invalidKeyFile, "key version \(version) is 32 zero bytes, which anyone could sign with; generate a key (`auditdb keys generate`)")
        }
        guard sodiumInitialized,
              let master = sodium_malloc(Int(ADB_KEY_LEN)),
              let keysetMemory = sodium_malloc(adb_keyset_size())
        else {
            throw AuditError(.storage, "could not allocate secure memory for a key (libsodium sodium_malloc failed); check RLIMIT_MEMLOCK")
        }
        master.copyMemory(from: bytes.baseAddress!, byteCount: Int(ADB_KEY_LEN))
        let keyset = OpaquePointer(keysetMemory)
        adb_keyset_init(keyset, master.assumingMemoryBound(to: UInt8.self))
        self.master = master
        self.keyset = keyset
        self.version = version
        self.status = status
        self.createdAt = createdAt
    }

    /// A new random key from libsodium's CSPRNG.
    public static func generate(version: UInt32, createdAt: AuditTimestamp = .now()) throws(AuditError) -> AuditKey {
        var bytes = [UInt8](repeating: 0, count: Int(ADB_KEY_LEN))
        defer { sodium_memzero(&bytes, bytes.count) }
        guard sodiumInitialized else { throw AuditError(.storage, "libsodium failed to initialise") }
        randombytes_buf(&bytes, bytes.count)
        return try typedAuditErrors {
            try bytes.withUnsafeBytes { buffer in try AuditKey(version: version, bytes: buffer, createdAt: createdAt) }
        }
    }

    /// The same key with another status.
    func with(status: Status) throws(AuditError) -> AuditKey {
        try AuditKey(
            version: version, bytes: UnsafeRawBufferPointer(start: master, count: Int(ADB_KEY_LEN)), status: status,
            createdAt: createdAt)
    }

    /// Calls `body` with the raw key bytes (for writing a key file). Do not copy them out.
    func withSecretBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: master, count: Int(ADB_KEY_LEN)))
    }

    deinit {
        adb_keyset_wipe(keyset)
        sodium_free(UnsafeMutableRawPointer(keyset))
        sodium_free(master)  // sodium_free zeroes the memory before releasing it
    }

    public var description: String { "AuditKey(version: \(version), \(status.rawValue), bytes redacted)" }
}
