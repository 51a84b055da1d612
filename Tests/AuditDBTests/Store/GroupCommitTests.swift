import Dispatch
import Foundation
import GRDB
import Synchronization
import Testing

@testable import AuditDB

/// Group commit: concurrent appends share one transaction; when it fails, each request is
/// retried in its own (Appender.commit), so every caller gets an answer and a failing append
/// fails alone.
@Suite("Group commit")
struct GroupCommitTests {
    @Test("an append refused inside a group (a foreign unique index) fails alone: every other append lands once, gapless, and no caller waits for ever",
          .timeLimit(.minutes(10)))  // a hang's limit, not a speed target: generous for a loaded machine
    func failureInsideGroup() async throws {
        let dir = try TempDir()
        let path = dir.path("s.db")
        let store = try await AuditStore.create(at: path, keys: try testKeyRing())
        let base = try await store.lastSeq() + 1
        _ = try await store.append(AuditEvent(actor: "poison", action: "first"))
        // Added from another connection, as a stray tool could (AuditDB's own connections run
        // without triggers, so an index it must maintain is what can refuse a row): every later
        // row of that actor breaks it.
        try sqlite3Must(path, "CREATE UNIQUE INDEX poison ON audit_entries(actor) WHERE actor = 'poison';")
        // The writer queue is held until every caller has queued, so all of them, the refused
        // ones included, go to the drain loop as one group: the per-request retry is what runs.
        let callers = 16, perCaller = 1
        let poisoned: Set<[Int]> = [[3, 0], [7, 0], [12, 0]]
        let held = DispatchSemaphore(value: 0)
        let holder = Task { try await store.pool.writeWithoutTransaction { _ in held.wait() } }
        let outcomes = try await withThrowingTaskGroup(of: [Result<Int64, AuditError>].self) { group in
            for caller in 0..<callers {
                group.addTask {
                    var mine: [Result<Int64, AuditError>] = []
                    for i in 0..<perCaller {
                        let actor = poisoned.contains([caller, i]) ? "poison" : nil
                        do {
                            mine.append(.success(try await store.append(sampleEvent(caller * perCaller + i, actor: actor))))
                        } catch let error as AuditError {
                            mine.append(.failure(error))
                        }
                    }
                    return mine
                }
            }
            while store.appender.state.withLock({ $0.pending.count }) < callers { await Task.yield() }
            held.signal()
            return try await group.reduce(into: [Result<Int64, AuditError>]()) { $0 += $1 }
        }
        try await holder.value
        let seqs = outcomes.compactMap { outcome -> Int64? in
            if case .success(let seq) = outcome { return seq }
            return nil
        }
        let failures = outcomes.compactMap { outcome -> AuditError? in
            if case .failure(let error) = outcome { return error }
            return nil
        }
        #expect(failures.count == poisoned.count)
        #expect(failures.allSatisfy { $0.message.contains("UNIQUE constraint failed: audit_entries.actor") }, "\(failures.map(\.message))")
        #expect(seqs.sorted() == Array((base + 1)...(base + Int64(callers * perCaller - poisoned.count))))
        #expect(try await allEntries(store).filter { $0.actor == "poison" }.map(\.seq) == [base])
        try sqlite3Must(path, "DROP INDEX poison;")
        #expect(try await store.verify().isIntact)
        try await store.close()
    }
}
