import Foundation
import Testing

@testable import AuditDB

/// The golden-file comparison itself (GoldenFile.swift): it can fail, it says where, and the
/// normaliser replaces only what varies between runs.
@Suite("Golden output: the comparison")
struct GoldenOutputMachineryTests {
    let dir: TempDir

    init() throws { dir = try TempDir() }

    func normalizer(started: Date = Date()) -> GoldenNormalizer {
        GoldenNormalizer(literals: [(dir.url.path, "<TMP>"), ("0123456789abcdef0123456789abcdef", "<STORE-ID>")],
                         runStarted: started)
    }

    func rendered(status: Int32 = 0, stdout: String, stderr: String = "") -> String {
        GoldenRun(arguments: ["verify", "--store", dir.path("s.db")], result: ProcessResult(status: status, stdout: stdout, stderr: stderr))
            .rendered
    }

    @Test("a run renders with its command, exit status and both streams; a missing final newline is marked")
    func rendering() {
        let run = GoldenRun(arguments: ["append", "--details", #"{"a":"it's"}"#], environment: [("AUDITDB_STORE", "/s.db")],
                            stdin: "line", result: ProcessResult(status: 2, stdout: "", stderr: "oops"))
        #expect(run.rendered == """
            $ AUDITDB_STORE=/s.db auditdb append --details '{"a":"it'\\''s"}'
            --- stdin ---
            line
            \\ no newline at end
            --- exit status: 2 ---
            --- stdout ---
            --- stderr ---
            oops
            \\ no newline at end
            --- end ---

            """)
    }

    @Test("the normaliser replaces the registered values, times of this run, durations and digests, and nothing else")
    func normalising() {
        let now = AuditTimestamp.now().iso8601
        let text = """
            \(dir.path("s.db")) store 0123456789abcdef0123456789abcdef recorded \(now) occurred 2023-11-14T22:13:20.000001Z
            backup \(dir.path("s.db")).backup-\(now.replacingOccurrences(of: ":", with: "")) at 2026-01-01T00:00:00Z
            {"durationSeconds":0.0123,"durationMicros":42,"seconds":1.500,"secondsSinceLastPass":3} (12s ago)
            root \(String(repeating: "ab", count: 32)) short abcdef 63 \(String(repeating: "a", count: 63)) 1500 rows/s
            """
        #expect(normalizer().normalize(text) == """
            <TMP>/s.db store <STORE-ID> recorded <NOW> occurred 2023-11-14T22:13:20.000001Z
            backup <TMP>/s.db.backup-<NOW> at 2026-01-01T00:00:00Z
            {"durationSeconds":<DURATION>,"durationMicros":<DURATION>,"seconds":<DURATION>,"secondsSinceLastPass":<DURATION>} (<DURATION> ago)
            root <HEX64> short abcdef 63 \(String(repeating: "a", count: 63)) <RATE> rows/s
            """)
        // Normalising twice changes nothing: the golden file is normalised too.
        #expect(normalizer().normalize(normalizer().normalize(text)) == normalizer().normalize(text))
    }

    @Test("a difference fails the comparison with a unified diff naming the changed line")
    func differenceFails() throws {
        let golden = dir.url.appendingPathComponent("golden")
        try FileManager.default.createDirectory(at: golden, withIntermediateDirectories: true)
        let stdout = (1...12).map { "line \($0)\n" }.joined()
        try Data(normalizer().normalize(rendered(stdout: stdout)).utf8).write(to: golden.appendingPathComponent("case.txt"))
        func mismatch(_ text: String) throws -> String? {
            try goldenMismatch("case", text, normalizer: normalizer(), directory: golden, updating: false)
        }
        #expect(try mismatch(rendered(stdout: stdout)) == nil)
        let changed = stdout.replacingOccurrences(of: "line 7\n", with: "line seven\n")
        let diff = try #require(try mismatch(rendered(stdout: changed)))
        #expect(diff.hasPrefix("output differs from golden file CLI/Golden/case.txt"))
        #expect(diff.contains("""
            --- golden/case.txt
            +++ actual
            @@ -7,7 +7,7 @@
             line 4
             line 5
             line 6
            -line 7
            +line seven
             line 8
             line 9
             line 10
            """), "\(diff)")
        for different in [rendered(status: 1, stdout: stdout), rendered(stdout: String(stdout.dropLast())),
                          rendered(stdout: stdout, stderr: "warning\n"), rendered(stdout: "", stderr: stdout)] {
            #expect(try mismatch(different) != nil, "\(different)")
        }
    }

    @Test("a missing golden file is written and fails, also when updating; a different one is rewritten when updating")
    func missingAndUpdating() throws {
        let golden = dir.url.appendingPathComponent("golden")
        let file = golden.appendingPathComponent("new.txt")
        let missing = try goldenMismatch("new", rendered(stdout: "one\n"), normalizer: normalizer(), directory: golden, updating: true)
        #expect(missing?.hasPrefix("golden file new.txt was missing; written from this run") == true)
        #expect(try String(contentsOf: file, encoding: .utf8) == normalizer().normalize(rendered(stdout: "one\n")))
        #expect(try goldenMismatch("new", rendered(stdout: "two\n"), normalizer: normalizer(), directory: golden, updating: true) == nil)
        #expect(try String(contentsOf: file, encoding: .utf8).contains("--- stdout ---\ntwo\n--- stderr ---"))
    }

    @Test("every golden file belongs to a case, and no two cases share one")
    func everyFileHasOneCase() throws {
        // The cases name their files with string literals, as in `cli.golden(NAME, ...)` and `cli.expect(NAME, ...)`.
        let sources = goldenDirectory.deletingLastPathComponent()
        var names: [String] = []
        for file in try FileManager.default.contentsOfDirectory(atPath: sources.path)
        where file.hasPrefix("GoldenOutput") && file.hasSuffix(".swift") {
            let text = try String(contentsOf: sources.appendingPathComponent(file), encoding: .utf8)
            names += text.matches(of: #/cli\.(?:golden|expect)\("([^"]+)"/#).map { String($0.output.1) }
        }
        #expect(!names.isEmpty, "no case found: the pattern no longer matches how the cases name their files")
        #expect(Dictionary(grouping: names) { $0 }.filter { $0.value.count > 1 }.keys.sorted() == [],
                "two cases would write the same golden file")
        let files = try FileManager.default.contentsOfDirectory(atPath: goldenDirectory.path)
            .filter { $0.hasSuffix(".txt") }.map { String($0.dropLast(4)) }
        #expect(Set(files).subtracting(names).sorted() == [], "golden files no case compares with: remove them")
    }
}
