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

    init?(_ entry: AuditEntry) {
        guard entry.isVerified, entry.action == IntegrityScanner.scanAction, entry.origin == .recorded,
              entry.actor == "auditdb", let json = entry.detailsJSON,
              let members = try? JSONParser.topLevelMembers(json)  // written by the scanner; a row that does not parse is not a record
        else { return nil }
        var values: [String: JSONValue] = [:]
        for (key, value, _) in members { values[key] = value }
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
    /// - Parameter searchLimit: how many records to read at most while looking for a full pass.
    public func recordedScanStatus(searchLimit: Int = 10_000) async throws -> RecordedScanStatus {
        let storeID = self.storeID
        let keys = self.keys
        do {
            return try await pool.read { db in
                var reader = try EntryReader(db, storeID: storeID, keys: keys, mode: .throw)
                let statement = try db.cachedStatement(sql: "SELECT \(Verifier.selectColumns) FROM audit_entries WHERE seq = ?")
                let candidates = try Int64.fetchCursor(db, sql: IntegrityScanner.scanRecordsSQL)
                var last: RecordedScan?
                var read = 0
                while read < searchLimit, let seq = try candidates.next() {
                    read += 1
                    var entries: [AuditEntry] = []
                    try statement.setArguments([seq])
                    reader.lastSeq = nil
                    try reader.read(statement, into: &entries)  // a record that fails verification throws
                    guard let entry = entries.first, let record = RecordedScan(entry) else { continue }
                    if last == nil { last = record }
                    if record.mode == .full { return RecordedScanStatus(lastPass: last, lastFullPass: record) }
                }
                return RecordedScanStatus(lastPass: last, lastFullPass: nil)
            }
        } catch let error as AuditError {
            throw error
        } catch {
            throw AuditError.from(error, while: "read the scan history")
        }
    }
}
