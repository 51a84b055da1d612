import Foundation
import Testing

@testable import AuditDB

/// Every file AuditDB creates has an explicit mode (docs/FORMAT.md, section 5 "File modes").
@Suite("File modes")
struct FileModeTests {
    let dir: TempDir
    let keys: KeyRing

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
    }

    func mode(_ path: String) throws -> Int {
        try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    @Test("store, -wal and -shm 0600; backup 0600; anchor files 0444; export bundle 0700 with 0600 files")
    func modes() async throws {
        let path = dir.path("s.db"), anchor = dir.path("anchors"), bundle = dir.path("bundle")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...5).map { sampleEvent($0) })
        #expect(try mode(path) == 0o600)
        #expect(try mode(path + "-wal") == 0o600)
        #expect(try mode(path + "-shm") == 0o600)
        let signer = try testSigner()
        let checkpoint = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: anchor)])
        #expect(try mode(anchor + "/" + DirectoryAnchor.fileName(of: checkpoint)) == 0o444)
        try await store.export(to: bundle, signer: signer)
        try await store.close()
        #expect(try mode(bundle) == 0o700)
        for file in try FileManager.default.contentsOfDirectory(atPath: bundle) {
            #expect(try mode(bundle + "/" + file) == 0o600, "\(file)")
        }
        let backup = dir.path("backup.db")
        _ = try await AuditStore.migrate(at: path, keys: keys, backup: .at(backup))
        // A current store needs no migration and writes no backup; an older one does (MigrationTests).
        let old = dir.path("old.db")
        let outdated = try await AuditStore.create(at: old, keys: keys, configuration: .init(), schemaUpTo: "0001-initial")
        try await outdated.close()
        _ = try await AuditStore.migrate(at: old, keys: keys, backup: .at(backup))
        #expect(try mode(backup) == 0o600)
    }

    @Test("creating a store where a file exists is refused, and the file is left alone")
    func createRefusesExisting() async throws {
        let path = dir.path("s.db")
        try Data("not mine".utf8).write(to: URL(fileURLWithPath: path))
        await #expect(throws: AuditError.self) { _ = try await AuditStore.create(at: path, keys: keys) }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "not mine")
    }
}
