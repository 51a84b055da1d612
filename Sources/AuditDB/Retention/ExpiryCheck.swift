import GRDB

/// Verification step 9 (FORMAT.md section 20.4): every tombstone is accounted for by a verified
/// expiry entry whose digest covers it, and every expiry followed the policy it states and the
/// legal holds in force when it ran.
enum ExpiryCheck {
    static let entriesSQL = RowLayout.select + """
         WHERE action = 'auditdb.retention.expired' AND action >= 'auditdb.' AND action < 'auditdb/' ORDER BY seq
        """

    static func findings(_ db: Database, storeID: StoreID, keys: KeyRing) throws -> [Finding] {
        guard try db.tableExists("audit_expired"), try db.tableExists("audit_entries") else { return [] }
        var findings: [Finding] = []
        func tampered(_ seq: Int64, _ message: String) {
            findings.append(Finding(kind: .expiryTampered, seqs: seq...seq, message: message))
        }
        // The expiry entries, read through verification.
        var reader = try EntryReader(db, storeID: storeID, keys: keys, mode: .mark)
        var entries: [AuditEntry] = []
        try reader.read(try db.makeStatement(sql: entriesSQL), into: &entries)
        var records: [Int64: (entry: AuditEntry, record: ExpiryRecord)] = [:]
        // "Verified" as step 4 has it: the reader's missing-rows finding is about the row before
        // (step 4 reports it there, and does not check this row's link).
        for entry in entries where entry.origin == .recorded && (entry.finding == nil || entry.finding?.kind == .missingRows) {
            do {
                records[entry.seq] = (entry, try ExpiryRecord(entry))
            } catch {
                tampered(entry.seq, "expiry entry \(entry.seq) is signed but cannot be read: \(error.reason)")
            }
        }
        // The tombstones, grouped by the expiry entry they name: every tombstone naming an entry is
        // one of its tombstones, even one that breaks another rule (then the group cannot match).
        var groups: [Int64: [Tombstone]] = [:]
        var broken: Set<Int64> = []
        let rows = try Row.fetchCursor(db, sql: """
            SELECT x.seq, x.key_version, x.mac, x.leaf, x.recorded_at, x.tags, x.expiry_seq,
                   EXISTS (SELECT 1 FROM audit_entries e WHERE e.seq = x.seq)
            FROM audit_expired x ORDER BY x.seq
            """)
        while let row = try rows.next() {
            guard let seq = TombstoneReader.integer(row, 0) else { continue }  // an INTEGER PRIMARY KEY is an integer
            let expirySeq = TombstoneReader.integer(row, 6)
            let known = expirySeq.map { records[$0] != nil } ?? false
            let kv = TombstoneReader.integer(row, 1).flatMap { UInt32(exactly: $0) }
            let mac = TombstoneReader.blob(row, 2, length: 32), leaf = TombstoneReader.blob(row, 3, length: 32)
            let recordedAt = TombstoneReader.integer(row, 4), tags = TombstoneReader.blob(row, 5, length: 80)
            if row[7] as Bool? == true {
                tampered(seq, "seq \(seq) is both in the log and expired (an expired row put back, or a tombstone inserted)")
            } else if seq < 1 {
                tampered(seq, "a tombstone at seq \(seq), below 1: the log starts at seq 1")
            } else if !known {
                tampered(seq, "the tombstone of expired row \(seq) names expiry entry \(expirySeq.map(String.init) ?? "?"), which is missing, does not verify, or is not an expiry entry")
            } else if kv == nil || mac == nil || leaf == nil || recordedAt == nil || tags == nil {
                tampered(seq, "the tombstone of expired row \(seq) is malformed (key_version and recorded_at must be integers, mac, leaf and tags blobs of 32, 32 and 80 bytes)")
            }
            guard let expirySeq, known else { continue }
            guard let kv, let mac, let leaf, let recordedAt, let tags else {
                broken.insert(expirySeq)
                groups[expirySeq, default: []].append(Tombstone(seq: seq, keyVersion: 0, mac: [], leaf: [], recordedAt: 0, tags: [], expirySeq: expirySeq))
                continue
            }
            groups[expirySeq, default: []].append(Tombstone(seq: seq, keyVersion: kv, mac: mac, leaf: leaf, recordedAt: recordedAt,
                                                            tags: tags, expirySeq: expirySeq))
        }
        // The holds in force, from the hold entries that verify and read as hold entries (damage
        // to the others is reported at their rows).
        let holds = try HoldLog.read(db, storeID: storeID, keys: keys, strict: false).holds
        for seq in records.keys.sorted() {
            let (entry, record) = records[seq]!
            let tombstones = groups[seq] ?? []
            guard !broken.contains(seq), Int64(tombstones.count) == record.count, tombstones.first?.seq == record.first,
                  tombstones.last?.seq == record.last, Tombstone.digest(tombstones) == record.digest
            else {
                tampered(seq, "expiry entry \(seq) does not match its tombstones (it expired \(record.count) row(s), \(record.first)...\(record.last); \(tombstones.count) tombstone(s) name it, or one was changed)")
                continue
            }
            guard let key = keys.key(version: entry.keyVersion) else { continue }  // reported as unknown-key-version
            let inForce = holds.filter { $0.id < seq && ($0.release.map { $0.seq > seq } ?? true) }
            for tombstone in tombstones {
                if let why = violation(tombstone, record, inForce, key: key, storeID: storeID) {
                    findings.append(Finding(kind: .retentionViolation, seqs: tombstone.seq...tombstone.seq, message: why))
                }
            }
        }
        return findings.sorted { ($0.seqs?.lowerBound ?? .min) < ($1.seqs?.lowerBound ?? .min) }
    }

