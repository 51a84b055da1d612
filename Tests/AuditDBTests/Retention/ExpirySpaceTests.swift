import Foundation
import Testing

@testable import AuditDB

/// Space comes back (#15 item 5): the pages of expired rows leave the file while the store stays
/// open, a store at its size cap appends again, and a store made before AuditDB released space
/// online gets there with one `compact`.
@Suite("Retention: space")
struct ExpirySpaceTests {
    /// ~800 bytes of details, a typical audit event (a tombstone takes about 180 bytes).
    static func event(_ i: Int) -> AuditEvent {
        var event = sampleEvent(i)
        event.details = ["i": .int(Int64(i)), "request": .string(String(repeating: "x", count: 800))]
        return event
    }

    /// Tenants tenant-1 and tenant-2 expire (two thirds of the rows), tenant-0 stays.
    static let policy: RetentionPolicy = ExpiryTests.policy

    static func fileSize(_ path: String) throws -> Int64 {
        try #require((FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value)
    }

    static func autoVacuum(_ path: String) throws -> String {
        let result = try sqlite3Shell(path, "PRAGMA auto_vacuum;")
        guard result.status == 0 else { throw TestFailure("sqlite3: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A closed store of `count` ~1 KB rows, with a checkpoint anchored in `anchors`.
    static func makeBigStore(_ path: String, keys: KeyRing, signer: CheckpointSigner, anchors: String, count: Int) async throws {
        let store = try await AuditStore.create(at: path, keys: keys)
        for start in stride(from: 0, to: count, by: 500) {
            try await store.append(contentsOf: (start..<min(count, start + 500)).map { event($0) })
        }
        try FileManager.default.createDirectory(atPath: anchors, withIntermediateDirectories: true)
        _ = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: anchors)])
        try await store.close()
    }

    @Test("a new store releases space online: the file shrinks by the expired rows, and every proof still holds")
    func fileShrinks() async throws {
        let dir = try TempDir()
        let keys = try testKeyRing(), signer = try testSigner()
        let path = dir.path("s.db"), anchors = dir.path("anchors")
        try await Self.makeBigStore(path, keys: keys, signer: signer, anchors: anchors, count: 3_000)
        #expect(try Self.autoVacuum(path) == "2")  // INCREMENTAL, set before the pool turned WAL on
        let before = try Self.fileSize(path)

        let store = try await AuditStore.open(at: path, keys: keys)
        let report = try await store.applyRetention(Self.policy, now: ExpiryTests.later, batchSize: 700)
        #expect(report.expired == 1_999)  // the newest row (tenant-2) never expires
        let space = try #require(report.space)
        #expect(space.incrementalVacuum && space.freePagesLeft == 0 && space.pagesReleased > 0)
        // Appends and queries work right after, on the moved pages.
        try await store.append(contentsOf: (0..<10).map { Self.event($0) })
        #expect(try await store.entries(EntryQuery(limit: 5, tenant: "tenant-0")).count == 5)
        #expect(try await store.verify().isIntact)
        try await store.close()

        // 2,000 of 3,000 rows of ~1 KB went; each left a tombstone of ~180 bytes. Measured with
        // format-1 rows: 3.4 MB -> 1.6 MB.
        let after = try Self.fileSize(path)
        #expect(after * 2 < before, "file \(before) -> \(after) bytes")
        let reopened = try await AuditStore.open(at: path, keys: keys)
        let anchored = try await reopened.verify(againstAnchors: [anchors], publicKeys: signer.publicKeys)
        #expect(anchored.isIntact, "\(anchored)")
        try await reopened.close()
    }

    @Test("a store from before: expiry keeps the free pages for later appends, and one compact gives them back")
    func legacyStoreCompacts() async throws {
        let dir = try TempDir()
        let keys = try testKeyRing(), signer = try testSigner()
        let path = dir.path("old.db"), anchors = dir.path("anchors")
        try await Self.makeBigStore(path, keys: keys, signer: signer, anchors: anchors, count: 3_000)
        // What a store created before this version looks like: auto_vacuum NONE.
        try sqlite3Must(path, "PRAGMA auto_vacuum = NONE; VACUUM;")
        #expect(try Self.autoVacuum(path) == "0")
        let before = try Self.fileSize(path)

        let store = try await AuditStore.open(at: path, keys: keys)
        let report = try await store.applyRetention(Self.policy, now: ExpiryTests.later)
        #expect(report.expired == 1_999)
        let space = try #require(report.space)
        #expect(!space.incrementalVacuum && space.pagesReleased == 0 && space.freePagesLeft > 0)

        let compacted = try await store.compact()
        #expect(compacted.incrementalVacuum && compacted.freePagesLeft == 0)
        #expect(compacted.pagesReleased == space.freePagesLeft)
        #expect(try await store.verify().isIntact)
        try await store.close()
        #expect(try Self.autoVacuum(path) == "2")
        #expect(try Self.fileSize(path) * 2 < before)
        let reopened = try await AuditStore.open(at: path, keys: keys)
        #expect(try await reopened.verify(againstAnchors: [anchors], publicKeys: signer.publicKeys).isIntact)
        // From now on expiry releases space online.
        try await reopened.append(contentsOf: (0..<600).map { Self.event($0) })
        let second = try await reopened.applyRetention(Self.policy, now: ExpiryTests.later)
        #expect(second.expired == 400)  // 399 new ones, and the row that was the newest
        #expect(second.space?.incrementalVacuum == true && second.space?.freePagesLeft == 0 && (second.space?.pagesReleased ?? 0) > 0)
        try await reopened.close()
    }

    @Test("full at its size cap, expiry frees room for new appends")
    func capReached() async throws {
        let dir = try TempDir()
        let keys = try testKeyRing()
        let path = dir.path("capped.db")
        var configuration = AuditStore.Configuration()
        configuration.maximumSizeBytes = 512 * 1024
        let store = try await AuditStore.create(at: path, keys: keys, configuration: configuration)
        var appended = 0
        var full: AuditError?
        while full == nil && appended < 100_000 {
            do {
                try await store.append(contentsOf: (appended..<appended + 50).map { Self.event($0) })
                appended += 50
            } catch let error as AuditError {
                full = error
            }
        }
        #expect(full?.code == .diskFull)
        let policy = try RetentionPolicy(parsingDefault: "1d")
        let report = try await store.applyRetention(policy, now: ExpiryTests.later, batchSize: 200)
        #expect(report.expired > appended / 2)
        try await store.append(contentsOf: (0..<50).map { Self.event($0) })
        #expect(try await store.verify().isIntact)
        try await store.close()
    }
}
