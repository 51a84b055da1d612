import ArgumentParser
import AuditDB
import Foundation

struct Hold: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Place, release and list legal holds: rows a hold matches are never expired, whatever their age.",
        discussion: """
            Placing and releasing a hold are signed entries in the log (actions auditdb.hold.placed and \
            auditdb.hold.released); a hold's id is the seq of the entry that placed it. `list` reads them back \
            through verification and fails (exit status 1) if any hold entry was changed or removed. See \
            docs/retention.md.
            """,
        subcommands: [Add.self, Release.self, List.self])

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Place a legal hold on one tenant, actor, resource or correlation id; prints its id.",
            discussion: """
                Exactly one of --tenant, --actor, --resource, --correlation-id. Values are compared byte for byte \
                with the rows' fields. --resource matches the resource id, of any resource type unless \
                --resource-type narrows it.
                """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "Hold the rows of this tenant.") var tenant: String?
        @Option(help: "Hold the rows of this actor.") var actor: String?
        @Option(help: ArgumentHelp("Hold the rows of this resource id.", valueName: "resource-id")) var resource: String?
        @Option(name: .customLong("resource-type"), help: "With --resource: only rows of this resource type.")
        var resourceType: String?
        @Option(name: .customLong("correlation-id"), help: "Hold the rows of this correlation id.") var correlationId: String?
        @Option(help: "Why (e.g. a case number); required.") var reason: String
        @Option(help: ArgumentHelp("Who places it, recorded as the entry's actor (default: the user running this command).",
                                   valueName: "name"))
        var by: String?

        func validate() throws {
            let given = [tenant, actor, resource, correlationId].compactMap { $0 }
            guard given.count == 1 else {
                throw ValidationError("give exactly one of --tenant, --actor, --resource, --correlation-id (got \(given.count))")
            }
            if resourceType != nil && resource == nil {
                throw ValidationError("--resource-type narrows --resource; give --resource too")
            }
        }

        func matcher() -> LegalHold.Matcher {
            if let tenant { return .tenant(tenant) }
            if let actor { return .actor(actor) }
            if let resource { return .resource(type: resourceType, id: resource) }
            return .correlationId(correlationId ?? "")
        }

        func run() async throws {
            let placer = by ?? ProcessInfo.processInfo.userName
            let (hold, notes) = try await withStore(global) { store in
                let hold = try await store.placeHold(matcher(), reason: reason, placedBy: placer)
                return (hold, await Self.spellingNotes(store, hold.matcher))
            }
            // The description quotes values as JSON strings, escaping what a terminal must not see raw.
            try Output.line("placed legal hold \(hold.id): \(hold.matcher.description)")
            for note in notes { try Output.line(note) }
        }

        /// Notes on rows that hold a canonically equivalent spelling of the held value, which the
        /// hold (matching byte for byte) does not keep (EquivalentSpellings). Correlation ids have
        /// no index: looking for other spellings would read the whole table, so it is not done.
        static func spellingNotes(_ store: AuditStore, _ matcher: LegalHold.Matcher) async -> [String] {
            switch matcher {
            case .tenant(let value): await EquivalentSpellings.notes(store, .tenant, value, what: "this hold")
            case .actor(let value): await EquivalentSpellings.notes(store, .actor, value, what: "this hold")
            case .resource(let type, let id): await EquivalentSpellings.notes(store, .resource(type: type, option: "--resource"), id, what: "this hold")
            case .correlationId: []
            }
        }
    }

    struct Release: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Release a legal hold; its rows may expire again under the retention policy.",
            discussion: "Exit status 2 if no hold has that id or it was released already (nothing is written); 1 if a hold entry fails verification.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The hold's id (printed by `hold add` and `hold list`).", transform: StrictNumber.integer) var id: Int64
        @Option(help: "Why; required.") var reason: String
        @Option(help: ArgumentHelp("Who releases it, recorded as the entry's actor (default: the user running this command).",
                                   valueName: "name"))
        var by: String?

        func run() async throws {
            let releaser = by ?? ProcessInfo.processInfo.userName
            let hold = try await withStore(global) { store in
                try await store.releaseHold(id: id, reason: reason, releasedBy: releaser)
            }
            try Output.line("released legal hold \(hold.id) (entry \(hold.release?.seq ?? 0))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the active legal holds (with --all, released ones too), each verified as it is read.",
            discussion: """
                EXIT STATUS
                  0  the holds were read and verified
                  1  a hold entry fails verification (changed, removed, or unreadable): no hold
                     is listed
                  2  could not run
                """)
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Also list released holds.") var all = false
        @Flag(help: "Print one JSON object {\"holds\": [...]}.") var json = false

        func run() async throws {
            let (holds, masking) = try await withStore(global) { store in
                (try await store.holds(includeReleased: all), try await store.maskingConfiguration())
            }
            let mask = try ActorMask(masking)
            if json {
                try Output.line("{\"holds\":[" + holds.map { HoldJSON.encode($0, mask) }.joined(separator: ",") + "]}")
                return
            }
            guard !holds.isEmpty else {
                try Output.line(all ? "no legal holds" : "no active legal holds")
                return
            }
            for hold in holds { try Output.line(Self.line(hold, mask)) }
        }

        static func line(_ hold: LegalHold, _ mask: ActorMask) -> String {
            func escaped(_ text: String?) -> String { OutputEscaping.escapeForTerminal(text ?? "(withheld)") }
            func person(_ name: String?) -> String { name.map(mask.text) ?? "(withheld)" }
            // An actor hold's value is a person's name: shown as the report shows it (FORMAT.md 23.1).
            var matcher = hold.matcher.description
            if case .actor(let value) = hold.matcher, mask.masks { matcher = "actor = " + mask.text(value) }
            var line = "hold \(hold.id)  \(matcher)  placed \(hold.placedAt.iso8601) by "
                + "\(person(hold.placedBy)): \(escaped(hold.reason))"
            if let release = hold.release {
                line += "  RELEASED \(release.releasedAt.iso8601) by \(person(release.releasedBy)): \(escaped(release.reason))"
                    + " (entry \(release.seq))"
            }
            return line
        }
    }
}

