import Foundation
import Testing

@testable import AuditDB

/// Hostile bundle files (ISSUE 14, item 2): devices, FIFOs, floods of newlines, one endless
/// line, a manifest of millions of values. `auditdb verify-export` must refuse each promptly
/// with the exact finding and stay well under 100 MB; the independent Python verifier must print
/// the same findings. (The content-level cases are in docs/test-vectors/hostile.json.)
@Suite("Export bundles: bounded reading of hostile files")
struct ExportBoundsTests {
    let dir: TempDir
    let bundle: String
    let publicKey = repositoryRoot.appendingPathComponent("docs/test-vectors/checkpoint.pub").path

    init() throws {
        dir = try TempDir()
        bundle = dir.path("bundle")
        try FileManager.default.copyItem(atPath: repositoryRoot.appendingPathComponent("docs/test-vectors/bundle").path,
                                         toPath: bundle)
    }

    struct Measured {
        let status: Int32
        let stdout: String
        let maxRSSKilobytes: Int
        let seconds: Double
    }

    /// Runs a program under python3, which reports the child's peak resident set (getrusage).
    func measured(_ arguments: [String]) throws -> Measured {
        let wrapper = """
            import resource, subprocess, sys, time
            t = time.time()
            r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
            sys.stdout.buffer.write(r.stdout)
            sys.stderr.write(f"{r.returncode} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} {time.time() - t}\\n")
            """
        let result = try run("/usr/bin/env", ["python3", "-c", wrapper] + arguments)
        let fields = try #require(result.stderr.split(separator: "\n").last?.split(separator: " "))
        return Measured(status: try #require(Int32(fields[0])), stdout: result.stdout,
                        maxRSSKilobytes: try #require(Int(fields[1])), seconds: try #require(Double(fields[2])))
    }

    func replace(_ name: String, with make: (String) throws -> Void) throws {
        let path = bundle + "/" + name
        try FileManager.default.removeItem(atPath: path)
        try make(path)
    }

    func sparse(_ size: UInt64) -> (String) throws -> Void {
        { path in
            guard writeTestFile(path, Data(), mode: 0o644) else { throw TestFailure("cannot create \(path)") }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.truncate(atOffset: size)
            try handle.close()
        }
    }

    static func fifo(_ path: String) throws {
        let made = try run("/usr/bin/env", ["mkfifo", path])
        guard made.status == 0 else { throw TestFailure("mkfifo failed: \(made.stderr)") }
    }

    static func devZero(_ path: String) throws {
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: "/dev/zero")
    }

    /// Verifies the bundle with the CLI and with the Python verifier; both must print `expected`
    /// as their only finding, the CLI promptly and in well under 100 MB.
    func expectOnly(_ expected: String, _ what: String) async throws {
        let cli = try measured([try cliPath(), "verify-export", bundle, "--public-key", publicKey])
        #expect(cli.status == 1, "\(what): \(cli.stdout)")
        #expect(cli.stdout == "EXPORT INVALID: 1 finding(s)\n  \(expected)\n", "\(what)")
        #expect(cli.maxRSSKilobytes < 100 * 1024, "\(what): peak RSS \(cli.maxRSSKilobytes) kB")
        #expect(cli.seconds < 10, "\(what): \(cli.seconds) s")
        print("verify-export, \(what): peak RSS \(cli.maxRSSKilobytes / 1024) MB, \(String(format: "%.2f", cli.seconds)) s")
        let script = repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify_export.py").path
        let python = try run("/usr/bin/env", ["python3", script, bundle, "--public-key", publicKey])
        #expect(python.status == 1, "\(what): \(python.stdout)\(python.stderr)")
        #expect(python.stdout == "EXPORT INVALID: 1 finding(s)\n  \(expected)\n", "\(what) (Python)")
    }

