import ArgumentParser
import AuditDB
import Foundation
import Synchronization
import UnixSignals

/// `append --jsonl`: commits the batches of ``EventBatches`` one after the other through the
/// library's batched append (`AuditStore.append(contentsOf:)`, one transaction each), printing
/// each batch's seqs as soon as it is committed.
///
/// A failure (a bad line, a bound passed, a storage error) leaves the batches committed before it
/// and writes nothing of its own batch; the error names the last committed line. Exit status 2
/// if nothing was written, 3 if some batches were.
struct JSONLIngest {
    let limits: EventBatches.Limits
    let showProgress: Bool

    /// Opens the store when the first batch is ready (so that input errors in the first batch are
    /// reported before the store is touched, as for one batch), then commits batch by batch.
    func run(open: () async throws -> AuditStore) async throws {
        let batches = EventBatches(FileHandle.standardInput, limits: limits)
        let progress = Progress("append", unit: "events", quiet: !showProgress)
        var store: AuditStore?
        var committed = Committed()
        var failure: (error: AuditError, batchStart: Int)?
        // SIGTERM or SIGINT: the batch being committed finishes (its seqs are printed), no
        // further one starts, and the input stops at once even if it is idle (`tail -f`). Ended
        // by the signal's default action instead, a batch could be committed without its line,
        // and a caller resuming after the printed lines would append it twice.
        let stop = Atomic<Int32>(0)
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let watcher = Task {
            for await signal in signals {
                stop.store(signal == .sigterm ? SIGTERM : SIGINT, ordering: .releasing)
                batches.finish()
                return
            }
        }
        defer { watcher.cancel() }
        for await item in batches {
            if stop.load(ordering: .acquiring) != 0 { break }  // the waiting batch is not started
            switch item {
            case .batch(let batch):
                if store == nil { store = try await open() }
                var appended = false
                do {
                    let seqs = try await store!.append(prepared: batch.events)
                    committed.add(batch, seqs)
                    appended = true
                    try Output.line(seqs.count == 1 ? "\(seqs.lowerBound)" : "\(seqs.lowerBound)-\(seqs.upperBound)")
                    progress.update(Int64(committed.events), note: "lines 1-\(committed.lastLine) committed")
                } catch {
                    // Committed, but its seq line could not be written (stdout gone): the summary
                    // counts it, and resuming starts after it, never at it again.
                    failure = (AuditError.wrapping(error, prefix: "lines \(batch.lines.lowerBound)-\(batch.lines.upperBound)"),
                               appended ? committed.lastLine + 1 : batch.lines.lowerBound)
                }
            case .failed(let error, _, let batchStart):
                failure = (error, batchStart)
            }
            if failure != nil || stop.load(ordering: .acquiring) != 0 { break }
        }
        progress.finish()
        if let store {
            do {
                try await store.close()
            } catch {
                if failure == nil { failure = (AuditError.wrapping(error, prefix: "close"), committed.lastLine + 1) }
            }
        }
        let signal = stop.load(ordering: .acquiring)
        if signal != 0, failure == nil {
            let what = committed.batches > 0 ? committed.summary + "; nothing from line \(committed.lastLine + 1) on was written" : "nothing was written"
            Output.error("stopped by \(signal == SIGTERM ? "SIGTERM" : "SIGINT"): \(what)")
            throw ExitCode(128 + signal)
        }
        if let (error, batchStart) = failure {
            guard committed.batches > 0 else {
                throw AuditError(error.code, error.message + "; nothing was written", field: error.field, underlying: error.underlying)
            }
            Output.error(error.message + "; " + committed.summary + "; nothing from line \(batchStart) on was written")
            throw ExitCode(ExitStatus.partial)
        }
        if committed.batches == 0 {
            throw AuditError(.invalidInput, "no events on standard input", field: "stdin")
        }
    }

    /// What has been committed so far.
    struct Committed {
        var batches = 0
        var events = 0
        var lastLine = 0
        var firstSeq: Int64 = 0
        var lastSeq: Int64 = 0

        mutating func add(_ batch: EventBatches.Batch, _ seqs: ClosedRange<Int64>) {
            if batches == 0 { firstSeq = seqs.lowerBound }
            batches += 1
            events += batch.events.count
            lastLine = batch.lines.upperBound
            lastSeq = seqs.upperBound
        }

        var summary: String {
            "lines 1-\(lastLine) were committed (\(events) event(s) in \(batches) batch(es), seqs \(firstSeq) to \(lastSeq), one line per batch on standard output)"
        }
    }
}

extension AuditError {
    /// `error` as an ``AuditError`` whose message starts with `prefix`.
    static func wrapping(_ error: any Error, prefix: String) -> AuditError {
        if let error = error as? AuditError {
            return AuditError(error.code, "\(prefix): \(error.message)", field: error.field, underlying: error.underlying)
        }
        return AuditError(.storage, "\(prefix): \(error)")
    }
}
