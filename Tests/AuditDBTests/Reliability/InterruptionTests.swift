import Foundation
import Testing

@testable import AuditDB

/// Long operations killed (SIGKILL, a real process) at random moments: the store stays intact,
/// nothing is lost or half-recorded, and the operation can be run again.
@Suite("Interrupted scans and migrations")
struct InterruptionTests {
    /// Starts `executable`, SIGKILLs it after `milliseconds` (if still running), and returns
    /// whether it had already exited on its own.
    func startAndKill(_ executable: String, _ arguments: [String], afterMilliseconds milliseconds: Int) throws -> Bool {
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(Double(milliseconds) / 1_000)
        while process.isRunning && Date() < deadline { usleep(1_000) }
        let finished = !process.isRunning
        if !finished { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return finished
    }

    @Test("scans killed mid-pass: the store stays intact, no half-written record, the next scan works")
    func killDuringScan() async throws {
        let kills = environmentInt("AUDITDB_SCAN_KILLS", default: 12)
        var random = SeededRandom(seed: 0x5CA9)
        let dir = try TempDir()
        let keyFile = dir.path("k.keys"), path = dir.path("s.db")
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: path, keys: keys, count: 40_000)
        let cli = try cliPath()
        let started = Date()
        #expect(try run(cli, ["scan", "--full", "--no-record", "--store", path, "--key-file", keyFile]).status == 0)
        let whole = Int(Date().timeIntervalSince(started) * 1_000)
        var killedMidway = 0
        // If no kill landed mid-pass (a loaded machine makes every run slower than the timed one),
        // extra rounds halve the delay until one does.
        for round in 0..<(kills + 8) {
            if round >= kills && killedMidway > 0 { break }
            let mode = round % 2 == 0 ? "--full" : "--incremental"
            let delay = round < kills ? Int.random(in: (whole / 4)...max(whole / 4, whole + 20), using: &random)
                : max(1, whole >> (round - kills + 1))
            let finished = try startAndKill(cli, ["scan", mode, "--store", path, "--key-file", keyFile], afterMilliseconds: delay)
            if !finished { killedMidway += 1 }
            let report = try await AuditStore.verify(storeAt: path, keys: keys)
            #expect(report.isIntact, "round \(round) (\(mode), \(delay) ms): \(report)")
            // Every scan record present is whole and verifies (the verify above covers its MAC);
            // it says intact, and the rows it claims were there.
            let store = try await AuditStore.open(at: path, keys: keys)
            let status = try await store.recordedScanStatus()
            if let last = status.lastPass {
                #expect(last.isIntact && last.throughSeq < last.seq)
            }
            try await store.close()
        }
        #expect(killedMidway > 0, "no scan was interrupted; raise the store size")
        // After all that, a full and an incremental pass run and are recorded.
        let full = try run(cli, ["scan", "--full", "--store", path, "--key-file", keyFile])
        #expect(full.status == 0, "\(full.stderr)")
        let incremental = try run(cli, ["scan", "--store", path, "--key-file", keyFile])
        #expect(incremental.status == 0)
        #expect(incremental.stdout.hasPrefix("intact: incremental pass checked 1 rows"))
        print("scan interruption: \(kills) rounds of a \(whole) ms pass, \(killedMidway) killed mid-pass")
    }

