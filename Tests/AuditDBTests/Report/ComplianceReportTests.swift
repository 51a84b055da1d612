import Foundation
import Synchronization
import Testing

@testable import AuditDB

/// The signed compliance report (#16 item 6, docs/FORMAT.md section 23): what it holds, that an
/// outsider verifies it with the public key alone (the engine and the Python verifier, reason for
/// reason), and that any change to it is caught.
@Suite("Compliance report")
struct ComplianceReportTests {
    let dir: TempDir
    let keys: KeyRing
    let signer: CheckpointSigner
    let path: String

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        signer = try testSigner()
        path = dir.path("s.db")
    }

    /// 30 rows, a checkpoint anchored, a hold, an expiry, a recorded full scan.
    func makeFullStore() async throws -> AuditStore {
        try await makeStore(at: path, keys: keys, count: 30)
        let store = try await AuditStore.open(at: path, keys: keys)
        try FileManager.default.createDirectory(atPath: dir.path("anchors"), withIntermediateDirectories: true)
        _ = try await store.checkpoint(signer: signer, anchors: [DirectoryAnchor(path: dir.path("anchors"))])
        _ = try await store.placeHold(.tenant("tenant-1"), reason: "case 7", placedBy: "legal")
        _ = try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later)
        _ = try await IntegrityScanner(store: store).scan(.full)
        return store
    }

    static func object(_ report: SignedComplianceReport) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(report.json)) as? [String: Any])
    }

    func python(_ directory: String, publicKeyFile: String) throws -> ProcessResult {
        let script = repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify_report.py").path
        return try run("/usr/bin/env", ["python3", script, directory, "--public-key", publicKeyFile])
    }

    @Test("the report holds the store's range, verification, scan, keys, checkpoints, expiries and holds, and verifies")
    func contents() async throws {
        let store = try await makeFullStore()
        let report = try await store.complianceReport(
            signer: signer, options: ComplianceReportOptions(anchorPaths: [dir.path("anchors")], requestedBy: "auditor:kim"))
        // The report is recorded in the log: who asked, and which report (by its hash).
        let access = try #require(try await store.entries(EntryQuery(limit: 10, action: "auditdb.access")).first)
        #expect(report.accessSeq == 34 && access.seq == 34 && access.actor == "auditor:kim")
        #expect(access.detailsJSON == "{\"keyVersion\":1,\"kind\":\"report\",\"reportSha256\":\"\(Hex.encode(ExportStatement.sha256(report.json)))\"}")
        try await store.close()
        #expect(report.storeIntact)
        let json = try Self.object(report)
        #expect(json["format"] as? String == "auditdb-report v2" && json["storeId"] as? String == store.storeID.hex)
        let log = try #require(json["log"] as? [String: Any])
        #expect(log["rowsExpired"] as? Int == 10 && log["lastSeq"] as? Int == 33)  // 30 rows, hold, expiry, scan record
        let verification = try #require(json["verification"] as? [String: Any])
        #expect(verification["intact"] as? Bool == true && verification["findings"] as? Int == 0)
        let scan = try #require(json["lastFullScan"] as? [String: Any])
        #expect(scan["intact"] as? Bool == true && scan["seq"] as? Int == 33)
        let checkpoints = try #require(json["checkpoints"] as? [[String: Any]])
        #expect(checkpoints.count == 1 && checkpoints[0]["seq"] as? Int == 30 && checkpoints[0]["signatureValid"] as? Bool == true)
        #expect(checkpoints[0]["anchoredIn"] as? [String] == [dir.path("anchors")])
        let retention = try #require(json["retention"] as? [String: Any])
        let expiries = try #require(retention["expiries"] as? [[String: Any]])
        #expect(expiries.count == 1 && expiries[0]["count"] as? Int == 10 && expiries[0]["seq"] as? Int == 32)
        let holds = try #require(retention["holds"] as? [[String: Any]])
        #expect(holds.count == 1 && holds[0]["field"] as? String == "tenant" && holds[0]["value"] as? String == "tenant-1")
        #expect(holds[0]["placedBy"] as? String == "legal")  // the store masks no actor
        let erasures = try #require(json["erasures"] as? [String: Any])
        #expect((erasures["entries"] as? [Any])?.isEmpty == true && erasures["rowsErased"] as? Int == 0)
        #expect(json["flags"] as? [String] == [])
        // No row's values: the actors and resource ids of the rows appear nowhere.
        let text = String(decoding: report.json, as: UTF8.self)
        #expect(!text.contains("user-") && !text.contains("doc-") && !report.text.contains("user-"))

        try report.write(to: dir.path("report"))
        #expect(try SignedComplianceReport.verify(at: dir.path("report"), publicKeys: signer.publicKeys)
            == .valid(storeID: store.storeID, createdAt: report.createdAt, keyVersion: 1))
        try signer.publicKeys.write(to: dir.path("ck.pub"))
        let theirs = try python(dir.path("report"), publicKeyFile: dir.path("ck.pub"))
        #expect(theirs.status == 0 && theirs.stdout == "report valid\n", "\(theirs.stderr)")
    }

    @Test("auditdb report --out: a directory that is not empty, holds a report file, is a file or a dangling link, or has no parent is refused before anything is written or recorded; an empty one takes the report")
    func destinationChecked() async throws {
        try await makeStore(at: path, keys: keys, count: 3)
        let keyFile = dir.path("k.keys"), signingKey = dir.path("ck.key")
        try KeyFile.write(keys, to: keyFile, replacing: false)
        try signer.write(to: signingKey, replacing: false)
        func report(_ out: String) throws -> ProcessResult {
            try run(try cliPath(), ["report", "--out", out, "--signing-key", signingKey, "--store", path, "--key-file", keyFile],
                    environment: environmentWithoutAuditDBOptions())
        }
        let full = dir.path("full"), stale = dir.path("stale"), file = dir.path("file"), dangling = dir.path("dangling"), empty = dir.path("empty")
        try FileManager.default.createDirectory(atPath: full, withIntermediateDirectories: false)
        try Data("notes".utf8).write(to: URL(fileURLWithPath: full + "/notes.txt"))
        try FileManager.default.createDirectory(atPath: stale, withIntermediateDirectories: false)
        try Data("old".utf8).write(to: URL(fileURLWithPath: stale + "/report.txt"))
        try Data().write(to: URL(fileURLWithPath: file))
        try FileManager.default.createSymbolicLink(atPath: dangling, withDestinationPath: dir.path("nowhere"))
        for (out, message) in [
            (full, "\(full) is not empty (it holds notes.txt); a report goes to a new directory or an empty one"),
            (stale, "\(stale) is not empty (it holds report.txt); a report goes to a new directory or an empty one"),
            (file, "\(file) exists and is not a directory; a report goes to a new directory or an empty one"),
            (dangling, "\(dangling) exists and is a symbolic link; a report goes to a new directory or an empty one"),
            (dir.path("missing/report"), "\(dir.path("missing/report")) cannot be created: its parent \(dir.path("missing")) is not a writable directory"),
        ] {
            let refused = try report(out)
            #expect(refused.status == 2, "\(out): \(refused.stderr)")
            #expect(refused.stderr == "auditdb: error: \(message)\n")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: stale) == ["report.txt"])
        #expect(!FileManager.default.fileExists(atPath: dir.path("missing")))
        #expect(try sqlite3Shell(path, "SELECT count(*) FROM audit_entries;").stdout == "3\n")  // no access entry
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false)
        let written = try report(empty)
        #expect(written.status == 0, "\(written.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: empty).sorted() == ["report.json", "report.sig", "report.txt"])
        #expect(try sqlite3Shell(path, "SELECT count(*) FROM audit_entries;").stdout == "4\n")
    }

    @Test("key versions older than the limit are flagged; a damaged store gets a report that says so")
    func flags() async throws {
        try await makeStore(at: path, keys: keys, count: 5)
        try sqlite3Tamper(path, "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 3;", around: "audit_entries_no_update")
        let store = try await AuditStore.open(at: path, keys: keys)
        let later = AuditTimestamp(microsecondsSinceEpoch: AuditTimestamp.now().microsecondsSinceEpoch + 100 * 86_400_000_000)
        let report = try await store.complianceReport(signer: signer, options: ComplianceReportOptions(now: later))
        try await store.close()
        #expect(!report.storeIntact)
        let json = try Self.object(report)
        let flags = try #require(json["flags"] as? [String])
        #expect(flags == [
            "verification found 1 finding(s); the first: mac-mismatch at seq 3: the stored values do not match the row's MAC (changed, or copied from another store)",
            "no anchors were checked: only anchored checkpoints prove the log against someone who can write the file",
            "no full scan is recorded in the log",
            "key version 1 is 100 day(s) old (limit 90d): rotate it (`auditdb keys rotate`)",
            "the store has no checkpoint",
        ])
        let versions = try #require((json["keys"] as? [String: Any])?["versions"] as? [[String: Any]])
        #expect(versions.count == 1 && versions[0]["tooOld"] as? Bool == true && versions[0]["ageDays"] as? Int == 100)
    }

    @Test("each key version's first row comes from the log, also when the key-version cache was emptied by another client")
    func firstSeqFromTheLog() async throws {
        let v1 = try AuditKey.generate(version: 1), v2 = try AuditKey.generate(version: 2)
        try await makeStore(at: path, keys: try KeyRing([v1]), count: 4)
        let rotated = try await AuditStore.open(at: path, keys: try KeyRing([v1, v2]))
        try await rotated.append(contentsOf: (5...6).map { sampleEvent($0) })
        func firstSeqs() async throws -> [Int?] {
            let report = try await rotated.complianceReport(signer: signer)
            let versions = try #require((try Self.object(report)["keys"] as? [String: Any])?["versions"] as? [[String: Any]])
            return versions.map { $0["firstSeq"] as? Int }
        }
        let cached = try await firstSeqs()
        #expect(cached.count == 2 && cached[0] == 1 && (cached[1] ?? 0) >= 5)
        try sqlite3Tamper(path, "DELETE FROM audit_key_versions;", around: "audit_key_versions_no_delete")
        #expect(try await firstSeqs() == cached)
        try await rotated.close()
    }

    struct Tamper: Sendable, CustomStringConvertible {
        var name: String
        var file: String
        var edit: @Sendable (String) -> String
        var reason: String
        var description: String { name }
    }

    static let tampering: [Tamper] = [
        Tamper(name: "report.json: a flag changed", file: "report.json",
               edit: { $0.replacingOccurrences(of: "\"the store has no checkpoint\"", with: "\"the store has a checkpoint\"") },
               reason: "report.json is not the report that was signed (its SHA-256 differs from reportSha256)"),
        Tamper(name: "report.sig: another createdAt", file: "report.sig",
               edit: { $0.replacingOccurrences(of: "\"createdAt\":1", with: "\"createdAt\":2") },
               reason: "the signature does not verify"),
        Tamper(name: "report.sig: an unknown member", file: "report.sig",
               edit: { $0.replacingOccurrences(of: "{\"format\"", with: "{\"note\":\"x\",\"format\"") },
               reason: "report.sig: the member \"note\" is not one of a report signature's"),
        Tamper(name: "report.sig: key version 2", file: "report.sig",
               edit: { $0.replacingOccurrences(of: "\"keyVersion\":1", with: "\"keyVersion\":2") },
               reason: "signed with checkpoint key version 2, which the public key file does not hold"),
        Tamper(name: "report.sig: upper-case hex", file: "report.sig",
               edit: { text in
                   // Upper-case the signature's first hex letter: a prefix of fixed length can be all
                   // digits (its first 8 were "98577816" in one run, and the edit did nothing).
                   guard let start = text.range(of: "\"signature\":\"")?.upperBound,
                         let letter = text[start...].firstIndex(where: { "abcdef".contains($0) }) else { return text }
                   return text.replacingCharacters(in: letter...letter, with: text[letter...letter].uppercased())
               },
               reason: "report.sig: storeId, reportSha256, publicKey or signature is not lowercase hex of the right length"),
        Tamper(name: "report.sig: a duplicate key", file: "report.sig",
               edit: { $0.replacingOccurrences(of: "{\"format\":\"auditdb-report-signature v1\"", with: "{\"format\":\"auditdb-report-signature v1\",\"format\":\"auditdb-report-signature v1\"") },
               reason: "report.sig: invalid JSON at byte 40: duplicate key \"format\""),
    ]

    @Test("a changed report is refused for the exact reason, by the engine and by the Python verifier", arguments: tampering)
    func tampered(_ t: Tamper) async throws {
        let out = try await writtenReport(rows: 5)
        let file = out + "/" + t.file
        let original = try String(contentsOfFile: file, encoding: .utf8)
        let changed = t.edit(original)
        #expect(changed != original, "the edit did nothing")
        try FileManager.default.removeItem(atPath: file)
        try Data(changed.utf8).write(to: URL(fileURLWithPath: file))
        #expect(try SignedComplianceReport.verify(at: out, publicKeys: signer.publicKeys) == .invalid(t.reason))
        try signer.publicKeys.write(to: dir.path("ck.pub"))
        let theirs = try python(out, publicKeyFile: dir.path("ck.pub"))
        #expect(theirs.status == 1 && theirs.stdout == "REPORT INVALID: \(t.reason)\n", "\(theirs.stdout) \(theirs.stderr)")
    }

    @Test("a report signed by another checkpoint key of the same version is refused")
    func otherKey() async throws {
        try await makeStore(at: path, keys: keys, count: 3)
        let store = try await AuditStore.open(at: path, keys: keys)
        let report = try await store.complianceReport(signer: try testSigner())
        try await store.close()
        try report.write(to: dir.path("r"))
        let reason = "signed with a key that is not the trusted checkpoint key version 1"
        #expect(try SignedComplianceReport.verify(at: dir.path("r"), publicKeys: signer.publicKeys) == .invalid(reason))
        try signer.publicKeys.write(to: dir.path("ck.pub"))
        #expect(try python(dir.path("r"), publicKeyFile: dir.path("ck.pub")).stdout == "REPORT INVALID: \(reason)\n")
    }

    @Test("a report file missing, a FIFO, a device, a directory or past its bound is refused at once with its reason, by the engine and by the Python verifier; no directory is an error", arguments: [
        ("report.sig", "missing", "report.sig is missing"),
        ("report.sig", "fifo", "report.sig is not a regular file (a FIFO, device or directory is refused)"),
        ("report.json", "device", "report.json is not a regular file (a FIFO, device or directory is refused)"),
        ("report.json", "directory", "report.json is not a regular file (a FIFO, device or directory is refused)"),
        ("report.sig", "large", "report.sig is larger than 65536 bytes"),
    ])
    func unusableFile(_ file: String, _ how: String, _ reason: String) async throws {
        let out = try await writtenReport(rows: 3)
        let target = out + "/" + file
        try FileManager.default.removeItem(atPath: target)
        switch how {
        case "fifo": #expect(mkfifo(target, 0o600) == 0)
        case "device": try FileManager.default.createSymbolicLink(atPath: target, withDestinationPath: "/dev/zero")
        case "directory": try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
        case "large": try Data(repeating: 0x20, count: 65_537).write(to: URL(fileURLWithPath: target))
        default: break
        }
        #expect(try SignedComplianceReport.verify(at: out, publicKeys: signer.publicKeys) == .invalid(reason))
        try signer.publicKeys.write(to: dir.path("ck.pub"))
        let theirs = try python(out, publicKeyFile: dir.path("ck.pub"))
        #expect(theirs.status == 1 && theirs.stdout == "REPORT INVALID: \(reason)\n", "\(theirs.stdout) \(theirs.stderr)")
        #expect(throws: AuditError.self) { try SignedComplianceReport.verify(at: "", publicKeys: signer.publicKeys) }
        #expect(throws: AuditError.self) { try SignedComplianceReport.verify(at: dir.path("none"), publicKeys: signer.publicKeys) }
    }

    /// A store of `rows` sample rows, its signed compliance report written to directory `r`.
    func writtenReport(rows: Int) async throws -> String {
        try await makeStore(at: path, keys: keys, count: rows)
        let store = try await AuditStore.open(at: path, keys: keys)
        let report = try await store.complianceReport(signer: signer)
        try await store.close()
        let out = dir.path("r")
        try report.write(to: out)
        return out
    }
}

