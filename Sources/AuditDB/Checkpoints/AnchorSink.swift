import Foundation

/// Somewhere outside the database file that keeps checkpoints: a directory on another disk, a
/// WORM bucket mount, a remote host. Implement it to send checkpoints to your own system.
///
/// ```swift
/// struct TransparencyLog: AnchorSink {
///     func write(_ checkpoint: Checkpoint) async throws { /* POST checkpoint.json */ }
///     var name: String { "transparency log" }
/// }
/// ```
public protocol AnchorSink: Sendable {
    /// Stores `checkpoint` durably (or throws). Must never replace a checkpoint it already holds.
    func write(_ checkpoint: Checkpoint) async throws
    /// A name for messages, e.g. the path.
    var name: String { get }
}

/// The built-in anchor: a directory holding one JSON file per checkpoint
/// (`<store id>-<seq, 20 digits>.json`), each written atomically (temporary file, fsync, then a
/// hard link to the final name, which never overwrites) and never changed afterwards.
///
/// Point it at another disk, a WORM mount or a synced folder. ``AuditStore/verify(againstAnchors:publicKeys:)``
/// reads it back.
public struct DirectoryAnchor: AnchorSink {
    /// The directory.
    public let path: String

    /// An anchor in `path` (created on first write if missing).
    public init(path: String) { self.path = path }

    public var name: String { path }

    /// The mode of an anchor file: read-only for everyone (checkpoints are public statements).
    static let fileMode: Platform.FileMode = 0o444

    /// The file name of a checkpoint in the directory.
    public static func fileName(of checkpoint: Checkpoint) -> String {
        let seq = String(checkpoint.seq)
        return "\(checkpoint.storeID.hex)-\(String(repeating: "0", count: max(0, 20 - seq.count)))\(seq).json"
    }

    public func write(_ checkpoint: Checkpoint) async throws {
        try writeSync(checkpoint)
    }

    func writeSync(_ checkpoint: Checkpoint) throws(AuditError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw AuditError(.storage, "cannot create the anchor directory \(path): \(error.localizedDescription)")
        }
        let final = path + "/" + Self.fileName(of: checkpoint)
        let bytes = Array((checkpoint.json + "\n").utf8)
        if FileManager.default.fileExists(atPath: final) {
            try Self.acceptExisting(final, for: checkpoint)
            return
        }
        let temp = path + "/.tmp-\(Platform.processID)-\(UInt64.random(in: 0...UInt64.max))"
        // Read-only once written (0444): an anchor is never rewritten, by AuditDB or by accident.
        let fd = Platform.createExclusive(temp, mode: Self.fileMode)
        guard fd >= 0 else {
            throw AuditError(.storage, "cannot write to the anchor directory \(path): \(Platform.errorMessage(Platform.errorCode))")
        }
        var ok = Platform.setMode(fd, Self.fileMode) && FileBytes.writeAllAndSync(fd, bytes)
        Platform.close(fd)
        // link() fails with EEXIST instead of replacing, unlike rename().
        ok = ok && Platform.link(temp, to: final)
        let code = Platform.errorCode
        Platform.unlink(temp)
        if !ok, code == Platform.fileExists {
            // Another process anchored this seq between our check and our link.
            try Self.acceptExisting(final, for: checkpoint)
            return
        }
        guard ok else {
            throw AuditError(.storage, "could not write the anchor \(final): \(Platform.errorMessage(code))")
        }
        let dir = Platform.openForReading(path)
        if dir >= 0 {
            _ = Platform.sync(dir)  // makes the new name durable; a directory that refuses fsync still has the file
            Platform.close(dir)
        }
    }

    /// An anchor file already at `file` is never overwritten. It is fine when it states the same
    /// log as `checkpoint` (same store, seq, chain head and Merkle root): another process, or an
    /// earlier run, checkpointed the same rows at another time. Anything else is refused.
    static func acceptExisting(_ file: String, for checkpoint: Checkpoint) throws(AuditError) {
        let bytes = try FileBytes.read(file, what: "anchor file", limit: 1 << 16)
        if bytes == Array((checkpoint.json + "\n").utf8) { return }
        let existing: Checkpoint
        do {
            existing = try Checkpoint(json: Data(bytes))
        } catch {
            throw AuditError(.storage, "the anchor \(file) already exists and is not a checkpoint (\(error.message)); it is never overwritten (investigate: tampering)")
        }
        guard existing.selfInvalidity() == nil, existing.storeID == checkpoint.storeID, existing.seq == checkpoint.seq,
              existing.chainHead == checkpoint.chainHead, existing.merkleRoot == checkpoint.merkleRoot
        else {
            throw AuditError(.storage, "the anchor \(file) already holds a different checkpoint for seq \(checkpoint.seq); it is never overwritten (investigate: two stores with one id, or tampering)")
        }
    }

    /// Reads the checkpoints at `path`: every `*.json` file of a directory, or one file.
    /// Returns each with the file it came from; a file that is not a valid checkpoint is
    /// returned as an error message instead.
    static func read(_ path: String) throws(AuditError) -> [(file: String, checkpoint: Result<Checkpoint, AuditError>)] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw AuditError(.invalidInput, "no anchor at \(path); pass the directory or file checkpoints were written to", field: "--anchor")
        }
        var files: [String]
        if isDirectory.boolValue {
            do {
                files = try FileManager.default.contentsOfDirectory(atPath: path)
                    .filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.sorted().map { path + "/" + $0 }
            } catch {
                throw AuditError(.storage, "cannot list the anchor directory \(path): \(error.localizedDescription)")
            }
        } else {
            files = [path]
        }
        // A file that cannot be read as a checkpoint (not a regular file, too large, not JSON) is
        // that file's finding, not an error that stops the whole check (a planted FIFO must not block it).
        return files.map { (file: String) in
            (file, Result { () throws(AuditError) in
                try Checkpoint(json: Data(try FileBytes.read(file, what: "anchor file", limit: 1 << 16)))
            })
        }
    }
}
