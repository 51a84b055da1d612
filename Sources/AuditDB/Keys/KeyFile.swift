import CAuditCore
import CSodium
import Foundation

/// A key file: the key ring as text, readable only by its owner.
///
/// Format (one key per line; `#` starts a comment):
/// ```text
/// auditdb-keys v1
/// key 1 active 2026-11-23T13:15:00.000000Z <64 hex digits>
/// key 2 active 2027-02-21T09:00:00.000000Z <64 hex digits>
/// ```
/// The file is refused if group or others may read or write it (fix: `chmod 600 FILE`).
/// Its bytes are read into locked memory and wiped after parsing.
public struct KeyFile: AuditKeyProvider {
    /// Where the file is.
    public let path: String

    /// A key file at `path`.
    public init(path: String) { self.path = path }

    static let header = "auditdb-keys v1"

    public func keyRing() async throws -> KeyRing { try load() }

    /// Reads and parses the file synchronously.
    /// - Throws: ``AuditError`` `keyFileInsecure`, `invalidKeyFile` or `keyUnavailable`.
    public func load() throws(AuditError) -> KeyRing {
        try SecretFile.withContents(
            of: path, what: "key file", missingHint: "create one with `auditdb keys generate --out \(path)`"
        ) { (bytes) throws(AuditError) in try KeyText.parse(bytes, origin: "key file \(path)") }
    }

    /// Writes a new key file holding one freshly generated key (version 1). Refuses to
    /// overwrite an existing file. The file is created with mode 0600.
    @discardableResult
    public static func generate(at path: String) throws(AuditError) -> KeyRing {
        let ring = try KeyRing([AuditKey.generate(version: 1)])
        try write(ring, to: path, replacing: false)
        return ring
    }

    /// Writes `ring` to `path` with mode 0600: atomically (temporary file, fsync, rename) when
    /// replacing, exclusively (never overwriting) otherwise.
    public static func write(_ ring: KeyRing, to path: String, replacing: Bool) throws(AuditError) {
        var text = [UInt8]()
        defer { sodium_memzero(&text, text.count) }
        text.append(contentsOf: "# AuditDB key file. SECRET: keep it mode 0600; never commit, log or paste it.\n".utf8)
        text.append(contentsOf: (header + "\n").utf8)
        for version in ring.versions {
            let key = ring.keys[version]!
            text.append(contentsOf: "key \(version) \(key.status.rawValue) \((key.createdAt ?? .now()).iso8601) ".utf8)
            var hex = [CChar](repeating: 0, count: 65)
            key.withSecretBytes { bytes in
                _ = sodium_bin2hex(&hex, 65, bytes.bindMemory(to: UInt8.self).baseAddress, 32)
            }
            text.append(contentsOf: hex[0..<64].map { UInt8(bitPattern: $0) })
            sodium_memzero(&hex, hex.count)
            text.append(0x0A)
        }
        try SecretFile.write(text, to: path, mode: 0o600, replacing: replacing, field: "--out")
    }
}

/// Reads keys from an environment variable (default `AUDITDB_KEYS`):
/// `VERSION:HEX[:compromised]` entries separated by commas, e.g. `1:<64 hex digits>`. Spaces and
/// LF separate entries too, so a value wrapped over lines reads the same (a CR is refused);
/// separators in a row, before the first entry or after the last one are skipped.
///
/// Prefer a key file or a vault: the environment of a process can leak through
/// `/proc/PID/environ` to the same user and through crash reports.
public struct EnvironmentKeyProvider: AuditKeyProvider {
    /// The variable's name.
    public let variable: String

    /// Reads `variable`.
    public init(variable: String = "AUDITDB_KEYS") { self.variable = variable }

    public func keyRing() async throws -> KeyRing { try load() }

