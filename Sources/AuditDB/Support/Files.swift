import CSodium
import Foundation

/// Reading and writing small files with the checks key files need.
enum SecretFile {
    /// Reads a file that must be private into secure memory, hands it to `body` and wipes it.
    /// The file must be a regular file (a FIFO or device is refused at once, never waited on),
    /// not a symbolic link (so that what is checked is what is read, and `keys rotate` replaces
    /// the file it read), owned by this user or root, and not accessible by group or others.
    static func withContents<R>(of path: String, what: String, missingHint: String,
                                _ body: (UnsafeRawBufferPointer) throws(AuditError) -> R) throws(AuditError) -> R
    {
        let fd = Platform.openInput(path, followingSymlink: false)
        guard fd >= 0 else {
            let code = Platform.errorCode
            if code == Platform.symbolicLink {
                throw AuditError(.keyFileInsecure,
                                 "\(what) \(path) is a symbolic link; pass the path of the file itself (a link could be redirected to another file)")
            }
            throw AuditError(code == Platform.noSuchFile ? .keyUnavailable : .invalidKeyFile,
                             code == Platform.noSuchFile ? "\(what) \(path) does not exist; \(missingHint)"
                                 : "cannot open \(what) \(path): \(Platform.errorMessage(code))")
        }
        defer { Platform.close(fd) }
        guard let info = Platform.status(of: fd), info.isRegularFile else {
            throw AuditError(.keyFileInsecure, "\(what) \(path) is not a regular file (a FIFO, device or directory is refused)")
        }
        guard info.owner == Platform.effectiveUserID || info.owner == 0 else {
            throw AuditError(.keyFileInsecure,
                             "\(what) \(path) belongs to user id \(info.owner), not to this user (\(Platform.effectiveUserID)) or root; someone else could have written it. Check it, then `chown` it")
        }
        guard (info.permissions & 0o077) == 0 else {
            throw AuditError(.keyFileInsecure,
                             "\(what) \(path) is accessible by group or others (mode \(String(info.permissions, radix: 8))); run `chmod 600 \(path)` and check who could have read it")
        }
        let size = info.size
        guard size > 0, size < 1 << 20 else { throw AuditError(.invalidKeyFile, "\(what) \(path) is empty or too large (\(size) bytes)") }
        guard sodiumInitialized, let buffer = sodium_malloc(size) else {
            throw AuditError(.storage, "could not allocate secure memory to read \(what) \(path)")
        }
        defer { sodium_free(buffer) }
        var filled = 0
        while filled < size {
            let n = Platform.read(fd, into: buffer + filled, count: size - filled)
            if n < 0, Platform.errorCode == Platform.interrupted { continue }
            guard n > 0 else { throw AuditError(.invalidKeyFile, "could not read \(what) \(path)") }
            filled += n
        }
        return try body(UnsafeRawBufferPointer(start: buffer, count: filled))
    }

    /// Writes `bytes` with `mode`: through a temporary file, fsync and rename when replacing;
    /// with O_EXCL (never overwriting) otherwise; then fsyncs the directory.
    /// `what` names the file in errors; `field` is the option that named the path (reported
    /// when the file already exists).
    static func write(_ bytes: [UInt8], to path: String, mode: Platform.FileMode, replacing: Bool, what: String = "key file",
                      field: String? = nil) throws(AuditError)
    {
        let target = replacing ? path + ".tmp-\(Platform.processID)" : path
        // A temporary of this pid can only be left by a killed process whose pid was reused
        // (in a container, every run may be pid 1): it is stale, never another writer's.
        if replacing {
            Platform.unlink(target)
            removeStaleTemporaries(of: path)
        }
        let fd = Platform.createExclusive(target, mode: mode)
        guard fd >= 0 else {
            let code = Platform.errorCode
            let exists = code == Platform.fileExists
            throw AuditError(exists && !replacing ? .invalidInput : .storage,
                             exists && !replacing ? "\(path) already exists; refusing to overwrite a \(what) (choose another path)"
                                 : "cannot create \(target): \(Platform.errorMessage(code))",
                             field: exists ? field : nil)
        }
        var ok = Platform.setMode(fd, mode) && FileBytes.writeAllAndSync(fd, bytes)
        Platform.close(fd)
        if ok && replacing { ok = Platform.rename(target, to: path) }
        guard ok else {
            let code = Platform.errorCode
            Platform.unlink(target)
            throw AuditError(.storage, "could not write \(what) \(path): \(Platform.errorMessage(code))")
        }
        // The new name (or the rename over the old file) survives a power cut only once its
        // directory is synced: a key rotation's store commit, durable right after, must never
        // outlive the key file that holds the new version.
        Platform.syncDirectory(of: path)
    }
}

