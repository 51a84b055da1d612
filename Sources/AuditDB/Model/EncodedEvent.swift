import CAuditCore

/// A validated event, its text fields laid out in one byte arena so that the writer can bind
/// and MAC them without further copies or checks. Built on the caller's task, not the writer's.
struct EncodedEvent: Sendable {
    struct Span: Sendable {
        var offset: Int32
        var length: Int32  // -1: NULL
        static let null = Span(offset: 0, length: -1)
    }

    var arena: [UInt8]
    var tenant = Span.null, actor = Span.null, action = Span.null, resourceType = Span.null
    var resourceId = Span.null, correlationId = Span.null, source = Span.null, details = Span.null
    /// The row's seals (FORMAT.md section 21): 00 || a 32-byte seed from libsodium's CSPRNG
    /// (``FreshSeeds``), drawn here once, so that the MAC pipeline and the insert see the same bytes.
    var seals = Span.null
    var occurredAt: Int64?
    var outcome: UInt8
    var severity: UInt8
    var origin: UInt8 = 0
    var originRef: Int64?

    var isCritical: Bool { severity == AuditSeverity.critical.code }

    /// ``init(utf8:)`` runs the same checks in the same order: change both together
    /// (`EncodedEventBytesTests` holds them to the same bytes and the same first error).
    init(validating event: AuditEvent) throws(AuditError) {
        arena = []
        arena.reserveCapacity(
            event.actor.utf8.count + event.action.utf8.count + (event.resourceId?.utf8.count ?? 0) + 256)
        outcome = event.outcome.code
        severity = event.severity.code
        actor = try Self.add(event.actor, "actor", FieldLimits.actor, into: &arena)
        action = try Self.add(event.action, "action", FieldLimits.action, into: &arena)
        tenant = try Self.add(event.tenant, "tenant", FieldLimits.tenant, into: &arena)
        resourceType = try Self.add(event.resourceType, "resourceType", FieldLimits.resourceType, into: &arena)
        resourceId = try Self.add(event.resourceId, "resourceId", FieldLimits.resourceId, into: &arena)
        correlationId = try Self.add(event.correlationId, "correlationId", FieldLimits.correlationId, into: &arena)
        source = try Self.add(event.source, "source", FieldLimits.source, into: &arena)
        if let details = event.details {
            let text = try details.jsonText()
            self.details = Self.append(text, into: &arena)
        }
        try sealAndTime(event.occurredAt)
    }

    /// An event's fields as UTF-8 bytes that a reader holds (a source row's columns), already
    /// known to be valid UTF-8; the buffers need only live through ``init(utf8:)``.
    struct UTF8Fields {
        var actor: UnsafeBufferPointer<UInt8>
        var action: UnsafeBufferPointer<UInt8>
        var tenant, resourceType, resourceId, correlationId, source, details: UnsafeBufferPointer<UInt8>?
        var outcome = AuditOutcome.success
        var severity = AuditSeverity.info
        var occurredAt: AuditTimestamp?
    }

    /// ``init(validating:)`` for fields held as bytes: the same checks in the same order (so the
    /// same first error), without making a String per field. Back-signing reads every source row
    /// through this.
    init(utf8 fields: UTF8Fields) throws(AuditError) {
        func length(_ bytes: UnsafeBufferPointer<UInt8>?) -> Int { bytes?.count ?? 0 }
        arena = []
        arena.reserveCapacity(fields.actor.count + fields.action.count + length(fields.tenant) + length(fields.resourceType)
                              + length(fields.resourceId) + length(fields.correlationId) + length(fields.source) + length(fields.details)
                              + Int(ADB_SEALS_FRESH_LEN))
        outcome = fields.outcome.code
        severity = fields.severity.code
        actor = try Self.add(bytes: fields.actor, "actor", FieldLimits.actor, into: &arena)
        action = try Self.add(bytes: fields.action, "action", FieldLimits.action, into: &arena)
        tenant = try Self.add(bytes: fields.tenant, "tenant", FieldLimits.tenant, into: &arena)
        resourceType = try Self.add(bytes: fields.resourceType, "resourceType", FieldLimits.resourceType, into: &arena)
        resourceId = try Self.add(bytes: fields.resourceId, "resourceId", FieldLimits.resourceId, into: &arena)
        correlationId = try Self.add(bytes: fields.correlationId, "correlationId", FieldLimits.correlationId, into: &arena)
        source = try Self.add(bytes: fields.source, "source", FieldLimits.source, into: &arena)
        if let details = fields.details {
            try JSONText.validateObject(utf8: details)
            self.details = Self.append(JSONText.trimmingWhiteSpace(details), into: &arena)  // as AuditDetails stores it
        }
        try sealAndTime(fields.occurredAt)
    }

    /// The last steps of both initializers: the fresh seals, then the occurrence time's range check.
    private mutating func sealAndTime(_ occurred: AuditTimestamp?) throws(AuditError) {
        seals = FreshSeeds.appendSeals(into: &arena)
        if let occurred {
            guard occurred.isInSupportedRange else {
                throw .invalid("occurredAt", "must lie between \(AuditTimestamp.minimum) and \(AuditTimestamp.maximum)")
            }
            occurredAt = occurred.microsecondsSinceEpoch
        }
    }

