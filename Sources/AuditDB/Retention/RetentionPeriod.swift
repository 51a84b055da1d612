/// A length of time for a retention policy: a positive whole number of hours, days or weeks.
///
/// The text form is strict, so that a policy written in a configuration file means one thing:
///
///     period = count unit
///     count  = nonzero-digit *digit        ; ASCII 1-9 then 0-9: no sign, no leading zero, no 0
///     unit   = "h" / "d" / "w"             ; hours (3,600 s), days (86,400 s), weeks (7 days)
///
/// Nothing else is accepted: no whitespace anywhere, no fractions, no uppercase units, no other
/// units (`m` could be minutes or months, `y` 365 or 366 days: write `720h`, `30d` or `365d`), no
/// combinations (`90d12h`: write `2172h`). A day is exactly 86,400 seconds (no calendar, no
/// time zone, no leap seconds): a period is a fixed number of microseconds, which must fit a
/// signed 64-bit integer (at most `2562047788h`, `106751991d`, `15250284w`, about 292,000 years).
///
/// ```swift
/// let ninety = try RetentionPeriod(parsing: "90d")
/// ninety.microseconds        // 7_776_000_000_000
/// ninety.description         // "90d"
/// ```
public struct RetentionPeriod: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The unit a period was written in.
    public enum Unit: String, Sendable, Hashable, CaseIterable {
        case hours = "h"
        case days = "d"
        case weeks = "w"

        /// Microseconds in one unit.
        public var microseconds: Int64 {
            switch self {
            case .hours: 3_600_000_000
            case .days: 86_400_000_000
            case .weeks: 604_800_000_000
            }
        }

        /// The largest count whose period fits in 64-bit microseconds.
        public var maximumCount: Int64 { Int64.max / microseconds }
    }

    /// How many units (at least 1).
    public let count: Int64
    /// The unit.
    public let unit: Unit

    /// The period in microseconds (the unit of `recorded_at`).
    public var microseconds: Int64 { count * unit.microseconds }

    /// A period of `count` units.
    /// - Throws: ``AuditError`` `invalidInput` if `count` is below 1 or the period does not fit
    ///   in 64-bit microseconds.
    public init(_ count: Int64, _ unit: Unit) throws(AuditError) {
        let text = "\(count)\(unit.rawValue)"
        guard count >= 1 else {
            throw Self.refusal(text, field: "period", count < 0 ? "is negative" : Self.zeroProblem())
        }
        guard count <= unit.maximumCount else {
            throw Self.refusal(text, field: "period", Self.tooLong(unit))
        }
        self.count = count
        self.unit = unit
    }

    /// Parses the text form (see the grammar above).
    ///
    /// - Parameters:
    ///   - text: e.g. `90d`, `12h`, `2w`.
    ///   - field: What the text is, for the error (a setting or option name).
    /// - Throws: ``AuditError`` `invalidInput` with `field`, naming what is wrong and how to
    ///   write it instead.
    public init(parsing text: String, field: String = "period") throws(AuditError) {
        let (count, unit) = try Self.parse(text, field: field, purpose: .retention)
        self.count = count
        self.unit = unit
    }

    /// Parses a key version's maximum age (`auditdb report --key-max-age`): the same grammar,
    /// with errors in terms of key ages rather than of expiring rows.
    package init(parsingKeyAge text: String, field: String) throws(AuditError) {
        let (count, unit) = try Self.parse(text, field: field, purpose: .keyAge)
        self.count = count
        self.unit = unit
    }

    /// What a period is for: the words of its errors.
    enum Purpose {
        /// How long rows are kept.
        case retention
        /// How old a key version may grow before a report flags it.
        case keyAge

        var noun: String { self == .retention ? "the retention period" : "the key age" }
        var forever: String {
            self == .retention ? "to keep rows for ever, use `forever` (or no maximum age)" : "to flag no key version, use `forever`"
        }
        var zero: String {
            self == .retention ? "a maximum age of zero would let every row expire at once" : "a maximum age of zero would flag every key version"
        }
    }

    /// The canonical text form, e.g. `90d` (what ``init(parsing:field:)`` accepts).
    public var description: String { "\(count)\(unit.rawValue)" }

    /// Periods compare by length: `1w == 7d`, whatever unit each was written in.
    public static func == (a: RetentionPeriod, b: RetentionPeriod) -> Bool { a.microseconds == b.microseconds }

    public func hash(into hasher: inout Hasher) { hasher.combine(microseconds) }

    public static func < (a: RetentionPeriod, b: RetentionPeriod) -> Bool { a.microseconds < b.microseconds }

    // MARK: Parsing

    static func zeroProblem(_ purpose: Purpose = .retention) -> String {
        "is zero: \(purpose.zero); \(purpose.forever)"
    }

    static func tooLong(_ unit: Unit, _ purpose: Purpose = .retention) -> String {
        "is too long: at most \(unit.maximumCount)\(unit.rawValue) (the period in microseconds must fit a 64-bit integer); "
            + purpose.forever
    }

    static func refusal(_ text: String, field: String, _ problem: String, _ purpose: Purpose = .retention) -> AuditError {
        AuditError(
            .invalidInput,
            "\(field): \(purpose.noun) \(OutputEscaping.jsonQuoted(text)) \(problem). "
                + "Write a positive whole number followed by h (hours), d (days) or w (weeks), e.g. 90d",
            field: field)
    }

    private static func parse(_ text: String, field: String, purpose: Purpose) throws(AuditError) -> (Int64, Unit) {
        func fail(_ problem: String) -> AuditError { refusal(text, field: field, problem, purpose) }
        let scalars = Array(text.unicodeScalars)
        guard !scalars.isEmpty else { throw fail("is empty") }
        if let index = scalars.firstIndex(where: { $0.properties.isWhitespace }) {
            throw fail("contains whitespace at character \(index + 1); remove it")
        }
        switch scalars[0] {
        case "-": throw fail("is negative")
        case "+": throw fail("has a sign; write the number alone")
        default: break
        }
        let isDigit = { (s: Unicode.Scalar) in s >= "0" && s <= "9" }
        let digits = scalars.prefix(while: isDigit)
        let rest = scalars.dropFirst(digits.count)
        guard let unitScalar = rest.first else { throw fail("has no unit (h, d or w)") }
        if unitScalar.properties.numericType != nil {
            throw fail("contains a digit that is not ASCII 0-9 (U+\(String(unitScalar.value, radix: 16, uppercase: true)))")
        }
        guard !digits.isEmpty else { throw fail("does not start with a number") }
        if unitScalar == "." || unitScalar == "," {
            throw fail("is not a whole number; use a smaller unit (36h, not 1.5d)")
        }
        guard let unit = Unit(rawValue: String(unitScalar)) else { throw fail(unknownUnit(unitScalar, purpose)) }
        guard rest.count == 1 else {
            throw fail("has text after the unit; write one number and one unit (2172h, not 90d12h)")
        }
        if digits.count > 1 && digits.first == "0" {
            let trimmed = String(String.UnicodeScalarView(digits.drop { $0 == "0" }))
            throw fail("has a leading zero; write \(trimmed.isEmpty ? "a positive number" : trimmed + unit.rawValue)")
        }
        var count: Int64 = 0
        for digit in digits {
            let (times10, o1) = count.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(Int64(digit.value - 0x30))
            guard !o1, !o2 else { throw fail(tooLong(unit, purpose)) }
            count = sum
        }
        guard count >= 1 else { throw fail(zeroProblem(purpose)) }
        guard count <= unit.maximumCount else { throw fail(tooLong(unit, purpose)) }
        return (count, unit)
    }

    private static func unknownUnit(_ unit: Unicode.Scalar, _ purpose: Purpose) -> String {
        let quoted = OutputEscaping.jsonQuoted(String(unit))
        switch unit {
        case "H", "D", "W":
            return "has the unit \(quoted); units are lowercase (\(String(unit).lowercased()))"
        case "m", "M":
            return "has the unit \(quoted), which could mean minutes or months; write hours or days (720h, 30d)"
        case "y", "Y":
            return "has the unit \(quoted); years differ in length, so write days (365d or 366d)"
        case "s", "S":
            return "has the unit \(quoted); \(purpose == .retention ? "retention" : "a key age") is counted in hours, days or weeks (1h is the shortest)"
        default:
            return "has the unknown unit \(quoted)"
        }
    }
}
