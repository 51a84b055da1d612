import Foundation
import Testing

@testable import AuditDB

/// Masking (docs/masking.md): the two methods byte for byte, a policy applied to entries (whole
/// fields and members of details), and the store's masking entries read through verification.
@Suite("Masking")
struct MaskingTests {
    let dir: TempDir
    let keys: KeyRing

    init() throws {
        dir = try TempDir()
        keys = try testKeyRing()
    }

    /// A masking key from fixed bytes 00 01 … 1f (the vector of docs/masking.md).
    static func vectorKey() throws -> MaskingKey {
        let bytes = (0..<32).map { UInt8($0) }
        return try MaskingKey(deriving: KeyRing([bytes.withUnsafeBytes { try AuditKey(version: 1, bytes: $0) }]))
    }

    @Test("partial: e-mail keeps the first character and the domain; other text the first and last; short text none", arguments: [
        ("jane.doe@example.com", "j***@example.com"), ("a@b", "a***@b"), ("x@y@corp.example", "x***@corp.example"),
        ("alice", "a***e"), ("bob", "***"), ("", "***"), ("@host", "@***t"), ("user@", "u***@"), ("Zoë Ünal", "Z***l"),
    ])
    func partial(_ value: String, _ shown: String) {
        #expect(MaskingPolicy.partial(value) == shown)
    }

    @Test("hash: hmac: and the first 16 bytes of HMAC-SHA256(HMAC-SHA256(K, \"ADB1MASK\"), value)")
    func hashVector() throws {
        let key = try Self.vectorKey()
        #expect(key.token("jane.doe@example.com".utf8) == "hmac:7e37ef03a28daee59ac65f2ee012ac58")
        #expect(key.token("user-1".utf8) == "hmac:3801c99dc5cd6f7ff3d0833a1d30ece6")
        #expect("\(key)" == "MaskingKey(bytes redacted)")
    }

    func entry(actor: String = "jane.doe@example.com", source: String? = "203.0.113.9", details: String?) async throws -> AuditEntry {
        let store = try await AuditStore.create(at: dir.path("one-\(UUID().uuidString).db"), keys: keys)
        try await store.append(AuditEvent(actor: actor, action: "login", source: source, details: details.map(AuditDetails.init(json:))))
        let entry = try await store.entries().first!
        try await store.close()
        return entry
    }

    @Test("a policy masks whole fields and details members, splices the stored text, and lists every masked path")
    func applyPolicy() async throws {
        let raw = #"{ "email" : "jane.doe@example.com", "n": 1.50, "user": {"email": "j@x.org", "id": 42}, "gone": null }"#
        let original = try await entry(details: raw)
        let policy = try MaskingPolicy(rules: ["actor=partial", "source=hash", "details.email=partial", "details.user.id=hash",
                                               "details.user.email=hash", "details.gone=partial", "details.absent=hash",
                                               "details.n=partial"].map(MaskRule.init(parsing:)),
                                       key: Self.vectorKey())
        let masked = policy.apply(to: original)
        #expect(masked.actor == nil && masked.source == nil)
        #expect(masked.mask(of: .actor) == MaskedValue(path: try MaskPath(parsing: "actor"), method: .partial, shown: "j***@example.com"))
        #expect(masked.mask(of: .source)?.shown == (try Self.vectorKey()).token("203.0.113.9".utf8))
        #expect(masked.mask(of: .details) == nil)
        // Only the masked values change: whitespace, the number's spelling and the null stay as stored.
        let id42 = try Self.vectorKey().token("42".utf8)
        #expect(masked.detailsJSON == #"{ "email" : {"masked":"partial","value":"j***@example.com"}, "n": {"masked":"partial","value":"***"}, "user": {"email": {"masked":"hash","value":"\#(try Self.vectorKey().token("j@x.org".utf8))"}, "id": {"masked":"hash","value":"\#(id42)"}}, "gone": null }"#)
        #expect(masked.masked.map(\.path.description) == ["actor", "source", "details.email", "details.n", "details.user.email", "details.user.id"])
        #expect(id42 == "hmac:4ce6cfc53ad929369b63029640b058a7")
        // Everything else is the entry as read.
        #expect(masked.seq == original.seq && masked.mac == original.mac && masked.action == original.action)
        #expect(original.masked.isEmpty && original.actor == "jane.doe@example.com")
    }

