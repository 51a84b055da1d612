import Foundation

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
/// whose object is stored exactly as given once it is validated:
///
/// ```swift
/// let a: AuditDetails = ["ip": "10.0.0.8", "attempt": 2]
/// let b = AuditDetails(json: #"{"ip":"10.0.0.8","attempt":2}"#)
/// ```
///
/// Validation happens when the event is appended: the text must be one JSON object read by
/// AuditDB's strict rules (docs/FORMAT.md section 18: RFC 8259 without duplicate keys or lone
/// surrogates, integers within 64 bits, other numbers finite), at most 64 KiB and 32 levels deep,
/// with no `\u0000` (NUL) in any key or string: PostgreSQL's `jsonb` cannot hold one.
/// Nothing inside the object is rewritten: the stored text is the given text from its `{` to its
/// `}`. JSON white space around the object (spaces, tabs, LF, CR) is not part of it and is not
/// stored, as a `--jsonl` line's `details` member is stored without the white space around it
/// (docs/FORMAT.md section 18.7).
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
        switch storage {
        case .text(let given):
            // Checked as given (an error's byte counts from what the caller wrote), stored without
            // the white space around the object.
            try JSONText.validateObject(given)
            return JSONText.trimmingWhiteSpace(given)
        case .object(let object):
            let text = try JSONText.encode(.object(object))
            try JSONText.validateObject(text)
            return text
        }
    }

    public var description: String {
        switch storage {
        case .text(let text): text
        case .object(let object): (try? JSONText.encode(.object(object))) ?? "<invalid details>"
        }
    }
}

/// `details` text: validation by the strict reader (``JSONReader``), and a deterministic encoder
/// (sorted keys, no whitespace) for details built from Swift values.
enum JSONText {
    /// Whether `byte` is JSON white space (RFC 8259: space, tab, LF, CR).
    static func isWhiteSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

    /// `text` without the JSON white space before and after it.
    static func trimmingWhiteSpace(_ text: String) -> String {
        let utf8 = text.utf8
        guard let first = utf8.firstIndex(where: { !isWhiteSpace($0) }), let last = utf8.lastIndex(where: { !isWhiteSpace($0) }) else { return text }
        if first == utf8.startIndex && last == utf8.index(before: utf8.endIndex) { return text }
        return String(decoding: utf8[first...last], as: UTF8.self)
    }

