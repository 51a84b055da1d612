import Foundation
import GRDB
import Testing

@testable import AuditDB

/// Fresh rows' seeds come from a pool (FreshSeeds): each seed must still be handed out once.
@Suite("Fresh row seeds")
struct FreshSeedsTests {
    @Test("20,000 events encoded from 4 tasks at once get 20,000 distinct seals of the fresh form")
    func distinctAcrossTasks() async throws {
        let all = try await withThrowingTaskGroup(of: [[UInt8]].self) { group in
            for task in 0..<4 {
                group.addTask {
                    try (0..<5_000).map { i in
                        let encoded = try EncodedEvent(validating: sampleEvent(task * 5_000 + i))
                        let span = encoded.seals
                        return Array(encoded.arena[Int(span.offset)..<Int(span.offset + span.length)])
                    }
                }
            }
            return try await group.reduce(into: [[UInt8]]()) { $0 += $1 }
        }
        #expect(all.count == 20_000)
        #expect(all.allSatisfy { $0.count == 33 && $0[0] == 0 }, "a seal is not 00 || 32-byte seed")
        #expect(Set(all).count == all.count, "two events got the same seed")
        #expect(!all.contains { $0.dropFirst().allSatisfy { $0 == 0 } }, "a seed of zeros: the pool handed out a used slot")
    }

    @Test("the seals stored for a batch and for single appends are distinct row by row")
    func distinctInStore() async throws {
        let dir = try TempDir()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        try await store.append(contentsOf: (0..<3_000).map { sampleEvent($0) })
        for i in 0..<50 { try await store.append(sampleEvent(i)) }
        let (rows, distinct) = try await store.pool.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_entries") ?? 0,
             try Int.fetchOne(db, sql: "SELECT count(DISTINCT seals) FROM audit_entries") ?? 0)
        }
        #expect(rows == 3_050)
        #expect(distinct == rows)
        try await store.close()
    }
}
