import GRDB

/// One pass of the integrity scanner as recorded in the store (an `auditdb.scan` entry,
/// verified as it was read).
public struct RecordedScan: Sendable, Hashable {
    /// The seq of the record.
    public let seq: Int64
    /// When it was recorded (the end of the pass).
    public let recordedAt: AuditTimestamp
    public let mode: ScanMode
    /// The first seq checked (1 for a full pass).
    public let fromSeq: Int64
    /// The last seq checked.
    public let throughSeq: Int64
    public let rowsChecked: Int64
    public let duration: Duration
    /// Whether the pass found nothing wrong.
    public let isIntact: Bool
    /// How many findings it had.
    public let findings: Int64
    /// Its first finding, as text.
    public let firstFinding: String?
    /// The MAC of row `throughSeq` that an intact pass saw.
    let headMac: [UInt8]?

    /// The verified position an intact pass's record states (its MAC already checked by the
    /// reader that returned the entry).
    var position: Verifier.Position? {
        guard isIntact, throughSeq >= 1, throughSeq < seq, let headMac, headMac.count == 32 else { return nil }
        return Verifier.Position(seq: throughSeq, mac: headMac)
    }

    init?(_ entry: AuditEntry) {
        guard entry.isVerified, entry.action == IntegrityScanner.scanAction, entry.origin == .recorded,
              entry.actor == "auditdb", let json = entry.detailsJSON,
              let values = JSONText.members(json)  // written by the scanner; a row that does not parse is not a record
        else { return nil }
        guard case .string(let modeName)? = values["mode"], let mode = ScanMode(rawValue: modeName),
              case .int(let from)? = values["fromSeq"], case .int(let through)? = values["throughSeq"],
              case .int(let rows)? = values["rowsChecked"], case .int(let micros)? = values["durationMicros"],
              case .string(let result)? = values["result"], case .int(let findings)? = values["findings"]
        else { return nil }
        seq = entry.seq
        recordedAt = entry.recordedAt
        self.mode = mode
        fromSeq = from
        throughSeq = through
        rowsChecked = rows
        duration = .microseconds(micros)
        isIntact = result == "intact"
        self.findings = findings
        if case .string(let text)? = values["firstFinding"] { firstFinding = text } else { firstFinding = nil }
        if case .string(let hex)? = values["headMac"] { headMac = Hex.decode(hex) } else { headMac = nil }
    }

    /// Scan records, newest first, through the partial index on AuditDB's own entries
    /// (``HoldLog/source(_:)``).
    static func newestFirstSQL(throughTable: Bool) -> String {
        """
        SELECT seq FROM audit_entries\(HoldLog.source(throughTable))
        WHERE action = 'auditdb.scan' AND action >= 'auditdb.' AND action < 'auditdb/' AND seq >= 1 AND origin = 0
        ORDER BY seq DESC
        """
    }

    /// Reads scan-record rows newest first, each verified (MAC and link) by an ``EntryReader``
    /// in `mode`, until `visit` returns true.
    static func newestFirst(_ db: Database, storeID: StoreID, keys: KeyRing, mode: EntryQuery.UnverifiedRows,
                            _ visit: (AuditEntry) throws -> Bool) throws
    {
        var reader = try EntryReader(db, storeID: storeID, keys: keys, mode: mode)
        let row = try db.cachedStatement(sql: try RowLayout.select(db) + " WHERE seq = ?")
        let candidates = try Int64.fetchCursor(db, sql: newestFirstSQL(throughTable: HoldLog.mustReadTable(db)))
        while let seq = try candidates.next() {
            var entries: [AuditEntry] = []
            try row.setArguments([seq])
            reader.lastSeq = nil  // link to the stored row before it, not to the previous record
            try reader.read(row, into: &entries)
            if let entry = entries.first, try visit(entry) { return }
        }
    }
}

