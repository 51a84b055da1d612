public import Foundation

/// A point in time, UTC, with microsecond precision: the unit AuditDB stores.
///
/// ```swift
/// let t = AuditTimestamp.now()
/// print(t.iso8601)                                  // 2026-11-23T13:15:02.123456Z
/// let parsed = AuditTimestamp(iso8601: "2026-11-23T13:15:02Z")
/// ```
public struct AuditTimestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Microseconds since 1970-01-01T00:00:00Z.
    public let microsecondsSinceEpoch: Int64

    /// The earliest accepted time, 0001-01-01T00:00:00Z.
    public static let minimum = AuditTimestamp(microsecondsSinceEpoch: -62_135_596_800_000_000)
    /// The latest accepted time, 9999-12-31T23:59:59.999999Z.
    public static let maximum = AuditTimestamp(microsecondsSinceEpoch: 253_402_300_799_999_999)

    /// Creates a timestamp from microseconds since the Unix epoch.
    public init(microsecondsSinceEpoch: Int64) {
        self.microsecondsSinceEpoch = microsecondsSinceEpoch
    }

    /// Creates a timestamp from a `Date`, rounded down to the microsecond. A date that no
    /// `Int64` of microseconds holds (NaN, infinite, or beyond about ±292,000 years) gives
    /// `Int64.min` (NaN, and before) or `Int64.max` (after): outside ``minimum`` ... ``maximum``,
    /// so every API that stores or compares a time refuses it rather than trapping here.
    public init(_ date: Date) {
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded(.down)
        if let exact = Int64(exactly: micros) {
            self.microsecondsSinceEpoch = exact
        } else {
            // 2^63 is exactly representable as a Double; Int64.max (2^63 - 1) is not.
            self.microsecondsSinceEpoch = micros >= 9_223_372_036_854_775_808.0 ? .max : .min
        }
    }

    /// Microseconds from `earlier` to this time (negative if `earlier` is later), saturating at
    /// `Int64`'s bounds instead of trapping for times far outside the supported range.
    public func microseconds(since earlier: AuditTimestamp) -> Int64 {
        let (difference, overflow) = microsecondsSinceEpoch.subtractingReportingOverflow(earlier.microsecondsSinceEpoch)
        guard overflow else { return difference }
        return microsecondsSinceEpoch < earlier.microsecondsSinceEpoch ? .min : .max
    }

    /// The current wall-clock time (the engine clock used for `recordedAt`).
    public static func now() -> AuditTimestamp {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return AuditTimestamp(microsecondsSinceEpoch: Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1_000)
    }

    /// The same instant as a `Date`.
    public var date: Date { Date(timeIntervalSince1970: Double(microsecondsSinceEpoch) / 1_000_000) }

    /// Whether this lies between ``minimum`` and ``maximum``.
    public var isInSupportedRange: Bool { self >= .minimum && self <= .maximum }

    /// RFC 3339 / ISO 8601 text in UTC with six fractional digits, e.g. `2026-11-23T13:15:02.123456Z`.
    public var iso8601: String {
        let micros = microsecondsSinceEpoch
        var seconds = micros / 1_000_000
        var fraction = micros % 1_000_000
        if fraction < 0 { fraction += 1_000_000; seconds -= 1 }
        let (y, m, d) = Self.civil(fromDays: seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400)
        let secOfDay = ((seconds % 86_400) + 86_400) % 86_400
        func pad<V: BinaryInteger>(_ v: V, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        // Astronomical years (0 = 1 BC), at least 4 digits after the sign: -0005, 0000, 10000 (FORMAT.md 16.5).
        return "\(y < 0 ? "-" : "")\(pad(y.magnitude, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secOfDay / 3600, 2)):\(pad(secOfDay / 60 % 60, 2)):"
            + "\(pad(secOfDay % 60, 2)).\(pad(fraction, 6))Z"
    }

    public var description: String { iso8601 }

    /// Appends ``iso8601``'s UTF-8 bytes to `out` without making a `String` (the shipper writes
    /// two per row; docs/performance.md). The same bytes as ``iso8601`` for every value.
    public func appendISO8601(to out: inout [UInt8]) {
        guard isInSupportedRange else { return out.append(contentsOf: iso8601.utf8) }
        let micros = microsecondsSinceEpoch
        var seconds = micros / 1_000_000
        var fraction = micros % 1_000_000
        if fraction < 0 { fraction += 1_000_000; seconds -= 1 }
        let (y, m, d) = Self.civil(fromDays: seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400)
        let secOfDay = ((seconds % 86_400) + 86_400) % 86_400
        func digits(_ v: Int64, _ width: Int) {
            var divisor: Int64 = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = v
            while divisor > 0 {
                out.append(UInt8(truncatingIfNeeded: 0x30 + rest / divisor))
                rest %= divisor
                divisor /= 10
            }
        }
        digits(y, 4); out.append(0x2D); digits(m, 2); out.append(0x2D); digits(d, 2); out.append(0x54)
        digits(secOfDay / 3600, 2); out.append(0x3A); digits(secOfDay / 60 % 60, 2); out.append(0x3A)
        digits(secOfDay % 60, 2); out.append(0x2E); digits(fraction, 6); out.append(0x5A)
    }

    /// Parses RFC 3339 text: `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)` (`T` may be `t` or a
    /// space, `Z` may be `z`), 1 to 6 fractional digits. More digits are refused, never
    /// truncated: AuditDB stores microseconds, and a stored time must be the time given. Returns
    /// nil for anything else, including out-of-range fields and times outside ``minimum`` ...
    /// ``maximum``; ``parse(_:)`` says why.
    public init?(iso8601 text: String) {
        guard case .success(let value) = Self.parse(text) else { return nil }
        self = value
    }

    /// Why a text is not a time ``init(iso8601:)`` accepts.
    package struct ParseError: Error, CustomStringConvertible {
        /// What is wrong, e.g. "has 9 fractional digits; ...".
        package let description: String
        /// False when the text has the form but a rule refuses it (too many fractional digits,
        /// out of range).
        package var isSyntax = true
    }

    /// Parses like ``init(iso8601:)``, saying why a text is refused.
    package static func parse(_ text: String) -> Result<AuditTimestamp, ParseError> {
        var text = text
        return text.withUTF8 { parse(utf8: $0) }
    }

    /// ``parse(_:)`` over UTF-8 bytes (a reader's buffer), without making a String.
    package static func parse(utf8 b: UnsafeBufferPointer<UInt8>) -> Result<AuditTimestamp, ParseError> {
        let syntax = ParseError(description: "is not RFC 3339 time such as 2026-11-23T13:15:00Z or 2026-11-23T13:15:00.123456+01:00")
        var i = 0
        func digits(_ n: Int) -> Int64? {
            guard i + n <= b.count else { return nil }
            var v: Int64 = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 0x30 && c <= 0x39 else { return nil }
                v = v * 10 + Int64(c - 0x30)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let y = digits(4), expect(0x2D), let mo = digits(2), expect(0x2D), let d = digits(2),
              i < b.count, b[i] == 0x54 || b[i] == 0x74 || b[i] == 0x20
        else { return .failure(syntax) }
        i += 1
        guard let h = digits(2), expect(0x3A), let mi = digits(2), expect(0x3A), let s = digits(2) else { return .failure(syntax) }
        guard (1...12).contains(mo), d >= 1, d <= Self.daysIn(month: mo, year: y), h < 24, mi < 60, s <= 60 else {
            return .failure(syntax)
        }
        // RFC 3339 allows a leap second (:60); a count of microseconds since the epoch (POSIX
        // time) has no place for it, and AuditDB never moves a time to a neighbouring one.
        guard s < 60 else {
            return .failure(ParseError(
                description: "is a leap second (:60), which a count of microseconds since 1970 (POSIX time, what AuditDB stores) cannot hold; "
                    + "give the second before or after it",
                isSyntax: false))
        }
        var micros: Int64 = 0
        if i < b.count, b[i] == 0x2E {
            i += 1
            var count = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if count < 6 { micros = micros * 10 + Int64(b[i] - 0x30) }
                count += 1
                i += 1
            }
            guard count >= 1 else { return .failure(syntax) }
            guard count <= 6 else {
                return .failure(ParseError(
                    description: "has \(count) fractional digits; AuditDB stores microseconds (at most 6 digits) and never rounds or truncates a time",
                    isSyntax: false))
            }
            for _ in count..<6 { micros *= 10 }
        }
        var offset: Int64 = 0
        guard i < b.count else { return .failure(syntax) }
        if b[i] == 0x5A || b[i] == 0x7A {
            i += 1
        } else if b[i] == 0x2B || b[i] == 0x2D {
            let sign: Int64 = b[i] == 0x2D ? -1 : 1
            i += 1
            guard let oh = digits(2), expect(0x3A), let om = digits(2), oh < 24, om < 60 else { return .failure(syntax) }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return .failure(syntax)
        }
        guard i == b.count else { return .failure(syntax) }
        let days = Self.days(fromCivil: y, mo, d)
        let seconds = days * 86_400 + h * 3600 + mi * 60 + s - offset
        let value = AuditTimestamp(microsecondsSinceEpoch: seconds * 1_000_000 + micros)
        guard value.isInSupportedRange else {
            return .failure(ParseError(description: "lies outside \(minimum.iso8601)...\(maximum.iso8601)", isSyntax: false))
        }
        return .success(value)
    }

    public static func < (lhs: AuditTimestamp, rhs: AuditTimestamp) -> Bool {
        lhs.microsecondsSinceEpoch < rhs.microsecondsSinceEpoch
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian).
    private static func days(fromCivil y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
