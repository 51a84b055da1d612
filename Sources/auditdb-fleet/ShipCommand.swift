import ArgumentParser
import AuditDB
import AuditDBCLISupport
import AuditDBPostgres
import Foundation
import Logging
import Synchronization

/// Runs `body` with one client per distinct URL (the central database and the witness are often
/// one), their pools running meanwhile. Each must answer a first query within `timeout` seconds;
/// after that the body runs as long as it needs (a shipment may take minutes).
func withClients<R: Sendable>(central: String, witness: String?, timeout: Int,
                              _ body: @Sendable @escaping (PostgresWitness, PostgresWitness) async throws -> R) async throws -> R
{
    var logger = Logger(label: "auditdb-fleet")
    logger.logLevel = ProcessInfo.processInfo.environment["AUDITDB_FLEET_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
    let centralConnection = try WitnessConnection(url: central)
    let centralClient = PostgresWitness(centralConnection, logger: logger)
    let witnessClient = try witness.map { PostgresWitness(try WitnessConnection(url: $0), logger: logger) } ?? centralClient
    let seconds = max(1, timeout)
    return try await withThrowingTaskGroup(of: R?.self) { group in
        for client in witnessClient === centralClient ? [centralClient] : [centralClient, witnessClient] {
            group.addTask {
                try await client.run()
                return nil
            }
        }
        defer { group.cancelAll() }
        for client in witnessClient === centralClient ? [centralClient] : [centralClient, witnessClient] {
            try await reach(client.connection, within: seconds, logger: logger) { try await client.ping() }
        }
        return try await body(centralClient, witnessClient)
    }
}

/// Connects once without a pool, which reports a refusal at once with its cause (a certificate
/// that fails verification as ``AuditError/Code/certificateRejected``, naming the host, the
/// sslmode and the fix), then runs `then` (e.g. a first query through the pool, which would keep
/// retrying a refused connection for ever); the whole within `seconds`, else a timeout error.
func reach(_ connection: WitnessConnection, within seconds: Int, logger: Logger,
           then: @Sendable @escaping () async throws -> Void = {}) async throws
{
    try await withThrowingTaskGroup(of: Void.self) { probe in
        probe.addTask {
            try await connection.check(logger: logger, connectTimeout: .seconds(seconds))
            try await then()
        }
        probe.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw AuditError(.storage, "\(connection) did not answer within \(seconds) s; check that it is reachable and running")
        }
        defer { probe.cancelAll() }
        try await probe.next()
    }
}

