import GRDB

/// The scan record: each pass as a signed `auditdb.scan` entry, and the verified position an
/// incremental pass starts from after a restart.
extension IntegrityScanner {
    static let scanAction = "auditdb.scan"

    func record(_ report: ScanReport, with recorder: @Sendable (AuditEvent) async throws -> Int64) async throws -> Int64 {
        let integrity = report.integrity
        var details: [String: JSONValue] = [
            "mode": .string(report.mode.rawValue),
            "fromSeq": .int(integrity.firstCheckedSeq),
            "throughSeq": .int(integrity.lastSeq),
            "rowsChecked": .int(Int64(integrity.rowsChecked)),
            "durationMicros": .int(integrity.duration.microseconds),
            "result": .string(integrity.isIntact ? "intact" : "findings"),
            "findings": .int(Int64(integrity.totalFindings)),
            "firstFinding": integrity.firstFinding.map { .string(String(describing: $0).prefix(500).description) } ?? .null,
        ]
        if integrity.isIntact, let head = integrity.verifiedHead {
            details["throughSeq"] = .int(head.seq)
            details["headMac"] = .string(Hex.encode(head.mac))
        }
        let event = AuditEvent(
            actor: "auditdb", action: Self.scanAction, resourceType: "store", resourceId: report.integrity.storeID?.hex,
            outcome: integrity.isIntact ? .success : .failure, severity: integrity.isIntact ? .info : .critical,
            source: "auditdb.scanner", details: AuditDetails(details))
        return try await recorder(event)
    }

    /// The position proven by the newest intact scan record whose own MAC verifies; nil if
    /// there is none, or if the newest such record found damage (then a full pass runs: an
    /// incremental one from an older position would report intact over that damage). Reads
    /// records newest first and stops at the first good one; a record that fails verification is
    /// skipped (the pass that follows reports it).
    func recordedPosition() async throws -> Verifier.Position? {
        let keys = target.keys
        let knownID = target.storeID
        return try await target.reader.read { db in
            // Without a readable header there is no trusted position; the full pass that
            // follows reports the header.
            guard let storeID = try knownID ?? Self.headerID(db) else { return nil }
            var found: Verifier.Position?
            try RecordedScan.newestFirst(db, storeID: storeID, keys: keys, mode: .mark) { entry in
                guard let scan = RecordedScan(entry) else { return false }
                if !scan.isIntact { return true }  // damage recorded since any intact position
                found = scan.position
                return found != nil
            }
            return found
        }
    }

    /// Whether the newest readable scan record in the store found damage: another scanner (a
    /// nightly `auditdb scan --full`, another process) may have found what this one's position
    /// is above.
    func newestRecordFoundDamage() async throws -> Bool {
        let keys = target.keys
        let knownID = target.storeID
        return try await target.reader.read { db in
            guard let storeID = try knownID ?? Self.headerID(db) else { return false }
            var damage = false
            try RecordedScan.newestFirst(db, storeID: storeID, keys: keys, mode: .mark) { entry in
                guard let scan = RecordedScan(entry) else { return false }
                damage = !scan.isIntact
                return true
            }
            return damage
        }
    }

    static func headerID(_ db: Database) throws -> StoreID? {
        switch try Verifier.readHeader(db) {
        case .success(let header): header.storeID
        case .failure: nil
        }
    }
}
