import ArgumentParser
import AuditDB
import Foundation

struct Append: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Append one event (from flags) or a stream of events (JSONL on stdin); prints the new seqs.",
        discussion: """
            With --jsonl, each line of standard input is one JSON object with the fields \
            actor, action, resourceType, resourceId, tenant, outcome, severity, correlationId, \
            source, occurredAt (RFC 3339 or microseconds), details (an object). Lines of only \
            spaces, tabs or CR are skipped.

            The input streams in bounded memory: every --batch-size event lines (or 8 MiB of \
            them, whichever comes first) are committed as one all-or-nothing batch, and the \
            batch's seqs are printed as one line (FIRST-LAST, or one seq for a batch of one event) as soon as it is committed. When \
            the input pauses (a pipe with no bytes ready, e.g. from `tail -f`), the events read so \
            far are committed at once as a batch of their own, never held until more arrive. A bad \
            line is reported with its number; the batches before it stay committed (the error \
            says through which line), nothing of its own batch is written, and the exit status \
            is 3 (2 if nothing was written). With --atomic the whole input is one batch, all or \
            nothing, of at most 50,000 events and 16 MiB of event lines. SIGTERM or SIGINT stops \
            it after the batch being committed, whose seqs are then printed, and starts no other: \
            the message names the last committed line, and the exit status is 143 or 130. Every \
            committed batch has its line. Only a kill that cannot be caught (SIGKILL, a crash) can \
            leave the batch it interrupted committed without one: before resuming after the \
            printed lines, compare the store's last seq (`auditdb query --descending --limit 1`) with the last one printed.

            EXIT STATUS
              0  every event was appended
              2  nothing was written: bad arguments, a bad line in the first batch, storage
                 error
              3  some batches were committed, then a bad line or a storage error stopped
                 the rest; one event (no --jsonl): it was committed, then its seq could
                 not be printed (the error names it)
              130, 143
                 stopped by SIGINT or SIGTERM after the batch being committed
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Read events as JSON lines from standard input (at most 1 MiB per line), committed in batches.") var jsonl = false
    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: ArgumentHelp(
        "With --jsonl: event lines per committed batch (1-50000).", valueName: "lines"), transform: StrictNumber.count)
    var batchSize = Self.defaultBatchSize
    @Flag(help: "With --jsonl: the whole input is one all-or-nothing batch (at most 50,000 events and 16 MiB of event lines).")
    var atomic = false
    @Flag(help: "With --jsonl: no progress lines on standard error.") var quiet = false
    @Option(help: "Who acted.") var actor: String?
    @Option(help: "What was done.") var action: String?
    @Option(name: .customLong("resource-type")) var resourceType: String?
    @Option(name: .customLong("resource-id")) var resourceId: String?
    @Option var tenant: String?
    @Option(help: "success | failure | denied | error") var outcome: String?
    @Option(help: "info | notice | warning | critical") var severity: String?
    @Option(name: .customLong("correlation-id")) var correlationId: String?
    @Option(help: "Where the action came from (IP or host).") var source: String?
    @Option(name: .customLong("occurred-at"), help: "RFC 3339 time the action happened.") var occurredAt: String?
    @Option(help: "A JSON object with more context.") var details: String?

    func validate() throws {
        if jsonl {
            guard actor == nil, action == nil, resourceType == nil, resourceId == nil, tenant == nil, outcome == nil,
                  severity == nil, correlationId == nil, source == nil, occurredAt == nil, details == nil
            else { throw ValidationError("--jsonl reads events from stdin; do not combine it with event flags") }
            guard (1...Self.maximumJSONLEvents).contains(batchSize) else {
                throw ValidationError("--batch-size must be from 1 to \(Self.maximumJSONLEvents)")
            }
            guard !atomic || batchSize == Self.defaultBatchSize else {
                throw ValidationError("--atomic makes the whole input one batch; drop --batch-size (or drop --atomic)")
            }
        } else {
            guard !atomic, batchSize == Self.defaultBatchSize, !quiet else {
                throw ValidationError("--batch-size, --atomic and --quiet go with --jsonl")
            }
            guard actor != nil, action != nil else { throw ValidationError("--actor and --action are required (or use --jsonl)") }
        }
    }

    func run() async throws {
        if jsonl {
            try await JSONLIngest(limits: limits, showProgress: !quiet).run {
                try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                          configuration: try global.configuration())
            }
            return
        }
        let event = try eventFromFlags()
        let store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                              configuration: try global.configuration())
        let seq: Int64
        do {
            seq = try await store.append(event)
        } catch {
            try? await store.close()  // cleanup; the original error is rethrown
            throw error
        }
        // The row is committed: whatever fails now, say at which seq, with the status that means
        // "committed, then an error" (a caller that took exit 2 for "nothing written" would
        // append it twice).
        do {
            try await store.close()
            try Output.line("\(seq)")
        } catch {
            let reason = (error as? AuditError)?.message ?? String(describing: error)
            Output.error("the event was appended at seq \(seq) (committed), then: \(reason)")
            throw ExitCode(ExitStatus.partial)
        }
    }

    private func eventFromFlags() throws -> AuditEvent {
        var event = AuditEvent(actor: actor!, action: action!)
        event.resourceType = resourceType
        event.resourceId = resourceId
        event.tenant = tenant
        event.correlationId = correlationId
        event.source = source
        if let outcome {
            guard let value = AuditOutcome(rawValue: outcome) else {
                throw AuditError(.invalidInput, "--outcome must be one of success, failure, denied, error", field: "--outcome")
            }
            event.outcome = value
        }
        if let severity {
            guard let value = AuditSeverity(rawValue: severity) else {
                throw AuditError(.invalidInput, "--severity must be one of info, notice, warning, critical", field: "--severity")
            }
            event.severity = value
        }
        if let occurredAt {
            switch AuditTimestamp.parse(occurredAt) {
            case .success(let value): event.occurredAt = value
            case .failure(let why):
                throw AuditError(.invalidInput, "occurredAt: \(OutputEscaping.jsonQuoted(occurredAt)) \(why)", field: "--occurred-at")
            }
        }
        if let details { event.details = AuditDetails(json: details) }
        return event
    }

    /// Event lines per committed batch unless `--batch-size` says otherwise: large enough that a
    /// batch takes the library's overlapped-validation path (4,096 events and up) and the fsync
    /// per commit is negligible, small enough to keep a few batches in memory at once.
    static let defaultBatchSize = 10_000

    /// The most events, and event-line bytes, one `append --jsonl --atomic` takes: they are one
    /// all-or-nothing batch, held in memory until it commits. Measured (debug build): 35 MB to
    /// start, then about 2.7 bytes per input byte, so 16 MiB of lines peak near 80 MB.
    static let maximumJSONLEvents = 50_000
    static let maximumJSONLBytes = 16 << 20
    /// Without --atomic a batch is cut at this many bytes of event lines even before
    /// `--batch-size` lines, so that large events keep memory bounded too.
    static let maximumBatchBytes = 8 << 20

    var limits: EventBatches.Limits {
        atomic ? EventBatches.Limits(maximumEvents: Self.maximumJSONLEvents, maximumBytes: Self.maximumJSONLBytes, single: true)
            : EventBatches.Limits(maximumEvents: batchSize, maximumBytes: Self.maximumBatchBytes, single: false)
    }
}
