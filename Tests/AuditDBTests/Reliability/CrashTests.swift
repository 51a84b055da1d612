import Foundation
import GRDB
import Synchronization
import Testing

@testable import AuditDB

/// A child process appends as fast as it can and reports every acknowledged seq; the test
/// SIGKILLs it at random moments. Longer run: AUDITDB_CRASH_KILLS=500 (seed: AUDITDB_CRASH_SEED).
@Suite("Crash safety")
struct CrashTests {
    @Test("SIGKILL at random moments: every acknowledged append survives exactly, no partial row, appends resume")
    func killLoop() async throws {
        let kills = environmentInt("AUDITDB_CRASH_KILLS", default: 25)
        let seed = UInt64(environmentInt("AUDITDB_CRASH_SEED", default: 0xA0D1))
        var random = SeededRandom(seed: seed)
        let dir = try TempDir()
        let keyFile = dir.path("k.keys"), path = dir.path("crash.db")
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: path, keys: keys, count: 0)
        let child = try builtProduct("AuditDBCrashChild")
        var acknowledged: [Int64: Int] = [:]
        var lastSeq: Int64 = 0
        for round in 0..<kills {
            let mode = ["single", "batch", "concurrent"][round % 3]
            let delay = Int.random(in: 5...120, using: &random)
            let acks = try runAndKill(child, [path, keyFile, mode, String(round * 10_000_000)], afterMilliseconds: delay)
            for (seq, index) in acks {
                #expect(acknowledged[seq] == nil, "seq \(seq) acknowledged twice (round \(round), seed \(seed))")
                acknowledged[seq] = index
            }
            // The store opens and verifies intact after every kill.
            let report = try await AuditStore.verify(storeAt: path, keys: keys)
            #expect(report.isIntact, "round \(round) (\(mode), killed after \(delay) ms, seed \(seed)): \(report)")
            #expect(report.lastSeq >= (acks.map(\.0).max() ?? 0), "an acknowledged seq is missing (round \(round))")
            #expect(report.lastSeq >= lastSeq)
            lastSeq = report.lastSeq
        }
        #expect(acknowledged.count > kills, "the child acknowledged too few appends to test anything")
        print("crash test: \(kills) kills (seed \(seed)), \(acknowledged.count) acknowledged appends, \(lastSeq) rows committed")

        // Every acknowledged row holds exactly what was appended.
        let store = try await AuditStore.open(at: path, keys: keys)
        let byIndex = Dictionary(uniqueKeysWithValues: try await allEntries(store).map { ($0.seq, $0) })
        #expect(byIndex.count == Int(lastSeq))
        for (seq, index) in acknowledged.sorted(by: { $0.key < $1.key }) {
            let entry = try #require(byIndex[seq], "acknowledged seq \(seq) is missing")
            #expect(entry.actor == "child-\(index)")
            #expect(entry.resourceId == "r-\(index)")
            #expect(entry.detailsJSON == #"{"index":\#(index),"pad":"\#(String(repeating: "x", count: index % 97))"}"#)
        }
        // Appending resumes with the next seq.
        #expect(try await store.append(sampleEvent(1)) == lastSeq + 1)
        try await store.close()
    }

    @Test("SIGKILL during expiry: the store verifies intact after every kill, and running again finishes the job")
    func killDuringExpiry() async throws {
        let kills = environmentInt("AUDITDB_CRASH_KILLS", default: 12)
        var random = SeededRandom(seed: UInt64(environmentInt("AUDITDB_CRASH_SEED", default: 0xE0F1)))
        let dir = try TempDir()
        let keyFile = dir.path("k.keys"), path = dir.path("expiry.db")
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: path, keys: keys, count: 2_000)
        let child = try builtProduct("AuditDBCrashChild")
        for round in 0..<kills {
            let delay = Int.random(in: 1...60, using: &random)
            _ = try runAndKill(child, [path, keyFile, "retain", "0"], afterMilliseconds: delay)
            let report = try await AuditStore.verify(storeAt: path, keys: keys)
            #expect(report.isIntact, "round \(round), killed after \(delay) ms: \(report)")
        }
        // Running again finishes: every one of the 2,000 rows expired exactly once (the newest row
        // of the log, never expired, is by then an expiry entry).
        let store = try await AuditStore.open(at: path, keys: keys)
        _ = try await store.applyRetention(try RetentionPolicy(parsingDefault: "1d"),
                                           now: AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 2 * 86_400_000_000))
        let (tombstones, rows) = try await store.pool.read { db in
            (try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_expired") ?? -1,
             try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_entries WHERE seq <= 2000") ?? -1)
        }
        #expect(tombstones == 2_000 && rows == 0, "\(tombstones) tombstones, \(rows) rows left")
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    /// Starts `executable`, waits until it is ready plus `afterMilliseconds`, SIGKILLs it, and
    /// returns the (seq, index) pairs it acknowledged before dying.
    /// Starts the child, kills it `afterMilliseconds` after it is ready (or, with `minimumAcks`, no
    /// earlier than its `minimumAcks`-th acknowledgement: a busy host can starve a child for a while),
    /// and returns the acknowledgements it printed.
    func runAndKill(_ executable: String, _ arguments: [String], afterMilliseconds: Int, minimumAcks: Int = 0) throws -> [(Int64, Int)] {
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let buffer = Mutex(Data())
        // A thread of its own reads the child's output with blocking reads until EOF (a
        // readabilityHandler's dispatch source crashed libdispatch once when the child was killed).
        let readerDone = DispatchSemaphore(value: 0)
        let outFD = out.fileHandleForReading.fileDescriptor
        let reader = Thread {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = read(outFD, &chunk, chunk.count)
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { break }
                buffer.withLock { $0.append(contentsOf: chunk[0..<n]) }
            }
            readerDone.signal()
        }
        try process.run()
        try? out.fileHandleForWriting.close()  // only the child writes: EOF comes when it dies
        reader.start()
        let deadline = Date().addingTimeInterval(30)
        while !buffer.withLock({ String(decoding: $0, as: UTF8.self).contains("ready\n") }) {
            guard process.isRunning, Date() < deadline else {
                let message = String(decoding: err.fileHandleForReading.availableData, as: UTF8.self)
                throw TestFailure("the crash child did not start: \(message)")
            }
            usleep(1_000)
        }
        usleep(useconds_t(afterMilliseconds * 1_000))
        while minimumAcks > 0, process.isRunning, Date() < deadline,
              buffer.withLock({ $0.split(separator: UInt8(ascii: "\n")).filter { $0.starts(with: Array("ack ".utf8)) }.count }) < minimumAcks + 1 {
            usleep(1_000)  // + 1: the last ack line seen may still be incomplete
        }
        let exitedByItself = !process.isRunning
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        if exitedByItself {
            let message = String(decoding: try readToEnd(err.fileHandleForReading.fileDescriptor), as: UTF8.self)
            throw TestFailure("the child exited by itself (status \(process.terminationStatus)) before it was killed: \(message)")
        }
        guard readerDone.wait(timeout: .now() + 30) == .success else { throw TestFailure("the child's output never ended") }
        let text = buffer.withLock { String(decoding: $0, as: UTF8.self) }
        #expect(process.terminationReason == .uncaughtSignal)
        // Only complete lines count: a line cut by the kill was not an acknowledgement we saw.
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[0] == "ack", let seq = Int64(parts[1]), let index = Int(parts[2]) else { return nil }
            return (seq, index)
        }
    }
}
