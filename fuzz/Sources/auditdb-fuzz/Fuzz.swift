// libFuzzer entry point. FUZZ_TARGET picks the parser; every input must give a value or a typed
// AuditError with a message — a crash, a hang, a sanitizer report or an untyped error is a bug.
@testable import AuditDB
import Foundation

enum Target: String, CaseIterable {
    case jsonl, details, keyfile, keysenv, timestamp, cursor
    // The strict JSON reader and every signed or bundle file read through it (issue 14).
    case json, checkpoint, statement, manifest, entry, pubkey
}

let target: Target = {
    guard let name = ProcessInfo.processInfo.environment["FUZZ_TARGET"], let target = Target(rawValue: name) else {
        FileHandle.standardError.write(Data("set FUZZ_TARGET to one of: \(Target.allCases.map(\.rawValue).joined(separator: " "))\n".utf8))
        exit(2)
    }
    return target
}()

func fail(_ why: String) -> Never {
    FileHandle.standardError.write(Data("FUZZ FAILURE (\(target.rawValue)): \(why)\n".utf8))
    abort()
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

/// SwiftPM links an executable target's entry point under this name; hand over to libFuzzer.
@_cdecl("auditdb_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzOne(data, size) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    switch target {
    case .jsonl:
        // What `auditdb append --jsonl` does with a line that is valid UTF-8.
        guard let line = String(validating: bytes, as: UTF8.self) else { return 0 }
        do {
            let event = try AuditEvent(jsonLine: line)
            try AuditStore.validate(event)
        } catch {
            if error.message.isEmpty { fail("empty message") }
        }
    case .details:
        guard let text = String(validating: bytes, as: UTF8.self) else { return 0 }
        do { try JSONText.validateObject(text) } catch { if error.field != "details" { fail("field \(String(describing: error.field))") } }
    case .keyfile:
        do {
            let ring = try KeyText.parse(UnsafeRawBufferPointer(bytes), origin: "fuzz")
            if ring.versions.isEmpty { fail("a key ring without keys") }
        } catch let error as AuditError {
            if error.code != .invalidKeyFile && error.code != .keyUnavailable { fail("code \(error.code)") }
            if error.message.contains(where: { $0 == "\u{0}" }) { fail("NUL in message") }
        } catch {
            fail("untyped error \(error)")
        }
    case .keysenv:
        guard !bytes.contains(0) else { return 0 }
        setenv("AUDITDB_FUZZ_KEYS", String(decoding: bytes, as: UTF8.self), 1)
        do {
            _ = try EnvironmentKeyProvider(variable: "AUDITDB_FUZZ_KEYS").load()
        } catch {
            if error.code != .invalidKeyFile && error.code != .keyUnavailable { fail("code \(error.code)") }
        }
    case .timestamp:
        let text = String(decoding: bytes, as: UTF8.self)
        if let parsed = AuditTimestamp(iso8601: text) {
            if !parsed.isInSupportedRange { fail("out of range: \(parsed.microsecondsSinceEpoch)") }
            if AuditTimestamp(iso8601: parsed.iso8601) != parsed { fail("no round trip: \(text)") }
        }
    case .cursor:
        let text = String(decoding: bytes, as: UTF8.self)
        if let cursor = QueryCursor(token: text), QueryCursor(token: cursor.token) != cursor { fail("no round trip: \(text)") }
    case .json:
        // Accepted documents are UTF-8 without a BOM; refusals say where and why.
        do {
            _ = try JSONReader.readObject(bytes, limits: .signedDocument)
            if String(validating: bytes, as: UTF8.self) == nil { fail("accepted invalid UTF-8") }
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { fail("accepted a BOM") }
        } catch {
            if error.description.isEmpty { fail("empty JSON error") }
        }
    case .checkpoint:
        do { _ = try Checkpoint(json: Data(bytes)) } catch { typed(error, .invalidInput) }
    case .statement:
        do { _ = try ExportStatement(json: Data(bytes)) } catch { typed(error, .invalidInput) }
    case .manifest:
        if case .failure(let problem) = ExportBundle.Manifest.read(Array(bytes), checkpoint: fixedCheckpoint), problem.message.isEmpty {
            fail("empty manifest problem")
        }
    case .entry:
        do {
            let entry = try JSONReader.readObject(bytes, limits: .bundleEntry)
            if let finding = ExportBundle.check(entry: entry.members, seq: 1, checkpoint: fixedCheckpoint), finding.message.isEmpty {
                fail("empty entry finding")
            }
        } catch {
            if error.description.isEmpty { fail("empty JSON error") }
        }
    case .pubkey:
        do {
            let keys = try CheckpointPublicKeys.parse(Array(bytes), path: "fuzz")
            if keys.keys.isEmpty { fail("a public key file without keys") }
        } catch {
            typed(error, .invalidKeyFile)
        }
    }
    return 0
}

/// An AuditError of `code` with a message; anything else is a bug.
func typed(_ error: AuditError, _ code: AuditError.Code) {
    if error.code != code { fail("code \(error.code): \(error.message)") }
    if error.message.isEmpty { fail("empty message") }
}

/// The checkpoint manifests and entries are read against: a fixed test-only key (seed 0x42…).
let fixedCheckpoint: Checkpoint = {
    let seed = [UInt8](repeating: 0x42, count: 32)
    let key: CheckpointSigningKey
    do {
        key = try seed.withUnsafeBytes { raw throws(AuditError) in try CheckpointSigningKey(version: 1, seed: raw) }
    } catch {
        fail("fixed checkpoint key: \(error)")
    }
    return Checkpoint.signed(storeID: StoreID(bytes: [UInt8](repeating: 0x11, count: 16)), seq: 100,
                             chainHead: [UInt8](repeating: 0x22, count: 32), merkleRoot: [UInt8](repeating: 0x33, count: 32),
                             time: AuditTimestamp(microsecondsSinceEpoch: 1_700_000_000_000_000), key: key)
}()
