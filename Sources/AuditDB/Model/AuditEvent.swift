/// The outcome of an audited action. Stored as a code (FORMAT.md): success 0, failure 1,
/// denied 2, error 3.
public enum AuditOutcome: String, Sendable, Hashable, CaseIterable, Codable {
    case success, failure, denied, error

    var code: UInt8 {
        switch self {
        case .success: 0
        case .failure: 1
        case .denied: 2
        case .error: 3
        }
    }

    init?(code: Int64) {
        switch code {
        case 0: self = .success
        case 1: self = .failure
        case 2: self = .denied
        case 3: self = .error
        default: return nil
        }
    }
}

/// How important an event is. `critical` events are always durable before `append` returns,
/// whatever the store's ``AuditStore/Durability``. Codes: info 0, notice 1, warning 2, critical 3.
public enum AuditSeverity: String, Sendable, Hashable, CaseIterable, Codable {
    case info, notice, warning, critical

    var code: UInt8 {
        switch self {
        case .info: 0
        case .notice: 1
        case .warning: 2
        case .critical: 3
        }
    }

    init?(code: Int64) {
        switch code {
        case 0: self = .info
        case 1: self = .notice
        case 2: self = .warning
        case 3: self = .critical
        default: return nil
        }
    }
}

/// An event to record: who did what to which resource, and how it went.
///
/// `actor` and `action` are required; everything else is optional. The engine assigns
/// `seq` and `recordedAt` when the event is appended.
///
/// ```swift
/// let event = AuditEvent(actor: "user:42", action: "document.read",
///                        resourceType: "document", resourceId: "doc-7",
///                        tenant: "acme", details: ["ip": "10.0.0.8"])
/// ```
///
/// ## Rules (checked by `append`; a broken rule throws ``AuditError/Code/invalidInput`` naming the field)
/// | field | required | max UTF-8 bytes |
/// |---|---|---|
/// | actor | yes | 256 |
/// | action | yes | 128 |
/// | tenant, resourceType, correlationId | no | 256 |
/// | resourceId | no | 1024 |
/// | source | no | 512 |
/// | details | no | 65,536 (a JSON object, nested at most 32 deep) |
///
/// Text fields must not be empty (use `nil`) and must not contain control characters
/// (U+0000–U+001F, U+007F–U+009F); `details` must not contain `\u0000` (NUL) in any key or string. Actions that start with `auditdb.` — compared without case,
/// combining marks or invisible characters, so that no look-alike passes — are AuditDB's own and
/// refused. Nothing is ever truncated. `occurredAt` must lie between
/// ``AuditTimestamp/minimum`` and ``AuditTimestamp/maximum``.
public struct AuditEvent: Sendable, Hashable {
    /// Who acted: a user, service or agent id. Withholdable (committed, see FORMAT.md).
    public var actor: String
    /// What was done, e.g. `document.read`.
    public var action: String
    /// The tenant the event belongs to.
    public var tenant: String?
    /// The kind of resource acted on, e.g. `document`.
    public var resourceType: String?
    /// The resource acted on.
    public var resourceId: String?
    /// How it went.
    public var outcome: AuditOutcome
    /// How important it is.
    public var severity: AuditSeverity
    /// Ties related events together (a request or trace id).
    public var correlationId: String?
    /// Where the action came from (an IP address or host). Withholdable.
    public var source: String?
    /// When the action happened, by the caller's clock.
    public var occurredAt: AuditTimestamp?
    /// Free-form context, a JSON object. Withholdable.
    public var details: AuditDetails?

    /// Creates an event.
    public init(
        actor: String,
        action: String,
        resourceType: String? = nil,
        resourceId: String? = nil,
        tenant: String? = nil,
        outcome: AuditOutcome = .success,
        severity: AuditSeverity = .info,
        correlationId: String? = nil,
        source: String? = nil,
        occurredAt: AuditTimestamp? = nil,
        details: AuditDetails? = nil
    ) {
        self.actor = actor
        self.action = action
        self.resourceType = resourceType
        self.resourceId = resourceId
        self.tenant = tenant
        self.outcome = outcome
        self.severity = severity
        self.correlationId = correlationId
        self.source = source
        self.occurredAt = occurredAt
        self.details = details
    }
}

/// Field limits, in UTF-8 bytes (documented on ``AuditEvent``).
enum FieldLimits {
    static let actor = 256
    static let action = 128
    static let tenant = 256
    static let resourceType = 256
    static let resourceId = 1024
    static let correlationId = 256
    static let source = 512
    static let details = 65_536
    static let detailsDepth = 32
}