/// Opens the store, runs `body`, and closes the store whatever happened (the body's error wins).
func withStore<R>(_ global: GlobalOptions, _ body: (AuditStore) async throws -> R) async throws -> R {
    let store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                          configuration: try global.configuration())
    let result = await Result { try await body(store) }
    let closed = await Result { try await store.close() }
    let value = try result.get()
    try closed.get()
    return value
}

enum HoldJSON {
    static func encode(_ hold: LegalHold, _ mask: ActorMask) -> String {
        func q(_ s: String?) -> String { s.map(OutputEscaping.jsonQuoted) ?? "null" }
        func person(_ name: String?) -> String { name.map(mask.json) ?? "null" }
        var resourceType: String?
        if case .resource(let type, _) = hold.matcher { resourceType = type }
        let release = hold.release.map {
            "{\"seq\":\($0.seq),\"releasedAt\":\"\($0.releasedAt.iso8601)\",\"releasedBy\":\(person($0.releasedBy)),\"reason\":\(q($0.reason))}"
        } ?? "null"
        var value = q(hold.matcher.value)
        if case .actor(let name) = hold.matcher { value = mask.json(name) }  // as the report shows it
        return "{\"id\":\(hold.id),\"field\":\"\(hold.matcher.field)\",\"value\":\(value),"
            + "\"resourceType\":\(q(resourceType)),\"reason\":\(q(hold.reason)),\"placedBy\":\(person(hold.placedBy)),"
            + "\"placedAt\":\"\(hold.placedAt.iso8601)\",\"active\":\(hold.isActive),\"release\":\(release)}"
    }
}
