import ArgumentParser
import AuditDB

/// The one grammar of numbers on the command line: decimal digits, no sign, no leading zero, no
/// `0x`, exponent or spaces (Swift's own `Int64("+5")`, `Int64("007")` and `Double("0x1p-2")`,
/// which ArgumentParser would use, read all of those). A seq or hold id names a row: `007` and
/// `+7` must not quietly mean 7 in one place and be refused in another.
enum StrictNumber {
    /// A seq, a hold id, a count: `0` or a digit 1-9 followed by digits, within `Int64`.
    static func integer(_ text: String) throws -> Int64 {
        guard let value = DecimalText.nonNegativeInt64(text) else {
            if isTooLarge(text) { throw ValidationError("\(text) is too large") }
            throw ValidationError("\(OutputEscaping.jsonQuoted(text)) is not a whole number in decimal digits (no sign, leading zero, spaces or exponent)")
        }
        return value
    }

    /// Whether `text` is well-formed digits, too many for `Int64`: a message should say so, not
    /// that it is no number.
    static func isTooLarge(_ text: some StringProtocol) -> Bool {
        text.utf8.count > 1 && text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) && text.utf8.first != 0x30
            && DecimalText.nonNegativeInt64(text) == nil
    }

    /// As ``integer(_:)``, as an `Int`.
    static func count(_ text: String) throws -> Int {
        guard let value = Int(exactly: try integer(text)) else { throw ValidationError("\(text) is too large") }
        return value
    }

    /// As ``integer(_:)``, within `UInt32` (a key version).
    static func version(_ text: String) throws -> UInt32 {
        guard let value = UInt32(exactly: try integer(text)) else { throw ValidationError("\(text) is not a key version (0 to 4294967295)") }
        return value
    }

    /// Seconds: decimal digits with at most one point (`1`, `0.25`, `.5`).
    static func seconds(_ text: String) throws -> Double {
        guard let value = decimal(text) else {
            throw ValidationError("\(OutputEscaping.jsonQuoted(text)) is not a number of seconds in decimal digits with at most one point")
        }
        return value
    }

    /// The value of decimal digits with at most one point, or nil (`Double()` alone also reads
    /// `0x10`, `1e3`, `inf` and `" 1"`).
    static func decimal(_ text: String) -> Double? {
        let decimal = !text.isEmpty && text != "." && text.allSatisfy { $0.isASCII && ($0.isNumber || $0 == ".") }
            && text.filter({ $0 == "." }).count <= 1
        guard decimal, let value = Double(text), value.isFinite else { return nil }
        return value
    }
}
