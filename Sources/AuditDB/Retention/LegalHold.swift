/// A legal hold: rows that match it are never expired, whatever their age, until it is
/// released.
///
/// A hold is a signed entry in the log (action `auditdb.hold.placed`), and so is its release
/// (`auditdb.hold.released`); its ``id`` is the seq of the placing entry. Holds are read back
/// through verification (``AuditStore/activeHolds()``), so a hold that someone removed or
/// changed makes the read fail instead of quietly letting rows expire. See docs/retention.md.
///
/// ```swift
/// let hold = try await store.placeHold(.tenant("acme"), reason: "case 2026-114", placedBy: "legal:dana")
/// let holds = try await store.activeHolds()
/// let keep = holds.contains { $0.matches(entry) }
/// try await store.releaseHold(id: hold.id, reason: "case closed", releasedBy: "legal:dana")
/// ```
public struct LegalHold: Sendable, Hashable, Identifiable {
    /// Which rows a hold keeps. Values are compared byte for byte (no case folding, no Unicode
    /// normalisation), as queries compare them.
    public enum Matcher: Sendable, Hashable, CustomStringConvertible {
        /// Rows whose `tenant` is this value.
        case tenant(String)
        /// Rows whose `actor` is this value (and rows whose actor was withheld: see ``LegalHold/matches(tenant:actor:resourceType:resourceId:correlationId:)``).
        case actor(String)
        /// Rows whose `resourceId` is `id` and, when `type` is given, whose `resourceType` is
        /// `type`. Without a type, every row with that resource id matches, whatever its type.
        case resource(type: String?, id: String)
        /// Rows whose `correlationId` is this value.
        case correlationId(String)

        /// The field matched, as stored in the hold entry: `tenant`, `actor`, `resource` or
        /// `correlationId`.
        public var field: String {
            switch self {
            case .tenant: "tenant"
            case .actor: "actor"
            case .resource: "resource"
            case .correlationId: "correlationId"
            }
        }

        /// The value compared (for a resource, its id).
        public var value: String {
            switch self {
            case .tenant(let v), .actor(let v), .correlationId(let v): v
            case .resource(_, let id): id
            }
        }

        /// E.g. `tenant = "acme"`, `resource = "document"/"doc-7"`; values quoted and escaped.
        public var description: String {
            switch self {
            case .resource(let type?, let id):
                "resource = \(OutputEscaping.jsonQuoted(type))/\(OutputEscaping.jsonQuoted(id))"
            default:
                "\(field) = \(OutputEscaping.jsonQuoted(value))"
            }
        }
    }

    /// The release of a hold.
    public struct Release: Sendable, Hashable {
        /// The seq of the releasing entry.
        public let seq: Int64
        /// When it was recorded.
        public let releasedAt: AuditTimestamp
        /// Who released it (the releasing entry's actor); nil if that value was withheld.
        public let releasedBy: String?
        /// Why.
        public let reason: String
    }

    /// The seq of the entry that placed the hold: unique in the store, and covered by that
    /// entry's MAC, so it cannot be reassigned.
    public let id: Int64
    /// Which rows it keeps.
    public let matcher: Matcher
    /// Why it was placed (e.g. a case number).
    public let reason: String
    /// Who placed it (the placing entry's actor); nil if that value was withheld.
    public let placedBy: String?
    /// When the placing entry was recorded.
    public let placedAt: AuditTimestamp
    /// The release, if the hold was released.
    public let release: Release?

    /// Whether the hold still keeps rows (it was not released).
    public var isActive: Bool { release == nil }

    /// Whether this hold's matcher selects `entry` (released or not: consult ``isActive``).
    public func matches(_ entry: AuditEntry) -> Bool {
        matches(tenant: entry.tenant, actor: entry.actor, resourceType: entry.resourceType, resourceId: entry.resourceId,
                correlationId: entry.correlationId)
    }

    /// Whether this hold's matcher selects a row with these values (released or not: consult
    /// ``isActive``). This is the check expiry makes for every candidate row.
    ///
    /// - Parameter actor: The row's actor; nil when it was withheld (erased). An actor hold
    ///   matches such a row: it cannot be shown not to be that actor's row, and keeping it is
    ///   the safe answer.
    /// - Complexity: O(length of the values).
    public func matches(tenant: String?, actor: String?, resourceType: String?, resourceId: String?,
                        correlationId: String?) -> Bool
    {
        func same(_ a: String?, _ b: String) -> Bool { a.map { $0.utf8.elementsEqual(b.utf8) } ?? false }
        switch matcher {
        case .tenant(let value): return same(tenant, value)
        case .actor(let value): return actor.map { $0.utf8.elementsEqual(value.utf8) } ?? true
        case .correlationId(let value): return same(correlationId, value)
        case .resource(let type, let id):
            guard same(resourceId, id) else { return false }
            return type.map { same(resourceType, $0) } ?? true
        }
    }

    // MARK: Rules

    /// A row field a matcher value must be valid for.
    enum ValueField: String {
        case tenant, actor, resourceType, resourceId, correlationId
    }

    /// Checks `value` by the rules ``AuditEvent`` applies to `field` (non-empty, no control
    /// characters, the field's length limit): a value no row can hold would match nothing.
    static func checkValue(_ value: String, as field: ValueField) throws(AuditError) {
        guard !value.isEmpty else { throw .invalid(field.rawValue, "must not be empty (no row holds an empty value)") }
        var probe = AuditEvent(actor: "-", action: "-")
        switch field {
        case .tenant: probe.tenant = value
        case .actor: probe.actor = value
        case .resourceType: probe.resourceType = value
        case .resourceId: probe.resourceId = value
        case .correlationId: probe.correlationId = value
        }
        _ = try EncodedEvent(validating: probe)
    }

    /// The longest reason, in UTF-8 bytes.
    public static let maximumReasonBytes = 1_024

    /// Checks a placing or releasing reason: 1 to ``maximumReasonBytes`` bytes of UTF-8
    /// without control characters (it is printed on one line).
    static func checkReason(_ reason: String) throws(AuditError) {
        let count = reason.utf8.count
        guard count > 0, reason.unicodeScalars.contains(where: { !$0.properties.isWhitespace }) else {
            throw .invalid("reason", "must not be empty: say why (a case or ticket number)")
        }
        guard count <= maximumReasonBytes else {
            throw .invalid("reason", "is \(count) bytes of UTF-8; the limit is \(maximumReasonBytes) (nothing is truncated)")
        }
        var copy = reason
        if let bad = copy.withUTF8({ EncodedEvent.firstControlCharacter($0) }) {
            throw .invalid("reason", "contains a control character at byte \(bad) (newlines, tabs, NUL and escape sequences are not allowed)")
        }
    }

    /// Checks the matcher's values.
    static func check(_ matcher: Matcher) throws(AuditError) {
        switch matcher {
        case .tenant(let v): try checkValue(v, as: .tenant)
        case .actor(let v): try checkValue(v, as: .actor)
        case .correlationId(let v): try checkValue(v, as: .correlationId)
        case .resource(let type, let id):
            try checkValue(id, as: .resourceId)
            if let type { try checkValue(type, as: .resourceType) }
        }
    }
}
