import CAuditCore
import Foundation
import GRDB
import GRDBSQLite

/// Reads rows into ``AuditEntry`` values, checking each with the verifier's own row check
/// (MAC, and the link to the row before it: the previous row read, or the stored one), and that
/// the row is what the verified erasure entries made it (FORMAT.md section 21.4, step 10 rules 2
/// and 4 for that row): an erasure keeps the MAC valid by construction, so neither an erasure
/// made without an entry nor a value restored after its erasure changes the MAC, and the rest of
/// a partially erased details is authenticated by its erasure entry, not by the MAC.
struct EntryReader {
    let context: RowContext
    let previousMac: StoredMacs
    /// When some key version is compromised: the attestations of one row.
    let attestations: AttestationLookup
    let mode: EntryQuery.UnverifiedRows
    let storeID: StoreID
    let keys: KeyRing
    /// The connection the rows are read on (the erasure entries are read on it too, in the same snapshot).
    let db: Database
    /// Whether erased rows are checked against the erasure entries (not when reading the
    /// erasure entries themselves).
    let checksErasures: Bool
    /// What the verified erasure entries claim per seq, loaded when the first erased row is read.
    var erasureClaims: [Int64: ErasureCheck.Claim]?
    /// The open store's claims, extended by the entries appended since (nil: read them all).
    let claimsCache: ErasureClaimsCache?
    /// The last row read, and the chain state after it (as the verifier has it after that row: a
    /// bad row's successor is not checked against its MAC).
    var lastSeq: Int64?
    var lastChain = RowChain()
    /// Whether a row's link is judged as a sequential pass judges it (FORMAT.md section 11, step
    /// 4.6): not checked against an element before it that fails step 4 itself. The readers of
    /// the entries verification believes (expiry, hold and erasure entries: "verified" as section
    /// 20.4 defines it) judge so. A query's reader does not: there a row after a damaged one is
    /// named too, since the damaged row may be one of the query's own, hidden from it (a query
    /// cannot see its rows' neighbours otherwise, as it names the row after a gap).
    let judgesLinksAsAPass: Bool
    /// Whether the log element at a seq passed step 4 of a sequential pass (``passes(_:)``).
    private var passed: [Int64: Bool] = [:]
    /// One row by seq, and one tombstone by seq (made when first needed).
    private var rowAt: Statement?
    private var tombstoneAt: Statement?

    init(_ db: Database, storeID: StoreID, keys: KeyRing, mode: EntryQuery.UnverifiedRows, checksErasures: Bool = true,
         claimsCache: ErasureClaimsCache? = nil, judgesLinksAsAPass: Bool = false) throws
    {
        self.judgesLinksAsAPass = judgesLinksAsAPass
        self.storeID = storeID
        self.claimsCache = claimsCache
        self.keys = keys
        self.db = db
        self.checksErasures = checksErasures
        context = RowContext(storeID: storeID.bytes, keys: keys, attestations: [:])
        previousMac = try StoredMacs(db)
        attestations = try AttestationLookup(db, keys: keys)
        self.mode = mode
    }

    /// The error for a row that failed verification, read in mode `.throw`.
    static func refusal(seq: Int64, _ finding: Finding) -> AuditError {
        AuditError(.integrityViolation,
                   "entry \(seq) failed verification (\(finding)); it is not returned. Run `auditdb verify` for a full report.")
    }

