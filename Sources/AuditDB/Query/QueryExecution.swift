import GRDB

/// Turns an ``EntryQuery`` into SQL over the indexes of migration 0003 and reads one page.
///
/// Actor and resource id lookups go through indexes bucketed by `seq >> 14`
/// (``bucketShift``): newest or oldest bucket first until the page is full, the first buckets one
/// statement each, then runs of buckets (QueryExecution+Buckets.swift). Everything else is one
/// statement whose plan SQLite picks (tests check the plans).
enum QueryExecution {
    /// Rows per index bucket: `1 << bucketShift`. Must match Migrations/0003-query-indexes.sql.
    static let bucketShift: Int64 = 14

    struct Plan: Sendable {
        var conditions: [String] = []
        var bindings: [any DatabaseValueConvertible & Sendable] = []
        /// How many of `conditions`, from the first, test only columns of `audit_entries_tenant_seq`
        /// (tenant, action, outcome, severity: migration 0010); SQLite tests those on the index
        /// entry, before it reads the row. (The bucketed indexes hold action, outcome and severity
        /// too, migration 0011; SQLite tests terms an index covers before the others whatever
        /// their order.)
        var indexedConditions = 0
        var bucketed = false
        /// Buckets read one statement each before runs of buckets (QueryExecution+Buckets.swift);
        /// tests set 0 to read every bucket in runs.
        var singleBuckets = QueryExecution.singleBuckets
        /// Keep SQLite from driving the query by the seq range when a time index is better.
        var preferTimeIndex = false
        /// A time index yields rows in time order, so SQLite sorts them by seq: select and sort
        /// only seqs (from the index, without reading rows), then read the page's rows by seq.
        var seqsFirst = false
        /// Tenant + time window: walk the tenant's rows in seq order first (``tenantWalkBudget``
        /// rows at most), then the time index for the rest (QueryExecution+TenantWalk.swift).
        var tenantWalk = false
        /// The tenant every row must have (the query's, or the scoped handle's).
        var tenant: String?
        /// The recorded-time window in microseconds, half-open.
        var recordedWindow: (lower: Int64, upper: Int64)?
        var descending = false
        var limit = 100
        var lowerSeq: Int64 = 1
        var upperSeq: Int64 = .max
        var mode: EntryQuery.UnverifiedRows = .throw
    }

    /// Checks the query and builds its plan (without seq bounds from the store's state).
    static func plan(_ query: EntryQuery, forcedTenant: String? = nil) throws(AuditError) -> Plan {
        guard (1...10_000).contains(query.limit) else {
            throw AuditError(.invalidInput, "limit must be between 1 and 10000 (got \(query.limit))", field: "limit")
        }
        var plan = Plan()
        plan.descending = query.descending
        plan.limit = query.limit
        plan.mode = query.unverifiedRows
        if query.afterSeq != nil && query.cursor != nil {
            throw AuditError(.invalidInput, "set either afterSeq or cursor, not both", field: "cursor")
        }
        if let cursor = query.cursor, cursor.descending != query.descending {
            throw AuditError(
                .invalidInput,
                "the cursor \(cursor.token) continues \(cursor.descending ? "a newest-first" : "an oldest-first") query; use it with the same order",
                field: "cursor")
        }
        if let seqs = query.seqs {
            plan.lowerSeq = max(1, seqs.lowerBound)
            plan.upperSeq = seqs.upperBound
        }
        if let after = query.cursor?.seq ?? query.afterSeq {
            if query.descending {
                plan.upperSeq = min(plan.upperSeq, after == .min ? .min : after - 1)
            } else {
                plan.lowerSeq = max(plan.lowerSeq, after == .max ? .max : after + 1)
            }
        }
        if let forcedTenant {
            if let asked = query.tenant, !asked.utf8.elementsEqual(forcedTenant.utf8) {  // bytes, as stored: "é" composed and decomposed are two tenants
                throw AuditError(
                    .permissionDenied,
                    "this handle is scoped to one tenant and cannot read another tenant's entries; open a handle for that tenant",
                    field: "tenant")
            }
        }
        try checkFilters(query)
        func text(_ column: String, _ value: String?) {
            guard let value else { return }
            plan.conditions.append("\(column) = ?")
            plan.bindings.append(value)
        }
        plan.tenant = forcedTenant ?? query.tenant
        plan.bucketed = query.actor != nil || query.resourceId != nil
        // With an actor or resource id, the bucketed index is the one to seek; without statistics
        // SQLite would prefer the tenant's index (0008) and walk the tenant's seq range for every
        // bucket. The unary + keeps the tenant a filter.
        text(plan.bucketed ? "+tenant" : "tenant", plan.tenant)
        // The columns of the tenant index first (counted in indexedConditions), then the others.
        text("action", query.action)
        if let outcome = query.outcome { plan.conditions.append("outcome = ?"); plan.bindings.append(Int64(outcome.code)) }
        if let severity = query.severity { plan.conditions.append("severity = ?"); plan.bindings.append(Int64(severity.code)) }
        plan.indexedConditions = plan.conditions.count
        text("actor", query.actor)
        text("resource_type", query.resourceType)
        text("resource_id", query.resourceId)
        text("correlation_id", query.correlationId)
        if let range = query.recordedAt {
            plan.conditions.append("recorded_at >= ? AND recorded_at < ?")
            plan.bindings += [range.lowerBound.microsecondsSinceEpoch, range.upperBound.microsecondsSinceEpoch]
            plan.recordedWindow = (range.lowerBound.microsecondsSinceEpoch, range.upperBound.microsecondsSinceEpoch)
        }
        if let range = query.occurredAt {
            plan.conditions.append("occurred_at >= ? AND occurred_at < ?")
            plan.bindings += [range.lowerBound.microsecondsSinceEpoch, range.upperBound.microsecondsSinceEpoch]
        }
        // A recorded-time range is usually far narrower than the seq bounds (which are always
        // present); without statistics SQLite would pick the rowid range.
        plan.preferTimeIndex = !plan.bucketed && query.recordedAt != nil && query.seqs == nil
        plan.seqsFirst = !plan.bucketed && query.recordedAt != nil
        plan.tenantWalk = plan.seqsFirst && plan.tenant != nil
        return plan
    }

