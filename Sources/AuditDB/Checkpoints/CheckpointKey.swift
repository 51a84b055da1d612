import CSodium

/// One version of the checkpoint signing key: an Ed25519 key pair (libsodium), separate from
/// the HMAC keys. Its public half (``publicKey``) can be handed to anyone who should verify
/// checkpoints and export bundles; the secret half never leaves this object.
///
/// The 64-byte libsodium secret key (seed || public key) lives in `sodium_malloc` memory and is
/// zeroed when the key is released. The description shows no secret bytes.
///
/// Sendable: every stored property is immutable after `init`; the secure buffer is owned
/// exclusively by this object, written only in `init` and freed only in `deinit`.
public final class CheckpointSigningKey: @unchecked Sendable, CustomStringConvertible {
    /// The version written into every checkpoint this key signs (1, 2, ...).
    public let version: UInt32
    /// When the key was generated, if known.
    public let createdAt: AuditTimestamp?
    /// The public half.
    public let publicKey: CheckpointPublicKey

    private let secret: UnsafeMutableRawPointer

    /// Creates the key pair of a 32-byte seed. The caller should wipe its own copy afterwards.
    /// - Throws: ``AuditError`` `invalidKeyFile` for a seed that is not 32 bytes or all zero, or version 0.
    public init(version: UInt32, seed: UnsafeRawBufferPointer, createdAt: AuditTimestamp? = nil) throws(AuditError) {
        guard seed.count == Int(crypto_sign_SEEDBYTES) else {
            throw AuditError(.invalidKeyFile, "checkpoint key version \(version) has a \(seed.count)-byte seed; seeds are 32 bytes (64 hex digits)")
        }
        guard version > 0 else { throw AuditError(.invalidKeyFile, "checkpoint key versions start at 1") }
        // The key pair of 32 zero bytes is public knowledge: anyone could sign with it (FORMAT.md 16.4).
        guard sodium_is_zero(seed.bindMemory(to: UInt8.self).baseAddress!, seed.count) == 0 else {
            throw AuditError(.invalidKeyFile, "checkpoint key version \(version) has a seed of 32 zero bytes, which anyone could sign with; generate a key with `auditdb checkpoint-key generate`")
        }
        guard sodiumInitialized, let secret = sodium_malloc(Int(crypto_sign_SECRETKEYBYTES)) else {
            throw AuditError(.storage, "could not allocate secure memory for a checkpoint key (sodium_malloc failed); check RLIMIT_MEMLOCK")
        }
        var pk = [UInt8](repeating: 0, count: Int(crypto_sign_PUBLICKEYBYTES))
        crypto_sign_seed_keypair(&pk, secret.assumingMemoryBound(to: UInt8.self), seed.bindMemory(to: UInt8.self).baseAddress!)
        self.secret = secret
        self.version = version
        self.createdAt = createdAt
        self.publicKey = CheckpointPublicKey(version: version, bytes: pk)
    }

    /// A new key pair from libsodium's CSPRNG.
    public static func generate(version: UInt32, createdAt: AuditTimestamp = .now()) throws(AuditError) -> CheckpointSigningKey {
        var seed = [UInt8](repeating: 0, count: Int(crypto_sign_SEEDBYTES))
        defer { sodium_memzero(&seed, seed.count) }
        guard sodiumInitialized else { throw AuditError(.storage, "libsodium failed to initialise") }
        randombytes_buf(&seed, seed.count)
        return try typedAuditErrors {
            try seed.withUnsafeBytes { b in try CheckpointSigningKey(version: version, seed: b, createdAt: createdAt) }
        }
    }

    /// Signs `message` (Ed25519, detached): 64 bytes.
    func sign(_ message: [UInt8]) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: Int(crypto_sign_BYTES))
        crypto_sign_detached(&signature, nil, message, UInt64(message.count), secret.assumingMemoryBound(to: UInt8.self))
        return signature
    }

    /// The 32-byte seed as 64 hex digits, written straight into `out` (for the key file only).
    func appendSeedHex(to out: inout [UInt8]) {
        var hex = [CChar](repeating: 0, count: 65)
        _ = sodium_bin2hex(&hex, 65, secret.assumingMemoryBound(to: UInt8.self), 32)
        out.append(contentsOf: hex[0..<64].map { UInt8(bitPattern: $0) })
        sodium_memzero(&hex, hex.count)
    }

    deinit { sodium_free(secret) }  // sodium_free zeroes the memory before releasing it

    public var description: String { "CheckpointSigningKey(version: \(version), public \(publicKey.hex), secret redacted)" }
}

/// The public half of a checkpoint signing key version: 32 Ed25519 public-key bytes.
public struct CheckpointPublicKey: Sendable, Hashable, CustomStringConvertible {
    /// The key version.
    public let version: UInt32
    /// The 32 public-key bytes.
    public let bytes: [UInt8]

    /// A public key of `version`; `bytes` must be 32 bytes (checked when it is used).
    public init(version: UInt32, bytes: [UInt8]) {
        self.version = version
        self.bytes = bytes
    }

