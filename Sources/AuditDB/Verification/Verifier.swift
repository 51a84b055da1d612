// One pass and the row scan of one range (passes made again after a rewrite: Verifier+Run.swift). How ranges are split, what each reports and how
// their findings are joined into one pass in seq order: Verifier+Ranges.swift. Schema and header checks are in
// Verifier+Header.swift (the first reads of a pass: Verifier+Overview.swift; step 12: Verifier+Structure.swift),
// attestations in Verifier+Attestations.swift, gaps of expired rows in
// Verifier+Tombstones.swift; a row's verdict is Row/'s.
import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// One verification pass over a store: schema, header, then every row (MAC, chain, seq
/// continuity, key versions, attestations), on up to two reader connections in parallel.
struct Verifier: Sendable {
    let pool: any DatabaseReader
    let keys: KeyRing
    let expectedStoreID: StoreID?
    /// The public checkpoint keys that authenticate the store's own checkpoints (StoredCheckpointCheck).
    var checkpointKeys: CheckpointPublicKeys? = nil
    /// Told how many rows are checked, every ``RowsProgress/step`` rows or so.
    var progress: (@Sendable (VerificationProgress) -> Void)? = nil
    /// Run once the index side of the index proof is read, before the rows are (tests: an erasure
    /// or expiry lands between the two).
    var afterIndexSide: (@Sendable () async throws -> Void)? = nil
    /// Passes made at most when an index mismatch coincides with a rewrite committed meanwhile.
    static let passAttempts = 3

    struct Attestation: Sendable {
        var keyVersion: UInt32
        var declarationSeq: Int64
        var mac: [UInt8]
    }

    /// A verified point of the chain: row `seq` had stored MAC `mac` when a pass proved it.
    struct Position: Sendable, Hashable {
        var seq: Int64
        var mac: [UInt8]
    }

