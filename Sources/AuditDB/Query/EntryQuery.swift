/// Which entries to read: filters, order, page size and where the page starts.
///
/// All filters are combined with AND; a nil filter matches everything. Text filters compare
/// byte for byte (no case folding, no Unicode normalisation). A text filter no entry can match
/// (empty, longer than its field's limit or holding a control character: the rules on
/// ``AuditEvent``) throws ``AuditError/Code/invalidInput`` naming the field. Entries always come in seq
/// order (ascending or descending), so a ``QueryCursor`` taken from one page continues exactly
/// where it stopped, also while appends continue.
///
/// ```swift
/// var query = EntryQuery(limit: 100, descending: true, actor: "alice")
/// query.recordedAt = AuditTimestamp(lastWeek)..<AuditTimestamp.now()
/// let page = try await store.page(query)
/// if let next = page.nextCursor { query.cursor = next }   // the next 100
/// ```
public struct EntryQuery: Sendable, Hashable {
    /// What to do with a row that fails verification as it is read.
    public enum UnverifiedRows: Sendable, Hashable {
        /// Throw ``AuditError/Code/integrityViolation`` naming the row (the default): the
        /// caller never sees a row that is not proven.
        case `throw`
        /// Return it with ``AuditEntry/finding`` set and ``AuditEntry/isVerified`` false, so
        /// an investigator can see what is there. Never use such a row as evidence.
        case mark
    }

    /// Only entries after this seq, in the query's order (below it when descending). A lower-level
    /// form of ``cursor``; set one or the other.
    public var afterSeq: Int64?
    /// Where the previous page stopped (``QueryPage/nextCursor``).
    public var cursor: QueryCursor?
    /// At most this many entries per page (1...10,000). ``AuditStore/stream(_:pageSize:)`` reads
    /// every match and ignores it.
    public var limit: Int = 100
    /// Newest first instead of oldest first.
    public var descending = false
    public var tenant: String?
    public var actor: String?
    public var action: String?
    public var resourceType: String?
    public var resourceId: String?
    public var outcome: AuditOutcome?
    public var severity: AuditSeverity?
    public var correlationId: String?
    /// Entries the engine recorded in this half-open time range.
    public var recordedAt: Range<AuditTimestamp>?
    /// Entries whose caller-supplied time is in this half-open range (entries without one never match).
    public var occurredAt: Range<AuditTimestamp>?
    /// Entries whose seq is in this range.
    public var seqs: ClosedRange<Int64>?
    /// What to do with a row that fails verification. Default ``UnverifiedRows/throw``.
    public var unverifiedRows: UnverifiedRows = .throw

    /// A query; every parameter is optional.
    public init(afterSeq: Int64? = nil, limit: Int = 100, descending: Bool = false, actor: String? = nil,
                action: String? = nil, tenant: String? = nil, resourceType: String? = nil, resourceId: String? = nil,
                outcome: AuditOutcome? = nil, severity: AuditSeverity? = nil, correlationId: String? = nil,
                recordedAt: Range<AuditTimestamp>? = nil, occurredAt: Range<AuditTimestamp>? = nil,
                seqs: ClosedRange<Int64>? = nil, cursor: QueryCursor? = nil, unverifiedRows: UnverifiedRows = .throw)
    {
        self.afterSeq = afterSeq
        self.limit = limit
        self.descending = descending
        self.actor = actor
        self.action = action
        self.tenant = tenant
        self.resourceType = resourceType
        self.resourceId = resourceId
        self.outcome = outcome
        self.severity = severity
        self.correlationId = correlationId
        self.recordedAt = recordedAt
        self.occurredAt = occurredAt
        self.seqs = seqs
        self.cursor = cursor
        self.unverifiedRows = unverifiedRows
    }
}

/// Where a page of results stopped. Pass it as ``EntryQuery/cursor`` of the same query to get
/// the next page. Its ``token`` is a short text (`"1234.asc"`) for command lines and URLs.
public struct QueryCursor: Sendable, Hashable, CustomStringConvertible {
    /// The last seq of the page.
    public let seq: Int64
    /// Whether the page was newest first.
    public let descending: Bool

    /// A cursor after `seq` in the given order.
    public init(seq: Int64, descending: Bool) {
        self.seq = seq
        self.descending = descending
    }

    /// Parses a ``token``; nil if it is not one.
    public init?(token: String) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let seq = DecimalText.nonNegativeInt64(parts[0]) else { return nil }
        switch parts[1] {
        case "asc": self.init(seq: seq, descending: false)
        case "desc": self.init(seq: seq, descending: true)
        default: return nil
        }
    }

    /// The text form, e.g. `1234.desc`.
    public var token: String { "\(seq).\(descending ? "desc" : "asc")" }
    public var description: String { token }
}

/// One page of a query's results.
public struct QueryPage: Sendable {
    /// The entries, in the query's order, each verified as it was read.
    public let entries: [AuditEntry]
    /// Where to continue, or nil when this page was the last (it had fewer entries than the
    /// limit). A page of exactly `limit` entries has a cursor even if nothing follows; the next
    /// page is then empty.
    public let nextCursor: QueryCursor?
}
