import CSodium

/// The HMAC key versions a store may use: the newest active version signs, every version
/// verifies. Rotation adds a version; no existing row is rewritten.
///
/// ```swift
/// let ring = try await KeyFile(path: "/etc/auditdb/keys").keyRing()
/// print(ring.signingKey.version, ring.versions)
/// ```
public struct KeyRing: Sendable, CustomStringConvertible {
    /// Keys by version.
    public let keys: [UInt32: AuditKey]

    /// Creates a ring. It must hold at least one active key, the signing key.
    /// - Throws: ``AuditError`` `keyUnavailable` if no key is active.
    public init(_ keys: [AuditKey]) throws(AuditError) {
        var byVersion: [UInt32: AuditKey] = [:]
        for key in keys {
            guard byVersion[key.version] == nil else {
                throw AuditError(.invalidKeyFile, "key version \(key.version) appears twice; each version must be unique")
            }
            // The same secret under two versions: declaring one compromised would leave the
            // other signing with the stolen key.
            if let twin = byVersion.values.first(where: { other in
                other.withSecretBytes { a in key.withSecretBytes { b in sodium_memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0 } }
            }) {
                throw AuditError(.invalidKeyFile, "key versions \(min(twin.version, key.version)) and \(max(twin.version, key.version)) hold the same key; each version must be a key of its own (`auditdb keys rotate` generates one)")
            }
            byVersion[key.version] = key
        }
        guard byVersion.values.contains(where: { $0.status == .active }) else {
            throw AuditError(
                .keyUnavailable,
                keys.isEmpty
                    ? "the key ring is empty; create a key with `auditdb keys generate --out FILE`"
                    : "every key version is marked compromised; add a new one with `auditdb keys rotate`")
        }
        self.keys = byVersion
    }

    /// The key that signs new rows: the newest active version.
    public var signingKey: AuditKey {
        // The initialiser guarantees at least one active key.
        keys.values.filter { $0.status == .active }.max(by: { $0.version < $1.version })!
    }

    /// All versions, ascending.
    public var versions: [UInt32] { keys.keys.sorted() }

    /// The versions declared compromised.
    public var compromisedVersions: Set<UInt32> { Set(keys.values.filter { $0.status == .compromised }.map(\.version)) }

    /// The key of a version, if the ring has it.
    public func key(version: UInt32) -> AuditKey? { keys[version] }

    /// A ring with one more, freshly generated version that becomes the signing key: the lowest
    /// version above every one of the ring that is not in `taken` (versions a store's
    /// `audit_attestations` already uses, ``AuditStore/attestationKeyVersions(above:)``: foreign
    /// rows there would take the places of the new version's attestations).
    /// - Throws: ``AuditError`` `keyUnavailable` when no version up to 2^32−1 is free.
    public func rotated(skipping taken: Set<UInt32> = []) throws(AuditError) -> KeyRing {
        var next = UInt64(keys.keys.max() ?? 0) + 1
        while next <= UInt64(UInt32.max), taken.contains(UInt32(next)) { next += 1 }
        guard let version = UInt32(exactly: next) else {
            throw AuditError(.keyUnavailable, "no key version above \(keys.keys.max() ?? 0) is free (every one up to 4294967295 is taken)")
        }
        return try KeyRing(Array(keys.values) + [AuditKey.generate(version: version)])
    }

    /// A ring in which `version` is marked compromised (it never signs again).
    /// - Throws: ``AuditError`` `keyUnavailable` if the ring lacks `version`, or if no active key would remain.
    public func markingCompromised(_ version: UInt32) throws(AuditError) -> KeyRing {
        guard let key = keys[version] else {
            throw AuditError(.keyUnavailable, "key version \(version) is not in the key ring; versions present: \(versions)")
        }
        var all = keys
        all[version] = try key.with(status: .compromised)
        return try KeyRing(Array(all.values))
    }

    public var description: String {
        "KeyRing(versions: \(versions), signing: \(signingKey.version), compromised: \(compromisedVersions.sorted()))"
    }
}

/// Supplies the key ring: from a file, an environment variable, or the app's own vault.
///
/// Implement this to read keys from a secrets manager or a platform keychain:
/// ```swift
/// struct VaultKeys: AuditKeyProvider {
///     func keyRing() async throws -> KeyRing { try KeyRing([/* AuditKey(version:bytes:) */]) }
/// }
/// ```
public protocol AuditKeyProvider: Sendable {
    /// Loads the current key ring.
    func keyRing() async throws -> KeyRing
}
