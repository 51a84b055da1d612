// Platform.swift - the only file of the package that imports the C library.
//
// AuditDB builds and is tested on Linux (Glibc). The package also declares macOS: the calls
// below have the same POSIX names and meaning in Darwin, so that branch compiles by
// construction, but it is not built or tested here.
import CAuditCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#else
    #error("AuditDB needs a POSIX C library (Glibc, Musl or Darwin)")
#endif

/// The POSIX file, process and terminal calls AuditDB makes. Everything else in the package
/// calls these instead of importing Glibc or Darwin itself. Not public API: `package` only so
/// that the `auditdb` command can use ``standardErrorIsTerminal``.
package enum Platform {
    /// A file's permission bits (`mode_t`).
    typealias FileMode = mode_t

    // MARK: errno

    /// The calling thread's `errno`, to be read right after the call that failed.
    static var errorCode: Int32 { errno }
    /// `strerror(code)`.
    static func errorMessage(_ code: Int32) -> String { String(cString: strerror(code)) }
    /// `EINTR`: the call was interrupted by a signal and may be retried.
    static let interrupted = EINTR
    /// `ENOENT`: no such file or directory.
    static let noSuchFile = ENOENT
    /// `EEXIST`: the file exists.
    static let fileExists = EEXIST

    // MARK: Files

    /// `open(path, O_RDONLY | O_CLOEXEC)`; -1 with `errorCode` set on failure.
    static func openForReading(_ path: String) -> Int32 {
        open(path, O_RDONLY | O_CLOEXEC)
    }

    /// Opens an input file without ever waiting: `O_NONBLOCK`, so that a FIFO or a device
    /// opens at once (the caller then refuses anything that is not a regular file), and with
    /// `followingSymlink: false` also `O_NOFOLLOW` (a final symbolic link fails with `ELOOP`).
    static func openInput(_ path: String, followingSymlink: Bool) -> Int32 {
        open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | (followingSymlink ? 0 : O_NOFOLLOW))
    }

    /// `ELOOP`: with `O_NOFOLLOW`, the final component is a symbolic link.
    static let symbolicLink = ELOOP

    /// The effective user id of this process.
    static var effectiveUserID: UInt32 { UInt32(geteuid()) }

    /// `open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)`: creates a new file, never
    /// opening an existing one; -1 with `errorCode` set on failure.
    static func createExclusive(_ path: String, mode: FileMode) -> Int32 {
        open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    }

    /// `close(fd)`.
    static func close(_ fd: Int32) { _ = closeFile(fd) }

    /// Opens `path` (created with exactly `mode` if absent; a final symbolic link is refused) and
    /// takes an exclusive `flock` on it without waiting. Returns the descriptor, which holds the
    /// lock until closed, or -1 with `errorCode` set (``wouldBlock``: another open file holds it,
    /// in this process or another).
    static func lockExclusively(_ path: String, mode: FileMode) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else { return -1 }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            errno = code
            return -1
        }
        return fd
    }

    /// `EWOULDBLOCK`: the lock is held elsewhere.
    static let wouldBlock = EWOULDBLOCK

    /// `read(fd, buffer, count)`: bytes read, 0 at the end, -1 with `errorCode` set on failure.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawPointer, count: Int) -> Int {
        readFile(fd, buffer, count)
    }

    /// `write(fd, bytes, count)`: bytes written, -1 with `errorCode` set on failure.
    static func write(_ fd: Int32, from bytes: UnsafeRawPointer, count: Int) -> Int {
        writeFile(fd, bytes, count)
    }

    /// `fsync(fd) == 0`.
    static func sync(_ fd: Int32) -> Bool { fsync(fd) == 0 }

    /// Starts writing the file's dirty pages to disk without waiting for them
    /// (`sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)` on Linux; nothing elsewhere). Not a
    /// durability point: only makes a later `fsync` of the same file find less to write.
    static func startWriteback(_ fd: Int32) {
        _ = adb_start_writeback(fd)  // advisory: a failure only means the later fsync writes more
    }

    /// `fchmod(fd, mode) == 0`.
    static func setMode(_ fd: Int32, _ mode: FileMode) -> Bool { fchmod(fd, mode) == 0 }

    /// Creates an empty file with exactly `mode` (whatever the umask), never opening an existing
    /// one. Returns 0, or the `errno` of the call that failed.
    static func createEmpty(_ path: String, mode: FileMode) -> Int32 {
        let fd = createExclusive(path, mode: mode)
        guard fd >= 0 else { return errorCode }
        let ok = setMode(fd, mode)
        let code = errorCode
        close(fd)
        if !ok { unlink(path) }
        return ok ? 0 : code
    }

    /// `chmod(path, mode)`.
    static func setMode(_ path: String, _ mode: FileMode) -> Bool { chmod(path, mode) == 0 }

    /// What `fstat` says about an open file, or nil if it fails.
    static func status(of fd: Int32) -> (isRegularFile: Bool, permissions: FileMode, size: Int, owner: UInt32)? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        return ((info.st_mode & S_IFMT) == S_IFREG, info.st_mode & 0o777, Int(info.st_size), UInt32(info.st_uid))
    }

    /// The device and inode of the file at `path` (following symbolic links), or nil if there is
    /// none: two paths name the same file exactly when these agree.
    static func identity(of path: String) -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }

    /// A file's device and inode.
    struct FileIdentity: Sendable, Hashable {
        let device: UInt64
        let inode: UInt64
    }

    /// `rename(from, to) == 0` (replaces `to`).
    static func rename(_ from: String, to: String) -> Bool { renameFile(from, to) == 0 }

    /// fsyncs the directory holding `path`, so that a rename or link into it survives a power
    /// cut (best effort: a file system that cannot sync a directory has nothing more to do).
    static func syncDirectory(of path: String) {
        let parent = path.lastIndex(of: "/").map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        _ = closeFile(fd)
    }

    /// `link(from, to) == 0`: fails with `EEXIST` instead of replacing `to`.
    static func link(_ from: String, to: String) -> Bool { linkFile(from, to) == 0 }

    /// `unlink(path)`.
    static func unlink(_ path: String) { _ = unlinkFile(path) }

    // MARK: Process

    /// `getpid()`.
    static var processID: Int32 { getpid() }

    /// Whether no process has id `pid` (`kill(pid, 0)` fails with ESRCH). A process of another
    /// user still exists (EPERM).
    static func processIsGone(_ pid: Int32) -> Bool {
        pid > 0 && kill(pid, 0) == -1 && errno == ESRCH
    }

    /// The bytes of an environment variable, without copying them into a Swift string (they may
    /// be secret: the caller wipes its own copies). Valid until the environment changes.
    /// Overwrites a variable's value with zeros in place (so no copy stays in the environment
    /// block that /proc/PID/environ shows), then `unsetenv(name)`: children started afterwards
    /// do not inherit it.
    static func removeEnvironment(_ name: String) {
        if let value = getenv(name) { memset(value, 0, strlen(value)) }
        _ = unsetenv(name)
    }

    static func environmentBytes(_ name: String) -> UnsafeBufferPointer<UInt8>? {
        guard let value = getenv(name) else { return nil }
        return UnsafeBufferPointer(start: UnsafeRawPointer(value).assumingMemoryBound(to: UInt8.self), count: strlen(value))
    }

    /// Whether standard error is a terminal (`isatty(STDERR_FILENO)`). `package`: the
    /// `auditdb` command asks it.
    package static var standardErrorIsTerminal: Bool { isatty(STDERR_FILENO) == 1 }
}

// The C functions under names that the wrappers above do not shadow.
private func closeFile(_ fd: Int32) -> Int32 { close(fd) }
private func readFile(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int { read(fd, buffer, count) }
private func writeFile(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }
private func renameFile(_ from: String, _ to: String) -> Int32 { rename(from, to) }
private func linkFile(_ from: String, _ to: String) -> Int32 { link(from, to) }
private func unlinkFile(_ path: String) -> Int32 { unlink(path) }
