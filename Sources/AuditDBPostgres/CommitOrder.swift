/// The turn of each batch transaction of one shipment: batches COPY their rows on several
/// connections at once, but each records its batch row and commits only after the batch before
/// it committed, so commits stay in seq order. The first failure ends every later turn with that
/// failure, so a later batch rolls back instead of committing after a gap (the batch trigger
/// would refuse it anyway: a batch must start right after the store's high-water mark).
actor CommitOrder {
    /// Index of the last committed batch (-1 before the first).
    private var committed = -1
    /// The earliest failed batch and its error.
    private var failure: (index: Int, error: any Error)?
    private var waiting: [Int: CheckedContinuation<Void, any Error>] = [:]
    private let onCommit: (@Sendable (Int64) -> Void)?

    /// `onCommit` is told each committed batch's last seq, in seq order.
    init(onCommit: (@Sendable (Int64) -> Void)?) {
        self.onCommit = onCommit
    }

    /// Returns once batch `index` may record itself and commit: batch `index - 1` committed.
    /// - Throws: The failure of an earlier batch; `CancellationError` when the task is cancelled.
    func turn(_ index: Int) async throws {
        if let failure, failure.index < index { throw failure.error }
        if committed == index - 1 { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // Cancelled before this point: onCancel's task found nothing to resume.
                if Task.isCancelled { continuation.resume(throwing: CancellationError()) } else { waiting[index] = continuation }
            }
        } onCancel: {
            Task { await self.cancelled(index) }
        }
    }

    private func cancelled(_ index: Int) {
        waiting.removeValue(forKey: index)?.resume(throwing: CancellationError())
    }

    /// Batch `index` committed, through `lastSeq`: the next batch's turn.
    func didCommit(_ index: Int, lastSeq: Int64) {
        committed = index
        onCommit?(lastSeq)
        waiting.removeValue(forKey: index + 1)?.resume()
    }

    /// Batch `index` failed: every later turn fails with the earliest failure's error.
    func fail(_ index: Int, _ error: any Error) {
        if failure.map({ index < $0.index }) ?? true { failure = (index, error) }
        guard let failure else { return }
        for (waiter, continuation) in waiting where waiter > failure.index {
            waiting[waiter] = nil
            continuation.resume(throwing: failure.error)
        }
    }
}