    /// One pass of ``run(from:)`` (Verifier+Run.swift).
    func pass(from position: Position?) async throws -> IntegrityReport {
        let started = ContinuousClock.now
        let startedAt = AuditTimestamp.now()
        var findings: [Finding] = []

        // 1. Schema and header. Damaged pages here still give a report, not an error.
        let overview: Overview
        do {
            overview = try await readOverview(full: position == nil)
        } catch let error as DatabaseError where SQLite.isDamage(error) {
            return Self.unreadable(error.message ?? "corrupt", startedAt: startedAt, started: started)
        } catch let error as AuditError where error.code == .corrupt {
            return Self.unreadable(error.message, startedAt: startedAt, started: started)
        }
        let header = overview.header, bounds = overview.bounds, lowRows = overview.lowRows, attestations = overview.attestations
        findings += overview.schemaFindings

        var storeID: StoreID?
        switch header {
        case .failure(let finding):
            findings.append(finding)
        case .success(let h):
            storeID = h.storeID
            findings += checkHeader(h, attestations: attestations)
        }
        if lowRows.2 > 0, let lo = lowRows.0, let hi = lowRows.1 {
            findings.append(
                Finding(kind: .unexpectedRows, seqs: lo...hi,
                        message: "\(lowRows.2) row(s) with seq below 1; the log starts at seq 1"))
        }

        // 2. Rows. Without a store id no MAC can be checked.
        var rowsChecked = 0
        let lastSeq = bounds.1 ?? 0
        var firstSeq: Int64 = 1
        var startMac: [UInt8]?
        var head: Position?
        if let position {
            firstSeq = position.seq + 1
            startMac = position.mac
            head = position
            let boundary = try await pool.read { db in
                try StoredMacs(db).mac(at: position.seq)
            }
            if lastSeq < position.seq {
                findings.append(Finding(
                    kind: .missingRows, seqs: (lastSeq + 1)...position.seq,
                    message: "the log ends at seq \(lastSeq), but an earlier pass verified it up to seq \(position.seq): rows were removed from the tail, or the file was rolled back"))
            } else if let boundary, !(boundary.count == 32 && position.mac.count == 32 && Array(boundary).withUnsafeBufferPointer { adb_ct_equal($0.baseAddress!, position.mac, 32) == 1 }) {
                findings.append(Finding(
                    kind: .macMismatch, seqs: position.seq...position.seq,
                    message: "row \(position.seq) is not the row an earlier pass verified (its stored MAC changed): it was rewritten, or the file was replaced"))
            } else if boundary == nil {
                findings.append(Finding(
                    kind: .missingRows, seqs: position.seq...position.seq,
                    message: "row \(position.seq), verified by an earlier pass, is missing (removed)"))
            }
        }
        var total = findings.count
        // The index proof (IndexProof): its index side runs beside the row ranges; the table side
        // comes from the rows they read (and, in a full pass, the rows below seq 1).
        let digestKey = IndexProof.randomKey()
        let provesIndexes = storeID != nil && (position == nil || firstSeq <= lastSeq)
        let fromSeq = position == nil ? nil : firstSeq
        let indexPool = self.pool
        async let indexSideA: IndexProof.Side? = provesIndexes
            ? try await indexPool.read { db in
                try db.withStreamingPageCache {
                    try IndexProof.indexSide(db, key: digestKey, from: fromSeq, upTo: lastSeq, part: 0, parts: 2)
                }
            }
            : nil
        async let indexSideB: IndexProof.Side? = provesIndexes
            ? try await indexPool.read { db in
                try db.withStreamingPageCache {
                    try IndexProof.indexSide(db, key: digestKey, from: fromSeq, upTo: lastSeq, part: 1, parts: 2)
                }
            }
            : nil
        if let afterIndexSide {
            _ = try await indexSideA
            _ = try await indexSideB
            try await afterIndexSide()
        }
        var tableDigest = IndexProof.emptyDigest(key: digestKey)
        // The rows with erased fields among those the ranges read (nil if a range stopped early).
        var erasedRows: ErasureCheck.ScannedRows?
        var endedByCorruption = false
        if let storeID, let maxSeq = bounds.1, firstSeq <= maxSeq {
            let ranges = Self.split(firstSeq...maxSeq, rows: maxSeq - firstSeq + 1)
            let chainStart = startMac
            let context = RowContext(storeID: storeID.bytes, keys: keys, attestations: attestations)
            let pool = self.pool
            let counter = progress.map { RowsProgress(total: maxSeq - firstSeq + 1, report: $0) }
            let results = try await withThrowingTaskGroup(of: RangeResult.self) { group in
                for (index, range) in ranges.enumerated() {
                    group.addTask {
                        try await pool.read { db in
                            try db.withStreamingPageCache {
                                try Self.scan(db, range: range, isLast: index == ranges.count - 1, context: context,
                                              startMac: index == 0 ? chainStart : nil, digestKey: digestKey, progress: counter)
                            }
                        }
                    }
                }
                var all: [RangeResult] = []
                for try await result in group { all.append(result) }
                return all
            }
            var ordered = results.sorted { $0.range.lowerBound < $1.range.lowerBound }
            // A range assumed its predecessor row good. Where it was not, rescan the start of the
            // range with the right state until both scans agree, so the report equals one pass in order.
            for index in ordered.indices.dropFirst() {
                let before = ordered[index - 1], range = ordered[index].range
                guard before.lastSeq == range.lowerBound - 1, !before.endTrusted else { continue }
                let untrusting: Set<Finding.Kind> = [.macMismatch, .chainBreak, .malformedRow, .unknownKeyVersion]
                let suspect = Set(ordered[index].findings.filter { untrusting.contains($0.kind) }.compactMap(\.firstSeq))
                let isLast = index == ordered.count - 1
                let fix = try await pool.read { db in
                    try Self.scan(db, range: range, isLast: isLast, context: context, startTrusted: false, convergeWith: suspect)
                }
                let upTo = fix.convergedAt ?? range.upperBound
                let kept = ordered[index].findings.filter { ($0.firstSeq ?? .min) > upTo }
                ordered[index].totalFindings += fix.totalFindings + kept.count - ordered[index].findings.count
                ordered[index].findings = fix.findings + kept
            }
            erasedRows = ErasureCheck.ScannedRows(seqs: firstSeq...maxSeq, erased: [:])
            // A corrupt page ends the reading of rows (FORMAT.md section 11, step 4): one
            // `corruption` finding from the seq expected next to the log's last, and nothing of
            // the ranges after it, which a split read on anyway.
            for var result in ordered {
                if endedByCorruption { break }
                if let index = result.findings.firstIndex(where: { $0.kind == .corruption && $0.seqs != nil }),
                   let from = result.findings[index].seqs?.lowerBound
                {
                    result.findings[index] = Finding(kind: .corruption, seqs: from...max(from, maxSeq), message: result.findings[index].message)
                    endedByCorruption = true
                }
                if result.readToEnd && !endedByCorruption {
                    erasedRows?.erased.merge(result.erased) { a, _ in a }
                } else {
                    erasedRows = nil
                }
                rowsChecked += result.rowsChecked
                findings += result.findings
                total += result.totalFindings
                if var digest = result.indexDigest { adb_index_digest_merge(&tableDigest, &digest) }
            }
            if let final = ordered.last, let seq = final.lastSeq, final.endTrusted, final.lastMac.count == 32 {
                head = Position(seq: seq, mac: final.lastMac)
            }
        }
        // Steps 9 and 10 find AuditDB's own entries through audit_entries_engine when this pass
        // proved it; a full pass that did not (edited, rebuilt, missing) reads every row for them,
        // so that an entry hidden from the index still counts. (An incremental pass trusts the
        // index as the full passes before it proved it.)
        // A corrupt page met by a step after the rows (5-11) is one `corruption` finding without a
        // seq, and ends the pass there (FORMAT.md section 11), as a page met while reading rows
        // ends the reading of rows.
        afterRows: do {
            var engineEntriesThroughTable = position == nil
            // Rows moved below seq 1 from the end of the log leave no gap behind; their own MACs
            // say which seq they came from.
            if let storeID, lowRows.2 > 0, lowRows.2 <= 1_000 {
                let context = RowContext(storeID: storeID.bytes, keys: keys, attestations: attestations)
                let moved = try await pool.read { db in
                    try Self.rowsMovedFromTheTail(db, lastSeq: lastSeq, count: lowRows.2, context: context)
                }
                findings += moved
                total += moved.count
            }
            // Step 6, read with the overview: a damaged page it met ends the pass after the rows.
            findings += overview.sideFindings
            total += overview.sideFindings.count
            if let sideDamage = overview.sideDamage {
                findings.append(sideDamage)
                total += 1
                break afterRows
            }
            // Step 8, read with the overview.
            findings += overview.checkpointFindings
            total += overview.checkpointFindings.count
            // Rows the pass could not read have no entries on the table side: no comparison then.
            if provesIndexes, let sideA = try await indexSideA, let sideB = try await indexSideB, !endedByCorruption {
                let side = sideA.merged(with: sideB)
                if position == nil, lowRows.2 > 0 {
                    var low = try await pool.read { db in
                        var digest = IndexProof.emptyDigest(key: digestKey)
                        try IndexProof.addRowsBelowOne(db, into: &digest)
                        return digest
                    }
                    adb_index_digest_merge(&tableDigest, &low)
                }
                let indexFindings = side.findings(table: tableDigest)
                if side.proves(Int32(ADB_INDEX_ENGINE), table: tableDigest) { engineEntriesThroughTable = false }
                findings += indexFindings
                total += indexFindings.count
            }
            // Expired rows (FORMAT.md section 20.4, step 9). Steps 9-11 judge tombstones, erased
            // fields and time breaks against the rows: not run when a damaged page kept step 4
            // from reading them all (their findings would only be side effects of the damage).
            if let storeID, !endedByCorruption {
                let keys = self.keys
                let throughTable = engineEntriesThroughTable
                let expiry = try await pool.read { db in try ExpiryCheck.findings(db, storeID: storeID, keys: keys, throughTable: throughTable) }
                findings += expiry
                total += expiry.count
                // Erased fields (FORMAT.md section 21.4, step 10).
                let scanned = erasedRows
                let erasure = try await pool.read { db in
                    try ErasureCheck.findings(db, storeID: storeID, keys: keys, fromSeq: fromSeq, scanned: scanned, throughTable: throughTable)
                }
                findings += erasure
                total += erasure.count
            }
            // Time breaks (FORMAT.md section 24, step 11), judged after the rows' and tombstones' own findings.
            if storeID != nil, !endedByCorruption {
                let earlier = findings
                let breaks = try await pool.read { db in
                    try TimeBreakCheck.findings(db, from: fromSeq, upTo: lastSeq, earlier: earlier)
                }
                findings += breaks
                total += breaks.count
            }
            // The file's structure (step 12), in full passes that found no damaged page.
            if position == nil, !findings.contains(where: { $0.kind == .corruption }),
               let structure = try await pool.read({ db in try Self.structureFinding(db) }) {
                findings.append(structure)
                total += 1
            }
        } catch let error where Self.isCorruption(error) {
            findings.append(Finding(kind: .corruption, seqs: nil, message: "SQLite cannot read the store: \(Self.corruptionMessage(error))"))
            total += 1
        }
        if let checkpointDamage = overview.checkpointDamage, !findings.contains(where: { $0.kind == .corruption && $0.seqs == nil }) {
            findings.append(checkpointDamage)
            total += 1
        }
        findings = Self.joinedAtSplitPoints(findings, removed: &total)
        total = max(total, findings.count)
        // Stable (FORMAT.md section 11): findings with the same seq and kind keep the order they were found in.
        findings = findings.enumerated().sorted {
            ($0.element.seqs?.lowerBound ?? Int64.min, $0.element.kind.name, $0.offset)
                < ($1.element.seqs?.lowerBound ?? Int64.min, $1.element.kind.name, $1.offset)
        }.map(\.element)
        findings = Self.notingMissingKeys(findings)  // before the cut: the unknown-key-version findings may be past it
        if findings.count > IntegrityReport.findingLimit { findings = Array(findings.prefix(IntegrityReport.findingLimit)) }
        var report = IntegrityReport(
            storeID: storeID, rowsChecked: rowsChecked, lastSeq: lastSeq, findings: findings, totalFindings: total,
            startedAt: startedAt, duration: ContinuousClock.now - started)
        report.firstCheckedSeq = firstSeq
        report.verifiedHead = report.isLogIntact ? head : nil
        return report
    }

