import Foundation
import GRDB

/// What goes into a compliance report besides what the store holds.
public struct ComplianceReportOptions: Sendable {
    /// Key versions older than this (by the creation time in the key file) are flagged; nil
    /// flags none. Default 90 days.
    public var keyMaxAge: RetentionPeriod?
    /// Anchor directories (or checkpoint files) to verify the store against and to look each
    /// checkpoint up in.
    public var anchorPaths: [String]
    /// The report's time.
    public var now: AuditTimestamp
    /// Who asked for the report: the actor of the access entry the report leaves in the log
    /// (`"auditdb"` if nil).
    public var requestedBy: String?

    /// Options with a 90-day key age limit, no anchors, and the current time.
    public init(keyMaxAge: RetentionPeriod? = ComplianceReportOptions.defaultKeyMaxAge, anchorPaths: [String] = [],
                now: AuditTimestamp = .now(), requestedBy: String? = nil)
    {
        self.keyMaxAge = keyMaxAge
        self.anchorPaths = anchorPaths
        self.now = now
        self.requestedBy = requestedBy
    }

    /// 90 days.
    public static let defaultKeyMaxAge: RetentionPeriod? = {
        do { return try RetentionPeriod(90, .days) } catch { return nil }
    }()
}

extension AuditStore {
    /// Makes a compliance report for an auditor (docs/FORMAT.md section 23), signed with the
    /// checkpoint signing key: the store, the log's range, a full verification run now (against
    /// the anchors, if given), the last recorded full scan, the key versions (status, age,
    /// compromise declarations), the checkpoints and where they are anchored, the expiries, the
    /// erasures and the legal holds (who placed and released each shown under the store's actor
    /// rule, as `hold list` shows them), and flags for what needs attention. Never a value of a row.
    ///
    /// Everything in it is read through verification, and describes the log as of the last seq
    /// the verification run read (appends, expiries and releases after it are left out, so the
    /// report agrees with itself however busy the store is); a store that does not verify still gets
    /// a report, which says so (its `verification.intact` is false and the first findings are
    /// listed). Once signed, the report is recorded in the log as an access entry (action
    /// `auditdb.access`, actor ``ComplianceReportOptions/requestedBy``, details `kind` `"report"`
    /// and the SHA-256 of `report.json`): ``SignedComplianceReport/accessSeq``.
    ///
    /// - Throws: ``AuditError`` `invalidInput` for an anchor path that does not exist or a
    ///   ``ComplianceReportOptions/requestedBy`` that is not a valid actor (checked first), `closed`,
    ///   storage errors.
    public func complianceReport(signer: CheckpointSigner, options: ComplianceReportOptions = ComplianceReportOptions())
        async throws -> SignedComplianceReport
    {
        // Who asks is checked before the work, not when the access entry is written at the end.
        if let by = options.requestedBy { try Self.checkRequester(by, field: "requestedBy") }
        let verification = options.anchorPaths.isEmpty
            ? try await verify()
            : try await verify(againstAnchors: options.anchorPaths, publicKeys: signer.publicKeys)
        let last = verification.lastSeq
        let scans = try await recordedScanStatus(verifyingRowsAfter: false)  // the verification above covers every row
        let checkpoints = try await checkpoints().filter { $0.seq <= last }
        let holds = try await holds(includeReleased: true).compactMap { $0.asOf(seq: last) }
        let expiries = try await allEntries(action: ExpiryRecord.action, upTo: last)
        let declarations = try await allEntries(action: AuditStore.declarationAction, upTo: last)
        let rotations = try await allEntries(action: Appender.rotationAction, upTo: last)
        let erasures = try await allEntries(action: ErasureRecord.action, upTo: last)
        // A masking entry that fails verification must not stop the report (a store that does
        // not verify still gets one): its rules are unknown, so every name is withheld, and flagged.
        let actorMask: ActorMask
        var maskingUnreadable = false
        do {
            actorMask = try ActorMask(try await maskingConfiguration())
        } catch let error as AuditError where error.code == .integrityViolation {
            actorMask = .unreadable
            maskingUnreadable = true
        }
        let facts = try await reportFacts(asOf: last)
        var body = ReportBody(storeID: storeID, now: options.now, storeCreatedAt: facts.created)
        body.log(lastSeq: verification.lastSeq, present: facts.present, expired: facts.expired)
        body.verification(verification, anchors: options.anchorPaths)
        body.lastFullScan(scans.lastFullPass)
        body.keys(keys, firstSeqs: facts.firstSeqs, declarations: declarations, maxAge: options.keyMaxAge)
        body.rotations(rotations)
        body.checkpoints(checkpoints, publicKeys: signer.publicKeys, anchors: options.anchorPaths)
        body.retention(expiries: expiries, holds: holds, actorMask: actorMask, maskingUnreadable: maskingUnreadable)
        body.erasures(erasures)
        let signed = SignedComplianceReport.sign(try body.json(), text: body.text, storeID: storeID, createdAt: options.now,
                                                 storeIntact: verification.isIntact, key: signer.signingKey)
        let access = try await recordAccess(kind: "report", by: options.requestedBy, details: [
            "reportSha256": .string(Hex.encode(ExportStatement.sha256(signed.json))), "keyVersion": .int(Int64(signed.keyVersion)),
        ])
        return signed.recorded(at: access)
    }

