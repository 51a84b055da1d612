import ArgumentParser
import AuditDB
import AuditDBCLISupport
import Foundation
import Logging
import Synchronization

@main
struct AuditDBCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auditdb",
        abstract: "An immutable, signed audit log in one SQLite file.",
        discussion: """
            The store and key file come from --store/--key-file, or AUDITDB_STORE and AUDITDB_KEY_FILE. \
            Keys may instead come from AUDITDB_KEYS (VERSION:HEX[,VERSION:HEX...]).

            EXIT STATUS
              0  success (verify: the store is intact)
              1  integrity violation found (the store is damaged or tampered with, or it is
                 not the store --store-id or AUDITDB_STORE_ID pins)
              2  could not run: bad arguments, missing or insecure key, unreadable store,
                 storage error
              3  append --jsonl: some batches were committed, then a bad line or an error
                 stopped the rest; append of one event: committed, then its seq could not
                 be printed
              4  status --max-age/--max-full-age: the last pass was intact, but too old
              130  append --jsonl: stopped by SIGINT after the batch in flight
              143  append --jsonl: stopped by SIGTERM after the batch in flight
            """,
        subcommands: [Init.self, Append.self, Query.self, Tail.self, Verify.self, Scan.self, Status.self, Keys.self, Migrate.self,
                      CheckpointKeyCommand.self, CheckpointCommand.self, ExportCommand.self, VerifyExportCommand.self,
                      RepairIndexes.self, Hold.self, Retain.self, Erase.self, Masking.self, Compact.self, ReportCommand.self,
                      VerifyReportCommand.self]
    )

    @OptionGroup var global: GlobalOptions

    /// Parses and runs, mapping every failure to the documented exit statuses.
    static func main() async {
        StandardStreams.reserveStandardDescriptors()
        // Before ArgumentParser sees them: `CommandLine.arguments` has already replaced bytes
        // that are not UTF-8 with U+FFFD, which would then be stored as if it had been given.
        if let problem = RawArguments.firstInvalidUTF8() {
            Output.error(problem)
            Foundation.exit(ExitStatus.failure)
        }
        if let problem = RepeatedOptions.problem(Self.self, Array(CommandLine.arguments.dropFirst()))
            ?? HelpTopic.problem(Self.self, Array(CommandLine.arguments.dropFirst()))
        {
            Output.error(problem)
            Foundation.exit(ExitStatus.failure)
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as AuditError {
            Output.error(error.message)
            // A store that is not the pinned one was replaced: an integrity incident, whichever
            // command met it (verify reports it as a finding, exit 1 too).
            Foundation.exit(error.code == .integrityViolation || error.code == .storeIdentityMismatch ? ExitStatus.violation : ExitStatus.failure)
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }
            // ArgumentParser's own usage text spans lines on purpose; an argument echoed in it
            // can neither forge a line nor repaint the terminal.
            StandardStreams.error(UsageMessage.escaped(fullMessage(for: error), message: message(for: error)) + "\n")
            Foundation.exit(ExitStatus.failure)
        }
    }
}

/// The command line as the kernel passed it, before Swift decodes it.
enum RawArguments {
    /// Why an argument is refused: the first one that is not UTF-8 (RFC 3629), named by its
    /// option (`--actor`, also for `--actor=VALUE`) or its position. Nil if all are UTF-8.
    static func firstInvalidUTF8() -> String? {
        let argv = CommandLine.unsafeArgv
        var previous: [UInt8] = []
        for index in stride(from: 1, to: Int(CommandLine.argc), by: 1) {  // argc may be 0 (an exec with no argv[0])
            guard let pointer = argv[index] else { continue }
            var length = 0
            while pointer[length] != 0 { length += 1 }
            let bytes = UnsafeRawBufferPointer(start: pointer, count: length).bindMemory(to: UInt8.self)
            if String(validating: bytes, as: UTF8.self) == nil {
                let option: String
                if bytes.starts(with: [0x2D, 0x2D]), let equals = bytes.firstIndex(of: 0x3D) {
                    option = String(decoding: bytes[..<equals], as: UTF8.self)
                } else if previous.starts(with: [0x2D]), String(validating: previous, as: UTF8.self) != nil {
                    option = String(decoding: previous, as: UTF8.self)
                } else {
                    option = "argument \(index)"
                }
                return "\(option): invalid UTF-8 in the value; AuditDB refuses it rather than store replacement characters (U+FFFD)"
            }
            previous = Array(bytes)
        }
        return nil
    }
}

