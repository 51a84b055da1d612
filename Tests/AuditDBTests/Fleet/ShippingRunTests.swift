import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// Planning a shipment (`shippingRun`) without a central copy: the row the central copy ends at
/// must carry a 32-byte MAC, or the next row's link cannot be checked.
@Suite("Shipping run: the last row shipped")
struct ShippingRunTests {
    let dir: TemporaryDirectory
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
        db = dir.path("store.db")
    }

    @Test("a run after seq 100 whose row 100 has a stored MAC of 1 byte is refused, naming the row; so is a run whose row 100 is gone")
    func frontierMacNot32Bytes() async throws {
        try await makeStore(at: db, keys: keys, count: 100)
        let signer = try CheckpointSigner.inMemory()
        var store = try await AuditStore.open(at: db, keys: keys)
        try await store.checkpoint(signer: signer)  // records the tree's frontier at 100
        try await store.append(contentsOf: (101...150).map { sampleEvent($0) })
        let checkpoint = try await store.checkpoint(signer: signer)
        let run = try await store.shippingRun(after: 100, through: checkpoint)
        #expect(run.batches.map(\.seqs) == [101...150])
        try await store.close()

        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET mac = x'00' WHERE seq = 100;")
        store = try await AuditStore.open(at: db, keys: keys)
        await #expect {
            _ = try await store.shippingRun(after: 100, through: checkpoint)
        } throws: { error in
            (error as? AuditError)?.code == .integrityViolation && (error as? AuditError)?.message
                == "the row at seq 100, the last one the central copy holds, is missing here or its stored MAC is not 32 bytes, so the next row's link cannot be checked; nothing was shipped. Run `auditdb verify`."
        }
        try await store.close()

        // The row gone altogether: the same refusal.
        try sqlite3Must(db, "DROP TRIGGER audit_entries_no_delete; DELETE FROM audit_entries WHERE seq = 100;")
        store = try await AuditStore.open(at: db, keys: keys)
        await #expect {
            _ = try await store.shippingRun(after: 100, through: checkpoint)
        } throws: { error in
            (error as? AuditError)?.message
                == "the row at seq 100, the last one the central copy holds, is missing here or its stored MAC is not 32 bytes, so the next row's link cannot be checked; nothing was shipped. Run `auditdb verify`."
        }
        try await store.close()
    }

    @Test("an expired row goes only with a checkpoint covering its expiry entry: the run stops before it; a row expiring after the run was planned makes its batch refused as busy")
    func expiredRowsAndTheCheckpoint() async throws {
        try await makeStore(at: db, keys: keys, count: 60)
        let signer = try CheckpointSigner.inMemory()
        let store = try await AuditStore.open(at: db, keys: keys)
        let checkpoint = try await store.checkpoint(signer: signer)  // at 60
        let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 86_400_000_000)
        let policy = try RetentionPolicy(parsingDefault: "forever", tenants: ["tenant-1": "1d"])
        let run = try await store.shippingRun(after: 0, through: checkpoint, batchSize: 20)
        #expect(run.heldBackAt == nil && run.endSeq == 60 && run.batches.map(\.seqs) == [1...20, 21...40, 41...60])
        // tenant-1's rows (1, 4, …, 58) expire under entry 61 after the run was planned.
        #expect(try await store.applyRetention(policy, now: later).expiryEntries == [61])
        await #expect {
            _ = try await store.shippedEntries(run.batches[0], of: run)
        } throws: { error in
            (error as? AuditError)?.code == .busy && (error as? AuditError)?.message.hasPrefix("row 1 expired while it was being shipped (expiry entry at seq 61, above the checkpoint at seq 60)") == true
        }
        // Planned now against the checkpoint at 60: it stops before row 1 (no batch); against a
        // checkpoint at 61, everything goes, rows 1, 4, … as tombstones.
        let held = try await store.shippingRun(after: 0, through: checkpoint, batchSize: 20)
        #expect(held.heldBackAt == 1 && held.endSeq == 0 && held.batches.isEmpty)
        let newer = try await store.checkpoint(signer: signer)
        let full = try await store.shippingRun(after: 0, through: newer, batchSize: 40)
        #expect(full.heldBackAt == nil && full.endSeq == 61 && full.batches.map(\.seqs) == [1...40, 41...61])
        let first = try await store.shippedEntries(full.batches[0], of: full)
        #expect(first.entries.filter { $0.expired != nil }.count == 14 && first.lateTombstones.isEmpty)
        try await store.close()
    }

    @Test("a run after a seq between checkpoints starts from the newest recorded frontier below it and reads only the rows after that, not the store from row 1")
    func resumeBetweenCheckpoints() async throws {
        try await makeStore(at: db, keys: keys, count: 100)
        let signer = try CheckpointSigner.inMemory()
        var store = try await AuditStore.open(at: db, keys: keys)
        try await store.checkpoint(signer: signer)  // records the frontier at 100
        try await store.append(contentsOf: (101...150).map { sampleEvent($0) })
        let checkpoint = try await store.checkpoint(signer: signer)
        let run = try await store.shippingRun(after: 120, through: checkpoint)
        #expect(run.batches.map(\.seqs) == [121...150] && run.endCursor.shipped == 150)
        try await store.close()
        // Row 50, long shipped, gone: a run that re-read rows 1…120 would stop at it.
        try sqlite3Tamper(db, "DELETE FROM audit_entries WHERE seq = 50;", around: "audit_entries_no_delete")
        store = try await AuditStore.open(at: db, keys: keys)
        let again = try await store.shippingRun(after: 120, through: checkpoint)
        #expect(again.batches.map(\.seqs) == [121...150] && again.endCursor == run.endCursor)
        try await store.close()
    }
}