    /// What the report counts, in one snapshot, as of seq `last`.
    struct ReportFacts: Sendable {
        /// The store's creation time (µs).
        var created: Int64
        /// Rows expired by expiry entries at or below `last`.
        var expired: Int
        /// Rows 1…`last` present then (those expired since count as present).
        var present: Int
        /// The first seq of each key version used by then.
        var firstSeqs: [UInt32: Int64]
    }

    func reportFacts(asOf last: Int64) async throws -> ReportFacts {
        do {
            return try await pool.read { db in
                let header = try StoreHeader.read(db, path: self.path)
                // As of seq `last`: a row expired by a later expiry entry was still present then.
                var expired = 0, expiredSince = 0
                if try db.tableExists("audit_expired") {
                    expired = try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_expired x WHERE seq <= ? AND expiry_seq <= ? AND \(Tombstone.inLog)",
                                               arguments: [last, last]) ?? 0
                    expiredSince = try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_expired x WHERE seq <= ? AND expiry_seq > ? AND \(Tombstone.inLog)",
                                                    arguments: [last, last]) ?? 0
                }
                let present = (try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_entries WHERE seq >= 1 AND seq <= ?", arguments: [last]) ?? 0)
                    + expiredSince
                let (used, _) = try KeyVersionCache.confirmed(db)
                var firstSeqs: [UInt32: Int64] = [:]
                for version in used {
                    // A version first used after `last` had no rows then.
                    firstSeqs[version] = try Int64.fetchOne(db, sql: "SELECT first_seq FROM audit_key_versions WHERE key_version = ?",
                                                            arguments: [Int64(version)]).flatMap { $0 <= last ? $0 : nil }
                }
                // The cache is only a shortcut (any SQLite client can delete its rows, and verify
                // does not require them): a version of the ring it does not confirm is looked up in
                // the log itself, rows and tombstones of expired rows (a scan, only for such a
                // version; the report's own full verification reads every row anyway).
                let expiredTable = try db.tableExists("audit_expired")
                for version in self.keys.versions where firstSeqs[version] == nil {
                    let fromRows = try Int64.fetchOne(db, sql: "SELECT min(seq) FROM audit_entries WHERE key_version = ? AND seq BETWEEN 1 AND ?",
                                                      arguments: [Int64(version), last])
                    let fromTombstones = expiredTable
                        ? try Int64.fetchOne(db, sql: "SELECT min(seq) FROM audit_expired x WHERE key_version = ? AND seq BETWEEN 1 AND ? AND \(Tombstone.inLog)",
                                             arguments: [Int64(version), last]) : nil
                    firstSeqs[version] = [fromRows, fromTombstones].compactMap { $0 }.min()
                }
                return ReportFacts(created: header.createdAt, expired: expired, present: present, firstSeqs: firstSeqs)
            }
        } catch {
            throw AuditError.from(error, while: "read the store's facts for the report")
        }
    }

    /// Every entry with `action` up to seq `last`, oldest first; rows that fail verification are
    /// marked, not thrown (the report's verification section names them).
    private func allEntries(action: String, upTo last: Int64) async throws -> [AuditEntry] {
        var found: [AuditEntry] = []
        var query = EntryQuery(limit: 10_000, action: action)
        query.unverifiedRows = .mark
        guard last >= 1 else { return [] }
        query.seqs = 1...last
        while true {
            let page = try await entries(query)
            found += page
            guard page.count == query.limit, let last = page.last else { return found }
            query.afterSeq = last.seq
        }
    }
}

extension LegalHold {
    /// The hold as it stood at seq `seq`: nil if it was placed later, unreleased if it was
    /// released later.
    func asOf(seq: Int64) -> LegalHold? {
        guard id <= seq else { return nil }
        guard let release, release.seq > seq else { return self }
        return LegalHold(id: id, matcher: matcher, reason: reason, placedBy: placedBy, placedAt: placedAt, release: nil)
    }
}

