import Foundation
import Testing

@testable import AuditDB

/// Text with a NUL inside it, written by another client into a row of an incremental pass: the
/// index proof seeks each tenant by its stored bytes, so the pass reports the changed row only,
/// not index-mismatch on indexes that are exact (a Swift string read back from SQLite ends at
/// the NUL, and a seek by it finds another tenant's entries).
@Suite("Scanner: text read as its bytes")
struct ScannerTextBytesTests {
    @Test("a tenant changed to text with a NUL inside, in an incremental pass: mac-mismatch at that row, no index finding")
    func nulInTenant() async throws {
        let dir = try TempDir()
        let keyFile = dir.path("k.keys")
        let keys = try KeyFile.generate(at: keyFile)
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        for _ in 1...3 { _ = try await store.append(AuditEvent(actor: "a", action: "x", tenant: "acme")) }
        try await store.close()
        let options = ["--store", path, "--key-file", keyFile]
        #expect(try run(try cliPath(), ["scan"] + options, environment: environmentWithoutAuditDBOptions()).status == 0)
        let reopened = try await AuditStore.open(at: path, keys: keys)
        for _ in 1...3 { _ = try await reopened.append(AuditEvent(actor: "a", action: "x", tenant: "acme")) }
        try await reopened.close()
        let tamper = try run("/usr/bin/sqlite3", ["-batch", "-cmd", ".dbconfig enable_trigger off", path,
                                                  "UPDATE audit_entries SET tenant = CAST(x'61636d65006576696c' AS TEXT) WHERE seq = 6"])
        #expect(tamper.status == 0, "\(tamper.stderr)")
        let scan = try await IntegrityScanner.scan(storeAt: path, keys: keys, mode: .incremental)
        #expect(scan.mode == .incremental)
        #expect(scan.integrity.findings.map(\.description) == ["mac-mismatch at seq 6: the stored values do not match the row's MAC (changed, or copied from another store)"])
        let full = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(full.findings.map(\.description) == scan.integrity.findings.map(\.description))
    }
}
