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

    /// One tenant's override.
    ///
    /// The tenant is compared byte for byte (its UTF-8), as queries, holds and the expiry entry
    /// compare it: "café" composed (U+00E9) and decomposed (e + U+0301) are two tenants, although
    /// Swift's `String ==` equates them.
    public struct TenantLimit: Sendable, Hashable {
        /// The tenant, exactly as the rows hold it.
        public let tenant: String
        /// How long that tenant's rows are kept.
        public let limit: Limit

        /// An override of `limit` for the rows of `tenant`.
        public init(tenant: String, limit: Limit) {
            self.tenant = tenant
            self.limit = limit
        }

        public static func == (a: TenantLimit, b: TenantLimit) -> Bool {
            JSONObject.Key(a.tenant) == JSONObject.Key(b.tenant) && a.limit == b.limit
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(JSONObject.Key(tenant))
            hasher.combine(limit)
        }
    }

    /// The limit for rows without an override (and rows without a tenant).
    public let defaultLimit: Limit
    /// The per-tenant overrides, each tenant once (byte for byte), in code point order.
    public let tenantOverrides: [TenantLimit]
    /// The overrides by tenant, for lookups.
    let limitsByTenant: [JSONObject.Key: Limit]

    /// Per-tenant limits, by tenant. A Swift dictionary keeps one of two canonically equivalent
    /// tenants ("café" composed and decomposed) only; ``tenantOverrides`` has them all, and
    /// ``limit(forTenant:)`` compares byte for byte.
    public var tenantLimits: [String: Limit] {
        Dictionary(tenantOverrides.map { ($0.tenant, $0.limit) }, uniquingKeysWith: { first, _ in first })
    }

    /// A policy.
    ///
    /// - Parameters:
    ///   - defaultLimit: The limit for every row whose tenant has no override.
    ///   - tenantLimits: Overrides by tenant; each tenant must be a valid `tenant` value (see
    ///     ``AuditEvent``), or no row could ever match it.
    /// - Throws: ``AuditError`` `invalidInput` naming the tenant that breaks a rule.
    public init(default defaultLimit: Limit, tenants tenantLimits: [String: Limit] = [:]) throws(AuditError) {
        try self.init(default: defaultLimit, overrides: tenantLimits.map { TenantLimit(tenant: $0.key, limit: $0.value) })
    }

    /// A policy with `overrides`, which may name canonically equivalent tenants apart (compared
    /// byte for byte, as the rows are).
    ///
    /// - Throws: ``AuditError`` `invalidInput` naming a tenant that is not a valid `tenant` value
    ///   (see ``AuditEvent``), or that `overrides` names twice (the same bytes).
    public init(default defaultLimit: Limit, overrides: [TenantLimit]) throws(AuditError) {
        let sorted = overrides.sorted(by: Self.tenantOrder)
        var limits: [JSONObject.Key: Limit] = [:]
        for override in sorted {
            try Self.checkTenant(override.tenant)
            guard limits.updateValue(override.limit, forKey: JSONObject.Key(override.tenant)) == nil else {
                throw AuditError(.invalidInput, "retention policy: tenant \(OutputEscaping.jsonQuoted(override.tenant)) is named twice",
                                 field: "tenants")
            }
        }
        self.defaultLimit = defaultLimit
        self.tenantOverrides = sorted
        self.limitsByTenant = limits
    }

    /// A policy from text, as in a configuration file: each limit is `forever` or a
    /// ``RetentionPeriod`` (`90d`, `12h`, `2w`).
    ///
    /// - Throws: ``AuditError`` `invalidInput`; the field is `default` or `tenants[NAME]`.
    public init(parsingDefault defaultText: String, tenants: [String: String] = [:]) throws(AuditError) {
        try self.init(parsingDefault: defaultText, tenantTexts: tenants.map { ($0.key, $0.value) })
    }

    /// A policy from text, with the overrides as (tenant, limit text) pairs: canonically
    /// equivalent tenants stay apart (compared byte for byte).
    ///
    /// - Throws: ``AuditError`` `invalidInput`; the field is `default` or `tenants[NAME]`, or
    ///   `tenants` for a tenant named twice.
    public init(parsingDefault defaultText: String, tenantTexts: [(tenant: String, limit: String)]) throws(AuditError) {
        let defaultLimit = try Limit(parsing: defaultText, field: "default")
        var overrides: [TenantLimit] = []
        for (tenant, text) in tenantTexts {
            try Self.checkTenant(tenant)
            overrides.append(TenantLimit(tenant: tenant, limit: try Limit(parsing: text, field: "tenants[\(OutputEscaping.jsonQuoted(tenant))]")))
        }
        try self.init(default: defaultLimit, overrides: overrides)
    }

    /// Code point order (what a Python `sorted` gives): canonically equivalent tenants stay apart.
    static func tenantOrder(_ a: TenantLimit, _ b: TenantLimit) -> Bool {
        a.tenant.unicodeScalars.lexicographicallyPrecedes(b.tenant.unicodeScalars)
    }

    /// The limit that applies to rows of `tenant` (nil: rows without a tenant), found byte for byte.
    public func limit(forTenant tenant: String?) -> Limit {
        tenant.flatMap { limitsByTenant[JSONObject.Key($0)] } ?? defaultLimit
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