/// The report's JSON object and its text rendering, built section by section.
struct ReportBody {
    private(set) var members: [String: JSONValue]
    private(set) var flags: [String] = []
    private(set) var lines: [String] = []
    let now: AuditTimestamp

    static let format = "auditdb-report v2"
    /// The formats a report's verifier accepts (docs/FORMAT.md 23.3 step 9): v1 has no
    /// `erasures` and shows hold placers unmasked.
    static let readableFormats: Set<String> = ["auditdb-report v1", format]

    init(storeID: StoreID, now: AuditTimestamp, storeCreatedAt: Int64) {
        self.now = now
        members = ["format": .string(Self.format), "storeId": .string(storeID.hex), "createdAt": .int(now.microsecondsSinceEpoch),
                   "storeCreatedAt": .int(storeCreatedAt)]
        lines = ["AuditDB compliance report", "store \(storeID.hex), created \(AuditTimestamp(microsecondsSinceEpoch: storeCreatedAt))",
                 "report time \(now)"]
    }

    /// The report's bytes: one JSON object, keys sorted, no whitespace, then LF.
    func json() throws(AuditError) -> [UInt8] {
        var all = members
        all["flags"] = .array(flags.map { .string($0) })
        return Array(try JSONText.encode(.object(all)).utf8) + [0x0A]
    }

    /// `report.txt`: each line escaped for one line (``OutputEscaping/escapeForMessage(_:)``), since
    /// findings and flags quote names from the file (an index name may hold a newline or an escape
    /// sequence), which must not forge a line of the report or repaint a terminal.
    var text: String {
        (lines + ["", "flags: \(flags.isEmpty ? "none" : "")"] + flags.map { "  - " + $0 })
            .map(OutputEscaping.escapeForMessage).joined(separator: "\n") + "\n"
    }

    mutating func log(lastSeq: Int64, present: Int, expired: Int) {
        members["log"] = .object(["lastSeq": .int(lastSeq), "rowsPresent": .int(Int64(present)), "rowsExpired": .int(Int64(expired))])
        lines.append("log: seq 1...\(lastSeq), \(present) row(s) present, \(expired) expired")
    }

    mutating func verification(_ report: IntegrityReport, anchors: [String]) {
        var kinds: [String: JSONValue] = [:]
        for finding in report.findings { kinds[finding.kind.name] = .int((kinds[finding.kind.name].flatMap(\.integerValue) ?? 0) + 1) }
        members["verification"] = .object([
            "intact": .bool(report.isIntact), "rowsChecked": .int(Int64(report.rowsChecked)),
            "findings": .int(Int64(report.totalFindings)), "findingKinds": .object(kinds),
            "firstFindings": .array(report.findings.prefix(20).map { .string($0.description) }),
            "anchors": .array(anchors.map { .string($0) }),
        ])
        lines.append("verification now: \(report.isIntact ? "intact" : "NOT INTACT"), \(report.rowsChecked) row(s) checked, "
            + "\(report.totalFindings) finding(s)\(anchors.isEmpty ? ", no anchors given" : ", against \(anchors.count) anchor location(s)")")
        if !report.isIntact { flags.append("verification found \(report.totalFindings) finding(s); the first: \(report.findings.first?.description ?? "-")") }
        if anchors.isEmpty { flags.append("no anchors were checked: only anchored checkpoints prove the log against someone who can write the file") }
    }

    mutating func lastFullScan(_ scan: RecordedScan?) {
        guard let scan else {
            members["lastFullScan"] = .null
            lines.append("last full scan: none recorded")
            flags.append("no full scan is recorded in the log")
            return
        }
        members["lastFullScan"] = .object([
            "seq": .int(scan.seq), "recordedAt": .int(scan.recordedAt.microsecondsSinceEpoch), "intact": .bool(scan.isIntact),
            "throughSeq": .int(scan.throughSeq), "rowsChecked": .int(scan.rowsChecked), "findings": .int(scan.findings),
        ])
        lines.append("last full scan: seq \(scan.seq) at \(scan.recordedAt), \(scan.isIntact ? "intact" : "\(scan.findings) finding(s)"), through seq \(scan.throughSeq)")
        if !scan.isIntact { flags.append("the last full scan (seq \(scan.seq)) found \(scan.findings) finding(s)") }
    }

