import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// The rows an export holds, row by row: which rows match its filter, and pass 2, which reads
/// them again and writes their entry lines (``AuditStore/export(to:filter:redact:signer:limit:progress:accessBy:masking:)``).
extension AuditStore {
    /// Streams the entry lines of the seqs of `masks` (ascending) to `path` in chunks of about 1 MiB.
    /// Each row must still show the erased fields pass 1 saw (`masks`, bits 0-2), and still be a
    /// row, not a tombstone: otherwise ``RowChangedDuringExport``.
    static func writeEntries(_ reader: any DatabaseReader, masks: [(seq: Int64, mask: UInt8)], levels: MerkleTree.Levels, storeID: StoreID,
                                     keys: KeyRing, redact: Set<WithholdableField>, format: ExportBundle.Format,
                                     masking: MaskingPolicy, to path: String) async throws
    {
        let created = Platform.createEmpty(path, mode: ExportBundle.fileMode)
        guard created == 0 else {
            throw AuditError(.storage, "cannot create \(path): \(Platform.errorMessage(created))")
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }  // close after a write error; that error is what is thrown
        guard let first = masks.first?.seq, let last = masks.last?.seq else { return }
        let wanted = Dictionary(masks.lazy.map { ($0.seq, $0.mask) }, uniquingKeysWith: { a, _ in a })
        try await reader.read { db in
            var chunk = Data()
            var written = 0
            var entries = 0
            let scan = try LeafScan.scan(db, range: first...last, prevMac: [UInt8](repeating: 0, count: 32), storeID: storeID,
                                         keys: keys, verify: false, onExpired: { seq, _ in
                guard wanted[seq] == nil else { throw RowChangedDuringExport(seq: seq, what: "expired") }
            }) { view, leaf in
                let seq = view.seq
                guard let mask = wanted[seq] else { return }
                guard leaf == levels.leaf(Int(seq - 1)) else {
                    throw AuditError(.integrityViolation, "row \(seq) changed while it was being exported; nothing was exported. Run `auditdb verify`.")
                }
                guard view.erasedMask & 7 == mask else { throw RowChangedDuringExport(seq: seq, what: "erased") }
                entries += 1
                let (values, fields) = try exportedEntry(view, storeID: storeID, keys: keys, redact: redact, masking: masking)
                let line: String
                switch format {
                case .v1:
                    line = entryJSON(values, fields, leaf: leaf) + ",\"proof\":["
                        + levels.proof(index: Int(seq - 1)).map { "\"\(Hex.encode($0))\"" }.joined(separator: ",") + "]}\n"
                case .v2:
                    line = ExportBundle.entryLineV2(values, fields: fields)
                }
                // The bounds a verifier enforces (FORMAT.md 17.4): never write what would not verify.
                guard line.utf8.count - 1 <= ExportBundle.maximumEntryLineBytes else {
                    throw AuditError(.invalidInput, "row \(seq) is longer than \(ExportBundle.maximumEntryLineBytes) bytes as an entry line; nothing was exported")
                }
                written += line.utf8.count
                guard written <= ExportBundle.maximumEntriesFileBytes else {
                    throw AuditError(.invalidInput, "the entries would exceed \(ExportBundle.maximumEntriesFileBytes) bytes (docs/FORMAT.md section 17.4); nothing was exported. Narrow the filter and export in parts")
                }
                chunk.append(contentsOf: line.utf8)
                if chunk.count >= 1 << 20 {
                    try handle.write(contentsOf: chunk)
                    chunk.removeAll(keepingCapacity: true)
                }
            }
            guard scan.lastGood == last, entries == wanted.count else {
                throw AuditError(.integrityViolation, "row \(scan.lastGood + 1) disappeared while it was being exported; nothing was exported")
            }
            try handle.write(contentsOf: chunk)
        }
        try handle.synchronize()
    }

    /// Whether a well-formed row matches `filter` (the rows an export holds).
    static func matches(_ view: RowView, _ filter: ExportFilter) -> Bool {
        let row = view.row
        if let seqs = filter.seqs, !seqs.contains(row.seq) { return false }
        if let tenant = filter.tenant, !RowView.equals(row.tenant, tenant) { return false }
        if let actor = filter.actor, !RowView.equals(row.actor, actor) { return false }
        if let action = filter.action, !RowView.equals(row.action, action) { return false }
        if let resourceType = filter.resourceType, !RowView.equals(row.resource_type, resourceType) { return false }
        if let resourceId = filter.resourceId, !RowView.equals(row.resource_id, resourceId) { return false }
        if let outcome = filter.outcome, Int64(row.outcome) != Int64(outcome.code) { return false }
        if let severity = filter.severity, Int64(row.severity) != Int64(severity.code) { return false }
        if let correlationId = filter.correlationId, !RowView.equals(row.correlation_id, correlationId) { return false }
        if filter.occurredFrom != nil || filter.occurredBefore != nil {
            guard row.has_occurred_at != 0 else { return false }
            if let from = filter.occurredFrom, row.occurred_at < from.microsecondsSinceEpoch { return false }
            if let before = filter.occurredBefore, row.occurred_at >= before.microsecondsSinceEpoch { return false }
        }
        if let from = filter.recordedFrom, row.recorded_at < from.microsecondsSinceEpoch { return false }
        if let before = filter.recordedBefore, row.recorded_at >= before.microsecondsSinceEpoch { return false }
        return true
    }

