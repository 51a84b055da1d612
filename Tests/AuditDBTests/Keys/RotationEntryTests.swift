import Foundation
import Testing

@testable import AuditDB

/// Key rotations as signed entries (docs/FORMAT.md section 10.1) and in the compliance report.
@Suite("Key rotation entries")
struct RotationEntryTests {
    let dir: TempDir

    init() throws { dir = try TempDir() }

    @Test("the first row a new key version signs is a rotation entry naming the versions; once per version")
    func rotationEntry() async throws {
        let path = dir.path("store.db")
        let v1 = try testKeyRing()
        try await makeStore(at: path, keys: v1, count: 3)
        let v2 = try v1.rotated()
        var store = try await AuditStore.open(at: path, keys: v2)
        #expect(try await store.append(sampleEvent(4)) == 5)   // seq 4 is the rotation entry
        #expect(try await store.append(sampleEvent(5)) == 6)   // no second one
        let rotation = try await store.entries(EntryQuery(seqs: 4...4)).first!
        #expect(rotation.action == "auditdb.key.rotated" && rotation.actor == "auditdb" && rotation.keyVersion == 2)
        #expect(rotation.resourceType == "key" && rotation.resourceId == "2" && rotation.severity == .notice)
        let created = v2.key(version: 2)!.createdAt!.microsecondsSinceEpoch
        #expect(rotation.detailsJSON == #"{"keyCreatedAt":\#(created),"keyVersion":2,"previousKeyVersion":1}"#)
        #expect(try await store.entries(EntryQuery(seqs: 5...5)).first!.keyVersion == 2)
        #expect(try await store.verify().isIntact)
        try await store.close()
        // Reopened with the same ring: the version has signed here already.
        store = try await AuditStore.open(at: path, keys: v2)
        #expect(try await store.append(sampleEvent(6)) == 7)
        #expect(try await store.recordKeyRotation() == nil)
        try await store.close()
    }

    @Test("recordKeyRotation writes the entry at once; none for an empty store or the first key")
    func recordNow() async throws {
        let path = dir.path("store.db")
        let v1 = try testKeyRing()
        try await makeStore(at: path, keys: v1, count: 2)
        let store = try await AuditStore.open(at: path, keys: try v1.rotated())
        #expect(try await store.recordKeyRotation() == 3)
        #expect(try await store.recordKeyRotation() == nil)
        #expect(try await store.append(sampleEvent(3)) == 4)
        try await store.close()

        let empty = try await AuditStore.create(at: dir.path("empty.db"), keys: v1)
        try await empty.close()
        let rotatedEmpty = try await AuditStore.open(at: dir.path("empty.db"), keys: try v1.rotated())
        #expect(try await rotatedEmpty.recordKeyRotation() == nil)
        #expect(try await rotatedEmpty.append(sampleEvent(1)) == 1)
        #expect(try await rotatedEmpty.entries().allSatisfy { $0.action != "auditdb.key.rotated" })
        try await rotatedEmpty.close()
    }

    @Test("the compliance report lists the verified rotations")
    func reportListsRotations() async throws {
        let path = dir.path("store.db")
        let v1 = try testKeyRing()
        try await makeStore(at: path, keys: v1, count: 2)
        let v2 = try v1.rotated()
        let store = try await AuditStore.open(at: path, keys: v2)
        try await store.append(sampleEvent(3))
        let recordedAt = try await store.entries(EntryQuery(seqs: 3...3)).first!.recordedAt.microsecondsSinceEpoch
        let report = try await store.complianceReport(signer: try testSigner())
        let json = String(decoding: report.json, as: UTF8.self)
        #expect(json.contains(#""rotations":[{"keyVersion":2,"previousKeyVersion":1,"recordedAt":\#(recordedAt),"seq":3}]"#))
        #expect(report.text.contains("  rotation at seq 3, \(AuditTimestamp(microsecondsSinceEpoch: recordedAt)): key version 1 -> 2\n"))
        try await store.close()
    }
}