    /// The verified rotation entries (docs/FORMAT.md section 10.1), oldest first, into `keys`.
    mutating func rotations(_ entries: [AuditEntry]) {
        var rotations: [JSONValue] = []
        for entry in entries where entry.isVerified && entry.origin == .recorded {
            guard case .success(let details) = entry.strictDetails(), let version = details["keyVersion"]?.integer,
                  let previous = details["previousKeyVersion"]?.integer
            else {
                flags.append("rotation entry \(entry.seq) does not name the key versions it should")
                continue
            }
            rotations.append(.object(["seq": .int(entry.seq), "recordedAt": .int(entry.recordedAt.microsecondsSinceEpoch),
                                      "keyVersion": .int(version), "previousKeyVersion": .int(previous)]))
            lines.append("  rotation at seq \(entry.seq), \(entry.recordedAt): key version \(previous) -> \(version)")
        }
        if rotations.isEmpty { lines.append("  no key rotation recorded in the log") }
        if case .object(var keys)? = members["keys"] {
            keys["rotations"] = .array(rotations)
            members["keys"] = .object(keys)
        }
    }

    mutating func keys(_ ring: KeyRing, firstSeqs: [UInt32: Int64], declarations: [AuditEntry], maxAge: RetentionPeriod?) {
        let day: Int64 = 86_400_000_000
        var versions: [JSONValue] = []
        lines.append("key versions (limit \(maxAge?.description ?? "none")):")
        for version in ring.versions {
            guard let key = ring.key(version: version) else { continue }
            let declared = declarations.filter { $0.isVerified && Self.declares($0, version) }.map(\.seq).min()
            var age: Int64?
            if let created = key.createdAt { age = now.microseconds(since: created) / day }
            let tooOld = key.status != .compromised && maxAge.map { limit in
                key.createdAt.map { now.microseconds(since: $0) > limit.microseconds } ?? false
            } ?? false
            versions.append(.object([
                "version": .int(Int64(version)), "status": .string(key.status.rawValue),
                "createdAt": key.createdAt.map { .int($0.microsecondsSinceEpoch) } ?? .null, "ageDays": age.map { .int($0) } ?? .null,
                "firstSeq": firstSeqs[version].map { .int($0) } ?? .null, "compromiseDeclaredAt": declared.map { .int($0) } ?? .null,
                "tooOld": .bool(tooOld),
            ]))
            lines.append("  \(version): \(key.status.rawValue), \(age.map { "\($0) day(s) old" } ?? "age unknown")"
                + (firstSeqs[version].map { ", first row \($0)" } ?? ", no rows") + (declared.map { ", declared compromised at seq \($0)" } ?? ""))
            if tooOld, let age, let maxAge { flags.append("key version \(version) is \(age) day(s) old (limit \(maxAge)): rotate it (`auditdb keys rotate`)") }
            if key.createdAt == nil, maxAge != nil, key.status != .compromised {
                flags.append("key version \(version) has no creation time in the key file: its age is unknown")
            }
        }
        members["keys"] = .object(["maxAge": maxAge.map { .string($0.description) } ?? .null, "versions": .array(versions)])
    }

    /// Whether `entry` is a declaration that key `version` is compromised.
    private static func declares(_ entry: AuditEntry, _ version: UInt32) -> Bool {
        guard case .success(let object) = entry.strictDetails() else { return false }
        return object["keyVersion"]?.integer == Int64(version)
    }

    mutating func checkpoints(_ checkpoints: [Checkpoint], publicKeys: CheckpointPublicKeys, anchors: [String]) {
        var list: [JSONValue] = []
        for checkpoint in checkpoints {
            let valid = publicKeys.key(version: checkpoint.keyVersion).map {
                $0.bytes == checkpoint.publicKey && $0.isValidSignature(checkpoint.signature, of: checkpoint.statement)
            } ?? false
            let file = DirectoryAnchor.fileName(of: checkpoint)
            let anchoredIn = anchors.filter { FileManager.default.fileExists(atPath: $0 + "/" + file) }
            list.append(.object([
                "seq": .int(checkpoint.seq), "time": .int(checkpoint.time.microsecondsSinceEpoch),
                "keyVersion": .int(Int64(checkpoint.keyVersion)), "merkleRoot": .string(Hex.encode(checkpoint.merkleRoot)),
                "signatureValid": .bool(valid), "anchoredIn": .array(anchoredIn.map { .string($0) }),
            ]))
            if !valid { flags.append("checkpoint \(checkpoint.seq) is not signed by a key this report's signer trusts") }
        }
        members["checkpoints"] = .array(list)
        lines.append("checkpoints: \(checkpoints.count)" + (checkpoints.last.map { ", newest at seq \($0.seq) (\($0.time))" } ?? ""))
        if checkpoints.isEmpty { flags.append("the store has no checkpoint") }
    }

