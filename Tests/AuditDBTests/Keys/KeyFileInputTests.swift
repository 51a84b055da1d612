import Foundation
import Testing

@testable import AuditDB

/// Key files and other inputs are opened without waiting and checked before they are read: a FIFO
/// or device is refused at once, a symbolic link or a file of another user is refused.
@Suite("Input files")
struct KeyFileInputTests {
    let dir: TempDir

    init() throws { dir = try TempDir() }

    func refusal(_ body: () throws -> Void) -> AuditError? {
        do {
            try body()
            return nil
        } catch {
            return error as? AuditError
        }
    }

    @Test("a FIFO as the key file, the checkpoint key file or an anchor: refused at once, never waited on")
    func fifoRefused() async throws {
        let fifo = dir.path("keys.fifo")
        #expect(mkfifo(fifo, 0o600) == 0)
        let key = refusal { _ = try KeyFile(path: fifo).load() }
        #expect(key?.code == .keyFileInsecure)
        #expect(key?.message == "key file \(fifo) is not a regular file (a FIFO, device or directory is refused)")
        #expect(refusal { _ = try CheckpointSigner.load(path: fifo) }?.code == .keyFileInsecure)
        #expect(refusal { _ = try CheckpointPublicKeys.load(path: fifo) }?.code == .invalidInput)
        // A FIFO planted in an anchor directory is that file's finding, not a hang or an error for the whole check.
        let anchor = dir.path("anchors")
        try FileManager.default.createDirectory(atPath: anchor, withIntermediateDirectories: true)
        #expect(mkfifo(anchor + "/planted.json", 0o644) == 0)
        let read = try DirectoryAnchor.read(anchor)
        #expect(read.count == 1)
        if case .failure(let error) = read[0].checkpoint {
            #expect(error.message.hasSuffix("is not a regular file (a FIFO, device or directory is refused)"))
        } else {
            Issue.record("a FIFO was read as a checkpoint")
        }
    }

    @Test("a key file behind a symbolic link, or owned by another user: refused")
    func symlinkAndOwner() throws {
        let real = dir.path("real.keys"), link = dir.path("link.keys")
        _ = try KeyFile.generate(at: real)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: real)
        let linked = refusal { _ = try KeyFile(path: link).load() }
        #expect(linked?.code == .keyFileInsecure)
        #expect(linked?.message.hasPrefix("key file \(link) is a symbolic link") == true)
        #expect(try KeyFile(path: real).load().versions == [1])
        if geteuid() == 0 {
            // Only root can give a file away; as another user the check is the same code path.
            #expect(chown(real, 65534, 65534) == 0)
            let foreign = refusal { _ = try KeyFile(path: real).load() }
            #expect(foreign?.code == .keyFileInsecure)
            #expect(foreign?.message.contains("belongs to user id 65534, not to this user") == true)
        }
    }
}
