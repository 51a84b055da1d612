/// How a masked value is shown (docs/masking.md).
public enum MaskMethod: String, Sendable, Hashable, CaseIterable {
    /// Keeps a little of the value: `j***@example.com` for an e-mail address (the first
    /// character of the local part and the domain), `a***e` for other text of 5 characters or
    /// more (first and last character), `***` for anything shorter or not a string.
    case partial
    /// A keyed hash: `hmac:` and 32 lowercase hex digits, the first 16 bytes of HMAC-SHA256
    /// under the ``MaskingKey``. Equal values give equal tokens (so rows can still be grouped by
    /// person), and nobody without the masking key can test a guess against a token.
    case hash
}

/// What a mask applies to: a whole field (`actor`, `source`, `details`) or a member inside
/// `details` (`details.email`, `details.user.email`: object keys, separated by dots).
///
/// Only the fields that an export can withhold are maskable: every other column (tenant,
/// action, resource, correlation id) enters the signed row encoding as plain text, so an export
/// could not hide it and still verify (docs/masking.md, "What can be masked").
public struct MaskPath: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The field.
    public let field: WithholdableField
    /// Object keys inside `details`, outermost first; empty for the whole field.
    public let members: [String]

    /// Parses `actor`, `source`, `details` or `details.KEY[.KEY…]`.
    /// - Throws: ``AuditError`` `invalidInput` naming what is wrong.
    public init(parsing text: String) throws(AuditError) {
        // Split on the scalar ".", not on Characters: a key that starts with a combining mark
        // joins the dot before it into one Character (FORMAT.md 21.7 separates keys by `.`).
        let parts = text.unicodeScalars.split(separator: ".", omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
        guard let field = WithholdableField(rawValue: parts[0]) else {
            throw AuditError(.invalidInput, "a mask applies to actor, source, details or details.KEY (got \(OutputEscaping.jsonQuoted(text))); other columns are signed as plain text and cannot be masked in an export", field: "mask")
        }
        let members = Array(parts.dropFirst())
        guard members.isEmpty || field == .details else {
            throw AuditError(.invalidInput, "only details has members to mask (got \(OutputEscaping.jsonQuoted(text)))", field: "mask")
        }
        guard members.allSatisfy({ !$0.isEmpty }), members.count <= MaskPath.maximumDepth,
              text.unicodeScalars.allSatisfy({ !OutputEscaping.needsEscape($0) })
        else {
            throw AuditError(.invalidInput, "a details path is details.KEY[.KEY…] with non-empty keys, at most \(MaskPath.maximumDepth) deep, without control characters (got \(OutputEscaping.jsonQuoted(text)))", field: "mask")
        }
        self.field = field
        self.members = members
    }

    /// The deepest path accepted (the depth limit of `details`).
    public static let maximumDepth = 31

    /// `details.email`.
    public var description: String { ([field.rawValue] + members).joined(separator: ".") }

    /// Whether `other` lies inside this path (or is it): a mask on this path covers it.
    public func covers(_ other: MaskPath) -> Bool {
        field == other.field && other.members.count >= members.count && zip(members, other.members).allSatisfy { $0.utf8.elementsEqual($1.utf8) }
    }

    /// The same field and the same keys, byte for byte. Not String's `==`, which holds canonically
    /// equivalent spellings (`é` as one scalar or as `e` + U+0301) equal: the rows' keys are
    /// matched byte for byte, so two such paths name two different members, and a rule on one
    /// must neither replace nor stand for a rule on the other.
    public static func == (a: MaskPath, b: MaskPath) -> Bool {
        a.field == b.field && a.members.count == b.members.count
            && zip(a.members, b.members).allSatisfy { $0.utf8.elementsEqual($1.utf8) }
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(field)
        for member in members {
            hasher.combine(member.utf8.count)
            for byte in member.utf8 { hasher.combine(byte) }
        }
    }

    /// In field order (actor, source, details), then by members in code point order.
    public static func < (a: MaskPath, b: MaskPath) -> Bool {
        if a.field != b.field { return a.field.id < b.field.id }
        return a.description.unicodeScalars.lexicographicallyPrecedes(b.description.unicodeScalars)
    }
}

/// One masking rule: a path and a method, written `PATH=METHOD` (`details.email=hash`,
/// `actor=partial`).
public struct MaskRule: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let path: MaskPath
    public let method: MaskMethod

    public init(path: MaskPath, method: MaskMethod) {
        self.path = path
        self.method = method
    }

    /// Parses `PATH=METHOD`.
    /// - Throws: ``AuditError`` `invalidInput` naming what is wrong.
    public init(parsing text: String) throws(AuditError) {
        guard let equals = text.unicodeScalars.lastIndex(of: "=") else {
            throw AuditError(.invalidInput, "a mask rule is PATH=METHOD, such as details.email=hash or actor=partial (got \(OutputEscaping.jsonQuoted(text)))", field: "mask")
        }
        let scalars = text.unicodeScalars
        let name = String(String.UnicodeScalarView(scalars[scalars.index(after: equals)...]))
        guard let method = MaskMethod(rawValue: name) else {
            throw AuditError(.invalidInput, "a mask method is partial or hash (got \(OutputEscaping.jsonQuoted(name)))", field: "mask")
        }
        self.init(path: try MaskPath(parsing: String(String.UnicodeScalarView(scalars[..<equals]))), method: method)
    }

    /// `details.email=hash`: what ``init(parsing:)`` reads and a masking entry stores.
    public var description: String { "\(path)=\(method.rawValue)" }

    public static func < (a: MaskRule, b: MaskRule) -> Bool { a.path < b.path || (a.path == b.path && a.method.rawValue < b.method.rawValue) }
}
