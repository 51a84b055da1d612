import Foundation
import GRDB
import Testing

@testable import AuditDB

/// Any change of any byte of any stored value of any row is found by verify, naming that seq.
/// Seeded and reproducible; more cases with AUDITDB_PROPERTY_CASES (seed: AUDITDB_PROPERTY_SEED).
@Suite("Property: every stored byte is covered")
struct PropertyTests {
    static let columns = [
        "seq", "recorded_at", "occurred_at", "tenant", "actor", "action", "resource_type", "resource_id", "outcome",
        "severity", "correlation_id", "source", "details", "origin", "origin_ref", "format_version", "key_version", "mac",
    ]

    @Test("a random byte of a random stored value of a random row changed: verify names that seq")
    func randomByteChanges() async throws {
        let cases = environmentInt("AUDITDB_PROPERTY_CASES", default: 1_000)
        let seed = UInt64(environmentInt("AUDITDB_PROPERTY_SEED", default: 0xB17E))
        var random = SeededRandom(seed: seed)
        let dir = try TempDir()
        let keys = try testKeyRing()
        let base = dir.path("base.db")
        let store = try await AuditStore.create(at: base, keys: keys)
        try await store.append(contentsOf: (1...40).map { i in
            var event = sampleEvent(i)
            if i % 3 == 0 { event.source = nil; event.details = nil; event.occurredAt = nil }  // NULLs too
            if i % 5 == 0 { event.actor = "Zoë-\(i)-🔒"; event.tenant = nil }
            return event
        })
        try await store.close()
        let copy = dir.path("case.db")
        var tried = 0
        while tried < cases {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: copy + suffix) }
            try FileManager.default.copyItem(atPath: base, toPath: copy)
            let seq = Int64.random(in: 1...40, using: &random)
            let column = Self.columns.randomElement(using: &random)!
            // Drawn here so the replay does not depend on which branch runs.
            let bit = Int64.random(in: 0..<64, using: &random)
            let position = UInt64.random(in: 0...UInt64.max, using: &random)
            let mask = UInt8.random(in: 1...255, using: &random)
            let queue = try DatabaseQueue(path: copy)
            let changed: String? = try await queue.write { db in
                try db.execute(sql: "DROP TRIGGER audit_entries_no_update")
                let value = try DatabaseValue.fetchOne(db, sql: "SELECT \(column) FROM audit_entries WHERE seq = ?", arguments: [seq])!
                switch value.storage {
                case .null:
                    return nil  // nothing stored to change
                case .int64(let n):
                    let flipped = n ^ (Int64(1) << bit)
                    do {
                        try db.execute(sql: "UPDATE audit_entries SET \(column) = ? WHERE seq = ?", arguments: [flipped, seq])
                    } catch { return nil }  // e.g. a seq that already exists
                    return "\(column): \(n) -> \(flipped)"
                case .string(let text):
                    var bytes = Array(text.utf8)
                    let at = Int(position % UInt64(bytes.count))
                    bytes[at] ^= mask
                    try db.execute(sql: "UPDATE audit_entries SET \(column) = CAST(? AS TEXT) WHERE seq = ?",
                                   arguments: [Data(bytes), seq])
                    return "\(column) byte \(at)"
                case .blob(let data):
                    var bytes = Array(data)
                    let at = Int(position % UInt64(bytes.count))
                    bytes[at] ^= mask
                    try db.execute(sql: "UPDATE audit_entries SET \(column) = ? WHERE seq = ?", arguments: [Data(bytes), seq])
                    return "\(column) byte \(at)"
                case .double:
                    return nil
                }
            }
            try queue.close()
            guard let changed else { continue }
            tried += 1
            let report = try await AuditStore.verify(storeAt: copy, keys: keys)
            let rows = report.findings.filter { $0.seqs != nil }
            #expect(rows.contains { $0.seqs!.contains(seq) }, "seq \(seq), \(changed), seed \(seed): \(report)")
            #expect(report.findings(.schemaTampered).count == 1)  // the dropped trigger, nothing else
        }
    }
}
