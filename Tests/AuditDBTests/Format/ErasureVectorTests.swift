import CAuditCore
import Foundation
import Testing

@testable import AuditDB

/// The `erasure` vector of docs/test-vectors/vectors.json (FORMAT.md section 21), written by the
/// Python verifier from the text alone, recomputed with the engine's C code.
@Suite("Format: the erasure test vector")
struct ErasureVectorTests {
    @Test("a format-2 row: nonces from its seed, commitments, ENC_ROW and MAC; erased, the same MAC and the stated seals")
    func erasureVector() throws {
        let vectors = try FormatVectorTests()
        let vector = try #require(vectors.vectors["erasure"] as? [String: Any])
        let columns = try #require(vector["columns"] as? [String: Any])
        let storeID = try vectors.hex(vectors.vectors["store_id"])
        let (keyset, _) = try vectors.keyset(version: 1)
        defer { adb_keyset_wipe(keyset); UnsafeMutableRawPointer(keyset).deallocate() }
        let names = ["tenant", "actor", "action", "resource_type", "resource_id", "correlation_id", "source", "details"]
        let texts: [[UInt8]?] = names.map { name in (columns[name] as? String).map { Array($0.utf8) } }
        let seals = try vectors.hex(vector["seals"])
        #expect(seals == [0] + (try vectors.hex(vector["seed"])))
        let prev = try vectors.hex(vector["prev_mac"])
        let expectedMac = try vectors.hex(vector["mac"])
        let expectedEnc = try vectors.hex(vector["enc_row"])
        try withRow(texts: texts, seals: seals, columns: columns) { row in
            let commitments = try #require(vector["commitments"] as? [String: String])
            let nonces = try #require(vector["nonces"] as? [String: String])
            for (name, id) in [("actor", 1), ("source", 2), ("details", 3)] {
                var nonce = [UInt8](repeating: 0, count: 32), commitment = [UInt8](repeating: 0, count: 32)
                #expect(adb_row_field_nonce(keyset, storeID, &row, UInt8(id), &nonce) == 1)
                adb_row_field_commitment(keyset, storeID, &row, UInt8(id), &commitment)
                #expect(nonce == (try vectors.hex(nonces[name])), "\(name) nonce")
                #expect(commitment == (try vectors.hex(commitments[name])), "\(name) commitment")
            }
            var encoded = [UInt8](repeating: 0, count: 4096)
            let length = adb_row_encode(keyset, storeID, &row, &encoded, encoded.count)
            #expect(Array(encoded.prefix(length)) == expectedEnc)
            var mac = [UInt8](repeating: 0, count: 32)
            adb_row_seal(keyset, storeID, &row, prev, &mac)
            #expect(mac == expectedMac)
            var erased = [UInt8](repeating: 0, count: Int(ADB_SEALS_ERASED_LEN))
            #expect(adb_seals_erase(&row, 0b101, &erased) == 1)
            #expect(erased == (try vectors.hex(vector["erased_seals"])))
        }
        // The erased row: actor and details NULL, the erased seals; the same MAC.
        var erasedTexts = texts
        erasedTexts[1] = nil
        erasedTexts[7] = nil
        try withRow(texts: erasedTexts, seals: try vectors.hex(vector["erased_seals"]), columns: columns) { row in
            #expect(adb_seals_valid(row.seals, row.seals_len, row.actor, row.source, row.details) == 1)
            #expect(adb_row_erased_mask(&row) == 0b101)
            #expect(adb_row_check(keyset, storeID, &row, prev, expectedMac, 32) == Int32(ADB_OK))
        }
        let record = ErasureRecord(reason: "TICKET-1", subject: "actor", fields: [.actor, .details], seqs: [5])
        #expect(try record.event.details?.jsonText() == vector["erasure_entry_details"] as? String)
    }

