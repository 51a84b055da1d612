import AuditDB
import Foundation

/// What the service needs to start, read from the environment once at start-up.
///
/// The store and its keys are given exactly as the `auditdb` CLI takes them: `AUDITDB_STORE`,
/// then `AUDITDB_KEY_FILE` (a key file, mode 0600) or `AUDITDB_KEYS` (`VERSION:HEX,…`, removed
/// from the environment once read), and optionally `AUDITDB_STORE_ID`. The rest is this
/// service's own (`AUDITED_SERVICE_*`, see README.md). Key material is never logged: `KeyRing`
/// and `CheckpointSigner` print redacted.
struct Settings: Sendable {
    var storePath: String
    var keys: KeyRing
    var expectedStoreID: StoreID?
    var host: String
    var port: Int
    var tokens: TokenTable
    var checkpointSigner: CheckpointSigner
    var anchorDirectory: String
    var scanInterval: Duration
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
        let (host, port) = try address(environment["AUDITED_SERVICE_ADDRESS"] ?? "127.0.0.1:8080")
        return Settings(
            storePath: try required("AUDITDB_STORE"),
            keys: keys,
            expectedStoreID: expectedStoreID,
            host: host,
            port: port,
            tokens: try TokenTable.load(path: try required("AUDITED_SERVICE_TOKENS_FILE")),
            checkpointSigner: try CheckpointSigner.load(path: try required("AUDITED_SERVICE_CHECKPOINT_KEY")),
            anchorDirectory: try required("AUDITED_SERVICE_ANCHOR_DIR"),
            scanInterval: try seconds(environment, "AUDITED_SERVICE_SCAN_SECONDS", default: 300),
            checkpointInterval: try seconds(environment, "AUDITED_SERVICE_CHECKPOINT_SECONDS", default: 300))
    }

    /// `HOST:PORT`, e.g. `127.0.0.1:8080`; port 0 asks the system for a free port (the one bound
    /// is printed on standard output).
    static func address(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
              (0...65_535).contains(port), colon > text.startIndex
        else { throw SettingsError("AUDITED_SERVICE_ADDRESS must be HOST:PORT, e.g. 127.0.0.1:8080; got \"\(text)\"") }
        return (String(text[..<colon]), port)
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
