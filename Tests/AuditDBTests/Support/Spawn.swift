import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn` directly, not Foundation's `Process.run()`.
///
/// On this toolchain `Process.run()` lists `/proc/self/fd` by copying each `dirent`'s whole
/// 256-byte `d_name`, reading past glibc's buffer: when that buffer ends a mapped page the test
/// process dies with SIGSEGV in `memcpy` (swift-corelibs-foundation pull request 5472, fixed
/// upstream after this toolchain). It struck the full suite twice in one day, more often the
/// more files the parallel tests held open. The runner below never calls it.
struct SpawnedChild {
    let pid: pid_t
    /// The parent's ends of the child's standard input, output and error.
    let stdinWrite: Int32, stdoutRead: Int32, stderrRead: Int32

    /// Starts `executable` with `arguments` and `environment`, its standard streams on new pipes,
    /// every other descriptor closed, in a process group of its own (as `Process` does). Call it
    /// under ``environmentLock``.
    static func spawn(_ executable: String, _ arguments: [String], environment: [String: String]) throws -> SpawnedChild {
        // Close-on-exec at once (Glibc does not declare pipe2): callers spawn under
        // `environmentLock`, as every other start of a child does, so none starts in between.
        func makePipe(_ fds: inout [Int32]) -> Bool {
            guard pipe(&fds) == 0 else { return false }
            return fcntl(fds[0], F_SETFD, FD_CLOEXEC) == 0 && fcntl(fds[1], F_SETFD, FD_CLOEXEC) == 0
        }
        var input: [Int32] = [-1, -1], output: [Int32] = [-1, -1], errors: [Int32] = [-1, -1]
        guard makePipe(&input), makePipe(&output), makePipe(&errors) else {
            let message = String(cString: strerror(errno))
            for fd in input + output + errors where fd >= 0 { close(fd) }
            throw TestFailure("cannot make pipes for \(executable): \(message)")
        }
        let status = spawnChild(executable, arguments, environment: environment, stdin: input[0], stdout: output[1], stderr: errors[1])
        let pid = status.pid
        close(input[0])
        close(output[1])
        close(errors[1])
        guard status.error == 0 else {
            close(input[1])
            close(output[0])
            close(errors[0])
            throw TestFailure("cannot start \(executable): \(String(cString: strerror(status.error)))")
        }
        return SpawnedChild(pid: pid, stdinWrite: input[1], stdoutRead: output[0], stderrRead: errors[0])
    }

    /// Waits for the child; its exit status, or the number of the signal that ended it (as
    /// `Process.terminationStatus` gives it).
    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : signal
    }

}

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), which Swift's Glibc
/// module does not declare.
private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
private let closeFrom: CloseFrom? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(symbol, to: CloseFrom.self)
}()

/// posix_spawn of `executable` with `stdin`, `stdout`, `stderr` as its descriptors 0-2, every
/// other descriptor closed, in a process group of its own (as `Process` does). Call it under
/// ``environmentLock``. Returns the pid, or posix_spawn's error.
func spawnChild(_ executable: String, _ arguments: [String], environment: [String: String], stdin: Int32, stdout: Int32,
                stderr: Int32) -> (pid: pid_t, error: Int32)
{
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, stdin, 0)
    posix_spawn_file_actions_adddup2(&actions, stdout, 1)
    posix_spawn_file_actions_adddup2(&actions, stderr, 2)
    if let closeFrom { _ = closeFrom(&actions, 3) }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        for pointer in argv { free(pointer) }
        for pointer in envp { free(pointer) }
    }
    var pid = pid_t()
    let error = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
    return (pid, error)
}

/// The parts of Foundation's `Process` the tests use, started with ``spawnChild`` instead of
/// `Process.run()` (see ``SpawnedChild`` for why). Standard streams are a `Pipe`, a `FileHandle`,
/// or nil for /dev/null, as with `Process`.
final class TestProcess: @unchecked Sendable {
    var executableURL: URL?
    var arguments: [String] = []
    var environment: [String: String]?
    var standardInput: Any?
    var standardOutput: Any?
    var standardError: Any?
    private(set) var processIdentifier: pid_t = 0
    /// nil while running; then the raw wait status.
    private let exit = Mutex<Int32?>(nil)

    func run() throws {
        guard let executable = executableURL?.path else { throw TestFailure("TestProcess: no executableURL") }
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard null >= 0 else { throw TestFailure("cannot open /dev/null") }
        defer { close(null) }
        func childEnd(_ stream: Any?, reading: Bool) -> Int32 {
            switch stream {
            case let pipe as Pipe: return reading ? pipe.fileHandleForReading.fileDescriptor : pipe.fileHandleForWriting.fileDescriptor
            case let handle as FileHandle: return handle.fileDescriptor
            default: return null
            }
        }
        let environment = self.environment ?? inheritedEnvironment
        let (stdin, stdout, stderr) = (childEnd(standardInput, reading: true), childEnd(standardOutput, reading: false),
                                       childEnd(standardError, reading: false))
        let result = environmentLock.withLock { _ in
            spawnChild(executable, arguments, environment: environment, stdin: stdin, stdout: stdout, stderr: stderr)
        }
        guard result.error == 0 else { throw TestFailure("cannot start \(executable): \(String(cString: strerror(result.error)))") }
        processIdentifier = result.pid
        // As Process does: the parent keeps only its own ends of the pipes.
        if let pipe = standardInput as? Pipe { try pipe.fileHandleForReading.close() }
        if let pipe = standardOutput as? Pipe { try pipe.fileHandleForWriting.close() }
        if let pipe = standardError as? Pipe { try pipe.fileHandleForWriting.close() }
    }

    var isRunning: Bool {
        exit.withLock { status in
            guard status == nil, processIdentifier > 0 else { return false }
            var raw: Int32 = 0
            let reaped = waitpid(processIdentifier, &raw, WNOHANG)
            if reaped == processIdentifier { status = raw }
            return status == nil
        }
    }

    func waitUntilExit() {
        while isRunning { usleep(2_000) }
    }

    /// The exit status, or the number of the signal that ended it.
    var terminationStatus: Int32 {
        let raw = exit.withLock { $0 } ?? 0
        return raw & 0x7f == 0 ? (raw >> 8) & 0xff : raw & 0x7f
    }

    var terminationReason: Process.TerminationReason {
        let raw = exit.withLock { $0 } ?? 0
        return raw & 0x7f == 0 ? .exit : .uncaughtSignal
    }
}