struct Ship: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ship a store's verified entries into the central table, in batches proven against checkpoints at the witness (connect as the instance's publisher role).",
        discussion: """
            Resumable and idempotent: each batch is one transaction with the store's high-water mark; run it \
            again after a crash or a lost connection and it continues after the last committed batch.

            Exits 1 when nothing could be shipped because an expired row waits for a checkpoint that \
            covers its expiry entry: pass --signing-key, or run it again after the next checkpoint; \
            and when the store file is not the one --store-id (or AUDITDB_STORE_ID) pins, as `auditdb` does.

            The keys come from --key-file, $AUDITDB_KEY_FILE or $AUDITDB_KEYS, as for `auditdb`. \
            See docs/fleet.md, "Shipping".
            """)

    @Option(name: .long, help: ArgumentHelp("The store file.", valueName: "path"))
    var store: String

    @Option(name: .customLong("key-file"), help: ArgumentHelp("The store's key file (default: $AUDITDB_KEY_FILE, else $AUDITDB_KEYS).", valueName: "path"))
    var keyFile: String?

    @Option(name: .customLong("store-id"), help: ArgumentHelp(
        "Expected store id, 32 hex digits (default: $AUDITDB_STORE_ID). Detects a store file swapped for another before anything is shipped.",
        valueName: "hex"))
    var storeID: String?

    @Option(name: .long, help: ArgumentHelp("The central database URL (postgresql://USER@HOST[:PORT]/DATABASE).", valueName: "url"))
    var to: String

    @Option(name: .long, help: ArgumentHelp("The witness database URL, if it is not the central database.", valueName: "url"))
    var witness: String?

    @Option(name: .customLong("signing-key"), help: ArgumentHelp(
        "The checkpoint signing key: make and publish a checkpoint first, so that every entry so far is shipped. Without it, the newest published checkpoint bounds the shipment.",
        valueName: "path"))
    var signingKey: String?

    @Option(name: .customLong("batch-size"), parsing: .unconditional, help: "Entries per batch (one transaction each).")
    var batchSize: Int = 10_000

    @Option(name: .long, parsing: .unconditional, help: "Batches in flight at once, each COPYing on its own connection (commits stay in seq order).")
    var connections: Int = 2

    @Option(name: .long, help: ArgumentHelp("Fields to ship as their commitment only: a comma-separated list of actor, source, details.", valueName: "fields"))
    var withhold: String?

    @Option(name: .long, parsing: .unconditional, help: "Give up when a database has not answered within this many seconds.")
    var timeout: Int = 30

    func validate() throws {
        guard (1...1_000_000).contains(batchSize) else { throw ValidationError("--batch-size must be between 1 and 1000000") }
        guard (1...16).contains(connections) else { throw ValidationError("--connections must be between 1 and 16") }
        guard (1...86_400).contains(timeout) else { throw ValidationError("--timeout must be from 1 to 86400 seconds") }
        _ = try fields()
    }

    func fields() throws -> Set<WithholdableField> {
        guard let withhold else { return [] }
        var out: Set<WithholdableField> = []
        for name in withhold.split(separator: ",", omittingEmptySubsequences: false) {
            guard let field = WithholdableField(rawValue: String(name)) else {
                throw ValidationError("--withhold takes actor, source and details, comma-separated")
            }
            out.insert(field)
        }
        return out
    }

    /// The store id `--store-id` (else `AUDITDB_STORE_ID`, when not empty) pins, as `auditdb` reads it.
    func expectedStoreID() throws -> StoreID? {
        try StoreIDPin.resolve(option: storeID, environment: ProcessInfo.processInfo.environment)
    }

    func keyRing() throws -> KeyRing {
        let environment = ProcessInfo.processInfo.environment
        if let path = keyFile ?? environment["AUDITDB_KEY_FILE"], !path.isEmpty { return try KeyFile(path: path).load() }
        if environment["AUDITDB_KEYS"] != nil { return try EnvironmentKeyProvider().load() }
        throw AuditError(.keyUnavailable, "no key given: pass --key-file PATH, set AUDITDB_KEY_FILE, or set AUDITDB_KEYS")
    }

    func run() async throws {
        let keys = try keyRing()
        let signer = try signingKey.map { path throws(AuditError) in try CheckpointSigner.load(path: path) }
        let configuration = CentralShipper.Configuration(batchSize: batchSize, withholding: try fields(), connections: connections)
        var storeConfiguration = AuditStore.Configuration()
        storeConfiguration.expectedStoreID = try expectedStoreID()
        let store = try await AuditStore.open(at: store, keys: keys, configuration: storeConfiguration)
        let summary: CentralShipper.Summary
        // A watchdog on a thread of its own: PostgresNIO 1.33.2 does not always return from a
        // query whose connection was lost (seen when the server restarted mid-shipment), and
        // then no task would ever run again. Without a committed batch for --timeout seconds the
        // command fails with exit 2 (at least 120 s: planning a large shipment reads every new row
        // first); committed batches stay, and a new run resumes after them.
        let progress = Watchdog(limit: .seconds(max(120, timeout)), what: "the central database \(to.split(separator: "@").last.map(String.init) ?? "")")
        do {
            summary = try await withClients(central: to, witness: witness, timeout: timeout) { central, witness in
                try await CentralShipper(central: central, witness: witness, configuration: configuration, logger: Logger(label: "auditdb-fleet"))
                    .ship(store, signer: signer) { _ in progress.tick() }
            }
            progress.stop()
        } catch {
            try? await store.close()  // the shipping error is what is reported
            throw error
        }
        try await store.close()
        let fix = signer == nil ? "publish a newer one: --signing-key" : "it expired meanwhile: run again"
        let held = summary.heldBackAt.map {
            "; held back from seq \($0), an expired row whose expiry entry is above the checkpoint shipped against (\(fix))"
        } ?? ""
        if summary.shipped == 0 {
            guard summary.heldBackAt == nil else {
                try writeOutput("nothing shipped: the central table holds \(summary.shippedBefore) entries of store \(summary.storeID)\(held)\n")
                throw ExitCode(1)  // rows are waiting: a scheduler must see it
            }
            try writeOutput("nothing to ship: the central table holds \(summary.shippedBefore) entries of store \(summary.storeID), up to the newest published checkpoint\n")
        } else {
            try writeOutput("shipped \(summary.shipped) entries of store \(summary.storeID) (seqs \(summary.shippedBefore + 1)...\(summary.shippedAfter)) in \(summary.batches) batch(es), proven against the checkpoint at seq \(summary.checkpoint?.seq ?? summary.shippedAfter)"
                + (summary.lateTombstones > 0 ? "; with \(summary.lateTombstones) late tombstone(s) of rows expired since they were shipped" : "") + held + "\n")
        }
    }
}