/// Erasures in the report, hold placers under the store's actor rule, and reports of format v1.
extension ComplianceReportTests {
    @Test("the report lists each erasure (reason, subject, fields, paths, row count, never a value) and shows who placed or released a hold as query shows a masked actor")
    func erasuresAndMaskedPlacers() async throws {
        try await makeStore(at: path, keys: keys, count: 12)
        let store = try await AuditStore.open(at: path, keys: keys)
        let erasedRows = try await store.entries(EntryQuery(limit: 100, actor: "user-3")).map(\.seq)
        #expect(!erasedRows.isEmpty)
        let first = try await store.erase(.actor("user-3"), fields: [.actor, .source], reason: "ticket-41")
        let second = try await store.erase(.seqs([1, 2]), fields: [], paths: [try MaskPath(parsing: "details.note")], reason: "ticket-42")
        let hold = try await store.placeHold(.tenant("tenant-1"), reason: "case 9", placedBy: "jane.doe@example.com")
        _ = try await store.releaseHold(id: hold.id, reason: "closed", releasedBy: "bob.roe@example.com")
        _ = try await store.placeHold(.resource(type: "invoice", id: "doc-4"), reason: "case 10", placedBy: "legal")
        _ = try await store.placeHold(.actor("carol.poe@example.com"), reason: "case 11", placedBy: "legal")
        let rule = try MaskRule(parsing: "actor=partial")
        _ = try await store.setMasking([rule], by: "dpo")
        let report = try await store.complianceReport(signer: signer)
        try await store.close()
        let json = try Self.object(report)
        #expect(json["format"] as? String == "auditdb-report v2")
        let erasures = try #require(json["erasures"] as? [String: Any])
        let entries = try #require(erasures["entries"] as? [[String: Any]])
        #expect(entries.count == 2)
        #expect(entries.first?["seq"] as? Int == Int(first.erasureEntries.first ?? -1) && entries.first?["reason"] as? String == "ticket-41")
        #expect(entries.first?["subject"] as? String == "actor" && entries.first?["fields"] as? [String] == ["actor", "source"])
        #expect(entries.first?["paths"] as? [String] == [] && entries.first?["rows"] as? Int == erasedRows.count)
        #expect(entries.last?["seq"] as? Int == Int(second.erasureEntries.first ?? -1) && entries.last?["subject"] as? String == "seqs")
        #expect(entries.last?["fields"] as? [String] == [] && entries.last?["paths"] as? [String] == ["details.note"] && entries.last?["rows"] as? Int == 2)
        #expect(erasures["rowsErased"] as? Int == Set(erasedRows + [1, 2]).count)
        #expect(report.text.contains("erasure: 2 erasure entries, \(Set(erasedRows + [1, 2]).count) row(s) with erased fields\n"))
        // Who placed and released the hold: masked as query masks the actor, never in clear.
        let policy = try MaskingPolicy(rules: [rule])
        let placed = try #require(policy.maskedActor("jane.doe@example.com")?.shown), released = try #require(policy.maskedActor("bob.roe@example.com")?.shown)
        #expect(placed != "jane.doe@example.com" && released != "bob.roe@example.com")
        let holds = try #require((json["retention"] as? [String: Any])?["holds"] as? [[String: Any]])
        #expect(holds.count == 3)
        #expect(holds.first?["placedBy"] as? [String: String] == ["masked": "partial", "value": placed])
        #expect(holds.first?["resourceType"] is NSNull && holds.first?["value"] as? String == "tenant-1")
        // A resource hold narrowed to a type says so; an actor hold's value names a person: masked.
        #expect(holds[1]["field"] as? String == "resource" && holds[1]["resourceType"] as? String == "invoice" && holds[1]["value"] as? String == "doc-4")
        let held = try #require(policy.maskedActor("carol.poe@example.com")?.shown)
        #expect(holds[2]["field"] as? String == "actor" && holds[2]["value"] as? [String: String] == ["masked": "partial", "value": held])
        #expect((holds.first?["released"] as? [String: Any])?["by"] as? [String: String] == ["masked": "partial", "value": released])
        let text = String(decoding: report.json, as: UTF8.self)
        #expect(!text.contains("jane.doe") && !text.contains("bob.roe") && !text.contains("carol.poe") && !text.contains("user-3"))
        try report.write(to: dir.path("r"))
        try signer.publicKeys.write(to: dir.path("ck.pub"))
        #expect(try SignedComplianceReport.verify(at: dir.path("r"), publicKeys: signer.publicKeys)
            == .valid(storeID: store.storeID, createdAt: report.createdAt, keyVersion: 1))
        #expect(try python(dir.path("r"), publicKeyFile: dir.path("ck.pub")).stdout == "report valid\n")
    }

    @Test("a masking entry that fails verification does not stop the report: every name is withheld, and a flag says why; a name from the file cannot forge a line of report.txt")
    func unreadableMaskingAndForgedLines() async throws {
        try await makeStore(at: path, keys: keys, count: 5)
        let store = try await AuditStore.open(at: path, keys: keys)
        let masking = try await store.setMasking([try MaskRule(parsing: "actor=partial")], by: "dpo")  // seq 6
        _ = try await store.placeHold(.actor("carol.poe@example.com"), reason: "case 1", placedBy: "legal")
        try await store.close()
        try sqlite3Tamper(path, "UPDATE audit_entries SET recorded_at = recorded_at + 1 WHERE seq = \(masking);", around: "audit_entries_no_update")
        // Another client's index, named to look like a line of the report.
        try sqlite3Must(path, "CREATE INDEX \"i\n  store-identity-mismatch: forged\" ON audit_entries(actor);")
        let reopened = try await AuditStore.open(at: path, keys: keys)
        let report = try await reopened.complianceReport(signer: signer)
        try await reopened.close()
        #expect(!report.storeIntact)
        let json = try Self.object(report)
        let holds = try #require((json["retention"] as? [String: Any])?["holds"] as? [[String: Any]])
        #expect(holds.count == 1 && (holds[0]["value"] as? [String: Any])?["masked"] as? String == "unreadable"
                && (holds[0]["placedBy"] as? [String: Any])?["masked"] as? String == "unreadable" && (holds[0]["placedBy"] as? [String: Any])?["value"] is NSNull, "\(holds)")
        let flags = try #require(json["flags"] as? [String])
        #expect(flags.contains("the store's masking rules cannot be read (its newest masking entry fails verification or does not parse; `auditdb verify` names it): every name of a person in this report is withheld"), "\(flags) \(masking)")
        #expect(!String(decoding: report.json, as: UTF8.self).contains("carol.poe") && !String(decoding: report.json, as: UTF8.self).contains("\"legal\""))
        // report.txt: the index name's newline is escaped, so no line of it starts with the forged text.
        #expect(report.text.contains(#"i\u{A}  store-identity-mismatch: forged"#), "\(report.text)")
        #expect(!report.text.split(separator: "\n").contains { $0.hasPrefix("  store-identity-mismatch") }, "\(report.text)")
    }

    @Test("a report of format v1 still verifies, by the engine and the Python verifier; another format is refused", arguments: [
        ("auditdb-report v1", nil), ("auditdb-report v3", "report.json: its format, storeId or createdAt is not the one the signature names"),
    ] as [(String, String?)])
    func formats(_ format: String, _ reason: String?) async throws {
        try await makeStore(at: path, keys: keys, count: 3)
        let store = try await AuditStore.open(at: path, keys: keys)
        let report = try await store.complianceReport(signer: signer)
        try await store.close()
        let v2 = String(decoding: report.json, as: UTF8.self)
        #expect(v2.contains("\"format\":\"auditdb-report v2\""))
        let other = Array(v2.replacingOccurrences(of: "\"format\":\"auditdb-report v2\"", with: "\"format\":\"\(format)\"").utf8)
        let signed = SignedComplianceReport.sign(other, text: report.text, storeID: store.storeID, createdAt: report.createdAt,
                                                 storeIntact: true, key: signer.signingKey)
        try signed.write(to: dir.path("r"))
        let expected: SignedComplianceReport.Verdict = reason.map { .invalid($0) } ?? .valid(storeID: store.storeID, createdAt: report.createdAt, keyVersion: 1)
        #expect(try SignedComplianceReport.verify(at: dir.path("r"), publicKeys: signer.publicKeys) == expected)
        try signer.publicKeys.write(to: dir.path("ck.pub"))
        let theirs = try python(dir.path("r"), publicKeyFile: dir.path("ck.pub"))
        #expect(theirs.stdout == (reason.map { "REPORT INVALID: \($0)\n" } ?? "report valid\n"), "\(theirs.stderr)")
    }
}

