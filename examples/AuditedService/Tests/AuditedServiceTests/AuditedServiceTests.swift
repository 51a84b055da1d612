import AuditDB
import Foundation
import FoundationNetworking
import Testing

/// The example app run for real: the built binary on a loopback port, many concurrent HTTP
/// clients (some denied), SIGTERM, then the store is opened and verified, and every request is
/// found in it exactly once.
@Suite struct AuditedServiceTests {
    /// One request a client makes, and the answer it expects.
    struct Call: Sendable {
        var method: String
        var path: String
        var token: String?
        var body: String?
        var expectedStatus: Int
        var expectedActor: String
        var expectedOutcome: AuditOutcome
    }

    static let aliceToken = "alice-token-0123456789abcdef"
    static let bobToken = "bob-token-0123456789abcdef01"

    /// A store, its keys, a checkpoint key, a tokens file (mode 0600) and an anchor directory in a
    /// temporary folder, and the environment that starts the service on them.
    struct Fixture {
        let directory: TemporaryFolder
        let storePath: String
        let keys: KeyRing
        let anchors: String
        var environment: [String: String]

        init() async throws {
            directory = try TemporaryFolder()
            storePath = directory.path("audit.db")
            let keyPath = directory.path("audit.keys")
            anchors = directory.path("anchors")
            try FileManager.default.createDirectory(atPath: anchors, withIntermediateDirectories: false)
            keys = try KeyFile.generate(at: keyPath)
            try CheckpointSigner([CheckpointSigningKey.generate(version: 1)]).write(to: directory.path("ckpt.key"), replacing: false)
            try "alice admin \(AuditedServiceTests.aliceToken)\nbob user \(AuditedServiceTests.bobToken)\n"
                .write(toFile: directory.path("tokens"), atomically: false, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: directory.path("tokens"))
            let created = try await AuditStore.create(at: storePath, keys: keys)
            try await created.close()
            environment = ProcessInfo.processInfo.environment
            for name in ["AUDITDB_KEYS", "AUDITDB_STORE_ID", "AUDITDB_BUSY_TIMEOUT"] { environment.removeValue(forKey: name) }
            environment["AUDITDB_STORE"] = storePath
            environment["AUDITDB_KEY_FILE"] = keyPath
            environment["AUDITED_SERVICE_ADDRESS"] = "127.0.0.1:0"
            environment["AUDITED_SERVICE_TOKENS_FILE"] = directory.path("tokens")
            environment["AUDITED_SERVICE_CHECKPOINT_KEY"] = directory.path("ckpt.key")
            environment["AUDITED_SERVICE_ANCHOR_DIR"] = anchors
            environment["AUDITED_SERVICE_SCAN_SECONDS"] = "1"
        }

        func start() async throws -> ServiceProcess {
            try await ServiceProcess(executable: try builtProduct("AuditedService"), environment: environment)
        }
    }