extension SecretFile {
    /// Removes `path.tmp-PID` files that a process killed while it replaced `path` left behind:
    /// a key file's temporary holds a copy of every secret key in it. Only those whose process
    /// is gone: a live one is another writer's, still at work.
    static func removeStaleTemporaries(of path: String) {
        let url = URL(fileURLWithPath: path)
        let prefix = url.lastPathComponent + ".tmp-"
        let directory = url.deletingLastPathComponent().path
        // A directory that cannot be listed: the write below reports what is wrong with it.
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for name in names where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)), pid != Platform.processID, Platform.processIsGone(pid) else { continue }
            Platform.unlink(directory + "/" + name)
        }
    }
}

/// Reading whole non-secret files with a size limit, and writing all of a buffer durably.
enum FileBytes {
    /// Writes all of `bytes` to `fd` (retrying short writes and EINTR), then fsyncs it. On
    /// false, `errno` says what failed.
    static func writeAllAndSync(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Platform.write(fd, from: $0.baseAddress! + written, count: bytes.count - written) }
            if n < 0, Platform.errorCode == Platform.interrupted { continue }
            guard n > 0 else { return false }
            written += n
        }
        return Platform.sync(fd)
    }

    /// Reads a whole input file of at most `limit` bytes; on failure the error names `what` and `path`.
    static func read(_ path: String, what: String, limit: Int) throws(AuditError) -> [UInt8] {
        switch readBounded(path, limit: limit) {
        case .success(let bytes): return bytes
        case .failure(.missing):
            throw AuditError(.keyUnavailable, "cannot open \(what) \(path): \(Platform.errorMessage(Platform.noSuchFile))")
        case .failure(.cannotOpen(let code)):
            throw AuditError(.storage, "cannot open \(what) \(path): \(Platform.errorMessage(code))")
        case .failure(.notRegular):
            throw AuditError(.invalidInput, "\(what) \(path) is not a regular file (a FIFO, device or directory is refused)")
        case .failure(.tooLarge):
            throw AuditError(.invalidInput, "\(what) \(path) is larger than \(limit) bytes")
        case .failure(.unreadable(let code)):
            throw AuditError(.storage, "could not read \(what) \(path): \(Platform.errorMessage(code))")
        }
    }

    /// Why an input file could not be read.
    enum InputFailure: Error, Equatable {
        case missing
        case cannotOpen(Int32)
        /// A FIFO, device, socket or directory: refused at once, never waited on.
        case notRegular
        case tooLarge
        case unreadable(Int32)

        /// What a verifier reports about an input file `name` that failed this way (FORMAT.md 17.2
        /// and 23.3 use these words).
        func describe(_ name: String, limit: Int) -> String {
            switch self {
            case .missing: "\(name) is missing"
            case .notRegular: "\(name) is not a regular file (a FIFO, device or directory is refused)"
            case .tooLarge: "\(name) is larger than \(limit) bytes"
            case .cannotOpen, .unreadable: "\(name) could not be read"
            }
        }
    }

    /// Opens an input file without waiting (`O_NONBLOCK`) and checks that it is a regular file of
    /// at most `limit` bytes. The caller closes the descriptor.
    static func openInput(_ path: String, limit: Int) -> Result<Int32, InputFailure> {
        let fd = Platform.openInput(path, followingSymlink: true)
        guard fd >= 0 else {
            let code = Platform.errorCode
            return .failure(code == Platform.noSuchFile ? .missing : .cannotOpen(code))
        }
        // Only regular files are inputs: a FIFO or device would block or never end.
        guard let info = Platform.status(of: fd), info.isRegularFile else {
            Platform.close(fd)
            return .failure(.notRegular)
        }
        guard info.size <= limit else {
            Platform.close(fd)
            return .failure(.tooLarge)
        }
        return .success(fd)
    }

    /// Reads a whole regular file of at most `limit` bytes, enforcing the limit while reading
    /// (the file may grow after it was opened).
    static func readBounded(_ path: String, limit: Int) -> Result<[UInt8], InputFailure> {
        let fd: Int32
        switch openInput(path, limit: limit) {
        case .success(let opened): fd = opened
        case .failure(let failure): return .failure(failure)
        }
        defer { Platform.close(fd) }
        // Read into one buffer of the size fstat gave (plus one byte, to notice growth): no
        // doubling, no second copy, so a 24 MiB manifest costs 24 MiB.
        let expected = Platform.status(of: fd).map { min($0.size, limit) } ?? 0
        var out = [UInt8](repeating: 0, count: expected + 1)
        var filled = 0
        while true {
            if filled == out.count {
                guard out.count <= limit else { return .failure(.tooLarge) }
                out.append(contentsOf: repeatElement(0, count: min(65_536, limit + 1 - out.count)))
            }
            let n = out.withUnsafeMutableBytes { Platform.read(fd, into: $0.baseAddress! + filled, count: $0.count - filled) }
            if n < 0, Platform.errorCode == Platform.interrupted { continue }
            guard n >= 0 else { return .failure(.unreadable(Platform.errorCode)) }
            if n == 0 {
                out.removeLast(out.count - filled)
                return .success(out)
            }
            filled += n
            guard filled <= limit else { return .failure(.tooLarge) }
        }
    }
}

