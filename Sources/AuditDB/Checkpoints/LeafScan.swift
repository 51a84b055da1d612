import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// One pass over rows in seq order that checks each row with the verifier's own row check and
/// computes its Merkle leaf hash. Shared by checkpointing, anchor verification and export.
enum LeafScan {
    struct Result {
        var findings: [Finding] = []
        /// The last seq whose leaf was computed (rows from the start of the range up to it are
        /// present, gapless and passed the check).
        var lastGood: Int64
        /// The stored MAC of row `lastGood`.
        var lastMac: [UInt8]
    }

    /// Scans `range`. `prevMac` is the stored MAC of row `range.lowerBound − 1` (32 zero bytes
    /// before seq 1), trusted. Stops at the first row that is missing or fails its check (with
    /// `verify: false`, the first row whose leaf cannot be computed: malformed, or signed by a
    /// version the ring lacks). `onRow` gets each good row, read once: its verdict and its leaf
    /// hash come from one pass over it.
    ///
    /// With `erasures` (and `verify`), a row must also be what the verified erasure entries made
    /// it (``ErasureCheck/problem(_:claims:)``), else the scan stops at it with `erasure-tampered`:
    /// for the scans whose rows leave the store (export, shipping) or are signed over anew
    /// (checkpoint). An erasure keeps the MAC valid, so the row check alone passes a value put
    /// back from a copy made before its erasure.
    static func scan(_ db: Database, range: ClosedRange<Int64>, prevMac start: [UInt8], storeID: StoreID, keys: KeyRing,
                     verify: Bool = true, erasures: ErasureClaimsCache? = nil,
                     onExpired: (Int64, [UInt8]) throws -> Void = { _, _ in },
                     onRow: (RowView, [UInt8]) throws -> Void) throws -> Result
    {
        var result = Result(lastGood: range.lowerBound - 1, lastMac: start)
        let claims = verify ? try erasures?.claims(db, storeID: storeID, keys: keys) : nil
        let statement = try db.makeStatement(sql: try RowLayout.select(db) + " NOT INDEXED WHERE seq >= ? AND seq <= ? ORDER BY seq")
        let stmt = statement.sqliteStatement
        try SQLite.bind(stmt, 1, range.lowerBound)
        try SQLite.bind(stmt, 2, range.upperBound)
        defer { SQLite.reset(stmt) }
        let context = RowContext(storeID: storeID.bytes, keys: keys, attestations: try Verifier.loadAttestations(db, keys: keys))
        var chain = RowChain(prevMac: start)
        var expected = range.lowerBound
        var leaf = [UInt8](repeating: 0, count: 32)
        let tombstones = try TombstoneReader(db)
        /// Expired rows from `expected` up to `end` (FORMAT.md 20.4): their tombstones' leaves;
        /// false at the first seq that has none, or fails.
        func walkExpired(upTo end: Int64) throws -> Bool {
            try tombstones.forEach(expected...end) { link in
                guard link.seq == expected, let tombstoneLeaf = link.leaf, let mac = link.mac else { return false }
                if verify, let finding = Verifier.check(link, chain: &chain, context: context) {
                    result.findings.append(finding)
                    return false
                }
                chain.prevMac = mac
                try onExpired(link.seq, tombstoneLeaf)
                result.lastGood = link.seq
                result.lastMac = mac
                expected += 1
                return true
            }
            return expected > end
        }
        while try SQLite.step(stmt, while: "leaf scan") {
            let seq = SQLite.int64(stmt, RowLayout.seq)
            if seq > expected, result.findings.isEmpty {
                guard try walkExpired(upTo: seq - 1) else {
                    if result.findings.isEmpty {
                        result.findings.append(Finding(kind: .missingRows, seqs: expected...(seq - 1),
                                                       message: "\(seq - expected) row(s) missing before seq \(seq) (removed)"))
                    }
                    return result
                }
            }
            guard seq == expected else {
                result.findings.append(Finding(kind: .missingRows, seqs: expected...(seq - 1),
                                               message: "\(seq - expected) row(s) missing before seq \(seq) (removed)"))
                return result
            }
            expected += 1
            var view = RowView(stmt)
            if verify {
                let finding = leaf.withUnsafeMutableBufferPointer { out in
                    view.check(seq: seq, chain: &chain, context: context, leaf: out.baseAddress)
                }
                if let finding {
                    result.findings.append(finding)
                    return result
                }
                if let claims, let problem = ErasureCheck.problem(view, claims: claims) {
                    result.findings.append(Finding(kind: .erasureTampered, seqs: seq...seq, message: problem))
                    return result
                }
            } else {
                guard let computed = view.leaf(storeID: storeID, keys: keys) else { return result }
                leaf = computed
                chain.prevMac = view.storedMac
            }
            try onRow(view, leaf)
            result.lastGood = seq
            result.lastMac = chain.prevMac
        }
        if expected <= range.upperBound { _ = try walkExpired(upTo: range.upperBound) }
        return result
    }
}

