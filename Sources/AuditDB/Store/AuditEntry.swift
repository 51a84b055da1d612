import Foundation
import GRDB

/// A row read back from the store, verified as it was read.
public struct AuditEntry: Sendable, Hashable {
    /// Where a row came from.
    public enum Origin: Sendable, Hashable {
        /// Appended through AuditDB: its MAC was made when it was recorded.
        case recorded
        /// Brought under signature later by a migration run (the seq of that run's entry, if
        /// recorded): the MAC proves it unchanged since then, not what happened before.
        case backSigned(run: Int64?)
    }

    /// Gapless position in the log, from 1.
    public let seq: Int64
    /// When the engine recorded it.
    public let recordedAt: AuditTimestamp
    /// When it happened, by the caller's clock.
    public let occurredAt: AuditTimestamp?
    public let tenant: String?
    /// Nil only if withheld (erased).
    public let actor: String?
    public let action: String
    public let resourceType: String?
    public let resourceId: String?
    public let outcome: AuditOutcome
    public let severity: AuditSeverity
    public let correlationId: String?
    public let source: String?
    /// The details JSON text, exactly as stored.
    public let detailsJSON: String?
    public let origin: Origin
    public let formatVersion: Int
    /// The key version that signed it.
    public let keyVersion: UInt32
    /// The stored MAC (row tag || link tag).
    public let mac: [UInt8]
}

/// Which entries to read. Issue-level note: the full query API (indexes, more filters,
/// streaming, tenant-scoped handles) builds on this.
public struct EntryQuery: Sendable, Hashable {
    /// Only entries after this seq (a cursor: pass the last seq of the previous page).
    public var afterSeq: Int64?
    /// At most this many entries (1...10,000).
    public var limit: Int = 100
    /// Newest first instead of oldest first.
    public var descending = false
    public var actor: String?
    public var action: String?
    public var tenant: String?

    /// All entries, oldest first, 100 at a time.
    public init(afterSeq: Int64? = nil, limit: Int = 100, descending: Bool = false, actor: String? = nil,
                action: String? = nil, tenant: String? = nil)
    {
        self.afterSeq = afterSeq
        self.limit = limit
        self.descending = descending
        self.actor = actor
        self.action = action
        self.tenant = tenant
    }
}

extension AuditStore {
    /// Reads entries matching `query`. Every row is verified (MAC and chain link) as it is
    /// read; a row that fails throws ``AuditError/Code/integrityViolation`` naming its seq, so
    /// a tampered row is never returned as good.
    public func entries(_ query: EntryQuery = EntryQuery()) async throws -> [AuditEntry] {
        guard (1...10_000).contains(query.limit) else {
            throw AuditError(.invalidInput, "limit must be between 1 and 10000 (got \(query.limit))", field: "limit")
        }
        var conditions: [String] = []
        var bindings: [any DatabaseValueConvertible & Sendable] = []
        if let after = query.afterSeq {
            conditions.append(query.descending ? "seq < ?" : "seq > ?")
            bindings.append(after)
        }
        if let actor = query.actor { conditions.append("actor = ?"); bindings.append(actor) }
        if let action = query.action { conditions.append("action = ?"); bindings.append(action) }
        if let tenant = query.tenant { conditions.append("tenant = ?"); bindings.append(tenant) }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let sql = "SELECT \(Verifier.selectColumns) FROM audit_entries \(whereClause) ORDER BY seq \(query.descending ? "DESC" : "ASC") LIMIT \(query.limit)"
        let storeID = self.storeID
        let keys = self.keys
        let finalBindings = bindings
        do {
            return try await pool.read { db in
                try EntryReader.read(db, sql: sql, bindings: finalBindings, storeID: storeID, keys: keys)
            }
        } catch {
            throw AuditError.from(error, while: "read entries")
        }
    }
}
