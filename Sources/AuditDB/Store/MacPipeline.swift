import CAuditCore
import Dispatch
import Foundation
import Synchronization

/// Computes the chained MACs of a large write on a second thread, ahead of the writer, so
/// that the writer thread only binds and steps (the MAC chain is serial, but it is ~3x
/// cheaper per row than SQLite's insert, so it stays ahead).
///
/// Given events not yet validated (``init(unvalidated:firstSeq:prevMac:signer:storeID:format:)``),
/// the worker also validates and encodes each one before sealing it, so that validating a
/// large batch overlaps writing it instead of preceding it. The first invalid event stops the
/// worker; the writer then gets its error at that index and rolls the transaction back.
///
/// `@unchecked Sendable`: the worker writes `macs[i]`, `recordedAt[i]` and `encoded[i]` before
/// publishing `progress > i` (or a failure at `i`) with release ordering; the writer reads index
/// `i` only after loading `progress > i` with acquire ordering. The buffers are freed in
/// ``finish()`` only after the worker has signalled that it stopped touching them.
final class MacPipeline: @unchecked Sendable {
    /// Below this many rows the thread hand-off costs more than it saves.
    static let minimumRows = 256

    private let count: Int
    private let macs: UnsafeMutableBufferPointer<UInt8>
    private let recordedAt: UnsafeMutableBufferPointer<Int64>
    /// Validated events (unvalidated mode only); the first `encodedCount` are initialized.
    private let encoded: UnsafeMutableBufferPointer<EncodedEvent>?
    private var encodedCount = 0  // written by the worker only; read after `done`
    private let progress = Atomic<Int>(0)
    private let failedAt = Atomic<Int>(Int.max)
    private var failure: AuditError?  // written by the worker before publishing `failedAt`
    private let cancelled = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    /// MACs for events validated already.
    init(events: [EncodedEvent], firstSeq: Int64, prevMac: [UInt8], signer: AuditKey, storeID: [UInt8], format: UInt8,
         clockOffset: Int64 = 0) {
        count = events.count
        macs = .allocate(capacity: max(1, events.count) * 32)
        recordedAt = .allocate(capacity: max(1, events.count))
        encoded = nil
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            defer { done.signal() }
            run(firstSeq: firstSeq, prevMac: prevMac, signer: signer, storeID: storeID, format: format, clockOffset: clockOffset) {
                index in events[index]
            }
        }
    }

    /// Validates and encodes `events` (with the checks of `AuditStore.append`), then MACs them.
    init(unvalidated events: [AuditEvent], firstSeq: Int64, prevMac: [UInt8], signer: AuditKey, storeID: [UInt8],
         format: UInt8, clockOffset: Int64 = 0) {
        count = events.count
        macs = .allocate(capacity: max(1, events.count) * 32)
        recordedAt = .allocate(capacity: max(1, events.count))
        encoded = UnsafeMutableBufferPointer<EncodedEvent>.allocate(capacity: max(1, events.count))
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            defer { done.signal() }
            run(firstSeq: firstSeq, prevMac: prevMac, signer: signer, storeID: storeID, format: format, clockOffset: clockOffset) {
                index -> EncodedEvent? in
                switch Self.validate(events[index]) {
                case .success(let event):
                    (encoded!.baseAddress! + index).initialize(to: event)
                    encodedCount = index + 1
                    return event
                case .failure(let error):
                    failure = events.count == 1
                        ? error
                        : AuditError(error.code, "event \(index): \(error.message)", field: error.field.map { "[\(index)].\($0)" })
                    return nil
                }
            }
        }
    }

    /// `AuditStore.append`'s checks and encoding of one event.
    private static func validate(_ event: AuditEvent) -> Result<EncodedEvent, AuditError> {
        do throws(AuditError) {
            return .success(try AuditStore.encodeForAppend(event))
        } catch {
            return .failure(error)
        }
    }

    /// The worker: for each index, the event (nil: stop, `failure` says why), then its MAC.
    private func run(firstSeq: Int64, prevMac: [UInt8], signer: AuditKey, storeID: [UInt8], format: UInt8, clockOffset: Int64,
                     event: (Int) -> EncodedEvent?)
    {
        for index in 0..<count {
            if index & 63 == 0, cancelled.load(ordering: .relaxed) { return }
            guard let current = event(index) else {
                progress.store(index, ordering: .releasing)
                failedAt.store(index, ordering: .releasing)
                return
            }
            let time = AuditTimestamp.now().microsecondsSinceEpoch + clockOffset
            recordedAt[index] = time
            let out = macs.baseAddress! + index * 32
            current.withRow(seq: firstSeq + Int64(index), recordedAt: time, keyVersion: signer.version, format: format) { row in
                if index == 0 {
                    adb_row_seal(signer.keyset, storeID, &row, prevMac, out)
                } else {
                    adb_row_seal(signer.keyset, storeID, &row, out - 32, out)
                }
            }
            if index & 15 == 15 || index == count - 1 { progress.store(index + 1, ordering: .releasing) }
        }
    }

    /// The recorded time and MAC of row `index`, waiting until the worker has made them.
    func waitFor(_ index: Int) -> (Int64, UnsafeBufferPointer<UInt8>) {
        while progress.load(ordering: .acquiring) <= index { sched_yield() }
        return (recordedAt[index], UnsafeBufferPointer(start: macs.baseAddress! + index * 32, count: 32))
    }

    /// Unvalidated mode: the validated event, recorded time and MAC of row `index`, waiting until
    /// the worker has made them.
    /// - Throws: the validation error of event `index` (earlier ones were valid).
    /// The event is returned in place (valid until ``finish()``), so the writer does not retain it.
    func waitForValidated(_ index: Int) throws(AuditError) -> (UnsafePointer<EncodedEvent>, Int64, UnsafeBufferPointer<UInt8>) {
        while progress.load(ordering: .acquiring) <= index {
            if failedAt.load(ordering: .acquiring) <= index {
                throw failure ?? AuditError(.storage, "event \(index) could not be validated")
            }
            sched_yield()
        }
        return (UnsafePointer(encoded!.baseAddress! + index), recordedAt[index],
                UnsafeBufferPointer(start: macs.baseAddress! + index * 32, count: 32))
    }

    /// Stops the worker (if the write failed midway), waits for it, and frees the buffers.
    func finish() {
        cancelled.store(true, ordering: .relaxed)
        done.wait()
        macs.deallocate()
        recordedAt.deallocate()
        if let encoded {
            encoded.baseAddress!.deinitialize(count: encodedCount)
            encoded.deallocate()
        }
    }
}
