import Foundation
import GRDB
import Testing

@_spi(Testing) @testable import AuditDB

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

    @Test("legacy-table import: hostile values of every SQLite type in every mapped column")
    func legacyImport() async throws {
        let rows = max(200, Self.iterations / 20)
        var random = SeededRandom(seed: Self.seed &+ 7)
        let dir = try TempDir()
        let legacy = dir.path("legacy.db")
        try sqlite3Must(legacy, "CREATE TABLE events(id, ts, user, act, tenant, outcome, severity, details);")
        let queue = try DatabaseQueue(path: legacy)
        let nested = String(repeating: "[", count: 5_000) + String(repeating: "]", count: 5_000)
        let texts: [String] = [
            "", "alice", "\u{1B}[2J\u{1B}]0;owned\u{07}", "a\nb\r\nc", "\u{202E}evil", "\u{0085}nel", "x\u{0}y",
            String(repeating: "z", count: 70_000), "2026-11-23T10:00:00Z", "2026-11-23 10:00:00.123", "2026-13-45T99:99:99Z",
            "-0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "{}", "{\"a\":1}", "{\"a\":", "[1,2]", nested,
            "{\"a\":1e999}", "success", "denied", "critical", "SUCCESS", "1", "-1", "NaN",
        ]
        let values: [any DatabaseValueConvertible] = texts + [
            Int64.max, Int64.min, 0, 1, -1, 1_700_000_000, 1_700_000_000_000, Double.infinity, -0.0, 1e308, 3.5,
            Data([0xFF, 0xFE, 0x00]), Data("alice".utf8), Data(),
        ]
        func pick() -> DatabaseValue {
            switch Int.random(in: 0..<10, using: &random) {
            case 0: return .null
            case 1: return Data([0xC3, 0x28, 0xED, 0xA0, 0x80]).databaseValue  // invalid UTF-8, as a BLOB
            default: return values.randomElement(using: &random)!.databaseValue
            }
        }
        var table: [[DatabaseValue]] = []
        for id in 1...rows {
            // Mostly unique integer ids; a few NULL, text or duplicate ids.
            let idValue: DatabaseValue = switch id % 97 {
            case 0: .null
            case 1: "id-\(id)".databaseValue
            case 2: Int64(id - 1).databaseValue
            default: Int64(id).databaseValue
            }
            if id % 3 == 0 {
                table.append([idValue] + (0..<7).map { _ in pick() })
            } else {
                // A valid row with one hostile column.
                var row: [DatabaseValue] = [idValue, "2026-11-23T10:00:00Z".databaseValue, "alice".databaseValue,
                                            "login".databaseValue, "acme".databaseValue, "success".databaseValue,
                                            "info".databaseValue, "{}".databaseValue]
                row[Int.random(in: 1...7, using: &random)] = pick()
                table.append(row)
            }
        }
        let generated = table
        try await queue.write { db in
            for row in generated {
                try db.execute(sql: "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", arguments: StatementArguments(row))
            }
            // Text that is not valid UTF-8 (a BLOB cast to TEXT keeps its bytes).
            try db.execute(sql: "INSERT INTO events VALUES (\(rows + 1), NULL, CAST(X'C328' AS TEXT), 'x', NULL, NULL, NULL, NULL)")
        }
        try queue.close()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        var adoption = LegacyAdoption(sourcePath: legacy, table: "events", mapping: [
            .occurredAt: "ts", .actor: "user", .action: "act", .tenant: "tenant", .outcome: "outcome",
            .severity: "severity", .details: "details",
        ])
        adoption.idColumn = "id"
        // Without --skip-invalid: refused with the problems listed, nothing imported.
        do {
            _ = try await store.adopt(adoption)
            Issue.record("hostile rows were adopted without skipInvalid")
        } catch let error as AuditError {
            #expect(error.code == .invalidInput)
            #expect(error.message.contains("row "))
        }
        #expect(try await store.lastSeq() == 0)
        // With it: every row is adopted or skipped, and everything adopted verifies.
        adoption.skipInvalid = true
        let report = try await store.adopt(adoption)
        #expect(report.imported == report.total)
        #expect(report.imported + report.skippedCount == rows + 1)  // every source row accounted for
        #expect(report.imported > 0 && report.skippedCount > 0)
        #expect(report.skipped.count == min(report.skippedCount, 1_000))
        let verification = try await store.verify()
        #expect(verification.isIntact && verification.rowsChecked == report.imported + 1)
        try await store.close()
    }

    @Test("export bundles of both formats: mutated checkpoint, manifest, statement, entries (and multiproof) never pass as valid, never crash",
          arguments: ExportBundle.Format.allCases)
    func exportBundles(format: ExportBundle.Format) async throws {
        let iterations = max(300, Self.iterations / 20)
        var random = SeededRandom(seed: Self.seed &+ 11)
        let dir = try TempDir()
        let signer = try testSigner()
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        try await store.append(contentsOf: (1...12).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        var filter = ExportFilter()
        filter.tenant = "tenant-1"
        _ = try await ExportBundle.formatWritten.withValue(format) {
            try await store.export(to: dir.path("good"), filter: filter, redact: [.actor], signer: signer)
        }
        try await store.close()
        let files = ["checkpoint.json", "manifest.json", "entries.jsonl", "statement.json"] + (format == .v2 ? ["multiproof.bin"] : [])
        var originals: [String: [UInt8]] = [:]
        for file in files { originals[file] = Array(try Data(contentsOf: URL(fileURLWithPath: dir.path("good") + "/" + file))) }
        #expect(try await ExportBundle.verify(at: dir.path("good"), publicKeys: signer.publicKeys).isValid)
        let bundle = dir.path("fuzzed")
        try FileManager.default.copyItem(atPath: dir.path("good"), toPath: bundle)
        var rejected = 0
        for _ in 0..<iterations {
            let file = files.randomElement(using: &random)!
            let mutated = Self.mutate(originals[file]!, &random)
            try Data(mutated).write(to: URL(fileURLWithPath: bundle + "/" + file))
            do {
                let result = try await ExportBundle.verify(at: bundle, publicKeys: signer.publicKeys)
                if result.isValid {
                    // Only a change that leaves every proven value as it was may pass: JSON
                    // whitespace, or the leafHash, which is recomputed. Compare what was proven.
                    #expect(Self.provenContent(file, mutated) == Self.provenContent(file, originals[file]!),
                            "a mutation of \(file) that changes proven content was accepted")
                } else {
                    rejected += 1
                    #expect(result.findings.allSatisfy { !$0.message.isEmpty })
                }
            } catch {
                #expect(!error.message.isEmpty)
                rejected += 1
            }
            try Data(originals[file]!).write(to: URL(fileURLWithPath: bundle + "/" + file))
        }
        #expect(rejected > iterations / 2)
    }

    @Test("the hostile table, mutated: the strict JSON reader and every signed or bundle file parser")
    func hostileTableMutated() throws {
        let table = try JSONSerialization.jsonObject(
            with: Data(contentsOf: repositoryRoot.appendingPathComponent("docs/test-vectors/hostile.json"))) as? [String: Any]
        let documents = (table?["json"] as? [[String: Any]] ?? []).compactMap { ($0["input_hex"] as? String).flatMap(Hex.decode) }
        let files = (table?["bundles"] as? [[String: Any]] ?? []).compactMap { vector -> (String, [UInt8])? in
            guard let file = vector["file"] as? String, let hex = vector["content_hex"] as? String, let bytes = Hex.decode(hex) else { return nil }
            return (file, bytes)
        }
        #expect(documents.count >= 50 && files.count >= 20, "the hostile table was read (\(documents.count) documents, \(files.count) files)")
        let seeds = documents.map { ("json", $0) } + files
        let checkpoint = try Checkpoint(json: Data(contentsOf: repositoryRoot.appendingPathComponent("docs/test-vectors/bundle/checkpoint.json")))
        var random = SeededRandom(seed: Self.seed &+ 23)
        var accepted = 0, refused = 0
        for _ in 0..<max(2_000, Self.iterations / 4) {
            let (file, seed) = seeds.randomElement(using: &random)!
            let input = Self.mutate(seed, &random)
            // Every input through the reader: accepted ones are UTF-8 without a BOM, refusals say why.
            do {
                _ = try JSONReader.readObject(input, limits: .signedDocument)
                accepted += 1
                #expect(String(validating: input, as: UTF8.self) != nil, "accepted invalid UTF-8")
                #expect(!input.starts(with: [0xEF, 0xBB, 0xBF]), "accepted a BOM")
            } catch {
                refused += 1
                #expect(!error.description.isEmpty)
            }
            // And through the parser of the file it came from.
            switch file {
            case "checkpoint.json":
                do { _ = try Checkpoint(json: Data(input)) } catch { #expect(error.code == .invalidInput && !error.message.isEmpty) }
            case "statement.json":
                do { _ = try ExportStatement(json: Data(input)) } catch { #expect(error.code == .invalidInput && !error.message.isEmpty) }
            case "manifest.json":
                if case .failure(let problem) = ExportBundle.Manifest.read(input, checkpoint: checkpoint) { #expect(!problem.message.isEmpty) }
            case "entries.jsonl":
                for line in input.split(separator: 0x0A, omittingEmptySubsequences: true).prefix(8) {
                    if line.first == UInt8(ascii: "[") {  // a v2 entry line (FORMAT.md 17.5)
                        switch ExportBundle.parseLine(line, format: .v2) {
                        case .failure(let error): #expect(!error.description.isEmpty)
                        case .success(.v2(let elements)):
                            if case .failure(let problem) = ExportBundle.checkV2(entry: elements, seq: 1, checkpoint: checkpoint) {
                                #expect(!problem.message.isEmpty)
                            }
                        case .success(.v1): Issue.record("a v2 line read as v1")
                        }
                        continue
                    }
                    do {
                        let entry = try JSONReader.readObject(Array(line), limits: .bundleEntry)
                        if let finding = ExportBundle.check(entry: entry.members, seq: 1, checkpoint: checkpoint) {
                            #expect(!finding.message.isEmpty)
                        }
                    } catch {
                        #expect(!error.description.isEmpty)
                    }
                }
            default:
                break
            }
        }
        #expect(accepted > 0 && refused > 0, "the mutations reach both verdicts (\(accepted) accepted, \(refused) refused)")
    }

    /// The parts of a bundle file that verification proves, as canonical JSON (nil if unparseable).
    static func provenContent(_ file: String, _ bytes: [UInt8]) -> [String]? {
        if file == "multiproof.bin" { return [Hex.encode(bytes)] }  // binary: only the same bytes prove the same
        func canonical(_ object: Any) -> String? {
            if let array = object as? [Any] {  // a v2 entry (FORMAT.md 17.5): every element is proven
                return (try? JSONSerialization.data(withJSONObject: array, options: [.sortedKeys])).map { String(decoding: $0, as: UTF8.self) }
            }
            guard var dictionary = object as? [String: Any] else { return nil }
            switch file {
            case "entries.jsonl": dictionary["leafHash"] = nil
            case "manifest.json": break  // with a statement, the filter and time are signed too
            default: break
            }
            return (try? JSONSerialization.data(withJSONObject: dictionary, options: [.sortedKeys]))
                .map { String(decoding: $0, as: UTF8.self) }
        }
        let lines = file == "entries.jsonl" ? bytes.split(separator: 0x0A).map(Array.init) : [bytes]
        var out: [String] = []
        for line in lines where !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)), let text = canonical(object) else { return nil }
            out.append(text)
        }
        return out
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
            let outcome = withEnvironmentLock { () -> Result<KeyRing, AuditError> in
                setenv("AUDITDB_FUZZ_KEYS", String(decoding: value, as: UTF8.self), 1)
                defer { unsetenv("AUDITDB_FUZZ_KEYS") }
                do throws(AuditError) {
                    return .success(try EnvironmentKeyProvider(variable: "AUDITDB_FUZZ_KEYS").load())
                } catch {
                    return .failure(error)
                }
            }
            if case .failure(let error) = outcome {
                #expect(error.code == .invalidKeyFile || error.code == .keyUnavailable)
            }
        }
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
