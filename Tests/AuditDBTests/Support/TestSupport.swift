import AuditDBTestSupport
import Dispatch
import Foundation
import Synchronization
import Testing

@_spi(Testing) @testable import AuditDB

// The suite's first helpers, now thin names over the AuditDBTestSupport product (which apps'
// tests use too). Files migrated to that product import it and use its names directly
// (`TemporaryDirectory`, `KeyRing.inMemory`, `CheckpointSigner.inMemory`, `ManualClock`); these
// keep the rest of the suite unchanged. They are declared here, not as type aliases, so that files
// that do not import AuditDBTestSupport can still use their members (MemberImportVisibility).

/// A fresh temporary directory per test, removed afterwards (an `AuditDBTestSupport.TemporaryDirectory`).
final class TempDir: Sendable {
    private let directory: TemporaryDirectory

    init() throws { directory = try TemporaryDirectory() }

    var url: URL { directory.url }

    func path(_ name: String) -> String { directory.path(name) }
}

/// Test-only keys from the CSPRNG, in memory only (`KeyRing.inMemory`).
func testKeyRing(versions: [UInt32] = [1]) throws -> KeyRing {
    try KeyRing.inMemory(versions: versions)
}

/// A test-only checkpoint signer from the CSPRNG, in memory only (`CheckpointSigner.inMemory`).
func testSigner(versions: [UInt32] = [1]) throws -> CheckpointSigner {
    try CheckpointSigner.inMemory(versions: versions)
}

func sampleEvent(_ i: Int, actor: String? = nil) -> AuditEvent {
    AuditEvent(
        actor: actor ?? "user-\(i % 7)", action: ["login", "read", "write", "delete"][i % 4],
        resourceType: "document", resourceId: "doc-\(i)", tenant: "tenant-\(i % 3)",
        outcome: i % 5 == 0 ? .denied : .success, correlationId: "req-\(i)", source: "10.0.0.\(i % 250)",
        occurredAt: AuditTimestamp(microsecondsSinceEpoch: 1_700_000_000_000_000 + Int64(i)),
        details: ["i": .int(Int64(i)), "note": .string("sample \(i)")])
}