/// A report made while the store is busy describes the log as of its last verified seq.
extension ComplianceReportTests {
    @Test("appends, holds and expiries during the report: rows present and expired add up to the last seq, and nothing listed is above it")
    func busyStore() async throws {
        let store = try await makeFullStore()
        let done = Atomic(false)
        // Appends, legal holds placed and released, and expiries, while the reports are made.
        let writer = Task {
            var i = 1_000
            var open: LegalHold?
            while !done.load(ordering: .relaxed) {
                try await store.append(contentsOf: (i..<i + 5).map { sampleEvent($0, actor: "writer") })
                if let hold = open {
                    _ = try await store.releaseHold(id: hold.id, reason: "closed", releasedBy: "legal")
                    open = nil
                } else {
                    open = try await store.placeHold(.tenant("tenant-2"), reason: "case \(i)", placedBy: "legal")
                }
                if i % 20 == 0 { _ = try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later) }
                i += 5
            }
        }
        var reports: [[String: Any]] = []
        for _ in 0..<5 { reports.append(try Self.object(try await store.complianceReport(signer: signer))) }
        done.store(true, ordering: .relaxed)
        try await writer.value
        try await store.close()
        for json in reports {
            let log = try #require(json["log"] as? [String: Any])
            let last = try #require(log["lastSeq"] as? Int), present = try #require(log["rowsPresent"] as? Int)
            #expect(present + (log["rowsExpired"] as? Int ?? -1) == last, "\(log)")
            let retention = try #require(json["retention"] as? [String: Any])
            let holds = try #require(retention["holds"] as? [[String: Any]])
            #expect(holds.allSatisfy { ($0["id"] as? Int ?? .max) <= last })
            #expect(holds.allSatisfy { (($0["released"] as? [String: Any])?["seq"] as? Int ?? 0) <= last })
            let expiries = try #require(retention["expiries"] as? [[String: Any]])
            #expect(expiries.allSatisfy { ($0["seq"] as? Int ?? .max) <= last })
        }
    }
}

extension ComplianceReportTests {
    @Test("the facts as of a seq: rows expired by a later entry count as present then; a hold placed later is absent, one released later is active")
    func factsAsOfSeq() async throws {
        try await makeStore(at: path, keys: keys, count: 30)
        let store = try await AuditStore.open(at: path, keys: keys)
        let hold = try await store.placeHold(.tenant("tenant-2"), reason: "case 1", placedBy: "legal")  // seq 31
        let retention = try await store.applyRetention(ExpiryTests.policy, now: ExpiryTests.later)  // seq 32
        #expect(retention.expired == 10 && retention.expiryEntries == [32])
        let released = try await store.releaseHold(id: hold.id, reason: "closed", releasedBy: "legal")  // seq 33
        let atThirty = try await store.reportFacts(asOf: 31)
        #expect(atThirty.present == 31 && atThirty.expired == 0)
        let now = try await store.reportFacts(asOf: 33)
        #expect(now.present == 23 && now.expired == 10)
        #expect(hold.asOf(seq: 30) == nil)
        #expect(released.asOf(seq: 32)?.isActive == true && released.asOf(seq: 33)?.isActive == false)
        try await store.close()
    }
}
