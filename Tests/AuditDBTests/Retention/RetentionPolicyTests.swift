import Testing

@testable import AuditDB

/// The retention period grammar (docs/retention.md, "Durations") and the policy's decisions at
/// the cut-off.
@Suite("Retention policy")
struct RetentionPolicyTests {
    static let suffix = ". Write a positive whole number followed by h (hours), d (days) or w (weeks), e.g. 90d"

    @Test("valid periods, the largest of each unit included",
          arguments: [("1h", 1, RetentionPeriod.Unit.hours), ("12h", 12, .hours), ("90d", 90, .days), ("400d", 400, .days),
                      ("2w", 2, .weeks), ("10d", 10, .days), ("2562047788h", 2_562_047_788, .hours),
                      ("106751991d", 106_751_991, .days), ("15250284w", 15_250_284, .weeks)])
    func validPeriods(text: String, count: Int64, unit: RetentionPeriod.Unit) throws {
        let period = try RetentionPeriod(parsing: text)
        #expect(period.count == count)
        #expect(period.unit == unit)
        #expect(period.description == text)  // the canonical form is the only form
        #expect(period.microseconds == count * unit.microseconds)
    }

    @Test("a day is 86,400 s and a week 7 days, in microseconds")
    func unitLengths() throws {
        #expect(try RetentionPeriod(parsing: "1h").microseconds == 3_600_000_000)
        #expect(try RetentionPeriod(parsing: "1d").microseconds == 86_400_000_000)
        #expect(try RetentionPeriod(parsing: "1w") == RetentionPeriod(parsing: "7d"))
        #expect(try RetentionPeriod(parsing: "2w") < RetentionPeriod(parsing: "15d"))
        #expect(try RetentionPeriod(parsing: "106751991d").microseconds <= Int64.max)
    }

    @Test("every class of invalid period is refused, saying what is wrong and how to write it",
          arguments: [
              ("", "is empty"),
              (" 90d", "contains whitespace at character 1; remove it"),
              ("90 d", "contains whitespace at character 3; remove it"),
              ("90d\n", "contains whitespace at character 4; remove it"),
              ("-5d", "is negative"),
              ("+5d", "has a sign; write the number alone"),
              ("0d", "is zero: a maximum age of zero would let every row expire at once; to keep rows for ever, use `forever` (or no maximum age)"),
              ("0h", "is zero: a maximum age of zero would let every row expire at once; to keep rows for ever, use `forever` (or no maximum age)"),
              ("007d", "has a leading zero; write 7d"),
              ("00d", "has a leading zero; write a positive number"),
              ("90", "has no unit (h, d or w)"),
              ("d", "does not start with a number"),
              ("forever", "does not start with a number"),
              ("1.5d", "is not a whole number; use a smaller unit (36h, not 1.5d)"),
              ("90D", "has the unit \"D\"; units are lowercase (d)"),
              ("90m", "has the unit \"m\", which could mean minutes or months; write hours or days (720h, 30d)"),
              ("1y", "has the unit \"y\"; years differ in length, so write days (365d or 366d)"),
              ("30s", "has the unit \"s\"; retention is counted in hours, days or weeks (1h is the shortest)"),
              ("90x", "has the unknown unit \"x\""),
              ("90\u{200B}d", "has the unknown unit \"\\u200b\""),
              ("90d12h", "has text after the unit; write one number and one unit (2172h, not 90d12h)"),
              ("90dd", "has text after the unit; write one number and one unit (2172h, not 90d12h)"),
              ("\u{669}\u{660}d", "contains a digit that is not ASCII 0-9 (U+669)"),
              ("9\u{660}d", "contains a digit that is not ASCII 0-9 (U+660)"),
              ("106751992d", "is too long: at most 106751991d (the period in microseconds must fit a 64-bit integer); to keep rows for ever, use `forever` (or no maximum age)"),
              ("15250285w", "is too long: at most 15250284w (the period in microseconds must fit a 64-bit integer); to keep rows for ever, use `forever` (or no maximum age)"),
              ("99999999999999999999999h", "is too long: at most 2562047788h (the period in microseconds must fit a 64-bit integer); to keep rows for ever, use `forever` (or no maximum age)"),
          ])
    func invalidPeriods(text: String, problem: String) {
        do {
            let period = try RetentionPeriod(parsing: text, field: "maxAge")
            Issue.record("\(text.debugDescription) was accepted as \(period)")
        } catch {
            #expect(error.code == .invalidInput)
            #expect(error.field == "maxAge")
            #expect(error.message == "maxAge: the retention period \(OutputEscaping.jsonQuoted(text)) \(problem)\(Self.suffix)")
        }
    }

    @Test("one refusal in full, as a user sees it")
    func oneRefusalInFull() {
        #expect(throws: AuditError.self) { try RetentionPeriod(parsing: "3 months", field: "default") }
        do {
            _ = try RetentionPeriod(parsing: "0d", field: "default")
        } catch {
            #expect(error.message == "default: the retention period \"0d\" is zero: a maximum age of zero would let every row expire at once; to keep rows for ever, use `forever` (or no maximum age). Write a positive whole number followed by h (hours), d (days) or w (weeks), e.g. 90d")
        }
    }

    @Test("a period built from numbers follows the same bounds")
    func periodFromNumbers() throws {
        #expect(try RetentionPeriod(90, .days).description == "90d")
        #expect(throws: AuditError.self) { try RetentionPeriod(0, .days) }
        #expect(throws: AuditError.self) { try RetentionPeriod(-1, .hours) }
        #expect(throws: AuditError.self) { try RetentionPeriod(15_250_285, .weeks) }
    }