    @Test("a FIFO or a device in place of a bundle file is refused at once, never read or waited on")
    func notRegular() async throws {
        let refused = "(a FIFO, device or directory is refused)"
        try replace("checkpoint.json", with: Self.fifo)
        try await expectOnly("checkpoint-invalid: checkpoint.json is not a regular file \(refused)", "checkpoint.json a FIFO")
        try replace("checkpoint.json", with: { try Data(contentsOf: repositoryRoot.appendingPathComponent("docs/test-vectors/bundle/checkpoint.json")).write(to: URL(fileURLWithPath: $0)) })
        try replace("manifest.json", with: Self.devZero)
        try await expectOnly("bundle-malformed: manifest.json is not a regular file \(refused)", "manifest.json -> /dev/zero")
        try replace("manifest.json", with: { try Data(contentsOf: repositoryRoot.appendingPathComponent("docs/test-vectors/bundle/manifest.json")).write(to: URL(fileURLWithPath: $0)) })
        try replace("entries.jsonl", with: Self.fifo)
        try await expectOnly("bundle-malformed: entries.jsonl is not a regular file \(refused)", "entries.jsonl a FIFO")
        try FileManager.default.removeItem(atPath: bundle + "/entries.jsonl")
        try Self.devZero(bundle + "/entries.jsonl")
        try await expectOnly("bundle-malformed: entries.jsonl is not a regular file \(refused)", "entries.jsonl -> /dev/zero")
    }

    @Test("an endless line, a flood of newlines, a 17 GiB file: refused as soon as a bound is passed")
    func floods() async throws {
        try replace("entries.jsonl", with: sparse(400 << 20))
        try await expectOnly("bundle-malformed: entries.jsonl line 1 is longer than 1048576 bytes", "one 400 MB line of NUL bytes")
        try replace("entries.jsonl", with: { try Data(repeating: 0x0A, count: 100 << 20).write(to: URL(fileURLWithPath: $0)) })
        try await expectOnly("bundle-malformed: entries.jsonl has more than 1000000 lines", "100 MB of newlines")
        try replace("entries.jsonl", with: sparse(17 << 30))
        try await expectOnly("bundle-malformed: entries.jsonl is larger than 17179869184 bytes", "a 17 GiB file")
        try replace("manifest.json", with: sparse(25 << 20))
        try await expectOnly("bundle-malformed: manifest.json is larger than 25165824 bytes", "a 25 MiB manifest")
    }

    @Test("a 24 MiB manifest of zeros is refused at its 1,000,101st value; a million seqs are read in bounded memory")
    func largeManifests() async throws {
        let head = #"{"format":"auditdb-export v1","storeId":"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf","checkpointSeq":4,"seqs":["#
        var zeros = Data(head.utf8)
        zeros.append(Data(repeating: 0x30, count: 1))
        zeros.append(contentsOf: [UInt8](repeatElement(Array(",0".utf8), count: (24 << 20) / 2 - 200).joined()))
        zeros.append(contentsOf: Array("]}".utf8))
        try replace("manifest.json", with: { try zeros.write(to: URL(fileURLWithPath: $0)) })
        // Values: the root, format, storeId, checkpointSeq, the seqs array, then the zeros (",0").
        let offset = head.utf8.count + 2 * (1_000_100 - 5)
        try await expectOnly("bundle-malformed: manifest.json: invalid JSON at byte \(offset): more than 1000100 values",
                             "a 24 MiB manifest of zeros")
        // The largest legal manifest: a million seqs. The entries list two of them: the rest are
        // missing, and verification stops at its 1,000th finding.
        var million = Data(head.utf8)
        million.append(Data((1...1_000_000).map(String.init).joined(separator: ",").utf8))
        million.append(Data(#"],"entryCount":1000000,"redacted":["details"],"filter":null,"createdAt":0}"#.utf8))
        try replace("manifest.json", with: { try million.write(to: URL(fileURLWithPath: $0)) })
        try FileManager.default.removeItem(atPath: bundle + "/statement.json")
        let cli = try measured([try cliPath(), "verify-export", bundle, "--public-key", publicKey])
        #expect(cli.status == 1)
        #expect(cli.stdout.hasPrefix("EXPORT INVALID: 1000 finding(s)\n  entry-missing at seq 1: the manifest lists seq 1 but the bundle has no entry for it: it was removed\n"),
                "\(cli.stdout.prefix(300))")
        #expect(cli.maxRSSKilobytes < 100 * 1024, "peak RSS \(cli.maxRSSKilobytes) kB")
        #expect(cli.seconds < 10, "\(cli.seconds) s")
        print("verify-export, a million seqs: peak RSS \(cli.maxRSSKilobytes / 1024) MB, \(String(format: "%.2f", cli.seconds)) s")
    }
}
