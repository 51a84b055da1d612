import Synchronization
import Testing

@testable import AuditDBPostgres

/// The order of a shipment's batch commits (CommitOrder): batches in flight at once commit in
/// seq order, and a failed batch makes every later one fail with its error.
@Suite("Fleet: commit order of batches in flight")
struct CommitOrderTests {
    struct Refused: Error, Equatable { let batch: Int }

    @Test("a batch's turn comes when the one before committed; commits are reported in seq order")
    func inOrder() async throws {
        let reported = Mutex<[Int64]>([])
        let order = CommitOrder { seq in reported.withLock { $0.append(seq) } }
        try await order.turn(0)  // the first batch never waits
        let second = Task { try await order.turn(1) }
        let third = Task { try await order.turn(2) }
        await order.didCommit(0, lastSeq: 100)
        try await second.value
        await order.didCommit(1, lastSeq: 200)
        try await third.value
        await order.didCommit(2, lastSeq: 300)
        #expect(reported.withLock { $0 } == [100, 200, 300])
    }

    @Test("a failed batch fails every later turn with its error, waiting or not, and no earlier one")
    func failure() async throws {
        let order = CommitOrder(onCommit: nil)
        let waiting = Task { try await order.turn(2) }
        await order.fail(1, Refused(batch: 1))
        await #expect(throws: Refused(batch: 1)) { try await waiting.value }
        await #expect(throws: Refused(batch: 1)) { try await order.turn(3) }
        // A later failure does not replace the earliest one, nor stop the batch before it.
        await order.fail(4, Refused(batch: 4))
        await #expect(throws: Refused(batch: 1)) { try await order.turn(5) }
        let first = Task { try await order.turn(1) }
        await order.didCommit(0, lastSeq: 10)
        try await first.value
    }

    @Test("a waiting turn ends when its task is cancelled")
    func cancelled() async throws {
        let order = CommitOrder(onCommit: nil)
        let waiting = Task { try await order.turn(3) }
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
    }
}
