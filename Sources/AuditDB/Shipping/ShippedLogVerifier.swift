import CAuditCore

/// One shipped batch as the central database records it: the seqs it holds, the checkpoint (by
/// seq and signature) it is proven against, and the consistency proof from its last seq to it.
public struct ShippedBatchRecord: Sendable, Hashable {
    public var firstSeq: Int64
    public var lastSeq: Int64
    public var checkpointSeq: Int64
    public var checkpointSignature: [UInt8]
    /// The hashes of the consistency proof (FORMAT.md section 22), in RFC 9162 order.
    public var proof: [[UInt8]]

    /// A batch record.
    public init(firstSeq: Int64, lastSeq: Int64, checkpointSeq: Int64, checkpointSignature: [UInt8], proof: [[UInt8]]) {
        self.firstSeq = firstSeq
        self.lastSeq = lastSeq
        self.checkpointSeq = checkpointSeq
        self.checkpointSignature = checkpointSignature
        self.proof = proof
    }
}

/// What the central verifier found about one store's shipped entries.
public struct ShippedFinding: Sendable, Hashable, CustomStringConvertible {
    /// The kind of finding.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        /// The stable name used in text and JSON.
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A shipped row's value differs from what was signed (a shown field against its
        /// commitment, the values against the leaf hash, or the rows with their leaf hashes
        /// against the checkpoint's root), or a tombstone is not the one its expiry entry lists.
        public static let changed = Kind("changed")
        /// Seqs the shipped batches cover that have no row.
        public static let missing = Kind("missing")
        /// A row that no shipped batch covers, or a second row at one seq.
        public static let extra = Kind("extra")
        /// Rows whose batch names a checkpoint the witness does not hold validly signed under a
        /// registered key, so nothing proves them.
        public static let unproven = Kind("unproven")
        /// A batch record (its proof or checkpoint) was changed; its rows are proven by a later batch.
        public static let batchChanged = Kind("batch-changed")

        /// Every kind, in report order.
        public static let all: [Kind] = [.changed, .missing, .extra, .unproven, .batchChanged]
    }

    /// The kind.
    public let kind: Kind
    /// The seqs concerned.
    public let seqs: ClosedRange<Int64>
    /// What happened, and what it means.
    public let message: String

    public var description: String {
        let at = seqs.count == 1 ? "seq \(seqs.lowerBound)" : "seqs \(seqs.lowerBound)...\(seqs.upperBound)"
        return "\(kind) at \(at): \(message)"
    }
}

/// Checks one store's shipped entries against its checkpoints with public keys only: feed it the
/// entries in seq order (``add(_:)``), then ``finish()``.
///
/// Every entry must prove itself (``ShippedEntry/problem(storeID:)``); the entries 1…L of each
/// batch ending at L, with their leaf hashes, must hash to a tree that the batch's consistency
/// proof shows to be a prefix of the tree its checkpoint signs; the seqs must be gapless up to
/// the highest batch and none above it; each expiry entry's tombstones digest must match the
/// tombstones shipped for it: the expired rows naming it and its late tombstones (rows shipped
/// whole before they expired, `auditdb_ship.tombstones`). Memory: O(log n) plus the tombstones
/// awaiting their expiry entry and the late tombstones.
public struct ShippedLogVerifier: Sendable {
    /// The store.
    public let storeID: StoreID
    /// The highest seq a batch covers.
    public let highWaterMark: Int64
    private var batchesByLast: [Int64: [ShippedBatchRecord]] = [:]
    /// The batches by first seq, and for each the highest last seq among it and those before.
    private let coverage: ([ShippedBatchRecord], [Int64])
    private var checkpoints: [Int64: [Checkpoint]] = [:]
    private var frontier = MerkleTree.Frontier()
    private var expected: Int64 = 1
    private var broken = false
    private var failedBatches: [(ShippedBatchRecord, provable: Bool)] = []
    private var tombstones: [Int64: [(seq: Int64, encoded: [UInt8])]] = [:]
    /// Late tombstones by seq, until the row at their seq is read; then by expiry entry (`late`).
    private var lateBySeq: [Int64: (expirySeq: Int64, encoded: [UInt8])] = [:]
    private var late: [Int64: [(seq: Int64, encoded: [UInt8])]] = [:]
    private var extra: [Int64] = []
    /// The findings so far.
    public private(set) var findings: [ShippedFinding] = []
    /// Rows checked (values or tombstone) up to the high-water mark.
    public private(set) var entriesChecked: Int64 = 0
    /// Batches whose proof verified against their checkpoint.
    public private(set) var batchesProven = 0
    /// Expired rows whose expiry entry is above the high-water mark but covered by the checkpoint
    /// their batch is proven against (a shipment under way): their leaves are proven, their
    /// tombstones will be when the rest of the shipment commits. (An expiry entry shipped
    /// without its details is a `changed` finding, not counted here.)
    public private(set) var expiredAwaitingEntry = 0

