import ArgumentParser
import AuditDB
import AuditDBCLISupport
import AuditDBMetricsEndpoint
import AuditDBPostgres
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `auditdb-fleet`: the PostgreSQL witness and the fleet auditor. A separate executable so that
/// the main `auditdb` CLI does not link PostgresNIO/SwiftNIO (docs/fleet.md).
@main
struct FleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auditdb-fleet",
        abstract: "Witness every store's checkpoints in PostgreSQL, audit the fleet, ship entries centrally.",
        discussion: """
            The witness is a PostgreSQL database: postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...].

            EXIT STATUS
              0  success (audit, verify-shipped: intact)
              1  findings: audit (fork, rollback, silent, unknown key, invalid signature),
                 verify-shipped (changed, missing, extra, unproven rows)
              2  could not run: bad arguments, the witness unreachable or refusing
            """,
        subcommands: [Audit.self, InstallSchema.self, Register.self, Ship.self, VerifyShipped.self]
    )

    static func main() async {
        StandardStreams.reserveStandardDescriptors()
        if let problem = RepeatedOptions.problem(Self.self, Array(CommandLine.arguments.dropFirst()))
            ?? HelpTopic.problem(Self.self, Array(CommandLine.arguments.dropFirst()))
        {
            StandardStreams.error("error: " + OutputEscaping.escapeForMessage(problem) + "\n")
            Foundation.exit(2)
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as AuditError {
            StandardStreams.error("error: " + OutputEscaping.escapeForMessage(error.message) + "\n")
            // A store file that is not the pinned one was replaced: exit 1, as `auditdb` has it.
            Foundation.exit(error.code == .storeIdentityMismatch ? 1 : 2)
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }
            // No line of it can be forged by an echoed argument, and the usage stays readable.
            StandardStreams.error(UsageMessage.escaped(fullMessage(for: error), message: message(for: error)) + "\n")
            Foundation.exit(2)
        }
    }
}

struct WitnessOption: ParsableArguments {
    @Option(name: .long, help: "The witness database URL (postgresql://USER@HOST[:PORT]/DATABASE).")
    var witness: String

    @Option(name: .long, parsing: .unconditional, help: "Give up when the witness has not answered within this many seconds.")
    var timeout: Int = 30

    func validate() throws {
        guard (1...86_400).contains(timeout) else { throw ValidationError("--timeout must be from 1 to 86400 seconds") }
    }

    /// Runs `body` with a connected witness, and stops its pool afterwards; an unreachable
    /// witness is an error after `--timeout` seconds (the pool itself retries for ever).
    func with<R: Sendable>(_ body: @Sendable @escaping (PostgresWitness) async throws -> R) async throws -> R {
        let logger = {
            var logger = Logger(label: "auditdb-fleet")
            logger.logLevel = .warning
            return logger
        }()
        let connection = try WitnessConnection(url: witness)
        let witness = PostgresWitness(connection, logger: logger)
        let seconds = max(1, timeout)
        return try await withThrowingTaskGroup(of: R?.self) { group in
            group.addTask {
                try await witness.run()
                return nil
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                throw AuditError(.storage, "the witness \(connection) did not answer within \(seconds) s; check that it is reachable and running")
            }
            group.addTask {
                // The pool's first lease after a connection of its own (which reports a refusal at
                // once, with its cause): by then the pool runs, and PostgresNIO does not warn
                // that it was leased from before run() (as `ship` does, withClients).
                try await reach(connection, within: seconds, logger: logger) { try await witness.ping() }
                return try await body(witness)
            }
            defer { group.cancelAll() }
            while let next = try await group.next() {
                if let result = next { return result }
            }
            throw AuditError(.storage, "the connection to the witness \(connection) ended")
        }
    }
}