    @Test func everyRequestIsRecordedOnceAndTheStoreVerifies() async throws {
        let fixture = try await Fixture()
        let storePath = fixture.storePath, keys = fixture.keys, anchors = fixture.anchors
        let service = try await fixture.start()
        let base = "http://127.0.0.1:\(service.port)"
        let session = URLSession(configuration: .ephemeral)

        // 16 clients at once, each creating, reading, failing to delete (bob is no admin),
        // reading without a token, deleting as alice, and hitting an unknown route.
        let clients = 16, rounds = 3
        let sent = try await withThrowingTaskGroup(of: [(String, Call)].self) { group in
            for client in 0..<clients {
                group.addTask {
                    var sent: [(String, Call)] = []
                    for round in 0..<rounds {
                        let owner = client % 2 == 0 ? Self.aliceToken : Self.bobToken
                        let ownerName = client % 2 == 0 ? "alice" : "bob"
                        let create = Call(method: "POST", path: "/documents", token: owner, body: "note \(client).\(round)",
                                          expectedStatus: 201, expectedActor: ownerName, expectedOutcome: .success)
                        let (id, body) = try await Self.send(create, to: base, session: session, requestID: "c\(client)-r\(round)-create")
                        sent.append((id, create))
                        let doc = "/documents/" + body
                        let calls = [
                            Call(method: "GET", path: doc, token: Self.bobToken, expectedStatus: 200, expectedActor: "bob", expectedOutcome: .success),
                            Call(method: "DELETE", path: doc, token: Self.bobToken, expectedStatus: 403, expectedActor: "bob", expectedOutcome: .denied),
                            Call(method: "GET", path: doc, token: nil, expectedStatus: 401, expectedActor: "anonymous", expectedOutcome: .denied),
                            Call(method: "GET", path: doc, token: "wrong-token-0123456789abcdef", expectedStatus: 401, expectedActor: "anonymous", expectedOutcome: .denied),
                            Call(method: "DELETE", path: doc, token: Self.aliceToken, expectedStatus: 204, expectedActor: "alice", expectedOutcome: .success),
                            Call(method: "GET", path: doc, token: Self.aliceToken, expectedStatus: 404, expectedActor: "alice", expectedOutcome: .failure),
                            Call(method: "GET", path: "/no-such-route", token: nil, expectedStatus: 404, expectedActor: "anonymous", expectedOutcome: .failure),
                        ]
                        for (index, call) in calls.enumerated() {
                            // One request in each round carries no id: the service makes one and echoes it.
                            let requestID = index == 2 ? nil : "c\(client)-r\(round)-\(index)"
                            let (echoed, _) = try await Self.send(call, to: base, session: session, requestID: requestID)
                            sent.append((echoed, call))
                        }
                    }
                    return sent
                }
            }
            var all: [(String, Call)] = []
            for try await part in group { all += part }
            return all
        }
        #expect(sent.count == clients * rounds * 8)

        // Probes answer from memory and are not audited.
        let (healthData, health) = try await session.data(from: URL(string: base + "/health")!)
        #expect((health as? HTTPURLResponse)?.statusCode == 200)
        let healthText = String(decoding: healthData, as: UTF8.self)
        #expect(healthText.contains("\"status\":\"intact\"") || healthText.contains("\"status\":\"pending\""), "\(healthText)")
        let (metricsData, _) = try await session.data(from: URL(string: base + "/metrics")!)
        let metrics = String(decoding: metricsData, as: UTF8.self)
        let appended = metrics.split(separator: "\n").first { $0.hasPrefix("auditdb_appended_entries_total ") }
            .flatMap { Double($0.split(separator: " ")[1]) }
        #expect((appended ?? 0) >= Double(sent.count), "AuditDB's own metric in /metrics:\n\(metrics)")

        let status = try await service.terminate()
        #expect(status == 0, "service log:\n\(service.log)")
        #expect(service.log.contains("shut down cleanly"))

        // The store: intact, and each request in it exactly once, as the client saw it.
        let store = try await AuditStore.open(at: storePath, keys: keys)
        let report = try await store.verify()
        #expect(report.isIntact, "\(report)")
        var byRequest: [String: [AuditEntry]] = [:]
        for try await entry in store.stream(EntryQuery()) {
            if let id = entry.correlationId { byRequest[id, default: []].append(entry) }
        }
        try await store.close()
        #expect(byRequest.count == sent.count)
        for (requestID, call) in sent {
            let entries = byRequest[requestID] ?? []
            #expect(entries.count == 1, "request \(requestID) (\(call.method) \(call.path)) is in the store \(entries.count) times")
            guard let entry = entries.first else { continue }
            #expect(entry.actor == call.expectedActor, "\(requestID)")
            #expect(entry.outcome == call.expectedOutcome, "\(requestID)")
            // A created document's event names it (the id is in the answer, not the path).
            if call.method == "POST" { #expect(entry.resourceId?.hasPrefix("doc-") == true, "\(requestID): \(entry.resourceId ?? "nil")") }
            #expect(entry.severity == (call.method == "GET" ? .info : .critical), "\(requestID)")
            #expect(entry.action.hasPrefix(call.method + " "), "\(requestID): \(entry.action)")
        }
        #expect(byRequest.values.contains { $0.first?.action == "GET /documents/{id}" })
        #expect(byRequest.values.contains { $0.first?.action == "GET NotFound" })
        // The checkpoint service anchored at least its shutdown checkpoint.
        #expect(try !FileManager.default.contentsOfDirectory(atPath: anchors).isEmpty)
    }

    @Test func whenTheEventCannotBeRecordedTheCallerGets503AndNothingChanges() async throws {
        var fixture = try await Fixture()
        fixture.environment["AUDITDB_BUSY_TIMEOUT"] = "1"
        // One scan pass, at start: /health then speaks of the appends alone.
        fixture.environment["AUDITED_SERVICE_SCAN_SECONDS"] = "3600"
        let service = try await fixture.start()
        let base = "http://127.0.0.1:\(service.port)"
        let session = URLSession(configuration: .ephemeral)
        let create = Call(method: "POST", path: "/documents", token: Self.aliceToken, body: "kept", expectedStatus: 201,
                          expectedActor: "alice", expectedOutcome: .success)
        let (_, kept) = try await Self.send(create, to: base, session: session, requestID: "before")
        // Another process holds the store's write lock for longer than the busy timeout.
        let lock = try SQLiteLock(fixture.storePath)
        var unaudited = create
        unaudited.body = "never"
        unaudited.expectedStatus = 503
        _ = try await Self.send(unaudited, to: base, session: session, requestID: "refused-create")
        let delete = Call(method: "DELETE", path: "/documents/" + kept, token: Self.aliceToken, expectedStatus: 503,
                          expectedActor: "alice", expectedOutcome: .success)
        _ = try await Self.send(delete, to: base, session: session, requestID: "refused-delete")
        // While requests are refused, /health says so (a load balancer stops sending them).
        let (failingData, failing) = try await session.data(from: URL(string: base + "/health")!)
        #expect((failing as? HTTPURLResponse)?.statusCode == 503)
        #expect(String(decoding: failingData, as: UTF8.self).hasPrefix("{\"status\":\"appends-failing\",\"appendsFailing\":true,"),
                "\(String(decoding: failingData, as: UTF8.self))")
        try lock.release()
        // The document the refused DELETE named is still there; the refused POST's id (doc-2) was never created.
        let read = Call(method: "GET", path: "/documents/" + kept, token: Self.bobToken, expectedStatus: 200,
                        expectedActor: "bob", expectedOutcome: .success)
        let (_, text) = try await Self.send(read, to: base, session: session, requestID: "after-read")
        #expect(text == "kept")
        let (healthyData, healthy) = try await session.data(from: URL(string: base + "/health")!)
        #expect((healthy as? HTTPURLResponse)?.statusCode == 200, "\(String(decoding: healthyData, as: UTF8.self))")
        var missing = read
        missing.path = "/documents/doc-2"
        missing.expectedStatus = 404
        _ = try await Self.send(missing, to: base, session: session, requestID: "after-missing")
        #expect(try await service.terminate() == 0, "service log:\n\(service.log)")
        #expect(service.log.contains("audit event not recorded; the request's changes are cancelled"))
        let store = try await AuditStore.open(at: fixture.storePath, keys: fixture.keys)
        var recorded: [String] = []
        for try await entry in store.stream(EntryQuery()) { if let id = entry.correlationId { recorded.append(id) } }
        #expect(try await store.verify().isIntact)
        try await store.close()
        #expect(recorded == ["before", "after-read", "after-missing"])
    }

