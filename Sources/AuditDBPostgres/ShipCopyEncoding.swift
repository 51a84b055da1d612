import AuditDB
import PostgresNIO

/// Shipped entries as the text format of PostgreSQL's `COPY … FROM STDIN` (one line per row,
/// tab-separated, `\N` for NULL, backslash escapes; bytea as `\\x` hex), in the column order of
/// ``columns``. The one place that writes rows of `auditdb_ship.entries` (and, in the order of
/// ``tombstoneColumns``, of `auditdb_ship.tombstones`).
enum ShipCopyEncoding {
    static let columns = [
        "store_id", "seq", "recorded_at", "occurred_at", "tenant", "actor", "action", "resource_type", "resource_id",
        "outcome", "severity", "correlation_id", "source", "details", "origin", "origin_ref", "format_version", "key_version",
        "actor_nonce", "source_nonce", "details_nonce", "actor_commitment", "source_commitment", "details_commitment",
        "withheld", "erased", "leaf", "tombstone", "expiry_seq",
    ]
    static let columnList = columns.joined(separator: ", ")
    /// The columns of `auditdb_ship.tombstones` (late tombstones, FORMAT.md 22.7).
    static let tombstoneColumns = ["store_id", "seq", "tombstone", "expiry_seq"]

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// The rows as one buffer, sent with a single `write` of the COPY: PostgresNIO 1.33.2 drops
    /// (never fails) the promise of a write that waits for backpressure relief when the
    /// connection fails meanwhile (ExtendedQueryStateMachine.errorHappened in `.copyingData`),
    /// which hung a shipper whose server restarted mid-batch. A single write never waits for it;
    /// a batch of 10,000 rows is about 6 MB.
    static func rows(_ entries: [ShippedEntry], storeID: StoreID) -> ByteBuffer {
        var line: [UInt8] = []
        line.reserveCapacity(2048)
        var buffer = ByteBuffer()
        buffer.reserveCapacity(entries.count * 640)
        for entry in entries {
            line.removeAll(keepingCapacity: true)
            encode(entry, storeID: storeID, into: &line)
            buffer.writeBytes(line)
        }
        return buffer
    }

    /// Late tombstones (entries with `expired` set) as rows of `auditdb_ship.tombstones`.
    static func lateTombstones(_ entries: [ShippedEntry], storeID: StoreID) -> ByteBuffer {
        var line: [UInt8] = []
        var buffer = ByteBuffer()
        for entry in entries {
            line.removeAll(keepingCapacity: true)
            bytes(storeID.bytes, into: &line); line.append(0x09)
            int(entry.seq, into: &line); line.append(0x09)
            bytes(entry.expired?.tombstone, into: &line); line.append(0x09)
            int(entry.expired?.expirySeq, into: &line); line.append(0x0A)
            buffer.writeBytes(line)
        }
        return buffer
    }

    private static func int(_ v: Int64?, into out: inout [UInt8]) {
        if let v { out += String(v).utf8 } else { out += [0x5C, 0x4E] }  // \N
    }

    private static func bytes(_ b: [UInt8]?, into out: inout [UInt8]) {
        guard let b else { return out += [0x5C, 0x4E] }
        out += [0x5C, 0x5C, 0x78]  // \\x: COPY unescapes to \x, bytea's hex input
        for byte in b {
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0x0F)])
        }
    }

    static func encode(_ entry: ShippedEntry, storeID: StoreID, into out: inout [UInt8]) {
        func tab() { out.append(0x09) }
        func null() { out += [0x5C, 0x4E] }  // \N
        func int(_ v: Int64?) { Self.int(v, into: &out) }
        func bytes(_ b: [UInt8]?) { Self.bytes(b, into: &out) }
        func text(_ s: String?) {
            guard let s else { return null() }
            // Most values need no escape: copied whole.
            if !s.utf8.contains(where: { $0 == 0x5C || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
                return out.append(contentsOf: s.utf8)
            }
            for c in s.utf8 {
                switch c {
                case 0x5C: out += [0x5C, 0x5C]
                case 0x0A: out += [0x5C, 0x6E]
                case 0x0D: out += [0x5C, 0x72]
                case 0x09: out += [0x5C, 0x74]
                default: out.append(c)
                }
            }
        }
        func time(_ micros: Int64?) {
            guard let micros else { return null() }
            AuditTimestamp(microsecondsSinceEpoch: micros).appendISO8601(to: &out)
        }
        func mask(_ state: ShippedEntry.Field.State, _ values: ShippedEntry.Values) -> Int64 {
            var m: Int64 = 0
            if values.actor.state == state { m |= 1 }
            if values.source.state == state { m |= 2 }
            if values.details.state == state { m |= 4 }
            return m
        }
        bytes(storeID.bytes); tab(); int(entry.seq); tab()
        if let v = entry.values {
            time(v.recordedAt); tab(); time(v.occurredAt); tab()
            text(v.tenant); tab(); text(v.actor.value); tab(); text(v.action); tab(); text(v.resourceType); tab(); text(v.resourceId); tab()
            int(Int64(v.outcome)); tab(); int(Int64(v.severity)); tab(); text(v.correlationId); tab()
            text(v.source.value); tab(); text(v.details.value); tab()
            int(Int64(v.origin)); tab(); int(v.originRef); tab(); int(Int64(v.formatVersion)); tab(); int(Int64(v.keyVersion)); tab()
            bytes(v.actor.nonce); tab(); bytes(v.source.nonce); tab(); bytes(v.details.nonce); tab()
            bytes(v.actor.commitment); tab(); bytes(v.source.commitment); tab(); bytes(v.details.commitment); tab()
            int(mask(.withheld, v)); tab(); int(mask(.erased, v)); tab()
            bytes(entry.leaf); tab(); null(); tab(); null()
        } else {
            let tombstone = entry.expired?.tombstone ?? []
            // An expired row keeps its recorded time (ENC_TOMB bytes 76..<84) for queries.
            let recorded = tombstone.count == ShippedEntry.Expired.tombstoneLength
                ? tombstone[76..<84].reduce(Int64(0)) { $0 << 8 | Int64($1) } : 0
            time(recorded); tab()
            for _ in 0..<21 { null(); tab() }
            int(0); tab(); int(0); tab()
            bytes(entry.leaf); tab(); bytes(entry.expired?.tombstone); tab(); int(entry.expired?.expirySeq)
        }
        out.append(0x0A)
    }
}
