/// How long a store keeps its rows: a maximum age for the whole store, and per-tenant
/// overrides.
///
/// A policy only *allows* expiry: it says which rows are old enough to go. Rows that match an
/// active ``LegalHold`` are never expired, whatever their age (``allowsExpiry(of:now:holds:)``).
/// The age of a row is measured from its `recordedAt` (the writer's clock when it was appended;
/// `occurredAt` is the caller's and is not used).
///
/// ```swift
/// // 90 days for everyone, 400 days for tenant "bank", tenant "archive" for ever.
/// let policy = try RetentionPolicy(parsingDefault: "90d", tenants: ["bank": "400d", "archive": "forever"])
/// policy.cutoff(forTenant: "bank", now: .now())      // rows recorded before this may expire
/// policy.allowsExpiry(tenant: "acme", recordedAt: entry.recordedAt, now: .now())
/// ```
///
/// **The boundary.** A row may expire once it is *older* than the maximum age: when
/// `recordedAt < now − maximumAge` (the ``cutoff(forTenant:now:)``). A row recorded exactly at
/// the cut-off is kept. A row without a tenant follows the default.
public struct RetentionPolicy: Sendable, Hashable {
    /// How long rows of one scope are kept.
    public enum Limit: Sendable, Hashable, CustomStringConvertible {
        /// Never expire.
        case forever
        /// Expire once older than this.
        case maximumAge(RetentionPeriod)

        /// Parses `forever` or a ``RetentionPeriod`` text (`90d`).
        /// - Throws: ``AuditError`` `invalidInput` with `field`, as ``RetentionPeriod/init(parsing:field:)``.
        public init(parsing text: String, field: String = "period") throws(AuditError) {
            self = text == "forever" ? .forever : .maximumAge(try RetentionPeriod(parsing: text, field: field))
        }

        /// `forever` or the period's text (`90d`): what ``init(parsing:field:)`` reads.
        public var description: String {
            switch self {
            case .forever: "forever"
            case .maximumAge(let period): period.description
            }
        }
    }

    /// The limit for rows without an override (and rows without a tenant).
    public let defaultLimit: Limit
    /// Per-tenant limits, by exact tenant value (byte for byte, as queries compare).
    public let tenantLimits: [String: Limit]

    /// A policy.
    ///
    /// - Parameters:
    ///   - defaultLimit: The limit for every row whose tenant has no override.
    ///   - tenantLimits: Overrides by tenant; each tenant must be a valid `tenant` value (see
    ///     ``AuditEvent``), or no row could ever match it.
    /// - Throws: ``AuditError`` `invalidInput` naming the tenant that breaks a rule.
    public init(default defaultLimit: Limit, tenants tenantLimits: [String: Limit] = [:]) throws(AuditError) {
        for tenant in tenantLimits.keys.sorted() {
            try Self.checkTenant(tenant)
        }
        self.defaultLimit = defaultLimit
        self.tenantLimits = tenantLimits
    }

    /// A policy from text, as in a configuration file: each limit is `forever` or a
    /// ``RetentionPeriod`` (`90d`, `12h`, `2w`).
    ///
    /// - Throws: ``AuditError`` `invalidInput`; the field is `default` or `tenants[NAME]`.
    public init(parsingDefault defaultText: String, tenants: [String: String] = [:]) throws(AuditError) {
        let defaultLimit = try Limit(parsing: defaultText, field: "default")
        var limits: [String: Limit] = [:]
        for tenant in tenants.keys.sorted() {
            try Self.checkTenant(tenant)
            limits[tenant] = try Limit(parsing: tenants[tenant]!, field: "tenants[\(OutputEscaping.jsonQuoted(tenant))]")
        }
        try self.init(default: defaultLimit, tenants: limits)
    }

    /// The limit that applies to rows of `tenant` (nil: rows without a tenant).
    public func limit(forTenant tenant: String?) -> Limit {
        tenant.flatMap { tenantLimits[$0] } ?? defaultLimit
    }

    /// The cut-off for rows of `tenant` at `now`: rows recorded strictly before it may expire;
    /// nil when that tenant's rows are kept for ever.
    ///
    /// When `now − maximumAge` lies before the earliest representable time, the cut-off is that
    /// earliest time, and no row is old enough.
    public func cutoff(forTenant tenant: String?, now: AuditTimestamp) -> AuditTimestamp? {
        guard case .maximumAge(let period) = limit(forTenant: tenant) else { return nil }
        let (cut, overflow) = now.microsecondsSinceEpoch.subtractingReportingOverflow(period.microseconds)
        return AuditTimestamp(microsecondsSinceEpoch: overflow ? .min : cut)
    }

    /// Whether the policy lets a row of `tenant` recorded at `recordedAt` expire at `now`:
    /// `recordedAt` is strictly before ``cutoff(forTenant:now:)``. Legal holds are not
    /// consulted; see ``allowsExpiry(of:now:holds:)``.
    public func allowsExpiry(tenant: String?, recordedAt: AuditTimestamp, now: AuditTimestamp) -> Bool {
        guard let cutoff = cutoff(forTenant: tenant, now: now) else { return false }
        return recordedAt < cutoff
    }

    /// Whether `entry` may expire at `now`: the policy allows it and no *active* hold among
    /// `holds` matches it (released holds are skipped). Pass ``AuditStore/activeHolds()``, read
    /// once per expiry run.
    public func allowsExpiry(of entry: AuditEntry, now: AuditTimestamp, holds: [LegalHold]) -> Bool {
        allowsExpiry(tenant: entry.tenant, recordedAt: entry.recordedAt, now: now)
            && !holds.contains { $0.isActive && $0.matches(entry) }
    }

    private static func checkTenant(_ tenant: String) throws(AuditError) {
        do {
            try LegalHold.checkValue(tenant, as: .tenant)
        } catch {
            throw AuditError(.invalidInput, "retention policy: tenant \(OutputEscaping.jsonQuoted(tenant)): \(error.message)",
                             field: "tenants")
        }
    }
}
