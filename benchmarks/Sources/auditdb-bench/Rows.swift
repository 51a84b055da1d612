import AuditDB

/// Deterministic row data, the Swift twin of `gen_row` in shared/perf-limits/common.h:
/// 64 tenants, 50k actors, 8 actions, high-cardinality resource ids, a ~200-byte JSON object.
/// Everything here is generated before any timer starts.
@inline(__always)
func splitmix64(_ value: UInt64) -> UInt64 {
    var x = value &+ 0x9E37_79B9_7F4A_7C15
    x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
    x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
    return x ^ (x >> 31)
}

private let actions = ["login", "logout", "read", "write", "delete", "grant", "revoke", "export"]

private func pad(_ value: UInt64, _ width: Int, radix: Int = 10) -> String {
    let s = String(value, radix: radix)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

/// One row's fields, as text and codes.
struct RowFields: Sendable {
    var occurredAt: Int64
    var tenant: String
    var actor: String
    var action: String
    var resourceType: String
    var resourceId: String
    var outcome: UInt8   // 0 success, 1 failure, 2 denied (never 3)
    var severity: UInt8  // 0 info, 1 notice (never critical: critical forces an fsync in relaxed mode)
    var details: String

    init(seq: Int64) {
        let x = splitmix64(UInt64(seq))
        let y = splitmix64(x)
        occurredAt = 1_700_000_000_000_000 + seq * 1000 + Int64(x & 511)
        actor = "user-" + pad(x % 50_000, 5)
        action = actions[Int((x >> 20) & 7)]
        resourceType = "document"
        resourceId = "/projects/\((x >> 24) % 1000)/docs/\(y % 100_000)"
        tenant = "tenant-" + pad((x >> 40) % 64, 2)
        let o = (x >> 50) % 16
        outcome = o < 13 ? 0 : (o < 15 ? 1 : 2)
        severity = UInt8((x >> 56) & 1)
        details = "{\"bytes\":\(y % 1_000_000),\"ip\":\"10.\((y >> 8) & 255).\((y >> 16) & 255).\((y >> 24) & 255)\","
            + "\"reason\":\"policy-check\",\"request_id\":\"\(pad(x, 16, radix: 16))\(pad(y, 16, radix: 16))\","
            + "\"session\":\"\(pad(x ^ y, 16, radix: 16))\",\"status\":\(200 + (y >> 32) % 300),"
            + "\"ua\":\"Mozilla/5.0 (X11; Linux x86_64) AuditClient/1.4\"}"
    }

    var event: AuditEvent {
        AuditEvent(
            actor: actor, action: action, resourceType: resourceType, resourceId: resourceId, tenant: tenant,
            outcome: AuditOutcome.allCases[Int(outcome)], severity: AuditSeverity.allCases[Int(severity)],
            occurredAt: AuditTimestamp(microsecondsSinceEpoch: occurredAt), details: AuditDetails(json: details))
    }
}

/// The same rows for the raw-SQLite baseline: every text in one contiguous arena (bound with
/// SQLITE_STATIC, no copies), plus a 32-byte random-looking "mac" per row.
struct RawRows: Sendable {
    static let textColumns = 6  // tenant, actor, action, resource_type, resource_id, details
    var count: Int
    var arena: [UInt8] = []
    /// Per row: (offset, length) for each text column, in the order above. 64-bit: the arena
    /// passes 2 GiB at ~6M rows.
    var spans: [Int] = []
    var occurredAt: [Int64] = []
    var recordedAt: [Int64] = []
    var outcome: [UInt8] = []
    var severity: [UInt8] = []
    var macs: [UInt8] = []

    init(_ rows: [RowFields], recordedBase: Int64) {
        count = rows.count
        arena.reserveCapacity(rows.count * 280)
        spans.reserveCapacity(rows.count * Self.textColumns * 2)
        macs.reserveCapacity(rows.count * 32)
        for (i, r) in rows.enumerated() {
            for text in [r.tenant, r.actor, r.action, r.resourceType, r.resourceId, r.details] {
                spans.append(arena.count)
                arena.append(contentsOf: text.utf8)
                spans.append(text.utf8.count)
            }
            occurredAt.append(r.occurredAt)
            recordedAt.append(recordedBase + Int64(i))
            outcome.append(r.outcome)
            severity.append(r.severity)
            var m = splitmix64(UInt64(i) ^ 0xA5A5_A5A5)
            for _ in 0..<4 {
                m = splitmix64(m)
                for b in 0..<8 { macs.append(UInt8(truncatingIfNeeded: m >> (8 * UInt64(b)))) }
            }
        }
    }
}

/// All benchmark inputs, built once.
struct Dataset: Sendable {
    let fields: [RowFields]
    let events: [AuditEvent]
    let batches: [[AuditEvent]]
    let raw: RawRows

    init(rows: Int, batchSize: Int) {
        let fields = (1...Int64(rows)).map { RowFields(seq: $0) }
        let events = fields.map(\.event)
        self.fields = fields
        self.events = events
        batches = stride(from: 0, to: rows, by: batchSize).map { Array(events[$0..<min(rows, $0 + batchSize)]) }
        raw = RawRows(fields, recordedBase: AuditTimestamp.now().microsecondsSinceEpoch)
    }
}
