/// A JSON value, for building ``AuditDetails`` in Swift.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}

/// The `details` of an event: a JSON object.
///
/// Build it from a Swift dictionary (serialized compactly with sorted keys) or pass JSON text,
/// which is stored exactly as given once it is validated:
///
/// ```swift
/// let a: AuditDetails = ["ip": "10.0.0.8", "attempt": 2]
/// let b = AuditDetails(json: #"{"ip":"10.0.0.8","attempt":2}"#)
/// ```
///
/// Validation happens when the event is appended: the text must be a JSON object
/// (RFC 8259), at most 64 KiB and 32 levels deep; doubles must be finite.
public struct AuditDetails: Sendable, Hashable, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    enum Storage: Sendable, Hashable {
        case text(String)
        case object([String: JSONValue])
    }

    let storage: Storage

    /// Details given as JSON text; validated (not rewritten) when the event is appended.
    public init(json: String) { storage = .text(json) }

    /// Details built from Swift values.
    public init(_ object: [String: JSONValue]) { storage = .object(object) }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }

    /// The JSON text that will be stored (validated).
    /// - Throws: ``AuditError`` with code `invalidInput` and field `details` if it breaks a rule.
    public func jsonText() throws(AuditError) -> String {
        let text: String
        switch storage {
        case .text(let given): text = given
        case .object(let object): text = try JSONText.encode(.object(object))
        }
        try JSONText.validateObject(text)
        return text
    }

    public var description: String {
        switch storage {
        case .text(let text): text
        case .object(let object): (try? JSONText.encode(.object(object))) ?? "<invalid details>"
        }
    }
}

/// Strict JSON text handling without Foundation: fast validation of stored details, and a
/// deterministic encoder (sorted keys, no whitespace).
enum JSONText {
    static func encode(_ value: JSONValue) throws(AuditError) -> String {
        var out = ""
        try write(value, into: &out, depth: 0)
        return out
    }

