/// Whether the store file is still the one this store opened.
extension AuditStore {
    /// Throws when the file at ``path`` is no longer the one this store opened (another device or
    /// inode, or none): a backup moved over it, a copy renamed into place, the file removed. An
    /// open store keeps reading and writing the old file, so a long-running reader (a scanner, a
    /// follower) would report on a file nobody sees any more.
    ///
    /// - Throws: ``AuditError`` `storeIdentityMismatch`, saying to restart on the file now there.
    public func checkStillAtPath() throws(AuditError) {
        guard let opened = fileIdentity else { return }  // could not be told at open: nothing to compare
        let now = Platform.identity(of: path)
        guard now != opened else { return }
        throw AuditError(
            .storeIdentityMismatch,
            "the file at \(path) is no longer the store this process opened (\(now == nil ? "it was removed" : "another file was put there, e.g. a backup moved over it")); "
                + "this process still reads the old file. Restart it to open the file now at that path")
    }
}