    /// 64 lowercase hex digits.
    public var hex: String { Hex.encode(bytes) }

    /// Whether `signature` is a valid Ed25519 signature of `message` under this key.
    func isValidSignature(_ signature: [UInt8], of message: [UInt8]) -> Bool {
        guard sodiumInitialized, bytes.count == Int(crypto_sign_PUBLICKEYBYTES), signature.count == Int(crypto_sign_BYTES)
        else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), bytes) == 0
    }

    public var description: String { "checkpoint public key version \(version) \(hex)" }
}

/// The checkpoint signing keys (every version; the newest signs), read from or written to a
/// secret key file:
///
/// ```text
/// # AuditDB checkpoint signing key. SECRET: keep it mode 0600.
/// auditdb-checkpoint-key v1
/// key 1 2026-11-23T13:15:00.000000Z <64 hex digits: the Ed25519 seed>
/// ```
///
/// The file is refused if group or others may access it. Hand out the public key file
/// (``CheckpointPublicKeys``) instead.
public struct CheckpointSigner: Sendable {
    /// The versions, ascending.
    public let keys: [CheckpointSigningKey]

    /// A signer holding `keys` (at least one; versions unique).
    public init(_ keys: [CheckpointSigningKey]) throws(AuditError) {
        guard !keys.isEmpty else { throw AuditError(.keyUnavailable, "no checkpoint signing key; create one with `auditdb checkpoint-key generate`") }
        guard Set(keys.map(\.version)).count == keys.count else {
            throw AuditError(.invalidKeyFile, "a checkpoint key version appears twice; each version must be unique")
        }
        self.keys = keys.sorted { $0.version < $1.version }
    }

    /// The key that signs: the newest version.
    public var signingKey: CheckpointSigningKey { keys[keys.count - 1] }

    /// The public keys of every version.
    public var publicKeys: CheckpointPublicKeys { CheckpointPublicKeys(keys.map(\.publicKey)) }

    /// A signer with one more, freshly generated version that signs from now on.
    public func rotated() throws(AuditError) -> CheckpointSigner {
        try CheckpointSigner(keys + [CheckpointSigningKey.generate(version: signingKey.version + 1)])
    }

    static let header = "auditdb-checkpoint-key v1"

    /// Reads a secret checkpoint key file.
    /// - Throws: ``AuditError`` `keyUnavailable` (no file), `keyFileInsecure` (mode), `invalidKeyFile`.
    public static func load(path: String) throws(AuditError) -> CheckpointSigner {
        do {
            return try loadSecret(path: path)
        } catch where error.code == .keyFileInsecure || error.code == .invalidKeyFile {
            // The public key file given by mistake: say so, not "chmod 600" or "bad header".
            let fd = Platform.openInput(path, followingSymlink: false)  // never waits on a FIFO
            let regular = fd >= 0 && Platform.status(of: fd)?.isRegularFile == true
            if fd >= 0 { Platform.close(fd) }
            if regular, (try? CheckpointPublicKeys.load(path: path)) != nil {
                throw AuditError(.invalidKeyFile, "\(path) is a public checkpoint key file (\(CheckpointPublicKeys.header)), not the secret key: "
                                 + "pass the secret key file that `auditdb checkpoint-key generate --out` wrote")
            }
            throw error
        }
    }

    private static func loadSecret(path: String) throws(AuditError) -> CheckpointSigner {
        try SecretFile.withContents(of: path, what: "checkpoint key file", missingHint: "create one with `auditdb checkpoint-key generate --out \(path) --public-out FILE`") { bytes throws(AuditError) in
            var keys: [CheckpointSigningKey] = []
            try KeyLines.parse(bytes, header: header, origin: "checkpoint key file \(path)") { line, fields throws(AuditError) in
                guard fields.count == 4, String(decoding: fields[0], as: UTF8.self) == "key",
                      let version = UInt32(String(decoding: fields[1], as: UTF8.self)), version > 0
                else {
                    throw AuditError(.invalidKeyFile, "checkpoint key file \(path) line \(line): expected `key VERSION CREATED SEED_HEX`")
                }
                let created = AuditTimestamp(iso8601: String(decoding: fields[2], as: UTF8.self))
                var seed = [UInt8](repeating: 0, count: 32)
                defer { sodium_memzero(&seed, seed.count) }
                guard KeyLines.hex(fields[3], into: &seed) else {
                    throw AuditError(.invalidKeyFile, "checkpoint key file \(path) line \(line): the seed must be 64 hex digits")
                }
                keys.append(try typedAuditErrors {
                    try seed.withUnsafeBytes { b in try CheckpointSigningKey(version: version, seed: b, createdAt: created) }
                })
            }
            return try CheckpointSigner(keys)
        }
    }

