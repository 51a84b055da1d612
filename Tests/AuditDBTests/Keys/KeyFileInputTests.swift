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

    @Test("key-file lines AuditDB never writes are refused: a version with a sign or leading zero, a creation time that is not one, an all-zero key, one key under two versions")
    func strictKeyLines() throws {
        let hex1 = String(repeating: "1f", count: 32), hex2 = String(repeating: "2e", count: 32)
        let time = "2026-11-23T13:15:00.000000Z"
        // The Python verifier reads key files by the same rules (FORMAT.md 12): its refusal ends
        // with the same text.
        let script = "import sys; sys.path.insert(0, sys.argv[1]); import auditdb_verify as v\n"
            + "try:\n    v.load_key_file(sys.argv[2]); print('accepted')\nexcept v.KeyError_ as e:\n    print(e)"
        func load(_ lines: [String]) -> AuditError? {
            let path = dir.path("k-\(UUID().uuidString).keys")
            let text = (["auditdb-keys v1"] + lines).joined(separator: "\n") + "\n"
            #expect(writeTestFile(path, Data(text.utf8)))
            let swift = refusal { _ = try KeyFile(path: path).load() }
            let python = try? run("/usr/bin/env", ["python3", "-c", script, repositoryRoot.appendingPathComponent("docs/verifier").path, path])
            let said = python?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? "python3 did not run"
            if let swift {
                #expect(said.hasSuffix(swift.message.components(separatedBy: ": ").suffix(swift.message.hasPrefix("key version") ? 99 : 1).joined(separator: ": ")),
                        "Swift: \(swift.message); Python: \(said)")
            } else {
                #expect(said == "accepted", "\(said)")
            }
            return swift
        }
        #expect(load(["key 1 active \(time) \(hex1)", "key 2 active - \(hex2)"]) == nil)
        for version in ["01", "+1", "1.0"] {
            #expect(load(["key \(version) active \(time) \(hex1)"])?.message.hasSuffix(
                "line 2: the version must be a whole number from 1, in digits without a sign or leading zeros") == true, "\(version)")
        }
        #expect(load(["key 1 active NOT-A-DATE \(hex1)"])?.message.hasSuffix(
            "line 2: the creation time must be an RFC 3339 time (as AuditDB writes it, e.g. 2026-11-23T13:15:00.000000Z) or -") == true)
        let zero = load(["key 1 active \(time) \(String(repeating: "0", count: 64))"])
        #expect(zero?.code == .invalidKeyFile)
        #expect(zero?.message == "key version 1 is 32 zero bytes, which anyone could sign with; generate a key (`auditdb keys generate`)")
        let twin = load(["key 1 compromised \(time) \(hex1)", "key 2 active \(time) \(hex1)"])
        #expect(twin?.message == "key versions 1 and 2 hold the same key; each version must be a key of its own (`auditdb keys rotate` generates one)")
        // No key byte in any of these messages.
        for error in [zero, twin] { #expect(error?.message.contains(hex1) == false) }
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
