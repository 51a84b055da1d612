import AuditDB
import AuditDBTestSupport
import Foundation
import MetricsTestKit
import Testing

/// Rows an earlier pass verified, cut from the tail and appended to again: the log is consistent
/// afterwards, so only the scanner's memory of its position shows the loss. (Found by a probe of
/// the example app, 2026-12-07: /health went back to "intact", and the shutdown checkpoint
/// signed the shortened log.)
@Suite("Scanner: lost rows stay reported")
struct LostRowsTests {
    let dir: TemporaryDirectory
    init() throws { dir = try TemporaryDirectory() }

    @Test("a tail cut and appended to again: every later pass, full ones too, reports the lost rows; no checkpoint is made meanwhile")
    func cutAndRegrown() async throws {
        let path = dir.path("store.db"), keys = try testKeyRing()
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...6).map { sampleEvent($0) })
        let scanner = IntegrityScanner(store: store)
        let first = try await scanner.scan(.full)
        #expect(first.integrity.isIntact && first.recordSeq == 7)

        // Rows 5, 6 and the scan record 7 deleted by another client; the app appends on.
        try sqlite3Tamper(path, "DELETE FROM audit_entries WHERE seq >= 5;", around: "audit_entries_no_delete")
        try await store.append(contentsOf: (7...9).map { sampleEvent($0) })
        #expect(try await store.verify().isIntact)  // consistent again: only the scanner can tell

        let found = try await scanner.scan(.incremental)
        #expect(found.integrity.firstFinding?.kind == .macMismatch && found.integrity.firstFinding?.seqs == 6...6,
                "\(found.integrity)")
        let lost = try #require(scanner.lostRowsFinding)
        #expect(lost.kind == .macMismatch && lost.seqs == 6...6)
        #expect(lost.message.contains("row 6 is not the row an earlier pass verified") && lost.message.contains("restart the scanner"))

        // Later passes, a full one too, find nothing in the file, yet report the loss.
        for mode in [ScanMode.full, .incremental, .full] {
            let later = try await scanner.scan(mode)
            #expect(!later.integrity.isIntact && later.integrity.findings == [lost] && later.integrity.totalFindings == 1,
                    "\(mode): \(later.integrity)")
            #expect(scanner.status.lastResult == .findings && scanner.status.lastFindingsCount == 1)
            #expect(later.recordSeq != nil)  // recorded as a pass with findings
        }

        // A checkpoint service beside the scanner makes no checkpoint while it reports damage.
        let metrics = TestMetrics()
        var configuration = CheckpointService.Configuration(interval: .milliseconds(10), rows: 1, pollInterval: .milliseconds(10),
                                                            metricsFactory: metrics)
        configuration.scanner = scanner
        let service = CheckpointService(store: store, signer: try testSigner(), configuration: configuration)
        let running = Task { try await service.run() }
        // The service reaches a due checkpoint and refuses it: counted once, however long it waits.
        for _ in 0..<1_000 where (try? metrics.expectCounter("auditdb_checkpoint_errors_total").totalValue) != 1 {
            try await Task.sleep(for: .milliseconds(10))
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(try metrics.expectCounter("auditdb_checkpoint_errors_total").totalValue == 1)
        running.cancel()
        try await running.value
        #expect(try await store.checkpoints().isEmpty)
        try await store.close()

        // A scanner started afresh (after the operator dealt with it) starts from the file: its
        // first pass runs full (the newest record found damage) and is intact.
        let reopened = try await AuditStore.open(at: path, keys: keys)
        let fresh = IntegrityScanner(store: reopened)
        let pass = try await fresh.scan(.incremental)
        #expect(pass.mode == .full && pass.integrity.isIntact && fresh.lostRowsFinding == nil, "\(pass.integrity)")
        try await reopened.close()
    }
}
