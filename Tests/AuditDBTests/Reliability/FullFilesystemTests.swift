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

@Suite("Faults: a real full filesystem")
struct FullFilesystemTests {
    @Test("the filesystem fills up: a typed disk-full error, nothing half-written, appends resume once there is room",
          .enabled(if: canMountTmpfs, "needs root to mount a small tmpfs"))
    func fullFilesystem() async throws {
        let dir = try TempDir()
        let mountPoint = dir.path("fs")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mount = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mountPoint])
        try #require(mount.status == 0, "mount failed: \(mount.stderr)")
        defer { _ = try? run("/bin/umount", ["-l", mountPoint]) }
        // A filler file takes part of the space, to be deleted later to make room.
        let filler = mountPoint + "/filler"
        #expect(FileManager.default.createFile(atPath: filler, contents: Data(count: 512 * 1024)))
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
