import Foundation
import Testing

@testable import AuditDB

/// One value and where it goes: the same rules must hold on every path an event takes in
/// (ISSUE 14, item 3): `auditdb append` flags, `--details`, `--jsonl` lines and the Swift API.
struct InputCase: Sendable, CustomTestStringConvertible {
    enum Kind: Sendable {
        /// The value of a text field: a flag's bytes, a JSON string in a line, a Swift `String`.
        case text(field: String)
        /// `details` JSON text: `--details`, the `details` member of a line, `AuditDetails(json:)`.
        case details
        /// `occurredAt` RFC 3339 text: `--occurred-at`, a JSON string, `AuditTimestamp(iso8601:)`.
        case occurredAt
        /// A raw JSON fragment spliced into a line (members only JSON can express: integer
        /// microseconds, duplicate keys); paths: `--jsonl` and `AuditEvent(jsonLine:)`.
        case lineMembers
    }

    let name: String
    let kind: Kind
    let raw: [UInt8]
    /// nil: every path accepts it; else a text every path's refusal contains.
    let refusal: String?

    init(_ name: String, _ kind: Kind, _ raw: [UInt8], refused refusal: String? = nil) {
        self.name = name
        self.kind = kind
        self.raw = raw
        self.refusal = refusal
    }

    init(_ name: String, _ kind: Kind, _ text: String, refused refusal: String? = nil) {
        self.init(name, kind, Array(text.utf8), refused: refusal)
    }

    var testDescription: String { name }

    var isUTF8: Bool { String(validating: raw, as: UTF8.self) != nil }
}

