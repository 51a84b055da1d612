import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// Byte 18 of the SQLite header (the file format write version) set above 2: SQLite opens the
/// file read-only, so every append fails while every row still verifies; byte 20 (bytes reserved
/// per page) not 0: the pages read as damaged; bytes 44–47 (the schema format number) above 4:
/// SQLite cannot read the schema; bytes 72–91 (reserved for expansion) not zero. Verification
/// reports each (FORMAT.md section 11,
/// step 1), in both verifiers and the scanner.
@Suite("The SQLite header's format versions")
struct FileHeaderVersionTests {
    /// A store of 3 rows whose SQLite header has `value` at `offset`, with its key file.
    func store(withHeaderByte value: UInt8, at offset: UInt64) async throws -> (dir: TemporaryDirectory, db: String, keys: KeyRing, keyPath: String) {
        let dir = try TemporaryDirectory()
        let keyPath = dir.path("k.keys")
        let keys = try KeyFile.generate(at: keyPath)
        let db = dir.path("store.db")
        try await makeStore(at: db, keys: keys, count: 3)
        let handle = try #require(FileHandle(forUpdatingAtPath: db))
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: Data([value]))
        try handle.close()
        return (dir, db, keys, keyPath)
    }

    @Test("a write version of 3: one corruption finding from verify, scan and the Python verifier; append fails and points to verify")
    func writeVersion() async throws {
        let (dir, db, keys, keyPath) = try await store(withHeaderByte: 3, at: 18)
        defer { withExtendedLifetime(dir) {} }  // the directory is removed when released
        let message = "the SQLite file header's format versions are 3 (write, byte 18) and 2 (read, byte 19), not 1 or 2 as SQLite writes them: with a write version above 2 SQLite opens the file read-only, so every append fails. Another client changed them; restore the store from a backup (or write 2 back into both bytes)"
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.corruption])
        #expect(report.findings.map(\.message) == [message])
        let scan = try await IntegrityScanner.scan(storeAt: db, keys: keys, mode: .full)
        #expect(scan.integrity.findings.map(\.message) == [message])
        #expect(try pythonFindings(db, keyFile: keyPath) == ["corruption -...-"])
        let append = try run(try cliPath(), ["append", "--actor", "a", "--action", "x", "--store", db, "--key-file", keyPath],
                             environment: environmentWithoutAuditDBOptions())
        #expect(append.status == 2)
        #expect(append.stderr.contains("if they are writable, run `auditdb verify` (another client may have changed the file's SQLite header)"), "\(append.stderr)")
    }

    @Test("bytes reserved at the end of every page (byte 20 = 32): rows still verify, the pages do not; one corruption finding in both verifiers")
    func reservedBytes() async throws {
        let (dir, db, keys, keyPath) = try await store(withHeaderByte: 32, at: 20)
        defer { withExtendedLifetime(dir) {} }  // the directory is removed when released
        // SQLite itself sees the pages' layout as damaged.
        #expect(try sqlite3Shell(db, "PRAGMA quick_check;").stdout.contains("free space corruption"))
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.message) == [
            "the SQLite file header reserves 32 byte(s) at the end of every page (byte 20), not 0 as AuditDB creates every store: SQLite then lays out every page differently, so the pages read as damaged (PRAGMA quick_check) and writes fail. Another client changed it; restore the store from a backup (or write 0 back into byte 20)",
        ])
        #expect(try pythonFindings(db, keyFile: keyPath) == ["corruption -...-"])
    }

    @Test("a byte of the header's bytes 72-91 (reserved for expansion, zero by SQLite's rule) set: the store still works; one corruption finding in both verifiers, naming the first byte",
          arguments: [72, 80, 91])
    func expansionBytes(_ offset: Int) async throws {
        let (dir, db, keys, keyPath) = try await store(withHeaderByte: 0x5A, at: UInt64(offset))
        defer { withExtendedLifetime(dir) {} }  // the directory is removed when released
        #expect(try sqlite3Shell(db, "PRAGMA quick_check;").stdout == "ok\n")  // SQLite does not look at them
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.message) == [
            "the SQLite file header's bytes 72 to 91, reserved for expansion, are not all zero (byte \(offset) is not), as SQLite requires: another client edited the file header. Restore the store from a backup (or write zeros back into bytes 72 to 91)",
        ], "\(report)")
        #expect(try pythonFindings(db, keyFile: keyPath) == ["corruption -...-"])
        // Byte 92 on (the version-valid-for number, SQLite's version) is SQLite's to write: not judged.
        let (other, otherDB, otherKeys, _) = try await store(withHeaderByte: 0x5A, at: 95)
        defer { withExtendedLifetime(other) {} }
        #expect(try await AuditStore.verify(storeAt: otherDB, keys: otherKeys).findings.isEmpty)
    }

    @Test("a schema format number above 4 (bytes 44–47): SQLite cannot read the schema; one corruption finding from verify, the CLI and the Python verifier, not a failure to run")
    func schemaFormat() async throws {
        let (dir, db, keys, keyPath) = try await store(withHeaderByte: 5, at: 47)  // big-endian: 0x00000005
        defer { withExtendedLifetime(dir) {} }  // the directory is removed when released
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.corruption])
        #expect(report.findings.first?.message.contains("unsupported file format: the schema format number in its SQLite header, bytes 44–47, is above 4, which SQLite cannot read") == true,
                "\(report.findings)")
        let cli = try run(try cliPath(), ["verify", "--store", db, "--key-file", keyPath], environment: environmentWithoutAuditDBOptions())
        #expect(cli.status == 1, "\(cli.stderr)")
        #expect(cli.stdout.contains("corruption: the file cannot be read as a database"), "\(cli.stdout)")
        #expect(try pythonFindings(db, keyFile: keyPath) == ["corruption -...-"])
    }
}
