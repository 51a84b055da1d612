import UnixSignals

/// Runs `work`, cancelling it at SIGTERM or SIGINT: it stops at its next safe point (`erase` and
/// `retain`: between two batches; an erasure after scrubbing what it committed) and says how far
/// it got.
func stoppable<R: Sendable>(_ work: @escaping @Sendable () async throws -> R) async throws -> R {
    let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
    return try await withThrowingTaskGroup(of: R?.self) { group in
        group.addTask {
            for await _ in signals { return nil }
            return nil
        }
        group.addTask { try await work() }
        while let next = try await group.next() {
            // A signal: the work is cancelled, and its end (a result or an error) is awaited.
            group.cancelAll()
            if let value = next { return value }
        }
        throw CancellationError()  // not reached: the work's task ends the loop
    }
}
