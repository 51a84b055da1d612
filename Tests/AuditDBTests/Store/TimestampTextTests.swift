import Testing

@testable import AuditDB

/// `appendISO8601(to:)` (the shipper's COPY text) writes exactly the bytes of `iso8601`.
@Suite("AuditTimestamp: ISO 8601 bytes")
struct TimestampTextTests {
    @Test("the same bytes as iso8601, across the supported range, its edges and outside it", arguments: [
        Int64(0), -1, 1, 999_999, -1_000_000, 1_795_439_710_123_456, -62_135_596_800_000_000, 253_402_300_799_999_999,
        -62_135_596_800_000_001, 253_402_300_800_000_000, Int64.min, Int64.max, 951_782_400_000_000, -2_208_988_800_000_001,
    ])
    func sameBytes(_ micros: Int64) {
        let t = AuditTimestamp(microsecondsSinceEpoch: micros)
        var out: [UInt8] = [0x41]
        t.appendISO8601(to: &out)
        #expect(out == [0x41] + Array(t.iso8601.utf8), "\(micros)")
    }

    @Test("a million spread values agree")
    func spread() {
        var out: [UInt8] = []
        var micros = AuditTimestamp.minimum.microsecondsSinceEpoch
        let step = (AuditTimestamp.maximum.microsecondsSinceEpoch - micros) / 1_000_000 + 7_919
        while micros <= AuditTimestamp.maximum.microsecondsSinceEpoch {
            let t = AuditTimestamp(microsecondsSinceEpoch: micros)
            out.removeAll(keepingCapacity: true)
            t.appendISO8601(to: &out)
            if out != Array(t.iso8601.utf8) {
                Issue.record("differs at \(micros)")
                return
            }
            micros += step
        }
    }
}
