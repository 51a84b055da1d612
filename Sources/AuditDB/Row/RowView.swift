import CAuditCore

/// The current row of a row statement (one selecting ``RowLayout/columns``), read once by the C
/// reader (`adb_stmt_read_row`). Every consumer (verification, queries, checkpoints, anchors,
/// exports, the key proof) reads rows through this type, so they agree on what a row holds and
/// on whether it is well-formed. Its pointers are valid until the statement moves.
struct RowView {
    /// The statement, positioned on the row.
    let stmt: OpaquePointer
    /// The row as the C core encodes it. Only when ``isWellFormed`` is it the row that was signed;
    /// otherwise each value is SQLite's conversion of what is stored, for display.
    var row: adb_row
    /// The stored 32-byte MAC, or nil if the column is not a 32-byte blob.
    let mac: UnsafePointer<UInt8>?
    /// `ADB_SHAPE_OK` or why the row cannot be checked (audit_row.h).
    let shape: Int32
    /// The column at fault, or -1.
    let column: Int32

    /// Reads the statement's current row.
    init(_ stmt: OpaquePointer) {
        self.stmt = stmt
        var row = adb_row()
        var mac: UnsafePointer<UInt8>?
        var column: Int32 = -1
        shape = adb_stmt_read_row(stmt, UInt8(StoreFormat.maxRowFormat), &row, &mac, &column)
        self.row = row
        self.mac = mac
        self.column = column
    }

    var seq: Int64 { row.seq }
    var isWellFormed: Bool { shape == Int32(ADB_SHAPE_OK) }

    /// Why the row is malformed (the message of its `malformed-row` finding), or nil.
    var malformation: String? {
        let name = column >= 0 && Int(column) < RowLayout.names.count ? RowLayout.names[Int(column)] : ""
        switch shape {
        case Int32(ADB_SHAPE_OK): return nil
        case Int32(ADB_SHAPE_NOT_INTEGER): return "column \(name) is not an integer"
        case Int32(ADB_SHAPE_NOT_INTEGER_OR_NULL): return "column \(name) is not an integer or NULL"
        case Int32(ADB_SHAPE_NOT_TEXT_OR_NULL): return "column \(name) is not text or NULL"
        case Int32(ADB_SHAPE_ACTION_NULL): return "action is NULL"
        case Int32(ADB_SHAPE_BAD_MAC): return "the MAC is missing or not 32 bytes"
        case Int32(ADB_SHAPE_BAD_CODE): return "outcome, severity or origin holds an undefined code"
        case Int32(ADB_SHAPE_BAD_FORMAT): return "unknown format version \(SQLite.int64(stmt, RowLayout.formatVersion))"
        case Int32(ADB_SHAPE_BAD_SEALS):
            return row.format_version == UInt8(ADB_FORMAT_KEYED_NONCES)
                ? "a format-1 row has a seals value (only format-2 rows have one)"
                : "the seals column is not valid seals (33 bytes 00 || seed, or 97 bytes mask || commitments and nonces with every erased field NULL)"
        default: return "invalid key version \(SQLite.int64(stmt, RowLayout.keyVersion))"
        }
    }

    /// The seals mask (FORMAT.md section 21: bit 0 actor, 1 source, 2 details, 3 details partially);
    /// 0 for a fresh, format-1 or malformed row.
    var erasedMask: UInt8 {
        guard isWellFormed else { return 0 }
        var row = row
        return adb_row_erased_mask(&row)
    }

    /// The fields this row has erased whole (FORMAT.md section 21); none for a format-1 or
    /// malformed row. A details with paths erased inside it (21.7) is not among them.
    var erasedFields: Set<WithholdableField> {
        let mask = erasedMask & 8 != 0 ? erasedMask & 3 : erasedMask
        return Set(WithholdableField.allCases.filter { mask & (1 << ($0.id - 1)) != 0 })
    }