enum ExitStatus {
    static let success: Int32 = 0
    static let violation: Int32 = 1
    static let failure: Int32 = 2
    /// `append --jsonl`: some batches were committed, then a bad line or an error stopped the rest;
    /// `append` of one event: committed, then its seq could not be printed.
    static let partial: Int32 = 3
    /// `status --max-age`/`--max-full-age`: the last pass was intact but too old (or of unknown age).
    static let stale: Int32 = 4
}

/// The key ring read from `AUDITDB_KEYS`, which can be read only once per process.
private let environmentKeyRing = Mutex<Result<KeyRing, AuditError>?>(nil)

/// Options every command accepts, before or after the subcommand name.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The store file (default: $AUDITDB_STORE).", valueName: "path"))
    var store: String?

    @Option(name: .customLong("key-file"), help: ArgumentHelp("The key file (default: $AUDITDB_KEY_FILE).", valueName: "path"))
    var keyFile: String?

    @Option(name: .customLong("store-id"), help: ArgumentHelp(
        "Expected store id, 32 hex digits (default: $AUDITDB_STORE_ID). Detects a store file swapped for another.",
        valueName: "hex"))
    var storeID: String?

    @Option(name: .customLong("busy-timeout"), parsing: .unconditional, help: ArgumentHelp(
        "How long to wait for a lock another process holds before failing with exit 2 (default: $AUDITDB_BUSY_TIMEOUT, else 30).",
        valueName: "seconds"))
    var busyTimeout: String?

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    func storePath() throws -> String {
        guard let path = store ?? environment["AUDITDB_STORE"], !path.isEmpty else {
            throw AuditError(.invalidInput, "no store given: pass --store PATH or set AUDITDB_STORE", field: "--store")
        }
        return path
    }

    /// `--key-file`, else `AUDITDB_KEY_FILE`; an empty variable counts as unset (as AUDITDB_STORE).
    func keyFilePath() -> String? { keyFile ?? environment["AUDITDB_KEY_FILE"].flatMap { $0.isEmpty ? nil : $0 } }

    func keyRing() throws -> KeyRing {
        // --key-file wins over the environment; from the environment, one source only: with both
        // variables set, which keys were meant is not for AuditDB to guess.
        if keyFile == nil, let file = environment["AUDITDB_KEY_FILE"], !file.isEmpty,
           let keys = environment["AUDITDB_KEYS"], !keys.isEmpty
        {
            throw AuditError(.invalidInput, "both AUDITDB_KEY_FILE and AUDITDB_KEYS are set; unset one of them (or pass --key-file, which wins over both)")
        }
        if let path = keyFilePath(), !path.isEmpty { return try KeyFile(path: path).load() }
        // AUDITDB_KEYS leaves the environment once read (EnvironmentKeyProvider): keep the ring.
        let fromEnvironment = try environmentKeyRing.withLock { cached -> KeyRing? in
            if let cached { return try cached.get() }
            guard environment["AUDITDB_KEYS"] != nil else { return nil }
            let result = Result { () throws(AuditError) in try EnvironmentKeyProvider().load() }
            cached = result
            return try result.get()
        }
        if let fromEnvironment { return fromEnvironment }
        throw AuditError(
            .keyUnavailable,
            "no key given: pass --key-file PATH, set AUDITDB_KEY_FILE, or set AUDITDB_KEYS; create a key with `auditdb keys generate --out FILE`")
    }

    /// `readOnly`: a command that only reads (query, tail, status) opens the file read-only, so
    /// it writes nothing and goes on while another process writes.
    /// The store id `--store-id` (else `AUDITDB_STORE_ID`) pins, if any.
    func expectedStoreID() throws -> StoreID? {
        try StoreIDPin.resolve(option: storeID, environment: environment)
    }

    func configuration(readOnly: Bool = false) throws -> AuditStore.Configuration {
        var config = AuditStore.Configuration()
        config.readOnly = readOnly
        // The CLI reports through its output and exit status; the library's log lines (and the
        // scanner's, which falls back to the store's logger) would only repeat them on stderr.
        config.logger = Output.silentLogger
        config.expectedStoreID = try expectedStoreID()
        if let path = store ?? environment["AUDITDB_STORE"], !path.isEmpty { Self.warnOfHotJournal(path) }
        // The option, else the variable (an empty variable counts as unset; an empty option does not).
        let source = busyTimeout != nil ? "--busy-timeout" : "AUDITDB_BUSY_TIMEOUT"
        if let text = busyTimeout ?? environment["AUDITDB_BUSY_TIMEOUT"], !text.isEmpty || busyTimeout != nil {
            guard let seconds = StrictNumber.decimal(text), seconds >= 0, seconds <= 86_400 else {
                throw AuditError(.invalidInput, "\(source) must be a number of seconds from 0 to 86400, in decimal digits with at most one point (got \(OutputEscaping.jsonQuoted(text)))",
                                 field: source)
            }
            config.busyTimeout = .milliseconds(Int64((seconds * 1000).rounded()))
        }
        return config
    }

    /// Says so when `path`'s rollback journal is hot (a journal header, not zeroed): the open
    /// about to happen rolls the file back to the state it records, for good (FORMAT.md 11).
    /// AuditDB writes such a journal only during a bulk import (`migrate adopt`); one left by
    /// anything else undoes whatever was written after it.
    static func warnOfHotJournal(_ path: String) {
        let magic: [UInt8] = [0xD9, 0xD5, 0x05, 0xF9, 0x20, 0xA1, 0x63, 0xD7]
        // A regular file only: opening a FIFO for reading would wait for a writer.
        var info = stat()
        guard stat(path + "-journal", &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size >= 8,
              let handle = FileHandle(forReadingAtPath: path + "-journal")
        else { return }
        defer { try? handle.close() }  // read only; nothing to report on close
        guard let head = try? handle.read(upToCount: 8), Array(head) == magic else { return }
        Output.notice("warning: \(path)-journal is a hot rollback journal (an interrupted transaction): opening the store rolls the file back to the state it records, for good. AuditDB leaves one only when a `migrate adopt` import is killed; if none was, someone may have put it there to undo rows: stop, keep a copy of the store and its -journal as evidence, and verify against the anchors (`auditdb verify --anchor`)")
    }

    /// The root's copy (options given before the subcommand) filled in by this one.
    func merged(with parent: GlobalOptions?) -> GlobalOptions {
        var result = self
        result.store = store ?? parent?.store
        result.keyFile = keyFile ?? parent?.keyFile
        result.storeID = storeID ?? parent?.storeID
        result.busyTimeout = busyTimeout ?? parent?.busyTimeout
        return result
    }
}