    @Test("a migration killed mid-way: the store is intact at an applied step, and running it again finishes")
    func killDuringMigration() async throws {
        let dir = try TempDir()
        let keyFile = dir.path("k.keys")
        let keys = try KeyFile.generate(at: keyFile)
        let cli = try cliPath()
        let rows = environmentInt("AUDITDB_MIGRATION_KILL_ROWS", default: 80_000)
        // Build one store at the first schema; each round migrates a fresh copy of it.
        let template = dir.path("template.db")
        let store = try await AuditStore.create(at: template, keys: keys, configuration: .init(), schemaUpTo: "0001-initial")
        for start in stride(from: 1, through: rows, by: 10_000) {
            try await store.append(contentsOf: (start..<min(start + 10_000, rows + 1)).map { sampleEvent($0) })
        }
        try await store.close()
        // How long an uninterrupted run takes: the kills land inside [20%, 100%) of it, where
        // most of the time goes into verifying and into building migration 0003's indexes.
        let timed = dir.path("timed.db")
        try FileManager.default.copyItem(atPath: template, toPath: timed)
        let started = Date()
        #expect(try run(cli, ["migrate", "--no-backup", "--store", timed, "--key-file", keyFile]).status == 0)
        let whole = Int(Date().timeIntervalSince(started) * 1_000)
        var random = SeededRandom(seed: 0x316A)
        var interrupted = 0
        var stepsReached: [Int: Int] = [:]
        for round in 0..<(4 + 8) {
            if round >= 4 && interrupted > 0 { break }
            let path = dir.path("m\(round).db")
            try FileManager.default.copyItem(atPath: template, toPath: path)
            let delay = round < 4 ? Int.random(in: (whole / 5)...max(whole / 5, whole - 1), using: &random)
                : max(1, whole >> (round - 3))
            let finished = try startAndKill(cli, ["migrate", "--no-backup", "--store", path, "--key-file", keyFile],
                                            afterMilliseconds: delay)
            let plan = try await AuditStore.migrationPlan(at: path)
            if !finished { interrupted += 1 }
            stepsReached[plan.applied.count, default: 0] += 1
            // Whatever step it reached, the store verifies at that step with every row (and says
            // that it is not at the current schema until migrated).
            let report = try await AuditStore.verify(storeAt: path, keys: keys)
            let expected: [Finding.Kind] = plan.isUpToDate ? [] : [.schemaOutdated]
            #expect(report.findings.map(\.kind) == expected && report.rowsChecked == rows,
                    "round \(round) after \(delay) ms (\(plan.applied)): \(report)")
            let again = try run(cli, ["migrate", "--no-backup", "--store", path, "--key-file", keyFile])
            #expect(again.status == 0, "\(again.stderr)")
            #expect(try await AuditStore.migrationPlan(at: path).isUpToDate)
            let after = try await AuditStore.verify(storeAt: path, keys: keys)
            #expect(after.isIntact && after.rowsChecked == rows)
        }
        #expect(interrupted > 0)
        print("migration interruption: \(stepsReached.values.reduce(0, +)) rounds in a \(whole) ms run, \(interrupted) killed mid-way; migrations applied when killed: \(stepsReached)")
    }

    @Test("checkpoints killed mid-way: store and anchors stay consistent, and checkpointing again works")
    func killDuringCheckpoint() async throws {
        let dir = try TempDir()
        let keyFile = dir.path("k.keys")
        let keys = try KeyFile.generate(at: keyFile)
        let cli = try cliPath()
        let signing = dir.path("ckpt.key"), publicKey = dir.path("ckpt.pub")
        #expect(try run(cli, ["checkpoint-key", "generate", "--out", signing, "--public-out", publicKey]).status == 0)
        let rows = environmentInt("AUDITDB_CHECKPOINT_KILL_ROWS", default: 40_000)
        let template = dir.path("template.db")
        try await makeStore(at: template, keys: keys, count: rows)
        // Time an uninterrupted first checkpoint (it hashes every row), to kill inside it.
        let timed = dir.path("timed.db")
        try FileManager.default.copyItem(atPath: template, toPath: timed)
        let timedAnchors = dir.path("timed-anchors")
        try FileManager.default.createDirectory(atPath: timedAnchors, withIntermediateDirectories: true)
        let started = Date()
        let first = try run(cli, ["checkpoint", "--signing-key", signing, "--anchor", timedAnchors, "--store", timed, "--key-file", keyFile])
        #expect(first.status == 0, "\(first.stderr)")
        let whole = Int(Date().timeIntervalSince(started) * 1_000)
        var random = SeededRandom(seed: 0xC4E7)
        var killedMidway = 0
        var anchoredBeforeKill = 0
        var storedBeforeKill = 0
        var rounds = 0
        for round in 0..<(6 + 8) {
            if round >= 6 && killedMidway > 0 { break }
            rounds += 1
            let path = dir.path("c\(round).db"), anchors = dir.path("anchors-\(round)")
            try FileManager.default.copyItem(atPath: template, toPath: path)
            try FileManager.default.createDirectory(atPath: anchors, withIntermediateDirectories: true)
            // Around the length of the timed run: some kills land early, some late, some after the end.
            let delay = round < 6 ? Int.random(in: (whole / 10)...max(whole / 10, whole * 3 / 2), using: &random)
                : max(1, whole >> (round - 5))
            let arguments = ["checkpoint", "--signing-key", signing, "--anchor", anchors, "--store", path, "--key-file", keyFile]
            if try !startAndKill(cli, arguments, afterMilliseconds: delay) { killedMidway += 1 }
            // The store verifies with every row; any anchor written is whole and agrees with the store.
            let report = try await AuditStore.verify(storeAt: path, keys: keys)
            #expect(report.isIntact && report.rowsChecked == rows, "round \(round) after \(delay) ms: \(report)")
            let stored = try sqlite3Shell(path, "SELECT count(*) FROM audit_checkpoints;").stdout
            if stored.trimmingCharacters(in: .whitespacesAndNewlines) != "0" { storedBeforeKill += 1 }
            let written = try FileManager.default.contentsOfDirectory(atPath: anchors).filter { $0.hasSuffix(".json") }
            if !written.isEmpty {
                anchoredBeforeKill += 1
                let check = try run(cli, ["verify", "--anchor", anchors, "--public-key", publicKey, "--store", path, "--key-file", keyFile])
                #expect(check.status == 0, "round \(round): \(check.stdout) \(check.stderr)")
            }
            // Checkpointing again finishes, and the store verifies against every anchor.
            let again = try run(cli, arguments)
            #expect(again.status == 0, "round \(round): \(again.stderr)")
            let after = try run(cli, ["verify", "--anchor", anchors, "--public-key", publicKey, "--store", path, "--key-file", keyFile])
            #expect(after.status == 0, "round \(round): \(after.stdout) \(after.stderr)")
        }
        #expect(killedMidway > 0)
        print("checkpoint interruption: \(rounds) rounds in a \(whole) ms run, \(killedMidway) killed mid-way, \(storedBeforeKill) had stored and \(anchoredBeforeKill) had anchored the checkpoint")
    }
}
