import AuditDB
import Foundation
import FoundationNetworking
import Synchronization
import Testing

/// `auditdb scan --every … --metrics-address`: the real process, scraped over HTTP by a real
/// client, before and after a real tamper.
@Suite("auditdb scan --metrics-address")
struct ScanMetricsTests {
    @Test("serves Prometheus text, counts a finding by kind after a tamper, 404 elsewhere")
    func scrapeBeforeAndAfterATamper() async throws {
        let dir = try TempDir()
        let db = dir.path("audit.db"), keyFile = dir.path("audit.keys")
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: db, keys: keys, count: 20)

        let (process, base, stdoutText) = try await Self.startScanner(
            ["scan", "--store", db, "--key-file", keyFile, "--every", "1s", "--full", "--metrics-address", "127.0.0.1:0"])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // An intact full pass: counted, and the time since it is served.
        let first = try await Self.waitFor("an intact pass in /metrics") { () -> String? in
            let text = try await Self.scrape(base + "/metrics").text
            return (Self.value("auditdb_scan_passes_total", in: text) ?? 0) >= 1 ? text : nil
        }
        #expect(Self.value("auditdb_scan_findings_total", in: first) == 0)
        #expect((Self.value("auditdb_scan_rows_verified_total", in: first) ?? 0) >= 20)
        #expect((Self.value("auditdb_scan_seconds_since_last_intact_full_pass", in: first) ?? -1) >= 0)
        #expect((Self.value("auditdb_scan_last_intact_full_pass_timestamp_seconds", in: first) ?? 0) > 0)
        #expect(first.contains("# TYPE auditdb_scan_passes_total counter"))
        #expect(try await Self.scrape(base + "/other").status == 404)

        // Tamper: seq 5's actor, with the trigger put back so only the row changed.
        let trigger = "audit_entries_no_update"
        let original = try sqlite3Shell(db, "SELECT sql FROM sqlite_schema WHERE name = '\(trigger)';").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(original.hasPrefix("CREATE TRIGGER \(trigger)"))
        try sqlite3Must(db, "PRAGMA busy_timeout = 30000; DROP TRIGGER \(trigger); UPDATE audit_entries SET actor = 'mallory' WHERE seq = 5; \(original);")

        let after = try await Self.waitFor("a mac-mismatch finding in /metrics") { () -> String? in
            let text = try await Self.scrape(base + "/metrics").text
            return Self.value("auditdb_scan_findings_by_kind_total{kind=\"mac-mismatch\"}", in: text) != nil ? text : nil
        }
        #expect((Self.value("auditdb_scan_findings_by_kind_total{kind=\"mac-mismatch\"}", in: after) ?? 0) >= 1)
        #expect((Self.value("auditdb_scan_findings_total", in: after) ?? 0) >= 1)
        #expect(!after.contains("kind=\"schema-tampered\""))

        kill(process.processIdentifier, SIGTERM)
        _ = try await Self.waitFor("the scanner to stop") { process.isRunning ? nil : true }
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 1, "the last pass found the tamper; stdout: \(stdoutText.withLock { $0 })")
        #expect(stdoutText.withLock { $0 }.contains("mac-mismatch at seq 5"))
    }

    @Test("a client that trickles its request a byte at a time neither holds the endpoint nor keeps a scrape waiting")
    func slowClientDoesNotBlockScrapes() async throws {
        let dir = try TempDir()
        let db = dir.path("audit.db"), keyFile = dir.path("audit.keys")
        let keys = try KeyFile.generate(at: keyFile)
        try await makeStore(at: db, keys: keys, count: 3)
        let (process, base, _) = try await Self.startScanner(
            ["scan", "--store", db, "--key-file", keyFile, "--every", "1h", "--metrics-address", "127.0.0.1:0"])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        // Two clients that send one byte every half second for two minutes: each read used to
        // wait up to 5 s, so they held the only connection for as long as they kept sending.
        let port = try #require(base.split(separator: ":").last.map(String.init))
        let tricklers = try (0..<2).map { _ in
            let trickler = TestProcess()
            trickler.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            trickler.arguments = ["python3", "-c", "import socket, time\ns = socket.create_connection(('127.0.0.1', \(port)))\nfor _ in range(240):\n    s.send(b'G')\n    time.sleep(0.5)"]
            trickler.standardError = FileHandle.nullDevice
            try trickler.run()
            return trickler
        }
        defer { for trickler in tricklers where trickler.isRunning { kill(trickler.processIdentifier, SIGKILL) } }
        try await Task.sleep(for: .seconds(1))
        var request = URLRequest(url: try #require(URL(string: base + "/metrics")))
        request.timeoutInterval = 30
        let (data, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        #expect(String(decoding: data, as: UTF8.self).contains("auditdb_scan_passes_total"))
        kill(process.processIdentifier, SIGTERM)
        _ = try await Self.waitFor("the scanner to stop") { process.isRunning ? nil : true }
    }

    /// Starts `auditdb ARGUMENTS` (a scanner serving metrics) and returns it, the base URL it
    /// announces on standard error (port 0: the system's choice), and its standard output.
    static func startScanner(_ arguments: [String]) async throws -> (TestProcess, base: String, stdout: CollectedText) {
        let process = TestProcess()
        process.executableURL = URL(fileURLWithPath: try cliPath())
        process.arguments = arguments
        process.environment = environmentWithoutAuditDBOptions()
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stderrText = drain(err), stdoutText = drain(out)
        do {
            let base = try await waitFor("the metrics address") { () -> String? in
                guard let line = stderrText.withLock({ $0 }).split(separator: "\n").first(where: { $0.contains("serving metrics at ") }),
                      let url = line.split(separator: " ").last?.replacingOccurrences(of: "/metrics", with: "")
                else { return nil }
                return String(url)
            } orFail: { "stderr: \(stderrText.withLock { $0 }) / running: \(process.isRunning)" }
            return (process, base, stdoutText)
        } catch {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            throw error
        }
    }

    /// The value of the sample `series` (a name, or a name with its labels) in Prometheus text.
    static func value(_ series: String, in text: String) -> Double? {
        for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
            return line.split(separator: " ").last.flatMap { Double($0) }
        }
        return nil
    }

    static func scrape(_ url: String) async throws -> (status: Int, text: String) {
        let (data, response) = try await URLSession.shared.data(from: try #require(URL(string: url)))
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    /// Polls `probe` every 100 ms until it returns a value (at most 120 s).
    static func waitFor<T>(_ what: String, _ probe: () async throws -> T?,
                           orFail explain: () -> String = { "" }) async throws -> T
    {
        for _ in 0..<1_200 {
            if let value = try await probe() { return value }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("timed out waiting for \(what) \(explain())")
    }

    /// Collects a pipe's output on a thread of its own (a full pipe would block the child).
    static func drain(_ pipe: Pipe) -> CollectedText {
        let collected = CollectedText()
        let handle = pipe.fileHandleForReading
        Thread.detachNewThread {
            while true {
                let data = handle.availableData
                if data.isEmpty { return }
                collected.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
        return collected
    }
}

/// Text a child process wrote, collected so far.
final class CollectedText: Sendable {
    let text = Mutex("")
    func withLock<R>(_ body: (inout String) -> R) -> R { text.withLock { body(&$0) } }
}
