public import AuditDB

extension KeyRing {
    /// A ring of fresh random keys (from libsodium's CSPRNG) that exist only in this process's
    /// memory: nothing is written to disk. The highest version signs.
    ///
    /// ```swift
    /// let keys = try KeyRing.inMemory(versions: [1, 2])   // version 2 signs, both verify
    /// ```
    /// - Throws: ``AuditError`` if `versions` is empty or repeats a version.
    public static func inMemory(versions: [UInt32] = [1]) throws(AuditError) -> KeyRing {
        var keys: [AuditKey] = []
        for version in versions { keys.append(try AuditKey.generate(version: version)) }
        return try KeyRing(keys)
    }
}

extension CheckpointSigner {
    /// Fresh Ed25519 checkpoint keys that exist only in this process's memory. The highest
    /// version signs; ``CheckpointSigner/publicKeys`` verifies.
    /// - Throws: ``AuditError`` if `versions` is empty or repeats a version.
    public static func inMemory(versions: [UInt32] = [1]) throws(AuditError) -> CheckpointSigner {
        var keys: [CheckpointSigningKey] = []
        for version in versions { keys.append(try CheckpointSigningKey.generate(version: version)) }
        return try CheckpointSigner(keys)
    }
}

/// An ``AuditKeyProvider`` that hands out a key ring held in memory, as a vault-backed provider
/// would, and counts how often it was asked.
///
/// ```swift
/// let provider = InMemoryKeyProvider(try .inMemory())
/// let store = try await AuditStore.open(at: path, keyProvider: provider)
/// ```
public struct InMemoryKeyProvider: AuditKeyProvider {
    private let ring: KeyRing
    private let loads = LoadCounter()

    /// A provider of `ring`.
    public init(_ ring: KeyRing) { self.ring = ring }

    /// The ring.
    public func keyRing() async throws -> KeyRing {
        loads.increment()
        return ring
    }

    /// How many times ``keyRing()`` was called.
    public var loadCount: Int { loads.value }
}
