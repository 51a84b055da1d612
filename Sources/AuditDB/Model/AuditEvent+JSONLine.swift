extension AuditEvent {
    /// The JSON member names of an event in JSONL input (the Swift property names).
    package static let jsonFieldNames: Set<String> = [
        "actor", "action", "resourceType", "resourceId", "tenant", "outcome", "severity", "correlationId",
        "source", "occurredAt", "details",
    ]

    /// Decodes one line of JSONL input: a JSON object with the Swift property names as keys.
    ///
    /// The line is read by AuditDB's strict JSON rules (docs/FORMAT.md section 18): at most
    /// 1 MiB, no duplicate key, no lone surrogate, integers within 64 bits, other numbers finite.
    /// `occurredAt` is RFC 3339 text (at most 6 fractional digits: nothing is truncated) or
    /// integer microseconds since the epoch (an integer token: `1.0`, `1e6` and `true` are
    /// refused); `details` must be a JSON object and is stored byte for byte as it appears in the
    /// line. Unknown keys are rejected (a misspelt field must not be silently dropped).
    ///
    /// ```swift
    /// let event = try AuditEvent(jsonLine: #"{"actor":"u1","action":"login","details":{"ip":"10.0.0.8"}}"#)
    /// ```
    /// - Throws: ``AuditError`` `invalidInput` naming the field (`line` for the line's own
    ///   syntax) and the rule.
    ///
    /// `package`, not public: the input format of `auditdb append --jsonl`, not an API for apps.
    package init(jsonLine: String) throws(AuditError) {
        var copy = jsonLine
        let result: Result<AuditEvent, AuditError> = copy.withUTF8 { bytes in
            Result { () throws(AuditError) in try AuditEvent(jsonLineBytes: bytes, validUTF8: true) }
        }
        self = try result.get()
    }

    /// Decodes one line of JSONL input given as bytes, as ``init(jsonLine:)-(String)`` does; the
    /// bytes must be UTF-8 (invalid UTF-8 is refused, never replaced). This is what
    /// `auditdb append --jsonl` calls for each line.
    /// - Throws: ``AuditError`` `invalidInput` naming the field and the rule.
    package init(jsonLine bytes: [UInt8]) throws(AuditError) {
        let result: Result<AuditEvent, AuditError> = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(AuditError) in try AuditEvent(jsonLineBytes: buffer, validUTF8: false) }
        }
        self = try result.get()
    }

    private init(jsonLineBytes bytes: UnsafeBufferPointer<UInt8>, validUTF8: Bool) throws(AuditError) {
        var fields = LineFields()
        do {
            try JSONReader.readMembers(bytes, limits: .eventLine, validUTF8: validUTF8) { key, value, range in
                fields.take(key, value, range)
            }
        } catch {
            var problem = error
            // `details` may nest 32 levels itself (the line adds one): say so in its own terms.
            if case .tooDeep = error.problem, error.member == "details" {
                problem = JSONError(problem: .tooDeep(limit: FieldLimits.detailsDepth), offset: error.offset, member: error.member)
            }
            let field = error.member.flatMap { name in Self.jsonFieldNames.first { $0.utf8.elementsEqual(name.utf8) } }
            throw .invalid(field ?? "line", problem.description)
        }
        if let unknown = fields.unknown.min(by: { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }) {
            throw .invalid(unknown, "unknown field (expected one of \(Self.jsonFieldNames.sorted().joined(separator: ", ")))")
        }
        func string(_ key: String, _ value: JSON?, required: Bool = false) throws(AuditError) -> String? {
            switch value {
            case nil, .null?:
                if required { throw .invalid(key, "is required") }
                return nil
            case .string(let s)?: return s
            default: throw .invalid(key, "must be a string")
            }
        }
        let actor = try string("actor", fields.actor, required: true)!
        let action = try string("action", fields.action, required: true)!
        var outcome = AuditOutcome.success
        if let text = try string("outcome", fields.outcome) {
            guard let value = AuditOutcome(rawValue: text) else {
                throw .invalid("outcome", "must be one of \(AuditOutcome.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            outcome = value
        }
        var severity = AuditSeverity.info
        if let text = try string("severity", fields.severity) {
            guard let value = AuditSeverity(rawValue: text) else {
                throw .invalid("severity", "must be one of \(AuditSeverity.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            severity = value
        }
        var occurredAt: AuditTimestamp?
        switch fields.occurredAt {
        case nil, .null?: break
        case .string(let text)?:
            switch AuditTimestamp.parse(text) {
            case .success(let t): occurredAt = t
            case .failure(let why): throw .invalid("occurredAt", "\(OutputEscaping.jsonQuoted(text)) \(why)")
            }
        case .int(let micros)?: occurredAt = AuditTimestamp(microsecondsSinceEpoch: micros)
        default: throw .invalid("occurredAt", "must be RFC 3339 text or integer microseconds since the epoch")
        }
        var details: AuditDetails?
        switch fields.details {
        case nil, .null?: break
        case .object?:
            let range = fields.detailsRange
            guard range.count <= FieldLimits.details else {
                throw .invalid("details", "is \(range.count) bytes; the limit is \(FieldLimits.details)")
            }
            let text = UnsafeBufferPointer(rebasing: bytes[range])
            // Counted from the line's start, as the reader's own errors inside details are.
            if let offset = JSONText.nulEscape(in: text) { throw JSONText.nulEscapeError(at: range.lowerBound + offset) }
            details = AuditDetails(json: String(decoding: text, as: UTF8.self))
        default: throw .invalid("details", "must be a JSON object")
        }
        self.init(
            actor: actor, action: action, resourceType: try string("resourceType", fields.resourceType),
            resourceId: try string("resourceId", fields.resourceId), tenant: try string("tenant", fields.tenant),
            outcome: outcome, severity: severity, correlationId: try string("correlationId", fields.correlationId),
            source: try string("source", fields.source), occurredAt: occurredAt, details: details)
    }
}

/// The members of one JSONL input line, by name (matched byte for byte), as the reader hands them over.
private struct LineFields {
    var actor: JSON?, action: JSON?, resourceType: JSON?, resourceId: JSON?, tenant: JSON?, outcome: JSON?
    var severity: JSON?, correlationId: JSON?, source: JSON?, occurredAt: JSON?, details: JSON?
    var detailsRange = 0..<0
    /// Keys that are not member names (rare: the line is then refused).
    var unknown: [String] = []

    mutating func take(_ key: String, _ value: JSON, _ range: Range<Int>) {
        // The reader refuses duplicate keys, so each name is met at most once.
        func named(_ name: StaticString) -> Bool {
            key.utf8.count == name.utf8CodeUnitCount
                && key.utf8.elementsEqual(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        }
        switch key.utf8.count {
        case 5 where named("actor"): actor = value
        case 6 where named("action"): action = value
        case 6 where named("tenant"): tenant = value
        case 6 where named("source"): source = value
        case 7 where named("outcome"): outcome = value
        case 7 where named("details"): details = value; detailsRange = range
        case 8 where named("severity"): severity = value
        case 10 where named("resourceId"): resourceId = value
        case 10 where named("occurredAt"): occurredAt = value
        case 12 where named("resourceType"): resourceType = value
        case 13 where named("correlationId"): correlationId = value
        default: unknown.append(key)
        }
    }
}