enum Output {
    /// A logger that drops everything (see `GlobalOptions.configuration()`).
    static let silentLogger = Logger(label: "auditdb", factory: { _ in SwiftLogNoOpLogHandler() })

    static func error(_ message: String) {
        StandardStreams.error("auditdb: error: " + OutputEscaping.escapeForMessage(message) + "\n")
    }

    /// A line on standard error that is not an error (where a long-running command listens).
    static func notice(_ message: String) {
        StandardStreams.error("auditdb: " + OutputEscaping.escapeForMessage(message) + "\n")
    }

    /// Writes `text` and a newline to standard output, throwing if it cannot.
    static func line(_ text: String) throws {
        try writeAll(text + "\n")
    }

    /// The first failed ``lineDeferringFailure(_:)``.
    private static let deferredFailure = Mutex<StandardStreams.OutputError?>(nil)

    /// ``line(_:)`` for a callback that cannot throw (progress): a failure is kept for
    /// ``throwDeferredFailure()``, which the command calls once the callback's work is done.
    static func lineDeferringFailure(_ text: String) {
        do {
            try StandardStreams.output(text + "\n")
        } catch {
            deferredFailure.withLock { if $0 == nil { $0 = error } }
        }
    }

    /// Throws the failure ``lineDeferringFailure(_:)`` kept, if any.
    static func throwDeferredFailure() throws {
        if let failure = deferredFailure.withLock({ $0 }) { throw AuditError(.storage, failure.description) }
    }

    /// Writes all of `text` to standard output, throwing if it cannot (a closed pipe, a full disk).
    static func writeAll(_ text: String) throws {
        do {
            try StandardStreams.output(text)
        } catch {
            throw AuditError(.storage, error.description)
        }
    }
}
