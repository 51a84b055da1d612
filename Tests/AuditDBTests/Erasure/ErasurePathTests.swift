import CAuditCore
import Foundation
import GRDB
import Testing

@testable import AuditDB

/// Erasing JSON paths inside `details` (FORMAT.md section 21.7): the members leave the file and
/// cannot be confirmed even with every key; the rest of details stays readable and is
/// authenticated by the erasure entry; tampering gives the exact finding.
@Suite("Erasure of paths inside details")
struct ErasurePathTests {
    let dir: TempDir
    let keys: KeyRing
    let path: String
    static let mail = "wonder.land@mail.test"
    static let address = "198.51.100.23"
    static let details = #"{"email":"wonder.land@mail.test", "ip": "198.51.100.23","plan":"gold","n":1.50}"#
    static let residual = #"{"plan":"gold","n":1.50}"#
    static let paths = [try! MaskPath(parsing: "details.email"), try! MaskPath(parsing: "details.ip")]

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
        path = dir.path("store.db")
    }

    /// 20 rows; rows 3, 8, 13 and 18 are bob's, with his e-mail and address in the details.
    func makeStore() async throws -> AuditStore {
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...20).map { i in
            i % 5 == 3
                ? AuditEvent(actor: "user:42", action: "login", tenant: "acme", details: AuditDetails(json: Self.details))
                : sampleEvent(i)
        })
        return store
    }

    func findings(_ report: IntegrityReport) -> [String] {
        findingNames(report)
    }

    func fileBytes() throws -> Data {
        try storeFileBytes(path)
    }

    @Test("erase details.email and details.ip: the rest reads as stored, every proof verifies, the values leave the file")
    func erasePaths() async throws {
        let signer = try testSigner()
        let store = try await makeStore()
        let before = try await store.checkpoint(signer: signer)
        _ = try await store.export(to: dir.path("before"), signer: signer)
        let report = try await store.erase(.actor("user:42"), fields: [], paths: Self.paths.reversed(), reason: "T-1")
        #expect(report.erased == [3, 8, 13, 18] && report.paths == Self.paths && report.erasureEntries == [22])

        let intact = try await store.verify()
        #expect(intact.isIntact, "\(intact)")
        #expect(try await IntegrityScanner.scan(storeAt: path, keys: keys, mode: .full).isIntact)
        let old = try await ExportBundle.verify(at: dir.path("before"), publicKeys: signer.publicKeys, requireStatement: true)
        #expect(old.isValid && old.entriesVerified == 20, "\(old)")
        var frontier = MerkleTree.Frontier()
        for leaf in try await leaves(store, upTo: before.seq) { frontier.append(leaf: leaf) }
        #expect(frontier.root == before.merkleRoot)

        // Reads: the residual, exactly as stored otherwise, and the paths named as erased.
        let bob = try await store.entries(EntryQuery(actor: "user:42"))
        #expect(bob.map(\.seq) == [3, 8, 13, 18])
        #expect(bob.allSatisfy { $0.detailsJSON == Self.residual && $0.erasedDetailPaths == Self.paths && !$0.isErased(.details) })
        // The erasure entry names the seqs, the paths and a residual hash per row; never a value.
        let entry = try #require(try await store.entries(EntryQuery(action: "auditdb.erasure")).first)
        let record = try ErasureRecord(entry)
        #expect(record.seqs == [3, 8, 13, 18] && record.paths == Self.paths && record.fields.isEmpty)
        let text = ErasedDetails(paths: Self.paths, residual: Self.residual).text
        #expect(text == #"{"erased":["details.email","details.ip"],"residual":{"plan":"gold","n":1.50}}"#)
        #expect(record.residuals == [3, 8, 13, 18].map { ErasedDetails.hash(seq: $0, text: text) })
        #expect(entry.detailsJSON?.contains("wonder") == false)

        // Erasing the same paths again finds nothing; erasing details whole afterwards supersedes.
        #expect(try await store.erase(.actor("user:42"), fields: [], paths: Self.paths, reason: "T-1").erased.isEmpty)
        try await store.close()
        for needle in [Self.mail, Self.address, "wonder"] {
            #expect(try fileBytes().range(of: Data(needle.utf8)) == nil, "\(needle) is still in the store's files")
        }
        let reopened = try await AuditStore.open(at: path, keys: keys)
        let whole = try await reopened.erase(.seqs([8]), fields: [.details], reason: "T-2")
        #expect(whole.erased == [8])
        var one = EntryQuery()
        one.seqs = 8...8
        let row8 = try #require(try await reopened.entries(one).first)
        #expect(row8.isErased(.details) && row8.detailsJSON == nil && row8.erasedDetailPaths.isEmpty)
        #expect(try await reopened.verify().isIntact)
        try await reopened.close()
    }

    @Test("whole fields and paths in one run: a row without the paths gets a null residual, every row and proof still verifies")
    func fieldsAndPathsTogether() async throws {
        let store = try await makeStore()
        // Row 2 is a sample event without an e-mail or address in its details; rows 3 and 8 have both.
        let report = try await store.erase(.seqs([2, 3, 8]), fields: [.actor], paths: Self.paths, reason: "T-5")
        #expect(report.erased == [2, 3, 8])
        let record = try ErasureRecord(try #require(try await store.entries(EntryQuery(action: "auditdb.erasure")).first))
        #expect(record.seqs == [2, 3, 8] && record.fields == [.actor] && record.paths == Self.paths)
        let text = ErasedDetails(paths: Self.paths, residual: Self.residual).text
        #expect(record.residuals == [nil, ErasedDetails.hash(seq: 3, text: text), ErasedDetails.hash(seq: 8, text: text)])
        var rows = EntryQuery()
        rows.seqs = 2...8
        let read = Dictionary(uniqueKeysWithValues: try await store.entries(rows).map { ($0.seq, $0) })
        // Row 2: actor erased, its details untouched (it held none of the paths).
        #expect(read[2]?.isErased(.actor) == true && read[2]?.erasedDetailPaths.isEmpty == true)
        let sample2 = try sampleEvent(2).details?.jsonText()
        #expect(read[2]?.detailsJSON == sample2)
        #expect(read[3]?.isErased(.actor) == true && read[3]?.detailsJSON == Self.residual && read[3]?.erasedDetailPaths == Self.paths)
        let verified = try await store.verify()
        #expect(verified.isIntact, "\(verified)")
        try await store.close()
        try KeyFile.write(keys, to: dir.path("k.keys"), replacing: false)
        #expect(try pythonFindings(path, keyFile: dir.path("k.keys")) == [])
    }

    @Test("a path inside another is refused even when a path that sorts between them hides it from a neighbours-only check")
    func pathInsideAnotherNotNeighbours() throws {
        // "details.a-x" sorts between "details.a" and "details.a.b" ("-" is 2d, "." is 2e).
        let paths = try ["details.a", "details.a-x", "details.a.b"].map { try MaskPath(parsing: $0) }
        #expect(paths == paths.sorted())
        #expect(throws: AuditError.self) { _ = try AuditStore.checkPaths(paths, fields: []) }
        #expect(throws: ErasedDetails.Unreadable.self) {
            _ = try ErasedDetails(reading: #"{"erased":["details.a","details.a-x","details.a.b"],"residual":{}}"#)
        }
        #expect(try ErasedDetails(reading: #"{"erased":["details.a","details.a-x"],"residual":{}}"#).paths.count == 2)
    }

    @Test("an attacker with the file, every key and 100,000 candidate e-mail addresses cannot single out the erased one")
    func candidatesDoNotConfirm() async throws {
        let store = try await makeStore()
        _ = try await store.erase(.seqs([3]), fields: [], paths: [Self.paths[0]], reason: "T-3")
        try await store.close()
        let seals = try #require(Hex.decode(try sqlite3Shell(path, "SELECT hex(seals) FROM audit_entries WHERE seq = 3;").stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(seals.count == 97 && seals[0] == 0x0C)
        let commitment = Array(seals[65..<97])  // the details slot: its commitment
        let key = try #require(keys.key(version: 1))
        var keyed = [UInt8](repeating: 0, count: 32)
        adb_field_nonce(key.keyset, store.storeID.bytes, 3, 3, &keyed)
        // The attacker rebuilds the original text around each candidate (the residual shows its shape).
        func original(_ mail: String) -> [UInt8] { Array(Self.details.replacingOccurrences(of: Self.mail, with: mail).utf8) }
        func commit(_ text: [UInt8], _ nonce: [UInt8]) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: 32), text = text
            text.withUnsafeMutableBufferPointer { adb_commitment(nonce, 3, adb_bytes(ptr: $0.baseAddress, len: Int64($0.count)), &out) }
            return out
        }
        let control = commit(original(Self.mail), keyed)  // what a format-1 row would hold
        var hits = 0, controlHits = 0
        for candidate in (0..<100_000).map({ "user\($0)@mail.test" }) + [Self.mail] {
            let guess = commit(original(candidate), keyed)
            if guess == commitment { hits += 1 }
            if guess == control { controlHits += 1 }
        }
        #expect(hits == 0 && controlHits == 1)
    }

    @Test("tampering with a path-erased row gives the exact finding", arguments: PathTamper.allCases)
    func tamper(_ tamper: PathTamper) async throws {
        let store = try await makeStore()
        let backup = dir.path("backup.db")
        try sqlite3Must(path, "VACUUM INTO '\(backup)';")
        _ = try await store.erase(.seqs([3, 8]), fields: [], paths: Self.paths, reason: "T-4")
        // Row 13, erased by someone with only the file: seals from the C core, a residual of their choosing.
        let forged = try await forgedErasedSeals(store, seq: 13, mask: 0x0C)
        try await store.close()
        let envelope = #"{"erased":["details.email"],"residual":{"plan":"platinum"}}"#
        switch tamper {
        case .residualChanged:
            try sqlite3Tamper(path, "UPDATE audit_entries SET details = replace(details, 'gold', 'lead') WHERE seq = 8;", around: "audit_entries_no_update")
        case .pathBack:
            try sqlite3Tamper(path, "UPDATE audit_entries SET details = replace(details, '\"residual\":{', '\"residual\":{\"email\":\"x@y.z\",') WHERE seq = 8;",
                              around: "audit_entries_no_update")
        case .erasedWithoutEntry:
            try sqlite3Tamper(path, "UPDATE audit_entries SET seals = X'\(Hex.encode(forged))', details = '\(envelope)' WHERE seq = 13;",
                              around: "audit_entries_no_update")
        case .residualRemoved:
            try sqlite3Tamper(path, "UPDATE audit_entries SET seals = CAST(X'04' || substr(seals, 2) AS BLOB), details = NULL WHERE seq = 8;",
                              around: "audit_entries_no_update")
        case .restoredFromBackup:
            try sqlite3Tamper(path, "ATTACH '\(backup)' AS old; UPDATE audit_entries SET details = (SELECT details FROM old.audit_entries WHERE seq = 8), seals = (SELECT seals FROM old.audit_entries WHERE seq = 8) WHERE seq = 8;",
                              around: "audit_entries_no_update")
        case .notAnEnvelope:
            try sqlite3Tamper(path, "UPDATE audit_entries SET details = '{\"plan\":\"gold\"}' WHERE seq = 8;", around: "audit_entries_no_update")
        }
        let report = try await AuditStore.verify(storeAt: path, keys: keys)
        #expect(findings(report) == [tamper.expected.kind], "\(report)")
        #expect(report.findings.first?.message.contains(tamper.expected.message) == true, "\(report.findings.first?.message ?? "")")
        // The independent verifier agrees (kind and seqs).
        try KeyFile.write(keys, to: dir.path("k.keys"), replacing: false)
        #expect(try pythonFindings(path, keyFile: dir.path("k.keys")) == [tamper.expected.kind])

        // A query reading the row flags it with the same finding and, by default, refuses it; so
        // does erasing more of it (a new erasure entry must not sign a changed residual). A row
        // restored whole from a backup has no erased field left: the query finds it through the
        // erasure entry that names it.
        let seq: Int64 = tamper == .erasedWithoutEntry ? 13 : 8
        let reopened = try await AuditStore.open(at: path, keys: keys)
        let marked = try await reopened.entries(EntryQuery(seqs: seq...seq, unverifiedRows: .mark))
        let erasingMore = await #expect(throws: AuditError.self) {
            _ = try await reopened.erase(.seqs([seq]), fields: [], paths: [try MaskPath(parsing: "details.plan")], reason: "T-5")
        }
        #expect(erasingMore?.code == .integrityViolation && erasingMore?.message.contains(tamper.expected.message) == true,
                "\(erasingMore?.message ?? "")")
        #expect(marked.map { "\($0.finding.map { "\($0.kind)" } ?? "verified") \($0.seq)...\($0.seq)" } == [tamper.expected.kind])
        #expect(marked.first?.finding?.message.contains(tamper.expected.message) == true, "\(marked.first?.finding?.message ?? "")")
        let refused = await #expect(throws: AuditError.self) { _ = try await reopened.entries(EntryQuery(seqs: seq...seq)) }
        #expect(refused?.code == .integrityViolation && refused?.message.contains("entry \(seq) failed verification") == true)
        if tamper == .restoredFromBackup {
            // The way out: erase the same paths again. The values leave the row and every rule holds.
            let again = try await reopened.erase(.seqs([seq]), fields: [], paths: Self.paths, reason: "T-6")
            #expect(again.erased == [seq])
            let after = try await reopened.verify()
            #expect(after.isIntact, "\(after)")
            #expect(try await reopened.entries(EntryQuery(seqs: seq...seq)).first?.detailsJSON == Self.residual)
        }
        try await reopened.close()
    }
}

