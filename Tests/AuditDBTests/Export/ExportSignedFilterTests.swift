import Foundation
import Testing

@_spi(Testing) @testable import AuditDB

/// A statement whose signed filter the entries do not match (FORMAT.md 17.2 step 4, last check):
/// a key holder who signs a careless or false statement is caught by both verifiers, entry by
/// entry. The statements here are re-signed with the test signer over an edited filter.
@Suite("Export statements: entries outside the signed filter")
struct ExportSignedFilterTests {
    let dir: TempDir
    let signer: CheckpointSigner

    init() throws {
        dir = try TempDir()
        signer = try testSigner()
    }

    /// 30 sample rows (tenant-1 = seqs 1, 4, ..., 28), checkpointed; a signed tenant-1 export at `b`.
    func bundle(_ format: ExportBundle.Format, redact: Set<WithholdableField> = []) async throws -> String {
        let store = try await AuditStore.create(at: dir.path("s.db"), keys: try testKeyRing())
        try await store.append(contentsOf: (1...30).map { sampleEvent($0) })
        try await store.checkpoint(signer: signer)
        _ = try await ExportBundle.formatWritten.withValue(format) {
            try await store.export(to: dir.path("b"), filter: ExportFilter(tenant: "tenant-1"), redact: redact, signer: signer)
        }
        try await store.close()
        return dir.path("b")
    }

    /// Writes `filter` into the manifest and signs a statement over it, all else unchanged.
    func resign(_ bundle: String, filter: ExportFilter, redact: Set<WithholdableField> = []) throws {
        let manifestPath = bundle + "/manifest.json"
        var manifest = try String(contentsOfFile: manifestPath, encoding: .utf8)
        let start = try #require(manifest.range(of: "\"filter\":"))
        let end = try #require(manifest.range(of: ",\"createdAt\":", range: start.upperBound..<manifest.endIndex))
        manifest.replaceSubrange(start.upperBound..<end.lowerBound, with: filter.json)
        try manifest.write(toFile: manifestPath, atomically: false, encoding: .utf8)
        let checkpoint = try Checkpoint(json: Data(contentsOf: URL(fileURLWithPath: bundle + "/checkpoint.json")))
        let old = try ExportStatement(json: Data(contentsOf: URL(fileURLWithPath: bundle + "/statement.json")))
        let seqs = Array(stride(from: Int64(1), through: 28, by: 3))
        #expect(ExportStatement.seqsHash(seqs) == old.seqsHash)
        let statement = ExportStatement.signed(checkpoint: checkpoint, filter: filter, redact: redact, seqs: seqs, erased: [],
                                               createdAt: old.createdAt, key: signer.signingKey)
        try (statement.json + "\n").write(toFile: bundle + "/statement.json", atomically: false, encoding: .utf8)
    }

    /// Python's reference on the same bundle: its exit status and "kind@seq: message" lines.
    func python(_ bundle: String) throws -> (status: Int32, stdout: String) {
        try signer.publicKeys.write(to: dir.path("c.pub"))
        let script = repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify_export.py").path
        let result = try run("/usr/bin/env", ["python3", script, bundle, "--public-key", dir.path("c.pub")])
        return (result.status, result.stdout)
    }

