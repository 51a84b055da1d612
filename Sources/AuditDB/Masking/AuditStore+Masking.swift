import GRDB

/// The store's masking rules, as its newest masking entry set them (docs/masking.md).
public struct StoreMasking: Sendable {
    /// The rules, sorted; empty when the store masks nothing.
    public let rules: [MaskRule]
    /// The masking entry that set them, or nil if none was ever made.
    public let seq: Int64?
    /// Who set them (the entry's actor).
    public let setBy: String?
    /// When.
    public let setAt: AuditTimestamp?
    /// Why, if given.
    public let reason: String?
}

/// Masking configured per store, as signed log entries: action `auditdb.masking`, details
/// `{"reason":…,"rules":["actor=partial",…]}` (reason optional). The newest one holds. It is
/// in the log, not in a side file, so that changing it needs the key and leaves a trace: an
/// entry that was changed, or removed with rows after it, fails `verify` (`mac-mismatch`,
/// `missing-rows`), and reading a masking entry that fails verification refuses the read
/// rather than show values unmasked.
extension AuditStore {
    /// The action of a masking entry.
    static let maskingAction = "auditdb.masking"

    /// The masking entries, newest first, through the engine index (its WHERE terms repeated so
    /// that SQLite may use the partial index `audit_entries_engine`; ``HoldLog/source(_:)``).
    static func maskingEntriesSQL(throughTable: Bool) -> String {
        """
        SELECT seq FROM audit_entries\(HoldLog.source(throughTable))
        WHERE action = 'auditdb.masking' AND action >= 'auditdb.' AND action < 'auditdb/' AND seq >= 1
        ORDER BY seq DESC
        """
    }

    /// Sets the store's masking rules (replacing the ones before; an empty list masks nothing)
    /// by appending a masking entry. Every `query` and `export` of the CLI applies them from then
    /// on; in Swift, ``maskingPolicy(key:adding:)`` reads them.
    /// - Parameters:
    ///   - rules: The rules; at most 256, one per path.
    ///   - by: Who sets them (the entry's actor).
    ///   - reason: Why (a ticket), optional.
    /// - Returns: The entry's seq.
    /// - Throws: ``AuditError`` `invalidInput` for conflicting rules, a bad name or reason.
    @discardableResult
    public func setMasking(_ rules: [MaskRule], by: String, reason: String? = nil) async throws -> Int64 {
        try Self.checkPerson(by, field: "by")
        if let reason { try LegalHold.checkReason(reason) }
        guard rules.count <= 256 else { throw AuditError(.invalidInput, "at most 256 masking rules (got \(rules.count))", field: "mask") }
        // Conflicts are refused here (a hash rule's key is the reader's, not the store's).
        for rule in rules where rules.contains(where: { $0.path == rule.path && $0.method != rule.method }) {
            throw AuditError(.invalidInput, "\(rule.path) is masked twice with different methods; keep one", field: "mask")
        }
        var details: [String: JSONValue] = ["rules": .array(Set(rules).sorted().map { .string($0.description) })]
        if let reason { details["reason"] = .string(reason) }
        return try await appendEngineEntry(AuditEvent(actor: by, action: Self.maskingAction, resourceType: "masking",
                                                      severity: .notice, details: AuditDetails(details)))
    }

    /// The store's masking rules, read through verification from its newest masking entry.
    /// - Throws: ``AuditError`` `integrityViolation` if that entry fails verification or
    ///   cannot be read as a masking entry (nothing should then be shown: its masks would be
    ///   lost); storage errors.
    public func maskingConfiguration() async throws -> StoreMasking {
        let storeID = self.storeID, keys = self.keys
        do {
            return try await pool.read { db in try Self.readMasking(db, storeID: storeID, keys: keys) }
        } catch let error as AuditError {
            throw error
        } catch {
            throw AuditError.from(error, while: "read the masking entries")
        }
    }

    /// The policy a reader of this store applies: the store's rules, plus `extra` (which may
    /// mask more, never less: ``MaskingPolicy/adding(_:key:)``), with `key` for hash rules.
    /// The key must not be one of the store's row keys.
    /// - Throws: ``AuditError`` as ``maskingConfiguration()`` and ``MaskingPolicy/init(rules:key:)``;
    ///   `invalidKeyFile` for a row key given as the masking key.
    public func maskingPolicy(key: MaskingKey? = nil, adding extra: [MaskRule] = []) async throws -> MaskingPolicy {
        try key?.checkDistinct(from: keys)
        let stored = try await maskingConfiguration()
        return try MaskingPolicy(rules: stored.rules, key: key).adding(extra)
    }

