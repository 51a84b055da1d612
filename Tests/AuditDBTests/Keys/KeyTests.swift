import CAuditCore
import CSodium
import Foundation
import GRDB
import Testing

@testable import AuditDB

@Suite("Keys, rotation and compromise")
struct KeyTests {
    let dir: TempDir

    init() throws { dir = try TempDir() }

    @Test("a generated key file is mode 0600, loads back, and never prints its bytes")
    func keyFileRoundTrip() throws {
        let path = dir.path("k.keys")
        let ring = try KeyFile.generate(at: path)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let loaded = try KeyFile(path: path).load()
        #expect(loaded.versions == [1])
        let original = ring.signingKey.withSecretBytes { Array($0) }
        let reloaded = loaded.signingKey.withSecretBytes { Array($0) }
        #expect(original == reloaded)
        let hex = original.map { String(format: "%02x", $0) }.joined()
        for text in ["\(loaded)", "\(loaded.signingKey)", String(reflecting: loaded.signingKey)] {
            #expect(!text.contains(hex))
            #expect(!text.contains(hex.prefix(16)))
        }
        #expect(throws: AuditError.self) { try KeyFile.generate(at: path) }  // never overwrites
    }

    @Test("keys rotated by another process after this one loaded them: its scanner's pass fails unrecorded and its reads refuse with key-unavailable, never findings of damage; verify with the new ring is intact")
    func staleRingAfterRotation() async throws {
        let path = dir.path("s.db")
        let old = try testKeyRing()
        let stale = try await AuditStore.create(at: path, keys: old)
        try await stale.append(contentsOf: (1...3).map { sampleEvent($0) })
        let scanner = IntegrityScanner(store: stale, configuration: .init())
        let first = try await scanner.scan(.full)
        #expect(first.isIntact && first.recordSeq == 4)
        // Another process rotates: version 2 signs its rotation entry, an append and an erasure entry.
        let rotated = try old.rotated()
        let current = try await AuditStore.open(at: path, keys: rotated)
        try await current.append(sampleEvent(9))
        _ = try await current.erase(.seqs([1]), fields: [.actor], reason: "TICKET-1")
        try await current.close()
        let message = "rows of \(path) are signed with key version(s) 2, which this process's key ring lacks (it has 1): the keys were rotated after it loaded them. Restart it with the current key file (if no key file has that version, run `auditdb verify`)"
        for mode in [ScanMode.incremental, .full] {
            await #expect {
                _ = try await scanner.scan(mode)
            } throws: { error in
                (error as? AuditError)?.code == .keyUnavailable && (error as? AuditError)?.message.hasSuffix(message) == true
            }
        }
        guard case .failed(let failure) = scanner.status.lastResult else {
            Issue.record("the last pass is \(scanner.status.lastResult), not failed")
            return
        }
        #expect(failure.hasSuffix(message), "\(failure)")
        await #expect {
            _ = try await stale.entries(EntryQuery(limit: 100))
        } throws: { error in
            (error as? AuditError)?.code == .keyUnavailable && (error as? AuditError)?.message.hasPrefix("rows of the store are signed with key version(s) 2") == true
        }
        try await stale.close()
        // Nothing was recorded by the failed passes: the log ends with the erasure entry.
        let fresh = try await AuditStore.open(at: path, keys: rotated)
        let entries = try await fresh.entries(EntryQuery(limit: 100))
        #expect(entries.last?.action == "auditdb.erasure" && entries.filter { $0.action == "auditdb.scan" }.count == 1)
        #expect(try await fresh.verify().isIntact)
        try await fresh.close()
    }

    @Test("a forged row claiming a new key version, with a cache row naming it, does not stop a scanner from recording damage to the rows before it")
    func forgedRotationDoesNotHideEarlierDamage() async throws {
        let path = dir.path("s.db")
        let keys = try testKeyRing()
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(contentsOf: (1...3).map { sampleEvent($0) })
        let scanner = IntegrityScanner(store: store, configuration: .init())
        #expect(try await scanner.scan(.full).recordSeq == 4)
        // Without any key: row 2 changed, then a copy of row 3 at seq 5 claiming version 2, and
        // the cache row that makes version 2 look rotated in.
        try sqlite3Must(path, """
            PRAGMA busy_timeout = 30000; DROP TRIGGER audit_entries_no_update;
            UPDATE audit_entries SET actor = 'evil' WHERE seq = 2;
            \(TamperTests.copyRow(3, toSeq: 5)) UPDATE audit_entries SET key_version = 2 WHERE seq = 5;
            INSERT INTO audit_key_versions VALUES (2, 5);
            """)
        let report = try await scanner.scan(.full)
        #expect(report.integrity.findings.contains { $0.kind == .macMismatch && $0.firstSeq == 2 }, "\(report.integrity.findings)")
        #expect(report.integrity.findings.contains { $0.kind == .unknownKeyVersion && $0.firstSeq == 5 }, "\(report.integrity.findings)")
        #expect(report.recordSeq != nil)
        try await store.close()
    }

    @Test("a key file readable by group or others is refused with the fix in the message", arguments: [0o640, 0o604, 0o660])
    func loosePermissions(mode: Int) throws {
        let path = dir.path("k.keys")
        try KeyFile.generate(at: path)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        do {
            _ = try KeyFile(path: path).load()
            Issue.record("loaded a key file with mode \(String(mode, radix: 8))")
        } catch {
            #expect(error.code == .keyFileInsecure)
            #expect(error.message.contains("chmod 600"))
        }
    }

    @Test("malformed key files get a line-numbered error that shows no key material")
    func malformedKeyFiles() throws {
        let secretish = String(repeating: "ab", count: 31) + "zz"  // 64 chars, not hex
        let cases: [(String, String)] = [
            ("key 1 active - \(String(repeating: "a", count: 64))\n", "header"),
            ("auditdb-keys v1\nkey 1 active - abcd\n", "line 2: the key must be 64 hex digits"),
            ("auditdb-keys v1\nkey 1 active - \(secretish)\n", "line 2: the key is not valid hex"),
            ("auditdb-keys v1\nkey 0 active - \(String(repeating: "a", count: 64))\n", "line 2: the version"),
            ("auditdb-keys v1\nkey 1 retired - \(String(repeating: "a", count: 64))\n", "line 2: status"),
            ("auditdb-keys v1\n", "the key ring is empty"),
        ]
        for (index, (text, expected)) in cases.enumerated() {
            let path = dir.path("bad\(index).keys")
            #expect(writeTestFile(path, Data(text.utf8)))
            do {
                _ = try KeyFile(path: path).load()
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.message.contains(expected), "got: \(error.message)")
                #expect(!error.message.contains(secretish))
            }
        }
        // Not UTF-8, even in a comment (FORMAT.md section 12), as the public key file.
        let latin1 = dir.path("latin1.keys")
        #expect(writeTestFile(latin1, Data(Array("# caf".utf8) + [0xE9] + Array("\nauditdb-keys v1\nkey 1 active - \(String(repeating: "a", count: 64))\n".utf8))))
        do {
            _ = try KeyFile(path: latin1).load()
            Issue.record("accepted a key file that is not UTF-8")
        } catch {
            #expect(error.code == .invalidKeyFile)
            #expect(error.message.hasSuffix(" is not UTF-8 text (byte 5)"), "got: \(error.message)")
        }
    }

    @Test("keys from the AUDITDB_KEYS-style variable, with a compromised version")
    func environmentKeys() throws {
        let a = String(repeating: "0f", count: 32), b = String(repeating: "f0", count: 32)
        let (ring, gone) = try withEnvironmentLock {
            setenv("AUDITDB_TEST_KEYS", "1:\(a):compromised,2:\(b)", 1)
            defer { unsetenv("AUDITDB_TEST_KEYS") }
            return (try EnvironmentKeyProvider(variable: "AUDITDB_TEST_KEYS").load(), getenv("AUDITDB_TEST_KEYS") == nil)
        }
        // Read once, then gone from the environment (and wiped in place).
        #expect(gone)
        #expect(ring.versions == [1, 2])
        #expect(ring.signingKey.version == 2)
        #expect(ring.compromisedVersions == [1])
    }

    @Test("malformed AUDITDB_KEYS entries are typed errors, never a crash", arguments: [
        "garbage", "1", "1:\(String(repeating: "ab", count: 32)):active:junk", "1::", ":",
    ])
    func malformedEnvironmentKeys(value: String) {
        let outcome = withEnvironmentLock {
            setenv("AUDITDB_TEST_BAD_KEYS", value, 1)
            defer { unsetenv("AUDITDB_TEST_BAD_KEYS") }
            return Result { try EnvironmentKeyProvider(variable: "AUDITDB_TEST_BAD_KEYS").load() }
        }
        #expect {
            try outcome.get()
        } throws: { error in
            (error as? AuditError)?.code == .invalidKeyFile && !(error as! AuditError).message.contains("abab")
        }
    }

    @Test("rotation: a new version signs new rows, old rows still verify, none rewritten")
    func rotation() async throws {
        let path = dir.path("s.db")
        let v1 = try testKeyRing()
        try await makeStore(at: path, keys: v1, count: 5)
        let macsBefore = try await macs(path)
        let v2 = try v1.rotated()
        #expect(v2.signingKey.version == 2)
        let store = try await AuditStore.open(at: path, keys: v2)
        try await store.append(sampleEvent(6))
        let entries = try await store.entries()
        // Row 6 is the rotation entry version 2 writes as its first row (FORMAT.md 10.1), row 7 the event.
        #expect(entries.map(\.keyVersion) == [1, 1, 1, 1, 1, 2, 2])
        #expect(entries.map(\.action).suffix(2) == ["auditdb.key.rotated", sampleEvent(6).action])
        #expect(try await store.verify().isIntact)
        try await store.close()
        #expect(Array(try await macs(path).prefix(5)) == macsBefore)
    }

    @Test("re-attestation re-checks inside its transaction: a row slipped in after the full pass is refused, nothing written")
    func reattestRechecksInsideTransaction() async throws {
        let path = dir.path("s.db")
        let stolen = try AuditKey.generate(version: 1)
        try await makeStore(at: path, keys: try KeyRing([stolen]), count: 5)
        let store = try await AuditStore.open(at: path, keys: try KeyRing([stolen, try AuditKey.generate(version: 2)]))
        // Between the full pass and the write lock, another client appends a row with a junk MAC.
        await #expect {
            _ = try await store.reattest(compromisedVersion: 1, afterCheck: {
                try sqlite3Must(path, """
                    INSERT INTO audit_entries(seq, recorded_at, actor, action, outcome, severity, origin, format_version, key_version, mac, seals)
                    SELECT 6, recorded_at, 'thief', 'payment.approve', 0, 0, 0, format_version, 1, randomblob(32), seals
                    FROM audit_entries WHERE seq = 5;
                    """)
            })
        } throws: { error in
            let error = error as? AuditError
            return error?.code == .integrityViolation
                && error?.message.hasPrefix("rows appended since the store was verified do not verify (mac-mismatch at seq 6: ") == true
                && error?.message.contains("Nothing was written") == true
        }
        #expect(try await store.lastSeq() == 6)  // no declaration entry after the junk row
        try await store.close()
        #expect(try await attestationCount(path) == 0)
    }

    @Test("compromise: re-attested rows pass; a row forged later with the stolen key is reported")
    func compromise() async throws {
        let path = dir.path("s.db")
        let stolen = try AuditKey.generate(version: 1)
        try await makeStore(at: path, keys: try KeyRing([stolen]), count: 10)
        let ring = try KeyRing([stolen, try AuditKey.generate(version: 2)])

        let store = try await AuditStore.open(at: path, keys: ring)
        let receipt = try await store.reattest(compromisedVersion: 1)
        #expect(receipt.rowsAttested == 10)
        #expect(receipt.headerAttested)  // key 1 also signed the store header
        #expect(receipt.declarationSeq == 12)  // seq 11: version 2's rotation entry (FORMAT.md 10.1)
        let again = try await store.reattest(compromisedVersion: 1)  // idempotent: no second declaration
        #expect(again.rowsAttested == 0)
        #expect(again.alreadyDeclared)
        #expect(again.declarationSeq == 12)
        #expect(!receipt.alreadyDeclared)
        #expect(try await store.entries(EntryQuery(action: "auditdb.key.compromised")).map(\.seq) == [12])
        let storeID = store.storeID
        try await store.close()

        let declared = try ring.markingCompromised(1)
        #expect(try await AuditStore.verify(storeAt: path, keys: declared).isIntact)

        // The thief appends a row with the stolen key; the triggers allow it (it takes the next
        // seq), and its MAC and link are valid under version 1.
        try await forgeAppend(path: path, storeID: storeID, key: stolen, actor: "thief")
        let report = try await AuditStore.verify(storeAt: path, keys: declared)
        #expect(report.findings.map(\.kind) == [.compromisedKey])
        #expect(report.findings.first?.firstSeq == 13)

        // Queries judge each row the same way (attestations looked up per row): the re-attested
        // rows come back verified, the forged one never does.
        let reader = try await AuditStore.open(at: path, keys: declared)
        var query = EntryQuery(limit: 100)
        query.unverifiedRows = .mark
        let entries = try await reader.entries(query)
        #expect(entries.filter { !$0.isVerified }.map(\.seq) == [13])
        #expect(entries.last?.finding?.kind == .compromisedKey)
        #expect(entries.count == 13)
        await #expect { _ = try await reader.entries(EntryQuery(seqs: 13...13)) } throws: {
            ($0 as? AuditError)?.code == .integrityViolation
        }
        #expect(try await reader.entries(EntryQuery(seqs: 1...12)).count == 12)
        try await reader.close()

        // Without the declaration in the key ring, the forged row would pass: the marking matters.
        #expect(try await AuditStore.verify(storeAt: path, keys: ring).isIntact)
    }

    @Test("a key marked compromised without re-attestation: the header and every row under it are reported")
    func compromisedWithoutReattestation() async throws {
        let path = dir.path("s.db")
        let ring = try testKeyRing(versions: [1, 2])
        let v1Only = try KeyRing([ring.key(version: 1)!])
        try await makeStore(at: path, keys: v1Only, count: 3)
        let report = try await AuditStore.verify(storeAt: path, keys: try ring.markingCompromised(1))
        #expect(report.findings.map(\.kind) == [.compromisedKey, .compromisedKey, .compromisedKey, .compromisedKey])
        #expect(report.findings.map(\.firstSeq) == [nil, 1, 2, 3])
        #expect(report.findings.first?.message.contains("store header") == true)
    }

    @Test("an attestation whose declaration is not a compromise declaration does not count")
    func attestationNeedsItsDeclaration() async throws {
        let path = dir.path("s.db")
        let v1 = try AuditKey.generate(version: 1), v2 = try AuditKey.generate(version: 2)
        let ring = try KeyRing([v1, v2])
        try await makeStore(at: path, keys: try KeyRing([v1]), count: 3)
        let store = try await AuditStore.open(at: path, keys: ring)
        _ = try await store.reattest(compromisedVersion: 1)  // attests 1...3 and the header; key 2's rotation entry at seq 4, declared at seq 5
        try await store.append(sampleEvent(5))               // seq 6: an ordinary entry under key 2
        let storeID = store.storeID
        try await store.close()
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            // Key 2 re-attests seq 2 again, but names the ordinary seq 6 as its declaration.
            // (Its MAC is valid: this models a tool misusing the key, not an outsider.)
            let mac = try Data.fetchOne(db, sql: "SELECT mac FROM audit_entries WHERE seq = 2")!
            var attestation = [UInt8](repeating: 0, count: 32)
            adb_attestation_mac(v2.keyset, storeID.bytes, 2, 1, Array(mac), 6, &attestation)
            try db.execute(sql: "DROP TRIGGER audit_attestations_no_delete")
            try db.execute(sql: "DELETE FROM audit_attestations WHERE seq = 2")
            try db.execute(sql: "INSERT INTO audit_attestations VALUES (2, 2, 6, ?)", arguments: [Data(attestation)])
        }
        try queue.close()
        let report = try await AuditStore.verify(storeAt: path, keys: try ring.markingCompromised(1))
        #expect(report.findings.filter { $0.seqs != nil }.map(\.kind) == [.compromisedKey])
        #expect(report.findings.filter { $0.seqs != nil }.map(\.firstSeq) == [2])
    }

    @Test("compromise: an old row rewritten with the stolen key fails its attestation")
    func compromiseRewrite() async throws {
        let path = dir.path("s.db")
        let stolen = try AuditKey.generate(version: 1)
        try await makeStore(at: path, keys: try KeyRing([stolen]), count: 3)
        let ring = try KeyRing([stolen, try AuditKey.generate(version: 2)])
        let store = try await AuditStore.open(at: path, keys: ring)
        _ = try await store.reattest(compromisedVersion: 1)
        let storeID = store.storeID
        try await store.close()
        // Rewrite seq 3 (the last v1 row) consistently under the stolen key: valid MAC, valid link.
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            try db.execute(sql: "DROP TRIGGER audit_entries_no_update")
            let prev = try Data.fetchOne(db, sql: "SELECT mac FROM audit_entries WHERE seq = 2")!
            let row = try Row.fetchOne(db, sql: "SELECT recorded_at FROM audit_entries WHERE seq = 3")!
            let mac = try Self.seal(sampleEvent(3, actor: "rewritten"), seq: 3, recordedAt: row["recorded_at"], key: stolen,
                               storeID: storeID, prev: Array(prev))
            // As a format-1 row (Self.seal), which the thief may write as well as a format-2 one.
            try db.execute(sql: "UPDATE audit_entries SET actor = 'rewritten', mac = ?, format_version = 1, seals = NULL WHERE seq = 3",
                           arguments: [Data(mac)])
        }
        try queue.close()
        let report = try await AuditStore.verify(storeAt: path, keys: try ring.markingCompromised(1))
        let rows = report.findings.filter { $0.seqs != nil }
        #expect(rows.first?.kind == .compromisedKey)
        #expect(rows.first?.firstSeq == 3)
        #expect(report.findings(.schemaTampered).count == 1)
    }

    @Test("compromise refuses a store that does not verify, and the signing key itself")
    func compromiseRefusals() async throws {
        let path = dir.path("s.db")
        let ring = try testKeyRing(versions: [1, 2])
        try await makeStore(at: path, keys: ring, count: 3)
        let store = try await AuditStore.open(at: path, keys: ring)
        await #expect { _ = try await store.reattest(compromisedVersion: 2) } throws: {
            ($0 as? AuditError)?.code == .invalidInput
        }
        try await store.close()
        try sqlite3Must(path, "DROP TRIGGER audit_entries_no_update; UPDATE audit_entries SET action = 'x' WHERE seq = 2;")
        let damaged = try await AuditStore.open(at: path, keys: ring)
        await #expect { _ = try await damaged.reattest(compromisedVersion: 1) } throws: {
            ($0 as? AuditError)?.code == .integrityViolation
        }
        try await damaged.close()
    }

    @Test("HMAC-SHA256 over OpenSSL matches libsodium's and RFC 4231 test case 2")
    func hmacMatchesReferences() {
        let key = Array("Jefe".utf8)
        let message = Array("what do ya want for nothing?".utf8)
        var ours = [UInt8](repeating: 0, count: 32)
        adb_hmac_sha256(key, key.count, message, message.count, &ours)
        #expect(ours.map { String(format: "%02x", $0) }.joined()
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        for length in [0, 1, 31, 32, 33, 63, 64, 65, 200, 1000] {
            let k = (0..<32).map { UInt8($0) }
            let m = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            var a = [UInt8](repeating: 0, count: 32), b = [UInt8](repeating: 0, count: 32)
            adb_hmac_sha256(k, 32, m, m.count, &a)
            _ = crypto_auth_hmacsha256(&b, m, UInt64(m.count), k)
            #expect(a == b, "length \(length)")
        }
    }

    // MARK: Helpers

    func macs(_ path: String) async throws -> [Data] {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try await queue.read { try Data.fetchAll($0, sql: "SELECT mac FROM audit_entries ORDER BY seq") }
    }

    func attestationCount(_ path: String) async throws -> Int {
        let queue = try DatabaseQueue(path: path)
        defer { try? queue.close() }
        return try await queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM audit_attestations") ?? -1 }
    }

    static func seal(_ event: AuditEvent, seq: Int64, recordedAt: Int64, key: AuditKey, storeID: StoreID, prev: [UInt8]) throws
        -> [UInt8]
    {
        let encoded = try EncodedEvent(validating: event)
        var mac = [UInt8](repeating: 0, count: 32)
        encoded.withRow(seq: seq, recordedAt: recordedAt, keyVersion: key.version, format: 1) { row in
            adb_row_seal(key.keyset, storeID.bytes, &row, prev, &mac)
        }
        return mac
    }

    /// Appends a row the way someone holding `key` and the file could, bypassing AuditDB.
    func forgeAppend(path: String, storeID: StoreID, key: AuditKey, actor: String) async throws {
        let queue = try DatabaseQueue(path: path)
        try await queue.write { db in
            let head = try Row.fetchOne(db, sql: "SELECT seq, mac FROM audit_entries ORDER BY seq DESC LIMIT 1")!
            let seq: Int64 = head["seq"] + 1
            let event = sampleEvent(Int(seq), actor: actor)
            let recordedAt = AuditTimestamp.now().microsecondsSinceEpoch
            let mac = try Self.seal(event, seq: seq, recordedAt: recordedAt, key: key, storeID: storeID,
                               prev: Array(head["mac"] as Data))
            let encoded = try EncodedEvent(validating: event)
            let text = { (s: EncodedEvent.Span) -> String? in
                s.length < 0 ? nil : String(decoding: encoded.arena[Int(s.offset)..<Int(s.offset + s.length)], as: UTF8.self)
            }
            try db.execute(
                sql: "INSERT INTO audit_entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, NULL, 1, ?, ?, NULL)",
                arguments: [seq, recordedAt, encoded.occurredAt, text(encoded.tenant), text(encoded.actor),
                            text(encoded.action), text(encoded.resourceType), text(encoded.resourceId),
                            Int(encoded.outcome), Int(encoded.severity), text(encoded.correlationId),
                            text(encoded.source), text(encoded.details), Int(key.version), Data(mac)])
        }
        try queue.close()
    }
}