    /// Refuses a text filter no entry can match: empty, longer than its field's limit or with a
    /// control character (the rules `append` and `migrate adopt` hold every row to, documented on
    /// ``AuditEvent``). Such a filter is a mistake in the caller's input (a stray newline, a
    /// truncated paste); an empty page would hide it.
    static func checkFilters(_ query: EntryQuery) throws(AuditError) {
        try checkFilters(tenant: query.tenant, actor: query.actor, action: query.action, resourceType: query.resourceType,
                         resourceId: query.resourceId, correlationId: query.correlationId)
    }

    /// ``checkFilters(_:)`` for the text filters of a query or an export.
    static func checkFilters(tenant: String?, actor: String?, action: String?, resourceType: String?, resourceId: String?,
                             correlationId: String?) throws(AuditError)
    {
        let filters: [(String, String?, Int)] = [
            ("tenant", tenant, FieldLimits.tenant), ("actor", actor, FieldLimits.actor),
            ("action", action, FieldLimits.action), ("resourceType", resourceType, FieldLimits.resourceType),
            ("resourceId", resourceId, FieldLimits.resourceId), ("correlationId", correlationId, FieldLimits.correlationId),
        ]
        for case (let field, var value?, let limit) in filters {
            let problem = value.withUTF8 { bytes -> String? in
                if bytes.isEmpty { return "must not be empty (omit the filter to match every entry)" }
                if bytes.count > limit {
                    return "is \(bytes.count) bytes of UTF-8, over the field's limit of \(limit): no entry can match it"
                }
                if let offset = EncodedEvent.firstControlCharacter(bytes) {
                    return "contains a control character at byte \(offset): no entry can match it"
                }
                return nil
            }
            if let problem { throw .invalid(field, "filter " + problem) }
        }
    }

    /// The seq as the statements of tenant, actor and resource id pages write it:
    /// `audit_entries_tenant_seq` (migration 0010), `audit_entries_actor` and
    /// `audit_entries_resource` (migration 0011) hold the seq as the key expression `seq >> 0`,
    /// and SQLite seeks and orders by an expression key only when the statement names the same
    /// expression.
    static let seqKey = "(seq >> 0)"

