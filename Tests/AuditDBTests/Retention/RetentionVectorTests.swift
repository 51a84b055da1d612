import Foundation
import GRDB
import Testing

@testable import AuditDB

/// docs/test-vectors/retention.json (written by docs/verifier/retention_vectors.py, whose verdicts
/// are written by hand and reached by the Python verifier): stores with an expired range and a
/// legal hold, loaded into SQLite as the vectors give them, must get the same findings from the
/// engine, message by message in kind and seqs.
@Suite("Retention: test vectors")
struct RetentionVectorTests {
    struct Store {
        var name: String
        var tables: [String: Any]
        var expected: [String]
    }

    static let file = repositoryRoot.appendingPathComponent("docs/test-vectors/retention.json")

    static func load() throws -> (doc: [String: Any], keys: KeyRing) {
        let data = try Data(contentsOf: file)
        let doc = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(doc["vectors_format"] as? String == "auditdb-retention-vectors")
        let text = try #require(doc["key_file_text"] as? String)
        let keys = try Array(text.utf8).withUnsafeBytes { try KeyText.parse($0, origin: "retention.json") }
        return (doc, keys)
    }

    static func expected(_ value: Any?) throws -> [String] {
        let list = try #require(value as? [[Any]])
        return try list.map { item in
            let kind = try #require(item[0] as? String)
            let first = try #require(item[1] as? Int), last = try #require(item[2] as? Int)
            return "\(kind) \(first)...\(last)"
        }
    }

    static func value(_ any: Any) throws -> (any DatabaseValueConvertible)? {
        switch any {
        case is NSNull: return nil
        case let object as [String: Any]:
            let hex = try #require(object["hex"] as? String)
            return Data(try #require(Hex.decode(hex)))
        case let string as String: return string
        case let number as NSNumber: return number.int64Value
        default: throw TestFailure("unexpected value \(any) in retention.json")
        }
    }

    /// The schema of a new store (every migration), then each table's rows as given, triggers off.
    /// A connection that runs without triggers, as an outside client that dropped them would.
    static func withoutTriggers(_ path: String) throws -> DatabaseQueue {
        var configuration = GRDB.Configuration()
        configuration.prepareDatabase { db in
            guard let connection = db.sqliteConnection else { throw TestFailure("no connection") }
            try SQLite.disableTriggers(connection)
        }
        return try DatabaseQueue(path: path, configuration: configuration)
    }

    static func materialize(_ tables: [String: Any], at path: String) throws {
        let queue = try withoutTriggers(path)
        try StoreSchema.migrator.migrate(queue)
        try queue.write { db in
            for name in ["audit_store", "audit_key_versions", "audit_entries", "audit_expired", "audit_attestations", "audit_time_breaks"] {
                let table = try #require(tables[name] as? [String: Any])
                let columns = try #require(table["columns"] as? [String])
                let rows = try #require(table["rows"] as? [[Any]])
                let sql = "INSERT INTO \(name) (\(columns.joined(separator: ", "))) VALUES (\(columns.map { _ in "?" }.joined(separator: ", ")))"
                for row in rows {
                    try db.execute(sql: sql, arguments: StatementArguments(try row.map(value)))
                }
            }
        }
        try queue.close()
    }

    static func findings(_ path: String, keys: KeyRing) async throws -> [String] {
        let report = try await AuditStore.verify(storeAt: path, keys: keys)
        return report.findings.map { f in f.seqs.map { "\(f.kind) \($0.lowerBound)...\($0.upperBound)" } ?? "\(f.kind) -" }
    }

    @Test("every store of the vectors gets its verdict")
    func stores() async throws {
        let (doc, keys) = try Self.load()
        let stores = try #require(doc["stores"] as? [[String: Any]])
        #expect(stores.count == 5)
        let dir = try TempDir()
        for store in stores {
            let name = try #require(store["name"] as? String)
            let path = dir.path("\(name).db")
            try Self.materialize(try #require(store["tables"] as? [String: Any]), at: path)
            #expect(try await Self.findings(path, keys: keys) == (try Self.expected(store["expected"])), "store \(name)")
        }
    }

    @Test("every mutation of the expired store gets its verdict")
    func mutations() async throws {
        let (doc, keys) = try Self.load()
        let stores = try #require(doc["stores"] as? [[String: Any]])
        let base = try #require(stores.first { $0["name"] as? String == doc["mutations_of"] as? String })
        let mutations = try #require(doc["mutations"] as? [[String: Any]])
        #expect(mutations.count == 10)
        let dir = try TempDir()
        for mutation in mutations {
            let name = try #require(mutation["name"] as? String)
            let path = dir.path("\(name).db")
            try Self.materialize(try #require(base["tables"] as? [String: Any]), at: path)
            let queue = try Self.withoutTriggers(path)
            let statements = try #require(mutation["sql"] as? [String])
            try await queue.write { db in
                for sql in statements { try db.execute(sql: sql) }
            }
            try queue.close()
            #expect(try await Self.findings(path, keys: keys) == (try Self.expected(mutation["expected"])), "mutation \(name)")
        }
    }

    @Test("the tombstones' intermediate values are the engine's: TAG, ENC_TOMB")
    func intermediates() throws {
        let (doc, keys) = try Self.load()
        let storeHex = try #require(doc["store_id"] as? String)
        let storeID = try #require(StoreID(hex: storeHex))
        let stores = try #require(doc["stores"] as? [[String: Any]])
        let rows = try #require(((stores[0]["tables"] as? [String: Any])?["audit_expired"] as? [String: Any])?["rows"] as? [[Any]])
        let tombstones = try #require(doc["expired_store_tombstones"] as? [[String: Any]])
        #expect(tombstones.count == 3 && rows.count == 3)
        let key = try #require(keys.key(version: 2))  // the expiry entry's key version
        // Tombstone 3 is of tenant bank, actor carol, no resource type: recompute two of its tags.
        let three = try #require(tombstones.first { $0["seq"] as? Int == 3 })
        let split = try #require(three["tags_split"] as? [String: String])
        #expect(Hex.encode(Tombstone.tag(.tenant, Tombstone.optString("bank"), key: key, storeID: storeID)) == split["tenant"])
        #expect(Hex.encode(Tombstone.tag(.actor, Tombstone.optString("carol"), key: key, storeID: storeID)) == split["actor"])
        func bytes(_ any: Any) throws -> [UInt8] {
            guard let hex = (any as? [String: Any])?["hex"] as? String, let value = Hex.decode(hex) else {
                throw TestFailure("not a {\"hex\": ...} BLOB: \(any)")
            }
            return value
        }
        for (tombstone, row) in zip(tombstones, rows) {
            // audit_expired columns: seq, key_version, mac, leaf, recorded_at, tags, expiry_seq.
            let stored = Tombstone(seq: Int64(try #require(row[0] as? Int)), keyVersion: UInt32(try #require(row[1] as? Int)),
                                   mac: try bytes(row[2]), leaf: try bytes(row[3]), recordedAt: Int64(try #require(row[4] as? Int)),
                                   tags: try bytes(row[5]), expirySeq: Int64(try #require(row[6] as? Int)))
            #expect(tombstone["seq"] as? Int == Int(stored.seq))
            #expect(tombstone["leaf"] as? String == Hex.encode(stored.leaf))
            #expect(tombstone["tags"] as? String == Hex.encode(stored.tags))
            #expect(tombstone["enc_tomb"] as? String == Hex.encode(stored.encoded))
        }
    }
}
