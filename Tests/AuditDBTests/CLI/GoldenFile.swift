import Foundation
import Testing

// Golden files: the whole output of one `auditdb` run (exit status, stdout, stderr), kept as a
// text file under CLI/Golden/ (one per case) and compared byte for byte after a few documented
// normalisations (`GoldenNormalizer`). A missing file is written from the run and the test
// fails, so CI never passes on one; `AUDITDB_UPDATE_GOLDEN=1 swift test --disable-xctest --filter
// GoldenOutput` rewrites every file that differs. Read what it wrote before you commit it: a golden file that
// captures a wrong output makes the wrong output the expected one.
//
// The files are found through `#filePath` (the source checkout the tests were built from), so
// that an update writes them where they are committed; Package.swift excludes the folder from the
// target's sources.

/// One run of the binary, rendered as a golden file holds it:
///
///     $ [NAME=VALUE ...] auditdb ARGUMENT ...
///     --- stdin ---               (only when the case gives standard input)
///     ...
///     --- exit status: N ---
///     --- stdout ---
///     ...
///     --- stderr ---
///     ...
///     --- end ---
///
/// A section whose text does not end in a newline gets one, followed by the line
/// `\ no newline at end`, so that a missing or added final newline is a difference too.
struct GoldenRun {
    var arguments: [String]
    var environment: [(name: String, value: String)] = []
    var stdin: String?
    var result: ProcessResult
    /// The executable's name, as the golden file shows it.
    var program = "auditdb"

    var rendered: String {
        let command = (environment.map { "\($0.name)=\(Self.shellQuoted($0.value))" } + [program]
            + arguments.map(Self.shellQuoted)).joined(separator: " ")
        var text = "$ \(command)\n"
        if let stdin { text += "--- stdin ---\n" + Self.section(stdin) }
        text += "--- exit status: \(result.status) ---\n"
        text += "--- stdout ---\n" + Self.section(result.stdout)
        text += "--- stderr ---\n" + Self.section(result.stderr)
        return text + "--- end ---\n"
    }

    static func section(_ text: String) -> String {
        text.isEmpty || text.hasSuffix("\n") ? text : text + "\n\\ no newline at end\n"
    }

    /// An argument as a POSIX shell would need it; for reading only, the test passes it as is.
    static func shellQuoted(_ argument: String) -> String {
        let plain = argument.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_./=:,@%+<>".unicodeScalars.contains($0)
        }
        if plain && !argument.isEmpty { return argument }
        return "'" + argument.replacingOccurrences(of: "'", with: #"'\''"#) + "'"
    }
}

/// Replaces what differs between two runs of the same case, and nothing else. Applied to the
/// output and to the golden file alike (it leaves its own placeholders alone):
///
/// 1. Literal values the case registered: its temporary directory → `<TMP>`, the id of each
///    store it made → `<STORE-ID>` (`<OTHER-STORE-ID>`, ...). Literal, so that a store id that is
///    printed for the wrong store still shows.
/// 2. An RFC 3339 time inside the run (from a minute before the case began to a minute after
///    the comparison) → `<NOW>`: the times a store records. Fixed times (the events' own
///    `occurredAt`, the fixtures') are kept.
/// 3. Such a time in a file name, its colons dropped (`<store>.backup-2026-12-02T011451.123456Z`)
///    → `<NOW>`.
/// 4. Durations and ages: the number after `"durationSeconds":`, `"durationMicros":`,
///    `"seconds":`, `"secondsSinceLastPass":`, `"secondsSinceLastFullPass":`, and in `(Ns ago)`
///    → `<DURATION>`.
/// 5. 64 hex digits (MACs, chain heads, Merkle roots, digests) → `<HEX64>`.
/// 6. A rate: the number in `N rows/s` (the adoption progress bar) → `<RATE>`.
struct GoldenNormalizer: Sendable {
    var literals: [(value: String, placeholder: String)]
    var runStarted: Date

