extension AuditEvent {
    /// The JSON member names of an event in JSONL input (the Swift property names).
    package static let jsonFieldNames: Set<String> = [
        "actor", "action", "resourceType", "resourceId", "tenant", "outcome", "severity", "correlationId",
        "source", "occurredAt", "details",
    ]

    /// Decodes one line of JSONL input: a JSON object with the Swift property names as keys.
    ///
    /// `occurredAt` is RFC 3339 text or integer microseconds since the epoch; `details` must be
    /// a JSON object and is stored byte for byte as it appears in the line. Unknown keys are
    /// rejected (a misspelt field must not be silently dropped).
    ///
    /// ```swift
    /// let event = try AuditEvent(jsonLine: #"{"actor":"u1","action":"login","details":{"ip":"10.0.0.8"}}"#)
    /// ```
    /// - Throws: ``AuditError`` `invalidInput` naming the field and the rule.
    ///
    /// `package`, not public: the input format of `auditdb append --jsonl`, not an API for apps.
    package init(jsonLine: String) throws(AuditError) {
        let members = try JSONParser.topLevelMembers(jsonLine)
        var fields: [String: (JSONValue, String)] = [:]
        for (key, value, raw) in members {
            guard Self.jsonFieldNames.contains(key) else {
                throw .invalid(key, "unknown field (expected one of \(Self.jsonFieldNames.sorted().joined(separator: ", ")))")
            }
            guard fields[key] == nil else { throw .invalid(key, "appears twice") }
            fields[key] = (value, raw)
        }
        func string(_ key: String, required: Bool = false) throws(AuditError) -> String? {
            switch fields[key]?.0 {
            case nil, .null?:
                if required { throw .invalid(key, "is required") }
                return nil
            case .string(let s)?: return s
            default: throw .invalid(key, "must be a string")
            }
        }
        let actor = try string("actor", required: true)!
        let action = try string("action", required: true)!
        var outcome = AuditOutcome.success
        if let text = try string("outcome") {
            guard let value = AuditOutcome(rawValue: text) else {
                throw .invalid("outcome", "must be one of \(AuditOutcome.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            outcome = value
        }
        var severity = AuditSeverity.info
        if let text = try string("severity") {
            guard let value = AuditSeverity(rawValue: text) else {
                throw .invalid("severity", "must be one of \(AuditSeverity.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            severity = value
        }
        var occurredAt: AuditTimestamp?
        switch fields["occurredAt"]?.0 {
        case nil, .null?: break
        case .string(let text)?:
            guard let t = AuditTimestamp(iso8601: text) else {
                throw .invalid("occurredAt", "must be RFC 3339 time such as 2026-11-23T13:15:00Z, between years 0001 and 9999")
            }
            occurredAt = t
        case .int(let micros)?: occurredAt = AuditTimestamp(microsecondsSinceEpoch: micros)
        default: throw .invalid("occurredAt", "must be RFC 3339 text or integer microseconds since the epoch")
        }
        var details: AuditDetails?
        switch fields["details"] {
        case nil, (.null, _)?: break
        case (.object, let raw)?: details = AuditDetails(json: raw)
        default: throw .invalid("details", "must be a JSON object")
        }
        self.init(
            actor: actor, action: action, resourceType: try string("resourceType"), resourceId: try string("resourceId"),
            tenant: try string("tenant"), outcome: outcome, severity: severity, correlationId: try string("correlationId"),
            source: try string("source"), occurredAt: occurredAt, details: details)
    }
}

/// A strict RFC 8259 parser for small inputs (JSONL lines), keeping the raw text of each
/// top-level member so that `details` can be stored exactly as given.
enum JSONParser {
    static func topLevelMembers(_ text: String) throws(AuditError) -> [(String, JSONValue, String)] {
        var copy = text
        let result: Result<[(String, JSONValue, String)], AuditError> = copy.withUTF8 { bytes in
            var parser = Parser(bytes: bytes)
            do throws(AuditError) {
                return .success(try parser.topLevel())
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0
        var depth = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        func fail(_ why: String) -> AuditError { .invalid("line", "invalid JSON at byte \(i): \(why)") }

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
        }

        mutating func expect(_ c: UInt8) throws(AuditError) {
            skipSpace()
            guard i < bytes.count, bytes[i] == c else { throw fail("expected '\(Character(UnicodeScalar(c)))'") }
            i += 1
        }

        mutating func topLevel() throws(AuditError) -> [(String, JSONValue, String)] {
            try expect(UInt8(ascii: "{"))
            var members: [(String, JSONValue, String)] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
                i += 1
            } else {
                while true {
                    skipSpace()
                    let key = try string()
                    try expect(UInt8(ascii: ":"))
                    skipSpace()
                    let start = i
                    let value = try value()
                    members.append((key, value, String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)))
                    skipSpace()
                    guard i < bytes.count else { throw fail("unexpected end of line") }
                    if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                    guard bytes[i] == UInt8(ascii: "}") else { throw fail("expected ',' or '}'") }
                    i += 1
                    break
                }
            }
            skipSpace()
            guard i == bytes.count else { throw fail("unexpected text after the object") }
            return members
        }

        mutating func value() throws(AuditError) -> JSONValue {
            skipSpace()
            guard i < bytes.count else { throw fail("unexpected end of line") }
            switch bytes[i] {
            case UInt8(ascii: "{"):
                depth += 1
                guard depth <= FieldLimits.detailsDepth else { throw fail("nested deeper than \(FieldLimits.detailsDepth) levels") }
                i += 1
                var object: [String: JSONValue] = [:]
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "}") {
                    i += 1
                } else {
                    while true {
                        skipSpace()
                        let key = try string()
                        try expect(UInt8(ascii: ":"))
                        object[key] = try value()
                        skipSpace()
                        guard i < bytes.count else { throw fail("unexpected end of line") }
                        if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                        guard bytes[i] == UInt8(ascii: "}") else { throw fail("expected ',' or '}'") }
                        i += 1
                        break
                    }
                }
                depth -= 1
                return .object(object)
            case UInt8(ascii: "["):
                depth += 1
                guard depth <= FieldLimits.detailsDepth else { throw fail("nested deeper than \(FieldLimits.detailsDepth) levels") }
                i += 1
                var items: [JSONValue] = []
                skipSpace()
                if i < bytes.count, bytes[i] == UInt8(ascii: "]") {
                    i += 1
                } else {
                    while true {
                        items.append(try value())
                        skipSpace()
                        guard i < bytes.count else { throw fail("unexpected end of line") }
                        if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                        guard bytes[i] == UInt8(ascii: "]") else { throw fail("expected ',' or ']'") }
                        i += 1
                        break
                    }
                }
                depth -= 1
                return .array(items)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try word("true"); return .bool(true)
            case UInt8(ascii: "f"): try word("false"); return .bool(false)
            case UInt8(ascii: "n"): try word("null"); return .null
            default: return try number()
            }
        }

        mutating func word(_ w: String) throws(AuditError) {
            for c in w.utf8 {
                guard i < bytes.count, bytes[i] == c else { throw fail("invalid literal") }
                i += 1
            }
        }

        mutating func number() throws(AuditError) -> JSONValue {
            let start = i
            func digits() -> Int {
                let s = i
                while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
                return i - s
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            let intStart = i
            let n = digits()
            guard n > 0 else { throw fail("invalid value") }
            guard !(n > 1 && bytes[intStart] == UInt8(ascii: "0")) else { throw fail("leading zeros are not allowed") }
            var isInteger = true
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                isInteger = false
                guard digits() > 0 else { throw fail("invalid number") }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                isInteger = false
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard digits() > 0 else { throw fail("invalid number") }
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
            if isInteger, let v = Int64(text) { return .int(v) }
            guard let d = Double(text), d.isFinite else { throw fail("number out of range") }
            return .double(d)
        }

        mutating func hex4() throws(AuditError) -> UInt32 {
            guard i + 4 <= bytes.count else { throw fail("invalid \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                default: throw fail("invalid \\u escape")
                }
                v = v * 16 + d
                i += 1
            }
            return v
        }

        mutating func string() throws(AuditError) -> String {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a string") }
            i += 1
            var out = [UInt8]()
            while true {
                guard i < bytes.count else { throw fail("unterminated string") }
                let c = bytes[i]
                if c == UInt8(ascii: "\"") { i += 1; break }
                if c < 0x20 { throw fail("unescaped control character in a string") }
                if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
                i += 1
                guard i < bytes.count else { throw fail("unterminated escape") }
                let e = bytes[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate in \\u escape")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("unpaired surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("unpaired surrogate in \\u escape")
                    }
                    out.append(contentsOf: String(Character(UnicodeScalar(scalar)!)).utf8)
                default: throw fail("invalid escape")
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