    private static func write(_ value: JSONValue, into out: inout String, depth: Int) throws(AuditError) {
        guard depth <= FieldLimits.detailsDepth else {
            throw .invalid("details", "nested deeper than \(FieldLimits.detailsDepth) levels")
        }
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            guard d.isFinite else { throw .invalid("details", "numbers must be finite (NaN and infinity are not JSON)") }
            out += d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)"
        case .string(let s): appendQuoted(s, to: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                try write(item, into: &out, depth: depth + 1)
            }
            out += "]"
        case .object(let object):
            out += "{"
            for (i, key) in object.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                appendQuoted(key, to: &out)
                out += ":"
                try write(object[key]!, into: &out, depth: depth + 1)
            }
            out += "}"
        }
    }

    /// Appends `s` as a JSON string literal. Escapes quotes, backslashes, every control
    /// character, and the Unicode line/paragraph separators, so the result is one safe line.
    static func appendQuoted(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if OutputEscaping.needsEscape(scalar) {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    /// Validates that `text` is one JSON object (RFC 8259) within the size and depth limits.
    static func validateObject(_ text: String) throws(AuditError) {
        var copy = text
        let result = copy.withUTF8 { bytes -> (String, Int)? in
            guard bytes.count <= FieldLimits.details else {
                return ("is \(bytes.count) bytes; the limit is \(FieldLimits.details)", -1)
            }
            var parser = Validator(bytes: bytes)
            return parser.run()
        }
        if let (reason, offset) = result {
            throw .invalid("details", offset >= 0 ? "invalid JSON at byte \(offset): \(reason)" : reason)
        }
    }

    private struct Validator {
        let bytes: UnsafeBufferPointer<UInt8>
        var i = 0
        var depth = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        mutating func run() -> (String, Int)? {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else {
                return ("details must be a JSON object ({...})", i)
            }
            if let e = value() { return e }
            skipSpace()
            return i == bytes.count ? nil : ("unexpected text after the object", i)
        }

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D { i += 1 }
        }

        mutating func value() -> (String, Int)? {
            skipSpace()
            guard i < bytes.count else { return ("unexpected end of text", i) }
            switch bytes[i] {
            case UInt8(ascii: "{"): return container(close: UInt8(ascii: "}"), keyed: true)
            case UInt8(ascii: "["): return container(close: UInt8(ascii: "]"), keyed: false)
            case UInt8(ascii: "\""): return string()
            case UInt8(ascii: "t"): return literal("true")
            case UInt8(ascii: "f"): return literal("false")
            case UInt8(ascii: "n"): return literal("null")
            default: return number()
            }
        }

        mutating func container(close: UInt8, keyed: Bool) -> (String, Int)? {
            depth += 1
            guard depth <= FieldLimits.detailsDepth else {
                return ("nested deeper than \(FieldLimits.detailsDepth) levels", i)
            }
            i += 1
            skipSpace()
            if i < bytes.count, bytes[i] == close {
                i += 1
                depth -= 1
                return nil
            }
            while true {
                if keyed {
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return ("expected a string key", i) }
                    if let e = string() { return e }
                    skipSpace()
                    guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return ("expected ':'", i) }
                    i += 1
                }
                if let e = value() { return e }
                skipSpace()
                guard i < bytes.count else { return ("unexpected end of text", i) }
                if bytes[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                guard bytes[i] == close else { return ("expected ',' or '\(Character(UnicodeScalar(close)))'", i) }
                i += 1
                depth -= 1
                return nil
            }
        }

        mutating func literal(_ word: StaticString) -> (String, Int)? {
            let n = word.utf8CodeUnitCount
            guard i + n <= bytes.count else { return ("invalid literal", i) }
            for k in 0..<n where bytes[i + k] != word.utf8Start[k] { return ("invalid literal", i) }
            i += n
            return nil
        }

        mutating func number() -> (String, Int)? {
            let start = i
            if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < bytes.count, isDigit(bytes[i]) else { return ("invalid value", start) }
            if bytes[i] == UInt8(ascii: "0") {
                i += 1
            } else {
                while i < bytes.count, isDigit(bytes[i]) { i += 1 }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
                i += 1
                guard i < bytes.count, isDigit(bytes[i]) else { return ("invalid number", start) }
                while i < bytes.count, isDigit(bytes[i]) { i += 1 }
            }
            if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
                i += 1
                if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
                guard i < bytes.count, isDigit(bytes[i]) else { return ("invalid number", start) }
                while i < bytes.count, isDigit(bytes[i]) { i += 1 }
            }
            return nil
        }

        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

        func isHex(_ c: UInt8) -> Bool {
            isDigit(c) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "F"))
        }

        // Swift strings are valid UTF-8 already; this checks JSON's own string rules.
        mutating func string() -> (String, Int)? {
            let start = i
            i += 1
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    return nil
                }
                if c < 0x20 { return ("unescaped control character in a string", i) }
                if c == UInt8(ascii: "\\") {
                    i += 1
                    guard i < bytes.count else { break }
                    switch bytes[i] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                        UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        i += 1
                    case UInt8(ascii: "u"):
                        guard i + 4 < bytes.count, (1...4).allSatisfy({ isHex(bytes[i + $0]) }) else {
                            return ("invalid \\u escape", i)
                        }
                        i += 5
                    default:
                        return ("invalid escape", i)
                    }
                    continue
                }
                i += 1
            }
            return ("unterminated string", start)
        }
    }
}

/// What output must never print raw: control characters (C0, DEL, C1), the Unicode line and
/// paragraph separators, and bidirectional controls that can reorder what a terminal shows.
/// `package`, not public: for the `auditdb` executable's output and the library's own JSON writers.
package enum OutputEscaping {
    /// Whether `scalar` must be escaped in any output line.
    package static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        return v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029 || v == 0x061C
            || v == 0x200E || v == 0x200F || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v)
            || v == 0xFEFF
    }

    /// `text` for a terminal table: backslash and every character ``needsEscape(_:)`` flags are
    /// written as `\\`, `\n`, `\t`, `\r` or `\u{XXXX}`, so no field can break or repaint a line.
    package static func escapeForTerminal(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if needsEscape(scalar) {
                    out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// Valid JSON text made safe for one output line: every flagged character inside a string
    /// becomes a `\uXXXX` escape (same meaning), and whitespace between tokens becomes a space.
    package static func jsonSafe(_ json: String) -> String {
        var out = ""
        var inString = false
        var escaped = false
        for scalar in json.unicodeScalars {
            if inString {
                if escaped {
                    escaped = false
                } else if scalar == "\\" {
                    escaped = true
                } else if scalar == "\"" {
                    inString = false
                }
            } else if scalar == "\"" {
                inString = true
            }
            if needsEscape(scalar) {
                if inString {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
                } else {
                    out += " "
                }
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `text` as a JSON string literal with every flagged character escaped as `\uXXXX`.
    package static func jsonQuoted(_ text: String) -> String {
        var out = ""
        JSONText.appendQuoted(text, to: &out)
        return out
    }
}