    /// Why `tombstone` may not have expired under `record`, or nil (FORMAT.md 20.3).
    static func violation(_ tombstone: Tombstone, _ record: ExpiryRecord, _ holds: [LegalHold], key: AuditKey,
                          storeID: StoreID) -> String?
    {
        func tag(_ field: Tombstone.Field, _ value: [UInt8]) -> [UInt8] { Tombstone.tag(field, value, key: key, storeID: storeID) }
        var limit = record.policy.defaultLimit
        var scope = "the default limit"
        for tenant in record.policy.tenantLimits.keys.sorted() where tag(.tenant, Tombstone.optString(tenant))[...] == tombstone.tag(.tenant) {
            limit = record.policy.tenantLimits[tenant]!
            scope = "the limit of tenant \(OutputEscaping.jsonQuoted(tenant))"
        }
        let recorded = AuditTimestamp(microsecondsSinceEpoch: tombstone.recordedAt)
        switch limit {
        case .forever:
            return "expired by expiry entry \(tombstone.expirySeq) although \(scope) keeps it for ever"
        case .maximumAge(let period):
            let (cut, overflow) = record.now.microsecondsSinceEpoch.subtractingReportingOverflow(period.microseconds)
            if overflow || tombstone.recordedAt >= cut {
                return "expired by expiry entry \(tombstone.expirySeq) before its time: recorded \(recorded.iso8601), \(scope) is \(period) at \(record.now.iso8601)"
            }
        }
        for hold in holds {
            let matches: Bool
            switch hold.matcher {
            case .tenant(let value): matches = tag(.tenant, Tombstone.optString(value))[...] == tombstone.tag(.tenant)
            case .actor(let value):
                matches = tag(.actor, Tombstone.optString(value))[...] == tombstone.tag(.actor)
                    || tag(.actor, Tombstone.optString(nil))[...] == tombstone.tag(.actor)
            case .correlationId(let value): matches = tag(.correlationId, Tombstone.optString(value))[...] == tombstone.tag(.correlationId)
            case .resource(nil, let id): matches = tag(.resourceId, Tombstone.optString(id))[...] == tombstone.tag(.resourceId)
            case .resource(let type?, let id):
                matches = tag(.resource, Tombstone.optString(type) + Tombstone.optString(id))[...] == tombstone.tag(.resource)
            }
            if matches {
                return "expired by expiry entry \(tombstone.expirySeq) while legal hold \(hold.id) (\(hold.matcher)) was in force"
            }
        }
        return nil
    }
}
