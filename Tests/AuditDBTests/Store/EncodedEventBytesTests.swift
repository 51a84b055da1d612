import Foundation
import Testing

@testable import AuditDB

/// Back-signing encodes each source row from SQLite's column buffers (`EncodedEvent(utf8:)`),
/// apps' events from Strings (`EncodedEvent(validating:)`): both must accept and refuse the same
/// values, with the same first error, and lay out the same bytes.
@Suite("Encoding an event from bytes")
struct EncodedEventBytesTests {
    /// Values that sit on each rule's edge, for every text field.
    static let values: [String?] = [
        nil, "", "a", "tenant-7", "ünïcödé", "zero\u{200B}width", "tab\there", "nl\nx", "nul\u{0}x", "del\u{7F}x",
        "c1\u{85}x", "c1-edge\u{9F}", "not-c1\u{A0}", String(repeating: "x", count: 255), String(repeating: "x", count: 256),
        String(repeating: "é", count: 128), String(repeating: "w", count: 128), String(repeating: "w", count: 129), String(repeating: "v", count: 512),
        String(repeating: "v", count: 513), String(repeating: "y", count: 1_024), String(repeating: "y", count: 1_025),
        String(repeating: "z", count: 4_097),
    ]
    static let details: [String?] = [
        nil, "{}", #"{"a":1}"#, #"{"a":1,"a":2}"#, "[1]", #"{"broken": "#, #"{"s":"\ud800"}"#, #"{"n":1e999}"#,
        #"{"big":18446744073709551616}"#, "{\"x\":\"" + String(repeating: "d", count: 70_000) + "\"}", " {} ", "{}\u{0}",
    ]

    /// The outcome of an encoding: the error (field and message), or the arena without the seals
    /// (their seed is random) and every span.
    static func outcome(_ make: () throws(AuditError) -> EncodedEvent) -> String {
        do {
            let e = try make()
            let spans = [e.tenant, e.actor, e.action, e.resourceType, e.resourceId, e.correlationId, e.source, e.details]
            let text = spans.map { $0.length < 0 ? "-" : String(decoding: e.arena[Int($0.offset)..<Int($0.offset + $0.length)], as: UTF8.self) }
            return "ok \(text) \(spans.map { "\($0.offset):\($0.length)" }) \(e.outcome) \(e.severity) \(e.occurredAt.map(String.init) ?? "-") "
                + "seals at \(e.seals.offset):\(e.seals.length) of \(e.arena.count)"
        } catch {
            return "error \(error.field ?? "-"): \(error.message)"
        }
    }

