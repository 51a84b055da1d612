import AuditDBTestSupport
import Foundation
import Testing

@testable import AuditDB

/// The AuditDBTestSupport product itself: what apps' tests rely on must hold.
@Suite("AuditDBTestSupport", .timeLimit(.minutes(10)))
struct TestSupportProductTests {
    @Test("a temporary directory exists while referenced and is removed with its contents afterwards")
    func temporaryDirectory() throws {
        var directory: TemporaryDirectory? = try TemporaryDirectory()
        let path = try #require(directory?.path)
        let file = try #require(directory?.path("inside.txt"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        #expect(FileManager.default.fileExists(atPath: file))
        #expect(file.hasPrefix(path + "/"))
        directory = nil
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("in-memory keys: the highest version signs, a ring is fresh each time, and a store opens through the provider")
    func inMemoryKeys() async throws {
        let ring = try KeyRing.inMemory(versions: [1, 2])
        #expect(ring.versions == [1, 2])
        #expect(ring.signingKey.version == 2)
        #expect(throws: AuditError.self) { try KeyRing.inMemory(versions: []) }
        #expect(throws: AuditError.self) { try KeyRing.inMemory(versions: [3, 3]) }

        let temporary = try await TemporaryStore(keys: ring)
        try await temporary.store.append(AuditEvent(actor: "u1", action: "login"))
        try await temporary.store.close()
        let provider = InMemoryKeyProvider(ring)
        let reopened = try await AuditStore.open(at: temporary.path, keyProvider: provider)
        #expect(provider.loadCount == 1)
        #expect(try await reopened.verify().isIntact)
        try await reopened.close()
        // A store signed with other keys is refused with the provider's ring.
        let other = try await TemporaryStore()
        try await other.store.append(AuditEvent(actor: "u1", action: "login"))
        try await other.store.close()
        await #expect(throws: AuditError.self) { _ = try await AuditStore.open(at: other.path, keyProvider: provider) }
    }

    @Test("in-memory checkpoint keys sign checkpoints that their public keys verify")
    func inMemoryCheckpointSigner() async throws {
        let signer = try CheckpointSigner.inMemory(versions: [1, 2])
        #expect(signer.signingKey.version == 2)
        let temporary = try await TemporaryStore()
        try await temporary.store.append(AuditEvent(actor: "u1", action: "login"))
        let checkpoint = try await temporary.store.checkpoint(signer: signer)
        #expect(checkpoint.invalidity(under: signer.publicKeys) == nil)
        #expect(checkpoint.invalidity(under: try CheckpointSigner.inMemory().publicKeys) != nil)
        try await temporary.store.close()
    }

    @Test("the manual clock: sleepers wake only when it is advanced past their deadline; waitForSleepers sees them")
    func manualClock() async throws {
        let clock = ManualClock()
        try await clock.sleep(until: clock.now)  // a deadline already reached returns at once
        try await withThrowingTaskGroup(of: Duration.self) { group in
            group.addTask { try await clock.sleep(for: .seconds(10)); return .seconds(10) }
            group.addTask { try await clock.sleep(for: .seconds(30)); return .seconds(30) }
            try await clock.waitForSleepers(2)
            #expect(clock.sleeperCount == 2)
            clock.advance(by: .seconds(9))
            #expect(clock.sleeperCount == 2, "no deadline reached yet")
            clock.advance(by: .seconds(1))
            #expect(try await group.next() == .seconds(10))
            #expect(clock.sleeperCount == 1)
            clock.advance(by: .seconds(20))
            #expect(try await group.next() == .seconds(30))
        }
        #expect(clock.now == ManualClock.Instant(offset: .seconds(30)))
        #expect(clock.sleeperCount == 0)
    }

    @Test("a cancelled sleeper throws CancellationError and leaves the clock")
    func manualClockCancellation() async throws {
        let clock = ManualClock()
        let sleeper = Task { try await clock.sleep(for: .seconds(1)) }
        try await clock.waitForSleepers()
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(clock.sleeperCount == 0)
    }
}
