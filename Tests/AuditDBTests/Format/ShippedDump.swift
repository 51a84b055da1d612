import Foundation
import Testing

@testable import AuditDB

/// The central tables as JSON ("auditdb-shipped-dump v1": docs/test-vectors/shipping.json's
/// `dump`, or what docs/verifier/shipped_dump.sql prints from PostgreSQL), verified by the engine
/// the way `ShippedVerifier` verifies the tables themselves.
enum ShippedDump {
    struct Located { let store: String; let finding: ShippedFinding }

    /// The dump with a case's changes applied (docs/test-vectors/README.md, shipping.json).
    static func applying(_ changes: [[String: Any]], to dump: [String: Any]) throws -> [String: Any] {
        var out = dump
        for change in changes {
            let table = try #require(change["table"] as? String)
            var rows = try #require(out[table] as? [[String: Any]])
            func matches(_ row: [String: Any]) -> Bool {
                guard row["store_id"] as? String == change["store_id"] as? String else { return false }
                if let seq = change["seq"] { return (row["seq"] as? Int) == (seq as? Int) }
                if let first = change["first_seq"] { return (row["first_seq"] as? Int) == (first as? Int) }
                return true
            }
            let index = try #require(rows.firstIndex(where: matches), "no row for \(change)")
            if change["delete"] != nil {
                rows.remove(at: index)
            } else if let seq = change["copy_to_seq"] {
                var copy = rows[index]
                copy["seq"] = seq
                rows.append(copy)
            } else {
                for (k, v) in try #require(change["set"] as? [String: Any]) { rows[index][k] = v }
            }
            out[table] = rows
        }
        return out
    }

    static func bytes(_ v: Any?) -> [UInt8]? { (v as? String).flatMap(Hex.decode) }
    static func int(_ v: Any?) -> Int64? { (v as? Int).map(Int64.init) }
    static func text(_ v: Any?) -> String? { v as? String }

    /// Every store's findings.
    static func findings(_ dump: [String: Any]) throws -> [Located] {
        var registered: [String: [Int64: [UInt8]]] = [:]
        for k in try #require(dump["keys"] as? [[String: Any]]) {
            registered[try #require(k["store_id"] as? String), default: [:]][try #require(int(k["key_version"]))] = bytes(k["public_key"])
        }
        var checkpoints: [String: [Checkpoint]] = [:]
        for c in try #require(dump["checkpoints"] as? [[String: Any]]) {
            let store = try #require(c["store_id"] as? String)
            let cp = Checkpoint(storeID: try #require(StoreID(exactly: bytes(store) ?? [])), seq: try #require(int(c["seq"])),
                                chainHead: bytes(c["chain_head"]) ?? [], merkleRoot: bytes(c["merkle_root"]) ?? [],
                                time: AuditTimestamp(microsecondsSinceEpoch: int(c["signed_time"]) ?? 0),
                                keyVersion: UInt32(clamping: int(c["key_version"]) ?? 0), publicKey: bytes(c["public_key"]) ?? [],
                                signature: bytes(c["signature"]) ?? [])
            guard let pk = registered[store]?[Int64(cp.keyVersion)], pk == cp.publicKey else { continue }
            checkpoints[store, default: []].append(cp)
        }
        var batches: [String: [ShippedBatchRecord]] = [:]
        for b in try #require(dump["batches"] as? [[String: Any]]) {
            batches[try #require(b["store_id"] as? String), default: []].append(ShippedBatchRecord(
                firstSeq: try #require(int(b["first_seq"])), lastSeq: try #require(int(b["last_seq"])),
                checkpointSeq: try #require(int(b["checkpoint_seq"])), checkpointSignature: bytes(b["checkpoint_signature"]) ?? [],
                concatenatedProof: bytes(b["proof"]) ?? []))
        }
        var byStore: [String: [ShippedEntry]] = [:]
        for e in try #require(dump["entries"] as? [[String: Any]]) {
            var c = ShippedEntry.Columns(seq: try #require(int(e["seq"])))
            c.recordedAt = int(e["recorded_at"]); c.occurredAt = int(e["occurred_at"]); c.tenant = text(e["tenant"])
            c.actor = text(e["actor"]); c.action = text(e["action"]); c.resourceType = text(e["resource_type"])
            c.resourceId = text(e["resource_id"]); c.outcome = int(e["outcome"]); c.severity = int(e["severity"])
            c.correlationId = text(e["correlation_id"]); c.source = text(e["source"]); c.details = text(e["details"])
            c.origin = int(e["origin"]); c.originRef = int(e["origin_ref"]); c.formatVersion = int(e["format_version"])
            c.keyVersion = int(e["key_version"]); c.actorNonce = bytes(e["actor_nonce"]); c.sourceNonce = bytes(e["source_nonce"])
            c.detailsNonce = bytes(e["details_nonce"]); c.actorCommitment = bytes(e["actor_commitment"])
            c.sourceCommitment = bytes(e["source_commitment"]); c.detailsCommitment = bytes(e["details_commitment"])
            c.withheld = int(e["withheld"]); c.erased = int(e["erased"]); c.leaf = bytes(e["leaf"])
            c.tombstone = bytes(e["tombstone"]); c.expirySeq = int(e["expiry_seq"])
            byStore[try #require(e["store_id"] as? String), default: []].append(ShippedEntry(columns: c))
        }
        var late: [String: [ShippedEntry]] = [:]
        for t in dump["tombstones"] as? [[String: Any]] ?? [] {
            let tombstone = bytes(t["tombstone"]) ?? []
            late[try #require(t["store_id"] as? String), default: []].append(ShippedEntry(
                seq: try #require(int(t["seq"])), leaf: tombstone.count == 164 ? Array(tombstone[44..<76]) : [], values: nil,
                expired: .init(tombstone: tombstone, expirySeq: int(t["expiry_seq"]) ?? 0)))
        }
        var out: [Located] = []
        for store in Set(byStore.keys).union(batches.keys).union(late.keys).sorted() {
            let id = try #require(StoreID(exactly: bytes(store) ?? []))
            var verifier = ShippedLogVerifier(storeID: id, batches: batches[store] ?? [], checkpoints: checkpoints[store] ?? [],
                                              lateTombstones: late[store] ?? [])
            for entry in (byStore[store] ?? []).sorted(by: { $0.seq < $1.seq }) { verifier.add(entry) }
            out += verifier.finish().map { Located(store: store, finding: $0) }
        }
        return out
    }
}
