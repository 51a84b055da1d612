import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// Verification step 9 (FORMAT.md section 20.4): every tombstone is accounted for by a verified
/// expiry entry whose digest covers it, and every expiry followed the policy it states and the
/// legal holds in force when it ran.
enum ExpiryCheck {
    static let entriesCondition = """
         WHERE action = 'auditdb.retention.expired' AND action >= 'auditdb.' AND action < 'auditdb/' AND seq >= 1 ORDER BY seq
        """

    /// With `throughTable`, the expiry and hold entries are found by reading every row, not
    /// through `audit_entries_engine` (a full pass whose index proof did not prove that index:
    /// an entry hidden from it must still count, FORMAT.md section 11, step 9).
    static func findings(_ db: Database, storeID: StoreID, keys: KeyRing, throughTable: Bool = false) throws -> [Finding] {
        guard try db.tableExists("audit_entries") else { return [] }
        // A dropped audit_expired (schema-tampered) holds no tombstones: each expiry entry then
        // matches none, as if they were deleted one by one (FORMAT.md 20.4).
        let hasTombstones = try db.tableExists("audit_expired")
        var findings: [Finding] = []
        func tampered(_ seq: Int64, _ message: String) {
            findings.append(Finding(kind: .expiryTampered, seqs: seq...seq, message: message))
        }
        // The expiry entries, read through verification.
        var reader = try EntryReader(db, storeID: storeID, keys: keys, mode: .mark, judgesLinksAsAPass: true)
        var entries: [AuditEntry] = []
        try reader.read(try db.makeStatement(sql: try RowLayout.select(db) + HoldLog.source(try HoldLog.mustReadTable(db, throughTable)) + entriesCondition), into: &entries)
        var records: [Int64: (entry: AuditEntry, record: ExpiryRecord)] = [:]
        // "Verified" as section 20.4 has it: nothing reported at the entry's own seq (a finding
        // the reader attached about the element before it is reported there by step 4).
        for entry in entries where entry.origin == .recorded && entry.isVerifiedAtItsSeq {
            do {
                records[entry.seq] = (entry, try ExpiryRecord(entry))
            } catch {
                tampered(entry.seq, "expiry entry \(entry.seq) is signed but cannot be read: \(error.reason)")
            }
        }
        // The holds in force, from the hold entries that verify and read as hold entries (damage
        // to the others is reported at their rows).
        let holds = try HoldLog.read(db, storeID: storeID, keys: keys, strict: false, throughTable: throughTable).holds
        // Each expiry entry's tombstones are folded into a running digest as they are read (one
        // pass, nothing kept per tombstone): every tombstone naming an entry is one of its
        // tombstones, even one that breaks another rule (then the group cannot match). The policy
        // and holds are judged per tombstone with tags computed once per entry; the verdicts count
        // only if the group matches its entry.
        var groups: [Int64: Group] = [:]
        for (seq, (entry, record)) in records {
            let judge = keys.key(version: entry.keyVersion).map {
                Judge(record: record, holds: holds.filter { $0.id < seq && ($0.release.map { $0.seq > seq } ?? true) },
                      key: $0, storeID: storeID)
            }
            groups[seq] = Group(judge: judge)
        }
        defer { for group in groups.values { adb_digest_finish(group.digest, nil) } }
        // A tombstone stands for a row the log no longer has: at a seq from 1 to the last row's,
        // where audit_entries has no row. Any other audit_expired row takes no part in the log
        // (nothing walks, counts or ships it): it is foreign, and must not block the store.
        let lastSeq = try Int64.fetchOne(db, sql: "SELECT max(seq) FROM audit_entries NOT INDEXED WHERE seq >= 1") ?? 0
        var cutTail: Int64?  // the highest tombstone above the last row that links to the one before it
        let statement = hasTombstones ? try db.makeStatement(sql: """
            SELECT x.seq, x.key_version, x.mac, x.leaf, x.recorded_at, x.tags, x.expiry_seq,
                   EXISTS (SELECT 1 FROM audit_entries e WHERE e.seq = x.seq)
            FROM audit_expired x ORDER BY x.seq
            """) : nil
        let stmt = statement?.sqliteStatement
        defer { if let stmt { SQLite.reset(stmt) } }
        while hasTombstones, try SQLite.step(stmt!, while: "read tombstones") {
            let stmt = stmt!
            let seq = SQLite.int64(stmt, 0)  // an INTEGER PRIMARY KEY is an integer
            func integer(_ column: Int32) -> Int64? { SQLite.type(stmt, column) == SQLITE_INTEGER ? SQLite.int64(stmt, column) : nil }
            func blob(_ column: Int32, _ length: Int) -> [UInt8]? {
                guard SQLite.type(stmt, column) == SQLITE_BLOB, let bytes = SQLite.blob(stmt, column), bytes.count == length else { return nil }
                return bytes
            }
            let expirySeq = integer(6)
            let known = expirySeq.map { groups[$0] != nil } ?? false
            let kv = integer(1).flatMap { UInt32(exactly: $0) }
            let mac = blob(2, 32), leaf = blob(3, 32), recordedAt = integer(4), tags = blob(5, 80)
            if seq > lastSeq, let kv, let mac, try Self.links(seq, keyVersion: kv, mac: mac, db: db, storeID: storeID, keys: keys) {
                // Signed, and chained to what stands before it: rows were there up to this seq
                // at least, and were cut from the tail (with the expiry entry that expired them).
                cutTail = seq
                continue
            }
            if let why = SQLite.int64(stmt, 7) == 1 ? "the log has a row at that seq"
                : seq < 1 ? "the log starts at seq 1" : seq > lastSeq ? "the log ends at seq \(lastSeq)" : nil
            {
                findings.append(Finding(kind: .foreignRow, seqs: seq...seq, message: Self.foreign(seq, why)))
                continue
            }
            if !known {
                tampered(seq, "the tombstone of expired row \(seq) names expiry entry \(expirySeq.map(String.init) ?? "?"), which is missing, does not verify, or is not an expiry entry")
            } else if kv == nil || mac == nil || leaf == nil || recordedAt == nil || tags == nil {
                tampered(seq, "the tombstone of expired row \(seq) is malformed (key_version and recorded_at must be integers, mac, leaf and tags blobs of 32, 32 and 80 bytes)")
            }
            guard let expirySeq, var group = groups[expirySeq] else { continue }
            group.count += 1
            group.first = group.first ?? seq
            group.last = seq
            if let kv, let mac, let leaf, let recordedAt, let tags {
                let tombstone = Tombstone(seq: seq, keyVersion: kv, mac: mac, leaf: leaf, recordedAt: recordedAt, tags: tags,
                                          expirySeq: expirySeq)
                let encoded = tombstone.encoded
                adb_digest_update(group.digest, encoded, encoded.count)
                if let why = group.judge?.violation(tombstone) {
                    group.violations.append(Finding(kind: .retentionViolation, seqs: seq...seq, message: why))
                }
            } else {
                group.broken = true
            }
            groups[expirySeq] = group
        }
        if let cutTail {
            findings.append(Finding(kind: .truncated, seqs: (lastSeq + 1)...cutTail, message: "the log ends at seq \(lastSeq), but signed tombstones above it chain on from the rows before them up to seq \(cutTail): rows \(lastSeq + 1)...\(cutTail) at least (and the expiry entry that expired them) were cut from the tail"))
        }
        for seq in records.keys.sorted() {
            let record = records[seq]!.record
            guard var group = groups.removeValue(forKey: seq) else { continue }
            var digest = [UInt8](repeating: 0, count: 32)
            adb_digest_finish(group.digest, &digest)
            group.digest = nil
            guard !group.broken, group.count == record.count, group.first == record.first, group.last == record.last,
                  digest == record.digest
            else {
                tampered(seq, "expiry entry \(seq) does not match its tombstones (it expired \(record.count) row(s), \(record.first)...\(record.last); \(group.count) tombstone(s) name it, or one was changed)")
                continue
            }
            findings += group.violations
        }
        return findings.sorted { ($0.seqs?.lowerBound ?? .min) < ($1.seqs?.lowerBound ?? .min) }
    }

