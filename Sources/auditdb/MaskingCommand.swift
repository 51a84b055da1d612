import ArgumentParser
import AuditDB
import Foundation

/// `--mask` and `--mask-key`, shared by `query`, `tail` and `export`.
struct MaskOptions: ParsableArguments {
    @Option(name: .customLong("mask"), help: ArgumentHelp(
        "Mask on output, on top of the store's masking rules: PATH=METHOD, PATH actor, source, details or details.KEY[.KEY...], METHOD partial or hash; repeatable.",
        valueName: "rule"))
    var mask: [String] = []
    @Option(name: .customLong("mask-key"), help: ArgumentHelp(
        "The masking key file for hash masks, not the row key file (default: $AUDITDB_MASK_KEY_FILE).", valueName: "file"))
    var maskKey: String?

    /// The rules of `--mask`, checked (before anything is opened).
    func rules() throws(AuditError) -> [MaskRule] {
        try parseMaskRules(mask, option: "--mask")
    }

    /// The store's masking rules plus `--mask`; the masking key is read only when a hash rule needs it.
    func policy(for store: AuditStore, extra: [MaskRule]) async throws -> MaskingPolicy {
        let stored = try await store.maskingConfiguration()
        var key: MaskingKey?
        if (stored.rules + extra).contains(where: { $0.method == .hash }),
           let path = maskKey ?? ProcessInfo.processInfo.environment["AUDITDB_MASK_KEY_FILE"], !path.isEmpty
        {
            key = try MaskingKey.load(path: path)
        }
        return try await store.maskingPolicy(key: key, adding: extra)
    }
}

struct Masking: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Set or show the store's masking rules: what query, tail and export mask on every output.",
        discussion: """
            The rules are a signed entry in the log (action auditdb.masking); the newest one holds, and \
            `--mask` on a command can add masks but not lift or change these. Hash masks need a masking key \
            of its own (--mask-key, made with `auditdb keys generate`). See docs/masking.md.
            """,
        subcommands: [Set.self, Show.self])

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace the store's masking rules (--none: mask nothing); prints the entry's seq.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .customLong("rule"), help: ArgumentHelp("PATH=METHOD, such as details.email=hash; repeatable.", valueName: "rule"))
        var rules: [String] = []
        @Flag(help: "Mask nothing from now on (instead of --rule).") var none = false
        @Option(help: "Why (e.g. a ticket), recorded in the entry.") var reason: String?
        @Option(help: ArgumentHelp("Who sets them, recorded as the entry's actor (default: the user running this command).",
                                   valueName: "name"))
        var by: String?

        func validate() throws {
            guard rules.isEmpty == none else { throw ValidationError("give --rule (one or more), or --none to mask nothing") }
        }

        func run() async throws {
            let parsed = try parseMaskRules(rules, option: "--rule")
            let setter = by ?? ProcessInfo.processInfo.userName
            let seq = try await withStore(global) { store in try await store.setMasking(parsed, by: setter, reason: reason) }
            let text = parsed.isEmpty ? "nothing" : Swift.Set(parsed).sorted().map(\.description).joined(separator: ", ")
            try Output.line("masking entry \(seq): the store masks \(OutputEscaping.escapeForTerminal(text))")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the store's masking rules, read through verification (exit 1 if the entry was tampered with).")
        @OptionGroup var global: GlobalOptions

        func run() async throws {
            let masking = try await withStore(global) { store in try await store.maskingConfiguration() }
            guard let seq = masking.seq else {
                try Output.line("no masking rules: outputs show every value")
                return
            }
            let mask = try ActorMask(masking)
            let by = masking.setBy.map { " by " + (mask.masks ? mask.text($0) : OutputEscaping.jsonQuoted($0)) } ?? ""
            let why = masking.reason.map { ", reason " + OutputEscaping.jsonQuoted($0) } ?? ""
            try Output.line("set at seq \(seq), \(masking.setAt?.iso8601 ?? "-")\(by)\(why)")
            if masking.rules.isEmpty { try Output.line("no masking rules: outputs show every value") }
            for rule in masking.rules { try Output.line(OutputEscaping.escapeForTerminal(rule.description)) }
        }
    }
}

extension ParsableCommand {
    /// Checks `--by` (an access entry's actor) while the arguments are validated, before any work.
    static func checkBy(_ name: String) throws {
        do {
            try AuditStore.checkRequester(name)
        } catch {
            throw ValidationError(error.message)
        }
    }
}

/// The rules given to `option` (`--mask`, `--rule`), each checked; a rule given twice is refused
/// like a field named twice elsewhere (`--fields actor,actor`): an input that repeats itself may
/// not say what was meant.
func parseMaskRules(_ texts: [String], option: String) throws(AuditError) -> [MaskRule] {
    var rules: [MaskRule] = []
    for text in texts {
        let rule: MaskRule
        do {
            rule = try MaskRule(parsing: text)
        } catch {
            throw AuditError(.invalidInput, "\(option): \(error.message)", field: option)
        }
        guard !rules.contains(where: { $0.path == rule.path && $0.method == rule.method }) else {
            throw AuditError(.invalidInput, "\(option) \(text) is given twice; give each rule once", field: option)
        }
        rules.append(rule)
    }
    return rules
}
