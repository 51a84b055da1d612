/// AuditDB's own entries (scan records, key declarations, migration runs) use actions under a
/// reserved prefix; the public append paths refuse that prefix and anything that looks like it.
extension AuditStore {
    /// Actions starting with this prefix are AuditDB's own entries (scan records, key
    /// declarations, migration runs); ``append(_:)`` refuses them, so an app cannot forge one.
    public static let reservedActionPrefix = "auditdb."

    /// Appends one of AuditDB's own entries (reserved action), bypassing the reserved-prefix rule.
    func appendEngineEntry(_ event: AuditEvent) async throws -> Int64 {
        try await appender.submit([try EncodedEvent(validating: event)]).lowerBound
    }

    /// Whether `action` is, or looks like, one of AuditDB's own (see ``checkNotReserved(_:)``).
    static func isReserved(_ action: String) -> Bool {
        let utf8 = action.utf8
        if utf8.allSatisfy({ $0 < 0x80 }) { return hasReservedPrefix(ascii: utf8) }  // the common case, without allocating
        let skeleton = String(String.UnicodeScalarView(action.unicodeScalars.filter { scalar in
            let category = scalar.properties.generalCategory
            return !(category == .nonspacingMark || category == .enclosingMark || EncodedEvent.isInvisible(scalar))
        })).lowercased()
        return skeleton.hasPrefix(reservedActionPrefix)
    }

    /// ``isReserved(_:)`` over an action's UTF-8 bytes (valid UTF-8), without making a String
    /// unless it is not ASCII.
    static func isReserved(utf8 action: UnsafeBufferPointer<UInt8>) -> Bool {
        if action.allSatisfy({ $0 < 0x80 }) { return hasReservedPrefix(ascii: action) }
        return isReserved(String(decoding: action, as: UTF8.self))
    }

    /// For ASCII: whether it starts with the reserved prefix, ASCII case folded.
    private static func hasReservedPrefix(ascii utf8: some Collection<UInt8>) -> Bool {
        let prefix = reservedActionPrefix.utf8
        guard utf8.count >= prefix.count else { return false }
        return zip(utf8, prefix).allSatisfy { byte, reserved in
            (byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte) == reserved
        }
    }

    static func checkNotReserved(_ event: AuditEvent) throws(AuditError) {
        // Compared on a skeleton, so that no look-alike passes: combining and enclosing marks,
        // format and default-ignorable characters removed, ASCII case folded ("auditdb.\u{301}scan",
        // "AuditDB.scan" and "auditdb\u{200B}.scan" are all reserved).
        if isReserved(event.action) {
            throw AuditError(
                .invalidInput,
                "actions starting with \"\(reservedActionPrefix)\" are reserved for AuditDB's own entries; choose another action name",
                field: "action")
        }
    }
}
