import Foundation
import Synchronization

/// The group-commit linger (docs/performance.md, "Group commit: the linger"): after an
/// fsync'd group of several callers, the drain loop waits briefly for those callers to append
/// again, so that the next fsync carries all of them instead of only those that queued meanwhile.
extension Appender {
    /// The most the drain loop waits after a commit that took `commitTook`: half of it, at most
    /// 500 µs. Callers that come back within it join the next fsync; the wait never holds a
    /// caller longer than half of one commit's time.
    func lingerLimit(commitTook: Duration) -> Duration {
        let override = lingerLimitOverride.load(ordering: .relaxed)
        if override >= 0 { return .nanoseconds(override) }
        return min(commitTook / 2, .microseconds(500))
    }

    /// Blocks the writer queue's thread (never a cooperative one) until `arrivals` requests have
    /// been queued since the appender was made, the store closes, or `limit` passes.
    func linger(forArrivals arrivals: Int, limit: Duration) {
        let wait = state.withLock { state -> Bool in
            guard !state.closed, state.arrivals < arrivals else { return false }
            state.lingerUntilArrivals = arrivals
            return true
        }
        guard wait else { return }
        guard lingerSignal.wait(timeout: .now() + .nanoseconds(Int(limit.wholeNanoseconds))) == .timedOut else { return }
        let signalled = state.withLock { state -> Bool in
            if state.lingerUntilArrivals == nil { return true }  // a submit or close signalled meanwhile
            state.lingerUntilArrivals = nil
            return false
        }
        if signalled { lingerSignal.wait() }  // consume that signal: the next linger must not see it
    }
}

extension AuditStore {
    /// Test seam: fixes the group-commit linger's bound (nil restores the computed one), so that a
    /// test can show which callers one fsync carries without depending on the machine's speed.
    func setGroupCommitLingerForTesting(_ limit: Duration?) {
        appender.lingerLimitOverride.store(limit?.wholeNanoseconds ?? -1, ordering: .relaxed)
    }
}
