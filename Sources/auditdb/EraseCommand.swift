import ArgumentParser
import AuditDB
import Foundation

struct Erase: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Erase fields of an actor's, tenant's, resource's or chosen rows for good; the log still verifies.",
        discussion: """
            Each chosen field (actor, source, details) of every matching row is replaced by its commitment: \
            the value is gone from the store file and its -wal (add --compact to remove the stale copies SQLite \
            may keep in pages it rebalanced), and cannot be confirmed even with every key, \
            while MACs, the chain, checkpoints and export proofs still verify. A path inside details \
            (details.email) removes that member and keeps the rest of details readable, authenticated by the \
            erasure entry. A signed erasure entry names the seqs, the fields and paths and --reason, never a \
            value (docs/FORMAT.md section 21, docs/erasure.md). Rows \
            written before migration 0006 cannot be erased this way: the command refuses unless \
            --skip-legacy-rows. Backups and exports made before keep the values. Stopped by SIGTERM or SIGINT, \
            it ends the batch of rows it is in, empties the log of what it erased, says how far it got and \
            exits 2: run it again to finish (a run that finds every row erased still empties the log). Exit \
            status 1 if a matching row fails verification (nothing of that batch is erased), 2 for bad \
            arguments, storage errors or a stop.
            """)
    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("Erase the rows of this actor.", valueName: "actor")) var actor: String?
    @Option(help: ArgumentHelp("Erase the rows of this tenant.", valueName: "tenant")) var tenant: String?
    @Option(name: .customLong("resource-type"), help: ArgumentHelp("With --resource-id: only this resource type.", valueName: "type"))
    var resourceType: String?
    @Option(name: .customLong("resource-id"), help: ArgumentHelp("Erase the rows about this resource.", valueName: "id"))
    var resourceId: String?
    @Option(help: ArgumentHelp("Erase exactly these seqs, comma-separated (e.g. 12,40,41).", valueName: "seqs"))
    var seqs: String?
    @Option(help: ArgumentHelp("Which fields: a comma-separated subset of actor, source, details, and paths inside details (details.email, details.user.ip; at most 16).",
                               valueName: "fields"))
    var fields: String
    @Option(help: ArgumentHelp("Why (e.g. a ticket reference); signed into the log, so never the personal data itself.",
                               valueName: "text"))
    var reason: String
    @Flag(name: .customLong("skip-legacy-rows"),
          help: "Leave rows written before migration 0006 as they are (they cannot be erased unrecoverably) and erase the rest.")
    var skipLegacyRows = false
    @Flag(name: .customLong("compact"),
          help: "Then rewrite the store file, as `auditdb compact` does, so that no stale copy of an erased value is left in the unused space of a page (docs/erasure.md, \"Stale copies\"). Needs free disk space as large as the store; appends wait until it is done.")
    var compact = false

    func validate() throws {
        _ = try subject()
        _ = try fieldSet()
    }

    /// The fields erased whole and the paths inside details (parsed as masking paths are).
    func fieldSet() throws -> (fields: Set<WithholdableField>, paths: [MaskPath]) {
        var set: Set<WithholdableField> = [], paths: [MaskPath] = []
        var named: Set<[UInt8]> = []  // bytes: canonically equivalent spellings are different keys
        for name in fields.unicodeScalars.split(separator: ",", omittingEmptySubsequences: false).map({ String(String.UnicodeScalarView($0)) }) {
            // A name given twice is a typo for another field, most likely: say so rather than
            // erase less than the operator meant.
            guard named.insert(Array(name.utf8)).inserted else {
                throw ValidationError("--fields names \(OutputEscaping.jsonQuoted(name)) twice; name each field or path once")
            }
            if let field = WithholdableField(rawValue: name) {
                set.insert(field)
            } else if name.hasPrefix("details.") {
                do {
                    paths.append(try MaskPath(parsing: name))
                } catch {
                    // The path's own rule (its depth, an empty key, …), as `masking set` says it.
                    throw ValidationError("--fields: \(error.message)")
                }
            } else {
                throw ValidationError("--fields takes a comma-separated subset of actor, source, details and details.KEY[.KEY…], not \(OutputEscaping.jsonQuoted(name))")
            }
        }
        return (set, paths)
    }

    func subject() throws -> ErasureSubject {
        let given = [actor != nil, tenant != nil, resourceId != nil, seqs != nil].filter { $0 }.count
        guard given == 1 else { throw ValidationError("name exactly one subject: --actor, --tenant, --resource-id or --seqs") }
        guard resourceType == nil || resourceId != nil else { throw ValidationError("--resource-type goes with --resource-id") }
        if let actor { return .actor(actor) }
        if let tenant { return .tenant(tenant) }
        if let resourceId { return .resource(type: resourceType, id: resourceId) }
        var list: [Int64] = []
        var seen = Set<Int64>()
        for item in (seqs ?? "").split(separator: ",", omittingEmptySubsequences: false) {
            guard let seq = DecimalText.nonNegativeInt64(item), seq >= 1 else {
                if StrictNumber.isTooLarge(item) { throw ValidationError("--seqs: \(item) is too large") }
                throw ValidationError("--seqs takes comma-separated seqs of 1 or more, not \(OutputEscaping.jsonQuoted(String(item)))")
            }
            guard seen.insert(seq).inserted else { throw ValidationError("--seqs names seq \(seq) twice; name each seq once") }
            list.append(seq)
        }
        return .seqs(list)
    }

    func run() async throws {
        let subject = try subject(), (fields, paths) = try fieldSet(), reason = reason, skip = skipLegacyRows
        let (report, space, notes) = try await withStore(global) { store in
            let report = try await stoppable { try await store.erase(subject, fields: fields, paths: paths, reason: reason, skippingLegacyRows: skip) }
            let notes = await Self.spellingNotes(store, subject)
            return (report, compact ? try await store.compact() : nil, notes)
        }
        let names = (WithholdableField.allCases.filter(report.fields.contains).map(\.rawValue) + report.paths.map(\.description))
            .joined(separator: ", ")
        try Output.line("erased \(names) of \(report.erased.count) row(s); \(report.alreadyErased) had nothing left to erase")
        if case .actor = subject, report.erased.isEmpty, report.alreadyErased == 0, report.legacyRowsSkipped.isEmpty {
            // No row has this actor now. A row whose actor an earlier erasure erased is among
            // them no longer (the value is gone, and no entry keeps it), however much else of it
            // is left: say so, or "0 rows" would read as "nothing of this person is left".
            try Output.line("note: no row has this actor now; a row whose actor an earlier erasure erased no longer matches it. To erase more of such rows, name them with --seqs (each erasure entry lists its seqs: auditdb query --action auditdb.erasure --format jsonl)")
        }
        if report.fields.isEmpty, !report.paths.isEmpty, report.erased.isEmpty, report.alreadyErased > 0 {
            // A misspelt path (details.emial) erases nothing and is no error: the rows hold none
            // of it. Say that this may be why, or "0 rows" would read as "done before".
            try Output.line("note: none of the \(report.alreadyErased) matching row(s) holds \(report.paths.map(\.description).joined(separator: " or ")) now: an earlier erasure removed it, or the row never had it (check the spelling: paths are case-sensitive)")
        } else if !report.pathsHeldByNoRow.isEmpty {
            // The same beside a path that was there: "erased details.email, details.emial" would
            // otherwise say both were found.
            let missing = report.pathsHeldByNoRow.map(\.description), them = missing.count == 1 ? "it" : "them"
            let named = report.erasureEntries.isEmpty ? "" : " (the erasure entries name \(them) all the same)"
            try Output.line("note: no matching row held \(missing.joined(separator: " or "))\(named): an earlier erasure removed \(them), or no row ever had \(them) (check the spelling: paths are case-sensitive)")
        }
        if !report.legacyRowsSkipped.isEmpty {
            try Output.line("left \(report.legacyRowsSkipped.count) row(s) written before migration 0006 as they are (first seq \(report.legacyRowsSkipped[0]))")
        }
        if report.engineEntriesSkipped > 0 {
            try Output.line("skipped \(report.engineEntriesSkipped) of AuditDB's own entries (never erased)")
        }
        if !report.erasureEntries.isEmpty {
            try Output.line("erasure entries: \(report.erasureEntries.map(String.init).joined(separator: ", "))")
        }
        if let space {
            try Output.line("compacted: " + SpaceLine.describe(space))
        } else if !report.erased.isEmpty {
            try Output.line("note: SQLite may keep stale copies of erased values in the unused space of pages it rebalanced before or during the erasure (after an expiry, for instance); `auditdb compact` (or erase --compact) rewrites the file without them")
        }
        for note in notes { try Output.line(note) }
        if !report.scrubbed {
            try Output.line("warning: the write-ahead log could not be emptied (a reader held an older snapshot for the whole busy timeout, or the disk is full), so the erased values may still be in the store file or its -wal. Once that reader is gone (or space is freed), run this erasure again: it finds nothing more to erase and empties the log. Commands that only read (query, verify) do not empty it")
        }
    }

    /// Notes on rows that hold a canonically equivalent spelling of the subject's value, which
    /// this erasure (matching byte for byte) did not reach (EquivalentSpellings).
    static func spellingNotes(_ store: AuditStore, _ subject: ErasureSubject) async -> [String] {
        switch subject {
        case .actor(let value): await EquivalentSpellings.notes(store, .actor, value, what: "this erasure")
        case .tenant(let value): await EquivalentSpellings.notes(store, .tenant, value, what: "this erasure")
        case .resource(let type, let id): await EquivalentSpellings.notes(store, .resource(type: type, option: "--resource-id"), id, what: "this erasure")
        case .seqs: []
        }
    }
}