/// Creates a store with `count` sample events and closes it.
@discardableResult
func makeStore(at path: String, keys: KeyRing, count: Int, actor: ((Int) -> String)? = nil) async throws -> StoreID {
    let store = try await AuditStore.create(at: path, keys: keys)
    if count > 0 {
        try await store.append(contentsOf: (1...count).map { sampleEvent($0, actor: actor?($0)) })
    }
    let id = store.storeID
    try await store.close()
    return id
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Starts `invocations.count` programs at once and waits for them all; returns each one's exit
/// status and standard error (standard output is discarded).
func runConcurrently(_ executable: String, _ invocations: [[String]], environment: [String: String]? = nil) throws
    -> [(status: Int32, stderr: String)]
{
    let environment = environment ?? inheritedEnvironment
    let started = try invocations.map { arguments -> (SpawnedChild, ThreadWork<Data>) in
        let child = try environmentLock.withLock { _ in try SpawnedChild.spawn(executable, arguments, environment: environment) }
        close(child.stdinWrite)
        // Standard output is read and dropped, so that no child blocks on a full pipe.
        let discarding = ThreadWork {
            defer { close(child.stdoutRead) }
            return try readToEnd(child.stdoutRead)
        }
        return (child, discarding)
    }
    return try started.map { child, discarding in
        let message = String(decoding: try readToEnd(child.stderrRead), as: UTF8.self)
        close(child.stderrRead)
        _ = try discarding.wait()
        return (child.wait(), message)
    }
}

/// The test's environment without the variables that stand in for auditdb's global options, so
/// that only the arguments a test passes choose the store, the keys and the expected store id.
func environmentWithoutAuditDBOptions() -> [String: String] {
    var environment = inheritedEnvironment
    for name in ["AUDITDB_STORE", "AUDITDB_KEY_FILE", "AUDITDB_KEYS", "AUDITDB_STORE_ID", "AUDITDB_BUSY_TIMEOUT"] {
        environment.removeValue(forKey: name)
    }
    return environment
}

/// Starting a process and changing the environment must not overlap: a child's environment is read
/// while another test's `setenv`/`unsetenv` (or the library's scrubbing of a key variable) may
/// reallocate it. Every start of a child (Spawn.swift) and every test that touches the
/// environment takes this lock for that moment.
let environmentLock = Mutex<Void>(())

/// The environment children inherit, read once (under ``environmentLock``): every child gets an
/// explicit environment, so no start of one reads `environ` while something else changes it.
let inheritedEnvironment: [String: String] = environmentLock.withLock { _ in ProcessInfo.processInfo.environment }

/// Runs `body`, which changes or reads the environment, under ``environmentLock``.
func withEnvironmentLock<R>(_ body: () throws -> R) rethrows -> R {
    try environmentLock.withLock { _ in try body() }
}

/// Runs a program and waits for it.
func run(_ executable: String, _ arguments: [String], stdin: String? = nil, environment: [String: String]? = nil)
    throws -> ProcessResult
{
    try run(executable, arguments, stdinBytes: stdin.map { Data($0.utf8) }, environment: environment)
}

/// Runs a program with raw bytes (possibly invalid UTF-8) on its standard input.
///
/// Standard input is written, and standard error read, each on a thread of its own while this
/// thread reads standard output. Read one after the other, a child that fills the pipe not being
/// read (64 KiB on Linux) would block for ever, and the runner with it.
func run(_ executable: String, _ arguments: [String], stdinBytes: Data?, environment: [String: String]? = nil)
    throws -> ProcessResult
{
    // posix_spawn, not Process.run() (Spawn.swift says why); under the lock all the same, so
    // that no test's setenv changes `environment`'s source while it is read.
    let environment = environment ?? inheritedEnvironment  // outside the lock: its first read takes it
    let child = try environmentLock.withLock { _ in try SpawnedChild.spawn(executable, arguments, environment: environment) }
    let feeding = ThreadWork {
        defer { close(child.stdinWrite) }
        if let stdinBytes { try feed(stdinBytes, to: child.stdinWrite) }
    }
    let draining = ThreadWork {
        defer { close(child.stderrRead) }
        return try readToEnd(child.stderrRead)
    }
    let outData: Data
    do {
        defer { close(child.stdoutRead) }
        outData = try readToEnd(child.stdoutRead)
    }
    let errData = try draining.wait()
    try feeding.wait()
    let status = child.wait()
    return ProcessResult(status: status, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
}

/// Creates or truncates `path` and writes `contents` with `mode`, through `open(2)`. Not
/// `FileManager.createFile` or `write(atomically: false)`: on Linux those write through a
/// `TemporaryDirectory.*` directory in `/tmp` that they never remove, one per call.
@discardableResult
func writeTestFile(_ path: String, _ contents: Data, mode: mode_t = 0o600) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return contents.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 { if errno == EINTR { continue }; return false }
            offset += n
        }
        return true
    }
}

/// Runs a program with `stdinBytes` on its standard input read from a regular file, not a pipe:
/// the program sees the whole input at once, never a paused one (`append --jsonl` commits what it
/// has read when a pipe pauses, so its batches over a pipe depend on the feeder's timing).
func run(_ executable: String, _ arguments: [String], stdinFile stdinBytes: Data, environment: [String: String]? = nil)
    throws -> ProcessResult
{
    let dir = try TempDir()
    let file = dir.path("stdin")
    guard writeTestFile(file, stdinBytes) else {
        throw TestFailure("cannot write \(file)")
    }
    return try run("/bin/sh", ["-c", "f=$1; shift; exec \"$@\" < \"$f\"", "sh", file, executable] + arguments, stdinBytes: nil,
                   environment: environment)
}

