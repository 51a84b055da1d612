public import AuditDB
public import Foundation

/// What the fleet auditor found about one store (docs/fleet.md).
/// Lowercase hex (AuditDB's own helper is internal to it).
func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

public struct FleetFinding: Sendable, Hashable {
    /// What kind of finding.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        /// The stable name used in text, JSON and metrics.
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// Two different logs under one store id and key: two roots for one seq, a consistency
        /// proof that fails, or a checkpoint that does not extend the store's highest one.
        public static let fork = Kind("fork")
        /// A checkpoint with a smaller seq was published after one with a larger seq.
        public static let rollback = Kind("rollback")
        /// No checkpoint for longer than the configured time.
        public static let silent = Kind("silent")
        /// A checkpoint signed with a key that is not registered for its store.
        public static let unknownKey = Kind("unknown-key")
        /// A checkpoint whose Ed25519 signature does not verify under the key it names (a forged
        /// or edited row: someone wrote the witness without the store's key).
        public static let invalidSignature = Kind("invalid-signature")

        /// Every kind, in report order.
        public static let all: [Kind] = [.fork, .rollback, .silent, .unknownKey, .invalidSignature]
    }

    /// The kind.
    public let kind: Kind
    /// The seq the finding is about (nil for `silent` of a store that never published).
    public let seq: Int64?
    /// What happened, and what it means.
    public let message: String
}

/// One store's part of a ``FleetReport``.
public struct FleetStoreReport: Sendable {
    /// The store.
    public let storeID: StoreID
    /// The label it was registered with.
    public let label: String
    /// The highest seq among its validly signed checkpoints (0 for none).
    public let highestSeq: Int64
    /// How many publications the witness holds for it.
    public let publications: Int
    /// When its newest publication that counts reached the witness (the witness's clock): validly
    /// signed with a key registered for the store; nil for none. `silent` is judged from it.
    public let lastPublishedAt: Date?
    /// The findings, by kind then seq.
    public let findings: [FleetFinding]
}

/// The result of one sweep of the fleet auditor over a witness.
public struct FleetReport: Sendable {
    /// Per registered store, by store id.
    public let stores: [FleetStoreReport]
    /// When the sweep ran.
    public let auditedAt: Date

    /// True when no store has a finding.
    public var isIntact: Bool { stores.allSatisfy { $0.findings.isEmpty } }

    /// All findings with their store.
    public var findings: [(storeID: StoreID, finding: FleetFinding)] {
        stores.flatMap { s in s.findings.map { (s.storeID, $0) } }
    }

    /// The report as text: one line per finding, then a summary line.
    public var text: String {
        var out = ""
        for store in stores {
            for f in store.findings {
                let at = f.seq.map { " at seq \($0)" } ?? ""
                out += "store \(store.storeID)\(store.label.isEmpty ? "" : " (\(Self.escaped(store.label)))"): \(f.kind)\(at): \(f.message)\n"
            }
        }
        let bad = stores.filter { !$0.findings.isEmpty }.count
        out += bad == 0
            ? "fleet intact: \(stores.count) store(s), \(stores.reduce(0) { $0 + $1.publications }) publication(s)\n"
            : "fleet NOT intact: \(bad) of \(stores.count) store(s) with findings, \(findings.count) finding(s)\n"
        return out
    }

    /// The report as one JSON object (keys in a fixed order).
    public var json: String {
        func q(_ s: String) -> String { "\"" + Self.escaped(s) + "\"" }
        let stores = self.stores.map { s in
            "{\"storeId\":\"\(s.storeID.hex)\",\"label\":\(q(s.label)),\"highestSeq\":\(s.highestSeq),"
                + "\"publications\":\(s.publications),\"lastPublishedAt\":\(s.lastPublishedAt.map { q(Self.iso($0)) } ?? "null"),"
                + "\"findings\":[" + s.findings.map { f in
                    "{\"kind\":\"\(f.kind)\",\"seq\":\(f.seq.map(String.init) ?? "null"),\"message\":\(q(f.message))}"
                }.joined(separator: ",") + "]}"
        }
        return "{\"format\":\"auditdb-fleet-report v1\",\"intact\":\(isIntact),\"auditedAt\":\(q(Self.iso(auditedAt))),"
            + "\"stores\":[\(stores.joined(separator: ","))]}"
    }

    static func iso(_ date: Date) -> String {
        AuditTimestamp(microsecondsSinceEpoch: Int64((date.timeIntervalSince1970 * 1_000_000).rounded())).iso8601
    }

    /// JSON string escaping for everything (labels are set by the witness owner, but an output
    /// line must never be forgeable): quotes, backslashes, control and bidirectional characters.
    public static func escapedForOutput(_ s: String) -> String { escaped(s) }

    static func escaped(_ s: String) -> String {
        var out = ""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value)
                || (0x202A...0x202E).contains(scalar.value) || (0x2066...0x2069).contains(scalar.value):
                out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