    private static func append(_ s: String, into arena: inout [UInt8]) -> Span {
        var text = s
        return text.withUTF8 { append($0, into: &arena) }
    }

    private static func append(_ bytes: UnsafeBufferPointer<UInt8>, into arena: inout [UInt8]) -> Span {
        let offset = Int32(arena.count)
        arena.append(contentsOf: bytes)
        return Span(offset: offset, length: Int32(arena.count) - offset)
    }

    private static func add(_ value: String?, _ field: String, _ limit: Int, into arena: inout [UInt8]) throws(AuditError)
        -> Span
    {
        guard var value else { return .null }
        let result = value.withUTF8 { bytes in
            Result { () throws(AuditError) in try add(bytes: bytes, field, limit, into: &arena) }
        }
        return try result.get()
    }

    /// Checks one field's UTF-8 (not empty, within `limit`, no control character) and copies it
    /// into `arena` with a memcpy, in one pass; nil is the NULL span.
    private static func add(bytes: UnsafeBufferPointer<UInt8>?, _ field: String, _ limit: Int, into arena: inout [UInt8])
        throws(AuditError) -> Span
    {
        guard let bytes else { return .null }
        let offset = Int32(arena.count)
        let problem = firstControlCharacter(bytes)
        if problem == nil, bytes.count > 0, bytes.count <= limit { arena.append(contentsOf: bytes) }
        if bytes.count == 0 { throw .invalid(field, "must not be empty (omit the field instead)") }
        if bytes.count > limit { throw .invalid(field, "is \(bytes.count) bytes of UTF-8; the limit is \(limit) (nothing is truncated)") }
        if let problem {
            throw .invalid(field, "contains a control character at byte \(problem) (newlines, tabs, NUL and escape sequences are not allowed)")
        }
        return Span(offset: offset, length: Int32(arena.count) - offset)
    }

    /// Format characters (general category Cf: zero-width spaces and joiners, bidi controls, tags,
    /// the BOM) and default-ignorable code points (variation selectors, fillers...): they render as
    /// nothing, so two values that differ only by them look the same.
    static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        scalar.properties.generalCategory == .format || scalar.properties.isDefaultIgnorableCodePoint
    }

    /// The offset of the first C0 control, DEL or C1 control (UTF-8 0xC2 0x80...0x9F), if any: for
    /// a C1 control, the offset of its first byte.
    @inline(__always)
    static func firstControlCharacter(_ bytes: UnsafeBufferPointer<UInt8>) -> Int? {
        var previous: UInt8 = 0
        for index in bytes.indices {
            let byte = bytes[index]
            if byte < 0x20 || byte == 0x7F { return index }
            if previous == 0xC2 && byte >= 0x80 && byte <= 0x9F { return index - 1 }
            previous = byte
        }
        return nil
    }

    /// Calls `body` with the C view of this event as row `seq`, in row format `format` (2; 1 only
    /// for a store created without migration 0006, which tests use to make older stores). Pointers
    /// are valid only inside.
    func withRow<R>(seq: Int64, recordedAt: Int64, keyVersion: UInt32, format: UInt8,
                    _ body: (inout adb_row) throws -> R) rethrows -> R
    {
        try arena.withUnsafeBufferPointer { buffer in
            let base = buffer.baseAddress
            func bytes(_ span: Span) -> adb_bytes {
                if span.length < 0 { return adb_bytes(ptr: nil, len: -1) }
                return adb_bytes(ptr: base.map { $0 + Int(span.offset) }, len: Int64(span.length))
            }
            var row = adb_row()
            row.seq = seq
            row.recorded_at = recordedAt
            row.occurred_at = occurredAt ?? 0
            row.has_occurred_at = occurredAt == nil ? 0 : 1
            row.key_version = keyVersion
            row.format_version = format
            row.outcome = outcome
            row.severity = severity
            row.origin = origin
            row.origin_ref = originRef ?? 0
            row.has_origin_ref = originRef == nil ? 0 : 1
            row.tenant = bytes(tenant)
            row.actor = bytes(actor)
            row.action = bytes(action)
            row.resource_type = bytes(resourceType)
            row.resource_id = bytes(resourceId)
            row.correlation_id = bytes(correlationId)
            row.source = bytes(source)
            row.details = bytes(details)
            if format == UInt8(ADB_FORMAT_SEALED) {
                let sealBytes = bytes(seals)
                row.seals = sealBytes.ptr
                row.seals_len = sealBytes.len
            }
            return try body(&row)
        }
    }
}

/// Constants of the on-disk format (docs/FORMAT.md).
enum StoreFormat {
    /// The store header's format version (FORMAT.md section 6).
    static let formatVersion = 1
    /// The row format new rows are written in: 2, random per-row seeds (FORMAT.md section 21).
    static let rowFormat = Int(ADB_FORMAT_SEALED)
    /// The highest row format this AuditDB reads (1 and 2).
    static let maxRowFormat = Int(ADB_FORMAT_SEALED)
    static let storeIDLength = 16
    static let macLength = 32
}