/// Small state files the command-line tool keeps between runs (`auditdb tail --cursor-file`):
/// read with a size bound, replaced atomically. `package` only, for the `auditdb` target.
package enum StateFile {
    /// The whole file, or nil if it does not exist.
    /// - Throws: ``AuditError`` if it is not a regular file, larger than `limit`, or unreadable.
    package static func read(_ path: String, what: String, limit: Int) throws(AuditError) -> [UInt8]? {
        switch FileBytes.openInput(path, limit: limit) {
        case .failure(.missing): return nil
        case .failure: break  // FileBytes.read names the problem
        case .success(let fd):
            defer { Platform.close(fd) }
            // Whoever can write it decides where the next run starts (and could make it skip).
            if let info = Platform.status(of: fd), info.permissions & 0o022 != 0 {
                throw AuditError(.invalidInput, "\(what) \(path) can be written by group or others (mode \(String(info.permissions, radix: 8))): "
                                 + "whoever can write it decides where the next run starts; run `chmod 600 \(path)`")
            }
        }
        return try FileBytes.read(path, what: what, limit: limit)
    }

    /// Checks, before anything is printed, that `path` can be replaced: its directory exists and
    /// takes a new file (the temporary ``replace(_:with:mode:what:)`` writes first).
    package static func checkReplaceable(_ path: String, what: String) throws(AuditError) {
        // Replacing renames a new file over `path`: a symbolic link there would be replaced, not
        // the file it points to, and another user's file would silently become ours.
        var info = stat()
        if lstat(path, &info) == 0 {
            if info.st_mode & S_IFMT == S_IFLNK {
                throw AuditError(.invalidInput, "\(what) \(path) is a symbolic link; pass the path of the file itself")
            }
            if info.st_uid != geteuid() {
                throw AuditError(.invalidInput, "\(what) \(path) belongs to another user (uid \(info.st_uid)); pass a file of this user's")
            }
        }
        let probe = path + ".tmp-\(Platform.processID)"
        Platform.unlink(probe)
        let fd = Platform.createExclusive(probe, mode: 0o600)
        guard fd >= 0 else {
            throw AuditError(.storage, "\(what) \(path) cannot be written (creating \(probe): \(Platform.errorMessage(Platform.errorCode))); "
                             + "pass a path in a directory that exists and this user may write")
        }
        Platform.close(fd)
        Platform.unlink(probe)
    }

    /// Replaces `path` with `bytes` (mode `mode`): written to a temporary file beside it,
    /// fsync'd, then renamed over it, so that a reader (or a restart after a kill) sees the old
    /// contents or the new ones, never a mix.
    package static func replace(_ path: String, with bytes: [UInt8], mode: UInt32, what: String) throws(AuditError) {
        try SecretFile.write(bytes, to: path, mode: Platform.FileMode(mode), replacing: true, what: what)
    }
}
