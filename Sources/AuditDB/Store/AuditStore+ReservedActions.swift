import Foundation

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
        // Compatibility decomposition first (fullwidth ａ, ⅾ, the one-dot leader ․ become ASCII),
        // then marks and invisible characters out, case folded, and the other scripts' letters
        // that look like those of the prefix mapped to them.
        let decomposed = action.decomposedStringWithCompatibilityMapping
        let skeleton = String(String.UnicodeScalarView(decomposed.unicodeScalars.filter { scalar in
            let category = scalar.properties.generalCategory
            return !(category == .nonspacingMark || category == .enclosingMark || EncodedEvent.isInvisible(scalar))
        })).lowercased()
        let mapped = String(String.UnicodeScalarView(skeleton.unicodeScalars.map { lookalikes[$0] ?? $0 }))
        return mapped.hasPrefix(reservedActionPrefix)
    }

    /// Characters of other scripts that look like a character of the reserved prefix, after
    /// case folding (from Unicode's confusables, UTS #39, for `a u d i t b .`).
    static let lookalikes: [Unicode.Scalar: Unicode.Scalar] = [
        "\u{0430}": "a", "\u{0251}": "a", "\u{03B1}": "a", "\u{237A}": "a",  // Cyrillic а, Latin alpha, Greek α, APL alpha
        "\u{03C5}": "u", "\u{057D}": "u", "\u{028B}": "u", "\u{1D1C}": "u", "\u{A79F}": "u",  // υ, Armenian ս, ʋ, ᴜ, ꞟ
        "\u{0501}": "d", "\u{A4D2}": "d", "\u{146F}": "d",  // Cyrillic ԁ, Lisu ꓒ, Canadian ᑯ
        "\u{0456}": "i", "\u{0131}": "i", "\u{0269}": "i", "\u{03B9}": "i", "\u{04CF}": "i", "\u{A647}": "i", "\u{13A5}": "i",  // і ı ɩ ι ӏ ꙇ Ꭵ
        "\u{1D1B}": "t", "\u{03C4}": "t",  // ᴛ, Greek τ
        "\u{044C}": "b", "\u{0185}": "b", "\u{13CF}": "b", "\u{1472}": "b",  // Cyrillic ь, ƅ, Cherokee Ꮟ, Canadian ᑲ
        "\u{A4F8}": ".", "\u{0660}": ".", "\u{06F0}": ".", "\u{0701}": ".", "\u{0702}": ".", "\u{2027}": ".", "\u{00B7}": ".",  // ꓸ ٠ ۰ ܁ ܂ ‧ ·
    ]

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
        // Compared on a skeleton, so that no look-alike passes: compatibility forms decomposed,
        // combining and enclosing marks, format and default-ignorable characters removed, case
        // folded, other scripts' look-alikes of the prefix's characters mapped ("auditdb.\u{301}scan",
        // "AuditDB.scan", "auditdb\u{200B}.scan", "\u{430}uditdb.scan", "\u{FF41}uditdb.scan" and
        // "auditdb\u{2024}scan" are all reserved).
        if isReserved(event.action) {
            throw AuditError(
                .invalidInput,
                "actions starting with \"\(reservedActionPrefix)\" are reserved for AuditDB's own entries; choose another action name",
                field: "action")
        }
    }
}
