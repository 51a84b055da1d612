import Foundation
import Testing

@testable import AuditDB

/// Seeded mutation fuzzing of the parsers that read outside data: each input is a valid sample
/// with random byte flips, insertions, deletions, duplications or truncations. A parser passes
/// if it returns a value or a typed AuditError — a crash or a hang fails the whole run.
/// More iterations: AUDITDB_FUZZ_ITERATIONS (seed: AUDITDB_FUZZ_SEED).
@Suite("Fuzzing the input parsers")
struct FuzzTests {
    static let iterations = environmentInt("AUDITDB_FUZZ_ITERATIONS", default: 20_000)
    static let seed = UInt64(environmentInt("AUDITDB_FUZZ_SEED", default: 0xF022))

    static func mutate(_ input: [UInt8], _ random: inout SeededRandom) -> [UInt8] {
        var bytes = input
        let specials: [UInt8] = [0x00, 0x22, 0x5C, 0x7B, 0x7D, 0x5B, 0x5D, 0x3A, 0x2C, 0x0A, 0xC3, 0xED, 0xF0, 0xFF, 0x75]
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let at = bytes.isEmpty ? 0 : Int.random(in: 0..<bytes.count, using: &random)
            switch Int.random(in: 0..<6, using: &random) {
            case 0 where !bytes.isEmpty: bytes[at] ^= UInt8.random(in: 1...255, using: &random)
            case 1: bytes.insert(specials.randomElement(using: &random)!, at: at)
            case 2 where !bytes.isEmpty: bytes.remove(at: at)
            case 3 where !bytes.isEmpty: bytes = Array(bytes[..<at])
            case 4 where !bytes.isEmpty:
                let end = min(bytes.count, at + Int.random(in: 1...16, using: &random))
                bytes.insert(contentsOf: bytes[at..<end], at: at)
            default: bytes.insert(UInt8.random(in: 0...255, using: &random), at: at)
            }
        }
        return bytes
    }

    @Test("JSONL event lines and details JSON")
    func jsonLines() {
        var random = SeededRandom(seed: Self.seed)
        let samples = [
            #"{"actor":"u\u00e9","action":"login","tenant":"t","occurredAt":"2026-01-01T00:00:00.5+02:00","details":{"a":[1,2.5e3,{"b":null}],"c":"\ud83d\udd12"}}"#,
            #"{"actor":"a","action":"b","severity":"critical","outcome":"denied","occurredAt":1700000000000000,"resourceId":"r"}"#,
        ].map { Array($0.utf8) }
        var accepted = 0
        for _ in 0..<Self.iterations {
            let input = Self.mutate(samples.randomElement(using: &random)!, &random)
            let line = String(decoding: input, as: UTF8.self)
            do {
                let event = try AuditEvent(jsonLine: line)
                try AuditStore.validate(event)
                accepted += 1
            } catch {
                #expect(!error.message.isEmpty)
            }
            // The details validator on its own, on raw (possibly invalid) text.
            do { try JSONText.validateObject(line) } catch { #expect(error.field == "details") }
        }
        #expect(accepted > 0)  // the mutator does not only produce garbage
    }

    @Test("key file text and AUDITDB_KEYS entries")
    func keyText() {
        var random = SeededRandom(seed: Self.seed &+ 1)
        let sample = Array("""
            # test-only
            auditdb-keys v1
            key 1 active 2026-11-23T13:15:00.000000Z \(String(repeating: "0f", count: 32))
            key 2 compromised - \(String(repeating: "a1", count: 32))

            """.utf8)
        for _ in 0..<Self.iterations {
            let input = Self.mutate(sample, &random)
            do {
                let ring = try input.withUnsafeBytes { try KeyText.parse($0, origin: "fuzz") }
                #expect(!ring.versions.isEmpty)
            } catch let error as AuditError {
                #expect(error.code == .invalidKeyFile || error.code == .keyUnavailable)
            } catch {
                Issue.record("untyped error \(error)")
            }
        }
        let envSample = Array("1:\(String(repeating: "0f", count: 32)):compromised,2:\(String(repeating: "a1", count: 32))".utf8)
        for _ in 0..<Self.iterations / 4 {
            let value = Self.mutate(envSample, &random).filter { $0 != 0 }
            setenv("AUDITDB_FUZZ_KEYS", String(decoding: value, as: UTF8.self), 1)
            do {
                _ = try EnvironmentKeyProvider(variable: "AUDITDB_FUZZ_KEYS").load()
            } catch {
                #expect(error.code == .invalidKeyFile || error.code == .keyUnavailable)
            }
        }
        unsetenv("AUDITDB_FUZZ_KEYS")
    }

    @Test("RFC 3339 timestamps")
    func timestamps() {
        var random = SeededRandom(seed: Self.seed &+ 2)
        let samples = ["2026-11-23T13:15:02.123456Z", "1999-12-31T23:59:59+14:00", "0001-01-01T00:00:00.000000001Z"]
            .map { Array($0.utf8) }
        for _ in 0..<Self.iterations {
            let text = String(decoding: Self.mutate(samples.randomElement(using: &random)!, &random), as: UTF8.self)
            if let parsed = AuditTimestamp(iso8601: text) {
                #expect(parsed.isInSupportedRange)
                #expect(AuditTimestamp(iso8601: parsed.iso8601) == parsed)  // round trip
            }
        }
    }
}
