import GRDB

extension Database {
    /// SQLite's default page cache, in KiB (`PRAGMA cache_size = -2000`).
    static let defaultPageCacheKiB = 2_000

    /// Runs `body` with SQLite's default page cache on this connection, then restores the
    /// connection's own (``AuditStore/Configuration/readerCacheBytes`` on a read connection).
    ///
    /// A full verification pass reads every page once, on up to four connections at a time. With
    /// a 32 MiB cache per connection each page read lands in a buffer that is cold in the CPU's
    /// caches, and `scan(.full)` of a 1M-row store ran at 325-386k rows/s against 586-692k with
    /// 2 MB (docs/performance.md, "Rare keys: the readers' page cache"). Shrinking the cache
    /// drops that connection's cached pages; queries warm it again.
    func withStreamingPageCache<T>(_ body: () throws -> T) throws -> T {
        let own = try Int.fetchOne(self, sql: "PRAGMA cache_size") ?? -Self.defaultPageCacheKiB
        guard own != -Self.defaultPageCacheKiB else { return try body() }
        try execute(sql: "PRAGMA cache_size = -\(Self.defaultPageCacheKiB)")
        let result = Result { try body() }
        try execute(sql: "PRAGMA cache_size = \(own)")
        return try result.get()
    }
}
