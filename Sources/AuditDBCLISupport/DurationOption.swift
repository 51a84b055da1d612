import ArgumentParser
import AuditDB

/// A duration option of either command-line tool: `30s`, `5m`, `2h`, `1d` (`scan --every`,
/// `status --max-age`, `auditdb-fleet audit --every` and `--silent-after`, …): a whole number from
/// 1 to 1,000,000 in decimal digits (no sign, no leading zero) and one unit.
public enum DurationOption {
    /// The largest number a duration option takes, in any unit.
    public static let maximum: Int64 = 1_000_000

    /// The duration `text` gives.
    /// - Throws: `ValidationError` naming `option`, the rule and the value given.
    public static func parse(_ text: String, option: String) throws -> Duration {
        guard let unit = text.last, let value = DecimalText.nonNegativeInt64(text.dropLast()), value > 0, value <= maximum else {
            throw ValidationError("\(option) takes a whole number from 1 to 1000000 and a unit s, m, h or d (e.g. 5m); got \(OutputEscaping.jsonQuoted(text))")
        }
        switch unit {
        case "s": return .seconds(value)
        case "m": return .seconds(value * 60)
        case "h": return .seconds(value * 3_600)
        case "d": return .seconds(value * 86_400)
        default: throw ValidationError("\(option): unknown unit \"\(unit)\"; use s, m, h or d (e.g. 5m)")
        }
    }
}
