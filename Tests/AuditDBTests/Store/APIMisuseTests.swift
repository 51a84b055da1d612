import AuditDB
import AuditDBTestSupport
import Foundation
import Synchronization
import Testing

/// What an app can hand the library by mistake: values at the edges of their types, a closed
/// store, a cancelled task, strings that Swift calls equal but bytes do not. Each gets a typed
/// error or a defined value, never a trap. (Found by a probe of the public API, 2026-12-07.)
@Suite("Library API misuse: edges of types, a closed store, cancellation")
struct APIMisuseTests {
    let dir: TemporaryDirectory
    init() throws { dir = try TemporaryDirectory() }

    @Test("a busy timeout of 30 days or of Duration's largest opens and appends (SQLite's wait is capped at ~24.8 days)")
    func hugeBusyTimeout() async throws {
        for (name, wait) in [("month", Duration.seconds(30 * 86_400)), ("max", Duration.seconds(Int64.max)), ("negative", Duration.seconds(-5))] {
            var configuration = AuditStore.Configuration()
            configuration.busyTimeout = wait
            let keys = try testKeyRing()
            let store = try await AuditStore.create(at: dir.path("\(name).db"), keys: keys, configuration: configuration)
            #expect(try await store.append(AuditEvent(actor: "u", action: "a")) == 1)
            try await store.close()
            let again = try await AuditStore.open(at: dir.path("\(name).db"), keys: keys, configuration: configuration)
            #expect(try await again.verify().isIntact)
            try await again.close()
        }
    }

