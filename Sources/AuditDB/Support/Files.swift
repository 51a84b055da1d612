import CSodium

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading and writing small files with the checks key files need.
enum SecretFile {
    /// Reads a file that must be private (mode & 0o077 == 0) into secure memory, hands it to
    /// `body` and wipes it.
    static func withContents<R>(of path: String, what: String, missingHint: String,
                                _ body: (UnsafeRawBufferPointer) throws(AuditError) -> R) throws(AuditError) -> R
    {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw AuditError(code == ENOENT ? .keyUnavailable : .invalidKeyFile,
                             code == ENOENT ? "\(what) \(path) does not exist; \(missingHint)"
                                 : "cannot open \(what) \(path): \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw AuditError(.keyFileInsecure, "\(what) \(path) is not a regular file")
        }
        guard (info.st_mode & 0o077) == 0 else {
            throw AuditError(.keyFileInsecure,
                             "\(what) \(path) is accessible by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); run `chmod 600 \(path)` and check who could have read it")
        }
        let size = Int(info.st_size)
        guard size > 0, size < 1 << 20 else { throw AuditError(.invalidKeyFile, "\(what) \(path) is empty or too large (\(size) bytes)") }
        guard sodiumInitialized, let buffer = sodium_malloc(size) else {
            throw AuditError(.storage, "could not allocate secure memory to read \(what) \(path)")
        }
        defer { sodium_free(buffer) }
        var filled = 0
        while filled < size {
            let n = read(fd, buffer + filled, size - filled)
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw AuditError(.invalidKeyFile, "could not read \(what) \(path)") }
            filled += n
        }
        return try body(UnsafeRawBufferPointer(start: buffer, count: filled))
    }

    /// Writes `bytes` with `mode`: through a temporary file, fsync and rename when replacing;
    /// with O_EXCL (never overwriting) otherwise.
    /// `what` names the file in errors; `field` is the option that named the path (reported
    /// when the file already exists).
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t, replacing: Bool, what: String = "key file",
                      field: String? = nil) throws(AuditError)
    {
        let target = replacing ? path + ".tmp-\(getpid())" : path
        let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let code = errno
            throw AuditError(code == EEXIST && !replacing ? .invalidInput : .storage,
                             code == EEXIST && !replacing ? "\(path) already exists; refusing to overwrite a \(what) (choose another path)"
                                 : "cannot create \(target): \(String(cString: strerror(code)))",
                             field: code == EEXIST ? field : nil)
        }
        var ok = fchmod(fd, mode) == 0 && FileBytes.writeAllAndSync(fd, bytes)
        close(fd)
        if ok && replacing { ok = rename(target, path) == 0 }
        guard ok else {
            let code = errno
            unlink(target)
            throw AuditError(.storage, "could not write \(what) \(path): \(String(cString: strerror(code)))")
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
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, bytes.count - written) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return false }
            written += n
        }
        return fsync(fd) == 0
    }

    static func read(_ path: String, what: String, limit: Int) throws(AuditError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw AuditError(code == ENOENT ? .keyUnavailable : .storage,
                             "cannot open \(what) \(path): \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        var out = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw AuditError(.storage, "could not read \(what) \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
            guard out.count <= limit else { throw AuditError(.invalidInput, "\(what) \(path) is larger than \(limit) bytes") }
        }
    }
}
