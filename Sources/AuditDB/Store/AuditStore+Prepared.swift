/// Appending events validated ahead of time, for a caller that reads and checks its input on a
/// thread of its own while the previous batch is written (`auditdb append --jsonl`): each event
/// is checked once, by ``prepare(_:)``, and ``append(prepared:)`` writes it without checking it again.
extension AuditStore {
    /// An event that passed every check of ``append(_:)``, laid out for the writer.
    package struct PreparedEvent: Sendable {
        let encoded: EncodedEvent
    }

    /// Checks `event` as ``append(_:)`` does (``validate(_:)``) and lays it out for the writer.
    /// Runs on the caller's thread: call it off the cooperative pool for large inputs.
    /// - Throws: ``AuditError`` `invalidInput` naming the field and the rule.
    package static func prepare(_ event: AuditEvent) throws(AuditError) -> PreparedEvent {
        PreparedEvent(encoded: try encodeForAppend(event))
    }

    /// Every check of the public append paths (reserved actions, then each field's rules) and the
    /// writer's layout: the one place `append`, `validate`, `prepare` and the MAC pipeline check an event.
    static func encodeForAppend(_ event: AuditEvent) throws(AuditError) -> EncodedEvent {
        try checkNotReserved(event)
        return try EncodedEvent(validating: event)
    }

    /// Appends prepared events in one transaction, as ``append(contentsOf:)`` does (all or none,
    /// one fsync), without validating them again.
    /// - Returns: The seqs assigned, in order.
    @discardableResult
    package func append(prepared events: [PreparedEvent]) async throws -> ClosedRange<Int64> {
        guard !events.isEmpty else {
            throw AuditError(.invalidInput, "append(prepared:) needs at least one event", field: "events")
        }
        return try await appender.submit(events.map(\.encoded))
    }
}