    @Test("another tenant signed: every entry is statement-mismatch at its seq, naming the tenant, in both verifiers",
          arguments: ExportBundle.Format.allCases)
    func otherTenant(_ format: ExportBundle.Format) async throws {
        let b = try await bundle(format)
        var filter = ExportFilter(tenant: "tenant-2")
        filter.outcome = .success
        try resign(b, filter: filter)
        let result = try await ExportBundle.verify(at: b, publicKeys: signer.publicKeys, requireStatement: true)
        let seqs = Array(stride(from: Int64(1), through: 28, by: 3))
        #expect(result.findings.map(\.kind) == Array(repeating: .statementMismatch, count: 10), "\(result.findings)")
        #expect(result.findings.map(\.seq) == seqs)
        #expect(result.findings.first?.message == #"filter: entry seq 1 does not match the filter the statement signs: its tenant is "tenant-1", not "tenant-2""#)
        #expect(result.entriesVerified == 0 && !result.isCompletenessAttested)
        let theirs = try python(b)
        #expect(theirs.status == 1)
        for seq in seqs {
            #expect(theirs.stdout.contains(#"statement-mismatch at seq \#(seq): filter: entry seq \#(seq) does not match the filter the statement signs: its tenant is "tenant-1", not "tenant-2""#),
                    "\(theirs.stdout)")
        }
    }

    @Test("a narrower seq range, outcome and time window signed: only the entries outside are findings, each naming the first condition it fails")
    func narrower() async throws {
        let b = try await bundle(.v2)
        var filter = ExportFilter(tenant: "tenant-1", seqs: 1...16)
        filter.outcome = .success  // sampleEvent: seqs divisible by 5 are denied (10 and 25 here)
        filter.recordedBefore = AuditTimestamp(microsecondsSinceEpoch: 4_000_000_000_000_000)
        filter.recordedFrom = AuditTimestamp(microsecondsSinceEpoch: 3_000_000_000_000_000)  // no row is recorded so late
        try resign(b, filter: filter)
        let result = try await ExportBundle.verify(at: b, publicKeys: signer.publicKeys)
        let messages = result.findings.map { "\($0.seq ?? 0): \($0.message.components(separatedBy: "signs: ").last ?? "")" }
        let late = ", not from 3000000000000000 up to before 4000000000000000"
        #expect(messages.count == 10, "\(messages)")
        #expect(messages.filter { !$0.contains("its recordedAt is ") } == [
            "10: its outcome is code 2, not success (code 0)",
            "19: its seq is outside 1...16",
            "22: its seq is outside 1...16",
            "25: its outcome is code 2, not success (code 0)",
            "28: its seq is outside 1...16",
        ], "\(result.findings)")
        #expect(messages.filter { $0.contains("its recordedAt is ") }.map { $0.prefix(while: { $0 != ":" }) } == ["1", "4", "7", "13", "16"])
        #expect(messages.filter { $0.contains("its recordedAt is ") }.allSatisfy { $0.hasSuffix(late) }, "\(messages)")
        let theirs = try python(b)
        #expect(theirs.stdout.contains("statement-mismatch at seq 25: filter: entry seq 25 does not match the filter the statement signs: its outcome is code 2, not success (code 0)"),
                "\(theirs.stdout)")
        #expect(theirs.stdout.contains("statement-mismatch at seq 28: filter: entry seq 28 does not match the filter the statement signs: its seq is outside 1...16"),
                "\(theirs.stdout)")
        #expect(theirs.stdout.components(separatedBy: late).count == 6, "\(theirs.stdout)")
    }

    @Test("an actor condition is not judged on a withheld actor; a shown one is", arguments: [true, false])
    func actorCondition(_ withheld: Bool) async throws {
        let redact: Set<WithholdableField> = withheld ? [.actor] : []
        let b = try await bundle(.v1, redact: redact)
        try resign(b, filter: ExportFilter(tenant: "tenant-1", actor: "nobody"), redact: redact)
        let result = try await ExportBundle.verify(at: b, publicKeys: signer.publicKeys)
        let theirs = try python(b)
        if withheld {
            #expect(result.isValid && result.isCompletenessAttested, "\(result.findings)")
            #expect(theirs.status == 0, "\(theirs.stdout)")
        } else {
            #expect(result.findings.count == 10)
            #expect(result.findings.first?.message == #"filter: entry seq 1 does not match the filter the statement signs: its actor is "user-1", not "nobody""#)
            #expect(theirs.status == 1 && theirs.stdout.contains(#"its actor is "user-1", not "nobody""#), "\(theirs.stdout)")
        }
    }
}
