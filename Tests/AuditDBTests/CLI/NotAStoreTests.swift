import Foundation
import Testing

@testable import AuditDB

/// A `--store` path that is not a store — a FIFO, a directory, a device, an empty file, another
/// application's SQLite database — is refused at once with `not-a-store` (exit 2), by every
/// command, and the file is left exactly as it was (opening a store would set WAL mode). And a
/// busy timeout that is not one.
@Suite("A path that is not a store, a timeout that is not one")
struct NotAStoreTests {
    let dir: TempDir
    let keyFile: String

    init() throws {
        dir = try TempDir()
        keyFile = dir.path("k.keys")
        try KeyFile.generate(at: keyFile)
    }

    func auditdb(_ store: String, _ arguments: [String]) throws -> ProcessResult {
        try run(try cliPath(), arguments + ["--store", store, "--key-file", keyFile], environment: environmentWithoutAuditDBOptions())
    }

    static let commands: [[String]] = [["verify"], ["query"], ["status"], ["scan", "--no-record"], ["append", "--actor", "a", "--action", "x"], ["migrate"]]

    @Test("a FIFO, a directory, a device and an empty file: each command says what the path is, exit 2, without waiting")
    func notFiles() throws {
        let fifo = dir.path("fifo"), directory = dir.path("dir"), empty = dir.path("empty.db")
        #expect(mkfifo(fifo, 0o600) == 0)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        #expect(writeTestFile(empty, Data(), mode: 0o644))
        for (path, what) in [(fifo, "is a FIFO (named pipe), not a store file"), (directory, "is a directory, not a store file"),
                             ("/dev/null", "is a device, not a store file"), (empty, "is an empty file, not an AuditDB store: check the path")] {
            for command in Self.commands {
                let result = try auditdb(path, command)
                #expect(result.status == 2, "\(command) \(path): \(result.stderr)")
                #expect(result.stderr.contains("\(path) \(what)"), "\(command) \(path): \(result.stderr)")
            }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: empty)).isEmpty)
        // The Python verifier agrees: it cannot run on an empty file (it read it as an empty
        // database and reported every object missing).
        let keyFile = dir.path("py.keys")
        _ = try KeyFile.generate(at: keyFile)
        let python = try run("/usr/bin/env", ["python3", repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify.py").path,
                                              "--store", empty, "--key-file", keyFile])
        #expect(python.status == 2, "\(python.stdout)\(python.stderr)")
        #expect(python.stderr.contains("\(empty) is an empty file, not an AuditDB store: check the path"), "\(python.stderr)")
    }

    @Test("another application's SQLite database: refused by every command, and not changed (no WAL mode, no -wal file)")
    func foreignDatabase() throws {
        let path = dir.path("app.db")
        // An application built on GRDB: it has a grdb_migrations table too.
        try sqlite3Must(path, """
            CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('kim');
            CREATE TABLE grdb_migrations(identifier TEXT NOT NULL PRIMARY KEY); INSERT INTO grdb_migrations VALUES ('v1');
            """)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(before[18] == 1 && before[19] == 1)  // a rollback-journal database
        for command in Self.commands {
            let result = try auditdb(path, command)
            #expect(result.status == 2, "\(command): \(result.stderr)")
            #expect(result.stderr.contains("is an SQLite database without AuditDB's tables or migration record, not an AuditDB store: another application's file (check the path; it was not changed)"),
                    "\(command): \(result.stderr)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        let python = try run("/usr/bin/env", ["python3", repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify.py").path,
                                              "--store", path, "--key-file", keyFile])
        #expect(python.status == 2, "\(python.stdout)\(python.stderr)")
        #expect(python.stderr.contains("\(path) is an SQLite database without AuditDB's tables or migration record, not an AuditDB store"), "\(python.stderr)")
        // Not SQLite at all (perhaps a store overwritten): verify reports corruption, as before.
        let text = dir.path("notes.txt")
        try Data("SQLite format 2 is not this\n".utf8).write(to: URL(fileURLWithPath: text))
        let result = try auditdb(text, ["verify"])
        #expect(result.status == 1 && result.stdout.contains("corruption: the file cannot be read as a database"), "\(result.stdout)")
    }

    @Test("a store whose every table and view was dropped (its migration record left): verify reports it, exit 1, with the same findings as the Python verifier")
    func everyTableDropped() async throws {
        let store = dir.path("wiped.db")
        try await makeStore(at: store, keys: try KeyFile(path: keyFile).load(), count: 3)
        let objects = try sqlite3Shell(store, "SELECT type || ' ' || name FROM sqlite_schema WHERE type IN ('table', 'view') AND name <> 'grdb_migrations' AND name NOT LIKE 'sqlite_%' ORDER BY type DESC;").stdout
        try sqlite3Must(store, objects.split(separator: "\n").map { "DROP \($0);" }.joined(separator: "\n"))
        let result = try auditdb(store, ["verify"])
        #expect(result.status == 1, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("\n  header-tampered: the audit_store table is missing\n"), "\(result.stdout)")
        let report = try await AuditStore.verify(storeAt: store, keys: try KeyFile(path: keyFile).load())
        #expect(report.findings.contains { $0.kind == .headerTampered } && report.findings.contains { $0.kind == .schemaTampered })
        #expect(try pythonFindings(store, keyFile: keyFile) == findingNames(report).map { $0.hasSuffix(" -") ? $0 + "...-" : $0 })
    }

    @Test("a busy timeout that is not a number of seconds is refused, naming where it came from; an empty AUDITDB_BUSY_TIMEOUT is unset")
    func busyTimeout() async throws {
        let store = dir.path("s.db")
        try await makeStore(at: store, keys: try KeyFile(path: keyFile).load(), count: 1)
        for value in ["", "1e-300", "86401", "0x10"] {  // ("-1" is taken for an option by the parser: its own exit 2)
            let result = try auditdb(store, ["query", "--busy-timeout", value])
            #expect(result.status == 2, "\(value): \(result.stderr)")
            #expect(result.stderr.contains("--busy-timeout must be a number of seconds from 0 to 86400"), "\(value): \(result.stderr)")
        }
        var environment = environmentWithoutAuditDBOptions()
        environment["AUDITDB_BUSY_TIMEOUT"] = "soon"
        let fromVariable = try run(try cliPath(), ["query", "--store", store, "--key-file", keyFile], environment: environment)
        #expect(fromVariable.status == 2 && fromVariable.stderr.contains("AUDITDB_BUSY_TIMEOUT must be a number of seconds"), "\(fromVariable.stderr)")
        environment["AUDITDB_BUSY_TIMEOUT"] = ""
        #expect(try run(try cliPath(), ["query", "--store", store, "--key-file", keyFile], environment: environment).status == 0)
        #expect(try auditdb(store, ["query", "--busy-timeout", "2.5"]).status == 0)
    }

    @Test("a store file that cannot be read as a database: verify and every form of scan report the same corruption finding, exit 1")
    func unreadableStore() async throws {
        let store = dir.path("cut.db")
        try await makeStore(at: store, keys: try KeyFile(path: keyFile).load(), count: 50)
        #expect(truncate(store, 4096) == 0)
        for arguments in [["verify"], ["scan"], ["scan", "--no-record"], ["scan", "--full"], ["scan", "--every", "1s"]] {
            let result = try auditdb(store, arguments)
            #expect(result.status == 1, "\(arguments): \(result.stdout)\(result.stderr)")
            #expect(result.stdout.contains("corruption: the file cannot be read as a database: open \(store) failed: the file is not a valid database or its pages are damaged"),
                    "\(arguments): \(result.stdout)\(result.stderr)")
        }
        let report = try await IntegrityScanner.scan(storeAt: store, keys: try KeyFile(path: keyFile).load())
        #expect(report.integrity.findings.map(\.kind) == [.corruption])
    }
}