    /// A row's values and withholdable fields as an export shows them (every bundle format).
    static func exportedEntry(_ view: RowView, storeID: StoreID, keys: KeyRing, redact: Set<WithholdableField>,
                                      masking: MaskingPolicy)
        throws(AuditError) -> (ExportBundle.EntryValues, [ExportBundle.ExportedField])
    {
        var row = view.row
        let seq = row.seq
        func text(_ b: adb_bytes, _ name: String) throws(AuditError) -> String? {
            try RowView.validString(b, field: name, seq: seq)
        }
        let kv = row.key_version
        guard let key = keys.key(version: kv) else {
            throw AuditError(.keyUnavailable, "row \(seq) is signed with key version \(kv), which the key ring lacks")
        }
        let values = ExportBundle.EntryValues(
            seq: seq, formatVersion: UInt8(truncatingIfNeeded: row.format_version), keyVersion: kv, recordedAt: row.recorded_at,
            occurredAt: row.has_occurred_at != 0 ? row.occurred_at : nil, tenant: try text(row.tenant, "tenant"),
            action: try text(row.action, "action") ?? "", resourceType: try text(row.resource_type, "resource_type"),
            resourceId: try text(row.resource_id, "resource_id"), outcome: UInt8(truncatingIfNeeded: row.outcome),
            severity: UInt8(truncatingIfNeeded: row.severity), correlationId: try text(row.correlation_id, "correlation_id"),
            origin: UInt8(truncatingIfNeeded: row.origin), originRef: row.has_origin_ref != 0 ? row.origin_ref : nil)
        let erased = adb_row_erased_mask(&row)
        var fields: [ExportBundle.ExportedField] = []
        for field in WithholdableField.allCases {
            let value = field.value(of: row)
            var nonce = [UInt8](repeating: 0, count: 32)
            var commitment = [UInt8](repeating: 0, count: 32)
            _ = adb_row_field_nonce(key.keyset, storeID.bytes, &row, field.id, &nonce)
            adb_row_field_commitment(key.keyset, storeID.bytes, &row, field.id, &commitment)
            let shape: ExportBundle.ExportedField.Shape
            var masked = ""
            if erased & (1 << (field.id - 1)) != 0 {
                shape = .erased  // FORMAT.md section 21: only the commitment is left, whatever the redaction set
            } else if redact.contains(field) {
                shape = .withheld
                masked = try maskedDisplay(field, value, masking, seq: seq)
            } else if value.len < 0 {
                shape = .null
            } else {
                shape = .shown(try text(value, field.rawValue) ?? "", nonce: nonce)
            }
            fields.append(ExportBundle.ExportedField(shape: shape, commitment: commitment, maskedJSON: masked))
        }
        return (values, fields)
    }

    /// One v1 entry as JSON (FORMAT.md 17.1), up to (not including) its proof and closing brace.
    static func entryJSON(_ v: ExportBundle.EntryValues, _ fields: [ExportBundle.ExportedField], leaf: [UInt8]) -> String {
        func q(_ s: String?) -> String { s.map(OutputEscaping.jsonQuoted) ?? "null" }
        func n(_ v: Int64?) -> String { v.map(String.init) ?? "null" }
        var out = "{\"seq\":\(v.seq),\"recordedAt\":\(v.recordedAt),\"occurredAt\":\(n(v.occurredAt)),"
            + "\"tenant\":\(q(v.tenant)),"
            + "\"action\":\(q(v.action)),\"resourceType\":\(q(v.resourceType)),"
            + "\"resourceId\":\(q(v.resourceId)),\"outcome\":\(v.outcome),\"severity\":\(v.severity),"
            + "\"correlationId\":\(q(v.correlationId)),\"origin\":\(v.origin),"
            + "\"originRef\":\(n(v.originRef)),"
            + "\"formatVersion\":\(v.formatVersion),\"keyVersion\":\(v.keyVersion)"
        for (field, shown) in zip(WithholdableField.allCases, fields) {
            let c = Hex.encode(shown.commitment)
            switch shown.shape {
            case .erased: out += ",\"\(field.rawValue)\":{\"erased\":true,\"commitment\":\"\(c)\"}"
            case .withheld: out += ",\"\(field.rawValue)\":{\"withheld\":true,\"commitment\":\"\(c)\"\(shown.maskedJSON)}"
            case .null: out += ",\"\(field.rawValue)\":{\"value\":null,\"commitment\":\"\(c)\"}"
            case .shown(let text, let nonce):
                out += ",\"\(field.rawValue)\":{\"value\":\(q(text)),\"nonce\":\"\(Hex.encode(nonce))\",\"commitment\":\"\(c)\"}"
            }
        }
        return out + ",\"leafHash\":\"\(Hex.encode(leaf))\""
    }
}