/// Reads a pipe to its end. Foundation's `readDataToEndOfFile()` stops the whole test process
/// (a `try!` inside it) when a signal interrupts the read (EINTR), as happened on a CI machine;
/// this retries instead.
func readToEnd(_ descriptor: Int32) throws -> Data {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
        if count > 0 {
            data.append(contentsOf: buffer[0..<count])
        } else if count == 0 {
            return data
        } else if errno != EINTR {
            throw TestFailure("cannot read a child's output: \(String(cString: strerror(errno)))")
        }
    }
}

/// Writes `bytes` to a child's standard input. A child that exits without reading all of it
/// is no error of the run (its status and output tell what happened): the write then fails with
/// EPIPE, and SIGPIPE, blocked on this thread only, is not delivered and does not kill the tests.
/// Call it on a thread of its own: the signal stays pending on that thread and ends with it.
private func feed(_ bytes: Data, to descriptor: Int32) throws {
    var pipeSignal = sigset_t()
    sigemptyset(&pipeSignal)
    sigaddset(&pipeSignal, SIGPIPE)
    pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
    try bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
            if written >= 0 {
                offset += written
            } else if errno == EPIPE {
                return
            } else if errno != EINTR {
                throw TestFailure("cannot write the child's standard input: \(String(cString: strerror(errno)))")
            }
        }
    }
}

/// Work that blocks (on a pipe), run on a thread of its own: on a shared pool, many tests' runs
/// blocked at once could take every thread.
final class ThreadWork<Value: Sendable>: Sendable {
    private let outcome = Mutex<Result<Value, any Error>?>(nil)
    private let finished = DispatchSemaphore(value: 0)

    init(_ body: @escaping @Sendable () throws -> Value) {
        Thread.detachNewThread {
            let result = Result { try body() }
            self.outcome.withLock { $0 = result }
            self.finished.signal()
        }
    }

    /// Waits for the work to end; returns its value or rethrows its error.
    func wait() throws -> Value {
        finished.wait()
        return try outcome.withLock { $0! }.get()
    }
}

/// Runs blocking work (waiting for a child process, sleeping) on a thread of its own and suspends
/// until it ends: an async test that blocked a thread of the shared cooperative pool instead would
/// hold up every other test's continuations (PostgresNIO's among them) for as long.
func offPool<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// The `sqlite3` shell: an outside client that knows nothing of AuditDB. Installed by
/// `make setup` / `.ci/run` (Debian package `sqlite3`).
func sqlite3Shell(_ database: String, _ sql: String) throws -> ProcessResult {
    let candidates = ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3"]
    guard let shell = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw TestFailure("the sqlite3 shell is not installed; run `make setup` (apt-get install -y sqlite3)")
    }
    return try run(shell, ["-batch", database, sql])
}

/// Runs SQL through the sqlite3 shell and fails the test if the shell reports an error.
func sqlite3Must(_ database: String, _ sql: String) throws {
    let result = try sqlite3Shell(database, sql)
    guard result.status == 0 else { throw TestFailure("sqlite3 failed (\(result.status)): \(result.stderr)") }
}

/// Runs `sql` through the sqlite3 shell with `trigger` dropped, then puts the trigger back
/// exactly as it was, so only the rows change (verification's schema check stays quiet).
func sqlite3Tamper(_ database: String, _ sql: String, around trigger: String) throws {
    let original = try sqlite3Shell(database, "SELECT sql FROM sqlite_schema WHERE name = '\(trigger)';").stdout
        .trimmingCharacters(in: .whitespacesAndNewlines)
    guard original.hasPrefix("CREATE TRIGGER \(trigger)") else { throw TestFailure("no trigger \(trigger) in \(database)") }
    try sqlite3Must(database, "DROP TRIGGER \(trigger); \(sql) \(original);")
}

/// The real `auditdb` binary built next to the test bundle.
func cliPath() throws -> String { try builtProduct("auditdb") }