/// The values of the table.
let inputCases: [InputCase] = [
    InputCase("plain text", .text(field: "actor"), "user:42"),
    InputCase("non-ASCII text", .text(field: "actor"), "Zoë Ångström"),
    InputCase("a line separator is stored (and escaped on output)", .text(field: "resourceId"), "doc\u{2028}7"),
    InputCase("invalid UTF-8", .text(field: "actor"), [0xFF, 0xFE], refused: "invalid UTF-8"),
    InputCase("an overlong slash", .text(field: "tenant"), [0x61, 0xC0, 0xAF], refused: "invalid UTF-8"),
    InputCase("an encoded surrogate (CESU-8)", .text(field: "source"), [0xED, 0xA0, 0x80], refused: "invalid UTF-8"),
    InputCase("a terminal escape", .text(field: "actor"), "x\u{1B}[2J", refused: "contains a control character"),
    InputCase("a C1 control", .text(field: "resourceType"), "x\u{85}", refused: "contains a control character"),
    InputCase("empty text", .text(field: "correlationId"), "", refused: "must not be empty"),
    InputCase("257 bytes of actor", .text(field: "actor"), String(repeating: "a", count: 257), refused: "the limit is 256"),
    InputCase("the reserved action prefix", .text(field: "action"), "auditdb.scan", refused: "reserved for AuditDB"),
    InputCase("the reserved prefix behind a zero-width space", .text(field: "action"), "AuditDB\u{200B}.scan",
              refused: "reserved for AuditDB"),
    InputCase("details: an object", .details, #"{"ip":"10.0.0.8","n":[1,2.5,-0,null,true]}"#),
    InputCase("details: a duplicate key", .details, #"{"a":1,"a":2}"#, refused: #"duplicate key "a""#),
    InputCase("details: a duplicate key spelled with an escape", .details, #"{"a":1,"\u0061":2}"#, refused: #"duplicate key "a""#),
    InputCase("details: a byte order mark", .details, [0xEF, 0xBB, 0xBF] + Array(#"{"a":1}"#.utf8), refused: "byte order mark"),
    InputCase("details: a lone surrogate", .details, #"{"a":"\ud800"}"#, refused: "lone surrogate \\uD800"),
    InputCase("details: \\u0000 in a string", .details, #"{"a":"x\u0000y"}"#, refused: "holds the escape of U+0000 (NUL) at byte "),
    InputCase("details: \\u0000 in a key, nested", .details, #"{"a":{"\u0000":1}}"#, refused: "holds the escape of U+0000 (NUL) at byte "),
    InputCase("details: an escaped backslash before u0000 is text", .details, #"{"a":"\\u0000"}"#),
    InputCase("details: \\u0001 (a control character in a string) is allowed", .details, #"{"a":"\u0001"}"#),
    InputCase("details: invalid UTF-8", .details, Array(#"{"a":""#.utf8) + [0xFF] + Array(#""}"#.utf8), refused: "invalid UTF-8"),
    InputCase("details: 1e999", .details, #"{"a":1e999}"#, refused: "number outside the range of a 64-bit float"),
    InputCase("details: an integer beyond 64 bits", .details, #"{"a":99999999999999999999}"#, refused: "integer outside"),
    InputCase("details: NaN", .details, #"{"a":NaN}"#, refused: "expected a value"),
    InputCase("details: 32 levels", .details, String(repeating: #"{"a":"#, count: 32) + "1" + String(repeating: "}", count: 32)),
    InputCase("details: 33 levels", .details, String(repeating: #"{"a":"#, count: 33) + "1" + String(repeating: "}", count: 33),
              refused: "nested deeper than 32 levels"),
    InputCase("details: an array", .details, "[1]", refused: "JSON object"),
    InputCase("details: 65,537 bytes", .details, #"{"a":""# + String(repeating: "x", count: 65_537 - 8) + #""}"#,
              refused: "the limit is 65536"),
    InputCase("occurredAt: microseconds", .occurredAt, "2026-11-23T13:15:02.123456Z"),
    InputCase("occurredAt: an offset", .occurredAt, "2026-11-23T13:15:02+14:00"),
    InputCase("occurredAt: 7 fractional digits", .occurredAt, "2026-11-23T13:15:02.1234567Z", refused: "has 7 fractional digits"),
    InputCase("occurredAt: 9 fractional digits", .occurredAt, "2026-11-23T13:15:02.123456789Z", refused: "has 9 fractional digits"),
    InputCase("occurredAt: month 13", .occurredAt, "2026-13-01T00:00:00Z", refused: "is not RFC 3339"),
    InputCase("occurredAt: a leap second", .occurredAt, "2016-12-31T23:59:60Z", refused: "is a leap second (:60), which a count of microseconds"),
    InputCase("occurredAt: second 61", .occurredAt, "2016-12-31T23:59:61Z", refused: "is not RFC 3339"),
    InputCase("occurredAt: year 0000", .occurredAt, "0000-12-31T23:59:59Z", refused: "lies outside"),
    InputCase("occurredAt: integer microseconds", .lineMembers, #""occurredAt":1700000000000000"#),
    InputCase("occurredAt: 1.7e15 is not an integer", .lineMembers, #""occurredAt":1.7e15"#, refused: "integer microseconds"),
    InputCase("occurredAt: 1700000000000000.0 is not an integer", .lineMembers, #""occurredAt":1700000000000000.0"#,
              refused: "integer microseconds"),
    InputCase("occurredAt: true is not an integer", .lineMembers, #""occurredAt":true"#, refused: "integer microseconds"),
    InputCase("occurredAt: -0 is not an integer", .lineMembers, #""occurredAt":-0"#, refused: "integer microseconds"),
    InputCase("a key given twice", .lineMembers, #""tenant":"evil","tenant":"acme""#, refused: #"duplicate key "tenant""#),
]

/// Every value of ``inputCases`` through every path: the CLI's flags (bytes passed as they are,
/// not through Swift strings), `--details`, `--jsonl`, and the Swift API. Each path must accept
/// exactly the values the others accept, and refuse the others for the same reason.
@Suite("Input rules: the same on every path")
struct InputRulesTests {
    let dir: TempDir
    let store: String
    let keyFile: String

    init() throws {
        dir = try TempDir()
        store = dir.path("s.db")
        keyFile = dir.path("k.keys")
    }

    func setUp() async throws {
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: store, keys: keys, count: 0)
    }

    var environment: [String: String] {
        var environment = inheritedEnvironment
        for name in ["AUDITDB_STORE", "AUDITDB_KEY_FILE", "AUDITDB_KEYS", "AUDITDB_STORE_ID"] { environment.removeValue(forKey: name) }
        return environment
    }

    /// `auditdb append` with `arguments`, where "$v" stands for the case's raw bytes: they reach
    /// argv through the shell unchanged (Foundation's Process would have to make them a String).
    func appendWithFlags(_ arguments: [String], value: [UInt8]) throws -> ProcessResult {
        let valueFile = dir.path("value")
        try Data(value).write(to: URL(fileURLWithPath: valueFile))
        let script = #"v="$(cat "$3"; printf x)"; v="${v%x}"; exec "$0" append --store "$1" --key-file "$2" "#
            + arguments.joined(separator: " ")
        return try run("/bin/sh", ["-c", script, try cliPath(), store, keyFile, valueFile], environment: environment)
    }

    func appendLine(_ line: [UInt8]) throws -> ProcessResult {
        try run(try cliPath(), ["append", "--jsonl", "--store", store, "--key-file", keyFile],
                stdinBytes: Data(line + [0x0A]), environment: environment)
    }

    /// The event line for a case.
    func line(_ c: InputCase) -> [UInt8] {
        func quoted(_ raw: [UInt8]) -> [UInt8] {
            // Valid text as a JSON string; invalid UTF-8 as raw bytes inside the quotes.
            if let text = String(validating: raw, as: UTF8.self) { return Array(OutputEscaping.jsonQuoted(text).utf8) }
            return [0x22] + raw + [0x22]
        }
        switch c.kind {
        case .text(let field):
            let base: [(String, [UInt8])] = [("actor", Array(#""a""#.utf8)), ("action", Array(#""x""#.utf8))]
            let members = base.filter { $0.0 != field } + [(field, quoted(c.raw))]
            return Array("{".utf8) + members.map { Array("\"\($0.0)\":".utf8) + $0.1 }.joined(separator: Array(",".utf8)) + Array("}".utf8)
        case .details:
            return Array(#"{"actor":"a","action":"x","details":"#.utf8) + c.raw + Array("}".utf8)
        case .occurredAt:
            return Array(#"{"actor":"a","action":"x","occurredAt":"#.utf8) + quoted(c.raw) + Array("}".utf8)
        case .lineMembers:
            return Array(#"{"actor":"a","action":"x","#.utf8) + c.raw + Array("}".utf8)
        }
    }

    /// The flags for a case, or nil where flags cannot express it.
    func flags(_ c: InputCase) -> [String]? {
        switch c.kind {
        case .text(let field):
            let option = "--" + field.replacingOccurrences(of: "([A-Z])", with: "-$1", options: .regularExpression).lowercased()
            let base = field == "actor" ? ["--action", "x"] : field == "action" ? ["--actor", "a"] : ["--actor", "a", "--action", "x"]
            return base + [option, "\"$v\""]
        case .details: return ["--actor", "a", "--action", "x", "--details", "\"$v\""]
        case .occurredAt: return ["--actor", "a", "--action", "x", "--occurred-at", "\"$v\""]
        case .lineMembers: return nil
        }
    }

    /// The Swift API: the event built from Swift values where the bytes are text, else from the
    /// line's bytes (`AuditEvent(jsonLine:)` is the API for bytes), checked as `append` checks it.
    func api(_ c: InputCase) -> AuditError? {
        do throws(AuditError) {
            var event: AuditEvent
            switch (c.kind, String(validating: c.raw, as: UTF8.self)) {
            case (.text(let field), let text?):
                event = AuditEvent(actor: "a", action: "x")
                switch field {
                case "actor": event.actor = text
                case "action": event.action = text
                case "tenant": event.tenant = text
                case "resourceType": event.resourceType = text
                case "resourceId": event.resourceId = text
                case "correlationId": event.correlationId = text
                default: event.source = text
                }
            case (.details, let text?):
                event = AuditEvent(actor: "a", action: "x", details: AuditDetails(json: text))
            case (.occurredAt, let text?):
                switch AuditTimestamp.parse(text) {
                case .success(let t): event = AuditEvent(actor: "a", action: "x", occurredAt: t)
                case .failure(let why): throw AuditError(.invalidInput, why.description, field: "occurredAt")
                }
            default:
                event = try AuditEvent(jsonLine: line(c))
            }
            try AuditStore.validate(event)
            return nil
        } catch {
            return error
        }
    }

    @Test("every value is accepted or refused, for the same reason, by flags, --details, --jsonl and the Swift API",
          arguments: inputCases)
    func samePaths(_ c: InputCase) async throws {
        try await setUp()
        var outcomes: [(path: String, refused: Bool, message: String)] = []
        if let flags = flags(c) {
            let result = try appendWithFlags(flags, value: c.raw)
            outcomes.append(("flags", result.status != 0, result.stderr))
            #expect(result.status == (c.refusal == nil ? 0 : 2), "flags: \(result.stderr)")
        }
        let jsonl = try appendLine(line(c))
        outcomes.append(("--jsonl", jsonl.status != 0, jsonl.stderr))
        #expect(jsonl.status == (c.refusal == nil ? 0 : 2), "--jsonl: \(jsonl.stderr)")
        let error = api(c)
        outcomes.append(("Swift API", error != nil, error?.message ?? ""))
        #expect(error == nil || error?.code == .invalidInput)
        for outcome in outcomes {
            #expect(outcome.refused == (c.refusal != nil), "\(outcome.path): \(outcome.message)")
            if let refusal = c.refusal {
                // The CLI prints messages escaped for one line (control characters; a backslash stays one).
                let shown = outcome.path == "Swift API" ? refusal : OutputEscaping.escapeForMessage(refusal)
                #expect(outcome.message.contains(shown), "\(outcome.path) refuses for another reason: \(outcome.message)")
            }
        }
        // Nothing refused was written; everything accepted was, once per accepting CLI path.
        let store = try await AuditStore.open(at: store, keys: try KeyFile(path: keyFile).load())
        let written = try await store.lastSeq()
        try await store.close()
        #expect(written == (c.refusal == nil ? Int64(outcomes.count - 1) : 0))
    }

    @Test("details with white space around the object: --details, a --jsonl line and the Swift API store the same bytes, the object's")
    func detailsWhiteSpace() async throws {
        try await setUp()
        let flags = try appendWithFlags(["--actor", "a", "--action", "x", "--details", "\"$v\""], value: Array(" \t{\"a\": 1}\r\n\t ".utf8))
        #expect(flags.status == 0, "\(flags.stderr)")
        let jsonl = try appendLine(Array("{\"actor\":\"a\",\"action\":\"x\",\"details\": \t{\"a\": 1} \t}".utf8))
        #expect(jsonl.status == 0, "\(jsonl.stderr)")
        let store = try await AuditStore.open(at: store, keys: try KeyFile(path: keyFile).load())
        try await store.append(AuditEvent(actor: "a", action: "x", details: AuditDetails(json: "\n {\"a\": 1}\n")))
        let stored = try await store.entries().map(\.detailsJSON)
        try await store.close()
        #expect(stored == Array(repeating: "{\"a\": 1}", count: 3))
    }

    @Test("an error inside details counts its byte from the text the path reads: details itself for --details and the Swift API, the line for --jsonl, whatever the error")
    func detailsOffsets() async throws {
        try await setUp()
        let prefix = #"{"actor":"a","action":"x","details":"#  // 36 bytes
        for (details, at) in [(#"{"a":"x\u0000y"}"#, 7), (#"{"a":1,"a":2}"#, 7)] {
            let flags = try appendWithFlags(["--actor", "a", "--action", "x", "--details", "\"$v\""], value: Array(details.utf8))
            #expect(flags.stderr.contains(" at byte \(at)"), "\(flags.stderr)")
            let jsonl = try appendLine(Array((prefix + details + "}").utf8))
            #expect(jsonl.stderr.contains(" at byte \(36 + at)"), "\(jsonl.stderr)")
        }
    }
}