    /// With rows of key versions the ring lacks (`unknown-key-version`), each verdict that rests
    /// on signed entries says that the entry explaining it may be among those rows: a stale key
    /// file then reads as what it is, not as tampering. The kinds and seqs stay as they are.
    static func notingMissingKeys(_ findings: [Finding]) -> [Finding] {
        guard findings.contains(where: { $0.kind == .unknownKeyVersion }) else { return findings }
        return findings.map { finding in
            guard finding.kind.restsOnSignedEntries else { return finding }
            return Finding(kind: finding.kind, seqs: finding.seqs, message: finding.message
                + " (the key ring lacks a key version this store uses (see the unknown-key-version findings), which may have signed the entry that explains this: verify again with the key file that holds every version)")
        }
    }

    /// Whether `error` is SQLite meeting a damaged file (``SQLite/isDamage(_:)``).
    static func isCorruption(_ error: any Error) -> Bool {
        if let error = error as? DatabaseError { return SQLite.isDamage(error) }
        return (error as? AuditError)?.code == .corrupt
    }

    static func corruptionMessage(_ error: any Error) -> String {
        (error as? DatabaseError)?.message ?? (error as? AuditError).map { SQLite.adviceInVerification($0.message) } ?? "\(error)"
    }

    /// The report of a pass that cannot read the store's tables at all.
    private static func unreadable(_ why: String, startedAt: AuditTimestamp, started: ContinuousClock.Instant) -> IntegrityReport {
        IntegrityReport(
            storeID: nil, rowsChecked: 0, lastSeq: 0,
            findings: [Finding(kind: .corruption, seqs: nil, message: "SQLite cannot read the store's tables: \(why)")],
            totalFindings: 1, startedAt: startedAt, duration: ContinuousClock.now - started)
    }