extension KeyTests {
    @Test("keys rotate removes the temporary a killed rotation left (a copy of every secret key); a live process's is left alone")
    func staleTemporaryKeyFiles() throws {
        let keyFile = dir.path("k.keys")
        _ = try KeyFile.generate(at: keyFile)
        // A process that has ended (its pid is gone), and this test process (alive).
        let ended = TestProcess()
        ended.executableURL = URL(fileURLWithPath: "/bin/true")
        try ended.run()
        ended.waitUntilExit()
        let stale = keyFile + ".tmp-\(ended.processIdentifier)", live = keyFile + ".tmp-\(getpid())"
        for path in [stale, live] {
            #expect(writeTestFile(path, Data("1 secret\n".utf8)))
        }
        let rotated = try run(try cliPath(), ["keys", "rotate", "--key-file", keyFile], environment: environmentWithoutAuditDBOptions())
        #expect(rotated.status == 0, "\(rotated.stderr)")
        #expect(!FileManager.default.fileExists(atPath: stale))
        #expect(FileManager.default.fileExists(atPath: live))
        // The update lock's file stays (KeyFile.withUpdateLock): it holds no key.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.url.path).sorted() == ["k.keys", "k.keys.lock", "k.keys.tmp-\(getpid())"])
        #expect(try FileManager.default.attributesOfItem(atPath: keyFile + ".lock")[.size] as? Int == 0)
    }
}
