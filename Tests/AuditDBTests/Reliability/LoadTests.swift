import AuditDBTestSupport
import Foundation
import Synchronization
import Testing

@testable import AuditDB

/// An atomic counter that tasks can share.
final class SharedCounter: Sendable {
    let value = Atomic<Int>(0)
}

@Suite("Load")
struct LoadTests {
    /// Peak resident set size of this process, from /proc (kB).
    static func peakRSSKilobytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    @Test("64 appending tasks, 8 querying tasks, the periodic scanner and repeated verification together: gapless, no duplicates, intact")
    func appendQueryVerify() async throws {
        let dir = try TemporaryDirectory()
        let store = try await AuditStore.create(at: dir.path("load.db"), keys: try KeyRing.inMemory())
        // The scanner runs as it would in an app, recording every pass in the store.
        let scanner = IntegrityScanner(
            store: store, configuration: .init(interval: .milliseconds(5), fullPassInterval: .milliseconds(100)))
        let findings = scanner.findings()
        let scannerTask = Task { try await scanner.run() }
        let perTask = environmentInt("AUDITDB_LOAD_APPENDS_PER_TASK", default: 150)
        let appendersDone = SharedCounter()
        let rssBefore = Self.peakRSSKilobytes()
        let (seqs, queried, passes) = try await withThrowingTaskGroup(of: ([Int64], Int, Int).self) { group in
            for task in 0..<64 {
                group.addTask {
                    var mine: [Int64] = []
                    for i in 0..<perTask { mine.append(try await store.append(sampleEvent(task * 100_000 + i))) }
                    appendersDone.value.add(1, ordering: .relaxed)
                    return (mine, 0, 0)
                }
            }
            for reader in 0..<8 {
                group.addTask {
                    var read = 0
                    while appendersDone.value.load(ordering: .relaxed) < 64 {
                        // Page through the newest entries, and by tenant: every row is verified as read.
                        let page = try await store.entries(EntryQuery(limit: 200, descending: true))
                        #expect(page.map(\.seq) == page.map(\.seq).sorted(by: >))
                        read += page.count
                        read += try await store.entries(EntryQuery(limit: 50, tenant: "tenant-\(reader % 3)")).count
                    }
                    return ([], read, 0)
                }
            }
            group.addTask {
                var passes = 0
                while appendersDone.value.load(ordering: .relaxed) < 64 {
                    let report = try await store.verify()
                    #expect(report.isIntact, "\(report)")
                    passes += 1
                }
                return ([], 0, passes)
            }
            var all: [Int64] = [], queried = 0, passes = 0
            for try await (part, read, p) in group {
                all += part
                queried += read
                passes += p
            }
            return (all, queried, passes)
        }
        scannerTask.cancel()
        try await scannerTask.value
        let total = 64 * perTask
        #expect(seqs.count == total)
        #expect(Set(seqs).count == total, "duplicate seqs")
        // The scanner's records take the seqs in between: together, 1...last with no gap or overlap.
        var scanRecords: [Int64] = []
        for try await entry in store.stream(EntryQuery(action: "auditdb.scan")) { scanRecords.append(entry.seq) }
        #expect(scanRecords.count == scanner.status.passes)
        #expect(Set(seqs).isDisjoint(with: scanRecords))
        #expect((seqs + scanRecords).sorted() == Array(1...Int64(total + scanRecords.count)), "gaps")
        #expect(queried > 0)
        #expect(passes > 0)
        #expect(scanner.status.passes > 0)
        #expect(scanner.status.lastResult == .intact)
        let report = try await store.verify()
        #expect(report.isIntact && report.rowsChecked == total + scanRecords.count)
        try await store.close()
        // No pass found anything (the stream ends when the scanner is released).
        var found: [Finding] = []
        let drain = Task { for await finding in findings { found.append(finding) }; return found }
        _ = consume scanner
        let reported = await drain.value
        #expect(reported.isEmpty, "\(reported)")
        let rssAfter = Self.peakRSSKilobytes()
        print("load test: \(total) appends by 64 tasks, \(queried) rows read by 8 tasks, \(passes) verify passes, \(scanRecords.count) scanner passes; peak RSS \(rssBefore) -> \(rssAfter) kB")
    }

    @Test("32 concurrent CLI writers with the default busy timeout: every append succeeds, seqs gapless")
    func thirtyTwoCLIWriters() async throws {
        let dir = try TemporaryDirectory()
        let keyFile = dir.path("k.keys"), path = dir.path("shared.db")
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: path, keys: keys, count: 0)
        let cli = try cliPath()
        let writers = 32, appendsEach = 5
        var environment = inheritedEnvironment
        for name in ["AUDITDB_STORE", "AUDITDB_KEY_FILE", "AUDITDB_KEYS", "AUDITDB_STORE_ID", "AUDITDB_BUSY_TIMEOUT"] {
            environment.removeValue(forKey: name)
        }
        // Each writer is a shell loop of separate `auditdb append` processes (open, append durably, close).
        let script = (0..<appendsEach).map { i in
            "\"$0\" append --store \"$1\" --key-file \"$2\" --actor \"w$3\" --action write --resource-id \(i) || exit $?"
        }.joined(separator: "\n")
        let invocations = (0..<writers).map { ["-c", script, cli, path, keyFile, String($0)] }
        for result in try runConcurrently("/bin/sh", invocations, environment: environment) {
            #expect(result.status == 0, "\(result.stderr)")
        }
        let report = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(report.isIntact && report.lastSeq == Int64(writers * appendsEach), "\(report)")
    }

    @Test("two processes appending to the same store: disjoint gapless seqs, every acknowledged row exact")
    func twoProcesses() async throws {
        let dir = try TemporaryDirectory()
        let keyFile = dir.path("k.keys"), path = dir.path("shared.db")
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: path, keys: keys, count: 0)
        let child = try builtProduct("AuditDBCrashChild")
        // Both run at once; each is killed after the same time, but not before it acknowledged an
        // append: on a busy host one process can keep the write lock for longer than 700 ms (CI saw
        // 6,093 acks against 0), so each waits for its own first ack (up to 30 s). The crash test's
        // helper collects acks.
        async let first = offPool {
            try CrashTests().runAndKill(child, [path, keyFile, "concurrent", "0"], afterMilliseconds: 700, minimumAcks: 1)
        }
        async let second = offPool {
            try CrashTests().runAndKill(child, [path, keyFile, "batch", "50000000"], afterMilliseconds: 700, minimumAcks: 1)
        }
        let (a, b) = try await (first, second)
        #expect(!a.isEmpty && !b.isEmpty, "both processes must have appended (\(a.count), \(b.count))")
        let seqsA = Set(a.map(\.0)), seqsB = Set(b.map(\.0))
        #expect(seqsA.isDisjoint(with: seqsB), "two processes were given the same seq")
        let report = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(report.isIntact, "\(report)")
        let store = try await AuditStore.open(at: path, keys: keys)
        let entries = Dictionary(uniqueKeysWithValues: try await allEntries(store).map { ($0.seq, $0) })
        try await store.close()
        #expect(entries.count == Int(report.lastSeq))
        for (seq, index) in a + b {
            #expect(entries[seq]?.actor == "child-\(index)", "seq \(seq)")
        }
        print("two processes: \(a.count) + \(b.count) acknowledged appends, \(report.lastSeq) rows, intact")
    }
}