    func normalize(_ text: String) -> String {
        var text = text
        // Longest first, so that a value that contains another is replaced whole.
        for (value, placeholder) in literals.sorted(by: { $0.value.count > $1.value.count }) where !value.isEmpty {
            text = text.replacingOccurrences(of: value, with: placeholder)
        }
        let window = runStarted.addingTimeInterval(-60)...Date().addingTimeInterval(60)
        let time = #/(\d{4})-(\d{2})-(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(\.\d{1,6})?Z/#
        text = text.replacing(time) { match in
            let (_, y, mo, d, h, mi, s, fraction) = match.output
            let parsed = Self.utc(year: Int(y)!, month: Int(mo)!, day: Int(d)!, hour: Int(h)!, minute: Int(mi)!,
                                  second: Int(s)!, fraction: fraction.map { Double("0" + $0)! } ?? 0)
            return parsed.map(window.contains) == true ? "<NOW>" : String(match.output.0)
        }
        let duration = #/("(?:durationSeconds|durationMicros|seconds|secondsSinceLastPass|secondsSinceLastFullPass)":)[0-9][0-9.e+-]*/#
        text = text.replacing(duration) { "\($0.output.1)<DURATION>" }
        text = text.replacing(#/\(\d+s ago\)/#, with: "(<DURATION> ago)")
        // Each match is a whole run of hex digits (leftmost, greedy): only runs of exactly 64.
        text = text.replacing(#/[0-9a-f]{64,}/#) { $0.output.count == 64 ? "<HEX64>" : String($0.output) }
        text = text.replacing(#/\d+ rows/s/#, with: "<RATE> rows/s")
        return text
    }

    static func utc(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, fraction: Double) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let components = DateComponents(year: year, month: month, day: day, hour: hour, minute: minute, second: second)
        return calendar.date(from: components).map { $0.addingTimeInterval(fraction) }
    }
}

/// The folder of golden files, in the source checkout.
let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

/// Compares `text` (normalised) with golden file `name`.txt and records an issue for what
/// `goldenMismatch` finds.
func expectGolden(_ name: String, _ text: String, normalizer: GoldenNormalizer,
                  sourceLocation: SourceLocation = #_sourceLocation) throws {
    if let mismatch = try goldenMismatch(name, text, normalizer: normalizer) {
        Issue.record(Comment(rawValue: mismatch), sourceLocation: sourceLocation)
    }
}

/// Why `text` (normalised) does not pass against golden file `name`.txt in `directory`, or nil
/// if it does. A missing file is written from `text` and does not pass, also when updating. A
/// file that differs does not pass (the reason holds a unified diff) unless `updating`
/// (`AUDITDB_UPDATE_GOLDEN=1`): then it is rewritten from `text`.
func goldenMismatch(_ name: String, _ text: String, normalizer: GoldenNormalizer, directory: URL = goldenDirectory,
                    updating: Bool = inheritedEnvironment["AUDITDB_UPDATE_GOLDEN"] == "1") throws -> String? {
    let url = directory.appendingPathComponent(name + ".txt")
    let actual = normalizer.normalize(text)
    guard FileManager.default.fileExists(atPath: url.path) else {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(actual.utf8).write(to: url)
        return "golden file \(name).txt was missing; written from this run: read it, check the output is right, commit it"
    }
    let expected = normalizer.normalize(try String(contentsOf: url, encoding: .utf8))
    guard expected != actual else { return nil }
    if updating {
        try Data(actual.utf8).write(to: url)
        return nil
    }
    return """
        output differs from golden file CLI/Golden/\(name).txt (rewrite it with AUDITDB_UPDATE_GOLDEN=1, then read the diff):
        \(unifiedDiff(expected: expected, actual: actual, expectedName: "golden/\(name).txt", actualName: "actual"))
        """
}

/// A unified-style line diff: `-` lines only in `expected`, `+` lines only in `actual`, each
/// change with up to `context` unchanged lines around it, under `@@ -line,count +line,count @@`.
func unifiedDiff(expected: String, actual: String, expectedName: String, actualName: String, context: Int = 3) -> String {
    // Lines as terminated by "\n"; a final line without one is a line of its own.
    func splitLines(_ text: String) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if text.hasSuffix("\n") { lines.removeLast() }
        return lines
    }
    let a = splitLines(expected), b = splitLines(actual)
    // common[i][j]: the length of the longest common subsequence of a[i...] and b[j...].
    var common = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in a.indices.reversed() {
        for j in b.indices.reversed() {
            common[i][j] = a[i] == b[j] ? common[i + 1][j + 1] + 1 : max(common[i + 1][j], common[i][j + 1])
        }
    }
    // The edit script: each line with its mark and its line numbers (0-based) in a and b.
    var script: [(mark: Character, line: String, i: Int, j: Int)] = []
    var i = 0, j = 0
    while i < a.count || j < b.count {
        if i < a.count, j < b.count, a[i] == b[j] {
            script.append((" ", a[i], i, j)); i += 1; j += 1
        } else if i < a.count, j == b.count || common[i + 1][j] >= common[i][j + 1] {
            script.append(("-", a[i], i, j)); i += 1
        } else {
            script.append(("+", b[j], i, j)); j += 1
        }
    }
    let changed = script.indices.filter { script[$0].mark != " " }
    var lines = ["--- \(expectedName)", "+++ \(actualName)"]
    var next = 0
    while next < changed.count {
        var last = next
        while last + 1 < changed.count, changed[last + 1] - changed[last] <= 2 * context + 1 { last += 1 }
        let hunk = script[max(0, changed[next] - context)...min(script.count - 1, changed[last] + context)]
        let oldCount = hunk.filter { $0.mark != "+" }.count, newCount = hunk.filter { $0.mark != "-" }.count
        lines.append("@@ -\(hunk.first!.i + 1),\(oldCount) +\(hunk.first!.j + 1),\(newCount) @@")
        lines += hunk.map { "\($0.mark)\($0.line)" }
        next = last + 1
    }
    return lines.joined(separator: "\n")
}