extension LeafScan {
    /// The outcome of ``leaves(_:range:prevMac:storeID:keys:verify:collect:)``.
    struct Leaves: Sendable {
        var findings: [Finding] = []
        /// The last seq whose leaf is in `flat` (rows from the range's start up to it are
        /// present, gapless and passed the check).
        var lastGood: Int64
        var lastMac: [UInt8]
        /// The leaves, 32 bytes each, in seq order.
        var flat: [UInt8] = []
        /// What `collect` returned for the rows it chose (a byte of the caller's), in seq order.
        var collected: [(Int64, UInt8)] = []
    }

    /// Scans `range` like ``scan(_:range:prevMac:storeID:keys:verify:erasures:onExpired:onRow:)`` and returns the
    /// leaves; large ranges are split in two halves scanned on two reader connections (the
    /// second half chained from the stored MAC of the row before it, as the verifier does).
    static func leaves(_ reader: any DatabaseReader, range: ClosedRange<Int64>, prevMac: [UInt8], storeID: StoreID,
                       keys: KeyRing, verify: Bool, erasures: ErasureClaimsCache? = nil,
                       collect: (@Sendable (RowView, [UInt8]) throws -> UInt8?)? = nil,
                       progress: RowsProgress? = nil) async throws -> Leaves
    {
        let parts = Verifier.split(range, rows: Int64(range.count))
        @Sendable func part(_ db: Database, _ r: ClosedRange<Int64>, _ start: [UInt8]?) throws -> Leaves {
            var prev = start ?? [UInt8](repeating: 0, count: 32)
            if start == nil {
                guard let stored = try StoredMacs(db).mac(at: r.lowerBound - 1), stored.count == 32
                else { return Leaves(lastGood: r.lowerBound - 1, lastMac: prev) }
                prev = stored
            }
            var flat: [UInt8] = []
            flat.reserveCapacity(min(r.count, 1 << 22) * 32)  // a range up to a tampered far seq holds no such count
            var collected: [(Int64, UInt8)] = []
            var uncounted: Int64 = 0
            let scan = try LeafScan.scan(db, range: r, prevMac: prev, storeID: storeID, keys: keys, verify: verify, erasures: erasures,
                                         onExpired: { _, leaf in flat += leaf }) { view, leaf in
                flat += leaf
                if let collect, let byte = try collect(view, leaf) { collected.append((view.seq, byte)) }
                uncounted += 1
                if uncounted == 4_096, let progress {
                    progress.add(uncounted)
                    uncounted = 0
                }
            }
            if uncounted > 0 { progress?.add(uncounted) }
            return Leaves(findings: scan.findings, lastGood: scan.lastGood, lastMac: scan.lastMac, flat: flat, collected: collected)
        }
        guard parts.count == 2 else {
            return try await reader.read { db in try part(db, range, prevMac) }
        }
        async let second = reader.read { db in try part(db, parts[1], nil) }
        var first = try await reader.read { db in try part(db, parts[0], prevMac) }
        let rest = try await second
        guard first.lastGood == parts[0].upperBound, first.findings.isEmpty else { return first }
        // The second half assumed the stored MAC of the first half's last row; it is the same
        // row, so the chain is unbroken if both halves passed.
        first.findings = rest.findings
        first.lastGood = rest.lastGood
        first.lastMac = rest.lastMac
        first.flat += rest.flat
        first.collected += rest.collected
        return first
    }
}
