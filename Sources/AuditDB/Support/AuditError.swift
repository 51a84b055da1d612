public import Foundation

/// An error from AuditDB: what happened, how to fix it, and the underlying cause.
///
/// Match on ``code`` (an open set of values, so new codes can be added without breaking
/// callers); show ``message`` to people. Messages never contain key bytes or bound values
/// of stored rows.
///
/// ```swift
/// do { try await store.append(event) }
/// catch let error as AuditError where error.code == .invalidInput {
///     print("rejected field \(error.field ?? "?"): \(error.message)")
/// }
/// ```
public struct AuditError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// A stable, machine-readable name such as `invalid-input`.
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// An event or argument broke a documented rule; ``AuditError/field`` names the field.
        public static let invalidInput = Code("invalid-input")
        /// A key version needed to sign or verify is not in the key ring.
        public static let keyUnavailable = Code("key-unavailable")
        /// A key in the ring does not match what the store holds under its version (it fails the
        /// store header's MAC and the row tags of the rows that version signed): a mistyped or
        /// another store's key. Refused before anything is written.
        public static let wrongKey = Code("wrong-key")
        /// A key file is readable by group or others, or is not a regular file.
        public static let keyFileInsecure = Code("key-file-insecure")
        /// A key file or key variable could not be parsed.
        public static let invalidKeyFile = Code("invalid-key-file")
        /// The store file does not exist.
        public static let storeNotFound = Code("store-not-found")
        /// `create` was asked to create a store where one already exists.
        public static let storeExists = Code("store-exists")
        /// The file is an SQLite database but not an AuditDB store.
        public static let notAStore = Code("not-a-store")
        /// The store was written by a newer AuditDB (unknown migrations); it is never downgraded.
        public static let schemaTooNew = Code("schema-too-new")
        /// The store needs migrations this binary knows; run `auditdb migrate`.
        public static let migrationRequired = Code("migration-required")
        /// The store is not the one that was expected (a different store id).
        public static let storeIdentityMismatch = Code("store-identity-mismatch")
        /// Verification found the store damaged; the operation was refused.
        public static let integrityViolation = Code("integrity-violation")
        /// The database is locked by another connection for longer than the busy timeout.
        public static let busy = Code("busy")
        /// The file, its directory or its WAL/SHM files cannot be written.
        public static let readOnly = Code("read-only")
        /// The disk (or the configured page limit) is full.
        public static let diskFull = Code("disk-full")
        /// The file is not a database or its pages are damaged.
        public static let corrupt = Code("corrupt")
        /// Any other storage failure (I/O error, cannot open, ...).
        public static let storage = Code("storage")
        /// The store was closed.
        public static let closed = Code("closed")
        /// The operation is outside what this handle may do (e.g. another tenant's entries
        /// through a tenant-scoped handle).
        public static let permissionDenied = Code("permission-denied")
        /// No legal hold has the id given (``AuditStore/releaseHold(id:reason:releasedBy:)``).
        public static let holdNotFound = Code("hold-not-found")
        /// The legal hold named was released already; nothing was written.
        public static let holdAlreadyReleased = Code("hold-already-released")
        /// A server's TLS certificate failed verification: no trusted CA signed it, or it was not
        /// issued for the host connected to (a PostgreSQL witness or central database reached
        /// with `sslmode=verify-ca`, `verify-full`, or with `sslrootcert`). Nothing was sent.
        public static let certificateRejected = Code("certificate-rejected")
        /// A long operation was stopped (its task cancelled, e.g. by SIGTERM) between two of its
        /// transactions: what it committed before stays, the message says how far it got and how
        /// to finish.
        public static let cancelled = Code("cancelled")
    }

    /// What kind of failure this is.
    public let code: Code
    /// What happened and what to do about it.
    public let message: String
    /// For ``Code/invalidInput``: the field (or argument) that broke a rule.
    public let field: String?
    /// The lower-level error, if any (for example a GRDB `DatabaseError`).
    public let underlying: (any Error & Sendable)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, field: String? = nil, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.field = field
        self.underlying = underlying
    }

    public var description: String {
        var text = "AuditDB error [\(code)]: \(message)"
        if let underlying { text += " (cause: \(underlying))" }
        return text
    }

    static func invalid(_ field: String, _ rule: String) -> AuditError {
        AuditError(.invalidInput, "\(field): \(rule)", field: field)
    }
}

extension AuditError: LocalizedError {
    public var errorDescription: String? { description }
}

/// Runs `body` (typically a `rethrows` buffer accessor whose closure throws ``AuditError``)
/// and keeps its error typed.
func typedAuditErrors<R>(_ body: () throws -> R) throws(AuditError) -> R {
    do {
        return try body()
    } catch let error as AuditError {
        throw error
    } catch {
        throw AuditError(.storage, "unexpected error: \(error)", underlying: error as (any Error & Sendable))
    }
}
