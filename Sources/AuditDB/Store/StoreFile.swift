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
    /// What a file of type `type` (`st_mode & S_IFMT`) is, for a message.
    private static func describe(_ type: mode_t) -> String {
        switch type {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO (named pipe)"
        case S_IFCHR, S_IFBLK: "a device"
        case S_IFSOCK: "a socket"
        default: "not a regular file"
        }
    }

    /// - Throws: ``AuditError`` `notAStore` naming what the path is instead; `storage` when a
    ///   file SQLite keeps beside the store (`-journal`, `-wal`, `-shm`) is not a regular file.
    static func refuseNonStore(_ path: String) throws(AuditError) {
        var info = stat()
        guard stat(path, &info) == 0 else { return }  // missing or unreadable: the open says so
        let type = info.st_mode & S_IFMT
        guard type == S_IFREG else {
            throw AuditError(.notAStore, "\(path) is \(describe(type)), not a store file; check the path")
        }
        // SQLite opens these beside the store on its own; a FIFO there would make it wait for a
        // writer for ever, a directory or device fail obscurely.
        let base = resolved(path)  // where SQLite looks: beside the file a symbolic link names
        for suffix in ["-journal", "-wal", "-shm"] {
            var companion = stat()
            guard stat(base + suffix, &companion) == 0 else { continue }
            let kind = companion.st_mode & S_IFMT
            guard kind != S_IFREG else { continue }
            throw AuditError(.storage, "\(path)\(suffix) is \(describe(kind)), where SQLite keeps the store's \(suffix.dropFirst()) file: SQLite would wait on it or fail. Something other than SQLite put it there: keep it as evidence, remove it, and run again")
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
                let own = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('audit_entries', 'audit_store')") ?? 0
                guard own == 0, try db.tableExists("grdb_migrations") else { return own }
                // Every application built on GRDB has a grdb_migrations table; one that records
                // two or more of AuditDB's own migrations is a store whose tables were dropped,
                // which verification reports (FORMAT.md section 11).
                let recorded = try String.fetchAll(db, sql: "SELECT CAST(identifier AS TEXT) FROM grdb_migrations NOT INDEXED WHERE identifier IS NOT NULL")
                return Set(recorded).intersection(StoreSchema.knownMigrations).count >= 2 ? 1 : 0
            }
        } catch {
            return
        }
        guard tables > 0 else {
            throw AuditError(.notAStore, "\(path) is an SQLite database without AuditDB's tables or migration record, not an AuditDB store: another application's file (check the path; it was not changed)")
        }
    }
}

extension StoreFile {
    /// The URI that opens `path` as immutable, for reading an **archived** WAL store in a
    /// directory this process cannot write (an auditor's read-only access), where SQLite cannot
    /// make the `-shm` file a read-only WAL open needs.
    ///
    /// Immutable means SQLite reads the file alone, takes no lock, and assumes it never changes,
    /// so it is refused unless nothing can be missed and nothing can change: the file (its
    /// symlinks resolved) is writable by no one (mode without any w bit: archived), its `-wal` is
    /// absent or empty, and there is no hot rollback journal (a bulk load killed before its
    /// commit, BulkLoadJournal, which only a writable open rolls back). A store its owner can
    /// still write may be written right now, and an immutable read of it could see a half-done
    /// checkpoint and report damage that is not there.
    /// - Throws: ``AuditError`` `readOnly` saying which, and what to do.
    static func immutableURI(_ path: String) throws(AuditError) -> String {
        let real = resolved(path)
        guard companionSize(path, "-journal") == 0 else {
            throw AuditError(
                .readOnly,
                "\(path) is read-only and its -journal file holds an interrupted transaction that only a writable open rolls back; open the store once as a user who can write there (that undoes it), or use a copy of both files")
        }
        guard companionSize(path, "-wal") == 0 else {
            throw AuditError(
                .readOnly,
                "\(path) is read-only and its -wal file holds changes that cannot be read without write access to the directory; use a copy, or run as a user who can write there")
        }
        var info = stat()
        guard stat(real, &info) == 0, info.st_mode & 0o222 == 0 else {
            throw AuditError(
                .readOnly,
                "\(path) cannot be opened here: this process cannot write its directory, where SQLite keeps the store's -shm file, and the store file itself is writable (mode \(String(info.st_mode & 0o777, radix: 8))), so another process may be writing it, which a read without that file cannot follow safely. Run as a user who can write the directory, or, for an archived store, remove every write permission from the file (`chmod a-w`) to read it from here")
        }
        let encoded = real.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? real
        return "file:\(encoded)?immutable=1"
    }

    /// `path` with its symlinks resolved (SQLite keeps the -wal, -shm and -journal files beside
    /// the file a link points to), or `path` itself when it cannot be resolved.
    static func resolved(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The size of the store's `suffix` file (`-wal`, `-journal`) beside the resolved store
    /// file; 0 when there is none.
    static func companionSize(_ path: String, _ suffix: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: resolved(path) + suffix)[.size] as? Int) ?? 0
    }

    /// Whether a failed open of the existing store file at `path` is SQLite unable to use the
    /// `-shm` file (it cannot make one, or cannot open the one there): the case
    /// ``immutableURI(_:)`` is for. A missing file is never this (a writable open would create it).
    static func isSharedMemoryRefusal(_ error: AuditError, path: String) -> Bool {
        if error.code == .readOnly { return true }
        return (error.underlying as? DatabaseError)?.resultCode == .SQLITE_CANTOPEN && FileManager.default.fileExists(atPath: path)
    }
}
