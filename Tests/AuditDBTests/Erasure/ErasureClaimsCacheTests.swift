import Foundation
import Testing

@testable import AuditDB

/// Queries check each erased row they read against the verified erasure entries. An open store
/// reads and verifies those entries once, then only the ones appended since, instead of every
/// entry of the store on every query that meets an erased row.
@Suite("Erasure claims cache")
struct ErasureClaimsCacheTests {
    let dir: TempDir
    let keys: KeyRing
    let path: String

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        path = dir.path("store.db")
    }

    @Test("queries read the erasure entries once, then only new ones; a row erased without an entry is still refused")
    func readsOnlyNewEntries() async throws {
        let created = try await AuditStore.create(at: path, keys: keys)
        try await created.append(contentsOf: (1...40).map { sampleEvent($0) })
        for seq in Int64(1)...30 {
            _ = try await created.erase(.seqs([seq]), fields: [.actor], reason: "T-\(seq)")
        }
        // Reopened: a cache that has read nothing yet (each erasure's own lookup fills it).
        try await created.close()
        let store = try await AuditStore.open(at: path, keys: keys)
        let cache = store.erasureClaims
        let start = cache.entriesRead
        let first = try await store.entries(EntryQuery(limit: 40))
        #expect(cache.entriesRead - start == 30, "the first query reads every erasure entry")
        #expect(first.filter { $0.actor == nil }.map(\.seq) == Array(1...30))
        #expect(first.allSatisfy { $0.finding == nil })

        let second = try await store.entries(EntryQuery(limit: 40))
        #expect(cache.entriesRead - start == 30, "a second query reads none")
        #expect(second.map(\.seq) == first.map(\.seq))

        _ = try await store.erase(.seqs([35]), fields: [.actor], reason: "T-35")
        let third = try await store.entries(EntryQuery(limit: 40))
        #expect(cache.entriesRead - start == 31, "after one more erasure, a query reads that entry only")
        #expect(third.first { $0.seq == 35 }?.actor == nil && third.allSatisfy { $0.finding == nil })

        // Row 38 erased by someone with only the file: the cached claims do not account for it.
        let forged = try await forgedErasedSeals(store, seq: 38, mask: 1)
        try sqlite3Must(path, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET actor = NULL, seals = X'\(Hex.encode(forged))' WHERE seq = 38;")
        var marked = EntryQuery(limit: 40)
        marked.unverifiedRows = .mark
        let flagged = try await store.entries(marked).filter { $0.finding != nil }
        #expect(flagged.map(\.seq) == [38] && flagged.first?.finding?.kind == .erasureTampered, "\(flagged.map { "\($0.seq) \($0.finding!)" })")
        await #expect(throws: AuditError.self) { try await store.entries(EntryQuery(limit: 40)) }
        #expect(cache.entriesRead - start == 31)
        try await store.close()
    }
}