    // MARK: Rows

    /// Scans `range` in seq order. Errors other than corruption are thrown (the pass could
    /// not be completed); corruption becomes a finding.
    ///
    /// A range that does not start at 1 assumes the row before it was good, as one pass in order
    /// would find if it was; `startTrusted: false` assumes it was bad. With `convergeWith` (the
    /// seqs at which a previous scan of this range found the row untrustworthy), the scan stops
    /// at the first row after which its state equals that scan's, and reports it in `convergedAt`.
    static func scan(_ db: Database, range: ClosedRange<Int64>, isLast: Bool, context: RowContext,
                     startTrusted: Bool = true, convergeWith: Set<Int64>? = nil, startMac: [UInt8]? = nil,
                     digestKey: [UInt8]? = nil, progress: RowsProgress? = nil) throws -> RangeResult
    {
        var result = RangeResult()
        result.range = range
        var digest = IndexProof.emptyDigest(key: digestKey ?? [UInt8](repeating: 0, count: 16))
        let adds = digestKey != nil
        var chain = RowChain(prevKnown: startTrusted)
        if let startMac, startMac.count == 32 {
            chain.prevMac = startMac
        } else if range.lowerBound > 1 && startTrusted {
            if let stored = try StoredMacs(db).mac(at: range.lowerBound - 1), stored.count == 32 {
                chain.prevMac = stored
            } else {
                chain.prevKnown = false
            }
        }
        let statement = try db.makeStatement(sql: try RowLayout.select(db) + " NOT INDEXED WHERE seq >= ? AND seq <= ? ORDER BY seq")
        let stmt = statement.sqliteStatement
        try SQLite.bind(stmt, 1, range.lowerBound)
        try SQLite.bind(stmt, 2, range.upperBound)
        defer { SQLite.reset(stmt) }
        var expected = range.lowerBound
        // Whether the row at the last possible seq (2^63 - 1) was read: no seq is expected after it.
        var readLastPossible = false
        let tombstones = try TombstoneReader(db)
        // Runs of good rows are checked in C, row after row, without coming back to Swift; the
        // row after a run (a gap, a bad or unusual row) is reported by the row-by-row code below.
        // The convergence rescan must stop at the first agreeing row, so it goes row by row.
        let keyEntries = convergeWith == nil ? context.keyEntries : []
        let storeID = context.storeID
        while true {
            let rc: Int32
            if chain.prevKnown && chain.prevMac.count == 32 && !keyEntries.isEmpty && storeID.count == 16 {
                var next = expected, checked: Int64 = 0
                rc = keyEntries.withUnsafeBufferPointer { keys in
                    chain.prevMac.withUnsafeMutableBufferPointer { prev in
                        withUnsafeMutablePointer(to: &digest) { digestPointer in
                            adb_verify_run(stmt, keys.baseAddress, Int32(keys.count), storeID,
                                           UInt8(StoreFormat.maxRowFormat), &next, prev.baseAddress, &checked,
                                           adds ? digestPointer : nil, progress == nil ? Int64.max : RowsProgress.step)
                        }
                    }
                }
                if checked > 0 {
                    progress?.add(checked)
                    result.rowsChecked += Int(checked)
                    result.lastSeq = next - 1
                    result.endTrusted = true
                    if isLast { result.lastMac = chain.prevMac }
                }
                expected = next
            } else {
                rc = SQLite.rawStep(stmt)
            }
            switch SQLite.stepResult(rc, stmt, while: "verification scan") {
            case .success(true):
                break
            case .success(false):
                if !isLast, !readLastPossible, expected <= range.upperBound {
                    do {
                        try walkExpired(expected...range.upperBound, tombstones, chain: &chain, context: context, keyEntries: keyEntries, result: &result)
                    } catch let damage as TombstoneReader.Damage {
                        return tombstonesUnreadable(damage, range: range, digest: adds ? digest : nil, result: result)
                    }
                } else if isLast, !readLastPossible, expected <= range.upperBound {
                    // The log's last row (read before the scan began) was not returned: a damaged
                    // b-tree page can end SQLite's read early without an error.
                    result.add(Finding(kind: .corruption, seqs: expected...range.upperBound,
                                       message: "SQLite cannot read the rows from seq \(expected) on: the read of the table ended there, though the log's last row is seq \(range.upperBound) (a damaged page)"))
                }
                if adds { result.indexDigest = digest }
                result.readToEnd = true
                return result
            case .failure(let error) where error.code == .corrupt:
                result.add(Finding(kind: .corruption, seqs: expected...max(expected, range.upperBound),
                                   message: "SQLite cannot read the rows from seq \(expected) on: \(SQLite.message(stmt))"))
                if adds { result.indexDigest = digest }
                return result
            case .failure(let error):
                throw error
            }
            let seq = SQLite.int64(stmt, RowLayout.seq)
            if adds { adb_index_digest_add_row(&digest, stmt) }
            if let mask = ErasureCheck.mask(stmt) { result.erased[seq] = mask }
            if seq > expected {
                do {
                    try walkExpired(expected...(seq - 1), tombstones, chain: &chain, context: context, keyEntries: keyEntries, result: &result)
                } catch let damage as TombstoneReader.Damage {
                    return tombstonesUnreadable(damage, range: range, digest: adds ? digest : nil, result: result)
                }
            }
            if seq == .max { readLastPossible = true } else { expected = seq + 1 }
            result.rowsChecked += 1
            progress?.add(1)
            var view = RowView(stmt)
            if let finding = view.check(seq: seq, chain: &chain, context: context) { result.add(finding) }
            result.lastSeq = seq
            result.endTrusted = chain.prevKnown
            if isLast { result.lastMac = chain.prevMac }
            if let convergeWith, chain.prevKnown, !convergeWith.contains(seq) {
                result.convergedAt = seq
                return result
            }
        }
    }
}
