import Synchronization
import AuditDB

/// Runs work that may never return — PostgresNIO 1.33.2 sometimes never resumes a query whose
/// connection was lost (docs/fleet.md, runbook) — and gives up on it when it makes no progress
/// for a time, without blocking any thread: the work runs in a task of its own, a timer task
/// sleeps on the clock, and whichever ends first resumes the caller. Work given up on is
/// cancelled and left behind (it holds no thread; if it never returns, its memory stays).
enum StallGuard {
    /// How guarded work ended.
    enum Outcome<T: Sendable>: Sendable {
        /// It returned or threw.
        case finished(Result<T, any Error>)
        /// It made no progress (no call of its `progress` closure) for a whole `limit`; it was
        /// cancelled and abandoned.
        case stalled
        /// The waiting task was cancelled: the work was cancelled too, and ended (or stalled)
        /// before this was returned.
        case cancelled
    }

    private struct State<T: Sendable>: Sendable {
        var ticks = 0
        var continuation: CheckedContinuation<Outcome<T>, Never>?
        var outcome: Outcome<T>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
        var cancelRequested = false
    }

    /// The state shared by the caller, the work and the timer (a Mutex cannot be captured by
    /// escaping closures itself).
    private final class Shared<T: Sendable>: Sendable {
        let mutex = Mutex(State<T>())
    }

    /// Runs `body`, which calls `progress` whenever it gets on (e.g. per committed batch), and
    /// returns how it ended. Declared stalled when no `progress` call came during one whole
    /// `limit` of `clock` (so after between `limit` and twice `limit` of silence). Cancelling the
    /// caller cancels the work and waits for it to end, or to stall: a graceful shutdown waits
    /// at most that long, and a store is not closed under a round that still reads it.
    static func run<T: Sendable>(
        limit: Duration, clock: any Clock<Duration>, _ body: @escaping @Sendable (_ progress: @escaping @Sendable () -> Void) async throws -> T
    ) async -> Outcome<T> {
        let state = Shared<T>()
        /// The first outcome wins: it resumes the caller and stops both tasks.
        @Sendable func finish(_ outcome: Outcome<T>) {
            let (continuation, tasks, settled) = state.mutex.withLock { s -> (CheckedContinuation<Outcome<T>, Never>?, [Task<Void, Never>], Outcome<T>) in
                guard s.outcome == nil else { return (nil, [], outcome) }
                let settled: Outcome<T> = s.cancelRequested ? .cancelled : outcome
                s.outcome = settled
                let c = s.continuation
                s.continuation = nil
                return (c, [s.work, s.timer].compactMap { $0 }, settled)
            }
            for task in tasks { task.cancel() }
            continuation?.resume(returning: settled)
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome<T>, Never>) in
                // An outcome that came first resumes at once.
                let early = state.mutex.withLock { s -> Outcome<T>? in
                    if let outcome = s.outcome { return outcome }
                    s.continuation = continuation
                    return nil
                }
                if let early { return continuation.resume(returning: early) }
                let work = Task {
                    let result: Result<T, any Error>
                    do {
                        result = .success(try await body { state.mutex.withLock { $0.ticks += 1 } })
                    } catch {
                        result = .failure(error)
                    }
                    finish(.finished(result))
                }
                let timer = Task {
                    var seen = 0
                    while true {
                        do {
                            try await clock.sleep(for: limit.sleepable)
                        } catch {
                            return  // cancelled: the work ended first
                        }
                        let ticks = state.mutex.withLock { $0.ticks }
                        if ticks == seen { return finish(.stalled) }
                        seen = ticks
                    }
                }
                let (ended, cancelled) = state.mutex.withLock { s -> (Bool, Bool) in
                    s.work = work
                    s.timer = timer
                    return (s.outcome != nil, s.cancelRequested)
                }
                if ended {  // finished before the handles were stored: stop whichever still runs
                    work.cancel()
                    timer.cancel()
                } else if cancelled {  // the caller was cancelled while the tasks were being made
                    work.cancel()
                }
            }
        } onCancel: {
            let work = state.mutex.withLock { s -> Task<Void, Never>? in
                s.cancelRequested = true
                return s.work
            }
            work?.cancel()
        }
    }
}
