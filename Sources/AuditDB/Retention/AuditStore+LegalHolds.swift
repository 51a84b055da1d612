import GRDB
import Synchronization

/// Legal holds: placed and released as signed entries of the log, read back through
/// verification (docs/retention.md).
extension AuditStore {
    /// Places a legal hold: appends a signed `auditdb.hold.placed` entry (durable before this
    /// returns). From then on, rows that `matcher` selects are never expired, whatever their
    /// age, until the hold is released.
    ///
    /// Placing never depends on reading the other holds, so a hold can be placed even on a store
    /// whose hold entries were tampered with. Two holds with the same matcher are two holds
    /// (e.g. two cases); each is released on its own.
    ///
    /// ```swift
    /// let hold = try await store.placeHold(.resource(type: "document", id: "doc-7"),
    ///                                      reason: "litigation 2026-114", placedBy: "legal:dana")
    /// print(hold.id)   // the seq of the placing entry
    /// ```
    ///
    /// - Parameters:
    ///   - matcher: Which rows to keep; its values follow the rules of the fields they match
    ///     (``AuditEvent``: not empty, no control characters, the field's length limit).
    ///   - reason: Why (1 to 1,024 bytes of UTF-8, no control characters).
    ///   - placedBy: Who places it: the entry's actor (the rules of `actor`).
    /// - Returns: The hold; its ``LegalHold/id`` is the seq of the placing entry.
    /// - Throws: ``AuditError`` `invalidInput` naming the field that breaks a rule (nothing is
    ///   written); storage errors.
    public func placeHold(_ matcher: LegalHold.Matcher, reason: String, placedBy: String) async throws -> LegalHold {
        try LegalHold.check(matcher)
        try LegalHold.checkReason(reason)
        try Self.checkPerson(placedBy, field: "placedBy")
        return try await holdTransaction("place a legal hold") { db, _, append in
            let previous = try Int64.fetchOne(db, sql: HoldLog.newestSQL(throughTable: HoldLog.mustReadTable(db))) ?? 0
            let entry = try EncodedEvent(validating: HoldEntry.placed(matcher, reason: reason, previous: previous).event(by: placedBy))
            let seq = try append([entry]).lowerBound
            return LegalHold(id: seq, matcher: matcher, reason: reason, placedBy: placedBy,
                             placedAt: try Self.recordedAt(seq, db), release: nil)
        }
    }

    /// Releases a legal hold: appends a signed `auditdb.hold.released` entry naming it (durable
    /// before this returns). Rows it kept may expire again under the retention policy, unless
    /// another active hold matches them.
    ///
    /// The holds are read and verified first, in the same write transaction, so the release
    /// names a hold that was placed, is still active, and is proven.
    ///
    /// - Parameters:
    ///   - id: The hold's id (the seq of its placing entry).
    ///   - reason: Why (1 to 1,024 bytes of UTF-8, no control characters).
    ///   - releasedBy: Who releases it: the entry's actor.
    /// - Returns: The hold, with its ``LegalHold/release``.
    /// - Throws: ``AuditError`` `holdNotFound` if no hold has that id, `holdAlreadyReleased` if
    ///   it was released already (nothing is written in either case); `integrityViolation` if a
    ///   hold entry fails verification (see ``holds(includeReleased:)``); `invalidInput`;
    ///   storage errors.
    @discardableResult
    public func releaseHold(id: Int64, reason: String, releasedBy: String) async throws -> LegalHold {
        try LegalHold.checkReason(reason)
        try Self.checkPerson(releasedBy, field: "releasedBy")
        return try await holdTransaction("release legal hold \(id)") { db, store, append in
            let state = try HoldLog.read(db, storeID: store.storeID, keys: store.keys)
            guard let hold = state.holds.first(where: { $0.id == id }) else {
                throw AuditError(
                    .holdNotFound,
                    "no legal hold has id \(id) (a hold's id is the seq of the entry that placed it); list the holds with `auditdb hold list --all`",
                    field: "id")
            }
            if let release = hold.release {
                throw AuditError(
                    .holdAlreadyReleased,
                    "legal hold \(id) was already released by entry \(release.seq) at \(release.releasedAt.iso8601); nothing was written",
                    field: "id")
            }
            let entry = try EncodedEvent(validating: HoldEntry.released(holdID: id, reason: reason, previous: state.newestEntry)
                .event(by: releasedBy))
            let seq = try append([entry]).lowerBound
            return LegalHold(
                id: hold.id, matcher: hold.matcher, reason: hold.reason, placedBy: hold.placedBy, placedAt: hold.placedAt,
                release: LegalHold.Release(seq: seq, releasedAt: try Self.recordedAt(seq, db), releasedBy: releasedBy, reason: reason))
        }
    }

