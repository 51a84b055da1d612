import Foundation
import Synchronization
import Testing

/// The real `AuditedService` binary, started as a child process.
///
/// Starting a process and changing the environment must never overlap (Foundation's
/// `Process.run()` copies `environ`, which a concurrent `setenv` may reallocate; AuditDB's own
/// suite crashed on that race once): every start here takes ``environmentLock``, and this
/// package's tests never call `setenv`. The child gets its environment as an argument.
final class ServiceProcess: Sendable {
    let process: Process
    /// The port the service bound, read from its first line on standard output.
    let port: Int
    private let stderrText = TextBox()

    /// Starts the binary and waits (at most `timeout`) for its `listening on HOST:PORT` line.
    init(executable: String, environment: [String: String], timeout: Duration = .seconds(60)) async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try environmentLock.withLock { _ in try process.run() }
        self.process = process
        // Standard error is drained on a thread of its own (a full pipe would block the child),
        // and kept to explain a failure.
        let errors = stderrText
        let errorHandle = err.fileHandleForReading
        Thread.detachNewThread {
            while true {
                let data = errorHandle.availableData
                if data.isEmpty {
                    errors.ended.withLock { $0 = true }
                    return
                }
                errors.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
        let outHandle = out.fileHandleForReading
        let firstLine = LineBox()
        Thread.detachNewThread {
            var buffer = Data()
            while true {
                let data = outHandle.availableData
                if data.isEmpty { return }
                buffer.append(data)
                if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    firstLine.line.withLock { $0 = String(decoding: buffer[..<newline], as: UTF8.self) }
                }
            }
        }
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            if let line = firstLine.line.withLock({ $0 }) {
                guard line.hasPrefix("listening on "), let port = line.split(separator: ":").last.flatMap({ Int($0) }) else {
                    process.terminate()
                    throw ServiceFailure("unexpected first line from the service: \(line)")
                }
                self.port = port
                return
            }
            if !process.isRunning || clock.now > deadline {
                if process.isRunning { process.terminate() }
                // The child has exited: what it wrote to standard error is all in the pipe, and
                // the reader ends at its end. Wait for that (not for a fixed time), so that the
                // failure quotes the service's own reason.
                process.waitUntilExit()
                let drained = clock.now + .seconds(30)
                while !stderrText.ended.withLock({ $0 }) && clock.now < drained { try await Task.sleep(for: .milliseconds(5)) }
                throw ServiceFailure("the service did not start: \(stderrText.text.withLock { $0 })")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// What the service wrote on standard error so far (its log).
    var log: String { stderrText.text.withLock { $0 } }

    /// Sends SIGTERM and waits (at most `timeout`) for the process to end; returns its exit status.
    func terminate(timeout: Duration = .seconds(120)) async throws -> Int32 {
        kill(process.processIdentifier, SIGTERM)
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while process.isRunning {
            if clock.now > deadline {
                kill(process.processIdentifier, SIGKILL)
                throw ServiceFailure("the service did not stop within \(timeout) of SIGTERM")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(process.terminationReason == .exit, "the service died of a signal")
        return process.terminationStatus
    }
}

/// The write lock of a store held by another process: `sqlite3` in a transaction of its own
/// (BEGIN EXCLUSIVE), until ``release()``.
final class SQLiteLock: Sendable {
    let process: Process
    let input: FileHandle

    init(_ database: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sqlite3", database]
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try environmentLock.withLock { _ in try process.run() }
        self.process = process
        input = stdin.fileHandleForWriting
        input.write(Data("BEGIN EXCLUSIVE;\nSELECT 'locked';\n".utf8))
        // Held once sqlite3 answers the SELECT that follows the BEGIN.
        var seen = Data()
        while !String(decoding: seen, as: UTF8.self).contains("locked") {
            let data = stdout.fileHandleForReading.availableData
            guard !data.isEmpty else { throw ServiceFailure("sqlite3 ended before it took the lock") }
            seen.append(data)
        }
    }

    func release() throws {
        input.write(Data("COMMIT;\n".utf8))
        try input.close()
        process.waitUntilExit()
    }
}

final class TextBox: Sendable {
    let text = Mutex("")
    /// Set once the stream ended (the child closed it, or exited).
    let ended = Mutex(false)
}
final class LineBox: Sendable { let line = Mutex<String?>(nil) }

/// Serialises process starts (see ``ServiceProcess``).
let environmentLock = Mutex<Void>(())

struct ServiceFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// An executable of this package, built next to the test bundle by `swift test`.
func builtProduct(_ name: String) throws -> String {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<4 {
        let candidate = directory.appendingPathComponent(name).path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let fromSource = packageRoot.appendingPathComponent(".build/debug/\(name)").path
    if FileManager.default.isExecutableFile(atPath: fromSource) { return fromSource }
    throw ServiceFailure("cannot find the \(name) binary; build it with `swift build --package-path examples/AuditedService`")
}