    /// The SQL of one statement of the plan: with `bucket`, the statement for that bucket.
    static func sql(_ plan: Plan, bucketed: Bool) -> String {
        let seq = plan.preferTimeIndex ? "+seq" : (plan.tenant != nil || plan.bucketed ? seqKey : "seq")
        var conditions = ["\(seq) >= ?", "\(seq) <= ?"]
        if bucketed { conditions.append("(seq >> \(bucketShift)) = ?") }
        conditions += plan.conditions
        let columns = plan.seqsFirst && !bucketed ? "seq" : RowLayout.columns
        let order = seq == "+seq" ? "seq" : seq
        return "SELECT \(columns) FROM audit_entries WHERE \(conditions.joined(separator: " AND ")) "
            + "ORDER BY \(order) \(plan.descending ? "DESC" : "ASC") LIMIT ?"
    }

    static let rowBySeqSQL = RowLayout.select + " WHERE seq = ?"

    /// The newest row's seq (0 for an empty log), on a cached statement: every page asks, and
    /// preparing the statement each time was a twentieth of a page.
    static func lastSeq(_ db: Database) throws -> Int64 {
        let stmt = try db.cachedStatement(sql: "SELECT seq FROM audit_entries ORDER BY seq DESC LIMIT 1").sqliteStatement
        defer { SQLite.reset(stmt) }
        return try SQLite.step(stmt, while: "read the newest seq") ? SQLite.int64(stmt, 0) : 0
    }

    /// Reads one page inside the caller's read transaction.
    static func page(_ db: Database, plan: Plan, storeID: StoreID, keys: KeyRing, claims: ErasureClaimsCache? = nil) throws -> QueryPage {
        let last = try lastSeq(db)
        let lower = plan.lowerSeq
        let upper = min(plan.upperSeq, last)
        guard lower <= upper else { return QueryPage(entries: [], nextCursor: nil) }
        var reader = try EntryReader(db, storeID: storeID, keys: keys, mode: plan.mode, claimsCache: claims)
        var entries: [AuditEntry] = []
        entries.reserveCapacity(min(plan.limit, 1_024))
        if plan.bucketed {
            try readBuckets(db, plan: plan, lower: lower, upper: upper, reader: &reader, into: &entries)
        } else if plan.seqsFirst {
            let seqs = plan.tenantWalk
                ? try tenantWalkSeqs(db, plan: plan, lower: lower, upper: upper, signed: { try reader.isSigned(at: $0) })
                : try Int64.fetchAll(
                    db.cachedStatement(sql: sql(plan, bucketed: false)),
                    arguments: StatementArguments([lower, upper] + plan.bindings + [Int64(plan.limit)]))
            let row = try db.cachedStatement(sql: rowBySeqSQL)
            for seq in seqs {
                try SQLite.bind(row.sqliteStatement, 1, seq)
                try reader.read(row, into: &entries)
            }
        } else if readsNewestFirstAscending(plan) {
            try readNewestFirstAscending(db, plan: plan, lower: lower, upper: upper, reader: &reader, into: &entries)
        } else {
            let statement = try db.cachedStatement(sql: sql(plan, bucketed: false))
            try statement.setArguments(StatementArguments([lower, upper] + plan.bindings + [Int64(plan.limit)]))
            try reader.read(statement, into: &entries)
        }
        let next = entries.count == plan.limit ? entries.last.map { QueryCursor(seq: $0.seq, descending: plan.descending) } : nil
        return QueryPage(entries: entries, nextCursor: next)
    }
}

extension AuditStore {
    /// Reads one page of entries matching `query`, each verified (MAC and chain link) as it is
    /// read, with a cursor for the next page.
    ///
    /// - Throws: ``AuditError`` `invalidInput` for a bad limit or cursor; `integrityViolation`
    ///   naming the first row that fails verification (unless the query asks to
    ///   ``EntryQuery/UnverifiedRows/mark`` such rows); storage errors.
    public func page(_ query: EntryQuery) async throws -> QueryPage {
        try await page(query, forcedTenant: nil)
    }

    /// Reads the entries of one page (see ``page(_:)``).
    public func entries(_ query: EntryQuery = EntryQuery()) async throws -> [AuditEntry] {
        try await page(query, forcedTenant: nil).entries
    }