extension AuditStore {
    /// Verifies every row after `seq` (MAC and chain link, the link of the first to the stored
    /// MAC at `seq`), 256 at a time (a row's details may be 64 KiB); throws `integrityViolation`
    /// naming the first that fails.
    static func verifyRows(_ db: Database, after seq: Int64, storeID: StoreID, keys: KeyRing) throws {
        var reader = try EntryReader(db, storeID: storeID, keys: keys, mode: .throw)
        let page = try db.cachedStatement(sql: try RowLayout.select(db) + " NOT INDEXED WHERE seq > ? ORDER BY seq LIMIT 256")
        var after = seq
        while true {
            var entries: [AuditEntry] = []
            try page.setArguments([after])
            do {
                try reader.read(page, into: &entries)
            } catch let error as AuditError where error.code == .integrityViolation {
                throw AuditError(.integrityViolation, "a row appended after the last recorded scan pass (record seq \(seq)) fails verification: \(error.message)")
            }
            // A record AuditDB wrote after the newest one the engine index lists: the index was
            // edited to hide it (it may be the pass that found damage).
            if let hidden = entries.first(where: { RecordedScan($0) != nil }) {
                throw AuditError(.integrityViolation, "scan record \(hidden.seq) is newer than the newest one the index audit_entries_engine lists (record seq \(seq)): the index was edited to hide it, so the scan history is not believed. Run `auditdb verify` (it reports index-mismatch), then `auditdb repair-indexes` to rebuild the index")
            }
            guard let last = entries.last else { return }
            after = last.seq
        }
    }
}

/// The scan history's summary: the latest pass and the latest full pass.
public struct RecordedScanStatus: Sendable, Hashable {
    /// The newest recorded pass, if any.
    public let lastPass: RecordedScan?
    /// The newest recorded full pass, if any.
    public let lastFullPass: RecordedScan?
}

extension AuditStore {
    /// Reads the scan history recorded in the store (newest first), verifying every record:
    /// the newest pass and the newest full pass. Database work: for an in-process health check
    /// use ``IntegrityScanner/status`` instead.
    ///
    /// With `verifyingRowsAfter` (the default), every row after the newest record is verified
    /// too (MAC and chain link, O(rows since that pass) time in one read transaction, 256 rows in
    /// memory at a time): a record of a later pass that found damage cannot be hidden by changing
    /// its action, deleting it or removing it from the index `audit_entries_engine`, and a row
    /// changed after that pass is found. Rows at or before
    /// the newest record are not read again. (A cut tail still needs anchored checkpoints:
    /// docs/FORMAT.md section 2.)
    ///
    /// - Parameters:
    ///   - searchLimit: how many records to read at most while looking for a full pass.
    ///   - verifyingRowsAfter: verify the rows after the newest record (see above).
    /// - Throws: ``AuditError`` `integrityViolation` when a record, or a row after the newest one,
    ///   fails verification, or a verified record after the newest one the index lists is found.
    public func recordedScanStatus(searchLimit: Int = 10_000, verifyingRowsAfter: Bool = true) async throws -> RecordedScanStatus {
        let storeID = self.storeID
        let keys = self.keys
        do {
            return try await pool.read { db in
                var last: RecordedScan?
                var lastFull: RecordedScan?
                var read = 0
                // A record that fails verification throws: the history is not believed.
                try RecordedScan.newestFirst(db, storeID: storeID, keys: keys, mode: .throw) { entry in
                    read += 1
                    if let record = RecordedScan(entry) {
                        if last == nil { last = record }
                        if record.mode == .full { lastFull = record }
                    }
                    return lastFull != nil || read >= searchLimit
                }
                if verifyingRowsAfter, let last { try Self.verifyRows(db, after: last.seq, storeID: storeID, keys: keys) }
                return RecordedScanStatus(lastPass: last, lastFullPass: lastFull)
            }
        } catch let error as AuditError {
            throw error
        } catch {
            throw AuditError.from(error, while: "read the scan history")
        }
    }
}
