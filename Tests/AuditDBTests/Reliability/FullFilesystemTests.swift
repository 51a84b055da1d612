import Foundation
import Testing

@testable import AuditDB

/// Whether this process may mount a small tmpfs (root on Linux, as in CI). Where it may not,
/// the test is reported as skipped with this reason; the size-cap test covers the error path.
let canMountTmpfs: Bool = {
    guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/bin/mount") else { return false }
    let probe = FileManager.default.temporaryDirectory.appendingPathComponent("auditdb-mount-probe-\(getpid())").path
    defer { try? FileManager.default.removeItem(atPath: probe) }
    guard (try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)) != nil,
          let mounted = try? run("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe]), mounted.status == 0
    else { return false }
    _ = try? run("/bin/umount", [probe])
    return true
}()

/// Mounts a tmpfs of `size` (mount's syntax, e.g. "2m") at `path`, made for it; the caller unmounts it.
func mountTmpfs(at path: String, size: String) throws -> String {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    let mount = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", "tmpfs", path])
    guard mount.status == 0 else { throw TestFailure("mount failed: \(mount.stderr)") }
    return path
}

@Suite("Faults: a real full filesystem")
struct FullFilesystemTests {
    @Test("the filesystem fills up: a typed disk-full error, nothing half-written, appends resume once there is room",
          .enabled(if: canMountTmpfs, "needs root to mount a small tmpfs"))
    func fullFilesystem() async throws {
        let dir = try TempDir()
        let mountPoint = try mountTmpfs(at: dir.path("fs"), size: "2m")
        defer { _ = try? run("/bin/umount", ["-l", mountPoint]) }
        // A filler file takes part of the space, to be deleted later to make room.
        let filler = mountPoint + "/filler"
        #expect(writeTestFile(filler, Data(count: 512 * 1024), mode: 0o644))
        let path = mountPoint + "/audit.db"
        let keys = try testKeyRing()
        let store = try await AuditStore.create(at: path, keys: keys)
        var appended: Int64 = 0
        var failure: AuditError?
        for batch in 0..<1_000 {
            do {
                appended = try await store.append(contentsOf: (0..<50).map { sampleEvent(batch * 50 + $0) }).upperBound
            } catch let error as AuditError {
                failure = error
                break
            }
        }
        let error = try #require(failure, "the filesystem never filled up")
        #expect(error.code == .diskFull)
        #expect(error.message.contains("Nothing was written"))
        #expect(appended > 0)
        // Reading still works on the full filesystem: the failed batch left no row.
        #expect(try await store.lastSeq() == appended)
        // Room again: the same open store appends the next seq, and everything verifies.
        try FileManager.default.removeItem(atPath: filler)
        #expect(try await store.append(sampleEvent(1)) == appended + 1)
        let report = try await store.verify()
        #expect(report.isIntact && report.rowsChecked == Int(appended) + 1)
        try await store.close()
    }
}

@Suite("Faults: a full filesystem after the commit")
struct FullAfterCommitTests {
    /// The shape a tester found: the WAL has room for one more row (its pages are reused), the
    /// database file has none, so the commit succeeds and the checkpoint at close fails. The exit
    /// status must say what happened to the row: 0 and its seq when it is in the store (a retry
    /// would record the event twice), 2 when it is not.
    @Test("auditdb append on a full filesystem: its exit status matches what the store holds",
          .enabled(if: canMountTmpfs, "needs root to mount a small tmpfs"))
    func acknowledgementMatchesTheStore() async throws {
        let dir = try TempDir()
        let mountPoint = try mountTmpfs(at: dir.path("fs"), size: "6m")
        defer { _ = try? run("/bin/umount", ["-l", mountPoint]) }
        let keyPath = mountPoint + "/k.keys"
        _ = try KeyFile.generate(at: keyPath)
        let environment = ["AUDITDB_STORE": mountPoint + "/s.db", "AUDITDB_KEY_FILE": keyPath]
        #expect(try run(try cliPath(), ["init"], environment: environment).status == 0)
        let filler = mountPoint + "/filler"
        #expect(writeTestFile(filler, Data(count: 5_000_000), mode: 0o644))
        let lines = (0..<20_000).map { #"{"actor":"d","action":"a","details":{"i":\#($0),"pad":"\#(String(repeating: "p", count: 100))"}}"# }
        let fill = try run(try cliPath(), ["append", "--jsonl", "--quiet", "--batch-size", "500"],
                           stdin: lines.joined(separator: "\n") + "\n", environment: environment)
        #expect(fill.status == 3, "the filesystem never filled up: \(fill.stderr)")
        func lastSeq() throws -> Int64 {
            Int64(try sqlite3Shell(mountPoint + "/s.db", "SELECT max(seq) FROM audit_entries;").stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        }
        var acknowledged = 0
        for attempt in 0..<5 {
            let before = try lastSeq()
            let append = try run(try cliPath(), ["append", "--actor", "alice", "--action", "login-\(attempt)"], environment: environment)
            let after = try lastSeq()
            if append.status == 0 {
                acknowledged += 1
                #expect(after == before + 1 && append.stdout == "\(after)\n", "\(append.stdout) \(append.stderr)")
            } else {
                #expect(append.status == 2 && after == before, "exit \(append.status) but seq \(before) -> \(after): \(append.stderr)")
                #expect(append.stderr.contains("full"), "\(append.stderr)")
            }
        }
        try FileManager.default.removeItem(atPath: filler)
        let verify = try run(try cliPath(), ["verify"], environment: environment)
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        let logins = try sqlite3Shell(mountPoint + "/s.db", "SELECT count(*) FROM audit_entries WHERE action LIKE 'login-%';").stdout
        #expect(Int(logins.trimmingCharacters(in: .whitespacesAndNewlines)) == acknowledged)
    }
}
