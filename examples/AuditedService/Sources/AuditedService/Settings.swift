import AuditDB
import Foundation

/// What the service needs to start, read from the environment once at start-up.
///
/// The store and its keys are given exactly as the `auditdb` CLI takes them: `AUDITDB_STORE`,
/// then `AUDITDB_KEY_FILE` (a key file, mode 0600) or `AUDITDB_KEYS` (`VERSION:HEX,…`, removed
/// from the environment once read), and optionally `AUDITDB_STORE_ID` and `AUDITDB_BUSY_TIMEOUT`. The rest is this
/// service's own (`AUDITED_SERVICE_*`, see README.md). Key material is never logged: `KeyRing`
/// and `CheckpointSigner` print redacted.
struct Settings: Sendable {
    var storePath: String
    var keys: KeyRing
    var expectedStoreID: StoreID?
    var busyTimeout: Duration?
    var host: String
    var port: Int
    var tokens: TokenTable
    var checkpointSigner: CheckpointSigner
    var anchorDirectory: String
    var scanInterval: Duration
    var fullScanInterval: Duration
    var checkpointInterval: Duration

    /// Reads every setting; throws a `SettingsError` naming the variable that is missing or wrong.
    static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Settings {
        func required(_ name: String) throws -> String {
            guard let value = environment[name], !value.isEmpty else {
                throw SettingsError("\(name) is not set (see examples/AuditedService/README.md)")
            }
            return value
        }
        let keys: KeyRing
        if let file = environment["AUDITDB_KEY_FILE"], !file.isEmpty {
            keys = try KeyFile(path: file).load()
        } else if environment["AUDITDB_KEYS"] != nil {
            keys = try EnvironmentKeyProvider().load()
        } else {
            throw SettingsError("no key given: set AUDITDB_KEY_FILE or AUDITDB_KEYS (create a key with `auditdb keys generate --out FILE`)")
        }
        var expectedStoreID: StoreID?
        if let hex = environment["AUDITDB_STORE_ID"], !hex.isEmpty {
            guard let id = StoreID(hex: hex) else { throw SettingsError("AUDITDB_STORE_ID must be 32 hex digits") }
            expectedStoreID = id
        }
        var busyTimeout: Duration?
        if let text = environment["AUDITDB_BUSY_TIMEOUT"], !text.isEmpty {
            // As the CLI reads it: how long an append waits for a lock another process holds
            // before it fails (and the request is answered 503).
            let decimal = text.allSatisfy { $0.isASCII && ($0.isNumber || $0 == ".") } && text.filter({ $0 == "." }).count <= 1 && text != "."
            guard decimal, let seconds = Double(text), seconds.isFinite, seconds <= 86_400 else {
                throw SettingsError("AUDITDB_BUSY_TIMEOUT must be a number of seconds from 0 to 86400, in decimal digits with at most one point; got \"\(text)\"")
            }
            busyTimeout = .milliseconds(Int64((seconds * 1000).rounded()))
        }
        let (host, port) = try address(environment["AUDITED_SERVICE_ADDRESS"] ?? "127.0.0.1:8080")
        return Settings(
            storePath: try required("AUDITDB_STORE"),
            keys: keys,
            expectedStoreID: expectedStoreID,
            busyTimeout: busyTimeout,
            host: host,
            port: port,
            tokens: try TokenTable.load(path: try required("AUDITED_SERVICE_TOKENS_FILE")),
            checkpointSigner: try CheckpointSigner.load(path: try required("AUDITED_SERVICE_CHECKPOINT_KEY")),
            anchorDirectory: try anchorDirectory(try required("AUDITED_SERVICE_ANCHOR_DIR")),
            scanInterval: try seconds(environment, "AUDITED_SERVICE_SCAN_SECONDS", default: 300),
            fullScanInterval: try seconds(environment, "AUDITED_SERVICE_FULL_SCAN_SECONDS", default: 86_400),
            checkpointInterval: try seconds(environment, "AUDITED_SERVICE_CHECKPOINT_SECONDS", default: 300))
    }

    /// The anchor directory must exist already: a typo would otherwise be created silently (and
    /// the checkpoints would go where nobody ships them), and a path that is not a directory
    /// would fail only at the first checkpoint.
    static func anchorDirectory(_ path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw SettingsError("AUDITED_SERVICE_ANCHOR_DIR \(path) does not exist; create it (mkdir -m 700) where the anchors are to go")
        }
        guard isDirectory.boolValue else { throw SettingsError("AUDITED_SERVICE_ANCHOR_DIR \(path) is not a directory") }
        return path
    }

    /// `HOST:PORT`, e.g. `127.0.0.1:8080`, or `[IPV6]:PORT`, e.g. `[::1]:8080`; port 0 asks the
    /// system for a free port (the one bound is printed on standard output).
    static func address(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65_535).contains(port), colon > text.startIndex
        else { throw SettingsError("AUDITED_SERVICE_ADDRESS must be HOST:PORT or [IPV6]:PORT, e.g. 127.0.0.1:8080; got \"\(text)\"") }
        var host = text[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]"), host.count > 2 { host = host.dropFirst().dropLast() }
        return (String(host), port)
    }

    private static func seconds(_ environment: [String: String], _ name: String, default value: Int64) throws -> Duration {
        guard let text = environment[name] else { return .seconds(value) }
        guard let seconds = Int64(text), seconds > 0, seconds <= 86_400 * 7 else {
            throw SettingsError("\(name) must be a whole number of seconds from 1 to 604800; got \"\(text)\"")
        }
        return .seconds(seconds)
    }
}

/// A setting that is missing or malformed: what is wrong and how to fix it.
struct SettingsError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