    /// A verifier of `storeID`'s shipped entries.
    /// - Parameters:
    ///   - batches: The store's batch records.
    ///   - checkpoints: The store's checkpoints the witness holds that are validly signed under
    ///     a key registered for the store (the caller checks the registration).
    ///   - lateTombstones: The store's late tombstones (`auditdb_ship.tombstones`), as entries
    ///     with `expired` set and `values` nil, in any order.
    public init(storeID: StoreID, batches: [ShippedBatchRecord], checkpoints: [Checkpoint], lateTombstones: [ShippedEntry] = []) {
        self.storeID = storeID
        highWaterMark = batches.map(\.lastSeq).max() ?? 0
        let sorted = batches.sorted { $0.firstSeq < $1.firstSeq }
        var reach: [Int64] = []
        for batch in sorted { reach.append(max(reach.last ?? .min, batch.lastSeq)) }
        coverage = (sorted, reach)
        for batch in batches { batchesByLast[batch.lastSeq, default: []].append(batch) }
        for cp in checkpoints where cp.storeID == storeID && cp.invalidityUnderOwnKey == nil {
            self.checkpoints[cp.seq, default: []].append(cp)
        }
        // Order-free: every late tombstone at a seq that has more than one is left out.
        for (seq, list) in Dictionary(grouping: lateTombstones, by: \.seq) {
            guard list.count == 1, let entry = list.first else {
                findings.append(.init(kind: .changed, seqs: seq...seq, message: "\(list.count) late tombstones at this seq (the central table lost its primary key)"))
                continue
            }
            guard let expired = entry.expired, entry.values == nil, expired.namedSeq == seq, seq >= 1, seq < expired.expirySeq else {
                findings.append(.init(kind: .changed, seqs: seq...seq,
                                      message: "a late tombstone that is not \(ShippedEntry.Expired.tombstoneLength) bytes, names another seq, or names an expiry entry below it"))
                continue
            }
            lateBySeq[seq] = (expired.expirySeq, expired.tombstone)
        }
    }

    /// The next entry, in ascending seq (a repeated seq is reported as `extra`).
    public mutating func add(_ entry: ShippedEntry) {
        let seq = entry.seq
        if seq > highWaterMark {
            extra.append(seq)
            return
        }
        if seq < expected {
            findings.append(.init(kind: .extra, seqs: seq...seq, message: "a second row at this seq (the central table lost its primary key)"))
            return
        }
        if seq > expected {
            findings.append(.init(kind: .missing, seqs: expected...(seq - 1), message: "\(seq - expected) shipped row(s) are missing from the central table (deleted)"))
            broken = true
        }
        expected = seq + 1
        entriesChecked += 1
        if let (expirySeq, encoded) = lateBySeq.removeValue(forKey: seq) {
            // A late tombstone must be of this very row: its leaf, and for an expired row its tombstone.
            if Array(encoded[44..<76]) != entry.leaf || (entry.expired.map { $0.tombstone != encoded } ?? false) {
                findings.append(.init(kind: .changed, seqs: seq...seq, message: "its late tombstone is not of this row (another leaf hash, or another tombstone than the one shipped in it)"))
            } else {
                late[expirySeq, default: []].append((seq, encoded))
            }
        }
        if let problem = entry.problem(storeID: storeID) {
            findings.append(.init(kind: .changed, seqs: seq...seq, message: problem))
        }
        if let expired = entry.expired {
            tombstones[expired.expirySeq, default: []].append((seq, expired.tombstone))
        } else if let values = entry.values, values.isExpiryEntry {
            checkExpiry(entry, values)
        }
        if entry.leaf.count == 32 && !broken {
            frontier.append(leaf: entry.leaf)
        } else {
            broken = true
        }
        for batch in batchesByLast[seq] ?? [] { check(batch) }
    }

