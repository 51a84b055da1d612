public import CoreMetrics
import Foundation
public import Logging

extension AuditStore {
    /// How a store behaves.
    public struct Configuration: Sendable {
        /// When appends are acknowledged. Default: ``Durability/synchronous``.
        public var durability: Durability = .synchronous
        /// Where AuditDB logs (appends at trace level, failures at error level). Default: nowhere.
        public var logger: Logger?
        /// How long to wait for a lock held by another connection (another process appending,
        /// scanning or checkpointing) before failing with `busy`. Default 30 s: with the former
        /// 5 s, 2 of 3,200 appends from many concurrent CLI writers failed. SQLite counts it in
        /// milliseconds in 32 bits: a longer wait (up to `Duration`'s largest, to mean "for
        /// ever") waits at most 2,147,483 s, about 24.8 days; a negative one does not wait.
        public var busyTimeout: Duration = .seconds(30)

        /// ``busyTimeout`` within what SQLite takes (whole seconds below `Int32.max` ms, so that
        /// GRDB's seconds-times-1000 stays exact): every wait for a lock uses this, so that no
        /// value set by an app traps in a conversion.
        var lockWait: Duration {
            busyTimeout < .zero ? .zero : min(busyTimeout, .seconds(Int64(Int32.max) / 1_000))
        }
        /// If set, opening (and verifying) a store with another id fails / is reported.
        public var expectedStoreID: StoreID?
        /// The public checkpoint keys. When set, verification trusts only the store's own
        /// checkpoints signed by them (a cut tail below one is `truncated`; others are
        /// `foreign-row`); when nil, a recorded checkpoint is checked against the public key it
        /// names itself, which a forged row can also pass (the finding then says so).
        public var checkpointPublicKeys: CheckpointPublicKeys?
        /// If true, a small append on an idle store is written on the calling thread: one thread
        /// hop and one continuation less (about 20 µs of a durable append's ~150 µs here,
        /// benchmarks/results/history.md, "2. Durable single append"), but that thread then waits for the fsync and for
        /// SQLite's busy handler (up to ``busyTimeout``). Default false: every write runs on
        /// GRDB's writer queue and no cooperative thread ever blocks on I/O. Turn it on only where
        /// appends come from threads you own, or where a stalled cooperative thread is acceptable.
        public var writesOnCallerThread = false
        /// The most events written in one group-commit transaction.
        public var maximumGroupSize: Int = 50_000
        /// The page cache of each read connection (there are at most 4), in bytes: applied as
        /// `PRAGMA cache_size`. Default 32 MiB, allocated only as pages are read. A rare actor's
        /// or resource id's page seeks one index bucket per 16,384 rows; with SQLite's default of
        /// 2 MB the interior pages of the indexes do not stay cached across those seeks on a
        /// 10M-row store, and each seek also reads them from the file (docs/performance.md,
        /// "Rare keys: the readers' page cache"). Lower it where memory is scarcer than time;
        /// values under 1 KiB count as 1 KiB.
        public var readerCacheBytes: Int = 32 << 20
        /// A cap on the database file's size, in bytes (applied as `PRAGMA max_page_count`). An
        /// append that would grow the store past it fails with ``AuditError/Code/diskFull`` and
        /// writes nothing. Default: no cap beyond SQLite's own.
        public var maximumSizeBytes: Int?
        /// If true, ``AuditStore/open(at:keys:configuration:)`` first applies pending schema
        /// migrations with ``AuditStore/migrate(at:keys:backup:configuration:progress:)`` (backup included).
        /// Default false: opening a store that needs migrations fails with `migrationRequired`.
        public var migratesOnOpen = false
        /// If true, ``AuditStore/open(at:keys:configuration:)`` opens the file read-only: queries,
        /// tails, status and verification work, and every write (append, checkpoint, hold,
        /// erasure, expiry…) throws ``AuditError/Code/readOnly``. Opening and closing then write
        /// nothing to the file or its -wal, so readers go on while another process holds a write
        /// transaction (an append, a `compact`), and work on a read-only or full file system. In
        /// a directory this process cannot write, where SQLite cannot make the `-shm` file, the
        /// store is opened immutable, and only when it is archived: the file writable by no one
        /// (nothing can be writing it) and its `-wal` and `-journal` empty or absent (nothing
        /// could be missed); otherwise the open throws `readOnly` saying what to do.
        /// Default false. It cannot be combined with ``migratesOnOpen``.
        public var readOnly = false
        /// A prefix for metric labels. Default `auditdb`.
        public var metricsPrefix: String = "auditdb"
        /// Where metrics go. Default: the process-wide `MetricsSystem` factory.
        ///
        /// Metrics: `<prefix>_appended_entries_total`, `<prefix>_append_failures_total` (rejected
        /// events and failed appends), `<prefix>_commits_total`, `<prefix>_commit_duration`.
        public var metricsFactory: (any MetricsFactory)?

        /// The defaults.
        public init() {}
    }
}
