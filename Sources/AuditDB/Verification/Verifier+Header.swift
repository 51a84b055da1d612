import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// Steps 1 and 2 of a verification pass (docs/FORMAT.md, section 11): the schema, including what
/// `grdb_migrations` records, and the store header.
extension Verifier {
    // MARK: Schema and header

    static func checkSchema(_ db: Database, applied: [String]) throws -> [Finding] {
        let expected = try StoreSchema.expectedObjects(appliedMigrations: applied.isEmpty ? StoreSchema.knownMigrations : applied)
        let actual = try StoreSchema.objects(in: db)
        var findings: [Finding] = []
        let actualByKey = Dictionary(actual.map { ("\($0.type) \($0.name)", $0) }, uniquingKeysWith: { a, _ in a })
        let expectedByKey = Dictionary(expected.map { ("\($0.type) \($0.name)", $0) }, uniquingKeysWith: { a, _ in a })
        for (key, object) in expectedByKey.sorted(by: { $0.key < $1.key }) {
            guard let found = actualByKey[key] else {
                findings.append(Finding(kind: .schemaTampered, seqs: nil,
                                        message: "\(object.type) \(object.name) is missing (dropped?)"))
                continue
            }
            if found.sql != object.sql || found.table != object.table {
                findings.append(Finding(kind: .schemaTampered, seqs: nil,
                                        message: "\(object.type) \(object.name) differs from its definition (edited?)"))
            }
        }
        for (key, object) in actualByKey.sorted(by: { $0.key < $1.key }) where expectedByKey[key] == nil {
            findings.append(Finding(kind: .schemaTampered, seqs: nil,
                                    message: "unexpected \(object.type) \(object.name) on \(object.table)"))
        }
        // Text order and comparisons follow the database's encoding (BINARY is memcmp of the stored
        // bytes): a file rebuilt as UTF-16 orders its indexes and answers range terms differently.
        let encoding = try String.fetchOne(db, sql: "PRAGMA encoding") ?? "?"
        if encoding != "UTF-8" {
            findings.append(Finding(kind: .schemaTampered, seqs: nil,
                                    message: "the database's text encoding is \(encoding); AuditDB stores are UTF-8 (the file was rebuilt by another tool): SQLite orders and compares text in another way in this encoding, so queries and index ranges could miss rows"))
        }
        let header = try fileHeader(db)
        if let versions = header, !(1...2).contains(versions.write) || !(1...2).contains(versions.read) {
            findings.append(Finding(kind: .corruption, seqs: nil, message: fileFormatMessage(write: versions.write, read: versions.read)))
        }
        if let reserved = header?.reserved, reserved != 0 {
            findings.append(Finding(kind: .corruption, seqs: nil, message: reservedBytesMessage(reserved)))
        }
        if let expansion = header?.expansion, let offset = expansion.firstIndex(where: { $0 != 0 }) {
            findings.append(Finding(kind: .corruption, seqs: nil, message: expansionBytesMessage(firstNonZero: offset)))  // an index into the header
        }
        let known = StoreSchema.knownMigrations
        if applied.isEmpty, try db.tableExists("audit_entries") || db.tableExists("audit_store") {
            // Every store records its migrations; with none recorded, every other command takes
            // the file for no store at all.
            findings.append(Finding(kind: .schemaTampered, seqs: nil,
                                    message: "the migration record (grdb_migrations) is \(try StoreSchema.migrationRecordState(db) ?? "empty"): every AuditDB store records the migrations it took, so it was removed by another SQLite client. Until it is restored (from a backup), other commands refuse the store"))
        }
        let unknown = applied.filter { !known.contains($0) }
        if !unknown.isEmpty {
            findings.append(Finding(kind: .schemaTampered, seqs: nil,
                                    message: "unknown migrations recorded: \(unknown.joined(separator: ", ")) (newer AuditDB, or tampering)"))
        }
        // grdb_migrations is as open to an attacker as any table: deleting a record (and the
        // objects of that migration) must not quietly lower the schema verification expects.
        let recorded = applied.filter { known.contains($0) }
        if !applied.isEmpty, recorded != Array(known.prefix(recorded.count)) {
            findings.append(Finding(kind: .schemaTampered, seqs: nil,
                                    message: "the recorded migrations (\(recorded.joined(separator: ", "))) skip some of \(known.joined(separator: ", ")): a migration record was removed or edited"))
        } else if !applied.isEmpty, recorded.count < known.count {
            findings.append(Finding(kind: .schemaOutdated, seqs: nil,
                                    message: "the store records schema migrations up to \(recorded.last ?? "none") only; this AuditDB's schema goes to \(known.last ?? "?"). Run `auditdb migrate`. If this store was migrated before, its migration record and the objects of the later migrations were removed (tampering)"))
        }
        if let disagreement = try StoreSchema.migrationRecordIndexDisagreement(db) {
            findings.append(Finding(kind: .schemaTampered, seqs: nil, message: disagreement))
        }
        return findings
    }

