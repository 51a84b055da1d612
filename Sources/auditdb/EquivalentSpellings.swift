import AuditDB
import Foundation

/// Values are compared byte for byte (holds, erasure, queries): "José" composed (U+00E9) and
/// decomposed (`e` then U+0301) are two values that look the same. When a command that names
/// rows by value (`erase`, `hold add`) leaves rows with the other spelling untouched, it says so,
/// or a person's erasure or a legal hold would silently miss them.
enum EquivalentSpellings {
    /// The composed (NFC) and decomposed (NFD) spellings of `value` that differ from it byte for byte.
    static func others(of value: String) -> [String] {
        var seen: Set<[UInt8]> = [Array(value.utf8)]
        return [value.precomposedStringWithCanonicalMapping, value.decomposedStringWithCanonicalMapping]
            .filter { seen.insert(Array($0.utf8)).inserted }
    }

    /// `value` with every scalar outside printable ASCII written as `\uXXXX`, in the `$'…'`
    /// quoting of bash: the two spellings differ on screen, and the text can be pasted back.
    static func shellQuoted(_ value: String) -> String {
        var out = "$'"
        for scalar in value.unicodeScalars {
            switch scalar {
            case "'", "\\": out += "\\" + String(scalar)
            case " "..."~": out.unicodeScalars.append(scalar)
            default:
                let hex = String(scalar.value, radix: 16)
                out += scalar.value > 0xFFFF ? "\\U" + String(repeating: "0", count: 8 - hex.count) + hex
                    : "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            }
        }
        return out + "'"
    }

    /// A note for each other spelling of `value` that rows of `store` hold (`query` builds the
    /// query for one spelling), saying that `what` did not reach them and the option that names
    /// them; empty when there is none.
    static func notes(_ store: AuditStore, value: String, option: String, what: String,
                      query: (String) -> EntryQuery) async throws -> [String]
    {
        var notes: [String] = []
        for other in others(of: value) {
            var probe = query(other)
            probe.limit = 1
            probe.unverifiedRows = .mark  // only whether such rows exist; verification is not this note's job
            guard !(try await store.entries(probe)).isEmpty else { continue }
            notes.append("note: rows hold \(option) \(shellQuoted(other)), a canonically equivalent spelling of \(shellQuoted(value)) "
                + "(composed and decomposed characters); values are compared byte for byte, so \(what) does not reach them: "
                + "name them with \(option) \(shellQuoted(other))")
        }
        return notes
    }
}
