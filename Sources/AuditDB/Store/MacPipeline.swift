import CAuditCore
import Dispatch
import Foundation
import Synchronization

/// Computes the chained MACs of a large write on a second thread, ahead of the writer, so
/// that the writer thread only binds and steps (the MAC chain is serial, but it is ~3x
/// cheaper per row than SQLite's insert, so it stays ahead).
///
/// `@unchecked Sendable`: the worker writes `macs[i]` and `recordedAt[i]` before publishing
/// `progress > i` with release ordering; the writer reads index `i` only after loading
/// `progress > i` with acquire ordering. The buffers are freed in ``finish()`` only after the
/// worker has signalled that it stopped touching them.
final class MacPipeline: @unchecked Sendable {
    /// Below this many rows the thread hand-off costs more than it saves.
    static let minimumRows = 256

    private let count: Int
    private let macs: UnsafeMutableBufferPointer<UInt8>
    private let recordedAt: UnsafeMutableBufferPointer<Int64>
    private let progress = Atomic<Int>(0)
    private let cancelled = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    init(events: [EncodedEvent], firstSeq: Int64, prevMac: [UInt8], signer: AuditKey, storeID: [UInt8]) {
        count = events.count
        macs = .allocate(capacity: max(1, events.count) * 32)
        recordedAt = .allocate(capacity: max(1, events.count))
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            defer { done.signal() }
            for index in 0..<count {
                if index & 63 == 0, cancelled.load(ordering: .relaxed) { return }
                let time = AuditTimestamp.now().microsecondsSinceEpoch
                recordedAt[index] = time
                let out = macs.baseAddress! + index * 32
                events[index].withRow(seq: firstSeq + Int64(index), recordedAt: time, keyVersion: signer.version) { row in
                    if index == 0 {
                        adb_row_seal(signer.keyset, storeID, &row, prevMac, out)
                    } else {
                        adb_row_seal(signer.keyset, storeID, &row, out - 32, out)
                    }
                }
                if index & 15 == 15 || index == count - 1 { progress.store(index + 1, ordering: .releasing) }
            }
        }
    }

    /// The recorded time and MAC of row `index`, waiting until the worker has made them.
    func waitFor(_ index: Int) -> (Int64, UnsafeBufferPointer<UInt8>) {
        while progress.load(ordering: .acquiring) <= index { sched_yield() }
        return (recordedAt[index], UnsafeBufferPointer(start: macs.baseAddress! + index * 32, count: 32))
    }

    /// Stops the worker (if the write failed midway), waits for it, and frees the buffers.
    func finish() {
        cancelled.store(true, ordering: .relaxed)
        done.wait()
        macs.deallocate()
        recordedAt.deallocate()
    }
}
