import ArgumentParser
import AuditDB
import Foundation

struct Append: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Append one event (from flags) or a batch (JSONL on stdin); prints the new seq(s).",
        discussion: """
            With --jsonl, each line of standard input is one JSON object with the fields
            actor, action, resourceType, resourceId, tenant, outcome, severity, correlationId,
            source, occurredAt (RFC 3339 or microseconds), details (an object). The whole input
            is one transaction: if any line is bad, its line number is reported and nothing is written.
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Read events as JSON lines from standard input (at most 50,000 events and 16 MiB, 1 MiB per line; all or nothing).") var jsonl = false
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
        } else {
            guard actor != nil, action != nil else { throw ValidationError("--actor and --action are required (or use --jsonl)") }
        }
    }

    func run() async throws {
        let events: [AuditEvent]
        if jsonl {
            events = try readJSONL()
            guard !events.isEmpty else { throw AuditError(.invalidInput, "no events on standard input", field: "stdin") }
        } else {
            events = [try eventFromFlags()]
        }
        let store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                              configuration: try global.configuration())
        do {
            let seqs = try await store.append(contentsOf: events)
            try await store.close()
            Output.line(seqs.count == 1 ? "\(seqs.lowerBound)" : "\(seqs.lowerBound)-\(seqs.upperBound)")
        } catch {
            try? await store.close()  // cleanup; the original error is rethrown
            throw error
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

    /// The most events, and event-line bytes, one `append --jsonl` takes: they are one
    /// all-or-nothing batch, held in memory until it commits. Measured (debug build): 35 MB to
    /// start, then about 2.7 bytes per input byte, so 16 MiB of lines peak near 80 MB.
    static let maximumJSONLEvents = 50_000
    static let maximumJSONLBytes = 16 << 20

    /// Reads stdin line by line (LineReader: bounded line length) and decodes every line; any bad
    /// line fails the whole batch, and so does a batch over ``maximumJSONLEvents`` (refused as
    /// soon as the next event line arrives, before anything is written).
    private func readJSONL() throws -> [AuditEvent] {
        var reader = LineReader(FileHandle.standardInput)
        var events: [AuditEvent] = []
        var total = 0
        while let bytes = try reader.next() {
            let number = reader.lineNumber
            if !bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) {
                total += bytes.count
                if events.count == Self.maximumJSONLEvents || total > Self.maximumJSONLBytes {
                    throw AuditError(
                        .invalidInput,
                        "line \(number): more than \(events.count == Self.maximumJSONLEvents ? "\(Self.maximumJSONLEvents) events" : "\(Self.maximumJSONLBytes >> 20) MiB of event lines") on standard input; nothing was written. `append --jsonl` writes one all-or-nothing batch held in memory: split the input (e.g. `split -l 10000`) and append each part",
                        field: "line \(number)")
                }
            }
            // A line of only spaces, tabs or CR (a CRLF file's blank line) holds no event.
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            do {
                // The bytes as read: AuditEvent checks them as UTF-8 (invalid UTF-8 is refused,
                // never replaced) and as strict JSON, exactly as the Swift API does.
                let event = try AuditEvent(jsonLine: Array(bytes))
                try AuditStore.validate(event)
                events.append(event)
            } catch {
                throw AuditError(.invalidInput, "line \(number): \(error.message); nothing was written", field: "line \(number)")
            }
        }
        return events
    }
}
