// libFuzzer entry point. FUZZ_TARGET picks the parser; every input must give a value or a typed
// AuditError with a message — a crash, a hang, a sanitizer report or an untyped error is a bug.
@testable import AuditDB
import Foundation

enum Target: String {
    case jsonl, details, keyfile, keysenv, timestamp, cursor
}

let target: Target = {
    guard let name = ProcessInfo.processInfo.environment["FUZZ_TARGET"], let target = Target(rawValue: name) else {
        FileHandle.standardError.write(Data("set FUZZ_TARGET to one of: jsonl details keyfile keysenv timestamp cursor\n".utf8))
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
    }
    return 0
}
