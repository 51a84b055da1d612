import Foundation
import Testing

@testable import AuditDB

/// A foreign audit_checkpoints row at the seq of a new checkpoint: the checkpoint cannot be
/// recorded in the store. Without an anchor it would be kept nowhere, so it fails saying so; with
/// one, the anchor holds it.
@Suite("Checkpoints: a foreign row at the new checkpoint's seq")
struct CheckpointOccupiedSeqTests {
    @Test("no anchor: integrity-violation naming the seq, nothing kept; with an anchor: returned and anchored")
    func occupied() async throws {
        let dir = try TempDir()
        let keys = try testKeyRing()
        let signer = try testSigner()
        let path = dir.path("s.db")
        try await makeStore(at: path, keys: keys, count: 10)
        // Any SQLite client, no key: junk at the seq the next checkpoint will take.
        try sqlite3Must(path, "INSERT INTO audit_checkpoints VALUES (11, 0, 1, zeroblob(32), zeroblob(32), zeroblob(32), zeroblob(64), x'');")
        let store = try await AuditStore.open(at: path, keys: keys)
        try await store.append(sampleEvent(11))
        do {
            let checkpoint = try await store.checkpoint(signer: signer)
            Issue.record("a checkpoint kept nowhere was returned: \(checkpoint)")
        } catch let error as AuditError {
            #expect(error.code == .integrityViolation)
            #expect(error.message.hasPrefix("the checkpoint at seq 11 could not be recorded: audit_checkpoints holds another row at that seq"), "\(error.message)")
        }
        let anchors = dir.path("anchors")
        try FileManager.default.createDirectory(atPath: anchors, withIntermediateDirectories: true)
        let anchored = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: anchors)])
        #expect(anchored.seq == 11)
        #expect(try FileManager.default.contentsOfDirectory(atPath: anchors).count == 1)
        try await store.close()
    }

    @Test("a forged row that copies the log's head (anyone can read it) is not the same checkpoint: refused without an anchor")
    func forgedWithTheHead() async throws {
        let dir = try TempDir()
        let keys = try testKeyRing()
        let signer = try testSigner()
        let path = dir.path("s.db")
        try await makeStore(at: path, keys: keys, count: 10)
        let head = try sqlite3Shell(path, "SELECT hex(mac) FROM audit_entries WHERE seq = 10;").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(head.count == 64)
        try sqlite3Must(path, "INSERT INTO audit_checkpoints VALUES (10, 0, 1, zeroblob(32), X'\(head)', zeroblob(32), zeroblob(64), x'');")
        let store = try await AuditStore.open(at: path, keys: keys)
        do {
            let checkpoint = try await store.checkpoint(signer: signer)
            Issue.record("a checkpoint kept nowhere was returned: \(checkpoint)")
        } catch let error as AuditError {
            #expect(error.message.hasPrefix("the checkpoint at seq 10 could not be recorded"), "\(error.message)")
        }
        try await store.close()
    }

    @Test("a checkpoint of this log already at the seq, signed by an unrelated key: not a foreign row (verify says intact), so invalid-input naming that key, nothing kept; with an anchor, anchored")
    func anotherKeysCheckpoint() async throws {
        let dir = try TempDir()
        let keys = try testKeyRing()
        let path = dir.path("s.db")
        try await makeStore(at: path, keys: keys, count: 10)
        let store = try await AuditStore.open(at: path, keys: keys)
        let first = try testSigner(), other = try testSigner()  // two key pairs of their own
        #expect(try await store.checkpoint(signer: first).seq == 10)
        do {
            let checkpoint = try await store.checkpoint(signer: other)
            Issue.record("a checkpoint kept nowhere was returned: \(checkpoint)")
        } catch let error as AuditError {
            #expect(error.code == .invalidInput)
            let key = first.signingKey.publicKey.bytes.prefix(8).map { String(format: "%02x", $0) }.joined()
            #expect(error.message.hasPrefix("the checkpoint at seq 10 could not be recorded: audit_checkpoints already holds a checkpoint of this log at that seq, signed by another key (checkpoint key version 1, public key \(key)…)"),
                    "\(error.message)")
        }
        #expect(try await store.verify().isIntact)
        let anchors = dir.path("anchors")
        try FileManager.default.createDirectory(atPath: anchors, withIntermediateDirectories: true)
        #expect(try await store.checkpoint(signer: other, anchors: [DirectoryAnchor(path: anchors)]).seq == 10)
        try await store.close()
    }
}
