/// How a name that stands for a person, yet is not a row's `actor` value itself, is shown under
/// the store's actor rule: who placed or released a legal hold, who set the masking rules (each the
/// actor of AuditDB's own entry, which queries show masked). `hold list`, `masking show` and the
/// compliance report (docs/FORMAT.md 23.1) show such names as `query` shows a masked actor. A hash
/// rule needs the masking key, which none of them takes: they show only that the name is masked
/// (`<masked:hash>`, `{"masked":"hash","value":null}`).
package struct ActorMask: Sendable {
    private let rule: MaskRule?
    private let policy: MaskingPolicy?
    /// Every name withheld: the store's masking entry could not be read (it fails verification),
    /// so whether and how it masks actors is unknown.
    private var unreadable = false

    /// Withholds every name (`{"masked":"unreadable","value":null}`): for a store whose masking
    /// entry fails verification, whose rules could then mask the actor.
    package static let unreadable: ActorMask = {
        var mask = ActorMask(rule: nil, policy: nil)
        mask.unreadable = true
        return mask
    }()

    private init(rule: MaskRule?, policy: MaskingPolicy?) {
        self.rule = rule
        self.policy = policy
    }

    /// The rendering of the store's masking configuration `masking` (its rule for the whole
    /// `actor` field, if any).
    package init(_ masking: StoreMasking) throws(AuditError) {
        let rule = masking.rules.first { $0.path.field == .actor && $0.path.members.isEmpty }
        self.rule = rule
        if let rule, rule.method != .hash { policy = try MaskingPolicy(rules: [rule]) } else { policy = nil }
    }

    /// Whether the store masks the actor field.
    package var masks: Bool { rule != nil || unreadable }

    /// `name` for a line of text: as it is, or `<masked:SHOWN>` as `query` shows a masked actor.
    package func text(_ name: String) -> String {
        if unreadable { return "<masked:unreadable>" }
        guard let rule else { return OutputEscaping.escapeForTerminal(name) }
        guard let shown = policy?.maskedActor(name)?.shown else { return "<masked:\(rule.method.rawValue)>" }
        return "<masked:" + OutputEscaping.escapeForTerminal(shown) + ">"
    }

    /// `name` as a JSON value: a string, or `{"masked":METHOD,"value":SHOWN}` (SHOWN `null` for
    /// a hash rule) as `query` has it.
    package func value(_ name: String) -> JSONValue {
        if unreadable { return .object(["masked": .string("unreadable"), "value": .null]) }
        guard let rule else { return .string(name) }
        return .object(["masked": .string(rule.method.rawValue), "value": policy?.maskedActor(name).map { .string($0.shown) } ?? .null])
    }

    /// ``value(_:)`` as JSON text.
    package func json(_ name: String) -> String {
        if unreadable { return "{\"masked\":\"unreadable\",\"value\":null}" }
        guard let rule else { return OutputEscaping.jsonQuoted(name) }
        let value = policy?.maskedActor(name).map { OutputEscaping.jsonQuoted($0.shown) } ?? "null"
        return "{\"masked\":\"\(rule.method.rawValue)\",\"value\":\(value)}"
    }
}
