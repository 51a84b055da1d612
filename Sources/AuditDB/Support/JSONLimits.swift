/// The bounds of one JSON document, enforced while it is read (docs/FORMAT.md, section 18.4).
struct JSONLimits: Sendable {
    /// The most bytes the document may hold.
    var maxBytes: Int
    /// The deepest nesting: the top-level object is level 1, each object or array inside adds one.
    var maxDepth: Int
    /// The most values (objects, arrays, strings, numbers, literals; the top level included).
    var maxValues: Int = .max

    /// `details`: 64 KiB, 32 levels (``FieldLimits``).
    static let details = JSONLimits(maxBytes: FieldLimits.details, maxDepth: FieldLimits.detailsDepth)
    /// One event line (`append --jsonl`, ``AuditEvent/init(jsonLine:)-(String)``): 1 MiB; the line's
    /// object and `details` nested 32 levels inside it.
    static let eventLine = JSONLimits(maxBytes: 1 << 20, maxDepth: FieldLimits.detailsDepth + 1)
    /// `checkpoint.json`, anchor files, `statement.json`: 64 KiB, 64 levels.
    static let signedDocument = JSONLimits(maxBytes: 65_536, maxDepth: 64)
    /// One line of `entries.jsonl`: 1 MiB, 64 levels.
    static let bundleEntry = JSONLimits(maxBytes: 1 << 20, maxDepth: 64)
    /// `manifest.json`: 24 MiB, 64 levels, the seqs of the largest bundle plus 100 other values.
    static let manifest = JSONLimits(maxBytes: ExportBundle.maximumManifestBytes, maxDepth: 64,
                                     maxValues: ExportBundle.maximumEntries + 100)
}

/// Why a JSON document was refused and where: the byte offset of the problem and, for a problem
/// inside a member of the top-level object, that member's key.
struct JSONError: Error, CustomStringConvertible {
    enum Problem: Equatable, CustomStringConvertible {
        case tooLarge(size: Int, limit: Int)
        case byteOrderMark
        case invalidUTF8
        case expectedObject
        case expectedArray
        case trailingTextAfterArray
        case expectedValue
        case expectedKey
        case expectedColon
        case expectedCommaOrBrace
        case expectedCommaOrBracket
        case unexpectedEnd
        case trailingText
        case invalidLiteral
        case invalidNumber
        case leadingZero
        case numberTooLong(limit: Int)
        case integerOutOfRange
        case numberNotFinite
        case controlCharacter
        case invalidEscape
        case invalidUnicodeEscape
        case loneSurrogate(UInt32)
        case unterminatedString
        case duplicateKey(String)
        case tooDeep(limit: Int)
        case tooManyValues(limit: Int)

        var description: String {
            switch self {
            case .tooLarge(let size, let limit): "is \(size) bytes; the limit is \(limit)"
            case .byteOrderMark: "a byte order mark (U+FEFF); JSON here is UTF-8 without one"
            case .invalidUTF8: "invalid UTF-8"
            case .expectedObject: "expected a JSON object ({...})"
            case .expectedArray: "expected a JSON array ([...])"
            case .trailingTextAfterArray: "unexpected text after the array"
            case .expectedValue: "expected a value"
            case .expectedKey: "expected a string key"
            case .expectedColon: "expected ':'"
            case .expectedCommaOrBrace: "expected ',' or '}'"
            case .expectedCommaOrBracket: "expected ',' or ']'"
            case .unexpectedEnd: "unexpected end of text"
            case .trailingText: "unexpected text after the object"
            case .invalidLiteral: "invalid literal"
            case .invalidNumber: "invalid number"
            case .leadingZero: "invalid number: leading zeros are not allowed"
            case .numberTooLong(let limit): "a number longer than \(limit) bytes"
            case .integerOutOfRange: "integer outside -9223372036854775808...9223372036854775807"
            case .numberNotFinite: "number outside the range of a 64-bit float"
            case .controlCharacter: "unescaped control character in a string"
            case .invalidEscape: "invalid escape"
            case .invalidUnicodeEscape: "invalid \\u escape"
            case .loneSurrogate(let unit):
                "lone surrogate \\u\(String(unit, radix: 16, uppercase: true)) (a \\u escape of U+D800...U+DFFF must be a high-low pair)"
            case .unterminatedString: "unterminated string"
            case .duplicateKey(let key): "duplicate key \(OutputEscaping.jsonQuoted(key))"
            case .tooDeep(let limit): "nested deeper than \(limit) levels"
            case .tooManyValues(let limit): "more than \(limit) values"
            }
        }
    }

    let problem: Problem
    /// The byte offset of the problem in the document (for `tooLarge`, the limit).
    let offset: Int
    /// The key of the top-level member in whose value the problem lies, if any.
    let member: String?

    var description: String { "invalid JSON at byte \(offset): \(problem)" }
}
