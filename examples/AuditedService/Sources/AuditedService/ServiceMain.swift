import AuditDB
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import UnixSignals

/// Starts the service: one `ServiceGroup` holding the audit store, its integrity scanner, its
/// checkpoint service and the HTTP server, shut down gracefully on SIGTERM or SIGINT.
///
/// A `ServiceGroup` stops its services in reverse order: the HTTP server first (it stops
/// accepting and finishes the requests in flight, each of which records its event), then the
/// checkpoint service (a last checkpoint, anchored), then the scanner (a pass in progress is
/// abandoned), and the store last (buffered events are written and fsync'd, then it closes).
/// Exit status 0 after a clean shutdown, 2 when start-up or shutdown fails.
@main
enum ServiceMain {
    static func main() async {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "audited-service")
        do {
            try await run(logger: logger)
        } catch {
            logger.critical("stopped", metadata: ["error": "\(error)"])
            exit(2)
        }
    }

    static func run(logger: Logger) async throws {
        let settings = try Settings.fromEnvironment()
        // Before anything makes a metric: AuditDB's own metrics (appends, commits, scans,
        // checkpoints) then go to this registry, which /metrics serves.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))

        var storeConfiguration = AuditStore.Configuration()
        // Reads are committed, not fsync'd one by one; `critical` events (every request that
        // changes state) are fsync'd before append returns, and close() flushes the rest.
        storeConfiguration.durability = .relaxed
        storeConfiguration.logger = logger
        storeConfiguration.expectedStoreID = settings.expectedStoreID
        if let busyTimeout = settings.busyTimeout { storeConfiguration.busyTimeout = busyTimeout }
        storeConfiguration.checkpointPublicKeys = settings.checkpointSigner.publicKeys
        let store = try await AuditStore.open(at: settings.storePath, keys: settings.keys, configuration: storeConfiguration)

        // Incremental passes check the rows appended since the last one; a row edited below them
        // is found by the next full pass (AUDITED_SERVICE_FULL_SCAN_SECONDS, default daily).
        let scanner = IntegrityScanner(store: store, configuration: .init(interval: settings.scanInterval,
                                                                          fullPassInterval: settings.fullScanInterval))
        // No checkpoint while the scanner reports damage: it would sign over it (e.g. rows cut from
        // the tail and appended to again), and the anchors would vouch for the damaged log.
        var checkpointing = CheckpointService.Configuration(interval: settings.checkpointInterval)
        checkpointing.scanner = scanner
        let checkpoints = CheckpointService(
            store: store, signer: settings.checkpointSigner, anchors: [DirectoryAnchor(path: settings.anchorDirectory, createsDirectory: false)],
            configuration: checkpointing)

        let router = Router(context: ServiceRequestContext.self)
        // Probes first: routes added before the audit middleware are not audited (a health check
        // every second would bury the log), and they do no database work.
        let appends = AppendHealth()
        router.get("/health") { _, _ -> Response in HealthReport(scanner.status, appendsFailing: appends.isFailing).response() }
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.add(middleware: AuditMiddleware(store: store, tokens: settings.tokens, logger: logger, appends: appends))
        DocumentLibrary().addRoutes(to: router)

        // A connection idle for 30 s is closed, and at most 512 are served at once (more wait in
        // the backlog): held-open connections must not use up the process's descriptors, which
        // the store, its checkpoints and anchors need too.
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .seconds(30))),
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "AuditedService",
                                 availableConnectionsDelegate: MaximumAvailableConnections(512)),
            onServerRunning: { channel in
                // The bound port (the one asked for, or the system's choice for port 0).
                let port = channel.localAddress?.port ?? settings.port
                FileHandle.standardOutput.write(Data("listening on \(settings.host):\(port)\n".utf8))
            },
            logger: logger)

        let group = ServiceGroup(configuration: .init(
            services: [.init(service: store), .init(service: scanner), .init(service: checkpoints), .init(service: app)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        logger.info("shut down cleanly")
    }
}

/// `/health`: the scanner's last result, from memory (no database work). 200 while the last
/// pass was intact or none has finished yet (`pending`: the first full pass of a big store can
/// take minutes); 503 when a pass found damage or could not run, or (`appends-failing`) while
/// the last audited request could not be recorded and was answered 503.
struct HealthReport {
    let status: ScanStatus
    let appendsFailing: Bool

    init(_ status: ScanStatus, appendsFailing: Bool = false) {
        self.status = status
        self.appendsFailing = appendsFailing
    }

    func response() -> Response {
        var (word, code): (String, HTTPResponse.Status) = switch status.lastResult {
        case .intact: ("intact", .ok)
        case .never: ("pending", .ok)
        case .findings: ("findings", .serviceUnavailable)
        case .failed: ("failed", .serviceUnavailable)
        }
        if appendsFailing, code == .ok { (word, code) = ("appends-failing", .serviceUnavailable) }
        let lastPass = status.lastPassAt.map { "\"\($0.iso8601)\"" } ?? "null"
        let json = "{\"status\":\"\(word)\",\"appendsFailing\":\(appendsFailing),\"passes\":\(status.passes),\"lastPassAt\":\(lastPass),"
            + "\"verifiedThroughSeq\":\(status.verifiedThroughSeq),\"findings\":\(status.lastFindingsCount)}"
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: code, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}