/// Parses `15m`, `90s`, `2h`, `1d` (a positive integer and one unit).

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every store's published checkpoints and consistency proofs (connect as a member of auditdb_auditor).")

    @OptionGroup var witness: WitnessOption

    @Option(name: .long, help: "Report a store as silent after this long without a checkpoint (e.g. 15m, 2h, 1d).")
    var silentAfter: String?

    @Option(name: .long, help: "text or json.")
    var format: String = "text"

    @Option(name: .long, help: ArgumentHelp(
        "Keep running: sweep again this long after each sweep ends (e.g. 30s, 5m), printing each report, until SIGTERM or SIGINT (then exit 0).",
        valueName: "duration"))
    var every: String?

    @Option(name: .customLong("metrics-address"), help: ArgumentHelp(
        "With --every: serve Prometheus metrics at http://ADDRESS/metrics (e.g. 127.0.0.1:9465): findings by kind, sweeps, errors.",
        valueName: "host:port"))
    var metricsAddress: String?

    func validate() throws {
        if let every { _ = try DurationOption.parse(every, option: "--every") }
        if every == nil && metricsAddress != nil {
            throw ValidationError("--metrics-address needs --every (a long-running auditor)")
        }
        if let silentAfter { _ = try DurationOption.parse(silentAfter, option: "--silent-after") }
        guard ["text", "json"].contains(format) else { throw ValidationError("--format must be text or json") }
    }

    func run() async throws {
        let silent = try silentAfter.map { try DurationOption.parse($0, option: "--silent-after") }
        if let interval = try every.map({ try DurationOption.parse($0, option: "--every") }) {
            let json = format == "json"
            // The metrics: the auditor's own swift-metrics (FleetAuditor, docs/fleet.md) through
            // swift-prometheus, served by the endpoint `auditdb scan` uses, on a thread of its own.
            let registry = PrometheusCollectorRegistry()
            let factory = PrometheusMetricsFactory(registry: registry)
            let endpoint = try metricsAddress.map { address throws(AuditError) in
                try MetricsEndpoint(address: address, render: { registry.emitToBuffer() })
            }
            if let endpoint {
                endpoint.start()
                StandardStreams.error("serving metrics at http://\(endpoint.boundAddress)/metrics\n")
            }
            defer { endpoint?.stop() }
            try await withClients(central: witness.witness, witness: nil, timeout: witness.timeout) { witness, _ in
                let logger = Logger(label: "auditdb-fleet")
                let auditor = FleetAuditor(witness: witness, configuration: .init(silentAfter: silent, metricsFactory: endpoint == nil ? nil : factory),
                                           logger: logger)
                // The reports are also in the metrics: an auditor whose standard output is gone
                // says so once on standard error and goes on auditing.
                let reported = Mutex(false)
                let service = FleetAuditService(auditor: auditor, interval: interval) { report in
                    do {
                        try StandardStreams.output(json ? report.json + "\n" : report.text)
                    } catch {
                        if !reported.withLock({ $0 }) { StandardStreams.error("error: \(error) (the auditor goes on)\n") }
                        reported.withLock { $0 = true }
                    }
                }
                let group = ServiceGroup(configuration: .init(
                    services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
                try await group.run()
            }
            return
        }
        // A witness that stops answering mid-read ends the command with exit 2 (see `ship`).
        let watchdog = Watchdog(limit: .seconds(max(120, witness.timeout)), what: "the witness \(witness.witness.split(separator: "@").last.map(String.init) ?? "")",
                                doing: "no publication was read", outcome: "nothing was audited; run again")
        // --timeout bounds the connection, not the audit: a large witness takes minutes to read
        // and judge; the watchdog ends a read that stops getting on.
        let report = try await withClients(central: witness.witness, witness: nil, timeout: witness.timeout) { witness, _ in
            try await FleetAuditor(witness: witness, configuration: .init(silentAfter: silent), logger: Logger(label: "auditdb-fleet"))
                .audit { watchdog.tick() }
        }
        watchdog.stop()
        try writeOutput(format == "json" ? report.json + "\n" : report.text)
        if !report.isIntact { throw ExitCode(1) }
    }
}

struct InstallSchema: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install-schema",
        abstract: "Create or update the witness tables, roles, triggers and row-level security (as the witness owner).")

    @OptionGroup var witness: WitnessOption

    func run() async throws {
        try await witness.with { try await $0.installSchema() }
        try writeOutput("witness schema installed\n")
    }
}

struct Register: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register a store, the role that publishes for it and its public checkpoint keys (as the witness owner).")

    @OptionGroup var witness: WitnessOption

    @Option(name: .long, help: "The store id (32 hex digits, as `auditdb init` and `auditdb verify` print it).")
    var storeId: String

    @Option(name: .long, help: "The PostgreSQL login role of the instance (a member of auditdb_publisher).")
    var publisher: String

    @Option(name: .long, help: "The store's public checkpoint key file.")
    var publicKey: String

    @Option(name: .long, help: "A name for reports.")
    var label: String = ""

    func validate() throws {
        // Here, not in run(): the error then shows this command's usage, not the root's.
        guard StoreID(hex: storeId) != nil else { throw ValidationError("--store-id must be 32 hex digits, the id `auditdb init` printed") }
    }

    func run() async throws {
        guard let bytes = StoreID(hex: storeId) else { throw ValidationError("--store-id must be 32 hex digits, the id `auditdb init` printed") }
        let keys = try CheckpointPublicKeys.load(path: publicKey)
        let (publisher, label) = (self.publisher, self.label)
        try await witness.with { try await $0.register(store: bytes, publisher: publisher, publicKeys: keys, label: label) }
        try writeOutput("registered store \(bytes) for role \(FleetReport.escapedForOutput(publisher))\n")
    }
}

/// Writes `text` to standard output; a failure (a full disk, a closed pipe) is an ``AuditError``
/// saying that what the command committed stays (StandardStreams).
func writeOutput(_ text: String) throws {
    do {
        try StandardStreams.output(text)
    } catch {
        throw AuditError(.storage, error.description)
    }
}
