import CAuditCore
import GRDB

/// The signed row's columns in `audit_entries`: names, order and indices. Their one definition is
/// CAuditCore's `audit_row.h` (`ADB_ROW_COLUMNS` and the `ADB_COL_*` indices), which the C reader
/// and binder use too; docs/FORMAT.md Appendix A is the contract.
enum RowLayout {
    /// The columns in the order every row statement selects them.
    static let columns = ADB_ROW_COLUMNS

    /// `SELECT` of the row columns from `audit_entries`; append a `WHERE` clause. Only for stores
    /// that have every migration (an opened store); verification uses ``select(_:)``.
    static let select = "SELECT \(columns) FROM audit_entries"

    /// The same for a store whose `audit_entries` has no `seals` column yet (before migration
    /// 0006): NULL in its place, so every row reads as format 1 would.
    static let selectLegacy = "SELECT \(ADB_ROW_COLUMNS_LEGACY) FROM audit_entries"

    /// ``select`` or ``selectLegacy``, whichever `db`'s `audit_entries` can answer. Verification
    /// reads stores that are not migrated yet (`auditdb migrate` verifies before it migrates).
    static func select(_ db: Database) throws -> String {
        try hasSeals(db) ? select : selectLegacy
    }

    /// Whether `audit_entries` has the `seals` column of migration 0006.
    static func hasSeals(_ db: Database) throws -> Bool {
        try db.columns(in: "audit_entries").contains { $0.name == "seals" }
    }

    /// The insert of one row: parameters ?1..?19 in column order (bound by `SQLite.bind(_:row:mac:)`).
    static let insert: String = {
        let parameters: [String] = (1...Int(ADB_COL_COUNT)).map { "?\($0)" }
        return "INSERT INTO audit_entries(\(columns)) VALUES (" + parameters.joined(separator: ", ") + ")"
    }()

    /// The insert of one format-1 row into a store without migration 0006: parameters ?1..?18.
    static let insertLegacy: String = {
        let parameters: [String] = (1..<Int(ADB_COL_COUNT)).map { "?\($0)" }
        let names = columns.split(separator: ",").dropLast().joined(separator: ",")
        return "INSERT INTO audit_entries(\(names)) VALUES (" + parameters.joined(separator: ", ") + ")"
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
    static let seals = Int32(ADB_COL_SEALS)
}
