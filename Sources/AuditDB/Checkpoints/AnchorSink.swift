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
    /// Stores `checkpoint` durably, and beside it, if the sink keeps them, the consistency
    /// proof from the previous checkpoint it holds of the same store (FORMAT.md section 22),
    /// which it asks `prover` for. ``AuditStore/checkpoint(signer:anchors:)`` calls this one.
    ///
    /// The default implementation calls ``write(_:)`` and keeps no proof.
    func write(_ checkpoint: Checkpoint, prover: ConsistencyProver) async throws
    /// A name for messages, e.g. the path.
    var name: String { get }
}

extension AnchorSink {
    public func write(_ checkpoint: Checkpoint, prover: ConsistencyProver) async throws {
        try await write(checkpoint)
    }
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
    /// Whether a missing directory is created (mode 0755) on the first write.
    public let createsDirectory: Bool

    /// An anchor in `path`. With `createsDirectory` (the default) a missing directory is created
    /// on the first write; without it, a missing directory fails the write: choose that for a
    /// mount point, which, once unmounted, would otherwise take the anchors on the local disk.
    public init(path: String, createsDirectory: Bool = true) {
        self.path = path
        self.createsDirectory = createsDirectory
    }

    public var name: String { path }

    /// The mode of an anchor file: read-only for everyone (checkpoints are public statements).
    static let fileMode: Platform.FileMode = 0o444

    /// The file name of a checkpoint in the directory.
    public static func fileName(of checkpoint: Checkpoint) -> String {
        let seq = String(checkpoint.seq)
        return "\(checkpoint.storeID.hex)-\(String(repeating: "0", count: max(0, 20 - seq.count)))\(seq).json"
    }

    /// The file name of a consistency proof in the directory (section 22.3).
    public static func fileName(of proof: ConsistencyProof) -> String {
        func digits(_ n: Int64) -> String { let s = String(n); return String(repeating: "0", count: max(0, 20 - s.count)) + s }
        return "\(proof.storeID.hex)-\(digits(proof.fromSeq))-\(digits(proof.toSeq))\(proofSuffix)"
    }

    /// How a proof file's name ends; such files are not checkpoints.
    static let proofSuffix = ".consistency.json"

    public func write(_ checkpoint: Checkpoint) async throws {
        try writeSync(checkpoint)
    }

    /// Writes `checkpoint` and the consistency proof from the newest checkpoint of the same
    /// store this directory already holds below its seq. The proof is made first: a store whose
    /// log does not extend what the directory holds (a fork, a rollback) gets the prover's
    /// error and writes nothing.
    public func write(_ checkpoint: Checkpoint, prover: ConsistencyProver) async throws {
        var proof: ConsistencyProof?
        if let previous = try previousCheckpoint(before: checkpoint) {
            proof = try await prover.proof(from: previous)
        }
        try writeSync(checkpoint)
        if let proof {
            try writeFile(Self.fileName(of: proof), Array((proof.json + "\n").utf8)) { file throws(AuditError) in
                throw AuditError(.storage, "the anchor \(file) already holds a different consistency proof; it is never overwritten (investigate: tampering)")
            }
        }
    }

    /// The newest valid checkpoint file of the same store below `checkpoint`'s seq, if any.
    func previousCheckpoint(before checkpoint: Checkpoint) throws(AuditError) -> Checkpoint? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let prefix = checkpoint.storeID.hex + "-", mine = Self.fileName(of: checkpoint)
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw AuditError(.storage, "cannot list the anchor directory \(path): \(error.localizedDescription)")
        }
        // 20-digit seqs: name order is seq order.
        let older = names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".json") && !$0.hasSuffix(Self.proofSuffix) && $0 < mine }
        for name in older.sorted().reversed() {
            guard let bytes = try? FileBytes.read(path + "/" + name, what: "anchor file", limit: 1 << 16),  // an unreadable file is verify's finding, not this write's
                  let cp = try? Checkpoint(json: Data(bytes)),
                  cp.storeID == checkpoint.storeID, cp.seq < checkpoint.seq, cp.selfInvalidity() == nil
            else { continue }
            return cp
        }
        return nil
    }

    /// Checks, without writing anything, that the directory exists and is a directory: for a
    /// caller that should refuse a missing anchor before it starts long work (a first checkpoint
    /// verifies the whole store) rather than when the checkpoint is written.
    /// - Throws: ``AuditError`` `storage` naming the path and the fix.
    public func checkDirectoryExists() throws(AuditError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw missingDirectory(nothingAnchored: false)
        }
        guard isDirectory.boolValue else { throw AuditError(.storage, "the anchor directory \(path) is not a directory") }
    }

    private func missingDirectory(nothingAnchored: Bool) -> AuditError {
        AuditError(.storage, "the anchor directory \(path) does not exist (an unmounted volume?)\(nothingAnchored ? "; nothing was anchored there" : ""). Mount it, or create it (mkdir -m 755 \(path))")
    }

    func writeSync(_ checkpoint: Checkpoint) throws(AuditError) {
        try writeFile(Self.fileName(of: checkpoint), Array((checkpoint.json + "\n").utf8)) { file throws(AuditError) in
            try Self.acceptExisting(file, for: checkpoint)
        }
    }

    /// Writes `bytes` to `name` in the directory unless a file has that name; then the file is
    /// left alone when it holds the same bytes, and `existing` decides otherwise.
    func writeFile(_ name: String, _ bytes: [UInt8], existing: (String) throws(AuditError) -> Void) throws(AuditError) {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard createsDirectory else { throw missingDirectory(nothingAnchored: true) }
            do {
                // Anchors are public statements: readable by all, written by their owner.
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o755])
            } catch {
                throw AuditError(.storage, "cannot create the anchor directory \(path): \(error.localizedDescription)")
            }
        } else if !isDirectory.boolValue {
            throw AuditError(.storage, "the anchor directory \(path) is not a directory")
        }
        let final = path + "/" + name
        func accept() throws(AuditError) {
            if (try? FileBytes.read(final, what: "anchor file", limit: 1 << 16)) == bytes { return }  // unreadable: `existing` reports it
            try existing(final)
        }
        if FileManager.default.fileExists(atPath: final) {
            try accept()
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
            try accept()
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
                    .filter { $0.hasSuffix(".json") && !$0.hasSuffix(proofSuffix) && !$0.hasPrefix(".") }.sorted().map { path + "/" + $0 }
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