    /// Steps `statement` (arguments already set) to the end, appending its rows to `entries`.
    mutating func read(_ statement: Statement, into entries: inout [AuditEntry]) throws {
        let stmt = statement.sqliteStatement
        defer { SQLite.reset(stmt) }
        while try SQLite.step(stmt, while: "read entries") {
            let seq = SQLite.int64(stmt, RowLayout.seq)
            var chain: RowChain
            var previousMissing = false
            var previousMacLength: Int?  // the length of a stored MAC before seq that is not 32 bytes
            if seq <= 1 {
                chain = RowChain()
            } else if lastSeq == seq - 1 {
                chain = lastChain
            } else if let stored = try previousMac.mac(at: seq - 1) {
                // Never a shorter MAC as the link: the check reads 32 bytes of it.
                chain = stored.count == 32 ? RowChain(prevMac: stored) : RowChain(prevKnown: false)
                if stored.count != 32 { previousMacLength = stored.count }
            } else {
                chain = RowChain(prevKnown: false)
                previousMissing = true
            }
            var view = RowView(stmt)
            let rowContext = try context.forRow(view, seq: seq, lookup: attestations)
            let before = chain
            var finding = view.check(seq: seq, chain: &chain, context: rowContext)
            if judgesLinksAsAPass, finding?.kind == .chainBreak, before.prevKnown, seq > 1, lastSeq != seq - 1, try !passes(seq - 1) {
                // The element before failed step 4 itself, and is reported there: a sequential
                // pass does not check this row's link against its MAC (FORMAT.md section 11,
                // step 4.6), so neither does a row read on its own.
                chain = RowChain(prevKnown: false)
                finding = view.check(seq: seq, chain: &chain, context: rowContext)
            }
            // The row itself verifies: the values that did not were an index's. SQLite reads a
            // column the index holds from the index, so an edited index entry (its key, or the
            // rowid it points at) looks like a changed row. Name the index, and show the stored
            // row (flagged) rather than the index's values.
            if finding?.kind == .macMismatch, let stored = try storedRowIfSigned(seq, flagged: Self.indexDisagrees(seq)) {
                if mode == .throw {
                    throw AuditError(.integrityViolation, "entry \(seq) was read through an index that disagrees with the stored row (\(Self.indexDisagrees(seq))); it is not returned. Run `auditdb verify` for a full report.")
                }
                entries.append(stored)
                lastSeq = seq
                lastChain = stored.mac.count == 32 ? RowChain(prevMac: stored.mac) : RowChain(prevKnown: false)
                continue
            }
            if previousMissing && finding == nil {
                finding = Finding(kind: .missingRows, seqs: (seq - 1)...(seq - 1), message: "the row before seq \(seq) is missing")
            }
            if let length = previousMacLength, finding == nil {
                finding = Finding(kind: .malformedRow, seqs: (seq - 1)...(seq - 1),
                                  message: "the row before seq \(seq) has a stored MAC of \(length) bytes, not 32, so seq \(seq)'s link cannot be checked")
            }
            // With the store's cache (queries, tail: rows of any kind) every row is looked up, so
            // that a row restored whole after its erasure is refused too; the readers of engine
            // entries, which are never erased, look only at rows with erased fields.
            if finding == nil, checksErasures, claimsCache != nil || view.erasedMask != 0 {
                if erasureClaims == nil {
                    erasureClaims = try claimsCache?.claims(db, storeID: storeID, keys: keys)
                        ?? ErasureCheck.claims(db, storeID: storeID, keys: keys).claims
                }
                if let claims = erasureClaims, let problem = ErasureCheck.problem(view, claims: claims) {
                    finding = Finding(kind: .erasureTampered, seqs: seq...seq, message: problem)
                }
            }
            if let finding, mode == .throw {
                // The log confirms versions the ring lacks: keys rotated after this process loaded
                // them. This row, or an entry it depends on (an erasure entry), may be signed by
                // one: not damage this process can judge (KeyVersionCache.staleRing).
                if let stale = try KeyVersionCache.staleRing(db, keys: keys, path: "the store")?.error {
                    throw stale
                }
                throw Self.refusal(seq: seq, finding)
            }
            entries.append(view.entry(finding: finding))
            lastSeq = seq
            lastChain = chain
        }
    }

    /// What a query reports when the values it read for `seq` fail the MAC but the stored row does not.
    static func indexDisagrees(_ seq: Int64) -> Finding {
        Finding(kind: .indexMismatch, seqs: seq...seq, message: "an index entry this query read for seq \(seq) disagrees with the stored row, whose MAC verifies (the index was edited, or points at the wrong row). Queries may miss rows or return others until `auditdb repair-indexes` rebuilds the indexes; `auditdb verify` names the index")
    }

    /// The row at `seq` read from the table itself (never through an index), with `flagged`, when
    /// its MAC holds at that seq (its link is not judged); nil otherwise.
    private mutating func storedRowIfSigned(_ seq: Int64, flagged: Finding) throws -> AuditEntry? {
        try checkedRow(seq, previous: RowChain(prevKnown: false)) { view, kind in
            kind == nil || kind == .compromisedKey ? view.entry(finding: flagged) : nil
        } ?? nil
    }

    /// Whether the row at `seq` is signed at that seq: it exists, is well-formed and its MAC holds
    /// (its link is not judged). What a reader must know before it trusts a value of a row it does
    /// not return, such as the `recorded_at` a time window's search rests on.
    mutating func isSigned(at seq: Int64) throws -> Bool {
        guard let verdict = try rowVerdict(seq, previous: RowChain(prevKnown: false)) else { return false }
        return verdict != .fails
    }

    /// Step 4 on the row at `seq` alone, its link checked against `previous`; nil without a row.
    private mutating func rowVerdict(_ seq: Int64, previous: RowChain) throws -> ElementVerdict? {
        try checkedRow(seq, previous: previous) { _, kind in
            switch kind {
            case nil, .compromisedKey?: .passes  // step 5 leaves prev_known true
            case .chainBreak?: .linkFails
            default: .fails
            }
        }
    }