struct VerifyShipped: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-shipped",
        abstract: "Prove every shipped row against the witness with public keys only; report changed, missing and extra rows (connect as a member of auditdb_auditor).")

    @Option(name: .long, help: ArgumentHelp("The central database URL.", valueName: "url"))
    var to: String

    @Option(name: .long, help: ArgumentHelp("The witness database URL, if it is not the central database.", valueName: "url"))
    var witness: String?

    @Option(name: .customLong("store-id"), help: ArgumentHelp("Only this store (32 hex digits).", valueName: "hex"))
    var storeId: String?

    @Option(name: .long, help: "text or json.")
    var format: String = "text"

    @Option(name: .long, parsing: .unconditional, help: "Give up when a database has not answered within this many seconds.")
    var timeout: Int = 30

    func validate() throws {
        guard ["text", "json"].contains(format) else { throw ValidationError("--format must be text or json") }
        guard (1...86_400).contains(timeout) else { throw ValidationError("--timeout must be from 1 to 86400 seconds") }
        if let storeId, storeId.count != 32 || StoreID(hex: storeId) == nil {
            throw ValidationError("--store-id must be 32 hex digits")
        }
    }

    func run() async throws {
        let id = storeId.flatMap { StoreID(hex: $0) }
        // As for `ship`: a database that stops answering mid-read (PostgresNIO may then never
        // return) ends the command with exit 2, rather than a verification that never ends.
        let databases = "the central database \(to.split(separator: "@").last.map(String.init) ?? "")"
            + (witness.map { " or the witness \($0.split(separator: "@").last.map(String.init) ?? "")" } ?? "")
        let watchdog = Watchdog(limit: .seconds(max(120, timeout)), what: databases,
                                doing: "no shipped row was read", outcome: "nothing was verified; run again")
        let report = try await withClients(central: to, witness: witness, timeout: timeout) { central, witness in
            try await ShippedVerifier(central: central, witness: witness, logger: Logger(label: "auditdb-fleet"))
                .verify(storeID: id) { watchdog.tick() }
        }
        watchdog.stop()
        // A pinned store the central database knows nothing of (a mistyped id): nothing was
        // checked, which "intact: 0 store(s)" would hide from a job that watches the exit status.
        if let id, !report.stores.contains(where: { $0.storeID == id }) {
            throw AuditError(.invalidInput, "the central database holds no shipped entry or batch of store \(id): nothing was verified. Check the id (`auditdb status` prints a store's id), or ship the store first (`auditdb-fleet ship`)")
        }
        try writeOutput(format == "json" ? report.json + "\n" : report.text)
        if !report.isIntact { throw ExitCode(1) }
    }
}

/// Ends the process with exit status 2 when ``tick()`` was not called for `limit` (checked
/// every second on a dedicated thread, which a stuck cooperative pool cannot hold up).
final class Watchdog: Sendable {
    private let state: Mutex<(last: ContinuousClock.Instant, stopped: Bool)>

    /// `doing`: what stopped, for the message (e.g. "no batch was committed").
    init(limit: Duration, what: String,
         doing: String = "no batch was committed", outcome: String = "committed batches stay, run again to resume") {
        state = Mutex((ContinuousClock.now, false))
        let thread = Thread { [self] in
            while true {
                Thread.sleep(forTimeInterval: 1)
                let (last, stopped) = self.state.withLock { $0 }
                if stopped { return }
                if ContinuousClock.now - last > limit {
                    StandardStreams.error("error: \(doing) for \(limit.components.seconds) s: \(OutputEscaping.escapeForMessage(what)) stopped answering; \(outcome)\n")
                    exit(2)
                }
            }
        }
        thread.start()
    }

    func tick() { state.withLock { $0.last = ContinuousClock.now } }
    func stop() { state.withLock { $0.stopped = true } }
}
