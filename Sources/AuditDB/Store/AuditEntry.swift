import Foundation

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
    /// Nil if erased (``erasedFields`` contains `.actor`; FORMAT.md section 21) or masked
    /// (``masked`` names `actor`).
    public internal(set) var actor: String?
    public let action: String
    public let resourceType: String?
    public let resourceId: String?
    public let outcome: AuditOutcome
    public let severity: AuditSeverity
    public let correlationId: String?
    /// Nil if absent, erased or masked (``erasedFields`` and ``masked`` tell which).
    public internal(set) var source: String?
    /// The details JSON text, exactly as stored (with the members of ``erasedDetailPaths``
    /// removed, if any were erased); nil if absent, erased or masked as a whole
    /// (``erasedFields`` and ``masked`` tell which). A masked member of it (`details.email`) is
    /// replaced by `{"masked":METHOD,"value":SHOWN}`, and ``masked`` names its path: only that
    /// list tells a masked member from a real object of the same shape.
    public internal(set) var detailsJSON: String?
    public let origin: Origin
    public let formatVersion: Int
    /// The key version that signed it.
    public let keyVersion: UInt32
    /// The stored MAC (row tag || link tag).
    public let mac: [UInt8]
    /// Why this row failed verification, when it was read with
    /// ``EntryQuery/UnverifiedRows/mark``; nil for a verified row. A row with a finding is not
    /// evidence of anything: its values may have been changed.
    public let finding: Finding?
    /// The fields erased by ``AuditStore/erase(_:fields:paths:reason:skippingLegacyRows:)`` (FORMAT.md section 21): their
    /// values are gone for good, and read as nil, which is *not* the same as a value that was
    /// never given (nil with the field not in this set) or an empty string.
    public let erasedFields: Set<WithholdableField>
    /// The paths inside `details` erased by ``AuditStore/erase(_:fields:paths:reason:skippingLegacyRows:)``
    /// (FORMAT.md section 21.7), in path order: those members are gone from ``detailsJSON`` (which
    /// holds the rest of details, its *residual*), which is not the same as a member that was
    /// never given or one that is null. Empty when no path of this entry was erased.
    public internal(set) var erasedDetailPaths: [MaskPath] = []
    /// The values a ``MaskingPolicy`` masked in this entry, in path order; empty when the entry
    /// was read without masking (docs/masking.md). A masked value is never a real value, nil
    /// (absent) or erased: its field reads as nil (a whole field) or as the masked member's
    /// object (inside `details`), and this list says so.
    public internal(set) var masked: [MaskedValue] = []

    /// True when the row's MAC and its link to the row before it were recomputed and matched
    /// as it was read.
    public var isVerified: Bool { finding == nil }

    /// Whether `field` was erased.
    public func isErased(_ field: WithholdableField) -> Bool { erasedFields.contains(field) }

    /// How `field` was masked as a whole (`actor=partial`), or nil if it was not.
    public func mask(of field: WithholdableField) -> MaskedValue? {
        masked.first { $0.path.field == field && $0.path.members.isEmpty }
    }
}