    @Test func startUpRefusesAnUnsafeTokensFileAndAMissingAnchorDirectory() async throws {
        var fixture = try await Fixture()
        let tokens = fixture.directory.path("tokens")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: tokens)
        await #expect { _ = try await fixture.start() } throws: { error in
            "\(error)".contains("has mode 644: its tokens are secrets") && "\(error)".contains("chmod 600")
        }
        // Each tokens file is refused at start with the reason.
        let refused: [(String, String)] = [
            ("alice admin \(Self.aliceToken)\nanonymous user \(Self.bobToken)\n", "line 2: `anonymous` is the actor of callers without a valid token"),
            ("al\u{1}ice admin \(Self.aliceToken)\n", "line 1: the actor is not a valid audit actor"),
            ("alice admin \(Self.aliceToken)\r\nbob user \(Self.aliceToken)\r\n", "line 2: this token is already listed on an earlier line"),
        ]
        for (contents, reason) in refused {
            try contents.write(toFile: tokens, atomically: false, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tokens)
            await #expect { _ = try await fixture.start() } throws: { error in "\(error)".contains(reason) }
        }
        try "alice admin \(Self.aliceToken)\r\n".write(toFile: tokens, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: tokens)
        fixture.environment["AUDITED_SERVICE_ANCHOR_DIR"] = fixture.directory.path("no-such-dir")
        await #expect { _ = try await fixture.start() } throws: { error in
            "\(error)".contains("AUDITED_SERVICE_ANCHOR_DIR \(fixture.directory.path("no-such-dir")) does not exist")
        }
        // A CRLF tokens file reads as an LF one, and the scheme name is case-insensitive.
        fixture.environment["AUDITED_SERVICE_ANCHOR_DIR"] = fixture.anchors
        let service = try await fixture.start()
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(service.port)/documents")!)
        request.httpMethod = "POST"
        request.setValue("bearer \(Self.aliceToken)", forHTTPHeaderField: "Authorization")
        request.httpBody = Data("crlf".utf8)
        let (_, response) = try await URLSession(configuration: .ephemeral).data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 201)
        // The anchor directory gone before shutdown (an unmounted volume): the shutdown checkpoint
        // fails rather than anchor on the local disk, and the service exits 2.
        try FileManager.default.moveItem(atPath: fixture.anchors, toPath: fixture.anchors + ".gone")
        #expect(try await service.terminate() == 2, "service log:\n\(service.log)")
        #expect(service.log.contains("does not exist (an unmounted volume?)"), "\(service.log)")
        #expect(!FileManager.default.fileExists(atPath: fixture.anchors))
    }

    /// Sends `call`, checks the status and the echoed request id; returns that id and the body.
    static func send(_ call: Call, to base: String, session: URLSession, requestID: String?) async throws -> (String, String) {
        var request = URLRequest(url: URL(string: base + call.path)!)
        request.httpMethod = call.method
        if let token = call.token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let requestID { request.setValue(requestID, forHTTPHeaderField: "X-Request-ID") }
        if let body = call.body { request.httpBody = Data(body.utf8) }
        let (data, response) = try await session.data(for: request)
        let http = try #require(response as? HTTPURLResponse)
        #expect(http.statusCode == call.expectedStatus, "\(call.method) \(call.path)")
        let echoed = try #require(http.value(forHTTPHeaderField: "X-Request-ID"))
        if let requestID { #expect(echoed == requestID) }
        return (echoed, String(decoding: data, as: UTF8.self))
    }
}

/// A temporary directory, removed when the value is released.
final class TemporaryFolder: Sendable {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("audited-service-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o700])
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit { try? FileManager.default.removeItem(at: url) }
}