    mutating func retention(expiries: [AuditEntry], holds: [LegalHold], actorMask: ActorMask, maskingUnreadable: Bool = false) {
        var list: [JSONValue] = []
        for entry in expiries where entry.isVerified {
            let record: ExpiryRecord
            do {
                record = try ExpiryRecord(entry)
            } catch {
                // Verification reports such an entry (expiry-tampered); the report flags it too.
                flags.append("the expiry entry at seq \(entry.seq) does not parse: \(error.reason)")
                continue
            }
            list.append(.object([
                "seq": .int(entry.seq), "recordedAt": .int(entry.recordedAt.microsecondsSinceEpoch),
                "policy": .string(Self.describe(record.policy)), "now": .int(record.now.microsecondsSinceEpoch),
                "first": .int(record.first), "last": .int(record.last), "count": .int(record.count),
                "archive": record.archive.map { .string($0.bundle) } ?? .null,
            ]))
        }
        let expired = list.count
        var holdList: [JSONValue] = []
        for hold in holds {
            var resourceType: JSONValue = .null
            if case .resource(let type?, _) = hold.matcher { resourceType = .string(type) }
            var object: [String: JSONValue] = [
                "id": .int(hold.id), "field": .string(hold.matcher.field), "resourceType": resourceType,
                // An actor hold names a person: shown as the placers are.
                "value": hold.matcher.field == "actor" ? actorMask.value(hold.matcher.value) : .string(hold.matcher.value),
                "reason": .string(hold.reason), "placedBy": hold.placedBy.map(actorMask.value) ?? .null,
                "placedAt": .int(hold.placedAt.microsecondsSinceEpoch), "released": .null,
            ]
            if let release = hold.release {
                object["released"] = .object([
                    "seq": .int(release.seq), "at": .int(release.releasedAt.microsecondsSinceEpoch), "reason": .string(release.reason),
                    "by": release.releasedBy.map(actorMask.value) ?? .null,
                ])
            }
            holdList.append(.object(object))
        }
        members["retention"] = .object(["expiries": .array(list), "holds": .array(holdList)])
        if maskingUnreadable {
            flags.append("the store's masking rules cannot be read (its newest masking entry fails verification or does not parse; "
                + "`auditdb verify` names it): every name of a person in this report is withheld")
        }
        lines.append("retention: \(expired) expiry entr\(expired == 1 ? "y" : "ies"), "
            + "\(holds.filter(\.isActive).count) active legal hold(s), \(holds.filter { !$0.isActive }.count) released")
    }

    /// The verified erasure entries (docs/FORMAT.md section 21.3), oldest first: what each
    /// erased and why, never a value.
    mutating func erasures(_ entries: [AuditEntry]) {
        var list: [JSONValue] = []
        var rows = Set<Int64>()
        for entry in entries where entry.isVerified && entry.origin == .recorded {
            let record: ErasureRecord
            do {
                record = try ErasureRecord(entry)
            } catch {
                // Verification reports such an entry (erasure-tampered); the report flags it too.
                flags.append("the erasure entry at seq \(entry.seq) does not parse: \(error.reason)")
                continue
            }
            rows.formUnion(record.seqs)
            list.append(.object([
                "seq": .int(entry.seq), "recordedAt": .int(entry.recordedAt.microsecondsSinceEpoch), "reason": .string(record.reason),
                "subject": .string(record.subject),
                "fields": .array(WithholdableField.allCases.filter(record.fields.contains).map { .string($0.rawValue) }),
                "paths": .array(record.paths.map { .string($0.description) }), "rows": .int(Int64(record.seqs.count)),
            ]))
        }
        members["erasures"] = .object(["entries": .array(list), "rowsErased": .int(Int64(rows.count))])
        lines.append("erasure: \(list.count) erasure entr\(list.count == 1 ? "y" : "ies"), \(rows.count) row(s) with erased fields")
    }

    /// A policy as text: `default 90d, "bank" 400d`.
    static func describe(_ policy: RetentionPolicy) -> String {
        "default \(policy.defaultLimit)"
            + policy.tenantOverrides.map { ", \(OutputEscaping.jsonQuoted($0.tenant)) \($0.limit)" }.joined()
    }
}

extension JSONValue {
    var integerValue: Int64? { if case .int(let v) = self { v } else { nil } }
}