    /// Bytes 18, 19 and 20 of the main database file's SQLite header (the file format write and
    /// read versions, and the bytes reserved at the end of each page) and bytes 72-91 (reserved
    /// for expansion), as stored in the file, read through SQLite's own open file (a descriptor
    /// of our own would drop this process's locks on the file when closed); nil for an in-memory
    /// database or a file too short.
    static func fileHeader(_ db: Database) throws -> (write: UInt8, read: UInt8, reserved: UInt8, expansion: ArraySlice<UInt8>)? {
        guard let connection = db.sqliteConnection, let name = sqlite3_db_filename(connection, "main"), name.pointee != 0 else {
            return nil
        }
        var bytes = [UInt8](repeating: 0, count: 100)
        let rc = adb_sqlite_read_main_header(connection, &bytes, 100)
        guard rc == SQLITE_OK else {
            // SQLITE_IOERR_SHORT_READ (a macro Swift does not import)
            guard rc == SQLITE_IOERR | (2 << 8) else { throw SQLite.error(rc, connection: connection, while: "read the file header") }
            return nil  // too short: the open that read it says what is wrong with it
        }
        return (bytes[18], bytes[19], bytes[20], bytes[72..<92])
    }

    /// The finding's text for a header whose bytes 72-91 are not all zero (FORMAT.md section 11, step 1).
    static func expansionBytesMessage(firstNonZero offset: Int) -> String {
        "the SQLite file header's bytes 72 to 91, reserved for expansion, are not all zero (byte \(offset) is not), as SQLite requires: "
            + "another client edited the file header. Restore the store from a backup (or write zeros back into bytes 72 to 91)"
    }

    /// The finding's text for a header that reserves bytes at the end of each page (FORMAT.md
    /// section 11, step 1).
    static func reservedBytesMessage(_ reserved: UInt8) -> String {
        "the SQLite file header reserves \(reserved) byte(s) at the end of every page (byte 20), not 0 as AuditDB creates every store: "
            + "SQLite then lays out every page differently, so the pages read as damaged (PRAGMA quick_check) and writes fail. "
            + "Another client changed it; restore the store from a backup (or write 0 back into byte 20)"
    }

    /// The finding's text for file format versions other than 1 or 2 (FORMAT.md section 11, step 1).
    static func fileFormatMessage(write: UInt8, read: UInt8) -> String {
        "the SQLite file header's format versions are \(write) (write, byte 18) and \(read) (read, byte 19), not 1 or 2 as SQLite writes them: "
            + "with a write version above 2 SQLite opens the file read-only, so every append fails. Another client changed them; "
            + "restore the store from a backup (or write 2 back into both bytes)"
    }

    enum HeaderResult: Sendable {
        case success(StoreHeader)
        case failure(Finding)
    }

