public import Foundation

/// A fresh directory under the system's temporary directory, removed (with everything in it)
/// when the last reference to it goes away: one per test, so tests never share files.
///
/// ```swift
/// let directory = try TemporaryDirectory()
/// let store = try await AuditStore.create(at: directory.path("audit.db"), keys: try .inMemory())
/// ```
public final class TemporaryDirectory: Sendable {
    /// The directory.
    public let url: URL

    /// Creates a new, empty directory named `<prefix>-<UUID>`.
    /// - Throws: The file system's error if the directory cannot be created.
    public init(prefix: String = "auditdb-test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// The directory's path.
    public var path: String { url.path }

    /// The path of `name` inside the directory (nothing is created).
    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    deinit {
        do {
            try FileManager.default.removeItem(at: url)
        } catch {
            // A test's leftovers are not worth failing it over, but they are not hidden either.
            FileHandle.standardError.write(Data("AuditDBTestSupport: could not remove \(url.path): \(error)\n".utf8))
        }
    }
}