    /// Reads the row at `seq` from the table itself (never through an index), checks it (step 4,
    /// its link against `previous`) and hands `body` the row and its finding's kind; nil without a row.
    private mutating func checkedRow<R>(_ seq: Int64, previous: RowChain, _ body: (RowView, Finding.Kind?) -> R) throws -> R? {
        if rowAt == nil { rowAt = try db.makeStatement(sql: try RowLayout.select(db) + " NOT INDEXED WHERE seq = ?") }
        let row = rowAt!.sqliteStatement
        defer { SQLite.reset(row) }
        try SQLite.bind(row, 1, seq)
        guard try SQLite.step(row, while: "read the row at seq \(seq)") else { return nil }
        var view = RowView(row)
        var chain = previous
        let kind = view.check(seq: seq, chain: &chain, context: try context.forRow(view, seq: seq, lookup: attestations))?.kind
        return body(view, kind)
    }

    /// What step 4 makes of one log element, its link judged against the stored MAC before it.
    private enum ElementVerdict { case passes, fails, linkFails }

    /// Whether the log element at `seq` (its row, else the tombstone of the expired row) passes
    /// step 4 as a sequential pass has it (FORMAT.md section 11, step 4.6, and 20.4 for
    /// tombstones): after an element that fails, or a seq in neither table, the next one's link
    /// is not checked. An element whose own link fails therefore passes iff the one before it
    /// does not: only over such elements is the walk back longer than one, and every verdict is
    /// remembered, so a reader's walks cost at most one look at each element.
    private mutating func passes(_ seq: Int64) throws -> Bool {
        var linkFailures: [Int64] = []
        var at = seq
        var verdict: Bool
        while true {
            if let known = passed[at] {
                verdict = known
                break
            }
            switch try element(at) {
            case .passes: verdict = true
            case .fails: verdict = false
            case .linkFails:
                // Row 1's link is against 32 zero bytes, always known: it fails.
                guard at > 1 else { verdict = false; break }
                linkFailures.append(at)
                at -= 1
                continue
            }
            passed[at] = verdict
            break
        }
        for failure in linkFailures.reversed() {
            verdict = !verdict
            passed[failure] = verdict
        }
        return verdict
    }

    /// Step 4 on the element at `seq` alone, its link checked against the stored MAC at seq − 1
    /// (a seq in neither table, or a MAC that is not 32 bytes, leaves the link unchecked).
    private mutating func element(_ seq: Int64) throws -> ElementVerdict {
        let previous: RowChain
        if seq <= 1 {
            previous = RowChain()
        } else if let stored = try previousMac.mac(at: seq - 1), stored.count == 32 {
            previous = RowChain(prevMac: stored)
        } else {
            previous = RowChain(prevKnown: false)
        }
        if let verdict = try rowVerdict(seq, previous: previous) { return verdict }
        guard try db.tableExists("audit_expired") else { return .fails }
        if tombstoneAt == nil { tombstoneAt = try db.makeStatement(sql: "SELECT key_version, mac FROM audit_expired WHERE seq = ?") }
        let tombstone = tombstoneAt!.sqliteStatement
        defer { SQLite.reset(tombstone) }
        try SQLite.bind(tombstone, 1, seq)
        guard try SQLite.step(tombstone, while: "read the tombstone at seq \(seq)"),
              SQLite.type(tombstone, 0) == SQLITE_INTEGER, let version = UInt32(exactly: SQLite.int64(tombstone, 0)),
              let key = keys.key(version: version),
              SQLite.type(tombstone, 1) == SQLITE_BLOB, let mac = SQLite.blob(tombstone, 1), mac.count == 32
        else { return .fails }
        guard previous.prevKnown else { return .passes }
        let linked = previous.prevMac.withUnsafeBufferPointer { adb_link_check(key.keyset, storeID.bytes, seq, mac, $0.baseAddress) } == 1
        return linked ? .passes : .linkFails
    }
}

extension AuditEntry {
    /// Whether this entry, read by an ``EntryReader``, is "verified" as FORMAT.md section 20.4
    /// defines it for steps 9 and 10: no finding of steps 2–5 at its own seq. A finding the
    /// reader attached about the element before it (the row before is missing, or its stored MAC
    /// is not 32 bytes) is that element's, which the row scan reports there.
    var isVerifiedAtItsSeq: Bool {
        guard let finding else { return true }
        return !(finding.seqs?.contains(seq) ?? true)
    }
}
