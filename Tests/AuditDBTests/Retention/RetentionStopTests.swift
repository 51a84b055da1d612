import Foundation
import Testing

@testable import AuditDB

/// Expiry stopped between batches, or failing after some batches were committed: the caller is
/// told how many rows expired and with which expiry entries, and running again finishes the job.
@Suite("Retention: stopped or failed part-way")
struct RetentionStopTests {
    let dir: TempDir
    let keys: KeyRing
    let path: String

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        path = dir.path("store.db")
    }

    /// The 30 sample rows of ``ExpiryTests``: seqs divisible by 3 are tenant-0 (kept for ever);
    /// the other 20 expire, except the newest row.
    func store() async throws -> AuditStore {
        try await makeStore(at: path, keys: keys, count: 30)
        return try await AuditStore.open(at: path, keys: keys)
    }

    @Test("cancelled after two batches: the third is not begun, the error says 6 of 29 candidates expired with entries 31 and 32; run again, the rest expire and the store verifies")
    func cancelledBetweenBatches() async throws {
        let store = try await store()
        let task = Task {
            // Told before each batch after the first; the task cancels itself before the third.
            try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, batchSize: 4) { progress in
                if progress.rowsChecked == 8 { withUnsafeCurrentTask { $0?.cancel() } }
            }
        }
        let error = await #expect(throws: AuditError.self) { try await task.value }
        #expect(error?.code == .cancelled)
        #expect(error?.message == "retention was stopped after 8 of 29 candidate row(s): 6 expired (expiry entries 31, 32), 0 kept by legal holds, 2 kept by the policy (a tenant's own limit, or a row that never expires). Run the same command again to finish.")
        #expect(try await store.lastSeq() == 32)
        #expect(try await allEntries(store).filter { $0.seq <= 8 }.map(\.seq) == [3, 6])

        let rest = try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, batchSize: 4)
        #expect(rest.expired == 14)
        #expect(try await allEntries(store).filter { $0.seq <= 30 }.map(\.seq) == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30])
        let verified = try await store.verify()
        #expect(verified.isIntact, "\(verified)")
        try await store.close()
    }

    @Test("cancelled once its last batch is committed: the expiry is complete and reported as done; the freed pages are left to the next run")
    func cancelledAfterTheLastBatch() async throws {
        let store = try await store()
        let task = Task {
            // Told once more after the last batch, with every candidate dealt with.
            try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, batchSize: 100) { progress in
                if progress.rowsChecked == 29 { withUnsafeCurrentTask { $0?.cancel() } }
            }
        }
        let report = try await task.value
        #expect(report.expired == 20 && report.expiryEntries == [31])
        #expect(report.space == nil)
        let verified = try await store.verify()
        #expect(verified.isIntact, "\(verified)")
        try await store.close()
    }

    @Test("cancelled before it starts: nothing expires, and the error says so")
    func cancelledWhileChoosing() async throws {
        let store = try await store()
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, batchSize: 4)
        }
        let error = await #expect(throws: AuditError.self) { try await task.value }
        #expect(error?.code == .cancelled)
        #expect(error?.message == "retention was stopped while it chose the rows; nothing expired. Run it again.")
        #expect(try await store.lastSeq() == 30)
        try await store.close()
    }

    @Test("a row of the third batch fails verification: the error names it and says what the two batches before it expired")
    func failureAfterCommittedBatches() async throws {
        let store = try await store()
        try await store.close()
        try sqlite3Tamper(path, "UPDATE audit_entries SET mac = zeroblob(32) WHERE seq = 11;", around: "audit_entries_no_update")
        let reopened = try await AuditStore.open(at: path, keys: keys)
        let error = await #expect(throws: AuditError.self) {
            try await reopened.applyRetention(ExpiryTests.policy, now: ExpiryTests.later, batchSize: 4)
        }
        #expect(error?.code == .integrityViolation)
        let message = error?.message ?? ""
        #expect(message.hasPrefix("row 11 does not verify ("), "\(message)")
        #expect(message.hasSuffix("; nothing of this batch was expired. Run `auditdb verify`. (the batches before it expired 6 row(s), expiry entries 31, 32)"),
                "\(message)")
        #expect(try await reopened.lastSeq() == 32)
        try await reopened.close()
    }

    @Test("rows of a key version declared compromised and re-attested: retention verifies them by their attestation and keeps them, expires the others, and the store verifies")
    func reattestedRowsAreKept() async throws {
        let v1 = try AuditKey.generate(version: 1), v2 = try AuditKey.generate(version: 2)
        let store = try await AuditStore.create(at: path, keys: try KeyRing([v1]))
        try await store.append(contentsOf: (1...6).map { i in AuditEvent(actor: "user-\(i)", action: "read", tenant: "t") })
        try await store.close()
        let rotated = try await AuditStore.open(at: path, keys: try KeyRing([v1, v2]))
        #expect(try await rotated.reattest(compromisedVersion: 1).rowsAttested == 6)
        try await rotated.append(contentsOf: (7...9).map { i in AuditEvent(actor: "user-\(i)", action: "read", tenant: "t") })
        let newest = try await rotated.lastSeq()
        try await rotated.close()
        let ring = try KeyRing([v1, v2]).markingCompromised(1)
        let reopened = try await AuditStore.open(at: path, keys: ring)
        let policy = try RetentionPolicy(parsingDefault: "1d", tenants: [:])
        let dry = try await reopened.applyRetention(policy, now: ExpiryTests.later, dryRun: true)
        let report = try await reopened.applyRetention(policy, now: ExpiryTests.later)
        // The six rows of version 1 stay; of the rows after them (the declaration, then 7...9),
        // AuditDB's own entry and the newest row stay too: 7 and 8 expire.
        #expect(dry.expired == 2 && report.expired == 2)
        let left = try await allEntries(reopened).map(\.seq)
        #expect(Array(left.prefix(6)) == [1, 2, 3, 4, 5, 6])
        #expect(!left.contains(newest - 2) && !left.contains(newest - 1) && left.contains(newest))
        try await reopened.close()
        let verified = try await AuditStore.verify(storeAt: path, keys: ring)
        #expect(verified.isIntact, "\(verified)")
    }
}