    // MARK: The policy

    static let now = AuditTimestamp(iso8601: "2026-12-01T12:00:00Z")!
    static let day: Int64 = 86_400_000_000

    func policy() throws -> RetentionPolicy {
        try RetentionPolicy(parsingDefault: "90d", tenants: ["bank": "400d", "archive": "forever"])
    }

    @Test("the cut-off per tenant: the default, an override, keep for ever, no tenant")
    func cutoffs() throws {
        let policy = try policy()
        let now = Self.now.microsecondsSinceEpoch
        #expect(policy.cutoff(forTenant: nil, now: Self.now)?.microsecondsSinceEpoch == now - 90 * Self.day)
        #expect(policy.cutoff(forTenant: "acme", now: Self.now)?.microsecondsSinceEpoch == now - 90 * Self.day)
        #expect(policy.cutoff(forTenant: "bank", now: Self.now)?.microsecondsSinceEpoch == now - 400 * Self.day)
        #expect(policy.cutoff(forTenant: "archive", now: Self.now) == nil)
        #expect(policy.cutoff(forTenant: "Bank", now: Self.now)?.microsecondsSinceEpoch == now - 90 * Self.day)  // byte for byte
        #expect(policy.limit(forTenant: "bank").description == "400d")
        #expect(policy.limit(forTenant: "archive") == .forever)
        #expect(policy.cutoff(forTenant: "acme", now: Self.now)?.iso8601 == "2026-09-02T12:00:00.000000Z")
    }

    @Test("exactly at the cut-off a row is kept; one microsecond older, it may expire",
          arguments: [(nil, Int64(90)), ("acme", 90), ("bank", 400)] as [(String?, Int64)])
    func boundary(tenant: String?, days: Int64) throws {
        let policy = try policy()
        let cutoff = Self.now.microsecondsSinceEpoch - days * Self.day
        func allows(_ micros: Int64) -> Bool {
            policy.allowsExpiry(tenant: tenant, recordedAt: AuditTimestamp(microsecondsSinceEpoch: micros), now: Self.now)
        }
        #expect(!allows(cutoff))
        #expect(allows(cutoff - 1))
        #expect(!allows(cutoff + 1))
        #expect(!allows(Self.now.microsecondsSinceEpoch))
        #expect(allows(AuditTimestamp.minimum.microsecondsSinceEpoch))
    }

    @Test("keep for ever: no row of that tenant ever expires; a forever default with a shorter override")
    func forever() throws {
        let policy = try policy()
        #expect(!policy.allowsExpiry(tenant: "archive", recordedAt: .minimum, now: .maximum))
        let inverse = try RetentionPolicy(default: .forever, tenants: ["scratch": .maximumAge(RetentionPeriod(12, .hours))])
        #expect(!inverse.allowsExpiry(tenant: nil, recordedAt: .minimum, now: Self.now))
        #expect(!inverse.allowsExpiry(tenant: "acme", recordedAt: .minimum, now: Self.now))
        let twelveHours = Self.now.microsecondsSinceEpoch - 12 * 3_600_000_000
        #expect(inverse.allowsExpiry(tenant: "scratch", recordedAt: AuditTimestamp(microsecondsSinceEpoch: twelveHours - 1), now: Self.now))
        #expect(!inverse.allowsExpiry(tenant: "scratch", recordedAt: AuditTimestamp(microsecondsSinceEpoch: twelveHours), now: Self.now))
    }

    @Test("a cut-off before the earliest representable time: nothing is old enough")
    func cutoffUnderflow() throws {
        let policy = try RetentionPolicy(parsingDefault: "106751991d")
        let now = AuditTimestamp.minimum
        #expect(policy.cutoff(forTenant: nil, now: now)?.microsecondsSinceEpoch == Int64.min)
        #expect(!policy.allowsExpiry(tenant: nil, recordedAt: AuditTimestamp(microsecondsSinceEpoch: .min), now: now))
    }

    @Test("a policy's text errors name the setting: the default, or the tenant")
    func policyErrors() throws {
        #expect(throws: Never.self) { try RetentionPolicy(parsingDefault: "forever") }
        do {
            _ = try RetentionPolicy(parsingDefault: "90d", tenants: ["bank": "400x"])
            Issue.record("accepted")
        } catch {
            #expect(error.field == "tenants[\"bank\"]")
            #expect(error.message == "tenants[\"bank\"]: the retention period \"400x\" has the unknown unit \"x\"\(Self.suffix)")
        }
        do {
            _ = try RetentionPolicy(parsingDefault: "ninety days")
            Issue.record("accepted")
        } catch {
            #expect(error.field == "default")
            #expect(error.message == "default: the retention period \"ninety days\" contains whitespace at character 7; remove it\(Self.suffix)")
        }
    }

    @Test("an override for a tenant no row can have is refused",
          arguments: [("", "retention policy: tenant \"\": tenant: must not be empty (no row holds an empty value)"),
                      ("a\tb", "retention policy: tenant \"a\\tb\": tenant: contains a control character at byte 1 (newlines, tabs, NUL and escape sequences are not allowed)"),
                      (String(repeating: "t", count: 257), "retention policy: tenant \"\(String(repeating: "t", count: 257))\": tenant: is 257 bytes of UTF-8; the limit is 256 (nothing is truncated)")])
    func invalidTenant(tenant: String, message: String) {
        do {
            _ = try RetentionPolicy(default: .forever, tenants: [tenant: .forever])
            Issue.record("accepted")
        } catch {
            #expect(error.code == .invalidInput)
            #expect(error.field == "tenants")
            #expect(error.message == message)
        }
    }
}
