import AuditDBTestSupport
import Foundation
import GRDB
import Testing

@testable import AuditDB

/// A value of another type than its column declares, put there by someone with the file (the
/// table's STRICT taken off through writable_schema, the value written, STRICT put back, so the
/// schema compares identical): each reader reports it as a finding, none stops the process.
@Suite("Tampered column types")
struct TamperedTypesTests {
    let dir: TemporaryDirectory
    let keys: KeyRing
    let db: String

    init() throws {
        dir = try TemporaryDirectory()
        keys = try KeyRing.inMemory()
        db = dir.path("store.db")
    }

    /// Runs `sql` on `table` with its STRICT, NOT NULL constraints and triggers taken off (and
    /// the text `loosening` of its definition, such as a CHECK), then puts them back.
    func tamper(_ table: String, _ sql: String, loosening: String = "NOT NULL") throws {
        let original = try sqlite3Shell(db, "SELECT sql FROM sqlite_schema WHERE name = '\(table)';").stdout
        let triggers = try sqlite3Shell(db, "SELECT sql || ';' FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = '\(table)';").stdout
        let names = try sqlite3Shell(db, "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = '\(table)';").stdout
            .split(separator: "\n").map(String.init)
        let quoted = "'" + original.trimmingCharacters(in: .newlines).replacingOccurrences(of: "'", with: "''") + "'"
        try sqlite3Must(db, """
            PRAGMA writable_schema = ON;
            UPDATE sqlite_schema SET sql = replace(replace(replace(sql, ') STRICT', ')'), 'NOT NULL', ''), '\(loosening)', '') WHERE name = '\(table)';
            PRAGMA writable_schema = OFF;
            """)
        try sqlite3Must(db, names.map { "DROP TRIGGER \($0);" }.joined() + sql)
        try sqlite3Must(db, triggers)
        try sqlite3Must(db, """
            PRAGMA writable_schema = ON;
            UPDATE sqlite_schema SET sql = \(quoted) WHERE name = '\(table)';
            PRAGMA writable_schema = OFF;
            """)
        let schema = try sqlite3Shell(db, "SELECT sql FROM sqlite_schema WHERE name = '\(table)';").stdout
        #expect(schema == original && schema.contains(") STRICT"), "\(schema)")
        let restored = try sqlite3Shell(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = '\(table)';").stdout
        #expect(restored == "\(names.count)\n")
    }

    @Test("audit_store.created_at holding text: verify reports header-tampered (the header's columns)")
    func headerCreatedAtText() async throws {
        try await makeStore(at: db, keys: keys, count: 3)
        try tamper("audit_store", "UPDATE audit_store SET created_at = 'yesterday';")
        #expect(try sqlite3Shell(db, "SELECT typeof(created_at) FROM audit_store;").stdout == "text\n")
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.headerTampered], "\(report)")
        #expect(report.findings.first?.message == "the store header has invalid columns")
    }

    @Test("the last row's mac shortened (its CHECK taken off): append refuses with integrity-violation and writes nothing; verify names the row")
    func lastRowShortMac() async throws {
        try await makeStore(at: db, keys: keys, count: 3)
        try tamper("audit_entries", "UPDATE audit_entries SET mac = x'0102' WHERE seq = 3;", loosening: "CHECK (length(mac) = 32)")
        let store = try await AuditStore.open(at: db, keys: keys)
        let append = await #expect(throws: AuditError.self) { try await store.append(sampleEvent(4)) }
        #expect(append?.code == .integrityViolation)
        #expect(append?.message.hasPrefix("the last row of the log (seq 3) has no 32-byte MAC: the file was edited outside AuditDB") == true,
                "\(String(describing: append))")
        #expect(try await store.lastSeq() == 3)
        try await store.close()
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.malformedRow] && report.findings.first?.seqs == 3...3, "\(report)")
    }

    @Test("audit_checkpoints.created_at holding text: the next checkpoint skips that row (its signature no longer holds) and starts afresh; nothing stops")
    func checkpointCreatedAtText() async throws {
        try await makeStore(at: db, keys: keys, count: 3)
        let signer = try CheckpointSigner.inMemory()
        var store = try await AuditStore.open(at: db, keys: keys)
        try await store.checkpoint(signer: signer)
        try await store.close()
        try tamper("audit_checkpoints", "UPDATE audit_checkpoints SET created_at = 'noon' WHERE seq = 3;")
        #expect(try sqlite3Shell(db, "SELECT seq, typeof(created_at) FROM audit_checkpoints;").stdout == "3|text\n")
        // The row agrees with the log (seq and chain head): a full pass still checks it under
        // the key it names (FORMAT.md section 11 step 8) and reports it, and reads it without stopping.
        let report = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(report.findings.map(\.kind) == [.foreignRow], "\(report)")
        #expect(report.findings.first?.message == "audit_checkpoints row at seq 3 has the chain head of the log but is not a checkpoint of this store: its created_at or key_version is not an integer, or its key version is not 1...2^32-1. AuditDB ignores it (a checkpoint or export skips it); another SQLite client changed or inserted it",
                "\(report)")
        store = try await AuditStore.open(at: db, keys: keys)
        let storeID = store.storeID
        let usable = try await store.pool.read { db in try AuditStore.usableCheckpoint(db, storeID: storeID, trusting: nil) }
        #expect(usable.0 == nil && usable.skipped == [3])  // its signature no longer holds
        try await store.append(contentsOf: (4...5).map { sampleEvent($0) })
        let next = try await store.checkpoint(signer: signer)
        #expect(next.seq == 5)
        #expect(try await store.checkpoints().map(\.seq) == [3, 5])
        try await store.close()
    }

    @Test("the row before an incremental pass holding a text recorded_at: the pass reads it as the scan does (no trap); a full pass names that row")
    func incrementalPredecessorRecordedAtText() async throws {
        try await makeStore(at: db, keys: keys, count: 10)
        let store = try await AuditStore.open(at: db, keys: keys)
        let scanner = IntegrityScanner(store: store)
        let first = try await scanner.scan(.incremental)  // no position yet: full
        #expect(first.isIntact && first.recordSeq == 11)
        // Changed beside the open store (another SQLite client): the scanner keeps its position.
        try tamper("audit_entries", "UPDATE audit_entries SET recorded_at = 'late' WHERE seq = 10;")
        #expect(try sqlite3Shell(db, "SELECT typeof(recorded_at) FROM audit_entries WHERE seq = 10;").stdout == "text\n")

        try await store.append(contentsOf: (12...16).map { sampleEvent($0) })
        let second = try await scanner.scan(.incremental)
        #expect(second.mode == .incremental, "\(second)")
        #expect(second.checkedSeqs?.lowerBound == 11, "\(second)")
        #expect(second.integrity.findings == [], "\(second.integrity.findings)")
        try await store.close()
        let full = try await AuditStore.verify(storeAt: db, keys: keys)
        #expect(full.findings.map(\.kind) == [.malformedRow], "\(full)")
        #expect(full.findings.first?.seqs == 10...10, "\(full)")
    }

    /// A value as the sqlite3 shell writes it into a column of the table without STRICT (so with
    /// the column's affinity).
    enum Value: CustomStringConvertible {
        case null, text(String), blob(String), real(Double), int(Int64)
        var sql: String {
            switch self {
            case .null: "NULL"
            case .text(let t): "'\(t)'"
            case .blob(let hex): "X'\(hex)'"
            case .real(let r): "\(r)"
            case .int(let i): "\(i)"
            }
        }
        var description: String { sql }
    }

    /// The finding FORMAT.md section 11 step 4 gives row 5 (of 9, key version 1, format 1, no
    /// seals) after `column` = `value`, its stored value being `original` (sqlite3's quote()).
    static func expected(_ column: String, _ value: Value, original: String) -> Finding.Kind? {
        if value.sql == original { return nil }  // the same value: nothing changed
        switch column {
        case "recorded_at", "outcome", "severity", "origin", "format_version", "key_version":
            guard case .int(let v) = value else { return .malformedRow }
            switch column {
            case "outcome", "severity": if !(0...3).contains(v) { return .malformedRow }
            case "origin": if !(0...1).contains(v) { return .malformedRow }
            case "format_version": return .malformedRow  // 2 needs seals; every other value is unknown
            case "key_version":
                if !(0...Int64(UInt32.max)).contains(v) { return .malformedRow }
                if v != 1 { return .unknownKeyVersion }
            default: break
            }
            return .macMismatch
        case "occurred_at", "origin_ref":
            switch value {
            case .null, .int: return .macMismatch
            default: return .malformedRow
            }
        case "mac":
            if case .blob(let hex) = value, hex.count == 64 { return .macMismatch }
            return .malformedRow
        default:  // the text columns: TEXT affinity stores a number written there as text
            switch value {
            case .null: return column == "action" ? .malformedRow : .macMismatch
            case .text, .int, .real: return .macMismatch
            case .blob: return .malformedRow
            }
        }
    }

    @Test("every column of a row, holding a value of every storage class and the extremes of INTEGER: verify names that row with the finding FORMAT.md gives, a query returns it marked, nothing traps")
    func everyColumnEveryType() async throws {
        let pristine = dir.path("pristine.db")
        try await makeStore(at: pristine, keys: keys, count: 9)
        let columns = ["recorded_at", "occurred_at", "tenant", "actor", "action", "resource_type", "resource_id", "outcome",
                       "severity", "correlation_id", "source", "details", "origin", "origin_ref", "format_version", "key_version", "mac"]
        let values: [Value] = [.null, .text("abc"), .blob("00"), .blob(String(repeating: "ab", count: 32)), .real(2.5),
                               .int(0), .int(-1), .int(2), .int(Int64.max), .int(Int64.min), .int(1 << 32)]
        var cases = 0
        for column in columns {
            let original = try sqlite3Shell(pristine, "SELECT quote(\(column)) FROM audit_entries WHERE seq = 5;").stdout
                .trimmingCharacters(in: .newlines)
            for value in values {
                try? FileManager.default.removeItem(atPath: db)
                try FileManager.default.copyItem(atPath: pristine, toPath: db)
                try tamper("audit_entries", "UPDATE audit_entries SET \(column) = \(value.sql) WHERE seq = 5;")
                let report = try await AuditStore.verify(storeAt: db, keys: keys)
                let want = Self.expected(column, value, original: original)
                let label = "\(column) = \(value) (was \(original))"
                if let want {
                    #expect(report.findings.first?.kind == want && report.findings.first?.seqs == 5...5, "\(label): \(report)")
                    // A time moved past the next row's adds only the time-break index's finding.
                    #expect(report.findings.dropFirst().allSatisfy { $0.kind == .indexMismatch }, "\(label): \(report)")
                } else {
                    #expect(report.findings == [], "\(label): \(report)")
                }
                let store = try await AuditStore.open(at: db, keys: keys)
                var query = EntryQuery(limit: 100)
                query.unverifiedRows = .mark
                let entries = try await store.page(query).entries
                try await store.close()
                #expect(entries.map(\.seq) == Array(1...9), "\(label)")
                #expect(entries.filter { !$0.isVerified }.map(\.seq) == (want == nil ? [] : [5]), "\(label)")
                cases += 1
            }
        }
        #expect(cases == columns.count * values.count)
    }
}
