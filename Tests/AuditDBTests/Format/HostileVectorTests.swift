import Foundation
import Testing

@testable import AuditDB

/// docs/test-vectors/hostile.json: hostile JSON documents and export bundles with hand-written
/// verdicts, which the independent Python verifier reaches exactly (selftest.py). The engine must
/// reach the same ones: the same error for every document, and the same findings (kind, seq and
/// message) for every bundle.
@Suite("Format: hostile vectors")
struct HostileVectorTests {
    let vectors: [String: Any]

    init() throws {
        let data = try Data(contentsOf: repositoryRoot.appendingPathComponent("docs/test-vectors/hostile.json"))
        vectors = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func bytes(_ hex: Any?) throws -> [UInt8] { try #require((hex as? String).flatMap(Hex.decode)) }

    @Test("every JSON document is accepted or refused exactly as the vectors say")
    func documents() throws {
        let cases = try #require(vectors["json"] as? [[String: Any]])
        #expect(cases.count >= 50)
        for c in cases {
            let name = try #require(c["name"] as? String)
            let l = try #require(c["limits"] as? [String: Any])
            let limits = JSONLimits(maxBytes: try #require(l["max_bytes"] as? Int), maxDepth: try #require(l["max_depth"] as? Int),
                                    maxValues: l["max_values"] as? Int ?? .max)
            let expected = c["error"] as? String
            let input = try bytes(c["input_hex"])
            var got: String?
            do throws(JSONError) {
                _ = try JSONReader.readObject(input, limits: limits)
            } catch {
                got = error.description
            }
            #expect(got == expected, "\(name)")
            // The validating mode (the append path's, which builds no values) reads alike.
            var validated: String?
            do throws(JSONError) {
                try input.withUnsafeBufferPointer { buffer throws(JSONError) in try JSONReader.validateObject(buffer, limits: limits) }
            } catch {
                validated = error.description
            }
            #expect(validated == expected, "\(name) (validating)")
        }
    }

    @Test("every hostile bundle gets exactly the findings the vectors list")
    func bundles() async throws {
        let cases = try #require(vectors["bundles"] as? [[String: Any]])
        #expect(cases.count >= 60)
        let keys = try CheckpointPublicKeys.load(path: repositoryRoot.appendingPathComponent("docs/test-vectors/checkpoint.pub").path)
        let dir = try TempDir()
        for c in cases {
            let name = try #require(c["name"] as? String)
            let bundle = dir.path("bundle")
            if FileManager.default.fileExists(atPath: bundle) { try FileManager.default.removeItem(atPath: bundle) }
            // Each case edits bundle/ (format v1) or, with "base", bundle-v2/ (FORMAT.md 17.5).
            let base = repositoryRoot.appendingPathComponent("docs/test-vectors/" + (c["base"] as? String ?? "bundle")).path
            try FileManager.default.copyItem(atPath: base, toPath: bundle)
            let file = bundle + "/" + (try #require(c["file"] as? String))
            if c["remove"] as? Bool == true {
                try FileManager.default.removeItem(atPath: file)
            } else if let repeated = c["repeat"] as? [String: Any] {
                var data = Data(try bytes(repeated["prefix_hex"]))
                let unit = try bytes(repeated["unit_hex"])
                data.append(contentsOf: [UInt8](repeatElement(unit, count: try #require(repeated["count"] as? Int)).joined()))
                data.append(contentsOf: try bytes(repeated["suffix_hex"]))
                try data.write(to: URL(fileURLWithPath: file))
            } else {
                try Data(try bytes(c["content_hex"])).write(to: URL(fileURLWithPath: file))
            }
            let result = try await ExportBundle.verify(at: bundle, publicKeys: keys,
                                                       requireStatement: try #require(c["require_statement"] as? Bool))
            let expected = try #require(c["findings"] as? [[Any]]).map { f in
                "\(f[0] as? String ?? "?") \((f[1] as? Int).map(String.init) ?? "-"): \(f[2] as? String ?? "?")"
            }
            let got = result.findings.map { "\($0.kind) \($0.seq.map(String.init) ?? "-"): \($0.message)" }
            #expect(got == expected, "\(name)")
            #expect(result.isValid == (c["valid"] as? Bool), "\(name)")
        }
    }
}