    /// Writes the secret key file with mode 0600: atomically when replacing, never overwriting otherwise.
    public func write(to path: String, replacing: Bool) throws(AuditError) {
        var text = [UInt8]()
        defer { sodium_memzero(&text, text.count) }
        text.append(contentsOf: "# AuditDB checkpoint signing key. SECRET: keep it mode 0600; never commit, log or paste it.\n".utf8)
        text.append(contentsOf: (Self.header + "\n").utf8)
        for key in keys {
            text.append(contentsOf: "key \(key.version) \((key.createdAt ?? .now()).iso8601) ".utf8)
            key.appendSeedHex(to: &text)
            text.append(0x0A)
        }
        try SecretFile.write(text, to: path, mode: 0o600, replacing: replacing, what: "checkpoint key file", field: "--out")
    }
}

/// Public checkpoint keys, by version: what a verifier of checkpoints and export bundles needs.
///
/// ```text
/// auditdb-checkpoint-pubkey v1
/// key 1 <64 hex digits: the Ed25519 public key>
/// ```
public struct CheckpointPublicKeys: Sendable, Hashable {
    /// The keys, ascending by version.
    public let keys: [CheckpointPublicKey]

    /// A set of public keys.
    public init(_ keys: [CheckpointPublicKey]) { self.keys = keys.sorted { $0.version < $1.version } }

    /// The key of `version`, if present.
    public func key(version: UInt32) -> CheckpointPublicKey? { keys.first { $0.version == version } }

    static let header = "auditdb-checkpoint-pubkey v1"

    /// Reads a public key file (any mode; it holds nothing secret). The grammar (FORMAT.md
    /// section 16.4): UTF-8 text of at most 1 MiB, LF lines, fields split at runs of space, tab or
    /// CR, blank and `#` lines ignored; the header `auditdb-checkpoint-pubkey v1`, then lines
    /// `key VERSION HEX` with VERSION 1...4294967295 in decimal without sign or leading zero, each
    /// version once, and HEX the 32-byte Ed25519 public key in 64 hex digits; at least one key.
    /// - Throws: ``AuditError`` `keyUnavailable` (no file) or `invalidKeyFile`.
    public static func load(path: String) throws(AuditError) -> CheckpointPublicKeys {
        let bytes = try FileBytes.read(path, what: "public checkpoint key file", limit: 1 << 20)
        return try parse(bytes, path: path)
    }

    /// The keys of a public key file's bytes (the grammar of ``load(path:)``); `path` names the
    /// file in errors.
    static func parse(_ bytes: [UInt8], path: String) throws(AuditError) -> CheckpointPublicKeys {
        guard bytes.count <= 1 << 20 else {
            throw AuditError(.invalidKeyFile, "public checkpoint key file \(path) is larger than 1 MiB")
        }
        let invalid = bytes.withUnsafeBufferPointer { UTF8Check.firstInvalidByte($0) }
        if let invalid {
            throw AuditError(.invalidKeyFile, "public checkpoint key file \(path) is not UTF-8 text (byte \(invalid))")
        }
        var keys: [CheckpointPublicKey] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, bytes.count), alignment: 1)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: bytes)
        // A plain buffer, not bytes.withUnsafeBytes: a typed-throws closure passed to a
        // rethrows function crashes the Swift 6.3.1 compiler.
        let raw = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<bytes.count])
        try KeyLines.parse(raw, header: header, origin: "public checkpoint key file \(path)") { line, fields throws(AuditError) in
            // The version in one spelling only: digits, no sign, no leading zero.
            guard fields.count == 3, String(decoding: fields[0], as: UTF8.self) == "key",
                  let first = fields[1].first, first >= UInt8(ascii: "1"), first <= UInt8(ascii: "9"),
                  fields[1].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  let version = UInt32(String(decoding: fields[1], as: UTF8.self)),
                  let pk = Hex.decode(String(decoding: fields[2], as: UTF8.self)), pk.count == 32
            else {
                throw AuditError(.invalidKeyFile, "public checkpoint key file \(path) line \(line): expected `key VERSION PUBKEY_HEX` (64 hex digits)")
            }
            keys.append(CheckpointPublicKey(version: version, bytes: pk))
        }
        guard !keys.isEmpty else { throw AuditError(.invalidKeyFile, "public checkpoint key file \(path) holds no key") }
        guard Set(keys.map(\.version)).count == keys.count else {
            throw AuditError(.invalidKeyFile, "public checkpoint key file \(path): a version appears twice")
        }
        return CheckpointPublicKeys(keys)
    }

    /// The file's text.
    public var fileText: String {
        "# AuditDB checkpoint public keys: not secret; give them to anyone who verifies checkpoints or exports.\n"
            + Self.header + "\n" + keys.map { "key \($0.version) \($0.hex)\n" }.joined()
    }

    /// Writes the public key file (mode 0644), atomically.
    public func write(to path: String) throws(AuditError) {
        try write(to: path, replacing: true)
    }

    /// Writes the public key file (mode 0644): atomically when replacing, never overwriting
    /// otherwise (a verifier may hold the file that is there, for keys this file would not list).
    public func write(to path: String, replacing: Bool) throws(AuditError) {
        try SecretFile.write(Array(fileText.utf8), to: path, mode: 0o644, replacing: replacing, what: "public key file",
                             field: "--public-out")
    }
}
