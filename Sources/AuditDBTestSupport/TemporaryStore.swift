public import AuditDB

/// A new store in a ``TemporaryDirectory`` of its own, signed with in-memory keys: the usual
/// start of a test. The directory (and the store file) goes away with the last copy of this
/// value; close the store first.
///
/// ```swift
/// let temporary = try await TemporaryStore()
/// try await temporary.store.append(AuditEvent(actor: "u1", action: "login"))
/// try await temporary.store.close()
/// let reopened = try await temporary.open()   // the same file, the same keys
/// ```
public struct TemporaryStore: Sendable {
    /// The directory that holds the store (and anything else the test puts there).
    public let directory: TemporaryDirectory
    /// The store's keys (``KeyRing/inMemory(versions:)`` unless others were given).
    public let keys: KeyRing
    /// The open store.
    public let store: AuditStore

    /// The store file.
    public var path: String { store.path }

    /// Creates a store named `fileName` in a new temporary directory.
    ///
    /// - Parameters:
    ///   - keys: The key ring; by default one fresh in-memory key, version 1.
    ///   - configuration: The store's configuration.
    ///   - fileName: The store file's name inside the directory.
    /// - Throws: ``AuditError`` from ``AuditStore/create(at:keys:configuration:)``, or the file
    ///   system's error if the directory cannot be made.
    public init(keys: KeyRing? = nil, configuration: AuditStore.Configuration = AuditStore.Configuration(),
                fileName: String = "audit.db") async throws
    {
        let directory = try TemporaryDirectory()
        let keys = try keys ?? KeyRing.inMemory()
        self.directory = directory
        self.keys = keys
        self.store = try await AuditStore.create(at: directory.path(fileName), keys: keys, configuration: configuration)
    }

    /// Opens the store file again with the same keys (for example after ``AuditStore/close()``,
    /// to check what a restart sees).
    /// - Throws: ``AuditError`` from ``AuditStore/open(at:keys:configuration:)``.
    public func open(configuration: AuditStore.Configuration = AuditStore.Configuration()) async throws -> AuditStore {
        try await AuditStore.open(at: store.path, keys: keys, configuration: configuration)
    }
}
