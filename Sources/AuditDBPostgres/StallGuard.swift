import Synchronization

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
        /// The waiting task was cancelled; the work was cancelled and abandoned.
        case cancelled
    }

    private struct State<T: Sendable>: Sendable {
        var ticks = 0
        var continuation: CheckedContinuation<Outcome<T>, Never>?
        var outcome: Outcome<T>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
    }

    /// The state shared by the caller, the work and the timer (a Mutex cannot be captured by
    /// escaping closures itself).
    private final class Shared<T: Sendable>: Sendable {
        let mutex = Mutex(State<T>())
    }

    /// Runs `body`, which calls `progress` whenever it gets on (e.g. per committed batch), and
    /// returns how it ended. Declared stalled when no `progress` call came during one whole
    /// `limit` of `clock` (so after between `limit` and twice `limit` of silence).
    static func run<T: Sendable, C: Clock>(
        limit: Duration, clock: C, _ body: @escaping @Sendable (_ progress: @escaping @Sendable () -> Void) async throws -> T
    ) async -> Outcome<T> where C.Duration == Duration {
        let state = Shared<T>()
        /// The first outcome wins: it resumes the caller and stops both tasks.
        @Sendable func finish(_ outcome: Outcome<T>) {
            let (continuation, tasks) = state.mutex.withLock { s -> (CheckedContinuation<Outcome<T>, Never>?, [Task<Void, Never>]) in
                guard s.outcome == nil else { return (nil, []) }
                s.outcome = outcome
                let c = s.continuation
                s.continuation = nil
                return (c, [s.work, s.timer].compactMap { $0 })
            }
            for task in tasks { task.cancel() }
            continuation?.resume(returning: outcome)
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome<T>, Never>) in
                // An outcome that came first (cancellation before this point) resumes at once.
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
                            try await clock.sleep(for: limit)
                        } catch {
                            return  // cancelled: the work ended first
                        }
                        let ticks = state.mutex.withLock { $0.ticks }
                        if ticks == seen { return finish(.stalled) }
                        seen = ticks
                    }
                }
                let ended = state.mutex.withLock { s -> Bool in
                    s.work = work
                    s.timer = timer
                    return s.outcome != nil
                }
                if ended {  // finished before the handles were stored: stop whichever still runs
                    work.cancel()
                    timer.cancel()
                }
            }
        } onCancel: {
            finish(.cancelled)
        }
    }
}
