import GRDB

extension AuditStore {
    /// Verified entries as they are appended: every entry after `seq` that matches `query`,
    /// oldest first, then each new one as it is committed (`tail -f` for the audit log).
    ///
    /// The store is polled: one verified page read (``page(_:)``) per `pollInterval` while
    /// nothing new arrives, and pages back to back while entries are waiting. Every entry is
    /// checked (MAC and chain link) as it is read, exactly as ``page(_:)`` checks it: a row that
    /// fails verification throws ``AuditError/Code/integrityViolation`` naming it (or, with
    /// ``EntryQuery/UnverifiedRows/mark``, is returned marked) and is never skipped. Entries come
    /// in seq order without gaps in what matches, so the last seq handed out is an exact resume
    /// point: follow again after it and nothing is lost or repeated.
    ///
    /// The sequence ends when its task is cancelled (for example at a graceful shutdown), when
    /// `query.seqs` has an upper bound and it is reached, or, with `follow: false`, as soon as
    /// it has caught up with the store.
    ///
    /// ```swift
    /// for try await entry in store.follow(after: lastShipped, mac: lastMac, matching: EntryQuery(tenant: "acme")) {
    ///     try await ship(entry)
    ///     (lastShipped, lastMac) = (entry.seq, entry.mac)
    /// }
    /// ```
    ///
    /// The last entry handed out must stay what it was: before each read, the stored MAC at its
    /// seq (of the row, or of its tombstone once it expired) is compared with the MAC handed out.
    /// A store rolled back below it (an older copy of the file put in place) and grown again, or
    /// replaced, would otherwise have its new rows at the seqs already passed skipped without a
    /// word; the read throws ``AuditError/Code/integrityViolation`` instead. Pass `mac` with `seq`
    /// (the ``AuditEntry/mac`` of the entry at `seq`, e.g. saved with the resume point) to check
    /// the start too.
    ///
    /// - Parameters:
    ///   - seq: Start after this seq (0: from the first entry).
    ///   - mac: The MAC of the entry at `seq` when it was handed out, if known.
    ///   - query: The filters. Its order, limit, cursor and `afterSeq` are ignored.
    ///   - pollInterval: How long to wait before looking again once caught up.
    ///   - pageSize: Entries read per page (1...10,000).
    ///   - follow: If false, end once caught up instead of waiting for new entries.
    /// - Returns: An `AsyncSequence` of entries; ``AuditFollowStream/batches`` gives them a page
    ///   at a time (to save a resume point once per page).
    public func follow(after seq: Int64 = 0, mac: [UInt8]? = nil, matching query: EntryQuery = EntryQuery(),
                       pollInterval: Duration = .milliseconds(500), pageSize: Int = 1_000,
                       follow: Bool = true) -> AuditFollowStream
    {
        var query = query
        query.descending = false
        query.cursor = nil
        query.afterSeq = nil
        query.limit = pageSize
        return AuditFollowStream(store: self, query: query, start: max(0, seq), startMac: seq > 0 ? mac : nil,
                                 pollInterval: pollInterval, follow: follow)
    }

    /// Refuses to go on after `seq` when the stored MAC there is not `mac`, the one handed out.
    /// Runs in the read transaction of the page that follows (one snapshot: a store replaced
    /// between the check and the read cannot slip new rows past it).
    static func checkHandedOut(_ db: Database, seq: Int64, mac: [UInt8]) throws {
        let stored = try StoredMacs(db).mac(at: seq)
        guard stored != mac else { return }
        throw AuditError(
            .integrityViolation,
            "the entry at seq \(seq), the last one handed out, is \(stored == nil ? "gone" : "no longer the one read (its MAC differs)"): the store was rolled back, replaced or tampered with since, and rows after it could be skipped unseen. Nothing more is read. Run `auditdb verify` (with --anchor if checkpoints are anchored), then resume from a position you trust")
    }
}

/// The entries of ``AuditStore/follow(after:mac:matching:pollInterval:pageSize:follow:)``, one at a
/// time; ``batches`` gives the same entries one verified page at a time.
public struct AuditFollowStream: AsyncSequence, Sendable {
    public typealias Element = AuditEntry

    let store: AuditStore
    let query: EntryQuery
    let start: Int64
    let startMac: [UInt8]?
    let pollInterval: Duration
    let follow: Bool

    /// The same entries, one non-empty page (one read transaction) at a time.
    public var batches: Batches { Batches(stream: self) }

    public func makeAsyncIterator() -> Iterator { Iterator(pages: batches.makeAsyncIterator()) }

    /// Hands out the entries of one page after the other.
    public struct Iterator: AsyncIteratorProtocol {
        var pages: Batches.Iterator
        var buffer: [AuditEntry] = []
        var index = 0

        public mutating func next() async throws -> AuditEntry? {
            while index == buffer.count {
                guard let page = try await pages.next() else { return nil }
                buffer = page
                index = 0
            }
            defer { index += 1 }
            return buffer[index]
        }
    }

    /// Pages of new entries, each verified as read; never empty.
    public struct Batches: AsyncSequence, Sendable {
        public typealias Element = [AuditEntry]
        let stream: AuditFollowStream

        public func makeAsyncIterator() -> Iterator { Iterator(stream: stream, after: stream.start, afterMac: stream.startMac) }

        /// Polls the store until a page holds entries.
        public struct Iterator: AsyncIteratorProtocol {
            let stream: AuditFollowStream
            /// The last seq handed out (or the start).
            public private(set) var after: Int64
            /// The MAC of the entry at ``after`` as it was handed out (nil for the start without one).
            public private(set) var afterMac: [UInt8]?
            var finished = false

            init(stream: AuditFollowStream, after: Int64, afterMac: [UInt8]?) {
                self.stream = stream
                self.after = after
                self.afterMac = afterMac
            }

            public mutating func next() async throws -> [AuditEntry]? {
                while !finished {
                    if Task.isCancelled { break }
                    if let upper = stream.query.seqs?.upperBound, after >= upper { break }
                    var query = stream.query
                    query.afterSeq = after
                    let page: QueryPage
                    do {
                        // A file moved over the store's path is not read by this store: stop, as
                        // for a store rolled back under it (the caller restarts on the new file).
                        do {
                            try stream.store.checkStillAtPath()
                        } catch {
                            throw AuditError(.integrityViolation, error.message)
                        }
                        let check = afterMac.map { mac in { @Sendable [after] (db: Database) throws in try AuditStore.checkHandedOut(db, seq: after, mac: mac) } }
                        page = try await stream.store.page(query, forcedTenant: nil, before: check)
                    } catch {
                        // Cancelled while reading: nothing of this page was handed out.
                        if Task.isCancelled { break }
                        throw error
                    }
                    if let last = page.entries.last {
                        after = last.seq
                        afterMac = last.mac
                        return page.entries
                    }
                    guard stream.follow else { break }
                    do {
                        try await Task.sleep(for: stream.pollInterval.sleepable)
                    } catch {
                        break
                    }
                }
                finished = true
                return nil
            }
        }
    }
}
