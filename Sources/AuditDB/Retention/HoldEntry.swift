/// One legal-hold entry of the log, as written and read back: the `details` of
/// `auditdb.hold.placed` and `auditdb.hold.released` entries (docs/retention.md, "The entries").
///
/// Placing: `{"field":F,"previousHoldEntry":P,"reason":R,"value":V}`, plus `"resourceType":T`
/// for a resource hold with a type. Releasing: `{"holdId":H,"previousHoldEntry":P,"reason":R}`.
/// `previousHoldEntry` is the seq of the hold entry before this one (0 for the first): the hold
/// entries form a chain of their own, so a hold entry removed from the middle is noticed by the
/// one after it. Written with the deterministic encoder (sorted keys, no whitespace), read with
/// the strict reader; a key outside these is refused, not ignored.
enum HoldEntry {
    static let placedAction = "auditdb.hold.placed"
    static let releasedAction = "auditdb.hold.released"
    /// The entries' `resourceType`; a release's `resourceId` is the hold id.
    static let resourceType = "legal-hold"

    case placed(LegalHold.Matcher, reason: String, previous: Int64)
    case released(holdID: Int64, reason: String, previous: Int64)

    var previous: Int64 {
        switch self {
        case .placed(_, _, let previous), .released(_, _, let previous): previous
        }
    }

    /// The event that records this entry, signed by `by`.
    func event(by actor: String) -> AuditEvent {
        switch self {
        case .placed(let matcher, let reason, let previous):
            var details: [String: JSONValue] = [
                "field": .string(matcher.field), "value": .string(matcher.value), "reason": .string(reason),
                "previousHoldEntry": .int(previous),
            ]
            if case .resource(let type?, _) = matcher { details["resourceType"] = .string(type) }
            return AuditEvent(actor: actor, action: Self.placedAction, resourceType: Self.resourceType, severity: .notice,
                              details: AuditDetails(details))
        case .released(let holdID, let reason, let previous):
            return AuditEvent(
                actor: actor, action: Self.releasedAction, resourceType: Self.resourceType, resourceId: String(holdID),
                severity: .notice,
                details: ["holdId": .int(holdID), "reason": .string(reason), "previousHoldEntry": .int(previous)])
        }
    }

    /// Reads a verified hold entry. Throws a description of what is wrong (the caller names
    /// the entry): a signed hold entry that this reader cannot read is not skipped.
    init(_ entry: AuditEntry) throws(Unreadable) {
        let object: JSONObject
        switch entry.strictDetails() {
        case .success(let members): object = members
        case .failure(let problem): throw Unreadable(problem.reason)
        }
        func text(_ name: String) throws(Unreadable) -> String {
            guard let value = object[name]?.text else { throw Unreadable("its details lack the string \(name)") }
            return value
        }
        func integer(_ name: String) throws(Unreadable) -> Int64 {
            guard let value = object[name]?.integer else { throw Unreadable("its details lack the integer \(name)") }
            return value
        }
        let known: Set<String>
        switch entry.action {
        case Self.placedAction:
            known = ["field", "value", "reason", "previousHoldEntry", "resourceType"]
            let value = try text("value")
            let matcher: LegalHold.Matcher
            switch try text("field") {
            case "tenant": matcher = .tenant(value)
            case "actor": matcher = .actor(value)
            case "correlationId": matcher = .correlationId(value)
            case "resource": matcher = .resource(type: object["resourceType"] == nil ? nil : try text("resourceType"), id: value)
            case let other: throw Unreadable("its field \(OutputEscaping.jsonQuoted(other)) is not tenant, actor, resource or correlationId")
            }
            if case .resource = matcher {} else if object["resourceType"] != nil {
                throw Unreadable("it has a resourceType but holds by \(matcher.field)")
            }
            self = .placed(matcher, reason: try text("reason"), previous: try integer("previousHoldEntry"))
        case Self.releasedAction:
            known = ["holdId", "reason", "previousHoldEntry"]
            let holdID = try integer("holdId")
            guard entry.resourceId == String(holdID) else {
                throw Unreadable("its resourceId does not name the hold it releases (\(holdID))")
            }
            self = .released(holdID: holdID, reason: try text("reason"), previous: try integer("previousHoldEntry"))
        default:
            throw Unreadable("its action is not a hold action")
        }
        if let unknown = object.firstKey(notIn: known) {
            throw Unreadable("its details have the unknown key \(OutputEscaping.jsonQuoted(unknown)) (written by a newer AuditDB?)")
        }
        guard previous >= 0, previous < entry.seq else {
            throw Unreadable("its previousHoldEntry \(previous) does not lie before it")
        }
    }

    /// Why a signed hold entry cannot be read as one.
    struct Unreadable: Error {
        let reason: String
        init(_ reason: String) { self.reason = reason }
    }
}
