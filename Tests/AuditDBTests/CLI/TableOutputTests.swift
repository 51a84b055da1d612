import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// The table output (`query`, `tail`) shows a value that could be read as a marker or as more
/// than one column JSON-quoted; JSONL stays the exact form.
@Suite("CLI: table cells are unambiguous")
struct TableOutputTests {
    /// `auditdb` with a new store and key in `dir` (AUDITDB_STORE, AUDITDB_KEY_FILE).
    static func newStore(in dir: TemporaryDirectory) throws -> ([String]) throws -> ProcessResult {
        let keyPath = dir.path("k.keys")
        _ = try KeyFile.generate(at: keyPath)
        let environment = ["AUDITDB_STORE": dir.path("s.db"), "AUDITDB_KEY_FILE": keyPath]
        let auditdb = { (arguments: [String]) throws -> ProcessResult in try run(try cliPath(), arguments, environment: environment) }
        #expect(try auditdb(["init"]).status == 0)
        return auditdb
    }

    @Test("a tenant '-' against none, an actor with spaces that draws fake columns, '(withheld)', a resource id with ':': quoted")
    func quoted() throws {
        let dir = try TemporaryDirectory()
        let auditdb = try Self.newStore(in: dir)
        #expect(try auditdb(["append", "--actor", "alice", "--action", "read"]).status == 0)
        #expect(try auditdb(["append", "--tenant", "-", "--actor", "mallory  login  success  info", "--action", "read"]).status == 0)
        #expect(try auditdb(["append", "--actor", "(withheld)", "--action", "read", "--resource-type", "doc", "--resource-id", "a:b"]).status == 0)
        let table = try auditdb(["query"]).stdout.split(separator: "\n").map(String.init)
        #expect(table.count == 4, "\(table)")
        // Columns are padded to their widths: the cells are read by their text.
        #expect(table[1].contains(" alice ") && !table[1].contains(#"""#), "\(table[1])")
        #expect(table[2].contains(#" "-" "#) && table[2].contains(#" "mallory  login  success  info" "#), "\(table[2])")
        #expect(table[3].contains(#" "(withheld)" "#) && table[3].contains(#" doc:"a:b" "#), "\(table[3])")
    }

    @Test("a resource with only a type, or only an id: TYPE: and :ID, never the same cell")
    func resourcePartsAreNamed() throws {
        let dir = try TemporaryDirectory()
        let auditdb = try Self.newStore(in: dir)
        #expect(try auditdb(["append", "--actor", "a", "--action", "read", "--resource-type", "doc"]).status == 0)
        #expect(try auditdb(["append", "--actor", "a", "--action", "read", "--resource-id", "doc"]).status == 0)
        #expect(try auditdb(["append", "--actor", "a", "--action", "read"]).status == 0)
        // query pads its columns; tail's table does not.
        for (command, gap) in [(["query"], "      "), (["tail", "--after", "0", "--format", "table"], "  ")] {
            let table = try auditdb(command).stdout.split(separator: "\n").map(String.init)
            try #require(table.count == 4, "\(table)")
            let before = command == ["query"] ? "    " : "  "
            #expect(table[1].contains(" read\(before)doc:\(gap)success "), "\(table[1])")
            #expect(table[2].contains(" read\(before):doc\(gap)success "), "\(table[2])")
            #expect(table[3].contains(" read\(before)\(String(repeating: " ", count: command == ["query"] ? 10 : 2))success "), "\(table[3])")
        }
    }
}