    /// - Parameter before: run first in the page's read transaction (the same snapshot).
    func page(_ query: EntryQuery, forcedTenant: String?, before: (@Sendable (Database) throws -> Void)? = nil) async throws -> QueryPage {
        let plan = try QueryExecution.plan(query, forcedTenant: forcedTenant)
        let storeID = self.storeID
        let keys = self.keys
        let claims = erasureClaims
        do {
            return try await pool.read { db in
                try before?(db)
                return try QueryExecution.page(db, plan: plan, storeID: storeID, keys: keys, claims: claims)
            }
        } catch let error as AuditError {
            throw error
        } catch {
            throw AuditError.from(error, while: "read entries")
        }
    }

    /// Every entry matching `query`, read lazily a page at a time (each page in its own read
    /// transaction), so a result of millions of rows streams in bounded memory. Entries appended
    /// while the stream runs are included if they match and come after the position reached.
    /// ``EntryQuery/limit`` is ignored; use `prefix(_:)` to stop early.
    ///
    /// - Parameter pageSize: rows fetched per read (1...10,000).
    public func stream(_ query: EntryQuery, pageSize: Int = 1_000) -> AuditEntryStream {
        AuditEntryStream(store: self, query: query, pageSize: pageSize, forcedTenant: nil)
    }

    /// A handle that can only ever read (and append) the entries of `tenant`, whatever query
    /// it is given.
    public func scoped(toTenant tenant: String) -> TenantScopedStore {
        TenantScopedStore(store: self, tenant: tenant)
    }
}

/// An `AsyncSequence` of verified entries, fetched a page at a time.
public struct AuditEntryStream: AsyncSequence, Sendable {
    public typealias Element = AuditEntry
    let store: AuditStore
    let query: EntryQuery
    let pageSize: Int
    let forcedTenant: String?
    /// Applied to every entry (``MaskedReader``).
    var policy: MaskingPolicy = .none

    public func makeAsyncIterator() -> Iterator {
        Iterator(stream: self)
    }

    /// Reads the next page when the current one is used up.
    public struct Iterator: AsyncIteratorProtocol {
        let stream: AuditEntryStream
        var buffer: [AuditEntry] = []
        var index = 0
        var cursor: QueryCursor?
        var finished = false

        init(stream: AuditEntryStream) { self.stream = stream }

        public mutating func next() async throws -> AuditEntry? {
            if index < buffer.count {
                defer { index += 1 }
                return buffer[index]
            }
            guard !finished else { return nil }
            var query = stream.query
            query.limit = stream.pageSize
            if let cursor {
                query.afterSeq = nil
                query.cursor = cursor
            }
            let page = try await stream.store.page(query, forcedTenant: stream.forcedTenant)
            buffer = stream.policy.isEmpty ? page.entries : page.entries.map(stream.policy.apply)
            index = 0
            cursor = page.nextCursor
            finished = page.nextCursor == nil
            guard !buffer.isEmpty else {
                finished = true
                return nil
            }
            index = 1
            return buffer[0]
        }
    }
}

/// A view of a store limited to one tenant: every query it runs is restricted to that tenant,
/// a query naming another tenant is refused, and appends are recorded under that tenant.
public struct TenantScopedStore: Sendable {
    let store: AuditStore
    /// The only tenant this handle can see.
    public let tenant: String

    /// One page of this tenant's entries matching `query` (see ``AuditStore/page(_:)``).
    /// - Throws: ``AuditError`` `permissionDenied` if `query.tenant` names another tenant.
    public func page(_ query: EntryQuery) async throws -> QueryPage {
        try await store.page(query, forcedTenant: tenant)
    }

    /// The entries of one page of this tenant's entries.
    public func entries(_ query: EntryQuery = EntryQuery()) async throws -> [AuditEntry] {
        try await store.page(query, forcedTenant: tenant).entries
    }

    /// All of this tenant's entries matching `query`, streamed.
    public func stream(_ query: EntryQuery, pageSize: Int = 1_000) -> AuditEntryStream {
        AuditEntryStream(store: store, query: query, pageSize: pageSize, forcedTenant: tenant)
    }

    /// Appends `event` under this tenant.
    /// - Throws: ``AuditError`` `permissionDenied` if the event names another tenant.
    @discardableResult
    public func append(_ event: AuditEvent) async throws -> Int64 {
        var event = event
        if let other = event.tenant, !other.utf8.elementsEqual(tenant.utf8) {  // bytes, as stored and filtered
            throw AuditError(.permissionDenied, "this handle is scoped to one tenant and cannot append for another", field: "tenant")
        }
        event.tenant = tenant
        return try await store.append(event)
    }
}