    static func readHeader(_ db: Database) throws -> HeaderResult {
        guard try db.tableExists("audit_store") else {
            return .failure(Finding(kind: .headerTampered, seqs: nil, message: "the audit_store table is missing"))
        }
        let rows = try Row.fetchAll(db, sql: "SELECT singleton, store_id, created_at, format_version, key_version, mac FROM audit_store")
        guard rows.count == 1 else {
            return .failure(Finding(kind: .headerTampered, seqs: nil,
                                    message: "audit_store holds \(rows.count) rows; it must hold exactly one"))
        }
        let row = rows[0]
        guard let id = row.stored("store_id", as: Data.self), id.count == StoreFormat.storeIDLength,
              let created = row.stored("created_at", as: Int64.self), let format = row.stored("format_version", as: Int64.self),
              let kv = row.stored("key_version", as: Int64.self), let kv32 = UInt32(exactly: kv), let mac = row.stored("mac", as: Data.self)
        else {
            return .failure(Finding(kind: .headerTampered, seqs: nil, message: "the store header has invalid columns"))
        }
        var header = StoreHeader(storeID: StoreID(bytes: Array(id)), createdAt: created, formatVersion: format,
                                 keyVersion: kv32, mac: Array(mac))
        // `singleton` is 1 in the only row AuditDB writes (its CHECK, which another client can
        // switch off). It is outside the header MAC, so another value is a finding of its own
        // and the header is read regardless: it must not hide the rows' findings.
        // (It is the rowid, so it holds an integer unless the table itself was rebuilt.)
        switch (row["singleton"] as DatabaseValue).storage {
        case .int64(1): break
        case .int64(let other): header.singletonProblem = "\(other)"
        default: header.singletonProblem = "not an INTEGER"
        }
        return .success(header)
    }

    func checkHeader(_ header: StoreHeader, attestations: [Int64: [Attestation]]) -> [Finding] {
        var findings: [Finding] = []
        if let singleton = header.singletonProblem {
            findings.append(Finding(
                kind: .headerTampered, seqs: nil,
                message: "the store header's singleton column is \(singleton), not the INTEGER 1: another SQLite client switched its CHECK off and changed it (the rest of the header is checked as stored)"))
        }
        if let expected = expectedStoreID, expected != header.storeID {
            findings.append(Finding(
                kind: .storeIdentityMismatch, seqs: nil,
                message: "the file holds store \(header.storeID), not the expected store \(expected): it was replaced by another store's file"))
        }
        guard let key = keys.key(version: header.keyVersion) else {
            findings.append(Finding(kind: .unknownKeyVersion, seqs: nil,
                                    message: "the store header is signed with key version \(header.keyVersion), which the key ring lacks"))
            return findings
        }
        guard header.formatVersion == Int64(StoreFormat.formatVersion) else {
            findings.append(Finding(kind: .headerTampered, seqs: nil,
                                    message: "the store header claims format version \(header.formatVersion); this AuditDB reads format \(StoreFormat.formatVersion)"))
            return findings
        }
        var mac = [UInt8](repeating: 0, count: 32)
        adb_header_mac(key.keyset, header.storeID.bytes, header.createdAt, UInt8(header.formatVersion), header.keyVersion, &mac)
        if header.mac.count != 32 || adb_ct_equal(mac, header.mac, 32) != 1 {
            findings.append(Finding(kind: .headerTampered, seqs: nil,
                                    message: "the store header fails its MAC (store id, creation time or format changed)"))
        } else if keys.compromisedVersions.contains(header.keyVersion),
                  !Self.hasValidAttestation(seq: 0, keyVersion: header.keyVersion, mac: header.mac, storeID: header.storeID.bytes,
                                            keys: keys, distrusted: keys.compromisedVersions, attestations: attestations)
        {
            findings.append(Finding(kind: .compromisedKey, seqs: nil,
                                    message: "the store header is signed with key version \(header.keyVersion), declared compromised, and not re-attested"))
        }
        return findings
    }
}