    /// The legal holds that are in force: placed and not released, oldest first. Expiry reads
    /// them once per run and keeps every row that one of them ``LegalHold/matches(_:)``.
    ///
    /// - Throws: as ``holds(includeReleased:)``.
    public func activeHolds() async throws -> [LegalHold] {
        try await holds(includeReleased: false)
    }

    /// The legal holds, oldest first, each read back through verification.
    ///
    /// Every hold entry is found through the index on AuditDB's own entries and verified (its
    /// MAC, its link to the row before it, and its place in the chain of hold entries, each
    /// naming the one before it). If any of them is wrong — changed, removed from before the
    /// newest one, hidden from the index, or unreadable — nothing is returned: ignoring a
    /// changed placement would let held rows expire. (The newest hold entry removed is seen
    /// by ``verify(progress:)``, like a cut tail; docs/retention.md, "What is proven".)
    ///
    /// - Parameter includeReleased: Also return released holds, with their release.
    /// - Throws: ``AuditError`` `integrityViolation` naming the first hold entry that is wrong;
    ///   storage errors.
    /// - Complexity: O(hold entries · log n), independent of the number of other rows.
    public func holds(includeReleased: Bool) async throws -> [LegalHold] {
        let storeID = self.storeID, keys = self.keys
        let state: HoldLog.State
        do {
            state = try await pool.read { db in try HoldLog.read(db, storeID: storeID, keys: keys) }
        } catch let error as AuditError {
            throw error
        } catch {
            throw AuditError.from(error, while: "read the legal holds")
        }
        return includeReleased ? state.holds : state.holds.filter(\.isActive)
    }

    // MARK: Helpers

    /// Runs `body` in the appender's exclusive (durable) write transaction, the path every
    /// engine entry that depends on what the log holds is written through.
    func holdTransaction<R: Sendable>(
        _ action: String,
        _ body: @escaping @Sendable (Database, AuditStore, ([EncodedEvent]) throws -> ClosedRange<Int64>) throws -> R
    ) async throws -> R {
        // As `append` says it: the pool's own error after `close()` would read as a storage failure.
        if appender.state.withLock({ $0.closed }) {
            throw AuditError(.closed, "the store is closed; open it again to \(action)")
        }
        do {
            return try await appender.exclusiveTransaction { [self] db, append in try body(db, self, append) }
        } catch let error as AuditError {
            throw error
        } catch {
            throw AuditError.from(error, while: action)
        }
    }

    /// The recorded time of the row just appended in this transaction.
    private static func recordedAt(_ seq: Int64, _ db: Database) throws -> AuditTimestamp {
        guard let micros = try Int64.fetchOne(db, sql: "SELECT recorded_at FROM audit_entries WHERE seq = ?", arguments: [seq])
        else {
            throw AuditError(.storage, "the entry just appended at seq \(seq) cannot be read back in its own transaction; nothing was written")
        }
        return AuditTimestamp(microsecondsSinceEpoch: micros)
    }

    /// Who places or releases a hold is the entry's actor: the rules of `actor`, named `field`.
    static func checkPerson(_ name: String, field: String) throws(AuditError) {
        guard !name.isEmpty else { throw .invalid(field, "must not be empty: name who does it") }
        do {
            try LegalHold.checkValue(name, as: .actor)
        } catch {
            throw AuditError(.invalidInput, field + error.message.dropFirst("actor".count), field: field)
        }
    }
}