    /// The findings, once every entry was added.
    public mutating func finish() -> [ShippedFinding] {
        if expected <= highWaterMark {
            findings.append(.init(kind: .missing, seqs: expected...highWaterMark,
                                  message: "\(highWaterMark - expected + 1) shipped row(s) are missing from the central table (deleted)"))
        }
        if let first = failedBatches.first {
            let (batch, provable) = first
            let later = failedBatches.count > 1 ? "; every later batch fails with it" : ""
            findings.append(provable
                ? .init(kind: .changed, seqs: batch.firstSeq...batch.lastSeq,
                        message: "these rows, changed together with their leaf hashes (or this batch's proof), do not hash to the tree the checkpoint at seq \(batch.checkpointSeq) signs\(later)")
                : .init(kind: .unproven, seqs: batch.firstSeq...batch.lastSeq,
                        message: "their batch names a checkpoint at seq \(batch.checkpointSeq) that the witness does not hold validly signed under a registered key, and no later batch proves them\(later)"))
        }
        failedBatches = []
        var start: Int64?
        var previous: Int64 = 0
        func flush() {
            guard let first = start else { return }
            findings.append(.init(kind: .extra, seqs: first...previous,
                                  message: "above the highest shipped batch (seq \(highWaterMark)): no checkpoint proves these rows"))
        }
        for seq in extra {
            if let _ = start, seq == previous + 1 {
                previous = seq
                continue
            }
            flush()
            start = seq
            previous = seq
        }
        flush()
        extra = []
        for (expirySeq, list) in tombstones.sorted(by: { $0.key < $1.key }) {
            if expirySeq > highWaterMark {
                // Legitimate only while the shipment that holds the entry is under way: a batch
                // holding the row is proven against a checkpoint that covers the entry.
                let beyond = list.filter { row in (coveringCheckpoint(row.seq) ?? 0) < expirySeq }
                expiredAwaitingEntry += list.count - beyond.count
                if let first = beyond.first, let last = beyond.last {
                    findings.append(.init(kind: .changed, seqs: first.seq...last.seq,
                                          message: "expired rows naming seq \(expirySeq) as their expiry entry, above the checkpoint their batch is proven against (AuditDB ships an expired row only with a checkpoint covering its entry): rows were made to look expired"))
                }
            } else if let first = list.first, let last = list.last {
                findings.append(.init(kind: .changed, seqs: first.seq...last.seq,
                                      message: "expired rows naming seq \(expirySeq) as their expiry entry, which is no shipped expiry entry: rows were made to look expired"))
            }
        }
        tombstones = [:]
        for (expirySeq, list) in late.sorted(by: { $0.key < $1.key }) {
            guard let first = list.first, let last = list.last else { continue }
            findings.append(.init(kind: .changed, seqs: first.seq...last.seq,
                                  message: "late tombstones naming seq \(expirySeq) as their expiry entry, which is no shipped expiry entry: rows were made to look expired"))
        }
        late = [:]
        for seq in lateBySeq.keys.sorted() {
            findings.append(.init(kind: .changed, seqs: seq...seq, message: "a late tombstone of a seq without a shipped row at or below the highest shipped batch"))
        }
        lateBySeq = [:]
        let order = Dictionary(uniqueKeysWithValues: ShippedFinding.Kind.all.enumerated().map { ($1, $0) })
        findings.sort {
            (order[$0.kind] ?? 9, $0.seqs.lowerBound, $0.seqs.upperBound) < (order[$1.kind] ?? 9, $1.seqs.lowerBound, $1.seqs.upperBound)
        }
        return findings
    }

