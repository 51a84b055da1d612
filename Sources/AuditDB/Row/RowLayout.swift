import CAuditCore

/// The signed row's columns in `audit_entries`: names, order and indices. Their one definition is
/// CAuditCore's `audit_row.h` (`ADB_ROW_COLUMNS` and the `ADB_COL_*` indices), which the C reader
/// and binder use too; docs/FORMAT.md Appendix A is the contract.
enum RowLayout {
    /// The columns in the order every row statement selects them.
    static let columns = ADB_ROW_COLUMNS

    /// `SELECT` of the row columns from `audit_entries`; append a `WHERE` clause.
    static let select = "SELECT \(columns) FROM audit_entries"

    /// The insert of one row: parameters ?1..?18 in column order (bound by `SQLite.bind(_:row:mac:)`).
    static let insert: String = {
        let parameters: [String] = (1...Int(ADB_COL_COUNT)).map { "?\($0)" }
        return "INSERT INTO audit_entries(\(columns)) VALUES (" + parameters.joined(separator: ", ") + ")"
    }()

    /// The column names, in order.
    static let names: [String] = columns.split(separator: ",").map { String($0.drop { $0 == " " }) }

    static let seq = Int32(ADB_COL_SEQ)
    static let recordedAt = Int32(ADB_COL_RECORDED_AT)
    static let occurredAt = Int32(ADB_COL_OCCURRED_AT)
    static let tenant = Int32(ADB_COL_TENANT)
    static let actor = Int32(ADB_COL_ACTOR)
    static let action = Int32(ADB_COL_ACTION)
    static let resourceType = Int32(ADB_COL_RESOURCE_TYPE)
    static let resourceId = Int32(ADB_COL_RESOURCE_ID)
    static let outcome = Int32(ADB_COL_OUTCOME)
    static let severity = Int32(ADB_COL_SEVERITY)
    static let correlationId = Int32(ADB_COL_CORRELATION_ID)
    static let source = Int32(ADB_COL_SOURCE)
    static let details = Int32(ADB_COL_DETAILS)
    static let origin = Int32(ADB_COL_ORIGIN)
    static let originRef = Int32(ADB_COL_ORIGIN_REF)
    static let formatVersion = Int32(ADB_COL_FORMAT_VERSION)
    static let keyVersion = Int32(ADB_COL_KEY_VERSION)
    static let mac = Int32(ADB_COL_MAC)
}
