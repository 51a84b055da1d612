import ArgumentParser
import AuditDB
import AuditDBCLISupport
import AuditDBMetricsEndpoint
import Logging
import ServiceLifecycle
import UnixSignals

struct Scan: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the integrity scanner: one pass, or passes INTERVAL apart until SIGTERM/SIGINT.",
        discussion: """
            An incremental pass (the default) checks the schema, the store header and the rows appended since the \
            last intact recorded pass; without one it runs a full pass. Each pass is recorded in the store as a \
            signed auditdb.scan entry (see `auditdb status`), unless --no-record is given.

            With --every, passes repeat (full when no full pass completed within --full-every), each starting \
            INTERVAL after the previous one ended (passes never overlap), until SIGTERM or SIGINT; a pass in progress is abandoned and not recorded. --metrics-address serves Prometheus metrics \
            at http://ADDRESS/metrics meanwhile, and --signing-key makes a signed checkpoint every \
            --checkpoint-every (and one at shutdown), written to each --anchor (docs/operations.md), which \
            must exist: a missing anchor directory is refused at start and fails that checkpoint later, never \
            created.

            EXIT STATUS
              0  intact (with --every: the last pass was intact)
              1  integrity violation found
              2  could not scan: bad arguments, missing key, unreadable store, the pass
                 could not be recorded; with --every, a report could not be written to
                 standard output (the scanner goes on, and says so on standard error);
                 with --signing-key, the checkpoint at shutdown failed (the last rows are
                 not anchored)
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Check every row from seq 1.") var full = false
    @Flag(help: "Check only rows after the last verified position (the default).") var incremental = false
    @Flag(help: "Print each pass as one JSON object per line.") var json = false
    @Flag(help: "No progress on standard error (one-off passes show it; --every never does).") var quiet = false
    @Flag(name: .customLong("no-record"), help: "Do not record the pass in the store: opens it read-only (an archived or read-only store, or a copy). A hot rollback journal that a writer which died left beside it is still rolled back first, as SQLite does before any read, which writes the file: copy the file and its -journal first to keep them as evidence.")
    var noRecord = false
    @Option(parsing: .unconditional, help: ArgumentHelp("Repeat until SIGTERM/SIGINT, INTERVAL (e.g. 30s, 5m, 1h) after the end of each pass.", valueName: "interval"))
    var every: String?
    @Option(name: .customLong("full-every"), parsing: .unconditional, help: ArgumentHelp("With --every: a full pass at least this often (default 24h).", valueName: "interval"))
    var fullEvery: String?
    @Option(name: .customLong("metrics-address"), help: ArgumentHelp(
        "With --every: serve Prometheus metrics at http://ADDRESS/metrics (e.g. 127.0.0.1:9464).", valueName: "host:port"))
    var metricsAddress: String?
    @Option(name: .customLong("signing-key"), help: ArgumentHelp(
        "With --every: also make signed checkpoints with this secret checkpoint key file.", valueName: "file"))
    var signingKey: String?
    @Option(name: .customLong("anchor"), help: ArgumentHelp("With --signing-key: an anchor directory (repeatable).", valueName: "dir"))
    var anchors: [String] = []
    @Option(name: .customLong("checkpoint-every"), parsing: .unconditional, help: ArgumentHelp(
        "With --signing-key: a checkpoint at least this often while rows are appended (default 1h).", valueName: "interval"))
    var checkpointEvery: String?

    static let defaultFullEvery = "24h", defaultCheckpointEvery = "1h"

    func validate() throws {
        if full && incremental { throw ValidationError("--full and --incremental are exclusive") }
        if every == nil && (metricsAddress != nil || signingKey != nil) {
            throw ValidationError("--metrics-address and --signing-key need --every (a long-running scanner)")
        }
        if signingKey == nil && !anchors.isEmpty { throw ValidationError("--anchor needs --signing-key") }
        // Options that would do nothing are refused, not ignored: the scanner would not do what was asked.
        if every == nil && fullEvery != nil { throw ValidationError("--full-every needs --every (a single pass is --full or --incremental)") }
        if signingKey == nil && checkpointEvery != nil { throw ValidationError("--checkpoint-every needs --signing-key") }
        _ = try Self.interval(checkpointEvery ?? Self.defaultCheckpointEvery, option: "--checkpoint-every")
        if let every { _ = try Self.interval(every, option: "--every") }
        _ = try Self.interval(fullEvery ?? Self.defaultFullEvery, option: "--full-every")
    }

    /// Never created: a volume unmounted while the scanner runs would otherwise take the anchors
    /// on the local disk (each write checks again).
    private var anchorDirectories: [DirectoryAnchor] { anchors.map { DirectoryAnchor(path: $0, createsDirectory: false) } }

    func run() async throws {
        for anchor in anchorDirectories { try anchor.checkDirectoryExists() }
        if noRecord && every == nil {
            // Read only: works on archived and read-only stores too.
            let display = Progress("scan", unit: "rows", quiet: quiet)
            let report = try await IntegrityScanner.scan(
                storeAt: try global.storePath(), keys: try global.keyRing(), mode: full ? .full : .incremental,
                configuration: try global.configuration(), progress: { display.update($0.rowsChecked, total: $0.totalRows) })
            display.finish()
            try print(report)
            if !report.isIntact { throw ExitCode(ExitStatus.violation) }
            return
        }
        let store: AuditStore
        let export = metricsAddress.map { _ in ScanMetricsExport() }
        do {
            var storeConfiguration = try global.configuration()
            if let export { storeConfiguration.metricsFactory = export.factory }
            store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                              configuration: storeConfiguration)
        } catch let error as AuditError where error.code == .readOnly {
            throw AuditError(error.code, error.message + " A scan records its pass in the store; use --no-record to scan a read-only store without writing.")
        } catch let error as AuditError where error.code == .corrupt {
            // A file that cannot be read as a database: the same `corruption` finding as
            // `verify` (exit 1), from a read-only pass; there is nothing to record it in.
            let report = try await IntegrityScanner.scan(storeAt: try global.storePath(), keys: try global.keyRing(),
                                                         mode: .full, configuration: try global.configuration())
            try print(report)
            if !report.isIntact { throw ExitCode(ExitStatus.violation) }
            throw error
        }
        var configuration = IntegrityScanner.Configuration(recordsPasses: !noRecord)
        configuration.fullPassInterval = try Self.interval(fullEvery ?? Self.defaultFullEvery, option: "--full-every")
        let result: Result<Bool, any Error>
        if let every {
            configuration.interval = try Self.interval(every, option: "--every")
            if full { configuration.fullPassInterval = .zero }
            // A pass that fails is no report: say so on standard error as it happens, not only
            // in the metrics and the final exit status.
            configuration.logger = Logger(label: "auditdb.scan") { _ in PassFailureLogHandler() }
            result = await Result { try await runPeriodically(store, configuration, export) }
        } else {
            let scanner = IntegrityScanner(store: store, configuration: configuration)
            result = await Result {
                do {
                    let display = Progress("scan", unit: "rows", quiet: quiet)
                    let scanned = await Result {
                        try await scanner.scan(full ? .full : .incremental, progress: { display.update($0.rowsChecked, total: $0.totalRows) })
                    }
                    display.finish()
                    let report = try scanned.get()
                    try print(report)
                    return report.isIntact
                } catch let error as AuditError {
                    // The pass ran but its record could not be appended: show what it found.
                    guard let report = scanner.lastReport else { throw error }
                    try print(report)
                    throw AuditError(error.code, error.message + " (the pass above was not recorded; use --no-record to scan without writing)")
                }
            }
        }
        try await store.close()
        if try !result.get() { throw ExitCode(ExitStatus.violation) }
    }

    /// Runs the scanner (and the checkpoint service, with --signing-key) as services until a
    /// signal, serving metrics meanwhile if asked; returns whether the last pass was intact.
    private func runPeriodically(_ store: AuditStore, _ configuration: IntegrityScanner.Configuration,
                                 _ export: ScanMetricsExport?) async throws -> Bool
    {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        let scanner = IntegrityScanner(store: store, configuration: configuration)
        if let signingKey {
            // No checkpoint while the scanner reports damage: the anchors would vouch for it.
            var checkpointing = CheckpointService.Configuration(
                interval: try Self.interval(checkpointEvery ?? Self.defaultCheckpointEvery, option: "--checkpoint-every"))
            checkpointing.scanner = scanner
            let checkpoints = CheckpointService(
                store: store, signer: try CheckpointSigner.load(path: signingKey),
                anchors: anchorDirectories, configuration: checkpointing)
            services.append(.init(service: checkpoints))
        }
        // Listed last, so stopped first: the scanner abandons its pass, then the checkpoint
        // service makes its shutdown checkpoint.
        services.append(.init(service: scanner, successTerminationBehavior: .gracefullyShutdownGroup))
        var endpoint: MetricsEndpoint?
        if let export, let metricsAddress {
            // The signed scan history says when the last intact full pass was, before this process.
            // If it cannot be read or fails verification, nothing is seeded (the figures stay
            // absent until this scanner's first intact full pass) and the pass reports the damage.
            do {
                export.seed(from: try await store.recordedScanStatus(verifyingRowsAfter: false))  // the pass itself verifies
            } catch {
                Output.notice("the recorded scan history could not be read (\(error)); the first pass will tell")
            }
            let serving = try MetricsEndpoint(address: metricsAddress, render: { export.render(scanner) })
            serving.start()
            endpoint = serving
            Output.notice("serving metrics at http://\(serving.boundAddress)/metrics")
        }
        defer { endpoint?.stop() }
        let passes = scanner.passes()
        let kept = noRecord ? "the passes are not recorded (--no-record)" : "its passes are recorded in the store; `auditdb status` shows the last"
        let printer = Task { () -> String? in
            // The passes are recorded in the store and counted in the metrics: a scanner whose
            // standard output is gone says so once on standard error and goes on scanning; the
            // exit status says so again at the end.
            var lost: String?
            for await report in passes {
                do {
                    try print(report)
                } catch {
                    if lost == nil {
                        let message = (error as? AuditError)?.message ?? "\(error)"
                        Output.error("\(message) (the scanner goes on; \(kept))")
                        lost = message
                    }
                }
            }
            return lost
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: Output.silentLogger))
        try await group.run()
        printer.cancel()
        let lostOutput = await printer.value
        let status = scanner.status
        if case .failed(let message) = status.lastResult {
            throw AuditError(.storage, "the last scan pass failed: \(message)")
        }
        if status.lastResult == .findings { return false }
        if let lostOutput {
            // Not exit 0: whoever reads the output (a log file on a full disk) missed reports.
            throw AuditError(.storage, "some scan reports were not printed: \(lostOutput) (\(kept))")
        }
        return true
    }

    private func print(_ report: ScanReport) throws {
        if json {
            let record = report.recordSeq.map(String.init) ?? "null"
            try Output.line("{\"mode\":\"\(report.mode.rawValue)\",\"recordSeq\":\(record),\"fromSeq\":\(report.integrity.firstCheckedSeq),"
                        + "\"report\":\(ReportJSON.encode(report.integrity))}")
            return
        }
        let integrity = report.integrity
        let range = report.checkedSeqs.map { "seq \($0.lowerBound)...\($0.upperBound)" } ?? "no new rows"
        let recorded = report.recordSeq.map { "; recorded as seq \($0)" } ?? ""
        if report.isIntact {
            try Output.line("intact: \(report.mode.rawValue) pass checked \(integrity.rowsChecked) rows (\(range))\(recorded)")
        } else {
            try Output.line("INTEGRITY VIOLATION: \(report.mode.rawValue) pass found \(integrity.totalFindings) finding(s) (\(range))\(recorded)")
            for finding in integrity.findings.prefix(50) {
                try Output.line("  " + OutputEscaping.escapeForMessage(finding.description))
            }
            if integrity.totalFindings > 50 { try Output.line("  ... and \(integrity.totalFindings - 50) more") }
        }
    }

    /// Parses `30s`, `5m`, `2h`, `1d` (``DurationOption``).
    static func interval(_ text: String, option: String) throws -> Duration {
        try DurationOption.parse(text, option: option)
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the last recorded scanner pass and the last full pass (read from the store's scan history).",
        discussion: """
            Reads and verifies the newest auditdb.scan records, and verifies every row appended after the \
            newest one (MAC and chain link: a later record that found damage cannot be hidden by editing or \
            deleting it). An app running IntegrityScanner in-process serves the same facts from memory \
            (IntegrityScanner.status) without touching the database.

            EXIT STATUS
              0  the last pass was intact, and so is every row after it
              1  the last pass found damage, or a scan record or a row after the last one
                 fails verification
              2  no pass recorded yet, or the status could not be read
              4  the last pass was intact, but it (or the last full pass) is older than
                 --max-age (--max-full-age), or its age is unknown: the scanner stopped,
                 or its passes fail without being recorded (for example a scanner that
                 was not restarted after a key rotation)
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print one JSON object.") var json = false
    @Option(name: .customLong("max-age"), parsing: .unconditional, help: ArgumentHelp(
        "Exit 4 unless the last pass was recorded within INTERVAL (e.g. 15m for a scanner every 5m).", valueName: "interval"))
    var maxAge: String?
    @Option(name: .customLong("max-full-age"), parsing: .unconditional, help: ArgumentHelp(
        "Exit 4 unless the last full pass was recorded within INTERVAL (e.g. 26h).", valueName: "interval"))
    var maxFullAge: String?

    func validate() throws {
        if let maxAge { _ = try Scan.interval(maxAge, option: "--max-age") }
        if let maxFullAge { _ = try Scan.interval(maxFullAge, option: "--max-full-age") }
    }

    func run() async throws {
        let store = try await AuditStore.open(at: try global.storePath(), keys: try global.keyRing(),
                                              configuration: try global.configuration(readOnly: true))
        let result = await Result { try await store.recordedScanStatus() }
        try await store.close()
        let status = try result.get()
        let now = AuditTimestamp.now()
        // A pass recorded in the future (the clock stepped back since, or was ahead then) has no
        // age: JSON says null (an alert on a missing age fires, one on a negative age never
        // would), the text says how far ahead it is.
        func age(_ scan: RecordedScan?) -> Int64? {
            scan.map { now.microseconds(since: $0.recordedAt) / 1_000_000 }.flatMap { $0 >= 0 ? $0 : nil }
        }
        func when(_ scan: RecordedScan) -> String {
            let seconds = now.microseconds(since: scan.recordedAt) / 1_000_000
            return seconds >= 0 ? "\(seconds)s ago" : "\(-seconds)s in the future: the clock stepped back since, or was ahead then; its age is unknown"
        }
        if json {
            func encode(_ scan: RecordedScan?) -> String {
                guard let s = scan else { return "null" }
                return "{\"seq\":\(s.seq),\"at\":\"\(s.recordedAt.iso8601)\",\"mode\":\"\(s.mode.rawValue)\","
                    + "\"fromSeq\":\(s.fromSeq),\"throughSeq\":\(s.throughSeq),\"rowsChecked\":\(s.rowsChecked),"
                    + "\"durationMicros\":\(s.duration.components.seconds * 1_000_000 + s.duration.components.attoseconds / 1_000_000_000_000),"
                    + "\"result\":\"\(s.isIntact ? "intact" : "findings")\",\"findings\":\(s.findings),"
                    + "\"firstFinding\":\(s.firstFinding.map(OutputEscaping.jsonQuoted) ?? "null")}"
            }
            try Output.line("{\"lastPass\":\(encode(status.lastPass)),\"lastFullPass\":\(encode(status.lastFullPass)),"
                        + "\"secondsSinceLastPass\":\(age(status.lastPass).map(String.init) ?? "null"),"
                        + "\"secondsSinceLastFullPass\":\(age(status.lastFullPass).map(String.init) ?? "null")}")
        } else if let last = status.lastPass {
            try Output.line("last pass: \(last.mode.rawValue) at \(last.recordedAt.iso8601) (\(when(last))), "
                        + "\(last.rowsChecked) rows (seq \(last.fromSeq)...\(last.throughSeq)), "
                        + (last.isIntact ? "intact" : "\(last.findings) finding(s)") + ", record seq \(last.seq)")
            if let first = last.firstFinding { try Output.line("  first finding: " + OutputEscaping.escapeForMessage(first)) }
            if let full = status.lastFullPass {
                try Output.line("last full pass: \(full.recordedAt.iso8601) (\(when(full))), "
                            + (full.isIntact ? "intact" : "\(full.findings) finding(s)"))
            } else {
                try Output.line("last full pass: none recorded")
            }
        } else {
            try Output.line("no scan pass recorded yet: run `auditdb scan`")
        }
        guard let last = status.lastPass else { throw ExitCode(ExitStatus.failure) }
        if !last.isIntact { throw ExitCode(ExitStatus.violation) }
        // Stale: a scanner whose passes fail (a stale key ring, a locked store) records nothing,
        // so only the age of what it last recorded shows it from outside the process.
        var stale: [String] = []
        for (limit, option, scan, what) in [(maxAge, "--max-age", status.lastPass, "the last pass"),
                                            (maxFullAge, "--max-full-age", status.lastFullPass, "the last full pass")] {
            guard let limit else { continue }
            let seconds = try Scan.interval(limit, option: option).components.seconds
            guard let scan else {
                stale.append("\(what): none recorded (\(option) \(limit))")
                continue
            }
            guard let age = age(scan) else {
                stale.append("\(what) was recorded in the future, so its age is unknown (\(option) \(limit)): check the clock")
                continue
            }
            if age > seconds { stale.append("\(what) is \(age)s old, more than \(option) \(limit)") }
        }
        if !stale.isEmpty {
            let advice = stale.contains(where: { !$0.contains("in the future") })
                ? ". The scanner stopped, or its passes fail without being recorded (its log or standard error says why; "
                    + "after a key rotation, restart it with the current key file); run `auditdb scan` to record a pass now."
                : "."
            Output.notice("STALE: " + stale.joined(separator: "; ") + advice)
            throw ExitCode(ExitStatus.stale)
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

/// Writes the scanner's failed passes to standard error ("could not complete", "could not be
/// recorded"), and nothing else: findings are printed with their pass's report.
struct PassFailureLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .error

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let message = event.message.description
        guard message.hasPrefix("audit store scan could not complete") || message.hasPrefix("audit store scan pass could not be recorded")
        else { return }
        Output.notice("scan pass failed (\(message.dropFirst("audit store ".count))): \(event.metadata?["error"].map { "\($0)" } ?? "")")
    }
}
