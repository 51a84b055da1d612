import AuditDBPostgres
import AuditDBTestSupport
import Foundation
import Logging
import Synchronization
import Testing

@testable import AuditDB

/// Two shippers of one store at once: one commits, the other gives way with a `busy` error that
/// says so, and the central copy is whole (nothing lost or doubled).
extension ShippingTests {
    @Test("two shippers of one store at once: one ships, the other is rolled back with `busy` naming the other shipper; verify-shipped intact")
    func twoShippersAtOnce() async throws {
        let signer = try CheckpointSigner.inMemory()
        let store = try await registeredStore("a.db", role: "inst_a", signer: signer, rows: 30)
        _ = try await withWitness(server.url("inst_a")) { witness in
            try await store.checkpoint(signer: signer, anchors: [WitnessAnchor(witness: witness)])
        }
        // Another session holds the batches table (reads still pass): both shippers plan from the
        // same high-water mark before either can record its batch.
        let holder = try server.holdLock("LOCK TABLE auditdb_ship.batches IN EXCLUSIVE MODE")
        let planned = PlannedCount()
        let server = self.server
        let results = try await withThrowingTaskGroup(of: Result<CentralShipper.Summary, AuditError>.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    try await withWitness(server.url("inst_a")) { witness in
                        do {
                            return .success(try await CentralShipper(central: witness, witness: witness, logger: Logger(label: "test"))
                                .ship(store) { seq in if seq == 0 { planned.increment() } })
                        } catch let error as AuditError {
                            return .failure(error)
                        }
                    }
                }
            }
            for _ in 0..<1_500 where planned.value < 2 { try await Task.sleep(for: .milliseconds(20)) }
            #expect(planned.value == 2)
            try holder.release()
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let shipped = results.compactMap { try? $0.get() }
        let refused = results.compactMap { if case .failure(let error) = $0 { error } else { nil } }
        #expect(shipped.map(\.shippedAfter) == [30])
        #expect(refused.map(\.code) == [.busy])
        #expect(refused.first?.message.hasPrefix("seqs 1...30 of store \(store.storeID) were shipped meanwhile by another shipper of this store (") == true,
                "\(refused)")
        #expect(refused.first?.message.hasSuffix("): this batch was rolled back, and nothing is lost or doubled. Ship again to continue after what is shipped, and run one shipper per store; if it repeats with no other shipper running, the rows were put there by other means: run `auditdb-fleet verify-shipped`") == true)
        // The next round has nothing left to ship; the central copy proves whole.
        #expect(try await ship(store, as: "inst_a", signer: nil).shippedAfter == 30)
        let report = try await verify()
        #expect(report.isIntact && report.stores.map(\.entriesChecked) == [30], "\(report.text)")
        try await store.close()
    }
}

/// How many shippers have planned their shipment (told through `onBatch`).
private final class PlannedCount: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

extension ShippingTests {
    @Test("`auditdb-fleet ship --store-id` (or AUDITDB_STORE_ID) refuses a store file swapped for another before anything is shipped")
    func shipChecksStoreID() async throws {
        let (path, keyFile, id) = try await publishedStore("a.db", role: "inst_a", rows: 5)
        let other = StoreID(exactly: [UInt8](repeating: 0xab, count: 16))!
        let fleet = try builtProduct("auditdb-fleet")
        let base = ["ship", "--store", path, "--key-file", keyFile, "--to", server.url("inst_a")]
        var environment = inheritedEnvironment
        environment.removeValue(forKey: "AUDITDB_STORE_ID")
        let wrong = try run(fleet, base + ["--store-id", other.hex], environment: environment)
        #expect(wrong.status == 1, "\(wrong.stdout)\(wrong.stderr)")  // replaced: an integrity incident, as auditdb has it
        #expect(wrong.stderr.contains("\(path) is store \(id), not the expected store \(other); the file may have been replaced"), "\(wrong.stderr)")
        environment["AUDITDB_STORE_ID"] = other.hex
        let fromEnvironment = try run(fleet, base, environment: environment)
        #expect(fromEnvironment.status == 1 && fromEnvironment.stderr.contains("not the expected store \(other)"), "\(fromEnvironment.stderr)")
        let malformed = try run(fleet, base + ["--store-id", "xyz"], environment: environment)
        #expect(malformed.status == 2 && malformed.stderr.contains("--store-id must be 32 hex digits"), "\(malformed.stderr)")
        #expect(try server.psql("SELECT count(*) FROM auditdb_ship.entries") == "0\n")
        let right = try run(fleet, base + ["--store-id", id.hex], environment: environment)
        #expect(right.status == 0, "\(right.stderr)")
        #expect(right.stdout.hasPrefix("shipped 5 entries of store \(id)"), "\(right.stdout)")
    }
}