    @Test("a whole-details rule covers member rules; NULL stays NULL; erased stays erased and is not listed")
    func coverNullErased() async throws {
        let policy = try MaskingPolicy(rules: ["details=partial", "details.email=hash", "source=partial"].map(MaskRule.init(parsing:)),
                                       key: Self.vectorKey())
        let masked = policy.apply(to: try await entry(source: nil, details: #"{"email":"a@b.c"}"#))
        #expect(masked.detailsJSON == nil && masked.source == nil)
        #expect(masked.masked == [MaskedValue(path: try MaskPath(parsing: "details"), method: .partial, shown: "***")])

        let store = try await AuditStore.create(at: dir.path("erased.db"), keys: keys)
        try await store.append(AuditEvent(actor: "jane", action: "login", source: "10.1.1.1"))
        _ = try await store.erase(.seqs([1]), fields: [.actor], reason: "T-1")
        let erased = try MaskingPolicy(rules: [MaskRule(parsing: "actor=partial"), MaskRule(parsing: "source=partial")])
            .apply(to: try await store.entries(EntryQuery(seqs: 1...1)).first!)
        #expect(erased.isErased(.actor) && erased.actor == nil && erased.mask(of: .actor) == nil)
        #expect(erased.masked.map(\.shown) == ["1***1"])
        try await store.close()
    }

    @Test("rules and policies that are refused, with what to do", arguments: [
        ("tenant=partial", "a mask applies to actor, source, details or details.KEY (got \"tenant\"); other columns are signed as plain text and cannot be masked in an export"),
        ("actor=blur", "a mask method is partial or hash (got \"blur\")"),
        ("actor", "a mask rule is PATH=METHOD, such as details.email=hash or actor=partial (got \"actor\")"),
        ("actor.name=hash", "only details has members to mask (got \"actor.name\")"),
        ("details..x=hash", "a details path is details.KEY[.KEY…] with non-empty keys, at most 31 deep, without control characters (got \"details..x\")"),
    ])
    func refusedRules(_ text: String, _ message: String) {
        #expect(refusal { _ = try MaskRule(parsing: text) } == message)
    }

    /// The message of the AuditError `body` throws, or nil if it throws none.
    func refusal(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as AuditError {
            return error.message
        } catch {
            return "not an AuditError: \(error)"
        }
    }

    @Test("a hash rule needs a key; one path, one method; a command may add masks, never change the store's")
    func policyRefusals() throws {
        let noKey = refusal { _ = try MaskingPolicy(rules: [MaskRule(parsing: "details.email=hash")]) }
        #expect(noKey?.hasPrefix("the mask details.email=hash needs a masking key: pass --mask-key FILE") == true)
        let key = try Self.vectorKey()
        #expect(refusal { _ = try MaskingPolicy(rules: [MaskRule(parsing: "actor=hash"), MaskRule(parsing: "actor=partial")], key: key) }
            == "actor is masked twice, with hash and partial; keep one")
        let store = try MaskingPolicy(rules: [MaskRule(parsing: "actor=hash")], key: key)
        #expect(try store.adding([MaskRule(parsing: "source=partial")]).rules.map(\.description) == ["actor=hash", "source=partial"])
        #expect(refusal { _ = try store.adding([MaskRule(parsing: "actor=partial")]) }
            == "the store masks actor with hash (`auditdb masking show`); --mask actor=partial cannot change it")
    }