/// The findings of docs/verifier/auditdb_verify.py on a store, as "kind first...last".
func pythonFindings(_ path: String, keyFile: String) throws -> [String] {
    let verifier = repositoryRoot.appendingPathComponent("docs/verifier/auditdb_verify.py").path
    let result = try run("/usr/bin/env", ["python3", verifier, "--store", path, "--key-file", keyFile, "--json"])
    let json = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
    guard let findings = json?["findings"] as? [[String: Any]] else { throw TestFailure("python: \(result.stdout)\(result.stderr)") }
    return findings.map { f in
        let first = (f["first_seq"] as? NSNumber).map { String($0.int64Value) } ?? "-"
        let last = (f["last_seq"] as? NSNumber).map { String($0.int64Value) } ?? "-"
        return "\(f["kind"] as? String ?? "?") \(first)...\(last)"
    }
}

enum PathTamper: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case residualChanged, pathBack, erasedWithoutEntry, residualRemoved, restoredFromBackup, notAnEnvelope
    var testDescription: String { rawValue }

    var expected: (kind: String, message: String) {
        switch self {
        case .residualChanged: ("erasure-tampered 8...8", "the rest of row 8's details is not what erasure entry 21 recorded")
        case .pathBack: ("erasure-tampered 8...8", "erasure entry 21 erased details.email of row 8, but its details hold it again")
        case .erasedWithoutEntry: ("erasure-tampered 13...13", "row 13 has paths inside details erased, but no erasure entry")
        case .residualRemoved: ("erasure-tampered 8...8", "row 8 has details erased whole, but erasure entry 21 erased only details.email, details.ip")
        case .restoredFromBackup: ("erasure-tampered 8...8", "erasure entry 21 erased details.email, details.ip of row 8, but the row holds it again")
        case .notAnEnvelope: ("erasure-tampered 8...8", "the rest of row 8's details is not what erasure entry 21 recorded")
        }
    }
}
