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
}
