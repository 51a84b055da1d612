import CAuditCore
import Foundation
import Testing

@testable import AuditDB

/// docs/test-vectors/vectors.json was produced by the Python verifier written from
/// docs/FORMAT.md alone; these tests recompute every value with the engine's C code, so the
/// spec, the vectors and the implementation cannot drift apart.
@Suite("Format: test vectors and the independent verifier")
struct FormatVectorTests {
    static let root = repositoryRoot

    let vectors: [String: Any]

    init() throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent("docs/test-vectors/vectors.json"))
        vectors = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func hex(_ text: Any?) throws -> [UInt8] {
        let s = try #require(text as? String)
        var out = [UInt8]()
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(try #require(UInt8(s[i..<j], radix: 16)))
            i = j
        }
        return out
    }

    func keyset(version: Int) throws -> (OpaquePointer, [UInt8]) {
        let keys = try #require(vectors["keys"] as? [[String: Any]])
        let entry = try #require(keys.first { $0["version"] as? Int == version })
        let master = try hex(entry["master"])
        var derived = [UInt8](repeating: 0, count: 32)
        let label = Array("AuditDB/v1/mac-key".utf8)
        adb_hmac_sha256(master, 32, label, label.count, &derived)
        #expect(derived == (try hex(entry["k_mac"])))
        let nonceLabel = Array("AuditDB/v1/nonce-key".utf8)
        adb_hmac_sha256(master, 32, nonceLabel, nonceLabel.count, &derived)
        #expect(derived == (try hex(entry["k_nonce"])))
        let memory = UnsafeMutableRawPointer.allocate(byteCount: adb_keyset_size(), alignment: 16)
        let ks = OpaquePointer(memory)
        adb_keyset_init(ks, master)
        return (ks, master)
    }

    @Test("every row's nonces, commitments, encoding, tags and MAC match the vectors")
    func rows() throws {
        let storeID = try hex(vectors["store_id"])
        let rows = try #require(vectors["rows"] as? [[String: Any]])
        #expect(rows.count >= 4)
        var ks: [Int: OpaquePointer] = [:]
        defer { for k in ks.values { adb_keyset_wipe(k); UnsafeMutableRawPointer(k).deallocate() } }
        for vector in rows {
            let columns = try #require(vector["columns"] as? [String: Any])
            let texts = vector["text_utf8_hex"] as? [String: Any] ?? [:]
            let version = try #require(columns["key_version"] as? Int)
            if ks[version] == nil { ks[version] = try keyset(version: version).0 }
            let keyset = ks[version]!
            var storage: [String: [UInt8]] = [:]
            for name in ["tenant", "actor", "action", "resource_type", "resource_id", "correlation_id", "source", "details"]
            where !(columns[name] is NSNull) && columns[name] != nil {
                storage[name] = try hex(texts[name])
                #expect(String(decoding: storage[name]!, as: UTF8.self) == columns[name] as? String)
            }
            let seq = Int64(try #require(columns["seq"] as? Int))
            let prev = try hex(vector["prev_mac"])
            // Keep every text buffer alive while the C row points into it.
            let ordered = ["tenant", "actor", "action", "resource_type", "resource_id", "correlation_id", "source", "details"]
            let buffers = ordered.map { storage[$0] }
            var pointers: [UnsafeMutablePointer<UInt8>?] = buffers.map { bytes in
                guard let bytes else { return nil }
                let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, bytes.count))
                p.initialize(from: bytes, count: bytes.count)
                return p
            }
            defer { for p in pointers { p?.deallocate() } }
            func field(_ i: Int) -> adb_bytes {
                guard let bytes = buffers[i] else { return adb_bytes(ptr: nil, len: -1) }
                return adb_bytes(ptr: pointers[i], len: Int64(bytes.count))
            }
            var row = adb_row()
            row.seq = seq
            row.recorded_at = Int64(try #require(columns["recorded_at"] as? Int))
            if let occurred = columns["occurred_at"] as? Int {
                row.occurred_at = Int64(occurred)
                row.has_occurred_at = 1
            }
            row.key_version = UInt32(version)
            row.format_version = UInt8(try #require(columns["format_version"] as? Int))
            row.outcome = UInt8(try #require(columns["outcome"] as? Int))
            row.severity = UInt8(try #require(columns["severity"] as? Int))
            row.origin = UInt8(try #require(columns["origin"] as? Int))
            if let ref = columns["origin_ref"] as? Int {
                row.origin_ref = Int64(ref)
                row.has_origin_ref = 1
            }
            row.tenant = field(0); row.actor = field(1); row.action = field(2); row.resource_type = field(3)
            row.resource_id = field(4); row.correlation_id = field(5); row.source = field(6); row.details = field(7)

            let nonces = vector["nonces"] as? [String: Any] ?? [:]
            let commitments = vector["commitments"] as? [String: Any] ?? [:]
            for (name, id, value) in [("actor", ADB_FIELD_ACTOR, row.actor), ("source", ADB_FIELD_SOURCE, row.source),
                                      ("details", ADB_FIELD_DETAILS, row.details)] {
                var nonce = [UInt8](repeating: 0, count: 32), commitment = [UInt8](repeating: 0, count: 32)
                adb_field_nonce(keyset, storeID, seq, UInt8(id), &nonce)
                adb_commitment(nonce, UInt8(id), value, &commitment)
                if let expected = nonces[name] as? String { #expect(nonce == (try hex(expected)), "seq \(seq) \(name) nonce") }
                #expect(commitment == (try hex(commitments[name])), "seq \(seq) \(name) commitment")
            }
            var encoded = [UInt8](repeating: 0, count: 8192)
            let length = adb_row_encode(keyset, storeID, &row, &encoded, encoded.count)
            #expect(Array(encoded.prefix(length)) == (try hex(vector["enc_row"])), "seq \(seq) ENC_ROW")
            var mac = [UInt8](repeating: 0, count: 32)
            adb_row_seal(keyset, storeID, &row, prev, &mac)
            #expect(mac == (try hex(vector["mac"])), "seq \(seq) MAC")
            #expect(Array(mac.prefix(16)) == (try hex(vector["row_tag"])))
            #expect(adb_row_check(keyset, storeID, &row, prev, mac, 32) == Int32(ADB_OK))
            pointers = pointers.map { $0 }
        }
    }

    @Test("the header and attestation MACs match the vectors")
    func headerAndAttestation() throws {
        let storeID = try hex(vectors["store_id"])
        let header = try #require(vectors["header"] as? [String: Any])
        let (ks1, _) = try keyset(version: try #require(header["key_version"] as? Int))
        defer { UnsafeMutableRawPointer(ks1).deallocate() }
        var mac = [UInt8](repeating: 0, count: 32)
        adb_header_mac(ks1, storeID, Int64(try #require(header["created_at"] as? Int)),
                       UInt8(try #require(header["format_version"] as? Int)), UInt32(try #require(header["key_version"] as? Int)),
                       &mac)
        #expect(mac == (try hex(header["mac"])))
        let attestation = try #require(vectors["attestation"] as? [String: Any])
        let (ks2, _) = try keyset(version: try #require(attestation["attesting_key_version"] as? Int))
        defer { UnsafeMutableRawPointer(ks2).deallocate() }
        adb_attestation_mac(ks2, storeID, Int64(try #require(attestation["seq"] as? Int)),
                            UInt32(try #require(attestation["row_key_version"] as? Int)), try hex(attestation["row_mac"]),
                            Int64(try #require(attestation["declaration_seq"] as? Int)), &mac)
        #expect(mac == (try hex(attestation["mac"])))
    }

    @Test("the vectors' key file text parses into the same keys")
    func keyFileText() throws {
        let text = try #require(vectors["key_file_text"] as? String)
        let ring = try Array(text.utf8).withUnsafeBytes { try KeyText.parse($0, origin: "vectors") }
        let keys = try #require(vectors["keys"] as? [[String: Any]])
        #expect(ring.versions.count == keys.count)
        for entry in keys {
            let version = UInt32(try #require(entry["version"] as? Int))
            let bytes = try #require(ring.key(version: version)).withSecretBytes { Array($0) }
            #expect(bytes == (try hex(entry["master"])))
        }
    }

    // MARK: The independent verifier

    func python() throws -> String { try Self.python3() }

    /// The python3 the independent verifiers run under (installed by `make setup`).
    static func python3() throws -> String {
        for candidate in ["/usr/bin/python3", "/usr/local/bin/python3"] where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        throw TestFailure("python3 is not installed; run `make setup`")
    }

    @Test("the Python verifier's own self-test passes")
    func pythonSelfTest() throws {
        let result = try run(try python(), [Self.root.appendingPathComponent("docs/verifier/selftest.py").path])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }

    @Test("the Python verifier, written from FORMAT.md alone, agrees with the engine on real stores")
    func pythonVerifierAgrees() async throws {
        let dir = try TempDir()
        let keyPath = dir.path("k.keys")
        let keys = try KeyFile.generate(at: keyPath)
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...300).map { sampleEvent($0) })
        try await store.append(AuditEvent(actor: "Zoë \u{202E}", action: "ünïcode", source: nil,
                                          details: AuditDetails(json: #"{"emoji":"🔒","nested":{"a":[1,{"b":null}]}}"#)))
        try await store.close()
        let verifier = Self.root.appendingPathComponent("docs/verifier/auditdb_verify.py").path
        let intact = try run(try python(), [verifier, "--store", path, "--key-file", keyPath])
        #expect(intact.status == 0, "\(intact.stdout)\(intact.stderr)")
        #expect(intact.stdout.contains("301"))

        try sqlite3Must(path, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET details = '{\"i\":0}' WHERE seq = 123;")
        let ours = try await AuditStore.verify(storeAt: path, keys: keys)
        let theirs = try run(try python(), [verifier, "--store", path, "--key-file", keyPath, "--json"])
        #expect(theirs.status == 1)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(theirs.stdout.utf8)) as? [String: Any])
        let findings = try #require(report["findings"] as? [[String: Any]])
        let kinds = findings.compactMap { $0["kind"] as? String }.sorted()
        #expect(kinds == ours.findings.map(\.kind.name).sorted())
        let seqs = findings.compactMap { ($0["seq"] ?? $0["first_seq"] ?? $0["firstSeq"]) as? Int }
        #expect(seqs == [123])
    }
}