    /// ``trimmingWhiteSpace(_:)`` for bytes (the back-signing path's fields).
    static func trimmingWhiteSpace(_ bytes: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        guard let first = bytes.firstIndex(where: { !isWhiteSpace($0) }), let last = bytes.lastIndex(where: { !isWhiteSpace($0) }) else { return bytes }
        return UnsafeBufferPointer(rebasing: bytes[first...last])
    }

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
            // Swift's shortest text that reads back as the same Double: `2.0`, `-0.0`, `0.1`,
            // `1000000000000000.0`, `1e+16`. Never `2` or `0`, which read back as `.int(2)` / `.int(0)`.
            out += "\(d)"
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
    /// Appends `s` as a JSON string literal: the characters ``OutputEscaping/needsEscape(_:)``
    /// flags as `\uXXXX`, and with `escapingInvisible` (output, not stored text) also every
    /// character that shows as nothing, as a surrogate pair above U+FFFF.
    static func appendQuoted(_ s: String, to out: inout String, escapingInvisible: Bool = false) {
        func escape(_ unit: UInt32) {
            let hex = String(unit, radix: 16)
            out += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        }
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if OutputEscaping.needsEscape(scalar) || (escapingInvisible && EncodedEvent.isInvisible(scalar)) {
                    let v = scalar.value
                    if v > 0xFFFF {
                        escape(0xD800 + ((v - 0x10000) >> 10))
                        escape(0xDC00 + ((v - 0x10000) & 0x3FF))
                    } else {
                        escape(v)
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        out += "\""
    }

    /// Validates that `text` is one JSON object within the size and depth limits, read by the
    /// strict reader (docs/FORMAT.md section 18): no duplicate key, no lone surrogate, integers
    /// within 64 bits, other numbers finite.
    static func validateObject(_ text: String) throws(AuditError) {
        var copy = text
        let failure: AuditError? = copy.withUTF8 { bytes in
            do throws(AuditError) {
                try validateObject(utf8: bytes)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    /// ``validateObject(_:)`` over bytes already known to be valid UTF-8 (a reader's buffer).
    static func validateObject(utf8 bytes: UnsafeBufferPointer<UInt8>) throws(AuditError) {
        guard bytes.count <= FieldLimits.details else {
            throw .invalid("details", "is \(bytes.count) bytes; the limit is \(FieldLimits.details)")
        }
        do throws(JSONError) {
            try JSONReader.validateObject(bytes, limits: .details, validUTF8: true)
        } catch {
            throw .invalid("details", error.description)
        }
        if let offset = nulEscape(in: bytes) { throw nulEscapeError(at: offset) }
    }

    /// The error for a `\u0000` escape at byte `offset` (of the text the other errors of the same
    /// input count from: `details` itself, or the `--jsonl` line that holds it).
    static func nulEscapeError(at offset: Int) -> AuditError {
        .invalid("details", "holds the escape of U+0000 (NUL) at byte \(offset): NUL is not allowed in details, as in any event field (PostgreSQL's jsonb, a central copy's `details::jsonb`, and many JSON tools cannot hold it); remove it, or encode the value (e.g. in base64)")
    }

    /// The offset of the first `\u0000` escape in `bytes`, a valid JSON document (a raw NUL byte
    /// is already refused by the reader, and a backslash appears only inside strings there).
    static func nulEscape(in bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let base = bytes.baseAddress else { return nil }
        var i = 0
        while i < bytes.count {
            // The next backslash (memchr: most details have few or none).
            guard let found = memchr(base + i, Int32(UInt8(ascii: "\\")), bytes.count - i) else { return nil }
            i = UnsafePointer<UInt8>(found.assumingMemoryBound(to: UInt8.self)) - base
            // An escape: `\uXXXX` is six bytes, every other one two.
            if i + 5 < bytes.count, bytes[i + 1] == UInt8(ascii: "u"),
               bytes[(i + 2)...(i + 5)].allSatisfy({ $0 == UInt8(ascii: "0") })
            {
                return i
            }
            i += 2
        }
        return nil
    }

    /// The members of stored `details` read strictly, or nil if they are not a valid object:
    /// for AuditDB's own entries (scan records, adoption runs), where an entry whose details do
    /// not read is simply not such a record.
    static func members(_ text: String) -> JSONObject? {
        var copy = text
        return copy.withUTF8 { bytes in
            do throws(JSONError) {
                return try JSONReader.readObject(bytes, limits: .details, validUTF8: true).members
            } catch {
                return nil
            }
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

    /// `text` for a terminal table: backslash, every character ``needsEscape(_:)`` flags, and
    /// every character that shows as nothing (format characters such as zero-width spaces and
    /// tags, and other default-ignorable code points) are written as `\\`, `\n`, `\t`, `\r` or
    /// `\u{XXXX}`, so no field can break or repaint a line, or look like another value.
    package static func escapeForTerminal(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if needsEscape(scalar) || EncodedEvent.isInvisible(scalar) {
                    out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// A message (an error, a warning, a status line) made safe for one line, without doubling
    /// what it already quotes: every character ``needsEscape(_:)`` flags and every character
    /// that shows as nothing is written `\u{XXXX}`, and a run of backslashes right before such
    /// an escape or before the text `u{` is doubled; every other backslash stays one. So a path
    /// `C:\audit\x.db` and a value quoted as JSON (``jsonQuoted(_:)``: `"9\u001bd"`) show as
    /// they are, and the output still tells every text apart: a single backslash before `u{`
    /// is always an escape (an odd run: the last one), an even run before `u{` is literal.
    package static func escapeForMessage(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        func escaped(_ scalar: Unicode.Scalar) -> Bool { needsEscape(scalar) || EncodedEvent.isInvisible(scalar) }
        var out = ""
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            if scalar == "\\" {
                var end = index
                while end < scalars.count && scalars[end] == "\\" { end += 1 }
                let run = end - index
                let next = end < scalars.count ? scalars[end] : nil
                let beforeEscape = next.map(escaped) ?? false
                    || (next == "u" && end + 1 < scalars.count && scalars[end + 1] == "{")
                out += String(repeating: "\\", count: beforeEscape ? 2 * run : run)
                index = end
                continue
            }
            if escaped(scalar) {
                out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
            index += 1
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

    /// `text` as a JSON string literal for output: every character ``needsEscape(_:)`` flags and
    /// every character that shows as nothing (format characters, other default-ignorable code
    /// points) escaped as `\uXXXX` (a surrogate pair above U+FFFF). The same value to any JSON
    /// reader; a zero-width space in an actor is visible in the text.
    package static func jsonQuoted(_ text: String) -> String {
        var out = ""
        JSONText.appendQuoted(text, to: &out, escapingInvisible: true)
        return out
    }
}
