import Foundation
import Testing

@testable import AuditDB

/// The engine and the Python verifier of FORMAT.md 22.7 (docs/verifier/shipping.py, written from
/// the text) agree on random changes to the central tables of docs/test-vectors/shipping.json,
/// not only on the listed cases: seeded random edits of every table (a column set to NULL, to
/// another row's value, to a flipped or cut byte string, to a nearby integer; a row deleted or
/// copied to another seq), one or two per case. The engine's findings become the cases' expected
/// findings, and `shipping.py --check-vectors` must give each of them exactly.
/// More cases: AUDITDB_FUZZ_ITERATIONS / 50 (seed: AUDITDB_FUZZ_SEED).
@Suite("Format: central shipping, engine and Python verifier agree on random changes")
struct ShippingDifferentialTests {
    static let cases = max(200, FuzzTests.iterations / 50)

    /// One random change to `dump` (an existing row, so both sides can apply it).
    static func change(_ dump: [String: Any], _ random: inout SeededRandom) -> [String: Any] {
        let tables = ["entries", "entries", "entries", "tombstones", "tombstones", "batches"]
        var table = tables.randomElement(using: &random)!
        var rows = dump[table] as? [[String: Any]] ?? []
        if rows.isEmpty { table = "entries"; rows = dump[table] as? [[String: Any]] ?? [] }
        let row = rows.randomElement(using: &random)!
        var change: [String: Any] = ["table": table, "store_id": row["store_id"] as Any]
        if let seq = row["seq"] { change["seq"] = seq } else { change["first_seq"] = row["first_seq"] as Any }
        switch Int.random(in: 0..<10, using: &random) {
        case 0 where table != "batches":
            change["delete"] = 1
        case 1 where table != "batches":
            change["copy_to_seq"] = (row["seq"] as? Int ?? 1) + Int.random(in: -2...3, using: &random)
        default:
            let column = row.keys.filter { $0 != "store_id" && $0 != "seq" && $0 != "first_seq" }.sorted().randomElement(using: &random)!
            change["set"] = [column: value(for: column, in: row, of: rows, &random)]
        }
        return change
    }

    /// Columns PostgreSQL holds NOT NULL (postgres/witness_shipping.sql): never NULL in a dump.
    static let notNull: Set<String> = [
        "recorded_at", "withheld", "erased", "leaf", "last_seq", "checkpoint_seq", "checkpoint_signature", "proof", "tombstone", "expiry_seq",
    ]

    /// A plausible, often wrong, value for `column`: NULL, another row's, a changed one.
    static func value(for column: String, in row: [String: Any], of rows: [[String: Any]], _ random: inout SeededRandom) -> Any {
        let current = row[column]
        // The late tombstones' columns may be NULL too: the verifiers read them as malformed.
        let notNull = Self.notNull.contains(column) && row["withheld"] != nil
            && !(row["tombstone"] is NSNull && column == "tombstone") && !(row["expiry_seq"] is NSNull && column == "expiry_seq")
            || ["last_seq", "checkpoint_seq", "checkpoint_signature", "proof"].contains(column)
        switch Int.random(in: 0..<4, using: &random) {
        case 0 where !notNull: return NSNull()
        case 1:
            if let other = rows.randomElement(using: &random)?[column], !(notNull && other is NSNull) { return other }
        default: break
        }
        if let n = current as? Int { return n + [-1, 1, 2, 255, -n].randomElement(using: &random)! }
        let isBytes = ["_nonce", "_commitment", "leaf", "tombstone", "proof", "signature", "public_key"].contains { column.hasSuffix($0) }
        if isBytes, let text = current as? String, let bytes = Hex.decode(text) {
            var b = bytes
            if b.isEmpty {
                b = [UInt8.random(in: 0...255, using: &random)]
            } else if Bool.random(using: &random) {
                b[Int.random(in: 0..<b.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
            } else {
                b = Array(b.prefix(Int.random(in: 0..<b.count, using: &random)))
            }
            return Hex.encode(b)
        }
        if let text = current as? String { return text + ["x", "", "\u{0}", "é"].randomElement(using: &random)! }
        // NULL now: another row's value of the column (of its SQL type), or NULL again.
        return rows.compactMap { $0[column] }.filter { !($0 is NSNull) }.randomElement(using: &random) ?? NSNull()
    }

    @Test("random changes of every table: the same findings from the engine and from shipping.py")
    func agree() throws {
        let vectors = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: ShippingVectorTests.file)) as? [String: Any])
        let dump = try #require(vectors["dump"] as? [String: Any])
        var random = SeededRandom(seed: UInt64(environmentInt("AUDITDB_FUZZ_SEED", default: 0x5E1F)))
        var cases: [[String: Any]] = []
        var withFindings = 0
        for n in 0..<Self.cases {
            var changes: [[String: Any]] = []
            var changed = dump
            for _ in 0..<Int.random(in: 1...2, using: &random) {
                let change = Self.change(changed, &random)
                changed = try ShippedDump.applying([change], to: changed)
                changes.append(change)
            }
            let findings = try ShippedDump.findings(changed).map { f -> [String: Any] in
                ["store_id": f.store, "kind": f.finding.kind.name, "from_seq": f.finding.seqs.lowerBound, "to_seq": f.finding.seqs.upperBound]
            }
            if !findings.isEmpty { withFindings += 1 }
            cases.append(["name": "random-\(n)", "why": "", "changes": changes, "findings": findings])
        }
        cases.append(["name": "intact", "why": "", "changes": [], "findings": []])
        // Most random changes are damage the verifiers must see.
        #expect(withFindings > Self.cases / 2)
        let dir = try TempDir()
        let file = dir.path("random-shipping.json")
        try JSONSerialization.data(withJSONObject: ["dump": dump, "cases": cases], options: [.sortedKeys]).write(to: URL(fileURLWithPath: file))
        let python = try run("/usr/bin/env", ["python3", repositoryRoot.appendingPathComponent("docs/verifier/shipping.py").path,
                                              "--check-vectors", file])
        #expect(python.status == 0 && python.stdout.hasSuffix("shipping vectors: ok\n"), "\(python.stdout.prefix(4_000))\(python.stderr.prefix(2_000))")
    }
}