    /// A partially erased details (FORMAT.md 21.7) as read: its paths and residual; nil if the
    /// row's details is not partially erased; `.failure` if its text is not an erased-details text.
    var erasedDetails: Result<ErasedDetails, ErasedDetails.Unreadable>? {
        guard erasedMask & 8 != 0, let text = Self.string(row.details) else { return nil }
        return Result { () throws(ErasedDetails.Unreadable) in try ErasedDetails(reading: text) }
    }

    /// The stored MAC's bytes (whatever their length), for display.
    var storedMac: [UInt8] {
        if let mac { return Array(UnsafeBufferPointer(start: mac, count: 32)) }
        return SQLite.blob(stmt, RowLayout.mac) ?? []
    }

    /// A text field's bytes, nil for NULL.
    static func bytes(_ b: adb_bytes) -> UnsafeBufferPointer<UInt8>? {
        guard b.len >= 0 else { return nil }
        guard b.len > 0, let p = b.ptr else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: p, count: Int(b.len))
    }

    /// A text field as a String (invalid UTF-8 repaired, for display), nil for NULL.
    static func string(_ b: adb_bytes) -> String? {
        bytes(b).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A text field as a String, or nil for NULL; throws if it is not valid UTF-8.
    static func validString(_ b: adb_bytes, field: String, seq: Int64) throws(AuditError) -> String? {
        guard let bytes = bytes(b) else { return nil }
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw AuditError(.invalidInput, "row \(seq): \(field) is not valid UTF-8 and cannot be exported as JSON text")
        }
        return s
    }

    /// Whether a text field equals `value` byte for byte (NULL equals nothing).
    static func equals(_ b: adb_bytes, _ value: String) -> Bool {
        guard let bytes = bytes(b) else { return false }
        return bytes.elementsEqual(value.utf8)
    }

    /// The row as an ``AuditEntry``. A malformed row's integers are shown as stored.
    func entry(finding: Finding?) -> AuditEntry {
        let wellFormed = isWellFormed
        // A partially erased details reads as its residual, and its paths as erased. Its hash is
        // checked against the erasure entry by verification (step 10); text that is not even an
        // erased-details text is reported here.
        var details = Self.string(row.details), paths: [MaskPath] = [], finding = finding
        switch erasedDetails {
        case .success(let erased)?:
            details = erased.residual
            paths = erased.paths
        case .failure(let problem)? where finding == nil:
            finding = Finding(kind: .erasureTampered, seqs: row.seq...row.seq, message: "row \(row.seq) has details partially erased, but \(problem)")
        default:
            break
        }
        func int(_ column: Int32) -> Int64 { SQLite.int64(stmt, column) }
        let outcome = wellFormed ? Int64(row.outcome) : int(RowLayout.outcome)
        let severity = wellFormed ? Int64(row.severity) : int(RowLayout.severity)
        let origin = wellFormed ? Int64(row.origin) : int(RowLayout.origin)
        return AuditEntry(
            seq: row.seq,
            recordedAt: AuditTimestamp(microsecondsSinceEpoch: row.recorded_at),
            occurredAt: row.has_occurred_at != 0 ? AuditTimestamp(microsecondsSinceEpoch: row.occurred_at) : nil,
            tenant: Self.string(row.tenant), actor: Self.string(row.actor), action: Self.string(row.action) ?? "",
            resourceType: Self.string(row.resource_type), resourceId: Self.string(row.resource_id),
            outcome: AuditOutcome(code: outcome) ?? .error, severity: AuditSeverity(code: severity) ?? .critical,
            correlationId: Self.string(row.correlation_id), source: Self.string(row.source),
            detailsJSON: details,
            origin: origin == 0 ? .recorded : .backSigned(run: row.has_origin_ref != 0 ? row.origin_ref : nil),
            formatVersion: Int(wellFormed ? Int64(row.format_version) : int(RowLayout.formatVersion)),
            keyVersion: wellFormed ? row.key_version : UInt32(truncatingIfNeeded: int(RowLayout.keyVersion)),
            mac: storedMac, finding: finding, erasedFields: erasedFields, erasedDetailPaths: paths)
    }
}