/// The repository's root directory (for docs/, schema/ and the independent verifiers).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// An executable of this package, built next to the test bundle.
func builtProduct(_ name: String) throws -> String {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var dir = here.deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    let fromSource = repositoryRoot.appendingPathComponent(".build/debug/\(name)").path
    if FileManager.default.isExecutableFile(atPath: fromSource) { return fromSource }
    throw TestFailure("cannot find the \(name) binary near \(here.path); build it with `swift build`")
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Overwrites bytes of a file in place.
func patchFile(_ path: String, at offset: Int, with bytes: [UInt8]) throws {
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    try handle.seek(toOffset: UInt64(offset))
    try handle.write(contentsOf: Data(bytes))
    try handle.close()
}

/// The offset of the only occurrence of `needle` in the file (fails if absent or repeated).
func uniqueOffset(of needle: String, in path: String) throws -> Int {
    let found = try offsets(of: needle, in: path)
    guard found.count == 1 else { throw TestFailure("\(needle) occurs \(found.count) times in \(path)") }
    return found[0]
}

/// Every offset of `needle` in the file.
func offsets(of needle: String, in path: String) throws -> [Int] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let pattern = Data(needle.utf8)
    var found: [Int] = []
    var start = data.startIndex
    while let range = data.range(of: pattern, in: start..<data.endIndex) {
        found.append(range.lowerBound)
        start = range.lowerBound + 1
    }
    return found
}

extension IntegrityReport {
    /// Findings of one kind.
    func findings(_ kind: Finding.Kind) -> [Finding] { findings.filter { $0.kind == kind } }
}

/// A small seeded generator (SplitMix64), so that random test cases can be replayed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// An integer from the environment (for longer runs of the randomised tests), or `fallback`.
func environmentInt(_ name: String, default fallback: Int) -> Int {
    inheritedEnvironment[name].flatMap { Int($0) } ?? fallback
}

/// Every entry of a store, read page by page (each verified as read).
func allEntries(_ store: AuditStore) async throws -> [AuditEntry] {
    var all: [AuditEntry] = []
    var cursor: Int64?
    while true {
        let page = try await store.entries(EntryQuery(afterSeq: cursor, limit: 10_000))
        all += page
        guard let last = page.last else { return all }
        cursor = last.seq
    }
}

/// Runs a test, or every test of a suite, with `AuditStore.export` writing bundles of `format`
/// (FORMAT.md 17.1 and 17.5): the suites written against the v1 layout keep testing it, since
/// `verify` reads both formats.
struct BundleFormatTrait: TestTrait, SuiteTrait, TestScoping {
    let format: ExportBundle.Format
    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        try await ExportBundle.formatWritten.withValue(format) { try await function() }
    }
}

extension Trait where Self == BundleFormatTrait {
    /// Exports write format v1 (`auditdb-export v1`, an inclusion proof per entry).
    static var v1Bundles: Self { BundleFormatTrait(format: .v1) }
}

/// A report's findings as "kind first...last" ("kind -" without seqs), for exact comparisons.
func findingNames(_ report: IntegrityReport) -> [String] {
    report.findings.map { "\($0.kind) \($0.seqs.map { "\($0.lowerBound)...\($0.upperBound)" } ?? "-")" }
}

/// Every byte of the store file at `path`, its -wal and its -shm (those that exist).
func storeFileBytes(_ path: String) throws -> Data {
    var all = Data()
    for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: path + suffix) {
        all += try Data(contentsOf: URL(fileURLWithPath: path + suffix))
    }
    return all
}

/// For a test that makes a change from inside a long operation's progress callback: how many
/// times the callback ran, and the change's error if it failed.
final class RaceState: Sendable {
    let passes = Mutex(0)
    let failure = Mutex<String?>(nil)

    /// Called from the progress callback: counts the call and, on the first, runs `change` and
    /// waits for it. Progress is reported from a reader's queue, not a cooperative thread, so
    /// waiting here holds that reader's transaction open while the change commits.
    func changeOnFirstCall(_ change: @escaping @Sendable () async throws -> Void) {
        guard passes.withLock({ count in
            count += 1
            return count == 1
        }) else { return }
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await change() } catch { failure.withLock { $0 = "\(error)" } }
            done.signal()
        }
        done.wait()
    }
}
