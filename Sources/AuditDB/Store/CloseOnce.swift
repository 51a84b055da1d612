import Synchronization

/// Makes ``AuditStore/close()`` happen once, however many callers ask (the app, and the store's
/// own `run()` at shutdown): the first caller closes; callers meanwhile wait for its outcome;
/// callers after a successful close return at once. After a failed close the next caller tries
/// again (the failure may have been passing, such as a lock held by another process).
final class CloseOnce: Sendable {
    private enum State {
        case open
        case closing([CheckedContinuation<Outcome, Never>])
        case closed
    }

    private enum Outcome {
        case closed
        case failed(AuditError)
        /// The close in progress failed before this caller registered: try to close again.
        case retry
    }

    private let state = Mutex(State.open)

    /// Runs `close` unless the store is closed or being closed; see the type's description.
    func run(_ close: () async throws(AuditError) -> Void) async throws(AuditError) {
        while true {
            let claimed = state.withLock { state -> Bool in
                guard case .open = state else { return false }
                state = .closing([])
                return true
            }
            if claimed { break }
            let outcome = await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                let now = state.withLock { state -> Outcome? in
                    switch state {
                    case .open: return .retry
                    case .closed: return .closed
                    case .closing(var waiters):
                        waiters.append(continuation)
                        state = .closing(waiters)
                        return nil
                    }
                }
                if let now { continuation.resume(returning: now) }
            }
            switch outcome {
            case .closed: return
            case .failed(let error): throw error
            case .retry: continue
            }
        }
        let result: Result<Void, AuditError>
        do {
            try await close()
            result = .success(())
        } catch {
            result = .failure(error)
        }
        let waiters = state.withLock { state -> [CheckedContinuation<Outcome, Never>] in
            guard case .closing(let waiters) = state else { return [] }
            if case .success = result { state = .closed } else { state = .open }
            return waiters
        }
        for waiter in waiters {
            switch result {
            case .success: waiter.resume(returning: .closed)
            case .failure(let error): waiter.resume(returning: .failed(error))
            }
        }
        try result.get()
    }
}
