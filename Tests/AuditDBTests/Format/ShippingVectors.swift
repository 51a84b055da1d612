import CAuditCore
import Foundation

@testable import AuditDB

/// A JSON value written in a fixed layout (keys in the given order), for the vector files.
indirect enum VectorJSON {
    case object([(String, VectorJSON)])
    case array([VectorJSON])
    case string(String)
    case int(Int64)
    case null

    static func hex(_ bytes: [UInt8]?) -> VectorJSON { bytes.map { .string(Hex.encode($0)) } ?? .null }
    static func text(_ s: String?) -> VectorJSON { s.map { .string($0) } ?? .null }
    static func int(_ v: Int64?) -> VectorJSON { v.map { .int($0) } ?? .null }

    /// Compact text, except that the items of arrays (and objects) nested `depth` levels or less
    /// start a new line each.
    func render(indent: String = "", depth: Int = 2) -> String {
        switch self {
        case .null: return "null"
        case .int(let v): return String(v)
        case .string(let s): return Self.quote(s)
        case .array(let items):
            if items.isEmpty { return "[]" }
            if depth <= 0 { return "[" + items.map { $0.render(depth: 0) }.joined(separator: ",") + "]" }
            let inner = indent + " "
            return "[\n" + items.map { inner + $0.render(indent: inner, depth: depth - 1) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let members):
            if members.isEmpty { return "{}" }
            if depth <= 0 { return "{" + members.map { Self.quote($0.0) + ":" + $0.1.render(depth: 0) }.joined(separator: ",") + "}" }
            let inner = indent + " "
            return "{\n" + members.map { inner + Self.quote($0.0) + ": " + $0.1.render(indent: inner, depth: depth - 1) }
                .joined(separator: ",\n") + "\n" + indent + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}

/// The central tables of docs/test-vectors/shipping.json (FORMAT.md 22.7), built from the text of
/// the format with public TEST-ONLY inputs: two stores, A (ten rows of every kind a shipper
/// sends) and B (six plain rows), their registered keys, checkpoints and batches.
enum ShippingVectors {
    static let storeA = StoreID(bytes: Array(0xA0...0xAF))
    static let storeB = StoreID(bytes: Array(0xB0...0xBF))
    /// TEST-ONLY checkpoint signing seeds (public: never use them for a real store).
    static let seedA: [UInt8] = Array(0x40...0x5F)
    static let seedB: [UInt8] = Array(0x60...0x7F)
    static let seedUnregistered: [UInt8] = Array(0x80...0x9F)
    static let time: Int64 = 1_795_439_710_000_000  // 2026-11-23T13:15:10Z

    static func sha(_ text: String) -> [UInt8] { sha(Array(text.utf8)) }
    static func sha(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        adb_sha256(bytes, bytes.count, &out)
        return out
    }
    static func be(_ v: Int64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: UInt64(bitPattern: v) >> (8 * UInt64(n - 1 - $0))) } }

    static func key(_ seed: [UInt8]) -> CheckpointSigningKey {
        try! seed.withUnsafeBytes { try CheckpointSigningKey(version: 1, seed: $0) }
    }

    /// A row before shipping: values, and per field its value, nonce (format 2: from the row's
    /// seed, FORMAT.md 21.1) and how it is shipped.
    struct Row {
        var seq: Int64
        var format: UInt8 = 2
        var recordedAt: Int64
        var occurredAt: Int64?
        var tenant: String?
        var action: String
        var resourceType: String?
        var resourceId: String?
        var outcome: UInt8 = 0
        var severity: UInt8 = 0
        var correlationId: String?
        var origin: UInt8 = 0
        var originRef: Int64?
        var fields: [String?]  // actor, source, details
        var withheld: Int64 = 0
        var erased: Int64 = 0

        func nonce(_ f: Int) -> [UInt8] {
            // Format 2: N_f = SHA256("ADB2NONC" || seed || u8(f)), seed a stand-in for the CSPRNG's.
            // Format 1 derives it from K_nonce; a central verifier never derives nonces, so a
            // format-1 row here has a stand-in nonce of the same size.
            if format == 1 { return sha("format-1 stand-in nonce \(seq) \(f)") }
            return sha(Array("ADB2NONC".utf8) + sha("seed \(seq)") + [UInt8(f)])
        }
        func commitment(_ f: Int) -> [UInt8] {
            guard let v = fields[f - 1] else { return [UInt8](repeating: 0, count: 32) }
            return sha(nonce(f) + [UInt8(f)] + Array(v.utf8))
        }
        func leaf(_ store: StoreID) -> [UInt8] {
            ShippedEntry.leaf(storeID: store, seq: seq, formatVersion: format, keyVersion: 1, recordedAt: recordedAt,
                              occurredAt: occurredAt, tenant: tenant, action: action, resourceType: resourceType,
                              resourceId: resourceId, outcome: outcome, severity: severity, correlationId: correlationId,
                              origin: origin, originRef: originRef, commitments: commitment(1) + commitment(2) + commitment(3))
        }
        /// The central row: a field is shown (value, nonce if not NULL) unless withheld or erased.
        func columns(_ store: StoreID) -> VectorJSON {
            var m: [(String, VectorJSON)] = [
                ("store_id", .hex(store.bytes)), ("seq", .int(seq)), ("recorded_at", .int(recordedAt)),
                ("occurred_at", .int(occurredAt)), ("tenant", .text(tenant)),
            ]
            func shown(_ f: Int) -> Bool { (withheld | erased) & (1 << (f - 1)) == 0 }
            m.append(("actor", shown(1) ? .text(fields[0]) : .null))
            m += [("action", .string(action)), ("resource_type", .text(resourceType)), ("resource_id", .text(resourceId)),
                  ("outcome", .int(Int64(outcome))), ("severity", .int(Int64(severity))), ("correlation_id", .text(correlationId))]
            m.append(("source", shown(2) ? .text(fields[1]) : .null))
            m.append(("details", shown(3) ? .text(fields[2]) : .null))
            m += [("origin", .int(Int64(origin))), ("origin_ref", .int(originRef)), ("format_version", .int(Int64(format))),
                  ("key_version", .int(1))]
            for (f, name) in [(1, "actor"), (2, "source"), (3, "details")] {
                m.append(("\(name)_nonce", shown(f) && fields[f - 1] != nil ? .hex(nonce(f)) : .null))
            }
            for (f, name) in [(1, "actor"), (2, "source"), (3, "details")] { m.append(("\(name)_commitment", .hex(commitment(f)))) }
            m += [("withheld", .int(withheld)), ("erased", .int(erased)), ("leaf", .hex(leaf(store))),
                  ("tombstone", .null), ("expiry_seq", .null)]
            return .object(m)
        }
    }

    /// ENC_TOMB (FORMAT.md 20.1) of an expired row; its MAC and match tags are stand-ins (a
    /// central verifier checks only the seq, the leaf and the expiry entry's digest).
    static func tombstone(_ row: Row, store: StoreID) -> [UInt8] {
        be(row.seq, 8) + be(1, 4) + sha("mac \(row.seq)") + row.leaf(store) + be(row.recordedAt, 8)
            + (0..<5).flatMap { Array(sha("tag \(row.seq) \($0)")[0..<16]) }
    }

    static func expiredColumns(_ row: Row, store: StoreID, expirySeq: Int64) -> VectorJSON {
        var m: [(String, VectorJSON)] = [("store_id", .hex(store.bytes)), ("seq", .int(row.seq)), ("recorded_at", .int(row.recordedAt))]
        for name in ["occurred_at", "tenant", "actor", "action", "resource_type", "resource_id", "outcome", "severity",
                     "correlation_id", "source", "details", "origin", "origin_ref", "format_version", "key_version",
                     "actor_nonce", "source_nonce", "details_nonce", "actor_commitment", "source_commitment", "details_commitment"]
        {
            m.append((name, .null))
        }
        m += [("withheld", .int(0)), ("erased", .int(0)), ("leaf", .hex(row.leaf(store))),
              ("tombstone", .hex(tombstone(row, store: store))), ("expiry_seq", .int(expirySeq))]
        return .object(m)
    }

    /// Store A's rows 1…10 (3 and 4 expired by the expiry entry at 6; 5's details erased; 2's
    /// actor and all of 8's fields withheld by the shipper) and store B's rows 1…6.
    static func rowsA() -> [Row] {
        func t(_ s: Int64) -> Int64 { time + s * 1_000_000 }
        var rows: [Row] = [
            Row(seq: 1, format: 1, recordedAt: t(1), tenant: "acme-eu", action: "document.read", resourceType: "document",
                resourceId: "42", fields: ["alice@example.com", "10.0.0.1", #"{"path":"/a"}"#]),
            Row(seq: 2, recordedAt: t(2), tenant: "acme-eu", action: "document.update", resourceType: "document", resourceId: "42",
                outcome: 1, severity: 2, fields: ["bob@example.com", nil, #"{"field":"title"}"#], withheld: 1),
            Row(seq: 3, recordedAt: t(3), tenant: "acme-eu", action: "login", fields: ["carol", "10.0.0.3", nil]),
            Row(seq: 4, recordedAt: t(4), tenant: "bank", action: "login", fields: ["dave", nil, nil]),
            Row(seq: 5, recordedAt: t(5), tenant: "acme-eu", action: "profile.update", resourceType: "user", resourceId: "erin",
                fields: ["erin", "10.0.0.5", #"{"email":"erin@example.com"}"#], erased: 4),
        ]
        var expired = ""
        var tombstones: [UInt8] = []
        for row in rows[2...3] { tombstones += tombstone(row, store: storeA) }
        expired = "{\"policy\":{\"default\":\"1d\",\"tenants\":{}},\"now\":\(time + 200_000_000_000),\"first\":3,\"last\":4,\"count\":2,"
            + "\"tombstones\":\"\(Hex.encode(sha(tombstones)))\"}"
        rows.append(Row(seq: 6, recordedAt: t(6), action: ExpiryRecord.action, resourceType: ExpiryRecord.resourceType,
                        severity: 1, fields: ["auditdb", nil, expired]))
        rows.append(Row(seq: 7, recordedAt: t(7), occurredAt: -1_000_000, tenant: "société", action: "export.create",
                        resourceType: "export", resourceId: "x\ty", outcome: 2, severity: 3, correlationId: "req-7",
                        origin: 1, originRef: 6, fields: ["frank\n", "", #"{"note":"a \"quote\" and é"}"#]))
        rows.append(Row(seq: 8, recordedAt: t(8), tenant: "bank", action: "payment.approve", fields: ["grace", "10.0.0.8", #"{"amount":12}"#],
                        withheld: 7))
        rows.append(Row(seq: 9, format: 1, recordedAt: t(9), action: "document.delete", fields: [nil, nil, nil]))
        rows.append(Row(seq: 10, recordedAt: t(10), tenant: "acme-eu", action: "logout", fields: ["alice@example.com", nil, "{}"]))
        return rows
    }

    /// Store B's rows 1…7: 1 and 2 shipped whole, then expired by the expiry entry at 7 (shipped
    /// with their late tombstones, ``lateTombstonesB()``).
    static func rowsB() -> [Row] {
        var rows = (1...6).map { Row(seq: Int64($0), recordedAt: time + Int64($0), tenant: "b", action: "b.event", fields: ["b\($0)", nil, nil]) }
        let digest = sha(rows[0...1].flatMap { tombstone($0, store: storeB) })
        let expired = "{\"policy\":{\"default\":\"1d\",\"tenants\":{}},\"now\":\(time + 200_000_000_000),\"first\":1,\"last\":2,\"count\":2,"
            + "\"tombstones\":\"\(Hex.encode(digest))\"}"
        rows.append(Row(seq: 7, recordedAt: time + 7, action: ExpiryRecord.action, resourceType: ExpiryRecord.resourceType,
                        severity: 1, fields: ["auditdb", nil, expired]))
        return rows
    }

    /// The rows of `auditdb_ship.tombstones` for store B: rows 1 and 2, expired by the entry at 7.
    static func lateTombstonesB() -> [VectorJSON] {
        rowsB()[0...1].map { row in
            .object([("store_id", .hex(storeB.bytes)), ("seq", .int(row.seq)), ("tombstone", .hex(tombstone(row, store: storeB))),
                     ("expiry_seq", .int(7))])
        }
    }

    static func leaves(_ rows: [Row], _ store: StoreID) -> [[UInt8]] { rows.map { $0.leaf(store) } }

    static func root(_ leaves: ArraySlice<[UInt8]>) -> [UInt8] {
        var f = MerkleTree.Frontier()
        for leaf in leaves { f.append(leaf: leaf) }
        return f.root!
    }

    static func proof(_ leaves: [[UInt8]], from m: Int, to n: Int) -> [UInt8] {
        var f = MerkleTree.Frontier()
        for leaf in leaves[..<m] { f.append(leaf: leaf) }
        return Array(MerkleTree.consistencyProof(old: f, tail: Array(leaves[m..<n].joined()))!.joined())
    }

    static func checkpoint(_ store: StoreID, _ leaves: [[UInt8]], _ seq: Int, _ seed: [UInt8]) -> Checkpoint {
        Checkpoint.signed(storeID: store, seq: Int64(seq), chainHead: sha("chain head \(store.hex) \(seq)"),
                          merkleRoot: root(leaves[..<seq]), time: AuditTimestamp(microsecondsSinceEpoch: time + Int64(seq) * 10_000_000),
                          key: key(seed))
    }

    static func checkpointJSON(_ cp: Checkpoint) -> VectorJSON {
        .object([("store_id", .hex(cp.storeID.bytes)), ("seq", .int(cp.seq)), ("chain_head", .hex(cp.chainHead)),
                 ("merkle_root", .hex(cp.merkleRoot)), ("signed_time", .int(cp.time.microsecondsSinceEpoch)),
                 ("key_version", .int(Int64(cp.keyVersion))), ("public_key", .hex(cp.publicKey)), ("signature", .hex(cp.signature))])
    }

    static func batchJSON(_ store: StoreID, _ first: Int64, _ last: Int64, _ cp: Checkpoint, _ proof: [UInt8]) -> VectorJSON {
        .object([("store_id", .hex(store.bytes)), ("first_seq", .int(first)), ("last_seq", .int(last)),
                 ("checkpoint_seq", .int(cp.seq)), ("checkpoint_signature", .hex(cp.signature)), ("proof", .hex(proof))])
    }
}