    @Test("a Date no Int64 of microseconds holds becomes a timestamp outside the supported range, and an event carrying it is refused")
    func datesOutsideInt64() async throws {
        let cases: [(Date, Int64)] = [
            (Date(timeIntervalSince1970: .nan), .min), (Date(timeIntervalSince1970: .infinity), .max),
            (Date(timeIntervalSince1970: -.infinity), .min), (Date(timeIntervalSince1970: 1e300), .max),
            (Date(timeIntervalSince1970: -1e300), .min),
        ]
        for (date, expected) in cases {
            let timestamp = AuditTimestamp(date)
            #expect(timestamp.microsecondsSinceEpoch == expected, "\(date.timeIntervalSince1970)")
            #expect(!timestamp.isInSupportedRange)
        }
        #expect(AuditTimestamp(Date(timeIntervalSince1970: 1.5)).microsecondsSinceEpoch == 1_500_000)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        await #expect(throws: AuditError.self) {
            try await store.append(AuditEvent(actor: "u", action: "a", occurredAt: AuditTimestamp(Date(timeIntervalSince1970: .nan))))
        }
        #expect(try await store.lastSeq() == 0)
        try await store.close()
    }

    @Test("time differences far outside the supported range saturate: scan status and the compliance report do not trap")
    func extremeTimeDifferences() async throws {
        let far = AuditTimestamp(microsecondsSinceEpoch: .min)
        #expect(AuditTimestamp(microsecondsSinceEpoch: .max).microseconds(since: far) == .max)
        #expect(far.microseconds(since: AuditTimestamp(microsecondsSinceEpoch: 1)) == .min)
        #expect(AuditTimestamp(microsecondsSinceEpoch: 10).microseconds(since: AuditTimestamp(microsecondsSinceEpoch: 3)) == 7)

        let key = try AuditKey.generate(version: 1, createdAt: far)
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try KeyRing([key]))
        try await store.append(AuditEvent(actor: "u", action: "a"))
        let scanner = IntegrityScanner(store: store)
        _ = try await scanner.scan(.full)
        #expect(scanner.status.timeSinceLastFullPass(now: far) == .microseconds(Int64.min))

        let report = try await store.complianceReport(signer: try testSigner())
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.json)) as? [String: Any])
        let keys = try #require((json["keys"] as? [String: Any])?["versions"] as? [[String: Any]])
        #expect(keys.first?["ageDays"] as? Int == Int(Int64.max / 86_400_000_000))
        #expect(keys.first?["tooOld"] as? Bool == true)
        var options = ComplianceReportOptions()
        options.now = far
        let early = try await store.complianceReport(signer: try testSigner(), options: options)
        let earlyJSON = try #require(try JSONSerialization.jsonObject(with: Data(early.json)) as? [String: Any])
        let earlyKeys = try #require((earlyJSON["keys"] as? [String: Any])?["versions"] as? [[String: Any]])
        #expect(earlyKeys.first?["ageDays"] as? Int == 0)
        try await store.close()
    }

    @Test("follow with a poll interval of Duration's largest waits once caught up, and ends when cancelled")
    func followWithHugePollInterval() async throws {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        try await store.append(contentsOf: (1...3).map { sampleEvent($0) })
        final class Seen: Sendable { let count = Mutex(0) }
        let seen = Seen()
        let task = Task {
            do {
                for try await _ in store.follow(after: 0, pollInterval: .seconds(Int64.max)) { seen.count.withLock { $0 += 1 } }
            } catch {}
        }
        // Caught up (all three read; a loaded machine may take a while), then asleep.
        while seen.count.withLock({ $0 }) < 3 { try await Task.sleep(for: .milliseconds(20)) }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        await task.value
        #expect(seen.count.withLock { $0 } == 3)
        try await store.close()
    }

    @Test("after close, reads, verification and engine entries fail with closed, not a storage fault")
    func useAfterClose() async throws {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        try await store.append(contentsOf: (1...5).map { sampleEvent($0) })
        try await store.close()
        func code(_ body: () async throws -> Void) async -> AuditError.Code? {
            do {
                try await body()
                return nil
            } catch let error as AuditError {
                return error.code
            } catch {
                return nil
            }
        }
        #expect(await code { _ = try await store.entries() } == .closed)
        #expect(await code { _ = try await store.lastSeq() } == .closed)
        #expect(await code { _ = try await store.verify() } == .closed)
        #expect(await code { _ = try await store.activeHolds() } == .closed)
        #expect(await code { _ = try await store.recordKeyRotation() } == .closed)
        #expect(await code { for try await _ in store.stream(EntryQuery()) {} } == .closed)
        #expect(await code { try await store.append(sampleEvent(9)) } == .closed)
    }

    @Test("an append of a large batch in a cancelled task fails with cancelled and writes nothing; the store stays usable")
    func cancelledLargeAppend() async throws {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        let events = (1...6_000).map { sampleEvent($0) }
        let task = Task { () -> AuditError.Code? in
            withUnsafeCurrentTask { $0?.cancel() }
            do {
                try await store.append(contentsOf: events)
                return nil
            } catch let error as AuditError {
                return error.code
            }
        }
        let outcome = try await task.value
        // The batch either went through whole (a small one ignores cancellation once handed
        // over) or not at all; a cancelled one says so, never "storage".
        let written = try await store.lastSeq()
        if ProcessInfo.processInfo.activeProcessorCount > 1 {
            // A batch this large on an idle store takes the path validated while written, whose
            // transaction does not begin in a cancelled task.
            #expect(outcome == .cancelled)
        }
        if let outcome {
            #expect(outcome == .cancelled)
            #expect(written == 0)
        } else {
            #expect(written == 6_000)
        }
        #expect(try await store.append(sampleEvent(1)) == written + 1)
        try await store.close()
    }

    @Test("details built from Swift doubles keep their sign and type: -0.0 and 2.0 read back as doubles")
    func doublesKeepTheirSpelling() async throws {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        let details: AuditDetails = ["z": .double(-0.0), "two": .double(2.0), "big": .double(1e15), "huge": .double(1e16), "int": .int(2), "tenth": .double(0.1)]
        let seq = try await store.append(AuditEvent(actor: "u", action: "a", details: details))
        let entry = try #require(try await store.entries(EntryQuery(afterSeq: seq - 1, limit: 1)).first)
        #expect(entry.detailsJSON == #"{"big":1000000000000000.0,"huge":1e+16,"int":2,"tenth":0.1,"two":2.0,"z":-0.0}"#)
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("a tenant-scoped handle compares tenants by bytes: é composed and decomposed are two tenants")
    func scopedTenantBytes() async throws {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
        let scoped = store.scoped(toTenant: composed)
        await #expect(throws: AuditError.self) {
            try await scoped.append(AuditEvent(actor: "x", action: "a", tenant: decomposed))
        }
        #expect(try await store.lastSeq() == 0)
        do {
            _ = try await scoped.entries(EntryQuery(tenant: decomposed))
            Issue.record("a query for the other spelling was answered")
        } catch let error as AuditError {
            #expect(error.code == .permissionDenied)
        }
        let seq = try await scoped.append(AuditEvent(actor: "x", action: "a", tenant: composed))
        let entry = try #require(try await scoped.entries().first)
        #expect(entry.seq == seq && Array(entry.tenant!.utf8) == Array(composed.utf8))
        try await store.close()
    }
}