    @Test("a path erased inside details (21.7): the residual, its hash, the seals and the entry the engine writes are the vector's")
    func erasurePathsVector() throws {
        let vectors = try FormatVectorTests()
        let vector = try #require(vectors.vectors["erasure_paths"] as? [String: Any])
        let base = try #require(vectors.vectors["erasure"] as? [String: Any])
        let columns = try #require(base["columns"] as? [String: Any])
        let storeID = try vectors.hex(vectors.vectors["store_id"])
        let (keyset, _) = try vectors.keyset(version: 1)
        defer { adb_keyset_wipe(keyset); UnsafeMutableRawPointer(keyset).deallocate() }
        let details = try #require(vector["details"] as? String)
        let names = ["tenant", "actor", "action", "resource_type", "resource_id", "correlation_id", "source", "details"]
        var texts: [[UInt8]?] = names.map { name in (columns[name] as? String).map { Array($0.utf8) } }
        texts[7] = Array(details.utf8)
        let paths = try (try #require(vector["paths"] as? [String])).map { try MaskPath(parsing: $0) }
        let erased = try #require(try ErasedDetails.erasing(paths, from: details, before: nil)).details
        #expect(erased.text == vector["erased_details"] as? String)
        let hash = ErasedDetails.hash(seq: 5, text: erased.text)
        #expect(hash == (try vectors.hex(vector["residual_hash"])))
        let prev = try vectors.hex(vector["prev_mac"]), mac = try vectors.hex(vector["mac"])
        let expectedEnc = try vectors.hex(vector["enc_row"]), expectedSeals = try vectors.hex(vector["erased_seals"])
        try withRow(texts: texts, seals: try vectors.hex(vector["seals"]), columns: columns) { row in
            var encoded = [UInt8](repeating: 0, count: 4096)
            let length = adb_row_encode(keyset, storeID, &row, &encoded, encoded.count)
            #expect(Array(encoded.prefix(length)) == expectedEnc)
            var seals = [UInt8](repeating: 0, count: Int(ADB_SEALS_ERASED_LEN))
            #expect(adb_seals_erase(&row, 0x0C, &seals) == 1)
            #expect(seals == expectedSeals)
        }
        texts[7] = Array(erased.text.utf8)
        try withRow(texts: texts, seals: try vectors.hex(vector["erased_seals"]), columns: columns) { row in
            #expect(adb_seals_valid(row.seals, row.seals_len, row.actor, row.source, row.details) == 1)
            #expect(adb_row_erased_mask(&row) == 0x0C)
            #expect(adb_row_check(keyset, storeID, &row, prev, mac, 32) == Int32(ADB_OK))
        }
        let record = ErasureRecord(reason: "TICKET-1", subject: "actor", fields: [], paths: paths, residuals: [hash], seqs: [5])
        #expect(try record.event.details?.jsonText() == vector["erasure_entry_details"] as? String)
    }

    /// Calls `body` with the C row of the vector's columns, `texts` (in the order of `names`) and `seals`.
    func withRow(texts: [[UInt8]?], seals: [UInt8], columns: [String: Any], _ body: (inout adb_row) throws -> Void) throws {
        let pointers: [UnsafeMutablePointer<UInt8>?] = texts.map { bytes in
            guard let bytes else { return nil }
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, bytes.count))
            p.initialize(from: bytes, count: bytes.count)
            return p
        }
        defer { for p in pointers { p?.deallocate() } }
        func field(_ i: Int) -> adb_bytes {
            guard let bytes = texts[i] else { return adb_bytes(ptr: nil, len: -1) }
            return adb_bytes(ptr: pointers[i], len: Int64(bytes.count))
        }
        var row = adb_row()
        row.seq = Int64(try #require(columns["seq"] as? Int))
        row.recorded_at = Int64(try #require(columns["recorded_at"] as? Int))
        row.key_version = 1
        row.format_version = UInt8(try #require(columns["format_version"] as? Int))
        row.tenant = field(0); row.actor = field(1); row.action = field(2); row.resource_type = field(3)
        row.resource_id = field(4); row.correlation_id = field(5); row.source = field(6); row.details = field(7)
        try seals.withUnsafeBufferPointer { s in
            row.seals = s.baseAddress
            row.seals_len = Int64(s.count)
            try body(&row)
        }
    }
}
