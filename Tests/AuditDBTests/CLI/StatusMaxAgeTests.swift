import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// `auditdb status --max-age/--max-full-age`: a scanner whose passes fail records nothing (a stale
/// key ring, a locked store), so from outside its process only the age of the last recorded pass
/// shows it. Passes are recorded under a shifted clock (`faketime`, which `make test` installs),
/// so the ages are hours, never a wait.
@Suite("status --max-age")
struct StatusMaxAgeTests {
    let dir: TemporaryDirectory
    let env: [String: String]

    init() async throws {
        dir = try TemporaryDirectory()
        let keys = try KeyFile.generate(at: dir.path("k.keys"))
        try await makeStore(at: dir.path("store.db"), keys: keys, count: 3)
        env = ["AUDITDB_STORE": dir.path("store.db"), "AUDITDB_KEY_FILE": dir.path("k.keys")]
    }

    /// Runs `auditdb ARGUMENTS` with the clock shifted by `shift` (faketime's syntax: "-2h").
    func auditdb(_ arguments: [String], clockShiftedBy shift: String? = nil) throws -> ProcessResult {
        guard let shift else { return try run(try cliPath(), arguments, environment: env) }
        #expect(FileManager.default.isExecutableFile(atPath: "/usr/bin/faketime"), "faketime is missing: `make setup` installs it")
        return try run("/usr/bin/faketime", ["-f", shift, try cliPath()] + arguments, environment: env)
    }

    @Test("a pass 2 hours old: exit 4 over --max-age 1h with its age, exit 0 within 3h; the last full pass judged on its own")
    func oldPass() throws {
        let scan = try auditdb(["scan", "--full"], clockShiftedBy: "-2h")
        #expect(scan.status == 0, "\(scan.stderr)")
        let stale = try auditdb(["status", "--max-age", "1h"])
        #expect(stale.status == 4, "\(stale.stdout)\(stale.stderr)")
        #expect(stale.stdout.contains("last pass: full at "), "\(stale.stdout)")
        #expect(stale.stderr.hasPrefix("auditdb: STALE: the last pass is 7"), "\(stale.stderr)")  // 7200s, give or take the run
        #expect(stale.stderr.contains("s old, more than --max-age 1h. The scanner stopped, or its passes fail without being recorded"), "\(stale.stderr)")
        let fresh = try auditdb(["status", "--max-age", "3h", "--max-full-age", "3h"])
        #expect(fresh.status == 0, "\(fresh.stderr)")
        #expect(fresh.stderr.isEmpty, "\(fresh.stderr)")
        // An incremental pass now: the last pass is fresh, the last full pass is not.
        #expect(try auditdb(["scan", "--incremental"]).status == 0)
        let full = try auditdb(["status", "--max-age", "1h", "--max-full-age", "1h"])
        #expect(full.status == 4, "\(full.stderr)")
        #expect(full.stderr.contains("STALE: the last full pass is 7"), "\(full.stderr)")
        #expect(!full.stderr.contains("the last pass is"), "\(full.stderr)")
        // Without the options, age is shown and never judged.
        #expect(try auditdb(["status"]).status == 0)
    }

    @Test("a pass recorded in the future has no age: exit 4 and 'check the clock'; damage still exits 1 first; bad intervals exit 2")
    func futureDamageAndBadIntervals() throws {
        #expect(try auditdb(["scan", "--full"], clockShiftedBy: "+1h").status == 0)
        let future = try auditdb(["status", "--max-age", "3h"])
        #expect(future.status == 4, "\(future.stderr)")
        #expect(future.stderr == "auditdb: STALE: the last pass was recorded in the future, so its age is unknown (--max-age 3h): check the clock.\n")
        for bad in ["0s", "1x", "h", "-5m"] {
            let result = try auditdb(["status", "--max-age", bad])
            #expect(result.status == 2, "\(bad): \(result.stderr)")
            #expect(result.stderr.contains("--max-age"), "\(bad): \(result.stderr)")
        }
        // A pass that found damage: exit 1 (the violation), however fresh or old.
        try sqlite3Tamper(dir.path("store.db"), "UPDATE audit_entries SET action = 'x' WHERE seq = 2;", around: "audit_entries_no_update")
        let damaged = try auditdb(["scan", "--full"], clockShiftedBy: "-2h")
        #expect(damaged.status == 1, "\(damaged.stdout)\(damaged.stderr)")
        #expect(damaged.stdout.contains("mac-mismatch at seq 2"), "\(damaged.stdout)")
        #expect(try auditdb(["status", "--max-age", "1h"]).status == 1)
    }

    @Test("no pass recorded: exit 2 with or without --max-age")
    func noPass() throws {
        let none = try auditdb(["status", "--max-age", "1h"])
        #expect(none.status == 2)
        #expect(none.stdout.contains("no scan pass recorded yet"))
    }
}
