import AuditDB
import Dispatch
import Foundation
import Synchronization

/// Reads `append --jsonl` input on a thread of its own (reading a pipe blocks, which must not
/// happen on a cooperative thread) and hands the events over in batches, so that the next
/// batch is read and decoded while the previous one is being committed.
///
/// Memory stays bounded whatever the input's length: at most ``queueCapacity`` finished batches
/// wait, one more is being filled, and a batch is cut at `maximumEvents` event lines or
/// `maximumBytes` bytes of them, whichever comes first, or when the input pauses (no bytes
/// ready: the events read so far are handed over rather than held until more arrive).
struct EventBatches: AsyncSequence, Sendable {
    /// One batch of events and the input lines it came from.
    struct Batch: Sendable {
        /// Checked by ``AuditStore/prepare(_:)`` on the reader's thread: the writer does not check them again.
        var events: [AuditStore.PreparedEvent]
        /// The first line after the previous batch (blank lines before an event belong to it)
        /// through the line of its last event.
        var lines: ClosedRange<Int>
    }

    /// What the reader hands over: a batch, or why reading stopped (after the batches before).
    enum Item: Sendable {
        case batch(Batch)
        /// A bad line, or a bound passed: `line` is its number, `batchStart` the first line of
        /// the batch it would have joined (nothing from that line on is handed over).
        case failed(AuditError, line: Int, batchStart: Int)
    }

    /// How the input is cut.
    struct Limits: Sendable {
        /// Event lines per batch.
        var maximumEvents: Int
        /// Bytes of event lines (without their LFs) per batch.
        var maximumBytes: Int
        /// If true, the whole input must fit in one batch: the event line that would start a
        /// second one fails the read instead (`append --jsonl --atomic`).
        var single: Bool
    }

    /// Finished batches waiting for the consumer. One: the reader fills the next batch while
    /// one waits and one is committed.
    static let queueCapacity = 1

    let limits: Limits
    let stream: AsyncStream<Item>

    /// Starts reading `handle` at once, on a new thread.
    init(_ handle: FileHandle, limits: Limits) {
        let (stream, continuation) = AsyncStream<Item>.makeStream()
        // The consumer releases a slot as it takes each item (Iterator.next).
        let slots = Slots(capacity: Self.queueCapacity)
        continuation.onTermination = { _ in slots.stop() }
        self.limits = limits
        self.stream = stream
        self.slots = slots
        self.continuation = continuation
        Thread.detachNewThread {
            Self.read(handle, limits: limits, slots: slots) { continuation.yield($0) }
            continuation.finish()
        }
    }

    private let slots: Slots
    private let continuation: AsyncStream<Item>.Continuation

    /// Ends the stream now, from any thread: the consumer gets the batch already waiting, if
    /// any, then the end; the reader stops at its next hand-over (a read of standard input in
    /// progress is abandoned with the thread).
    func finish() { continuation.finish() }

    func makeAsyncIterator() -> Iterator { Iterator(base: stream.makeAsyncIterator(), slots: slots) }

    struct Iterator: AsyncIteratorProtocol {
        var base: AsyncStream<Item>.Iterator
        let slots: Slots

        mutating func next() async -> Item? {
            let item = await base.next()
            if item != nil { slots.release() }
            return item
        }
    }

    /// The reader's permission to hand over another batch. `@unchecked Sendable`: a
    /// `DispatchSemaphore` is thread-safe, and `stopped` is an atomic.
    final class Slots: @unchecked Sendable {
        let semaphore: DispatchSemaphore
        let stopped = Atomic<Bool>(false)
        /// Made at 0 and signalled up to `capacity`: libdispatch stops the process when a
        /// semaphore is freed holding less than the value it was made with, which is where the
        /// reader leaves it when the consumer stops early (a busy store, a failed batch).
        init(capacity: Int) {
            semaphore = DispatchSemaphore(value: 0)
            for _ in 0..<capacity { semaphore.signal() }
        }
        /// Blocks the reader's thread until a slot is free; false once the consumer is gone.
        func acquire() -> Bool {
            semaphore.wait()
            return !stopped.load(ordering: .acquiring)
        }
        func release() { semaphore.signal() }
        /// The consumer is gone: wake the reader so that it stops.
        func stop() {
            stopped.store(true, ordering: .releasing)
            semaphore.signal()
        }
    }

    /// The reader thread's loop: lines to events to batches, until the end, a bad line, or the
    /// consumer stops listening.
    private static func read(_ handle: FileHandle, limits: Limits, slots: Slots, emit: (Item) -> Void) {
        var reader = LineReader(handle)
        var events: [AuditStore.PreparedEvent] = []
        var bytes = 0
        var batchStart = 1
        var lastEventLine = 0
        func handOver() -> Bool {
            guard slots.acquire() else { return false }
            emit(.batch(Batch(events: events, lines: batchStart...lastEventLine)))
            events = []
            events.reserveCapacity(Swift.min(limits.maximumEvents, 16_384))
            bytes = 0
            batchStart = lastEventLine + 1
            return true
        }
        func fail(_ error: AuditError, line: Int) {
            if slots.acquire() { emit(.failed(error, line: line, batchStart: batchStart)) }
        }
        while true {
            // The input has paused (a producer such as `tail -f` that writes now and then):
            // commit the events read so far rather than hold them until more arrive.
            if !events.isEmpty && !limits.single && reader.inputIsIdle() {
                guard handOver() else { return }
            }
            let line: ArraySlice<UInt8>
            do {
                guard let next = try reader.next() else { break }
                line = next
            } catch let error as AuditError {
                return fail(error, line: reader.lineNumber + 1)
            } catch {
                return fail(AuditError(.storage, "line \(reader.lineNumber + 1): cannot read standard input: \(error)"),
                            line: reader.lineNumber + 1)
            }
            let number = reader.lineNumber
            // A line of only spaces, tabs or CR (a CRLF file's blank line) holds no event.
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            if !events.isEmpty && (events.count == limits.maximumEvents || bytes + line.count > limits.maximumBytes) {
                if limits.single {
                    let what = events.count == limits.maximumEvents
                        ? "\(limits.maximumEvents) events" : "\(limits.maximumBytes >> 20) MiB of event lines"
                    return fail(AuditError(
                        .invalidInput,
                        "line \(number): more than \(what) on standard input, the most `append --jsonl --atomic` takes (one all-or-nothing batch held in memory); leave out --atomic to commit in batches",
                        field: "line \(number)"), line: number)
                }
                guard handOver() else { return }
            }
            do {
                // The bytes as read: AuditEvent checks them as UTF-8 (invalid UTF-8 is refused,
                // never replaced) and as strict JSON, exactly as the Swift API does.
                events.append(try AuditStore.prepare(AuditEvent(jsonLine: Array(line))))
            } catch {
                return fail(AuditError(.invalidInput, "line \(number): \(error.message)", field: "line \(number)"), line: number)
            }
            bytes += line.count
            lastEventLine = number
        }
        if !events.isEmpty { _ = handOver() }
    }
}
