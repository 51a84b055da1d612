import Foundation
import GRDB

/// What a path must be before AuditDB opens it as a store: checked without changing the file.
///
/// Opening a store sets WAL mode, which writes to the file; opening a FIFO waits for a writer. So
/// a path that is not a regular file, an empty file, or an SQLite database without any of
/// AuditDB's tables (another application's file given by mistake) is refused first, and left
/// exactly as it was. A file that is not SQLite at all is left to the open (SQLite refuses it
/// before writing; verification reports it as corruption: it may be a store overwritten).
enum StoreFile {
    /// - Throws: ``AuditError`` `notAStore` naming what the path is instead.
    static func refuseNonStore(_ path: String) throws(AuditError) {
        var info = stat()
        guard stat(path, &info) == 0 else { return }  // missing or unreadable: the open says so
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG else {
            let what = switch type {
            case S_IFDIR: "a directory"
            case S_IFIFO: "a FIFO (named pipe)"
            case S_IFCHR, S_IFBLK: "a device"
            case S_IFSOCK: "a socket"
            default: "not a regular file"
            }
            throw AuditError(.notAStore, "\(path) is \(what), not a store file; check the path")
        }
        guard info.st_size > 0 else {
            throw AuditError(.notAStore, "\(path) is an empty file, not an AuditDB store: check the path (`auditdb init` creates a store); if it held a store, it was emptied: restore it from a backup")
        }
        // Read-only, through SQLite (never a descriptor of our own: closing it would release every
        // POSIX lock this process holds on the file, another handle's included), it must hold at
        // least one of AuditDB's tables (a store that lost some of them is verify's to report).
        // Not an SQLite file at all, or not readable this way (a WAL file in a directory without
        // write access): the open decides (SQLite refuses a file that is not a database before
        // writing anything, and verification reports it as corruption).
        var configuration = GRDB.Configuration()
        configuration.readonly = true
        configuration.label = "auditdb-precheck"
        let tables: Int
        do {
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            defer { try? queue.close() }  // a read-only connection: closing cannot lose anything
            tables = try queue.read { db in
                // Not grdb_migrations: every application built on GRDB has one.
                try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('audit_entries', 'audit_store')") ?? 0
            }
        } catch {
            return
        }
        guard tables > 0 else {
            throw AuditError(.notAStore, "\(path) is an SQLite database without AuditDB's tables, not an AuditDB store: another application's file (check the path; it was not changed), or a store whose tables were all dropped")
        }
    }
}

extension StoreFile {
    /// The URI that opens `path` as immutable, for reading a WAL store in a directory this process
    /// cannot write (an archive, an auditor's read-only access), where SQLite cannot make the
    /// `-shm` file a read-only WAL open needs. Immutable means SQLite reads the file alone, so it
    /// is refused when that could miss something: WAL content, or a hot rollback journal (a bulk
    /// load killed before its commit, BulkLoadJournal, which only a writable open rolls back).
    /// - Throws: ``AuditError`` `readOnly` saying which, and what to do.
    static func immutableURI(_ path: String) throws(AuditError) -> String {
        let wal = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
        guard wal == 0 else {
            throw AuditError(
                .readOnly,
                "\(path) is read-only and its -wal file holds changes that cannot be read without write access to the directory; use a copy, or run as a user who can write there")
        }
        let journal = (try? FileManager.default.attributesOfItem(atPath: path + "-journal")[.size] as? Int) ?? 0
        guard journal == 0 else {
            throw AuditError(
                .readOnly,
                "\(path) is read-only and its -journal file holds an interrupted transaction that only a writable open rolls back; open the store once as a user who can write there (that undoes it), or use a copy of both files")
        }
        let encoded = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path
        return "file:\(encoded)?immutable=1"
    }
}
