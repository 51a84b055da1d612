import Foundation
import Testing

@testable import AuditDB

/// `auditdb hold`: the real binary, its whole output and its exit status.
@Suite("auditdb hold")
struct HoldCLITests {
    let dir: TempDir
    let cli: String
    let store: String
    let keyFile: String

    init() throws {
        dir = try TempDir()
        cli = try cliPath()
        store = dir.path("store.db")
        keyFile = dir.path("audit.keys")
    }

    func auditdb(_ arguments: [String]) throws -> ProcessResult {
        var environment = inheritedEnvironment
        for name in ["AUDITDB_STORE", "AUDITDB_KEY_FILE", "AUDITDB_KEYS", "AUDITDB_STORE_ID"] {
            environment.removeValue(forKey: name)
        }
        environment["AUDITDB_STORE"] = store
        environment["AUDITDB_KEY_FILE"] = keyFile
        return try run(cli, arguments, environment: environment)
    }

    func setUp() throws {
        #expect(try auditdb(["keys", "generate", "--out", keyFile]).status == 0)
        #expect(try auditdb(["init"]).status == 0)
        #expect(try auditdb(["append", "--actor", "alice", "--action", "read", "--tenant", "acme"]).stdout == "1\n")
    }

    /// The recorded time of row `seq`, as the CLI prints it.
    func recordedAt(_ seq: Int64) async throws -> String {
        let keys = try KeyFile(path: keyFile).load()
        let handle = try await AuditStore.open(at: store, keys: keys)
        let entry = try await handle.entries(EntryQuery(seqs: seq...seq)).first
        try await handle.close()
        return entry?.recordedAt.iso8601 ?? "?"
    }