    /// Whether a tombstone's link tag follows the stored MAC at `seq − 1` (a row's, else a
    /// tombstone's; 32 zero bytes before seq 1) under its key version: only a key holder writes
    /// one, so a tombstone above the last row that links is what a cut tail left (FORMAT.md 20.4).
    static func links(_ seq: Int64, keyVersion: UInt32, mac: [UInt8], db: Database, storeID: StoreID, keys: KeyRing) throws -> Bool {
        guard let key = keys.key(version: keyVersion) else { return false }
        let prev: [UInt8]
        if seq == 1 {
            prev = [UInt8](repeating: 0, count: 32)
        } else if let row = try Row.fetchOne(db, sql: previousMacSQL, arguments: [seq - 1]),
                  row.stored(1, as: String.self) == "blob", let bytes = row.stored(0, as: Data.self), bytes.count == 32 {
            prev = Array(bytes)
        } else {
            return false
        }
        return prev.withUnsafeBufferPointer { adb_link_check(key.keyset, storeID.bytes, seq, mac, $0.baseAddress) } == 1
    }

    /// The stored MAC at seq ?1 and its type: the row's if audit_entries has one there, else the tombstone's.
    static let previousMacSQL = """
        SELECT m, typeof(m) FROM (SELECT CASE WHEN EXISTS (SELECT 1 FROM audit_entries WHERE seq = ?1)
            THEN (SELECT mac FROM audit_entries WHERE seq = ?1) ELSE (SELECT mac FROM audit_expired WHERE seq = ?1) END AS m)
        """