    /// The highest `checkpointSeq` of the batches whose seqs hold `seq`, or nil: a binary search
    /// over the batches by first seq, then back while an earlier batch can still reach `seq`
    /// (one step when batches do not overlap, as the central trigger makes them).
    private func coveringCheckpoint(_ seq: Int64) -> Int64? {
        let (batches, reach) = coverage
        var low = 0, high = batches.count
        while low < high {
            let mid = (low + high) / 2
            if batches[mid].firstSeq <= seq { low = mid + 1 } else { high = mid }
        }
        var best: Int64?
        var i = low - 1
        while i >= 0, reach[i] >= seq {
            if batches[i].lastSeq >= seq { best = max(best ?? .min, batches[i].checkpointSeq) }
            i -= 1
        }
        return best
    }

    private mutating func check(_ batch: ShippedBatchRecord) {
        guard !broken, batch.firstSeq <= batch.lastSeq else { return }
        guard let cp = checkpoints[batch.checkpointSeq]?.first(where: { $0.signature == batch.checkpointSignature }) else {
            failedBatches.append((batch, false))
            return
        }
        guard let root = frontier.root,
              MerkleTree.verifyConsistency(oldSize: batch.lastSeq, newSize: cp.seq, oldRoot: root, newRoot: cp.merkleRoot, proof: batch.proof)
        else {
            failedBatches.append((batch, true))
            return
        }
        batchesProven += 1
        // Earlier batches that failed are proven by this one: only their records were changed.
        for (failed, provable) in failedBatches {
            // Whether its checkpoint is at the witness tells an edited proof from a checkpoint
            // that is gone (or an edited checkpoint seq or signature in the record).
            let what = provable
                ? "the batch record's proof, or the checkpoint it names, was changed (its proof does not lead from its rows to the checkpoint at seq \(failed.checkpointSeq))"
                : "the checkpoint the batch record names (seq \(failed.checkpointSeq)) is not at the witness validly signed under a registered key: deleted or changed there, or the record's checkpoint seq or signature was changed"
            findings.append(.init(kind: .batchChanged, seqs: failed.firstSeq...failed.lastSeq,
                                  message: "\(what); its rows are proven by the batch ending at seq \(batch.lastSeq)"))
        }
        failedBatches = []
    }

    /// An expiry entry: the tombstones shipped for it (expired rows and late tombstones, one per
    /// seq) must give its digest (FORMAT.md 20.3, 22.7).
    private mutating func checkExpiry(_ entry: ShippedEntry, _ values: ShippedEntry.Values) {
        var bySeq: [Int64: [UInt8]] = [:]
        for tombstone in tombstones.removeValue(forKey: entry.seq) ?? [] { bySeq[tombstone.seq] = tombstone.encoded }
        // Equal to the expired row's where both exist (checked when the row was read).
        for tombstone in late.removeValue(forKey: entry.seq) ?? [] { bySeq[tombstone.seq] = tombstone.encoded }
        let list = bySeq.sorted { $0.key < $1.key }.map { (seq: $0.key, encoded: $0.value) }
        guard values.details.state == .shown, values.details.value != nil else {
            // AuditDB never withholds (or erases) its own entries' fields: only a change does.
            findings.append(.init(kind: .changed, seqs: entry.seq...entry.seq,
                                  message: "an expiry entry whose details are not shipped (withheld, erased or NULL), so its tombstones cannot be checked; AuditDB ships its own entries whole"))
            return
        }
        let record: ExpiryRecord
        do {
            guard let parsed = try values.expiryRecord(seq: entry.seq) else { return }  // not reached: details are shown
            record = parsed
        } catch {
            findings.append(.init(kind: .changed, seqs: entry.seq...entry.seq, message: "an expiry entry whose details cannot be read: \(error.reason)"))
            return
        }
        var message: [UInt8] = []
        for tombstone in list { message += tombstone.encoded }
        var digest = [UInt8](repeating: 0, count: 32)
        adb_sha256(message, message.count, &digest)
        if Int64(list.count) != record.count || digest != record.digest {
            findings.append(.init(kind: .changed, seqs: record.first...record.last,
                                  message: "the expired rows shipped for the expiry entry at seq \(entry.seq) are not the ones it lists (\(list.count) shipped, \(record.count) listed, or their tombstones differ)"))
        }
    }
}
