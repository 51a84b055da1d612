import GRDB
import Synchronization

/// Key rotations as signed entries (docs/FORMAT.md section 10.1): the first row a new key
/// version signs in a store whose newest row another version signed is a rotation entry, in
/// the same transaction as the rows that made it sign. It names the version, the one before and
/// the key file's creation time — never key material — and is itself signed by the new version,
/// so the log shows when each version took over.
extension Appender {
    /// The action of a rotation entry.
    static let rotationAction = "auditdb.key.rotated"

    /// Appends the rotation entry if the signing key has not signed in this store yet and the
    /// newest row was signed by another version; returns its seq, or nil if none was needed.
    /// Runs inside the caller's write transaction.
    func insertRotationIfNeeded(_ db: Database) throws -> Int64? {
        let version = signer.version
        guard !state.withLock({ $0.knownKeyVersions.contains(version) }) else { return nil }
        let head = try Self.readHead(db).seq
        guard head > 0,
              let previous = try Int64.fetchOne(db, sql: "SELECT key_version FROM audit_entries WHERE seq = ?", arguments: [head]),
              previous != Int64(version)
        else { return nil }
        let event = AuditEvent(
            actor: "auditdb", action: Self.rotationAction, resourceType: "key", resourceId: String(version), severity: .notice,
            details: ["keyVersion": .int(Int64(version)), "previousKeyVersion": .int(previous),
                      "keyCreatedAt": signer.createdAt.map { .int($0.microsecondsSinceEpoch) } ?? .null])
        return try insertRows([[try EncodedEvent(validating: event)]], db, rotating: false)[0].lowerBound
    }

    /// Writes the rotation entry now, if one is due (``AuditStore/recordKeyRotation()``).
    func writeRotationIfNeeded() async throws -> Int64? {
        try await pool.writeWithoutTransaction { db in
            try self.setSynchronous(db, full: true)
            var seq: Int64?
            try Self.immediateTransaction(db) { seq = try self.insertRotationIfNeeded(db) }
            self.state.withLock { _ = $0.knownKeyVersions.insert(self.signer.version) }
            return seq
        }
    }
}

extension AuditStore {
    /// Records that the signing key took over, now rather than with the next append: appends the
    /// rotation entry (action `auditdb.key.rotated`) if the signing key has not signed in this
    /// store before and its newest row was signed by another version (`auditdb keys rotate
    /// --store`). Appends made with a new key write the entry themselves, first.
    /// - Returns: The entry's seq, or nil if none was due.
    /// - Throws: ``AuditError`` storage errors, `closed`.
    @discardableResult
    public func recordKeyRotation() async throws -> Int64? {
        do {
            return try await appender.writeRotationIfNeeded()
        } catch {
            throw AuditError.from(error, while: "record the key rotation")
        }
    }
}