    /// The `foreign-row` message for an audit_expired row outside the log (FORMAT.md 20.4).
    static func foreign(_ seq: Int64, _ why: String) -> String {
        "audit_expired row at seq \(seq) is not a tombstone of the log: \(why). AuditDB ignores it; another SQLite client inserted it (or an expired row was put back, or rows were cut from the tail: see the other findings, and verify against anchors)"
    }

    /// One expiry entry's tombstones as they are read.
    struct Group {
        var digest: OpaquePointer? = adb_digest_start()
        var count: Int64 = 0
        var first: Int64?
        var last: Int64 = 0
        var broken = false
        var violations: [Finding] = []
        /// Nil when the entry's key version is not in the ring (reported as unknown-key-version).
        let judge: Judge?

        init(judge: Judge?) { self.judge = judge }
    }

    /// Whether a tombstone may have expired under one expiry entry (FORMAT.md 20.3), with the tags
    /// of the policy's tenants and of the holds in force computed once.
    struct Judge {
        let record: ExpiryRecord
        /// Tenant tag, limit, and how to name it, in tenant order.
        let tenants: [(tag: [UInt8], limit: RetentionPolicy.Limit, scope: String)]
        /// Hold, the tag field it matches, and the tags that match.
        let holds: [(hold: LegalHold, field: Tombstone.Field, tags: [[UInt8]])]

        init(record: ExpiryRecord, holds inForce: [LegalHold], key: AuditKey, storeID: StoreID) {
            func tag(_ field: Tombstone.Field, _ value: [UInt8]) -> [UInt8] { Tombstone.tag(field, value, key: key, storeID: storeID) }
            self.record = record
            tenants = record.policy.tenantOverrides.map { override in
                (tag(.tenant, Tombstone.optString(override.tenant)), override.limit,
                 "the limit of tenant \(OutputEscaping.jsonQuoted(override.tenant))")
            }
            holds = inForce.map { hold in
                switch hold.matcher {
                case .tenant(let value): (hold, .tenant, [tag(.tenant, Tombstone.optString(value))])
                // An actor hold also keeps rows whose actor was withheld (docs/retention.md).
                case .actor(let value): (hold, .actor, [tag(.actor, Tombstone.optString(value)), tag(.actor, Tombstone.optString(nil))])
                case .correlationId(let value): (hold, .correlationId, [tag(.correlationId, Tombstone.optString(value))])
                case .resource(nil, let id): (hold, .resourceId, [tag(.resourceId, Tombstone.optString(id))])
                case .resource(let type?, let id): (hold, .resource, [tag(.resource, Tombstone.optString(type) + Tombstone.optString(id))])
                }
            }
        }

        /// Why `tombstone` may not have expired, or nil.
        func violation(_ tombstone: Tombstone) -> String? {
            var limit = record.policy.defaultLimit
            var scope = "the default limit"
            for tenant in tenants where tenant.tag[...] == tombstone.tag(.tenant) {
                limit = tenant.limit
                scope = tenant.scope
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
            for hold in holds where hold.tags.contains(where: { $0[...] == tombstone.tag(hold.field) }) {
                return "expired by expiry entry \(tombstone.expirySeq) while legal hold \(hold.hold.id) (\(hold.hold.matcher)) was in force"
            }
            return nil
        }
    }
}