    static func both(_ event: AuditEvent) -> (strings: String, bytes: String) {
        let strings = outcome { () throws(AuditError) in try EncodedEvent(validating: event) }
        func withBytes<R>(_ s: String?, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
            guard var s else { return body(nil) }
            return s.withUTF8 { body($0) }
        }
        let bytes = withBytes(event.actor) { actor in
            withBytes(event.action) { action in
                withBytes(event.tenant) { tenant in
                    withBytes(event.resourceType) { resourceType in
                        withBytes(event.resourceId) { resourceId in
                            withBytes(event.correlationId) { correlationId in
                                withBytes(event.source) { source in
                                    withBytes(event.details.map(\.description)) { details in
                                        var fields = EncodedEvent.UTF8Fields(actor: actor!, action: action!)
                                        fields.tenant = tenant
                                        fields.resourceType = resourceType
                                        fields.resourceId = resourceId
                                        fields.correlationId = correlationId
                                        fields.source = source
                                        fields.details = details
                                        fields.outcome = event.outcome
                                        fields.severity = event.severity
                                        fields.occurredAt = event.occurredAt
                                        return outcome { () throws(AuditError) in try EncodedEvent(utf8: fields) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (strings, bytes)
    }

    /// The optional text fields (actor and action are required, so set separately).
    static var fields: [WritableKeyPath<AuditEvent, String?>] { [\.tenant, \.resourceType, \.resourceId, \.correlationId, \.source] }

    static func compare(_ event: AuditEvent, _ label: @autoclosure () -> String, compared: inout Int, refused: inout Int) {
        let (strings, bytes) = Self.both(event)
        #expect(strings == bytes, "\(label())")
        compared += 1
        if strings.hasPrefix("error") { refused += 1 }
    }

    @Test("every field's edge values alone, then every ordered pair of bad values: the same bytes or the same first error")
    func sameAsStrings() {
        var compared = 0, refused = 0
        for value in Self.values {
            // Alone: the other fields valid (or absent).
            if let value {
                for path in [\AuditEvent.actor, \AuditEvent.action] {
                    var event = AuditEvent(actor: "alice", action: "read", tenant: "t", source: "api")
                    event[keyPath: path] = value
                    Self.compare(event, "\(path) = \(value.debugDescription)", compared: &compared, refused: &refused)
                }
            }
            for path in Self.fields {
                var event = AuditEvent(actor: "alice", action: "read", outcome: .denied, severity: .warning)
                event[keyPath: path] = value
                Self.compare(event, "\(path) = \(value.debugDescription)", compared: &compared, refused: &refused)
            }
        }
        // Two bad fields at once, in both orders: the first the checks reach wins, on both sides.
        let bad = ["", "nl\nx", String(repeating: "x", count: 1_100)]
        let badDetails = [#"{"broken": "#, "[1]"]
        let setters: [(String, (inout AuditEvent, String) -> Void)] =
            [("actor", { $0.actor = $1 }), ("action", { $0.action = $1 })]
            + Self.fields.map { path in ("\(path)", { $0[keyPath: path] = $1 }) }
            + [("details", { $0.details = AuditDetails(json: $1) })]
        for (first, setFirst) in setters {
            for (second, setSecond) in setters where second != first {
                for a in (first == "details" ? badDetails : bad) {
                    for b in (second == "details" ? badDetails : bad) {
                        var event = AuditEvent(actor: "alice", action: "read", tenant: "t")
                        setFirst(&event, a)
                        setSecond(&event, b)
                        Self.compare(event, "\(first) = \(a.prefix(20).debugDescription), \(second) = \(b.prefix(20).debugDescription)",
                                     compared: &compared, refused: &refused)
                    }
                }
            }
        }
        for details in Self.details {
            for occurred in [nil, AuditTimestamp(microsecondsSinceEpoch: 0), AuditTimestamp(microsecondsSinceEpoch: Int64.max)] {
                var event = AuditEvent(actor: "alice", action: "read", tenant: "t")
                event.details = details.map { AuditDetails(json: $0) }
                event.occurredAt = occurred
                Self.compare(event, "details = \(String(describing: details?.prefix(40))), occurredAt = \(String(describing: occurred))",
                             compared: &compared, refused: &refused)
            }
        }
        // Both kinds were seen: the comparison is not only of refusals, nor only of acceptances.
        #expect(compared == (Self.values.count - 1) * 2 + Self.values.count * 5 + Self.pairCount(bad: 3, badDetails: 2) + Self.details.count * 3)
        #expect(refused > 50 && refused < compared - 50, "\(refused) refused of \(compared)")
    }

    /// Ordered pairs of distinct fields among 7 text fields and details, each with every bad value.
    static func pairCount(bad: Int, badDetails: Int) -> Int {
        let text = 7
        return text * (text - 1) * bad * bad + 2 * text * bad * badDetails
    }

    @Test("reserved actions: the same verdict from the bytes as from the String, look-alikes included")
    func reservedFromBytes() {
        let actions = ["auditdb.scan", "AuditDB.key.compromised", "AUDITDB.", "auditdb", "auditdbx.scan", "audit.db",
                       "auditdb\u{200B}.scan", "auditdb.\u{301}scan", "a\u{301}uditdb.scan", "ａuditdb.scan", "read", "é"]
        var reserved = 0
        for action in actions {
            var copy = action
            let fromBytes = copy.withUTF8 { AuditStore.isReserved(utf8: $0) }
            #expect(fromBytes == AuditStore.isReserved(action), "\(action.debugDescription)")
            if fromBytes { reserved += 1 }
        }
        #expect(reserved == 7)  // ａuditdb.scan (fullwidth) too since its compatibility form is ASCII
    }
}
