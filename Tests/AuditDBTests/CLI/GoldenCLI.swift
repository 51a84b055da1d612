import Foundation
import Synchronization
import Testing

@testable import AuditDB

/// One golden case's world: a temporary directory of its own (the key file and the store live
/// in it), the real `auditdb` binary, and the values that differ between runs, each named for
/// `GoldenNormalizer`.
final class GoldenCLI: Sendable {
    let dir: TempDir
    let cli: String
    let store: String
    let keyFile: String
    private let started = Date()
    private let literals: Mutex<[(value: String, placeholder: String)]>

    /// A case of `auditdb`, or of another built executable (`auditdb-fleet`).
    init(executable: String? = nil) throws {
        dir = try TempDir()
        cli = try executable.map(builtProduct) ?? cliPath()
        store = dir.path("store.db")
        keyFile = dir.path("audit.keys")
        literals = Mutex([(dir.url.path, "<TMP>")])
    }

    /// `--store STORE --key-file KEYFILE`.
    var options: [String] { ["--store", store, "--key-file", keyFile] }

    /// The path of `name` in the case's directory.
    func path(_ name: String) -> String { dir.path(name) }

    /// Names a value that differs between runs: the normaliser replaces it with `placeholder`.
    func register(_ value: String, as placeholder: String) {
        literals.withLock { $0.append((value, placeholder)) }
    }

    var normalizer: GoldenNormalizer {
        GoldenNormalizer(literals: literals.withLock { $0 }, runStarted: started)
    }

    /// The key file (created, mode 0600, on first use) and a store at `path` holding `count`
    /// sample events (`sampleEvent`: every field fixed but the recording time); the store's id is
    /// registered as `placeholder`. Returns the id's hex.
    @discardableResult
    func createStore(at path: String? = nil, count: Int, placeholder: String = "<STORE-ID>") async throws -> String {
        let id = try await makeStore(at: path ?? store, keys: try keyRing(), count: count).hex
        register(id, as: placeholder)
        return id
    }

    /// The keys of the key file, which is created (mode 0600) on first use.
    func keyRing() throws -> KeyRing {
        FileManager.default.fileExists(atPath: keyFile) ? try KeyFile(path: keyFile).load() : try KeyFile.generate(at: keyFile)
    }

    /// Registers the id of a store the binary made (`auditdb init`) as `placeholder`, read from
    /// the file by the sqlite3 shell rather than from the output under test.
    func registerStoreID(of path: String, as placeholder: String = "<STORE-ID>") throws {
        let read = try sqlite3Shell(path, "SELECT lower(hex(store_id)) FROM audit_store;")
        let hex = read.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(hex.count == 32, "no store id in \(path): \(read.stderr)")
        register(hex, as: placeholder)
    }

    /// Runs the binary: the test's environment without auditdb's own variables, a fixed terminal
    /// size (so that help text wraps alike everywhere), then `environment`.
    func auditdb(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> ProcessResult {
        var full = environmentWithoutAuditDBOptions()
        full["COLUMNS"] = "80"
        full["LINES"] = "25"
        full.merge(environment) { $1 }
        return try run(cli, arguments, stdin: stdin, environment: full)
    }

    /// Runs the binary and compares the whole run with golden file `name`.
    @discardableResult
    func golden(_ name: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:],
                sourceLocation: SourceLocation = #_sourceLocation) throws -> ProcessResult {
        let result = try auditdb(arguments, stdin: stdin, environment: environment)
        try expect(name, arguments, stdin: stdin, environment: environment, result: result, sourceLocation: sourceLocation)
        return result
    }

    /// Compares a run made with `auditdb(_:stdin:environment:)` with golden file `name`, for a
    /// case that registers a value the run itself created.
    func expect(_ name: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:],
                result: ProcessResult, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let run = GoldenRun(arguments: arguments, environment: environment.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                            stdin: stdin, result: result, program: URL(fileURLWithPath: cli).lastPathComponent)
        try expectGolden(name, run.rendered, normalizer: normalizer, sourceLocation: sourceLocation)
    }

    /// A step that prepares a case (not compared with a golden file): it must exit 0.
    @discardableResult
    func step(_ arguments: [String], stdin: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> ProcessResult {
        let result = try auditdb(arguments, stdin: stdin)
        #expect(result.status == 0, "auditdb \(arguments.joined(separator: " ")): \(result.stderr)", sourceLocation: sourceLocation)
        return result
    }

    /// Changes one row's actor as someone with the file would: drops the update trigger, updates,
    /// and puts the trigger back exactly as it was, so that verify reports only the row.
    func tamperRow(seq: Int, in path: String? = nil) throws {
        let path = path ?? store
        let trigger = try sqlite3Shell(path, "SELECT sql FROM sqlite_schema WHERE name = 'audit_entries_no_update';").stdout
        try sqlite3Must(path, """
            DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET actor = 'mallory' WHERE seq = \(seq);
            \(trigger.trimmingCharacters(in: .whitespacesAndNewlines));
            """)
    }

    /// Makes the key file readable by everyone (0644), which auditdb refuses.
    func loosenKeyFile() throws {
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyFile)
    }

    /// Another key file (a different key under the same version 1) at `other.keys`.
    func otherKeyFile() throws -> String {
        let path = dir.path("other.keys")
        _ = try KeyFile.generate(at: path)
        return path
    }
}