    @Test("paths are keys byte for byte: canonically equivalent spellings are two rules, and --mask on one never lifts the other")
    func canonicallyEquivalentPaths() async throws {
        let nfd = "e\u{301}", nfc = "\u{E9}"
        let store = try await AuditStore.create(at: dir.path("store.db"), keys: keys)
        try await store.append(AuditEvent(actor: "a", action: "x", details: AuditDetails(json: "{\"\(nfd)\":\"secret-nfd\",\"\(nfc)\":\"secret-nfc\"}")))
        // Both rules are kept: neither replaces the other.
        try await store.setMasking([MaskRule(parsing: "details.\(nfd)=partial"), MaskRule(parsing: "details.\(nfc)=partial")], by: "dpo")
        #expect(try await store.maskingConfiguration().rules.map { Array($0.description.utf8) }
            == [Array("details.\(nfd)=partial".utf8), Array("details.\(nfc)=partial".utf8)])  // code point order: e < é
        let both = try await store.maskingPolicy()
        let shownBoth = try #require(try await store.masked(by: both).entries(EntryQuery(seqs: 1...1)).first?.detailsJSON)
        #expect(!shownBoth.contains("secret"), "\(shownBoth)")
        // The store masks only the NFD key; a command adding the NFC key masks both.
        try await store.setMasking([MaskRule(parsing: "details.\(nfd)=partial")], by: "dpo")
        let added = try await store.maskingPolicy().adding([MaskRule(parsing: "details.\(nfc)=hash")], key: Self.vectorKey())
        #expect(added.rules.count == 2)
        let shown = try #require(try await store.masked(by: added).entries(EntryQuery(seqs: 1...1)).first?.detailsJSON)
        #expect(!shown.contains("secret-nfd") && !shown.contains("secret-nfc"), "\(shown)")
        #expect(try MaskRule(parsing: "details.\(nfd)=partial") != MaskRule(parsing: "details.\(nfc)=partial"))
        #expect(Set([try MaskPath(parsing: "details.\(nfd)"), try MaskPath(parsing: "details.\(nfc)")]).count == 2)
        // A key that starts with a combining mark: the dot before it still separates (FORMAT.md 21.7).
        #expect(try MaskPath(parsing: "details.a.\u{301}b").members == ["a", "\u{301}b"])
        try await store.close()
    }

    @Test("a masking key file holding a row key at any version is refused, not only at its newest")
    func maskingKeyFileWithAnOlderRowKey() throws {
        let rows = try testKeyRing(versions: [1, 2, 3])
        let fresh = try testKeyRing(versions: [7])
        for version: UInt32 in [1, 2, 3] {
            let file = try KeyRing([rows.keys[version]!.with(status: .active), fresh.keys[7]!])  // the row key is not the newest
            let error = refusal { try MaskingKey(deriving: file).checkDistinct(from: rows) }
            #expect(error?.hasPrefix("the masking key file holds row key version \(version) of this store") == true, "\(String(describing: error))")
        }
        #expect(refusal { try MaskingKey(deriving: fresh).checkDistinct(from: rows) } == nil)
    }

    @Test("the store's rules are a signed entry; masked reads apply them; the row key is refused as the masking key")
    func storeRules() async throws {
        let store = try await AuditStore.create(at: dir.path("store.db"), keys: keys)
        #expect(try await store.maskingConfiguration().seq == nil)
        try await store.append(AuditEvent(actor: "jane.doe@example.com", action: "login", details: AuditDetails(json: #"{"email":"jane.doe@example.com"}"#)))
        let seq = try await store.setMasking([MaskRule(parsing: "details.email=hash"), MaskRule(parsing: "actor=partial")],
                                             by: "dpo:ana", reason: "DPIA-7")
        #expect(seq == 2)
        let config = try await store.maskingConfiguration()
        #expect(config.rules.map(\.description) == ["actor=partial", "details.email=hash"])
        #expect(config.seq == 2 && config.setBy == "dpo:ana" && config.reason == "DPIA-7")
        let entry = try await store.entries(EntryQuery(seqs: 2...2)).first!
        #expect(entry.action == "auditdb.masking" && entry.detailsJSON == #"{"reason":"DPIA-7","rules":["actor=partial","details.email=hash"]}"#)

        do {
            _ = try await store.maskingPolicy()
            Issue.record("a hash rule was applied without a key")
        } catch let error as AuditError {
            #expect(error.code == .invalidInput)
        }
        do {
            _ = try await store.maskingPolicy(key: MaskingKey(deriving: keys))
            Issue.record("the row key was accepted as the masking key")
        } catch let error as AuditError {
            #expect(error.message.hasPrefix("the masking key file holds row key version 1 of this store"))
        }
        let policy = try await store.maskingPolicy(key: Self.vectorKey())
        let read = try await store.masked(by: policy).entries(EntryQuery(seqs: 1...1)).first!
        #expect(read.mask(of: .actor)?.shown == "j***@example.com")
        #expect(read.detailsJSON == #"{"email":{"masked":"hash","value":"hmac:7e37ef03a28daee59ac65f2ee012ac58"}}"#)
        var streamed: [AuditEntry] = []
        for try await e in store.scoped(toTenant: "none").masked(by: policy).stream(EntryQuery()) { streamed.append(e) }
        #expect(streamed.isEmpty)
        for try await e in store.masked(by: policy).stream(EntryQuery(seqs: 1...1)) { streamed.append(e) }
        #expect(streamed == [read])
        // A filter still matches the real value.
        #expect(try await store.masked(by: policy).entries(EntryQuery(actor: "jane.doe@example.com")).map(\.seq) == [1])

        try await store.setMasking([], by: "dpo:ana")
        #expect(try await store.maskingConfiguration().rules.isEmpty)
        #expect(try await store.verify().isIntact)
        try await store.close()
    }

    @Test("tampering: a masking entry changed fails the read and verify; one removed is found by verify")
    func tampering() async throws {
        let path = dir.path("tamper.db")
        let store = try await AuditStore.create(at: path, keys: keys)
        try await store.append(AuditEvent(actor: "jane", action: "login"))
        try await store.setMasking([MaskRule(parsing: "actor=partial")], by: "dpo")   // seq 2
        try await store.setMasking([MaskRule(parsing: "actor=partial"), MaskRule(parsing: "source=partial")], by: "dpo")   // seq 3
        try await store.append(AuditEvent(actor: "john", action: "login"))   // seq 4
        try await store.close()

        // Lifting the masks by editing the newest entry's rules: the read refuses, verify names the row.
        try sqlite3Tamper(path, #"UPDATE audit_entries SET details = '{"rules":[]}' WHERE seq = 3;"#, around: "audit_entries_no_update")
        var reopened = try await AuditStore.open(at: path, keys: keys)
        do {
            _ = try await reopened.maskingConfiguration()
            Issue.record("a changed masking entry was read")
        } catch let error as AuditError {
            #expect(error.code == .integrityViolation)
            #expect(error.message.hasPrefix("masking entry 3 failed verification (mac-mismatch at seq 3"))
        }
        #expect(try await reopened.verify().findings.map { "\($0.kind) \($0.seqs!.lowerBound)" } == ["mac-mismatch 3"])
        try await reopened.close()

        // Removing it instead: the older entry is read (fewer masks), and verify reports the gap.
        try sqlite3Tamper(path, "DELETE FROM audit_entries WHERE seq = 3;", around: "audit_entries_no_delete")
        reopened = try await AuditStore.open(at: path, keys: keys)
        #expect(try await reopened.maskingConfiguration().seq == 2)
        #expect(try await reopened.verify().findings.map { "\($0.kind) \($0.seqs!.lowerBound)" }.first == "missing-rows 3")
        try await reopened.close()
    }
}
