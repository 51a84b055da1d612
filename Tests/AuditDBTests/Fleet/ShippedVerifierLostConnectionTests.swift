import AuditDBPostgres
import Foundation
import Testing

@testable import AuditDB

/// The central verifier when PostgreSQL ends its session mid-read (a restart, an administrator):
/// a typed error and exit 2, never PostgresNIO's precondition crash with row bytes on stderr.
extension ShippingTests {
    @Test("verify-shipped whose session is terminated mid-read: exit 2 with an error, no crash, no row bytes on stderr")
    func verifyShippedLosesConnection() async throws {
        let (path, keyFile, id) = try await publishedStore("a.db", role: "inst_a", rows: 20_000)
        let shipped = try run(try builtProduct("auditdb-fleet"), ["ship", "--store", path, "--key-file", keyFile, "--to", server.url("inst_a")])
        #expect(shipped.status == 0, "\(shipped.stderr)")
        let child = TestProcess()
        child.executableURL = URL(fileURLWithPath: try builtProduct("auditdb-fleet"))
        child.arguments = ["verify-shipped", "--to", server.url("auditor"), "--store-id", id.hex]
        let stderr = Pipe()
        child.standardError = stderr
        child.standardOutput = Pipe()
        try child.run()
        // Mid-read: its session has fetched from the cursor (20,000 rows take seconds to verify).
        let reading = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'auditor' AND query LIKE 'FETCH FORWARD%'"
        while child.isRunning, try server.psql(reading) == "0\n" { usleep(10_000) }
        let terminated = try server.psql("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'auditor' AND query LIKE 'FETCH FORWARD%') t")
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        child.waitUntilExit()
        let text = String(decoding: errors, as: UTF8.self)
        #expect(terminated == "1\n", "the verifier finished before its session could be ended: \(text)")
        #expect(child.terminationReason == .exit && child.terminationStatus == 2, "\(child.terminationReason) \(child.terminationStatus): \(text)")
        #expect(text.hasPrefix("error: "), "\(text)")
        #expect(!text.contains("Fatal error") && !text.contains("DataRow") && !text.contains(id.hex.prefix(16)), "\(text)")
        #expect(!text.contains("stopped answering"), "the watchdog ended it, not the lost connection: \(text)")
        // Between two pages the closed connection is seen first; during one, PostgreSQL's own
        // message arrives (57P01 "terminating connection due to administrator command").
        #expect(text == "error: the connection to PostgreSQL was lost (the server closed it: a restart, a stop, or an administrator ended the session); nothing was verified; run again\n"
                || text.hasPrefix("error: the witness refused to read the shipped entries: terminating connection due to administrator command")
                || text.hasPrefix("error: cannot read the shipped entries at the witness: "), "\(text)")
    }
}