    @Test("add, list, release, list --all, --json: whole output and exit status")
    func addReleaseList() async throws {
        try setUp()
        let add = try auditdb(["hold", "add", "--tenant", "acme", "--reason", "case 2026-114", "--by", "legal:dana"])
        #expect(add.status == 0, "\(add.stderr)")
        #expect(add.stdout == "placed legal hold 2: tenant = \"acme\"\n")
        let resource = try auditdb(["hold", "add", "--resource", "doc-7", "--resource-type", "document", "--reason", "subpoena", "--by", "legal:eve"])
        #expect(resource.stdout == "placed legal hold 3: resource = \"document\"/\"doc-7\"\n")
        let correlation = try auditdb(["hold", "add", "--correlation-id", "req-9", "--reason", "incident 4", "--by", "sec"])
        #expect(correlation.stdout == "placed legal hold 4: correlationId = \"req-9\"\n")
        let (t2, t3, t4) = (try await recordedAt(2), try await recordedAt(3), try await recordedAt(4))

        let list = try auditdb(["hold", "list"])
        #expect(list.status == 0)
        #expect(list.stdout == """
            hold 2  tenant = "acme"  placed \(t2) by legal:dana: case 2026-114
            hold 3  resource = "document"/"doc-7"  placed \(t3) by legal:eve: subpoena
            hold 4  correlationId = "req-9"  placed \(t4) by sec: incident 4

            """)

        let release = try auditdb(["hold", "release", "3", "--reason", "quashed", "--by", "legal:eve"])
        #expect(release.status == 0)
        #expect(release.stdout == "released legal hold 3 (entry 5)\n")
        let t5 = try await recordedAt(5)
        #expect(try auditdb(["hold", "list"]).stdout == """
            hold 2  tenant = "acme"  placed \(t2) by legal:dana: case 2026-114
            hold 4  correlationId = "req-9"  placed \(t4) by sec: incident 4

            """)
        #expect(try auditdb(["hold", "list", "--all"]).stdout == """
            hold 2  tenant = "acme"  placed \(t2) by legal:dana: case 2026-114
            hold 3  resource = "document"/"doc-7"  placed \(t3) by legal:eve: subpoena  RELEASED \(t5) by legal:eve: quashed (entry 5)
            hold 4  correlationId = "req-9"  placed \(t4) by sec: incident 4

            """)
        let json = try auditdb(["hold", "list", "--all", "--json"])
        #expect(json.status == 0)
        #expect(json.stdout == "{\"holds\":["
            + "{\"id\":2,\"field\":\"tenant\",\"value\":\"acme\",\"resourceType\":null,\"reason\":\"case 2026-114\",\"placedBy\":\"legal:dana\",\"placedAt\":\"\(t2)\",\"active\":true,\"release\":null},"
            + "{\"id\":3,\"field\":\"resource\",\"value\":\"doc-7\",\"resourceType\":\"document\",\"reason\":\"subpoena\",\"placedBy\":\"legal:eve\",\"placedAt\":\"\(t3)\",\"active\":false,\"release\":{\"seq\":5,\"releasedAt\":\"\(t5)\",\"releasedBy\":\"legal:eve\",\"reason\":\"quashed\"}},"
            + "{\"id\":4,\"field\":\"correlationId\",\"value\":\"req-9\",\"resourceType\":null,\"reason\":\"incident 4\",\"placedBy\":\"sec\",\"placedAt\":\"\(t4)\",\"active\":true,\"release\":null}"
            + "]}\n")
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect((parsed?["holds"] as? [Any])?.count == 3)
        #expect(try auditdb(["verify"]).status == 0)
    }

    @Test("hold add and erase name the rows that hold a canonically equivalent spelling of the value, which they do not reach")
    func equivalentSpellings() throws {
        try setUp()
        let composed = "Jos\u{E9}", decomposed = "Jose\u{301}"
        #expect(Array(composed.utf8) != Array(decomposed.utf8))
        for _ in 0..<2 { #expect(try auditdb(["append", "--actor", decomposed, "--action", "read", "--source", "10.0.0.1"]).status == 0) }
        func note(_ given: String, _ other: String, _ what: String) -> String {
            "note: rows hold --actor \(other), a canonically equivalent spelling of \(given) (composed and decomposed characters); values are compared byte for byte, so \(what) does not reach them: name them with --actor \(other)\n"
        }
        let held = try auditdb(["hold", "add", "--actor", composed, "--reason", "case 1", "--by", "legal"])
        #expect(held.status == 0 && held.stdout.hasPrefix("placed legal hold 4: ")
                && held.stdout.hasSuffix(note(#"$'Jos\u00e9'"#, #"$'Jose\u0301'"#, "this hold")), "\(held.stdout)")
        let plain = try auditdb(["hold", "add", "--actor", "alice", "--reason", "case 2", "--by", "legal"])
        #expect(plain.status == 0 && !plain.stdout.contains("note:"), "\(plain.stdout)")
        let missed = try auditdb(["erase", "--actor", composed, "--fields", "source", "--reason", "ticket-1"])
        #expect(missed.status == 0 && missed.stdout.hasPrefix("erased source of 0 row(s); 0 had nothing left to erase\n"), "\(missed.stdout)")
        #expect(missed.stdout.contains(note(#"$'Jos\u00e9'"#, #"$'Jose\u0301'"#, "this erasure")), "\(missed.stdout)")
        let erased = try auditdb(["erase", "--actor", decomposed, "--fields", "source", "--reason", "ticket-1"])
        #expect(erased.status == 0 && erased.stdout.hasPrefix("erased source of 2 row(s)") && !erased.stdout.contains("canonically"), "\(erased.stdout)")
        // A resource type spelt the other way: the note names both options.
        #expect(try auditdb(["append", "--actor", "a", "--action", "read", "--resource-type", "inv\u{F6}ice", "--resource-id", "doc-1"]).status == 0)
        let typed = try auditdb(["hold", "add", "--resource", "doc-1", "--resource-type", "invo\u{308}ice", "--reason", "case 3", "--by", "legal"])
        #expect(typed.status == 0 && typed.stdout.contains(
            #"note: rows hold --resource-type $'inv\u00f6ice' --resource $'doc-1', a canonically equivalent spelling of type $'invo\u0308ice' and id $'doc-1'"#),
                "\(typed.stdout)")
        // The hold and the erasure are written: a lookup that cannot run (the decomposed spelling is
        // over the field's 256-byte limit) never turns them into an error.
        let long = String(repeating: "\u{E9}", count: 128)
        #expect(try auditdb(["append", "--actor", long, "--action", "read"]).status == 0)
        let longHold = try auditdb(["hold", "add", "--actor", long, "--reason", "case 4", "--by", "legal"])
        #expect(longHold.status == 0 && longHold.stdout.hasPrefix("placed legal hold ") && longHold.stderr == "", "\(longHold.stdout)\(longHold.stderr)")
        let longErase = try auditdb(["erase", "--actor", long, "--fields", "source", "--reason", "ticket-2"])
        #expect(longErase.status == 0 && longErase.stdout.hasPrefix("erased source of 1 row(s)"), "\(longErase.stdout)\(longErase.stderr)")
    }

    @Test("an empty store: no holds; --json gives an empty list")
    func noHolds() throws {
        try setUp()
        #expect(try auditdb(["hold", "list"]).stdout == "no active legal holds\n")
        #expect(try auditdb(["hold", "list", "--all"]).stdout == "no legal holds\n")
        #expect(try auditdb(["hold", "list", "--json"]).stdout == "{\"holds\":[]}\n")
    }

    @Test("--by defaults to the user running the command; values are escaped in the output")
    func defaultPlacerAndEscaping() throws {
        try setUp()
        let add = try auditdb(["hold", "add", "--actor", "bob\u{202E}evil", "--reason", "case \u{200B}x"])
        #expect(add.status == 0)
        #expect(add.stdout == "placed legal hold 2: actor = \"bob\\u202eevil\"\n")
        let list = try auditdb(["hold", "list"])
        #expect(list.stdout.contains("by \(ProcessInfo.processInfo.userName): case \\u{200B}x\n"))
    }

    @Test("the store masks the actor: who placed and released a hold, and who set the rules, are shown masked as query shows them")
    func placerMasked() throws {
        try setUp()
        #expect(try auditdb(["masking", "set", "--rule", "actor=partial", "--reason", "privacy", "--by", "root.admin@example.com"]).status == 0)
        #expect(try auditdb(["hold", "add", "--tenant", "acme", "--reason", "case", "--by", "jane.doe@example.com"]).stdout == "placed legal hold 3: tenant = \"acme\"\n")
        #expect(try auditdb(["hold", "release", "3", "--reason", "closed", "--by", "jim.roe@example.com"]).status == 0)
        let query = try auditdb(["query", "--from-seq", "3", "--format", "jsonl"])
        #expect(query.stdout.contains("\"actor\":{\"masked\":\"partial\",\"value\":\"j***@example.com\"}"), "\(query.stdout)")
        let list = try auditdb(["hold", "list", "--all"])
        #expect(list.status == 0)
        #expect(list.stdout.contains(" by <masked:j***@example.com>: case  RELEASED "), "\(list.stdout)")
        #expect(list.stdout.contains(" by <masked:j***@example.com>: closed (entry 4)\n"), "\(list.stdout)")
        let json = try auditdb(["hold", "list", "--all", "--json"]).stdout
        #expect(json.contains("\"placedBy\":{\"masked\":\"partial\",\"value\":\"j***@example.com\"}"), "\(json)")
        #expect(json.contains("\"releasedBy\":{\"masked\":\"partial\",\"value\":\"j***@example.com\"}"), "\(json)")
        let show = try auditdb(["masking", "show"]).stdout
        #expect(show.hasPrefix("set at seq 2, "), "\(show)")
        #expect(show.contains(" by <masked:r***@example.com>, reason \"privacy\"\n"), "\(show)")
        for output in [list.stdout, json, show] {
            #expect(!output.contains("jane.doe") && !output.contains("jim.roe") && !output.contains("root.admin"))
        }
        // A hold on an actor: its value is a person's name too, shown as the report shows it.
        #expect(try auditdb(["hold", "add", "--actor", "sam.poe@example.com", "--reason", "case 2", "--by", "jane.doe@example.com"]).status == 0)
        let actorList = try auditdb(["hold", "list"]).stdout
        #expect(actorList.contains("  actor = <masked:s***@example.com>  placed "), "\(actorList)")
        let actorJSON = try auditdb(["hold", "list", "--json"]).stdout
        #expect(actorJSON.contains("\"field\":\"actor\",\"value\":{\"masked\":\"partial\",\"value\":\"s***@example.com\"}"), "\(actorJSON)")
        #expect(!actorList.contains("sam.poe") && !actorJSON.contains("sam.poe"))
    }

    @Test("releasing twice or an unknown id: exit 2 with the error, nothing written")
    func releaseErrors() throws {
        try setUp()
        _ = try auditdb(["hold", "add", "--tenant", "acme", "--reason", "r", "--by", "p"])
        #expect(try auditdb(["hold", "release", "2", "--reason", "done", "--by", "p"]).status == 0)
        let twice = try auditdb(["hold", "release", "2", "--reason", "again", "--by", "p"])
        #expect(twice.status == 2)
        #expect(twice.stdout.isEmpty)
        #expect(twice.stderr.hasPrefix("auditdb: error: legal hold 2 was already released by entry 3 at "))
        #expect(twice.stderr.hasSuffix("; nothing was written\n"))
        let unknown = try auditdb(["hold", "release", "42", "--reason", "x", "--by", "p"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr == "auditdb: error: no legal hold has id 42 (a hold's id is the seq of the entry that placed it); list the holds with `auditdb hold list --all`\n")
        #expect(try auditdb(["query", "--format", "jsonl"]).stdout.split(separator: "\n").count == 3)
    }

    @Test("bad arguments: exit 2 naming the problem", arguments: [
        (["hold", "add", "--reason", "r"], "Error: give exactly one of --tenant, --actor, --resource, --correlation-id (got 0)"),
        (["hold", "add", "--tenant", "a", "--actor", "b", "--reason", "r"], "Error: give exactly one of --tenant, --actor, --resource, --correlation-id (got 2)"),
        (["hold", "add", "--tenant", "a", "--resource-type", "doc", "--reason", "r"], "Error: --resource-type narrows --resource; give --resource too"),
        (["hold", "add", "--tenant", "a"], "Error: Missing expected argument '--reason <reason>'"),
        (["hold", "add", "--tenant", "a", "--reason", ""], "auditdb: error: reason: must not be empty: say why (a case or ticket number)"),
        (["hold", "add", "--tenant", "", "--reason", "r"], "auditdb: error: tenant: must not be empty (no row holds an empty value)"),
        (["hold", "release", "x", "--reason", "r"], "Error: The value 'x' is invalid for '<id>'"),
    ])
    func badArguments(arguments: [String], message: String) throws {
        try setUp()
        let result = try auditdb(arguments)
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix(message), "\(result.stderr)")
        #expect(try auditdb(["query", "--format", "jsonl"]).stdout.split(separator: "\n").count == 1)
    }

    @Test("a tampered placement: list exits 1 naming the hold entry; verify names the row")
    func tamperedPlacement() throws {
        try setUp()
        _ = try auditdb(["hold", "add", "--tenant", "acme", "--reason", "r", "--by", "p"])
        try sqlite3Must(store, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET details = replace(details, 'acme', 'none') WHERE seq = 2;")
        let list = try auditdb(["hold", "list"])
        #expect(list.status == 1)
        #expect(list.stdout.isEmpty)
        #expect(list.stderr.hasPrefix("auditdb: error: legal hold entry 2 failed verification (mac-mismatch at seq 2: "))
        #expect(list.stderr.hasSuffix("; no holds are returned, since a hold that was removed or changed could let held rows expire. Run `auditdb verify` for a full report, and restore the store from a backup.\n"))
        let verify = try auditdb(["verify"])
        #expect(verify.status == 1)
        #expect(verify.stdout.contains("mac-mismatch at seq 2:"))
    }
}