    /// Parses the variable synchronously.
    public func load() throws(AuditError) -> KeyRing {
        guard let raw = Platform.environmentBytes(variable) else {
            throw AuditError(.keyUnavailable, "environment variable \(variable) is not set")
        }
        // Once read, the keys leave the environment, wiped: no child process inherits them and
        // they do not stay in the process's environment block for its life. Read it once.
        defer { Platform.removeEnvironment(variable) }
        // Rewrite "1:hex:compromised,2:hex" as key-file lines so one parser serves both.
        var text = Array((KeyFile.header + "\n").utf8)
        defer { sodium_memzero(&text, text.count) }
        var entry = [UInt8]()
        defer { sodium_memzero(&entry, entry.count) }
        var entryNumber = 0
        func flush() throws(AuditError) {
            guard !entry.isEmpty else { return }
            entryNumber += 1
            let fields = entry.split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false)
            guard fields.count == 2 || fields.count == 3 else {
                throw AuditError(
                    .invalidKeyFile,
                    "environment variable \(variable), entry \(entryNumber): expected VERSION:HEX or VERSION:HEX:STATUS (found \(fields.count) field(s))")
            }
            // Each field non-empty and not a key-file comment: the rewritten line must have the
            // same fields, or its errors would not be the entry's.
            if let empty = fields.firstIndex(where: { $0.isEmpty || $0.first == UInt8(ascii: "#") || $0.contains(0x09) || $0.contains(0x0D) }) {
                let name = ["VERSION", "HEX", "STATUS"][empty]
                throw AuditError(
                    .invalidKeyFile,
                    "environment variable \(variable), entry \(entryNumber): \(name) is empty or holds a tab, a CR or a leading #; write VERSION:HEX or VERSION:HEX:STATUS (STATUS active or compromised)")
            }
            let status = fields.count == 3 ? Array(fields[2]) : Array("active".utf8)
            text += Array("key ".utf8) + Array(fields[0]) + [0x20] + status + Array(" - ".utf8) + Array(fields[1]) + [0x0A]
            sodium_memzero(&entry, entry.count)
            entry.removeAll(keepingCapacity: true)
        }
        for c in raw {
            if c == UInt8(ascii: ",") || c == 0x20 || c == 0x0A { try flush() } else { entry.append(c) }
        }
        try flush()
        return try typedAuditErrors {
            // Line 1 is the header written above; line n + 1 is entry n.
            try text.withUnsafeBytes { bytes in
                try KeyText.parse(bytes, origin: "environment variable \(variable)", place: { "entry \($0 - 1)" })
            }
        }
    }
}

/// The shared parser of key-file text. Never echoes key bytes in an error.
enum KeyText {
    /// `place` names a line in errors ("line 3"; `AUDITDB_KEYS` names its entries).
    static func parse(_ bytes: UnsafeRawBufferPointer, origin: String,
                      place: (Int) -> String = { "line \($0)" }) throws(AuditError) -> KeyRing
    {
        var keys: [AuditKey] = []
        try KeyLines.parse(bytes, header: KeyFile.header, origin: origin) { number, fields throws(AuditError) in
            let at = place(number)
            func text(_ f: Slice<UnsafeRawBufferPointer>) -> String { String(decoding: f, as: UTF8.self) }
            guard fields.count == 5, text(fields[0]) == "key" else {
                throw AuditError(
                    .invalidKeyFile, "\(origin) \(at): expected `key VERSION STATUS CREATED HEX` (5 fields)")
            }
            // Digits only, no sign or leading zero: "01" and "+1" would name version 1 in a way
            // no AuditDB writes.
            guard let version = UInt32(text(fields[1])), version > 0, text(fields[1]) == String(version) else {
                throw AuditError(.invalidKeyFile, "\(origin) \(at): the version must be a whole number from 1, in digits without a sign or leading zeros")
            }
            guard let status = AuditKey.Status(rawValue: text(fields[2])) else {
                throw AuditError(
                    .invalidKeyFile, "\(origin) \(at): status must be `active` or `compromised`")
            }
            var created: AuditTimestamp?
            if text(fields[3]) != "-" {
                guard let time = AuditTimestamp(iso8601: text(fields[3])) else {
                    throw AuditError(.invalidKeyFile, "\(origin) \(at): the creation time must be an RFC 3339 time (as AuditDB writes it, e.g. 2026-11-23T13:15:00.000000Z) or -")
                }
                created = time
            }
            guard fields[4].count == 64 else {
                throw AuditError(
                    .invalidKeyFile, "\(origin) \(at): the key must be 64 hex digits (32 bytes); found \(fields[4].count) characters")
            }
            var raw = [UInt8](repeating: 0, count: 32)
            defer { sodium_memzero(&raw, raw.count) }
            guard KeyLines.hex(fields[4], into: &raw) else {
                throw AuditError(.invalidKeyFile, "\(origin) \(at): the key is not valid hex")
            }
            keys.append(try typedAuditErrors {
                try raw.withUnsafeBytes { b in try AuditKey(version: version, bytes: b, status: status, createdAt: created) }
            })
        }
        return try KeyRing(keys)
    }
}

