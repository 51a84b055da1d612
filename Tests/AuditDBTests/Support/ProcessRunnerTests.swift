import Foundation
import Testing

/// The runner the CLI tests use (`run` in TestSupport.swift) must drain both output pipes while
/// the child runs: a child that writes more than a pipe buffer to the one not being read blocks,
/// and a runner reading the pipes one after the other waits on it for ever.
@Suite("Process runner")
struct ProcessRunnerTests {
    /// Under `timeout`, so that a runner that deadlocks fails this test (the child and its own
    /// children are killed after a minute, their output cut short) instead of hanging the suite.
    /// SIGKILL, because a child inherits the signal mask of the test's thread, which may block
    /// SIGTERM.
    func shell(_ script: String, stdin: Data? = nil) throws -> ProcessResult {
        try run("/usr/bin/timeout", ["--signal=KILL", "60", "/bin/sh", "-c", script], stdinBytes: stdin)
    }

    @Test("a child writing 2 MiB to stderr before anything to stdout: the runner returns with all of both")
    func largeStandardError() throws {
        let result = try shell("head -c 2097152 /dev/zero | tr '\\000' e >&2; echo done")
        #expect(result.status == 0)
        #expect(result.stdout == "done\n")
        #expect(result.stderr.utf8.count == 2_097_152)
        #expect(result.stderr.utf8.allSatisfy { $0 == UInt8(ascii: "e") })
    }

    @Test("a child writing 2 MiB to both pipes, interleaved, while 2 MiB of stdin is still being fed")
    func largeEverything() throws {
        let input = Data(repeating: UInt8(ascii: "i"), count: 2 << 20)
        // The child writes 2 MiB to each output pipe before it reads a byte of its input.
        let script = """
            head -c 2097152 /dev/zero | tr '\\000' o &
            head -c 2097152 /dev/zero | tr '\\000' e >&2 &
            wait
            wc -c >&2
            """
        let result = try shell(script, stdin: input)
        #expect(result.status == 0)
        #expect(result.stdout.utf8.count == 2 << 20)
        #expect(result.stderr.hasSuffix("2097152\n"), "stdin not delivered whole: \(result.stderr.suffix(40))")
        #expect(result.stderr.utf8.count == (2 << 20) + "2097152\n".utf8.count)
    }

    @Test("a child that exits without reading its 1 MiB of stdin: the runner returns its status")
    func unreadInput() throws {
        let result = try shell("echo gone >&2; exit 3", stdin: Data(repeating: 0x0A, count: 1 << 20))
        #expect(result.status == 3)
        #expect(result.stderr == "gone\n")
    }
}
