import AuditDBTestSupport
import Synchronization
import Testing

@testable import AuditDBPostgres

/// StallGuard (the shipping service's guard against a query that never returns), on a manual
/// clock: work that ends, work that makes progress, work that hangs ignoring cancellation.
@Suite("Shipping: stall guard")
struct StallGuardTests {
    /// Work that waits for ever and ignores cancellation (as a PostgresNIO query whose promise
    /// was dropped), released by ``release()`` at the end of a test.
    final class Hang: Sendable {
        let waiting = Mutex<CheckedContinuation<Void, Never>?>(nil)
        func wait() async { await withCheckedContinuation { c in waiting.withLock { $0 = c } } }
        func release() { waiting.withLock { $0.take() }?.resume() }
    }

    @Test("work that ends is returned as it ended, value or error")
    func finishes() async {
        let clock = ManualClock()
        guard case .finished(.success(7)) = await StallGuard.run(limit: .seconds(10), clock: clock, { _ in 7 }) else {
            Issue.record("not finished with its value")
            return
        }
        struct Failure: Error {}
        guard case .finished(.failure(let error)) = await StallGuard.run(limit: .seconds(10), clock: clock, { _ -> Int in throw Failure() }),
              error is Failure
        else {
            Issue.record("not finished with its error")
            return
        }
        #expect(clock.sleeperCount == 0, "the timer stopped with the work")
    }

    @Test("hung work is declared stalled after a whole limit without progress; progress keeps it alive")
    func stalls() async throws {
        let clock = ManualClock(), hang = Hang()
        let ticks = Mutex(0)
        let guarded = Task {
            await StallGuard.run(limit: .seconds(10), clock: clock) { progress in
                for _ in 0..<3 {
                    progress()
                    ticks.withLock { $0 += 1 }
                    try await clock.sleep(for: .seconds(5))
                }
                await hang.wait()
                return 0
            }
        }
        // Three steps of progress, 5 s apart: never a whole 10 s without one.
        for step in 1...3 {
            try await clock.waitForSleepers(2)
            #expect(ticks.withLock { $0 } == step)
            clock.advance(by: .seconds(5))
        }
        // Now it hangs: the timer sleeps alone; within two limits it finds a whole one without
        // progress. (Where its check falls against the last step decides which of the two.)
        let done = Atomic(false)
        let watcher = Task {
            let outcome = await guarded.value
            done.store(true, ordering: .releasing)
            return outcome
        }
        var advanced = 0
        while !done.load(ordering: .acquiring) && advanced < 4 {
            if clock.sleeperCount >= 1 {
                clock.advance(by: .seconds(10))
                advanced += 1
            } else {
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        #expect(advanced <= 3)
        if !done.load(ordering: .acquiring) { hang.release() }  // not stalled: let the work end, so the test does
        guard case .stalled = await watcher.value else {
            Issue.record("not declared stalled")
            hang.release()
            return
        }
        hang.release()
    }

    @Test("cancelling the caller cancels the work and waits for it to end")
    func cancelled() async throws {
        let clock = ManualClock()
        let ended = Mutex(false)
        let guarded = Task {
            await StallGuard.run(limit: .seconds(10), clock: clock) { _ in
                defer { ended.withLock { $0 = true } }
                try await clock.sleep(for: .seconds(3600))  // ends on cancellation
                return 0
            }
        }
        try await clock.waitForSleepers(2)
        guarded.cancel()
        guard case .cancelled = await guarded.value else {
            Issue.record("not reported as cancelled")
            return
        }
        #expect(ended.withLock { $0 }, "the work ended before the caller went on")
    }
}