/// Line parsing shared by every key file (the HMAC key file and the checkpoint key files): `#`
/// comments and blank lines skipped, the first other line is the header, every other line is
/// handed over split into fields.
enum KeyLines {
    static func parse(_ bytes: UnsafeRawBufferPointer, header: String, origin: String,
                      _ body: (Int, [Slice<UnsafeRawBufferPointer>]) throws(AuditError) -> Void) throws(AuditError)
    {
        // UTF-8 or ASCII text (FORMAT.md section 12), comments included, as the public key file.
        if let invalid = UTF8Check.firstInvalidByte(bytes.assumingMemoryBound(to: UInt8.self)) {
            throw AuditError(.invalidKeyFile, "\(origin) is not UTF-8 text (byte \(invalid))")
        }
        var sawHeader = false
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            lineNumber += 1
            let line = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
            start = end + 1
            let fields = line.split(whereSeparator: { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D })
            guard let first = fields.first, first.first != UInt8(ascii: "#") else { continue }
            if !sawHeader {
                guard fields.map({ String(decoding: $0, as: UTF8.self) }).joined(separator: " ") == header else {
                    throw AuditError(.invalidKeyFile, "\(origin) line \(lineNumber): expected the header `\(header)`")
                }
                sawHeader = true
                continue
            }
            try body(lineNumber, fields)
        }
        guard sawHeader else { throw AuditError(.invalidKeyFile, "\(origin): no `\(header)` header; is this a key file?") }
    }

    /// Decodes exactly `out.count` bytes of hex without copying them anywhere else.
    static func hex(_ field: Slice<UnsafeRawBufferPointer>, into out: inout [UInt8]) -> Bool {
        guard field.count == out.count * 2 else { return false }
        var decoded = 0
        let count = out.count
        let rc = field.withContiguousStorageIfAvailable { h in
            h.withMemoryRebound(to: CChar.self) { chars in
                sodium_hex2bin(&out, count, chars.baseAddress, chars.count, nil, &decoded, nil)
            }
        }
        return rc == 0 && decoded == count
    }
}

extension KeyFile {
    /// Runs `body` holding the update lock of the key file at `path`: one read-modify-write of a
    /// key file at a time (a rotation, a compromise declaration), across processes and within one.
    ///
    /// Two rotations at once would each read the file, each add "the next version", and the
    /// second rename would replace the first: the key that signed rows under that version would
    /// be lost, and the store could never verify again. Read the file inside `body`, after the
    /// lock is taken. The lock is a `flock` on a file of its own, `PATH.lock` (mode 0600, beside
    /// the key file), never on the key file, which a rotation replaces; it stays afterwards
    /// (removing it could let a third writer lock a new file while the second holds the old one).
    /// Held elsewhere, it is waited for up to `wait`.
    ///
    /// - Throws: ``AuditError/Code/busy`` if another writer holds it for all of `wait`;
    ///   `storage` if the lock file cannot be opened; whatever `body` throws.
    public static func withUpdateLock<T>(_ path: String, wait: Duration = .seconds(30),
                                         _ body: () async throws -> T) async throws -> T
    {
        let lockPath = URL(fileURLWithPath: path).resolvingSymlinksInPath().path + ".lock"
        let deadline = ContinuousClock.now + wait
        var fd: Int32 = -1
        while fd < 0 {
            fd = Platform.lockExclusively(lockPath, mode: 0o600)
            if fd >= 0 { break }
            let code = Platform.errorCode
            guard code == Platform.wouldBlock else {
                throw AuditError(.storage, "cannot open the key file's update lock \(lockPath): \(Platform.errorMessage(code))")
            }
            guard ContinuousClock.now < deadline else {
                throw AuditError(.busy, "another process is changing the key file \(path) (it holds \(lockPath)); wait for it to end, then run this again")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        defer { Platform.close(fd) }
        return try await body()
    }
}
