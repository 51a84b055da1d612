import GRDB
import GRDBSQLite

extension AuditError {
    /// Turns any error from GRDB/SQLite into a typed ``AuditError`` that says what to do.
    /// `action` names what was being done ("append", "open /path/store.db", ...).
    static func from(_ error: any Error, while action: String) -> AuditError {
        if let error = error as? AuditError { return error }
        guard let db = error as? DatabaseError else {
            return AuditError(.storage, "\(action) failed: \(error)", underlying: error as (any Error & Sendable))
        }
        let detail = db.message ?? "SQLite error \(db.extendedResultCode.rawValue)"
        switch db.resultCode {
        case .SQLITE_FULL:
            return AuditError(
                .diskFull,
                "\(action) failed: the disk (or the database's page limit) is full. Nothing was written; free space and retry.",
                underlying: db)
        case .SQLITE_READONLY:
            return AuditError(
                .readOnly,
                "\(action) failed: the store is read-only (\(detail)). Check write permission on the file, its directory and its -wal/-shm files.",
                underlying: db)
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return AuditError(
                .busy,
                "\(action) failed: the database stayed locked by another connection past the busy timeout. Nothing was written; retry, or find the process holding the lock.",
                underlying: db)
        case .SQLITE_CORRUPT, .SQLITE_NOTADB:
            return AuditError(
                .corrupt,
                "\(action) failed: the file is not a valid database or its pages are damaged (\(detail)). Run `auditdb verify`; restore from a backup.",
                underlying: db)
        case .SQLITE_CANTOPEN:
            return AuditError(
                .storage,
                "\(action) failed: the file cannot be opened (\(detail)). Check that the path and its directory exist and are accessible.",
                underlying: db)
        case .SQLITE_CONSTRAINT where detail.contains("append-only"):
            return AuditError(.storage, "\(action) was refused by the store: \(detail)", underlying: db)
        default:
            return AuditError(.storage, "\(action) failed: \(detail)", underlying: db)
        }
    }
}
