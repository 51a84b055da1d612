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

    /// One spelling to look for: how the note names it (`--actor $'…'`), and the query for it.
    struct Alternative {
        let options: String
        let query: EntryQuery
    }

    /// The alternatives of a value given to `option`: its other composed and decomposed spellings.
    static func alternatives(_ value: String, option: String, query: (String) -> EntryQuery) -> [Alternative] {
        others(of: value).map { Alternative(options: "\(option) \(shellQuoted($0))", query: query($0)) }
    }

    /// The alternatives of a resource hold or erasure: every combination of the spellings of its
    /// type (if any) and of its id, but the one given.
    static func resourceAlternatives(type: String?, id: String, idOption: String) -> [Alternative] {
        let types: [String?] = type.map { [$0] + others(of: $0) } ?? [nil]
        let ids = [id] + others(of: id)
        var found: [Alternative] = []
        for (t, candidateType) in types.enumerated() {
            for (i, candidateID) in ids.enumerated() where t > 0 || i > 0 {
                let typeOption = candidateType.map { "--resource-type \(shellQuoted($0)) " } ?? ""
                found.append(Alternative(options: typeOption + "\(idOption) \(shellQuoted(candidateID))",
                                         query: EntryQuery(resourceType: candidateType, resourceId: candidateID)))
            }
        }
        return found
    }

    /// The field a value names rows by: the actor, the tenant, or a resource id (of `type`, if
    /// given), named on the command line by `option`.
    enum Field {
        case actor, tenant
        case resource(type: String?, option: String)
    }

    /// The notes for `value` of `field`: its other spellings that rows hold (``notes(_:given:what:_:)``).
    static func notes(_ store: AuditStore, _ field: Field, _ value: String, what: String) async -> [String] {
        switch field {
        case .actor:
            return await notes(store, given: shellQuoted(value), what: what, alternatives(value, option: "--actor") { EntryQuery(actor: $0) })
        case .tenant:
            return await notes(store, given: shellQuoted(value), what: what, alternatives(value, option: "--tenant") { EntryQuery(tenant: $0) })
        case .resource(let type, let option):
            let given = (type.map { "type \(shellQuoted($0)) and id " } ?? "") + shellQuoted(value)
            return await notes(store, given: given, what: what, resourceAlternatives(type: type, id: value, idOption: option))
        }
    }

    /// A note for each alternative that rows of `store` hold, saying that `what` did not reach
    /// them; empty when there is none. Only the composed and decomposed spellings are looked for
    /// (a value that mixes the two, or holds a compatibility character, is not).
    ///
    /// Best effort, after the command's own write: a spelling longer than the field's limit
    /// (decomposed text is longer) is one no row holds and is skipped, and a lookup that fails
    /// becomes a note saying so, never the command's error (what it wrote stays written).
    static func notes(_ store: AuditStore, given: String, what: String, _ alternatives: [Alternative]) async -> [String] {
        var notes: [String] = []
        for alternative in alternatives {
            var probe = alternative.query
            probe.limit = 1
            probe.unverifiedRows = .mark  // only whether such rows exist; verification is not this note's job
            do {
                guard !(try await store.entries(probe)).isEmpty else { continue }
            } catch let error as AuditError where error.code == .invalidInput {
                continue  // over the field's limit: no row can hold it
            } catch {
                notes.append("note: could not look for rows that hold another Unicode spelling of \(given): \(error)")
                continue
            }
            notes.append("note: rows hold \(alternative.options), a canonically equivalent spelling of \(given) "
                + "(composed and decomposed characters); values are compared byte for byte, so \(what) does not reach them: "
                + "name them with \(alternative.options)")
        }
        return notes
    }
}
