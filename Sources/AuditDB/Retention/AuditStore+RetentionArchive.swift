import CAuditCore
import Foundation
import GRDB

/// `retain --archive`: each batch's rows exported to a verified bundle before they expire, and a
/// bundle already at the batch's name reused only when it is exactly that batch's archive.
extension AuditStore {
    /// Exports rows `range` to `archive` (or finds the bundle an interrupted run wrote), and
    /// checks it as an outsider would before anything is expired: it must list every seq of
    /// `expiring`, with nothing withheld.
    func archiveRows(_ range: ClosedRange<Int64>, expiring: [Int64], to archive: RetentionArchive) async throws -> ExpiryRecord.Archive {
        let name = "expiry-\(range.lowerBound)-\(range.upperBound)"
        let path = archive.directory + "/" + name
        try archive.checkDirectory()
        if !FileManager.default.fileExists(atPath: archive.directory) {
            do {
                try FileManager.default.createDirectory(atPath: archive.directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw AuditError(.storage, "cannot create the archive directory \(archive.directory): \(error.localizedDescription)")
            }
        }
        var stale = false
        if FileManager.default.fileExists(atPath: path) {
            // Whatever is at that name must be this batch's archive before anything is done with
            // it, even its removal as stale: another store's archive in a shared directory, or an
            // export made by hand, is refused and left alone.
            _ = try await checkArchive(path, range: range, expiring: expiring, publicKeys: archive.signer.publicKeys)
            if try await archiveIsStale(path, name: name, publicKeys: archive.signer.publicKeys) {
                // Written by an interrupted run before an erasure: it would keep the erased values.
                stale = true
                do {
                    try FileManager.default.removeItem(atPath: path)
                } catch {
                    throw AuditError(.storage, "cannot remove \(path), an archive bundle written before an erasure (it shows values erased since): \(error); nothing of this batch was expired. Remove it and run again")
                }
            }
        }
        if !FileManager.default.fileExists(atPath: path) {
            // A new checkpoint after a stale bundle: proven against the old one, the new bundle
            // would look stale again (an erasure follows that checkpoint).
            let covered = try await usableCheckpoint(trusting: archive.signer.publicKeys)?.checkpoint.seq ?? 0
            if stale || covered < range.upperBound {
                _ = try await checkpoint(signer: archive.signer)
            }
            _ = try await export(to: path, filter: ExportFilter(seqs: range), redact: [], signer: archive.signer, limit: nil, progress: nil,
                                 accessBy: nil, masking: .none, recordingAccess: false)
        }
        return try await checkArchive(path, range: range, expiring: expiring, publicKeys: archive.signer.publicKeys)
    }

    /// Checks the bundle at `path` as an outsider would, and that it is exactly the archive of
    /// rows `range` of this store: seqs first...last and no other condition, nothing withheld,
    /// every seq of `expiring` listed. Returns what the expiry entry records of it.
    func checkArchive(_ path: String, range: ClosedRange<Int64>, expiring: [Int64], publicKeys: CheckpointPublicKeys) async throws
        -> ExpiryRecord.Archive
    {
        let name = URL(fileURLWithPath: path).lastPathComponent
        let verification = try await ExportBundle.verify(at: path, publicKeys: publicKeys, requireStatement: true)
        guard verification.isCompletenessAttested else {
            throw AuditError(.integrityViolation, "the archive bundle \(path) does not verify with the checkpoint key (\(verification)); nothing of this batch was expired. Move it away (or archive to another directory) and run again")
        }
        let manifest: [UInt8]
        do {
            manifest = Array(try Data(contentsOf: URL(fileURLWithPath: path + "/" + ExportBundle.manifestFile)))
        } catch {
            throw AuditError(.storage, "cannot read back \(path)/\(ExportBundle.manifestFile): \(error)")
        }
        // A bundle already at this name (an interrupted run's, or anything else put there) is the
        // archive of record only if it is exactly what this run writes.
        let refuse = { (why: String) in
            AuditError(.integrityViolation, "the archive bundle \(path) is not this batch's archive: \(why); nothing of this batch was expired. "
                + "Move it away (or archive to another directory) and run again")
        }
        guard let checkpoint = verification.checkpoint, checkpoint.storeID == storeID else {
            throw refuse("it holds rows of store \(verification.checkpoint?.storeID.hex ?? "?"), not of this store \(storeID.hex)")
        }
        // The same store id is not the same log: a copy of the file that grew apart (a fork, a
        // restored backup) has its own rows. The checkpoint's chain head must be this log's MAC at
        // its seq, which the chain ties to every row before it.
        let head = try await pool.read { db in try StoredMacs(db).mac(at: checkpoint.seq) }
        guard let head, head == checkpoint.chainHead else {
            throw refuse("its checkpoint (seq \(checkpoint.seq)) is not of this store's log (another copy of the store, grown apart from this one)")
        }
        guard case .success(let read) = ExportBundle.Manifest.read(manifest, checkpoint: checkpoint),
              let filter = read.object["filter"]?.object
        else { throw refuse("its manifest cannot be read") }
        guard filter["fromSeq"]?.integer == range.lowerBound, filter["toSeq"]?.integer == range.upperBound else {
            throw refuse("it does not hold seqs \(range.lowerBound)...\(range.upperBound)")
        }
        let seqKeys = [JSONObject.Key("fromSeq"), JSONObject.Key("toSeq")]
        if let other = filter.sortedKeys.first(where: { !seqKeys.contains(JSONObject.Key($0)) && filter[$0]?.isNull != true }) {
            throw refuse("its filter has a `\(other)` condition besides the seq range")
        }
        guard let redacted = read.redacted, redacted.isEmpty else {
            throw refuse("it withholds fields (\((read.redacted ?? []).map(\.rawValue).joined(separator: ", ")))")
        }
        let listed = Set(read.seqs)
        if let absent = expiring.first(where: { !listed.contains($0) }) {
            throw refuse("it does not list row \(absent), which this batch expires")
        }
        var digest = [UInt8](repeating: 0, count: 32)
        adb_sha256(manifest, manifest.count, &digest)
        return ExpiryRecord.Archive(bundle: name, manifest: digest)
    }

    /// Whether the bundle an interrupted run left at `path` may show values erased since it was
    /// made: an erasure entry was appended after the checkpoint it is proven against (or it has
    /// none that reads), and no expiry entry names it yet (then it is the archive of record, and
    /// stays). Such a bundle is exported again rather than reused.
    func archiveIsStale(_ path: String, name: String, publicKeys: CheckpointPublicKeys) async throws -> Bool {
        let made = try await ExportBundle.verify(at: path, publicKeys: publicKeys, requireStatement: true).checkpoint?.seq ?? 0
        return try await pool.read { db in
            // AuditDB's own entries, through its own index (HoldLog.source): never the planner's choice.
            let from = "FROM audit_entries" + HoldLog.source(try HoldLog.mustReadTable(db)) + " WHERE action >= 'auditdb.' AND action < 'auditdb/' AND action = ?"
            let erasedSince = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 \(from) AND seq > ?)",
                                                arguments: [ErasureRecord.action, made]) ?? false
            guard erasedSince else { return false }
            let named = try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 \(from) AND instr(details, ?) > 0)",
                                          arguments: [ExpiryRecord.action, "\"bundle\":\"\(name)\""]) ?? false
            return !named
        }
    }
}