    /// A reader that applies `policy` to every entry it returns.
    public func masked(by policy: MaskingPolicy) -> MaskedReader {
        MaskedReader(store: self, forcedTenant: nil, policy: policy)
    }

    static func readMasking(_ db: Database, storeID: StoreID, keys: KeyRing) throws -> StoreMasking {
        guard try db.tableExists("audit_entries") else { return StoreMasking(rules: [], seq: nil, setBy: nil, setAt: nil, reason: nil) }
        var reader = try EntryReader(db, storeID: storeID, keys: keys, mode: .mark)
        let rowStatement = try db.cachedStatement(sql: try RowLayout.select(db) + " WHERE seq = ?")
        for seq in try Int64.fetchAll(db, sql: maskingEntriesSQL(throughTable: HoldLog.mustReadTable(db))) {
            var entries: [AuditEntry] = []
            try rowStatement.setArguments([seq])
            reader.lastSeq = nil
            try reader.read(rowStatement, into: &entries)
            guard let entry = entries.first else { continue }
            if let finding = entry.finding {
                throw AuditError(.integrityViolation, "masking entry \(seq) failed verification (\(finding)); nothing is shown, since its masks could be lost. Run `auditdb verify`.")
            }
            guard entry.origin == .recorded else { continue }  // legacy data that used the action: not a masking entry
            do {
                let (rules, reason) = try parseMasking(entry)
                return StoreMasking(rules: rules, seq: seq, setBy: entry.actor, setAt: entry.recordedAt, reason: reason)
            } catch {
                throw AuditError(.integrityViolation, "masking entry \(seq) is signed but cannot be read as one (\(error.message)); nothing is shown, since its masks could be lost.")
            }
        }
        return StoreMasking(rules: [], seq: nil, setBy: nil, setAt: nil, reason: nil)
    }

    private static func parseMasking(_ entry: AuditEntry) throws(AuditError) -> ([MaskRule], String?) {
        let object: JSONObject
        switch entry.strictDetails() {
        case .success(let o): object = o
        case .failure(let problem): throw AuditError(.invalidInput, problem.reason)
        }
        if let unknown = object.firstKey(notIn: ["rules", "reason"]) {
            throw AuditError(.invalidInput, "an unknown member \(OutputEscaping.jsonQuoted(unknown))")
        }
        guard let texts = object["rules"]?.elements?.map(\.text), texts.allSatisfy({ $0 != nil }) else {
            throw AuditError(.invalidInput, "rules is not an array of strings")
        }
        let reason = object["reason"]?.text
        if object["reason"] != nil, reason == nil { throw AuditError(.invalidInput, "reason is not a string") }
        var rules: [MaskRule] = []
        for text in texts { rules.append(try MaskRule(parsing: text!)) }
        for rule in rules where rules.contains(where: { $0.path == rule.path && $0.method != rule.method }) {
            throw AuditError(.invalidInput, "\(rule.path) is masked twice")
        }
        return (Set(rules).sorted(), reason)
    }
}

/// A view of a store that masks every entry it returns (``AuditStore/masked(by:)``,
/// ``TenantScopedStore/masked(by:)``).
public struct MaskedReader: Sendable {
    let store: AuditStore
    let forcedTenant: String?
    /// The policy applied.
    public let policy: MaskingPolicy

    /// One page (see ``AuditStore/page(_:)``), masked.
    public func page(_ query: EntryQuery) async throws -> QueryPage {
        let page = try await store.page(query, forcedTenant: forcedTenant)
        return QueryPage(entries: page.entries.map(policy.apply), nextCursor: page.nextCursor)
    }

    /// The entries of one page, masked.
    public func entries(_ query: EntryQuery = EntryQuery()) async throws -> [AuditEntry] {
        try await page(query).entries
    }

    /// Every match, streamed (see ``AuditStore/stream(_:pageSize:)``), masked.
    public func stream(_ query: EntryQuery, pageSize: Int = 1_000) -> AuditEntryStream {
        AuditEntryStream(store: store, query: query, pageSize: pageSize, forcedTenant: forcedTenant, policy: policy)
    }
}

extension TenantScopedStore {
    /// This tenant's entries, masked by `policy`.
    public func masked(by policy: MaskingPolicy) -> MaskedReader {
        MaskedReader(store: store, forcedTenant: tenant, policy: policy)
    }
}
